//! Mail-link tokens in SQLite (the embedded node) and PostgreSQL (a fleet without Redis).
//!
//! Both run the same SQL on the `mail_tokens` table (migration 3004, applied by the same
//! migrator as the users table). A take is one `DELETE … WHERE token_hash = $1 AND purpose = $2
//! AND expires_at_ms > $3 RETURNING …`: the row lock (PostgreSQL) or the database write lock
//! (SQLite) lets exactly one of concurrent takes delete the row and see it; the others delete
//! nothing. The purpose and the expiry are part of the condition, so a take for another purpose
//! or after the expiry leaves the row alone.
//!
//! Expired rows are deleted every [`PURGE_EVERY`] inserts through one store value (and by
//! `purge`), so tokens nobody redeems do not pile up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
#[cfg(feature = "postgres")]
use sqlx::PgPool;
use sqlx::Row;
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;

use super::{
    from_millis, millis, MailTokenRecord, MailTokenStore, TokenHash, TokenPurpose, TokenStoreError,
    PURGE_EVERY,
};
use crate::sql::is_unreadable;
#[cfg(feature = "postgres")]
use crate::PostgresUserStore;
#[cfg(feature = "sqlite")]
use crate::SqliteUserStore;
use crate::UserStoreError;

const INSERT: &str = "INSERT INTO mail_tokens \
     (token_hash, purpose, user_id, expires_at_ms, binding, new_email) \
     VALUES ($1, $2, $3, $4, $5, $6)";
const FIND: &str = "SELECT user_id, expires_at_ms, binding, new_email FROM mail_tokens \
     WHERE token_hash = $1 AND purpose = $2 AND expires_at_ms > $3";
const TAKE: &str = "DELETE FROM mail_tokens \
     WHERE token_hash = $1 AND purpose = $2 AND expires_at_ms > $3 \
     RETURNING user_id, expires_at_ms, binding, new_email";
const PURGE: &str = "DELETE FROM mail_tokens WHERE expires_at_ms <= $1";

fn store_error(e: sqlx::Error) -> TokenStoreError {
    if is_unreadable(&e) {
        TokenStoreError::Corrupt(e.to_string())
    } else {
        TokenStoreError::Unavailable(e.to_string())
    }
}

/// The user store's migrator applies this crate's migrations, the token table's included.
fn migrate_error(e: UserStoreError) -> TokenStoreError {
    match e {
        UserStoreError::Unavailable(msg) => TokenStoreError::Unavailable(msg),
        UserStoreError::Corrupt(msg) => TokenStoreError::Corrupt(msg),
        other => TokenStoreError::Migration(other.to_string()),
    }
}

/// Generates the [`MailTokenStore`] implementation for a store wrapping a sqlx pool.
macro_rules! impl_mail_token_store {
    ($store:ident, $users:ident, $pool:ty, $row:ty) => {
        impl $store {
            /// Wraps a pool; call [`Self::migrate`] once before use (or share a pool whose
            /// user store is migrated: it is the same migrator).
            pub fn new(pool: $pool) -> Self {
                Self {
                    pool,
                    inserted: Arc::new(AtomicU64::new(0)),
                }
            }

            /// Creates or updates the tables of this crate (users, sign-in attempts, mail
            /// tokens). Other crates' migrations on the same database are ignored.
            pub async fn migrate(&self) -> Result<(), TokenStoreError> {
                $users::new(self.pool.clone())
                    .migrate()
                    .await
                    .map_err(migrate_error)
            }

            /// The pool this store uses.
            pub fn pool(&self) -> &$pool {
                &self.pool
            }

            /// Deletes every token expired at `now`; returns how many.
            pub async fn purge(&self, now: DateTime<Utc>) -> Result<u64, TokenStoreError> {
                let done = sqlx::query(PURGE)
                    .bind(millis(now))
                    .execute(&self.pool)
                    .await
                    .map_err(store_error)?;
                Ok(done.rows_affected())
            }

            async fn purge_now_and_then(&self, now: DateTime<Utc>) {
                if self.inserted.fetch_add(1, Ordering::Relaxed) % PURGE_EVERY != PURGE_EVERY - 1
                {
                    return;
                }
                match self.purge(now).await {
                    Ok(n) => tracing::debug!(purged = n, "expired mail tokens purged"),
                    Err(e) => tracing::warn!(error = %e, "purging mail tokens failed"),
                }
            }

            fn record_from_row(
                row: &$row,
                purpose: TokenPurpose,
            ) -> Result<MailTokenRecord, TokenStoreError> {
                Ok(MailTokenRecord {
                    purpose,
                    user_id: row.try_get("user_id").map_err(store_error)?,
                    expires_at: from_millis(row.try_get("expires_at_ms").map_err(store_error)?)?,
                    binding: row.try_get("binding").map_err(store_error)?,
                    payload: row.try_get("new_email").map_err(store_error)?,
                })
            }

            /// Runs FIND or TAKE (same parameters, same columns).
            async fn fetch(
                &self,
                sql: &'static str,
                token: &TokenHash,
                purpose: TokenPurpose,
                now: DateTime<Utc>,
            ) -> Result<Option<MailTokenRecord>, TokenStoreError> {
                let row = sqlx::query(sql)
                    .bind(token.to_hex())
                    .bind(purpose.as_str())
                    .bind(millis(now))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(store_error)?;
                row.map(|row| Self::record_from_row(&row, purpose))
                    .transpose()
            }
        }

        #[async_trait]
        impl MailTokenStore for $store {
            async fn insert(
                &self,
                token: &TokenHash,
                record: &MailTokenRecord,
                now: DateTime<Utc>,
            ) -> Result<(), TokenStoreError> {
                sqlx::query(INSERT)
                    .bind(token.to_hex())
                    .bind(record.purpose.as_str())
                    .bind(&record.user_id)
                    .bind(millis(record.expires_at))
                    .bind(&record.binding)
                    .bind(record.payload.as_deref())
                    .execute(&self.pool)
                    .await
                    .map_err(store_error)?;
                self.purge_now_and_then(now).await;
                Ok(())
            }

            async fn find(
                &self,
                token: &TokenHash,
                purpose: TokenPurpose,
                now: DateTime<Utc>,
            ) -> Result<Option<MailTokenRecord>, TokenStoreError> {
                self.fetch(FIND, token, purpose, now).await
            }

            async fn take(
                &self,
                token: &TokenHash,
                purpose: TokenPurpose,
                now: DateTime<Utc>,
            ) -> Result<Option<MailTokenRecord>, TokenStoreError> {
                self.fetch(TAKE, token, purpose, now).await
            }
        }
    };
}

/// Mail-link tokens in SQLite (the embedded single node).
#[cfg(feature = "sqlite")]
#[derive(Debug, Clone)]
pub struct SqliteMailTokenStore {
    pool: SqlitePool,
    inserted: Arc<AtomicU64>,
}

#[cfg(feature = "sqlite")]
impl_mail_token_store!(
    SqliteMailTokenStore,
    SqliteUserStore,
    SqlitePool,
    sqlx::sqlite::SqliteRow
);

/// Mail-link tokens in PostgreSQL, shared by every node of a fleet without Redis.
#[cfg(feature = "postgres")]
#[derive(Debug, Clone)]
pub struct PostgresMailTokenStore {
    pool: PgPool,
    inserted: Arc<AtomicU64>,
}

#[cfg(feature = "postgres")]
impl_mail_token_store!(
    PostgresMailTokenStore,
    PostgresUserStore,
    PgPool,
    sqlx::postgres::PgRow
);
