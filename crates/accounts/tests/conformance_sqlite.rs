//! The UserStore conformance suite on SQLite files in temporary directories.

use ringfence_accounts::{conformance, Database, SqliteUserStore, UserStore};
use tempfile::TempDir;

#[macro_use]
#[path = "common/user_store_checks.rs"]
mod user_store_checks;

/// A migrated store on a fresh file; the directory lives as long as the returned guard.
async fn store() -> (SqliteUserStore, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("users.db").display());
    let db = Database::connect(&url).await.unwrap();
    let store = SqliteUserStore::new(db.sqlite_pool().unwrap().clone());
    store.migrate().await.unwrap();
    (store, dir)
}

macro_rules! conformance_tests {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let (store, _dir) = store().await;
            conformance::$name(&store).await;
        }
    )*};
}

user_store_checks!(conformance_tests);

#[tokio::test]
async fn all_checks_share_one_store() {
    let (store, _dir) = store().await;
    conformance::run_all(&store).await;
    // Everything again on the now populated store: no check depends on an empty table.
    conformance::insert_and_find(&store).await;
    conformance::missing_rows(&store).await;
    conformance::duplicate_email(&store).await;
    conformance::set_password_hash(&store).await;
    conformance::set_admin(&store).await;
    conformance::list_order(&store).await;
    conformance::count(&store).await;
    conformance::status_flags(&store).await;
    conformance::delete(&store).await;
    conformance::change_email(&store).await;
    conformance::concurrent_email_change(&store).await;
    conformance::list_by_id(&store).await;
}

#[tokio::test]
async fn migration_ignores_other_crates_migrations_and_is_idempotent() {
    let (store, _dir) = store().await;
    // Another crate's migrator recorded its own version in the shared table.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (2001, 'sessions', TRUE, X'00', 0)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    conformance::insert_and_find(&store).await;
}

#[tokio::test]
async fn data_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("users.db").display());
    let db = Database::connect(&url).await.unwrap();
    let users = db.user_store().await.unwrap();
    conformance::insert_and_find(users.as_ref()).await;
    let n = users.count().await.unwrap();
    db.close().await;
    drop(users);

    let db = Database::connect(&url).await.unwrap();
    let users = db.user_store().await.unwrap();
    assert_eq!(users.count().await.unwrap(), n);
    db.close().await;
}

#[tokio::test]
async fn closed_pool_is_unavailable_not_a_panic() {
    let (store, _dir) = store().await;
    store.pool().close().await;
    let err = store.count().await.unwrap_err();
    assert!(
        matches!(err, ringfence_accounts::UserStoreError::Unavailable(_)),
        "{err:?}"
    );
    assert!(store.ping().await.is_err());
}

#[tokio::test]
async fn accounts_made_before_the_upgrade_are_unverified_and_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("users.db").display());
    let db = Database::connect(&url).await.unwrap();
    let pool = db.sqlite_pool().unwrap();
    // The schema as it was before migration 3003, with an account in it.
    let mut before = sqlx::migrate!("migrations/sqlite");
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version <= 3002)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(pool).await.unwrap();
    let t = chrono::Utc::now();
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, is_admin, created_at, password_changed_at) \
         VALUES ('old-user', 'old@example.com', '$argon2id$h', TRUE, $1, $1)",
    )
    .bind(t)
    .execute(pool)
    .await
    .unwrap();

    let users = db.user_store().await.unwrap();
    let old = users.by_id("old-user").await.unwrap().unwrap().user;
    assert!(!old.email_verified, "nobody verified it");
    assert!(!old.disabled);
    assert!(old.is_admin);
    assert_eq!(users.list_after(None, 10).await.unwrap(), vec![old]);
    conformance::run_all_on_populated(users.as_ref()).await;
    db.close().await;
}
