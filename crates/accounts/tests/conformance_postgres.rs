//! The UserStore conformance suite on a real PostgreSQL server.

use ringfence_accounts::{conformance, Database, PostgresUserStore, UserStore, UserStoreError};
use ringfence_testkit::PostgresServer;

#[macro_use]
#[path = "common/user_store_checks.rs"]
mod user_store_checks;

async fn start_server() -> PostgresServer {
    tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .unwrap()
        .expect("start PostgreSQL")
}

/// A migrated store on a fresh database of `server`.
async fn store(server: &PostgresServer) -> (Database, PostgresUserStore) {
    let url = server.fresh_database().unwrap();
    let db = Database::connect(&url).await.unwrap();
    let store = PostgresUserStore::new(db.postgres_pool().unwrap().clone());
    store.migrate().await.unwrap();
    (db, store)
}

/// One server for the whole file (starting one takes seconds); every check gets its own
/// database so each sees the state it expects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_user_store_conformance() {
    let server = start_server().await;

    macro_rules! each {
        ($($name:ident),* $(,)?) => {$(
            let (db, s) = store(&server).await;
            conformance::$name(&s).await;
            db.close().await;
        )*};
    }
    user_store_checks!(each);

    // Everything again on one populated database.
    let (db, s) = store(&server).await;
    conformance::run_all(&s).await;
    conformance::list_order(&s).await;
    conformance::count(&s).await;
    conformance::duplicate_email(&s).await;
    conformance::change_email(&s).await;
    conformance::list_by_id(&s).await;
    db.close().await;

    // Through Database::user_store, as the server opens it.
    let url = server.fresh_database().unwrap();
    let db = Database::connect(&url).await.unwrap();
    assert_eq!(db.backend(), "postgres");
    #[cfg(feature = "sqlite")]
    assert!(db.sqlite_pool().is_none());
    let users = db.user_store().await.unwrap();
    conformance::run_all(users.as_ref()).await;
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrations_coexist_and_race_safely() {
    let server = start_server().await;
    let url = server.fresh_database().unwrap();

    // Several nodes starting at once all migrate the same database.
    let mut nodes = Vec::new();
    for _ in 0..4 {
        nodes.push(Database::connect(&url).await.unwrap());
    }
    let tasks: Vec<_> = nodes
        .iter()
        .cloned()
        .map(|db| tokio::spawn(async move { db.user_store().await.map(|_| ()) }))
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }

    // Another crate's migration recorded in the shared table does not upset ours.
    let pool = nodes[0].postgres_pool().unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (2001, 'sessions', TRUE, '\\x00'::bytea, 0)",
    )
    .execute(pool)
    .await
    .unwrap();
    let store = nodes[1].user_store().await.unwrap();
    conformance::insert_and_find(store.as_ref()).await;
    for db in &nodes {
        db.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_server_is_unavailable() {
    let mut server = start_server().await;
    let (db, store) = store(&server).await;
    store.ping().await.unwrap();
    tokio::task::block_in_place(|| server.stop());
    let err = store.count().await.unwrap_err();
    assert!(matches!(err, UserStoreError::Unavailable(_)), "{err:?}");
    assert!(store.ping().await.is_err());
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_made_before_the_upgrade_are_unverified_and_enabled() {
    let server = start_server().await;
    let url = server.fresh_database().unwrap();
    let db = Database::connect(&url).await.unwrap();
    let pool = db.postgres_pool().unwrap();
    // The schema as it was before migration 3003, with accounts in it.
    let mut before = sqlx::migrate!("migrations/postgres");
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version <= 3002)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(pool).await.unwrap();
    let t = chrono::Utc::now();
    // Ids a locale-aware collation would order differently from byte order.
    for (id, email) in [
        ("b-old", "b@example.com"),
        ("B-old", "c@example.com"),
        ("a_old", "a@example.com"),
    ] {
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, is_admin, created_at, password_changed_at) \
             VALUES ($1, $2, '$argon2id$h', FALSE, $3, $3)",
        )
        .bind(id)
        .bind(email)
        .bind(t)
        .execute(pool)
        .await
        .unwrap();
    }

    let users = db.user_store().await.unwrap();
    let listed = users.list_after(None, 10).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, ["B-old", "a_old", "b-old"], "byte order");
    for user in &listed {
        assert!(!user.email_verified && !user.disabled, "{user:?}");
    }
    assert_eq!(
        users.list_after(Some("B-old"), 1).await.unwrap()[0].id,
        "a_old"
    );
    conformance::run_all_on_populated(users.as_ref()).await;
    db.close().await;
}
