//! The UserStore, FactorStore, PasskeyStore, MailTokenStore and AttemptStore conformance suites on a real MongoDB wire-protocol server (FerretDB on SQLite,
//! started by ringfence-testkit; skipped with a message when it is not built here).

use ringfence_accounts::mongo::{
    MongoAttemptStore, MongoDatabase, MongoFactorStore, MongoMailTokenStore, MongoUserStore,
};
use ringfence_accounts::passkeys::conformance as passkey_conformance;
use ringfence_accounts::MailTokenStore;
use ringfence_accounts::{
    conformance, factors_conformance, throttle_conformance, tokens_conformance, Database,
    UserStore, UserStoreError,
};
use ringfence_testkit::MongoServer;

async fn start_server() -> Option<MongoServer> {
    tokio::task::spawn_blocking(MongoServer::start_or_skip)
        .await
        .unwrap()
}

/// A store with its index on a fresh database of `server`.
async fn store(server: &MongoServer) -> MongoUserStore {
    let db = MongoDatabase::connect(&server.fresh_database())
        .await
        .unwrap();
    let store = MongoUserStore::new(&db);
    store.migrate().await.unwrap();
    store
}

/// One server for the whole file; every check gets its own database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_user_store_conformance() {
    let Some(server) = start_server().await else {
        return;
    };

    conformance::each_on_fresh(|| store(&server)).await;

    // Everything again on one populated database.
    let s = store(&server).await;
    conformance::run_all(&s).await;
    conformance::list_order(&s).await;
    conformance::count(&s).await;
    conformance::duplicate_email(&s).await;
    conformance::change_email(&s).await;
    conformance::list_by_id(&s).await;

    // Through Database::connect and user_store, as the server opens it; twice (a second node,
    // a restart): creating the index again is a no-op.
    let url = server.fresh_database();
    let db = Database::connect(&url).await.unwrap();
    assert_eq!(db.backend(), "mongodb");
    assert!(db.mongo().is_some());
    #[cfg(feature = "sqlite")]
    assert!(db.sqlite_pool().is_none());
    #[cfg(feature = "postgres")]
    assert!(db.postgres_pool().is_none());
    let users = db.user_store().await.unwrap();
    conformance::run_all(users.as_ref()).await;
    let again = Database::connect(&url)
        .await
        .unwrap()
        .user_store()
        .await
        .unwrap();
    conformance::run_all_on_populated(again.as_ref()).await;
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_mongo_is_unavailable_within_the_timeout_and_keeps_the_password_out() {
    // Port 1 on loopback: nothing listens there.
    let started = std::time::Instant::now();
    let err = Database::connect("mongodb://admin:hunter2@127.0.0.1:1/app")
        .await
        .unwrap_err();
    assert!(matches!(err, UserStoreError::Unavailable(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("did not answer within 5 s"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));

    let err = Database::connect("mongodb://admin:hunter2@127.0.0.1:notaport/")
        .await
        .unwrap_err();
    assert!(matches!(err, UserStoreError::InvalidUrl(_)), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_mongo_is_unavailable() {
    let Some(mut server) = start_server().await else {
        return;
    };
    let s = store(&server).await;
    s.ping().await.unwrap();
    tokio::task::block_in_place(|| server.stop());
    let err = s.count().await.unwrap_err();
    assert!(matches!(err, UserStoreError::Unavailable(_)), "{err:?}");
    assert!(s.ping().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_user_document_is_corrupt_not_a_panic() {
    let Some(server) = start_server().await else {
        return;
    };
    let url = server.fresh_database();
    let db = MongoDatabase::connect(&url).await.unwrap();
    let s = MongoUserStore::new(&db);
    s.migrate().await.unwrap();
    db.database()
        .collection::<mongodb::bson::Document>("ringfence_users")
        .insert_one(mongodb::bson::doc! {
            "_id": "broken", "email": "broken@example.com", "password_hash": 7,
            "created_at_us": "yesterday", "password_changed_at_us": 0i64,
        })
        .await
        .unwrap();
    let err = s.by_id("broken").await.unwrap_err();
    assert!(matches!(err, UserStoreError::Corrupt(_)), "{err:?}");
    let err = s.list(10, 0).await.unwrap_err();
    assert!(matches!(err, UserStoreError::Corrupt(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_factor_store_conformance() {
    let Some(server) = start_server().await else {
        return;
    };
    let url = server.fresh_database();
    // Two handles on one database, as two nodes have.
    let a = MongoFactorStore::new(&MongoDatabase::connect(&url).await.unwrap());
    a.migrate().await.unwrap();
    let b = MongoFactorStore::new(&MongoDatabase::connect(&url).await.unwrap());
    factors_conformance::run_all(&a).await;
    factors_conformance::concurrent_uses_one_wins(&a, &b).await;
    let db = Database::connect(&server.fresh_database()).await.unwrap();
    factors_conformance::run_all(db.factor_store().await.unwrap().as_ref()).await;
}

/// A newer step taken half-way by another node (its document inserted, `last_step` not yet
/// written) refuses an older step: `last_step` alone, read before the insert, would not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_an_older_step_loses_to_a_newer_one_in_flight() {
    use ringfence_accounts::FactorStore;
    let Some(server) = start_server().await else {
        return;
    };
    let url = server.fresh_database();
    let db = MongoDatabase::connect(&url).await.unwrap();
    let store = MongoFactorStore::new(&db);
    store.migrate().await.unwrap();
    let now = chrono::Utc::now();
    store.put_pending_totp("ada", "sealed", now).await.unwrap();
    assert!(store.confirm_totp("ada", "sealed", 100, now).await.unwrap());
    // The other node's take of step 102, stopped right after its insert.
    mongodb::Client::with_uri_str(&url)
        .await
        .unwrap()
        .default_database()
        .unwrap()
        .collection::<mongodb::bson::Document>("ringfence_totp_steps")
        .insert_one(mongodb::bson::doc! { "_id": "ada:102", "user_id": "ada", "step": 102i64 })
        .await
        .unwrap();
    assert!(!store.take_totp_step("ada", 101).await.unwrap());
    assert!(
        !store.take_totp_step("ada", 102).await.unwrap(),
        "taken once"
    );
    assert!(store.take_totp_step("ada", 103).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_passkey_store_conformance_and_deleting_the_user_deletes_its_credentials() {
    let Some(server) = start_server().await else {
        return;
    };
    let db = Database::connect(&server.fresh_database()).await.unwrap();
    let users = db.user_store().await.unwrap();
    let passkeys = db.passkey_store().await.unwrap();
    let factors = db.factor_store().await.unwrap();
    let alice = conformance::new_account(users.as_ref(), "alice@example.com").await;
    let bob = conformance::new_account(users.as_ref(), "bob@example.com").await;
    passkey_conformance::run_all(passkeys.as_ref(), &alice, &bob).await;

    // What the SQL stores' foreign keys cascade goes with the account here too.
    let p = passkey_conformance::passkey(&alice, "phone", 0);
    passkeys.insert(&p).await.unwrap();
    factors
        .put_pending_totp(&alice, "s", chrono::Utc::now())
        .await
        .unwrap();
    factors
        .replace_recovery_codes(&alice, &["c".repeat(64)])
        .await
        .unwrap();
    let bobs = passkeys.count(&bob).await.unwrap();
    assert!(users.delete(&alice).await.unwrap());
    assert_eq!(passkeys.count(&alice).await.unwrap(), 0);
    assert_eq!(
        passkeys.by_credential_id(&p.credential_id).await.unwrap(),
        None
    );
    assert_eq!(factors.totp(&alice).await.unwrap(), None);
    assert_eq!(factors.recovery_codes_left(&alice).await.unwrap(), 0);
    assert_eq!(passkeys.count(&bob).await.unwrap(), bobs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_mail_token_store_conformance() {
    let Some(server) = start_server().await else {
        return;
    };
    let url = server.fresh_database();
    // Two handles on one database, as two nodes have.
    let a = MongoMailTokenStore::new(&MongoDatabase::connect(&url).await.unwrap());
    a.migrate().await.unwrap();
    let b = MongoMailTokenStore::new(&MongoDatabase::connect(&url).await.unwrap());
    tokens_conformance::concurrent_takes_one_wins(&a, &b).await;
    tokens_conformance::run_all(&b).await;
    let db = Database::connect(&server.fresh_database()).await.unwrap();
    tokens_conformance::run_all(db.mail_token_store().await.unwrap().as_ref()).await;

    // Expired tokens are purged; live ones stay.
    let live = tokens_conformance::record(ringfence_accounts::TokenPurpose::ResetPassword);
    let hash = ringfence_accounts::MailToken::generate().hash();
    a.insert(&hash, &live, tokens_conformance::t0())
        .await
        .unwrap();
    a.purge(tokens_conformance::t0()).await.unwrap();
    assert!(a
        .find(&hash, live.purpose, tokens_conformance::t0())
        .await
        .unwrap()
        .is_some());
    let after = live.expires_at + chrono::Duration::seconds(1);
    assert!(a.purge(after).await.unwrap() >= 1);
    assert_eq!(
        a.find(&hash, live.purpose, tokens_conformance::t0())
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_attempt_store_conformance() {
    let Some(server) = start_server().await else {
        return;
    };
    let url = server.fresh_database();
    let store = MongoAttemptStore::new(&MongoDatabase::connect(&url).await.unwrap());
    store.migrate().await.unwrap();
    throttle_conformance::run_all(&store).await;
    let db = Database::connect(&server.fresh_database()).await.unwrap();
    throttle_conformance::run_all(db.attempt_store().await.unwrap().as_ref()).await;
}
