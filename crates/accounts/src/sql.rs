//! SQLite and PostgreSQL user stores.
//!
//! Both backends run the very same SQL: `$n` placeholders work on SQLite too, timestamps and
//! booleans are encoded by sqlx per backend, and the PostgreSQL schema declares
//! `email COLLATE "C"` so uniqueness and `ORDER BY email` are byte-wise on both. The one
//! implementation is therefore generated for both pool types by [`impl_user_store!`]; only the
//! migration directories and the pool types differ.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ringfence_sessions::migrations::run_alongside_others;
use sqlx::migrate::MigrateError;
#[cfg(feature = "postgres")]
use sqlx::PgPool;
use sqlx::Row;
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;

use crate::{Email, User, UserRecord, UserStore, UserStoreError};

const INSERT: &str = "INSERT INTO users (id, email, password_hash, is_admin, created_at, \
     password_changed_at, email_verified, disabled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
/// The columns of a [`User`], in every query that reads one.
macro_rules! user_columns {
    () => {
        "id, email, is_admin, created_at, password_changed_at, email_verified, disabled"
    };
}
const BY_EMAIL: &str = concat!(
    "SELECT ",
    user_columns!(),
    ", password_hash FROM users WHERE email = $1"
);
const BY_ID: &str = concat!(
    "SELECT ",
    user_columns!(),
    ", password_hash FROM users WHERE id = $1"
);
const SET_PASSWORD_HASH: &str =
    "UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3";
const SET_ADMIN: &str = "UPDATE users SET is_admin = $1 WHERE id = $2";
const SET_EMAIL: &str = "UPDATE users SET email = $1 WHERE id = $2";
// `id` breaks ties only in theory (e-mails are unique) but keeps paging deterministic.
const LIST: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users ORDER BY email, id LIMIT $1 OFFSET $2"
);
// Ids are compared byte-wise on both backends (PostgreSQL: `id COLLATE "C"`, migration 3003).
const LIST_AFTER: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users WHERE id > $1 ORDER BY id LIMIT $2"
);
const SET_EMAIL_VERIFIED: &str = "UPDATE users SET email_verified = $1 WHERE id = $2";
const SET_DISABLED: &str = "UPDATE users SET disabled = $1 WHERE id = $2";
const DELETE: &str = "DELETE FROM users WHERE id = $1";
// Conditional on the old address, so a change confirmed twice (or racing another change)
// applies once; the unique index on `email` refuses an address another account holds.
const CHANGE_EMAIL: &str =
    "UPDATE users SET email = $1, email_verified = $2 WHERE id = $3 AND email = $4";
const COUNT: &str = "SELECT COUNT(*) AS n FROM users";
const PING: &str = "SELECT 1";

/// Classifies a sqlx error: undecodable data is the store's fault (`Corrupt`), everything
/// else (I/O, timeouts, pool closed, server errors) means the store is not usable right now.
pub(crate) fn store_error(e: sqlx::Error) -> UserStoreError {
    if is_unreadable(&e) {
        UserStoreError::Corrupt(e.to_string())
    } else {
        UserStoreError::Unavailable(e.to_string())
    }
}

/// Whether a sqlx error says the data could not be read (the store's fault, not the network's).
pub(crate) fn is_unreadable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. }
            | sqlx::Error::TypeNotFound { .. }
    )
}

fn insert_error(e: sqlx::Error) -> UserStoreError {
    match &e {
        // The only unique columns are the e-mail and the random UUID; a UUID v4 collision is
        // not a case worth distinguishing.
        sqlx::Error::Database(db) if db.is_unique_violation() => UserStoreError::EmailTaken,
        _ => store_error(e),
    }
}

fn migrate_error(e: MigrateError) -> UserStoreError {
    match e {
        MigrateError::Execute(sqlx::Error::Database(db)) => {
            UserStoreError::Migration(db.to_string())
        }
        MigrateError::Execute(other) => store_error(other),
        other => UserStoreError::Migration(other.to_string()),
    }
}

fn page(limit: u32, offset: u32) -> (i64, i64) {
    (i64::from(limit), i64::from(offset))
}

fn count_from(n: i64) -> Result<u64, UserStoreError> {
    u64::try_from(n).map_err(|_| UserStoreError::Corrupt(format!("negative user count {n}")))
}

/// Generates the [`UserStore`] implementation for a store wrapping a sqlx pool.
macro_rules! impl_user_store {
    ($store:ident, $pool:ty, $row:ty) => {
        impl $store {
            fn user_from_row(row: &$row) -> Result<User, sqlx::Error> {
                Ok(User {
                    id: row.try_get("id")?,
                    email: row.try_get("email")?,
                    is_admin: row.try_get("is_admin")?,
                    created_at: row.try_get("created_at")?,
                    password_changed_at: row.try_get("password_changed_at")?,
                    email_verified: row.try_get("email_verified")?,
                    disabled: row.try_get("disabled")?,
                })
            }

            fn users_from_rows(rows: &[$row]) -> Result<Vec<User>, UserStoreError> {
                rows.iter()
                    .map(Self::user_from_row)
                    .collect::<Result<_, _>>()
                    .map_err(store_error)
            }

            fn record_from_row(row: &$row) -> Result<UserRecord, sqlx::Error> {
                Ok(UserRecord {
                    user: Self::user_from_row(row)?,
                    password_hash: row.try_get("password_hash")?,
                })
            }

            /// The pool this store uses.
            pub fn pool(&self) -> &$pool {
                &self.pool
            }

            /// Sets one boolean column (`$1`) of the account `$2`; `false` when it is missing.
            async fn update_flag(
                &self,
                sql: &'static str,
                id: &str,
                value: bool,
            ) -> Result<bool, UserStoreError> {
                let done = sqlx::query(sql)
                    .bind(value)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(store_error)?;
                Ok(done.rows_affected() > 0)
            }
        }

        #[async_trait]
        impl UserStore for $store {
            async fn insert(&self, user: &User, password_hash: &str) -> Result<(), UserStoreError> {
                sqlx::query(INSERT)
                    .bind(&user.id)
                    .bind(&user.email)
                    .bind(password_hash)
                    .bind(user.is_admin)
                    .bind(user.created_at)
                    .bind(user.password_changed_at)
                    .bind(user.email_verified)
                    .bind(user.disabled)
                    .execute(&self.pool)
                    .await
                    .map_err(insert_error)?;
                Ok(())
            }

            async fn by_email(&self, email: &Email) -> Result<Option<UserRecord>, UserStoreError> {
                let row = sqlx::query(BY_EMAIL)
                    .bind(email.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(store_error)?;
                row.as_ref()
                    .map(Self::record_from_row)
                    .transpose()
                    .map_err(store_error)
            }

            async fn by_id(&self, id: &str) -> Result<Option<UserRecord>, UserStoreError> {
                let row = sqlx::query(BY_ID)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(store_error)?;
                row.as_ref()
                    .map(Self::record_from_row)
                    .transpose()
                    .map_err(store_error)
            }

            async fn set_password_hash(
                &self,
                id: &str,
                hash: &str,
                changed_at: DateTime<Utc>,
            ) -> Result<bool, UserStoreError> {
                let done = sqlx::query(SET_PASSWORD_HASH)
                    .bind(hash)
                    .bind(changed_at)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(store_error)?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_admin(&self, id: &str, admin: bool) -> Result<bool, UserStoreError> {
                self.update_flag(SET_ADMIN, id, admin).await
            }

            async fn set_email(&self, id: &str, email: &Email) -> Result<bool, UserStoreError> {
                let done = sqlx::query(SET_EMAIL)
                    .bind(email.as_str())
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(insert_error)?;
                Ok(done.rows_affected() > 0)
            }

            async fn list(&self, limit: u32, offset: u32) -> Result<Vec<User>, UserStoreError> {
                let (limit, offset) = page(limit, offset);
                let rows = sqlx::query(LIST)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(store_error)?;
                Self::users_from_rows(&rows)
            }

            async fn set_email_verified(
                &self,
                id: &str,
                verified: bool,
            ) -> Result<bool, UserStoreError> {
                self.update_flag(SET_EMAIL_VERIFIED, id, verified).await
            }

            async fn set_disabled(&self, id: &str, disabled: bool) -> Result<bool, UserStoreError> {
                self.update_flag(SET_DISABLED, id, disabled).await
            }

            async fn delete(&self, id: &str) -> Result<bool, UserStoreError> {
                let done = sqlx::query(DELETE)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(store_error)?;
                Ok(done.rows_affected() > 0)
            }

            async fn change_email(
                &self,
                id: &str,
                from: &Email,
                to: &Email,
                verified: bool,
            ) -> Result<bool, UserStoreError> {
                let done = sqlx::query(CHANGE_EMAIL)
                    .bind(to.as_str())
                    .bind(verified)
                    .bind(id)
                    .bind(from.as_str())
                    .execute(&self.pool)
                    .await
                    .map_err(insert_error)?;
                Ok(done.rows_affected() > 0)
            }

            async fn list_after(
                &self,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<User>, UserStoreError> {
                // Every id is greater than the empty string.
                let rows = sqlx::query(LIST_AFTER)
                    .bind(after.unwrap_or(""))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(store_error)?;
                Self::users_from_rows(&rows)
            }

            async fn count(&self) -> Result<u64, UserStoreError> {
                let row = sqlx::query(COUNT)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(store_error)?;
                count_from(row.try_get("n").map_err(store_error)?)
            }

            async fn ping(&self) -> Result<(), UserStoreError> {
                sqlx::query(PING)
                    .execute(&self.pool)
                    .await
                    .map_err(store_error)?;
                Ok(())
            }
        }
    };
}

/// User store on SQLite (the embedded default).
#[cfg(feature = "sqlite")]
#[derive(Debug, Clone)]
pub struct SqliteUserStore {
    pool: SqlitePool,
}

#[cfg(feature = "sqlite")]
impl SqliteUserStore {
    /// Wraps a pool; call [`SqliteUserStore::migrate`] once before use.
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// Creates or updates the `users` table. Safe to run on a database other crates migrate
    /// too: their migrations are ignored, ours use versions 3000 and up.
    pub async fn migrate(&self) -> Result<(), UserStoreError> {
        let mut migrator = sqlx::migrate!("migrations/sqlite");
        migrator.set_ignore_missing(true);
        run_alongside_others(|| migrator.run(&self.pool))
            .await
            .map_err(migrate_error)
    }
}

#[cfg(feature = "sqlite")]
impl_user_store!(SqliteUserStore, SqlitePool, sqlx::sqlite::SqliteRow);

/// User store on PostgreSQL (shared by every node of a deployment).
#[cfg(feature = "postgres")]
#[derive(Debug, Clone)]
pub struct PostgresUserStore {
    pool: PgPool,
}

#[cfg(feature = "postgres")]
impl PostgresUserStore {
    /// Wraps a pool; call [`PostgresUserStore::migrate`] once before use.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Creates or updates the `users` table. Nodes starting together are serialized by the
    /// migrator's advisory lock; other crates' migrations on the same database are ignored.
    pub async fn migrate(&self) -> Result<(), UserStoreError> {
        let mut migrator = sqlx::migrate!("migrations/postgres");
        migrator.set_ignore_missing(true);
        run_alongside_others(|| migrator.run(&self.pool))
            .await
            .map_err(migrate_error)
    }
}

#[cfg(feature = "postgres")]
impl_user_store!(PostgresUserStore, PgPool, sqlx::postgres::PgRow);
