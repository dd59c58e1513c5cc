//! What the SQLite and PostgreSQL store tests share: the database behind a store as the tests
//! read and write it around the store, and the checks both stores pass the same way beyond the
//! conformance suite (expiry events, unreadable rows, outages).

use std::path::Path;

use chrono::{DateTime, Utc};
use ringfence_sessions::conformance::{sample_session, unique_user};
use ringfence_sessions::{Session, SessionStore, StoreError};
use sqlx::migrate::Migrator;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};

use crate::common::Captured;

/// Another crate's migrator (its own version range) as it runs on the database this crate
/// shares with it.
pub async fn other_crates_migrator() -> Migrator {
    let mut other = Migrator::new(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/other_migrations"),
    )
    .await
    .unwrap();
    other.set_ignore_missing(true);
    other
}

/// The database behind a SQL store, read and written past the store (sqlx binds `$n` on
/// SQLite as on PostgreSQL, so one statement serves both).
pub struct Behind<'p, DB: Database>(pub &'p Pool<DB>);

impl<DB> Behind<'_, DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// The migration versions applied, in order.
    pub async fn migration_versions(self) -> Vec<i64> {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(self.0)
            .await
            .unwrap()
    }

    /// Every row of the `sessions` table, live or expired.
    pub async fn session_rows(self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
            .fetch_one(self.0)
            .await
            .unwrap()
    }

    /// Stores a session of "victim", spoils its row with `spoil_a_time` (a time the store
    /// cannot read) and checks that reading it is `Corrupt`; then gives the row a readable time
    /// but a malformed id and checks that listing is `Corrupt`. Returns the session.
    pub async fn unreadable_rows_are_corrupt(
        self,
        store: &impl SessionStore,
        spoil_a_time: &str,
        now: DateTime<Utc>,
    ) -> Session {
        let s = sample_session("victim", now);
        store.insert(&s, None, now).await.unwrap();
        sqlx::query(spoil_a_time).execute(self.0).await.unwrap();
        assert!(matches!(
            store.get("victim", &s.id, now).await,
            Err(StoreError::Corrupt(_))
        ));
        sqlx::query("UPDATE sessions SET created_at = $1, id = 'bad id'")
            .bind(now.timestamp_millis())
            .execute(self.0)
            .await
            .unwrap();
        assert!(matches!(
            store.list_for_user("victim", now).await,
            Err(StoreError::Corrupt(_))
        ));
        s
    }
}

/// Alice and Bob (users of their own) sign in once each at `now`; both sessions idle out at
/// +30 minutes and none has expired yet. Returns Alice's session and Bob's.
pub async fn alice_and_bob_signed_in(
    store: &impl SessionStore,
    captured: &Captured,
    now: DateTime<Utc>,
) -> (Session, Session) {
    let (alice, bob) = (unique_user("exp-a"), unique_user("exp-b"));
    let a = sample_session(&alice, now);
    let b = sample_session(&bob, now);
    store.insert(&a, None, now).await.unwrap();
    store.insert(&b, None, now).await.unwrap();
    assert_eq!(captured.events("expired"), 0);
    (a, b)
}

/// With the database gone, the store answers `Unavailable`: to a readiness check and to a
/// request for `s`.
pub async fn an_outage_is_unavailable(store: &impl SessionStore, s: &Session, now: DateTime<Utc>) {
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    let outcome = store.get(&s.user_id, &s.id, now).await;
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{outcome:?}"
    );
}

/// A session of `user_id` signed in and revoked at `now` is no expiry: the `expired` count
/// stays at `expired_so_far`.
pub async fn a_revocation_is_no_expiry(
    store: &impl SessionStore,
    captured: &Captured,
    user_id: &str,
    now: DateTime<Utc>,
    expired_so_far: u64,
) {
    let c = sample_session(user_id, now);
    store.insert(&c, None, now).await.unwrap();
    assert!(store.remove(user_id, &c.id, now).await.unwrap());
    assert_eq!(captured.events("expired"), expired_so_far);
}
