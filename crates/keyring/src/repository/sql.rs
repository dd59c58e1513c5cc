//! Key documents in the SQL database the accounts use (PostgreSQL for a fleet, SQLite alone).
//!
//! ```text
//! ringfence_keyring(id = 1, revision)       one row: the ring revision
//! ringfence_keys(id text primary key, document text)
//! ```
//!
//! Compare-and-set is `UPDATE ringfence_keyring SET revision = revision + 1 WHERE revision = $1`
//! inside the transaction that writes the documents: the row lock (PostgreSQL) or the database
//! write lock (SQLite) serializes writers, and a writer that lost sees zero rows updated.

use async_trait::async_trait;

use super::{KeyRepository, RawDocument, RepositoryError, Revision, RingSnapshot};
use crate::document::KeyDocument;

const CREATE_REVISION: &str = "CREATE TABLE IF NOT EXISTS ringfence_keyring (id INTEGER PRIMARY KEY, revision BIGINT NOT NULL)";
const CREATE_KEYS: &str =
    "CREATE TABLE IF NOT EXISTS ringfence_keys (id TEXT PRIMARY KEY, document TEXT NOT NULL)";
const SEED_REVISION: &str =
    "INSERT INTO ringfence_keyring (id, revision) VALUES (1, 0) ON CONFLICT (id) DO NOTHING";
const SELECT_REVISION: &str = "SELECT revision FROM ringfence_keyring WHERE id = 1";
const SELECT_KEYS: &str = "SELECT id, document FROM ringfence_keys ORDER BY id";
const BUMP_REVISION: &str =
    "UPDATE ringfence_keyring SET revision = revision + 1 WHERE id = 1 AND revision = $1";
const UPSERT_KEY: &str = "INSERT INTO ringfence_keys (id, document) VALUES ($1, $2) \
     ON CONFLICT (id) DO UPDATE SET document = excluded.document";

fn unavailable(error: sqlx::Error) -> RepositoryError {
    RepositoryError::Unavailable(error.to_string())
}

fn to_revision(value: i64) -> Result<Revision, RepositoryError> {
    Revision::try_from(value)
        .map_err(|_| RepositoryError::Corrupt(format!("negative key ring revision {value}")))
}

/// One implementation for both databases: the SQL above is portable between them, only the
/// pool type differs.
macro_rules! sql_key_repository {
    ($(#[$doc:meta])* $name:ident, $pool:ty, $label:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            pool: $pool,
        }

        impl $name {
            /// A repository on `pool`; call [`Self::migrate`] once before use.
            pub fn new(pool: $pool) -> Self {
                Self { pool }
            }

            /// Creates the tables if they do not exist (idempotent).
            pub async fn migrate(&self) -> Result<(), RepositoryError> {
                for statement in [CREATE_REVISION, CREATE_KEYS, SEED_REVISION] {
                    sqlx::query(statement)
                        .execute(&self.pool)
                        .await
                        .map_err(unavailable)?;
                }
                Ok(())
            }
        }

        #[async_trait]
        impl KeyRepository for $name {
            async fn load(&self) -> Result<RingSnapshot, RepositoryError> {
                let mut tx = self.pool.begin().await.map_err(unavailable)?;
                let revision: Option<i64> = sqlx::query_scalar(SELECT_REVISION)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                let rows: Vec<(String, String)> = sqlx::query_as(SELECT_KEYS)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)?;
                Ok(RingSnapshot {
                    revision: to_revision(revision.unwrap_or(0))?,
                    documents: rows
                        .into_iter()
                        .map(|(id, document)| RawDocument {
                            name: format!("ringfence_keys row {id}"),
                            bytes: document.into_bytes(),
                        })
                        .collect(),
                })
            }

            async fn revision(&self) -> Result<Revision, RepositoryError> {
                let revision: Option<i64> = sqlx::query_scalar(SELECT_REVISION)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(unavailable)?;
                to_revision(revision.unwrap_or(0))
            }

            async fn compare_and_write(
                &self,
                expected: Revision,
                documents: &[KeyDocument],
            ) -> Result<bool, RepositoryError> {
                let expected = i64::try_from(expected)
                    .map_err(|_| RepositoryError::Corrupt("revision out of range".to_owned()))?;
                let mut tx = self.pool.begin().await.map_err(unavailable)?;
                let bumped = sqlx::query(BUMP_REVISION)
                    .bind(expected)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?
                    .rows_affected();
                if bumped != 1 {
                    return Ok(false);
                }
                for doc in documents {
                    sqlx::query(UPSERT_KEY)
                        .bind(doc.id.to_string())
                        .bind(doc.to_json())
                        .execute(&mut *tx)
                        .await
                        .map_err(unavailable)?;
                }
                tx.commit().await.map_err(unavailable)?;
                Ok(true)
            }

            fn describe(&self) -> String {
                $label.to_owned()
            }
        }
    };
}

#[cfg(feature = "sqlite")]
sql_key_repository!(
    /// Key documents in SQLite (single node: the embedded database).
    SqliteKeyRepository,
    sqlx::SqlitePool,
    "sqlite ringfence_keys"
);
#[cfg(feature = "postgres")]
sql_key_repository!(
    /// Key documents in PostgreSQL, shared by a fleet.
    PostgresKeyRepository,
    sqlx::PgPool,
    "postgres ringfence_keys"
);
