//! The SQLite store against the shared conformance suite, plus SQLite-specific behaviour.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use ringfence_sessions::conformance::{self, base_now, sample_session, unique_user};
use ringfence_sessions::{SessionStore, SqliteSessionStore};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::SqlitePool;

mod common;
mod sql_stores;

use sql_stores::Behind;

async fn pool(path: &Path) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(StdDuration::from_secs(10));
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .unwrap()
}

async fn store(path: &Path) -> SqliteSessionStore {
    let store = SqliteSessionStore::new(pool(path).await);
    store.migrate().await.unwrap();
    store
}

#[tokio::test]
async fn sqlite_store_passes_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    conformance::run_all(|| {
        n += 1;
        let path = dir.path().join(format!("sessions-{n}.db"));
        async move { store(&path).await }
    })
    .await;
}

#[tokio::test]
async fn migrate_is_idempotent_and_ignores_other_crates_versions() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&dir.path().join("shared.db")).await;
    // Another crate's migrator ran first on the same database (its own version range).
    let other = sql_stores::other_crates_migrator().await;
    other.run(&pool).await.unwrap();

    let store = SqliteSessionStore::new(pool.clone());
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    // And the other crate's migrator still runs after ours.
    other.run(&pool).await.unwrap();

    assert_eq!(
        Behind(&pool).migration_versions().await,
        vec![1, 2001, 2002]
    );
    store.ping().await.unwrap();
}

#[tokio::test]
async fn inserts_prune_expired_rows_of_everyone() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir.path().join("prune.db")).await;
    let now = base_now();
    for n in 0..20 {
        let s = sample_session(&format!("user-{n}"), now);
        store.insert(&s, None, now).await.unwrap();
    }
    let rows = || Behind(store.pool()).session_rows();
    assert_eq!(rows().await, 20);
    // Nobody ran for a day; the next sign-in clears the dead rows.
    let later = now + Duration::days(1);
    store
        .insert(&sample_session("someone-else", later), None, later)
        .await
        .unwrap();
    assert_eq!(rows().await, 1);
}

#[tokio::test]
async fn concurrent_writers_of_one_user_do_not_fail() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(store(&dir.path().join("busy.db")).await);
    let user = unique_user("busy");
    let now = base_now();
    let tasks: Vec<_> = (0..32)
        .map(|n| {
            let store = store.clone();
            let user = user.clone();
            tokio::spawn(async move {
                let mut s = sample_session(&user, now);
                store.insert(&s, Some(8), now).await.unwrap();
                s.last_seen_at = now + Duration::seconds(n);
                s.idle_expires_at = s.last_seen_at + Duration::minutes(30);
                store.touch(&s, now).await.unwrap();
                store.list_for_user(&user, now).await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.list_for_user(&user, now).await.unwrap().len(), 8);
}

#[tokio::test]
async fn corrupt_rows_and_closed_pools_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir.path().join("corrupt.db")).await;
    let now = base_now();
    let s = Behind(store.pool())
        .unreadable_rows_are_corrupt(&store, "UPDATE sessions SET created_at = 'not a time'", now)
        .await;

    store.pool().close().await;
    sql_stores::an_outage_is_unavailable(&store, &s, now).await;
}

#[tokio::test]
async fn expired_rows_are_logged_and_counted_once_as_they_go() {
    let captured = common::Captured::start();
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir.path().join("expired.db")).await;
    let now = base_now();
    let (a, b) = sql_stores::alice_and_bob_signed_in(&store, &captured, now).await;
    let alice = &a.user_id;

    // A request for Alice's session finds it dead and deletes it.
    let later = now + Duration::minutes(30);
    assert_eq!(store.get(alice, &a.id, later).await.unwrap(), None);
    assert_eq!(captured.events("expired"), 1);
    assert_eq!(
        captured.event_lines("expired", a.id.as_str()).len(),
        1,
        "{:?}",
        captured.log_lines()
    );
    // Nobody asks for Bob's: counting deletes it.
    assert_eq!(store.counts(later).await.unwrap().active_sessions, 0);
    assert_eq!(captured.events("expired"), 2);
    assert_eq!(captured.event_lines("expired", b.id.as_str()).len(), 1);
    // Each expiry once.
    assert_eq!(store.counts(later).await.unwrap().signed_in_users, 0);
    assert_eq!(store.get(alice, &a.id, later).await.unwrap(), None);
    assert_eq!(captured.events("expired"), 2);
    // Revocations are not expiries.
    sql_stores::a_revocation_is_no_expiry(&store, &captured, alice, later, 2).await;
}

#[tokio::test]
async fn totals_start_from_the_rows_already_there() {
    // A database from before the totals table: the migration counts what it holds.
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&dir.path().join("upgrade.db")).await;
    let mut first = sqlx::migrate!("migrations/sqlite");
    first.migrations.to_mut().retain(|m| m.version < 2002);
    first.set_ignore_missing(true);
    first.run(&pool).await.unwrap();
    let now = base_now();
    for (user, id) in [("u1", "a"), ("u1", "b"), ("u2", "c")] {
        let mut s = sample_session(user, now);
        s.device = id.to_owned();
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, last_seen_at, idle_expires_at, \
             absolute_expires_at, expires_at, ip, user_agent, device, node) \
             VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, 'n')",
        )
        .bind(s.id.as_str())
        .bind(user)
        .bind(s.created_at.timestamp_millis())
        .bind(s.last_seen_at.timestamp_millis())
        .bind(s.idle_expires_at.timestamp_millis())
        .bind(s.absolute_expires_at.timestamp_millis())
        .bind(s.expires_at().timestamp_millis())
        .bind(&s.device)
        .execute(&pool)
        .await
        .unwrap();
    }
    let store = SqliteSessionStore::new(pool);
    store.migrate().await.unwrap();
    let counts = store.counts(now).await.unwrap();
    assert_eq!((counts.active_sessions, counts.signed_in_users), (3, 2));
    assert_eq!(store.count_for_user("u1", now).await.unwrap(), 2);
}
