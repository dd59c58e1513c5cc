//! The PasskeyStore conformance suite on SQLite and a real PostgreSQL, and the promise that
//! deleting an account deletes its passkeys on both.

use std::sync::Arc;

use chrono::Utc;
use ringfence_accounts::passkeys::conformance::{self, passkey};
use ringfence_accounts::{Database, PasskeyStore, User, UserStore};
use ringfence_testkit::PostgresServer;

async fn user(users: &Arc<dyn UserStore>, email: &str) -> String {
    let now = Utc::now();
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        email: email.to_owned(),
        is_admin: false,
        created_at: now,
        password_changed_at: now,
        email_verified: false,
        disabled: false,
    };
    users.insert(&user, "$argon2id$unused").await.unwrap();
    user.id
}

async fn check(db: &Database) {
    let users = db.user_store().await.unwrap();
    let store = db.passkey_store().await.unwrap();
    let alice = user(&users, "alice@example.com").await;
    let bob = user(&users, "bob@example.com").await;
    conformance::run_all(store.as_ref(), &alice, &bob).await;
    deleting_the_user_deletes_its_passkeys(&users, store.as_ref(), &alice, &bob).await;
}

async fn deleting_the_user_deletes_its_passkeys(
    users: &Arc<dyn UserStore>,
    store: &dyn PasskeyStore,
    alice: &str,
    bob: &str,
) {
    let p = passkey(alice, "phone", 0);
    store.insert(&p).await.unwrap();
    let bobs = store.count(bob).await.unwrap();
    assert!(users.delete(alice).await.unwrap());
    assert_eq!(store.count(alice).await.unwrap(), 0);
    assert_eq!(
        store.by_credential_id(&p.credential_id).await.unwrap(),
        None
    );
    assert_eq!(store.count(bob).await.unwrap(), bobs);
}

#[tokio::test]
async fn sqlite_passkey_store_passes_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ringfence.db").display());
    check(&Database::connect(&url).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passkey_store_passes_conformance() {
    let server = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .unwrap()
        .expect("start PostgreSQL");
    let url = server.fresh_database().unwrap();
    check(&Database::connect(&url).await.unwrap()).await;
}
