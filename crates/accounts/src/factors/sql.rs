//! Second factors in SQLite (the embedded node) and PostgreSQL (a fleet): the same SQL on the
//! `user_totp` and `recovery_codes` tables (migrations 3005 and 3006, applied by the users
//! migrator).
//!
//! Single use rests on one statement each: a step is taken by `UPDATE … WHERE last_step <
//! $step` and a recovery code by `DELETE … WHERE code_hash = $`, which the row lock
//! (PostgreSQL) or the database write lock (SQLite) lets exactly one concurrent caller win.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
#[cfg(feature = "postgres")]
use sqlx::PgPool;
use sqlx::Row;
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;

use super::{FactorStore, TotpRecord};
use crate::sql::is_unreadable;
#[cfg(feature = "postgres")]
use crate::PostgresUserStore;
#[cfg(feature = "sqlite")]
use crate::SqliteUserStore;
use crate::UserStoreError;

const TOTP: &str = "SELECT secret, pending_secret, last_step FROM user_totp WHERE user_id = $1";
const PUT_PENDING: &str = "INSERT INTO user_totp (user_id, pending_secret, updated_at_ms) \
     VALUES ($1, $2, $3) ON CONFLICT (user_id) \
     DO UPDATE SET pending_secret = excluded.pending_secret, updated_at_ms = excluded.updated_at_ms";
const CONFIRM: &str = "UPDATE user_totp SET secret = pending_secret, pending_secret = NULL, \
     last_step = $3, updated_at_ms = $4 WHERE user_id = $1 AND pending_secret = $2";
const TAKE_STEP: &str = "UPDATE user_totp SET last_step = $2 \
     WHERE user_id = $1 AND secret IS NOT NULL AND last_step < $2";
const REMOVE_TOTP: &str = "DELETE FROM user_totp WHERE user_id = $1 RETURNING secret";
const REMOVE_CODES: &str = "DELETE FROM recovery_codes WHERE user_id = $1";
const INSERT_CODE: &str = "INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)";
const TAKE_CODE: &str = "DELETE FROM recovery_codes WHERE user_id = $1 AND code_hash = $2";
const SUMMARY: &str = "SELECT \
     (SELECT COUNT(*) FROM user_totp WHERE user_id = $1 AND secret IS NOT NULL) AS totp, \
     (SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1) AS codes";
const COUNT_CODES: &str = "SELECT COUNT(*) AS n FROM recovery_codes WHERE user_id = $1";

fn store_error(e: sqlx::Error) -> UserStoreError {
    if is_unreadable(&e) {
        UserStoreError::Corrupt(format!("second-factor store: {e}"))
    } else {
        UserStoreError::Unavailable(format!("second-factor store: {e}"))
    }
}

/// Generates the [`FactorStore`] implementation for a store wrapping a sqlx pool.
macro_rules! impl_factor_store {
    ($store:ident, $users:ident, $pool:ty) => {
        impl $store {
            /// Wraps a pool; call [`Self::migrate`] once before use (or share a pool whose
            /// user store is migrated: it is the same migrator).
            pub fn new(pool: $pool) -> Self {
                Self { pool }
            }

            /// Creates or updates this crate's tables (users and second factors included).
            pub async fn migrate(&self) -> Result<(), UserStoreError> {
                $users::new(self.pool.clone()).migrate().await
            }
        }

        #[async_trait]
        impl FactorStore for $store {
            async fn totp(&self, user_id: &str) -> Result<Option<TotpRecord>, UserStoreError> {
                let row = sqlx::query(TOTP)
                    .bind(user_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(store_error)?;
                row.map(|row| {
                    Ok(TotpRecord {
                        secret: row.try_get("secret").map_err(store_error)?,
                        pending_secret: row.try_get("pending_secret").map_err(store_error)?,
                        last_step: row.try_get("last_step").map_err(store_error)?,
                    })
                })
                .transpose()
            }

            async fn put_pending_totp(
                &self,
                user_id: &str,
                sealed: &str,
                now: DateTime<Utc>,
            ) -> Result<(), UserStoreError> {
                sqlx::query(PUT_PENDING)
                    .bind(user_id)
                    .bind(sealed)
                    .bind(now.timestamp_millis())
                    .execute(&self.pool)
                    .await
                    .map_err(store_error)?;
                Ok(())
            }

            async fn confirm_totp(
                &self,
                user_id: &str,
                sealed: &str,
                step: i64,
                now: DateTime<Utc>,
            ) -> Result<bool, UserStoreError> {
                let done = sqlx::query(CONFIRM)
                    .bind(user_id)
                    .bind(sealed)
                    .bind(step)
                    .bind(now.timestamp_millis())
                    .execute(&self.pool)
                    .await
                    .map_err(store_error)?;
                Ok(done.rows_affected() == 1)
            }

            async fn take_totp_step(
                &self,
                user_id: &str,
                step: i64,
            ) -> Result<bool, UserStoreError> {
                let done = sqlx::query(TAKE_STEP)
                    .bind(user_id)
                    .bind(step)
                    .execute(&self.pool)
                    .await
                    .map_err(store_error)?;
                Ok(done.rows_affected() == 1)
            }

            async fn remove_totp(&self, user_id: &str) -> Result<bool, UserStoreError> {
                let row = sqlx::query(REMOVE_TOTP)
                    .bind(user_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(store_error)?;
                let Some(row) = row else { return Ok(false) };
                let secret: Option<String> = row.try_get("secret").map_err(store_error)?;
                Ok(secret.is_some())
            }

            async fn replace_recovery_codes(
                &self,
                user_id: &str,
                hashes: &[String],
            ) -> Result<(), UserStoreError> {
                let mut tx = self.pool.begin().await.map_err(store_error)?;
                sqlx::query(REMOVE_CODES)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(store_error)?;
                for hash in hashes {
                    sqlx::query(INSERT_CODE)
                        .bind(user_id)
                        .bind(hash)
                        .execute(&mut *tx)
                        .await
                        .map_err(store_error)?;
                }
                tx.commit().await.map_err(store_error)
            }

            async fn take_recovery_code(
                &self,
                user_id: &str,
                hash: &str,
            ) -> Result<bool, UserStoreError> {
                let done = sqlx::query(TAKE_CODE)
                    .bind(user_id)
                    .bind(hash)
                    .execute(&self.pool)
                    .await
                    .map_err(store_error)?;
                Ok(done.rows_affected() == 1)
            }

            async fn recovery_codes_left(&self, user_id: &str) -> Result<u32, UserStoreError> {
                let row = sqlx::query(COUNT_CODES)
                    .bind(user_id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(store_error)?;
                let n: i64 = row.try_get("n").map_err(store_error)?;
                Ok(u32::try_from(n).unwrap_or(u32::MAX))
            }

            async fn summary(&self, user_id: &str) -> Result<(bool, u32), UserStoreError> {
                let row = sqlx::query(SUMMARY)
                    .bind(user_id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(store_error)?;
                let totp: i64 = row.try_get("totp").map_err(store_error)?;
                let codes: i64 = row.try_get("codes").map_err(store_error)?;
                Ok((totp > 0, u32::try_from(codes).unwrap_or(u32::MAX)))
            }
        }
    };
}

/// Second factors in SQLite (the embedded single node).
#[cfg(feature = "sqlite")]
#[derive(Debug, Clone)]
pub struct SqliteFactorStore {
    pool: SqlitePool,
}

#[cfg(feature = "sqlite")]
impl_factor_store!(SqliteFactorStore, SqliteUserStore, SqlitePool);

/// Second factors in PostgreSQL, shared by every node of a fleet.
#[cfg(feature = "postgres")]
#[derive(Debug, Clone)]
pub struct PostgresFactorStore {
    pool: PgPool,
}

#[cfg(feature = "postgres")]
impl_factor_store!(PostgresFactorStore, PostgresUserStore, PgPool);
