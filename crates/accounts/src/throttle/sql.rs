//! Attempt counters in SQLite (the embedded single node) and PostgreSQL (a fleet without Redis).
//!
//! Both run the same SQL on the `login_attempts` table (migration 3002, applied by the same
//! migrator as the users table). A failure is two statements in one transaction: an upsert that
//! forgets an expired count and adds one (taking the row's write lock on PostgreSQL, the
//! database's write lock on SQLite), then an update with the lock and forget time computed here
//! from the returned count. Concurrent failures on any node therefore queue on that lock and
//! are all counted.
//!
//! Expired rows are deleted every [`PURGE_EVERY`] failures recorded through one store value (and
//! by [`SqliteAttemptStore::purge`] / [`PostgresAttemptStore::purge`]), so e-mails sprayed by an
//! attacker do not pile up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::migrate::MigrateError;
#[cfg(feature = "postgres")]
use sqlx::PgPool;
use sqlx::Row;
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;

use super::{
    failures_from, lock_from_millis, millis, next_lock, AttemptStore, AttemptStoreError,
    FailureCount, ThrottlePolicy, PURGE_EVERY,
};
use crate::sql::is_unreadable;

const CHECK: &str = "SELECT locked_until_ms, forget_at_ms FROM login_attempts WHERE key = $1";
// The new row's forget time is a placeholder: UPDATE_LOCK sets it in the same transaction.
const INCREMENT: &str =
    "INSERT INTO login_attempts (key, failures, locked_until_ms, forget_at_ms) \
     VALUES ($1, 1, 0, $2) \
     ON CONFLICT (key) DO UPDATE SET \
     failures = CASE WHEN login_attempts.forget_at_ms <= $2 THEN 1 \
                     ELSE login_attempts.failures + 1 END, \
     locked_until_ms = CASE WHEN login_attempts.forget_at_ms <= $2 THEN 0 \
                            ELSE login_attempts.locked_until_ms END \
     RETURNING failures, locked_until_ms";
const UPDATE_LOCK: &str =
    "UPDATE login_attempts SET locked_until_ms = $1, forget_at_ms = $2 WHERE key = $3";
const RESET: &str = "DELETE FROM login_attempts WHERE key = $1";
const PURGE: &str = "DELETE FROM login_attempts WHERE forget_at_ms <= $1";

fn store_error(e: sqlx::Error) -> AttemptStoreError {
    if is_unreadable(&e) {
        AttemptStoreError::Corrupt(e.to_string())
    } else {
        AttemptStoreError::Unavailable(e.to_string())
    }
}

fn migrate_error(e: MigrateError) -> AttemptStoreError {
    match e {
        MigrateError::Execute(sqlx::Error::Database(db)) => {
            AttemptStoreError::Migration(db.to_string())
        }
        MigrateError::Execute(other) => store_error(other),
        other => AttemptStoreError::Migration(other.to_string()),
    }
}

/// Generates the [`AttemptStore`] implementation for a store wrapping a sqlx pool.
macro_rules! impl_attempt_store {
    ($store:ident, $pool:ty, $dir:literal) => {
        impl $store {
            /// Wraps a pool; call [`Self::migrate`] once before use (or share a pool whose
            /// user store is migrated: it is the same migrator).
            pub fn new(pool: $pool) -> Self {
                Self {
                    pool,
                    recorded: Arc::new(AtomicU64::new(0)),
                }
            }

            /// Creates or updates the tables of this crate (users and sign-in attempts).
            /// Other crates' migrations on the same database are ignored.
            pub async fn migrate(&self) -> Result<(), AttemptStoreError> {
                let mut migrator = sqlx::migrate!($dir);
                migrator.set_ignore_missing(true);
                ringfence_sessions::migrations::run_alongside_others(|| migrator.run(&self.pool))
                    .await
                    .map_err(migrate_error)
            }

            /// The pool this store uses.
            pub fn pool(&self) -> &$pool {
                &self.pool
            }

            /// Deletes every counter forgotten at `now`; returns how many.
            pub async fn purge(&self, now: DateTime<Utc>) -> Result<u64, AttemptStoreError> {
                let done = sqlx::query(PURGE)
                    .bind(millis(now))
                    .execute(&self.pool)
                    .await
                    .map_err(store_error)?;
                Ok(done.rows_affected())
            }

            async fn purge_now_and_then(&self, now: DateTime<Utc>) {
                if self.recorded.fetch_add(1, Ordering::Relaxed) % PURGE_EVERY != PURGE_EVERY - 1
                {
                    return;
                }
                match self.purge(now).await {
                    Ok(n) => tracing::debug!(purged = n, "expired sign-in counters purged"),
                    Err(e) => tracing::warn!(error = %e, "purging sign-in counters failed"),
                }
            }
        }

        #[async_trait]
        impl AttemptStore for $store {
            async fn check(
                &self,
                key: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<DateTime<Utc>>, AttemptStoreError> {
                let now_ms = millis(now);
                let row = sqlx::query(CHECK)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(store_error)?;
                let Some(row) = row else { return Ok(None) };
                let locked: i64 = row.try_get("locked_until_ms").map_err(store_error)?;
                let forget: i64 = row.try_get("forget_at_ms").map_err(store_error)?;
                if forget <= now_ms {
                    return Ok(None);
                }
                lock_from_millis(locked, now_ms)
            }

            async fn record_failure(
                &self,
                key: &str,
                free_attempts: u32,
                policy: &ThrottlePolicy,
                now: DateTime<Utc>,
            ) -> Result<FailureCount, AttemptStoreError> {
                let now_ms = millis(now);
                let mut tx = self.pool.begin().await.map_err(store_error)?;
                let row = sqlx::query(INCREMENT)
                    .bind(key)
                    .bind(now_ms)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(store_error)?;
                let failures = failures_from(row.try_get("failures").map_err(store_error)?)?;
                let previous: i64 = row.try_get("locked_until_ms").map_err(store_error)?;
                let (lock, forget) = next_lock(failures, previous, free_attempts, policy, now_ms);
                sqlx::query(UPDATE_LOCK)
                    .bind(lock)
                    .bind(forget)
                    .bind(key)
                    .execute(&mut *tx)
                    .await
                    .map_err(store_error)?;
                tx.commit().await.map_err(store_error)?;
                self.purge_now_and_then(now).await;
                Ok(FailureCount {
                    failures,
                    locked_until: lock_from_millis(lock, now_ms)?,
                })
            }

            async fn reset(&self, key: &str) -> Result<(), AttemptStoreError> {
                sqlx::query(RESET)
                    .bind(key)
                    .execute(&self.pool)
                    .await
                    .map_err(store_error)?;
                Ok(())
            }
        }
    };
}

/// Sign-in attempt counters in SQLite (the embedded single node).
#[cfg(feature = "sqlite")]
#[derive(Debug, Clone)]
pub struct SqliteAttemptStore {
    pool: SqlitePool,
    recorded: Arc<AtomicU64>,
}

#[cfg(feature = "sqlite")]
impl_attempt_store!(SqliteAttemptStore, SqlitePool, "migrations/sqlite");

/// Sign-in attempt counters in PostgreSQL, shared by every node of a fleet without Redis.
#[cfg(feature = "postgres")]
#[derive(Debug, Clone)]
pub struct PostgresAttemptStore {
    pool: PgPool,
    recorded: Arc<AtomicU64>,
}

#[cfg(feature = "postgres")]
impl_attempt_store!(PostgresAttemptStore, PgPool, "migrations/postgres");
