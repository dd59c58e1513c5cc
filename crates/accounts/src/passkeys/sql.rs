//! Passkeys in SQLite (the embedded node) and PostgreSQL (a fleet): the same SQL on the
//! `passkeys` table (migration 3008, applied by the user store's migrator).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
#[cfg(feature = "postgres")]
use sqlx::PgPool;
use sqlx::Row;
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;

use super::{PasskeyStore, PasskeyStoreError, StoredPasskey};
use crate::sql::is_unreadable;
use crate::tokens::{from_millis, millis};
#[cfg(feature = "postgres")]
use crate::PostgresUserStore;
#[cfg(feature = "sqlite")]
use crate::SqliteUserStore;
use crate::UserStoreError;

const COLUMNS: &str =
    "id, user_id, credential_id, name, credential, created_at_ms, last_used_at_ms";
const INSERT: &str = "INSERT INTO passkeys \
     (id, user_id, credential_id, name, credential, created_at_ms, last_used_at_ms) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
const COUNT: &str = "SELECT COUNT(*) AS n FROM passkeys WHERE user_id = $1";
const RECORD_USE: &str = "UPDATE passkeys SET credential = $1, last_used_at_ms = $2 WHERE id = $3";
const RENAME: &str = "UPDATE passkeys SET name = $1 WHERE id = $2 AND user_id = $3";
const DELETE_ALL: &str = "DELETE FROM passkeys WHERE user_id = $1";

fn list_sql() -> String {
    format!("SELECT {COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at_ms, id")
}

fn by_credential_sql() -> String {
    format!("SELECT {COLUMNS} FROM passkeys WHERE credential_id = $1")
}

fn delete_sql() -> String {
    format!("DELETE FROM passkeys WHERE id = $1 AND user_id = $2 RETURNING {COLUMNS}")
}

fn store_error(e: sqlx::Error) -> PasskeyStoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => PasskeyStoreError::Duplicate,
        _ if is_unreadable(&e) => PasskeyStoreError::Corrupt(e.to_string()),
        _ => PasskeyStoreError::Unavailable(e.to_string()),
    }
}

fn migrate_error(e: UserStoreError) -> PasskeyStoreError {
    match e {
        UserStoreError::Unavailable(msg) => PasskeyStoreError::Unavailable(msg),
        UserStoreError::Corrupt(msg) => PasskeyStoreError::Corrupt(msg),
        other => PasskeyStoreError::Migration(other.to_string()),
    }
}

fn corrupt(e: crate::TokenStoreError) -> PasskeyStoreError {
    PasskeyStoreError::Corrupt(e.to_string())
}

/// Generates the [`PasskeyStore`] implementation for a store wrapping a sqlx pool.
macro_rules! impl_passkey_store {
    ($store:ident, $users:ident, $pool:ty, $row:ty, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone)]
        pub struct $store {
            pool: $pool,
        }

        impl $store {
            /// Wraps a pool; call [`Self::migrate`] once before use (or share a pool whose user
            /// store is migrated: it is the same migrator).
            pub fn new(pool: $pool) -> Self {
                Self { pool }
            }

            /// Creates or updates the tables of this crate, the passkeys table included.
            pub async fn migrate(&self) -> Result<(), PasskeyStoreError> {
                $users::new(self.pool.clone())
                    .migrate()
                    .await
                    .map_err(migrate_error)
            }

            fn from_row(row: &$row) -> Result<StoredPasskey, PasskeyStoreError> {
                let last_used: Option<i64> = row.try_get("last_used_at_ms").map_err(store_error)?;
                Ok(StoredPasskey {
                    id: row.try_get("id").map_err(store_error)?,
                    user_id: row.try_get("user_id").map_err(store_error)?,
                    credential_id: row.try_get("credential_id").map_err(store_error)?,
                    name: row.try_get("name").map_err(store_error)?,
                    credential: row.try_get("credential").map_err(store_error)?,
                    created_at: from_millis(row.try_get("created_at_ms").map_err(store_error)?)
                        .map_err(corrupt)?,
                    last_used_at: last_used.map(from_millis).transpose().map_err(corrupt)?,
                })
            }
        }

        #[async_trait]
        impl PasskeyStore for $store {
            async fn insert(&self, passkey: &StoredPasskey) -> Result<(), PasskeyStoreError> {
                sqlx::query(INSERT)
                    .bind(&passkey.id)
                    .bind(&passkey.user_id)
                    .bind(&passkey.credential_id)
                    .bind(&passkey.name)
                    .bind(&passkey.credential)
                    .bind(millis(passkey.created_at))
                    .bind(passkey.last_used_at.map(millis))
                    .execute(&self.pool)
                    .await
                    .map_err(store_error)?;
                Ok(())
            }

            async fn list(&self, user_id: &str) -> Result<Vec<StoredPasskey>, PasskeyStoreError> {
                let rows = sqlx::query(&list_sql())
                    .bind(user_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(store_error)?;
                rows.iter().map(Self::from_row).collect()
            }

            async fn count(&self, user_id: &str) -> Result<u64, PasskeyStoreError> {
                let row = sqlx::query(COUNT)
                    .bind(user_id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(store_error)?;
                let n: i64 = row.try_get("n").map_err(store_error)?;
                u64::try_from(n).map_err(|_| PasskeyStoreError::Corrupt(format!("count {n}")))
            }

            async fn by_credential_id(
                &self,
                credential_id: &str,
            ) -> Result<Option<StoredPasskey>, PasskeyStoreError> {
                let row = sqlx::query(&by_credential_sql())
                    .bind(credential_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(store_error)?;
                row.as_ref().map(Self::from_row).transpose()
            }

            async fn record_use(
                &self,
                id: &str,
                credential: &str,
                used_at: DateTime<Utc>,
            ) -> Result<bool, PasskeyStoreError> {
                let done = sqlx::query(RECORD_USE)
                    .bind(credential)
                    .bind(millis(used_at))
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(store_error)?;
                Ok(done.rows_affected() > 0)
            }

            async fn rename(
                &self,
                user_id: &str,
                id: &str,
                name: &str,
            ) -> Result<bool, PasskeyStoreError> {
                let done = sqlx::query(RENAME)
                    .bind(name)
                    .bind(id)
                    .bind(user_id)
                    .execute(&self.pool)
                    .await
                    .map_err(store_error)?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete(
                &self,
                user_id: &str,
                id: &str,
            ) -> Result<Option<StoredPasskey>, PasskeyStoreError> {
                let row = sqlx::query(&delete_sql())
                    .bind(id)
                    .bind(user_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(store_error)?;
                row.as_ref().map(Self::from_row).transpose()
            }

            async fn delete_all(&self, user_id: &str) -> Result<u64, PasskeyStoreError> {
                let done = sqlx::query(DELETE_ALL)
                    .bind(user_id)
                    .execute(&self.pool)
                    .await
                    .map_err(store_error)?;
                Ok(done.rows_affected())
            }
        }
    };
}

#[cfg(feature = "sqlite")]
impl_passkey_store!(
    SqlitePasskeyStore,
    SqliteUserStore,
    SqlitePool,
    sqlx::sqlite::SqliteRow,
    "[`PasskeyStore`] on SQLite (the embedded node)."
);
#[cfg(feature = "postgres")]
impl_passkey_store!(
    PostgresPasskeyStore,
    PostgresUserStore,
    PgPool,
    sqlx::postgres::PgRow,
    "[`PasskeyStore`] on PostgreSQL (a fleet)."
);
