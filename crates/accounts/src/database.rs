//! Opening the account database from a URL.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ringfence_keyring::private_files;
use ringfence_sessions::migrations::is_sqlite_busy;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::factors::{FactorStore, PostgresFactorStore, SqliteFactorStore};
use crate::sql::store_error;
use crate::tokens::{
    MailTokenStore, PostgresMailTokenStore, SqliteMailTokenStore, TokenStoreError,
};
use crate::{
    AttemptStore, AttemptStoreError, PostgresAttemptStore, PostgresUserStore, SqliteAttemptStore,
    SqliteUserStore, UserStore, UserStoreError,
};

/// How long SQLite waits for a lock held by another connection or process before failing.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening a PostgreSQL connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a query waits for a free pooled connection before the store counts as unavailable.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(feature = "mongodb")]
const ACCEPTED_SCHEMES: &str = "sqlite://, postgres://, postgresql:// or mongodb://";
#[cfg(not(feature = "mongodb"))]
const ACCEPTED_SCHEMES: &str = "sqlite://, postgres:// or postgresql://";

/// A connection pool to the account database: SQLite, PostgreSQL or (cargo feature `mongodb`)
/// MongoDB.
#[derive(Debug, Clone)]
pub enum Database {
    /// An embedded SQLite file (WAL mode).
    Sqlite(SqlitePool),
    /// A PostgreSQL server.
    Postgres(PgPool),
    /// A MongoDB server (see [`crate::mongo`]).
    #[cfg(feature = "mongodb")]
    Mongo(crate::mongo::MongoDatabase),
}

/// How often opening a SQLite file that another process holds busy is tried.
const CONNECT_ATTEMPTS: u32 = 10;

impl Database {
    /// Opens a pool for `url`: `sqlite://PATH` (the file is created when missing) or
    /// `postgres://…` / `postgresql://…` (the server must answer within 5 s), or with the
    /// feature `mongodb`, `mongodb://…` (likewise).
    ///
    /// Error messages never repeat the URL, which may hold a password.
    pub async fn connect(url: &str) -> Result<Database, UserStoreError> {
        let scheme = url
            .split_once(':')
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("sqlite") => Self::connect_sqlite(url).await,
            Some("postgres" | "postgresql") => Self::connect_postgres(url).await,
            #[cfg(feature = "mongodb")]
            Some("mongodb") => Ok(Database::Mongo(
                crate::mongo::MongoDatabase::connect(url).await?,
            )),
            #[cfg(not(feature = "mongodb"))]
            Some("mongodb") => Err(UserStoreError::InvalidUrl(
                "this build has no MongoDB support (the cargo feature `mongodb` of ringfence-accounts)".to_owned(),
            )),
            Some(other) if !other.is_empty() && other.len() <= 32 => {
                Err(UserStoreError::InvalidUrl(format!(
                    "unsupported scheme {other:?}; use {ACCEPTED_SCHEMES}"
                )))
            }
            _ => Err(UserStoreError::InvalidUrl(format!(
                "the database URL must start with {ACCEPTED_SCHEMES}"
            ))),
        }
    }

    async fn connect_sqlite(url: &str) -> Result<Database, UserStoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| UserStoreError::InvalidUrl(format!("SQLite URL: {e}")))?;
        make_private(url, options.get_filename())?;
        let options = options
            .create_if_missing(true)
            // WAL lets readers proceed while one connection writes; NORMAL sync is durable
            // across application crashes in WAL mode and much cheaper than FULL.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .foreign_keys(true);
        // Processes opening one new file together (a node and admin commands) race to switch it
        // to WAL, which SQLite's busy timeout does not wait out: the loser tries again.
        let mut attempt = 1;
        let pool = loop {
            let connected = SqlitePoolOptions::new()
                .acquire_timeout(ACQUIRE_TIMEOUT)
                // The database is a file in this process: there is no connection that could
                // have dropped, and the default ping before every checkout is one more hand-off
                // to the connection's worker thread on every query.
                .test_before_acquire(false)
                .connect_with(options.clone())
                .await;
            match connected {
                Err(e) if attempt < CONNECT_ATTEMPTS && is_sqlite_busy(&e) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20 * u64::from(attempt)))
                        .await;
                    attempt += 1;
                }
                other => break other.map_err(store_error)?,
            }
        };
        Ok(Database::Sqlite(pool))
    }

    async fn connect_postgres(url: &str) -> Result<Database, UserStoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| UserStoreError::InvalidUrl(format!("PostgreSQL URL: {e}")))?;
        let connecting = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options);
        // sqlx has no separate connect timeout for PostgreSQL; bound the first connection here.
        let pool = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| {
                UserStoreError::Unavailable(format!(
                    "PostgreSQL did not answer within {} s",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })?
            .map_err(store_error)?;
        Ok(Database::Postgres(pool))
    }

    /// The user store on this database, with its migrations applied.
    pub async fn user_store(&self) -> Result<Arc<dyn UserStore>, UserStoreError> {
        Ok(match self {
            Database::Sqlite(pool) => {
                let store = SqliteUserStore::new(pool.clone());
                store.migrate().await?;
                Arc::new(store)
            }
            Database::Postgres(pool) => {
                let store = PostgresUserStore::new(pool.clone());
                store.migrate().await?;
                Arc::new(store)
            }
            #[cfg(feature = "mongodb")]
            Database::Mongo(db) => {
                let store = crate::mongo::MongoUserStore::new(db);
                store.migrate().await?;
                Arc::new(store)
            }
        })
    }

    /// The sign-in attempt counters on this database, with the migrations applied: the store
    /// for a node without Redis (see [`crate::throttle`]).
    pub async fn attempt_store(&self) -> Result<Arc<dyn AttemptStore>, AttemptStoreError> {
        Ok(match self {
            Database::Sqlite(pool) => {
                let store = SqliteAttemptStore::new(pool.clone());
                store.migrate().await?;
                Arc::new(store)
            }
            Database::Postgres(pool) => {
                let store = PostgresAttemptStore::new(pool.clone());
                store.migrate().await?;
                Arc::new(store)
            }
            #[cfg(feature = "mongodb")]
            Database::Mongo(db) => {
                let store = crate::mongo::MongoAttemptStore::new(db);
                store.migrate().await?;
                Arc::new(store)
            }
        })
    }

    /// The passkey store on this database, with the migrations applied (see
    /// [`crate::passkeys`]).
    pub async fn passkey_store(
        &self,
    ) -> Result<Arc<dyn crate::PasskeyStore>, crate::PasskeyStoreError> {
        Ok(match self {
            Database::Sqlite(pool) => {
                let store = crate::SqlitePasskeyStore::new(pool.clone());
                store.migrate().await?;
                Arc::new(store)
            }
            Database::Postgres(pool) => {
                let store = crate::PostgresPasskeyStore::new(pool.clone());
                store.migrate().await?;
                Arc::new(store)
            }
            #[cfg(feature = "mongodb")]
            Database::Mongo(db) => {
                let store = crate::mongo::MongoPasskeyStore::new(db);
                store.migrate().await?;
                Arc::new(store)
            }
        })
    }

    /// The mail-link token store on this database, with the migrations applied: the store for
    /// a node without Redis (see [`crate::tokens`]).
    pub async fn mail_token_store(&self) -> Result<Arc<dyn MailTokenStore>, TokenStoreError> {
        Ok(match self {
            Database::Sqlite(pool) => {
                let store = SqliteMailTokenStore::new(pool.clone());
                store.migrate().await?;
                Arc::new(store)
            }
            Database::Postgres(pool) => {
                let store = PostgresMailTokenStore::new(pool.clone());
                store.migrate().await?;
                Arc::new(store)
            }
            #[cfg(feature = "mongodb")]
            Database::Mongo(db) => {
                let store = crate::mongo::MongoMailTokenStore::new(db);
                store.migrate().await?;
                Arc::new(store)
            }
        })
    }

    /// The second-factor store on this database, with the migrations applied (see
    /// [`crate::factors`]).
    pub async fn factor_store(&self) -> Result<Arc<dyn FactorStore>, UserStoreError> {
        Ok(match self {
            Database::Sqlite(pool) => {
                let store = SqliteFactorStore::new(pool.clone());
                store.migrate().await?;
                Arc::new(store)
            }
            Database::Postgres(pool) => {
                let store = PostgresFactorStore::new(pool.clone());
                store.migrate().await?;
                Arc::new(store)
            }
            #[cfg(feature = "mongodb")]
            Database::Mongo(db) => {
                let store = crate::mongo::MongoFactorStore::new(db);
                store.migrate().await?;
                Arc::new(store)
            }
        })
    }

    /// The SQLite pool, to share the file with other embedded stores (sessions).
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match self {
            Database::Sqlite(pool) => Some(pool),
            _ => None,
        }
    }

    /// The PostgreSQL pool.
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match self {
            Database::Postgres(pool) => Some(pool),
            _ => None,
        }
    }

    /// The MongoDB database.
    #[cfg(feature = "mongodb")]
    pub fn mongo(&self) -> Option<&crate::mongo::MongoDatabase> {
        match self {
            Database::Mongo(db) => Some(db),
            _ => None,
        }
    }

    /// `"sqlite"`, `"postgres"` or `"mongodb"`, for logs and status pages.
    pub fn backend(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres(_) => "postgres",
            #[cfg(feature = "mongodb")]
            Database::Mongo(_) => "mongodb",
        }
    }

    /// Closes the pool, waiting for connections in use to be returned (graceful shutdown).
    pub async fn close(&self) {
        match self {
            Database::Sqlite(pool) => pool.close().await,
            Database::Postgres(pool) => pool.close().await,
            #[cfg(feature = "mongodb")]
            Database::Mongo(db) => db.close().await,
        }
    }
}

/// Makes the SQLite file at `path` readable by its owner only, before SQLite opens it.
///
/// SQLite creates a database with mode `0644` (less the umask), and its `-wal`, `-shm` and
/// `-journal` files with the database's own mode. So the database is created here first, empty
/// (an empty file is an empty database) and `0600`, and an existing one, with its companions,
/// is tightened when group or others could read it (with a warning: the data was exposed).
/// In-memory databases have no file.
fn make_private(url: &str, path: &Path) -> Result<(), UserStoreError> {
    let name = path.to_string_lossy();
    if name == ":memory:" || name.starts_with("file:") || url.contains("mode=memory") {
        return Ok(());
    }
    let failed = |e: std::io::Error| {
        UserStoreError::Unavailable(format!("SQLite file {}: {e}", path.display()))
    };
    // A read-only open of a missing file must keep failing, not find an empty database.
    if !url.contains("mode=ro") {
        private_files::create_file(path).map_err(failed)?;
    }
    let mut companions = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut companion = path.as_os_str().to_owned();
        companion.push(suffix);
        companions.push(companion.into());
    }
    for file in companions {
        private_files::tighten(&file).map_err(failed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rejects_unknown_schemes_without_echoing_the_url() {
        for url in [
            "mysql://root:hunter2@localhost/db",
            "redis://localhost",
            "/var/lib/ringfence/users.db",
            "",
            "users.db",
        ] {
            let err = Database::connect(url).await.unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, UserStoreError::InvalidUrl(_)),
                "{url}: {err:?}"
            );
            assert!(
                msg.contains("sqlite://") && msg.contains("postgres://"),
                "{msg}"
            );
            #[cfg(feature = "mongodb")]
            assert!(msg.contains("mongodb://"), "{msg}");
            assert!(!msg.contains("hunter2"), "{msg}");
        }
    }

    #[tokio::test]
    async fn sqlite_file_is_created_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.db");
        let db = Database::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        assert_eq!(db.backend(), "sqlite");
        assert!(path.exists());
        #[cfg(unix)]
        {
            // Owner only, whatever the umask (finding 4 of issue 13).
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let pool = db.sqlite_pool().unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(timeout, 5000);
        let store = db.user_store().await.unwrap();
        assert_eq!(store.count().await.unwrap(), 0);
        // Migrating twice (a second node, a restart) is a no-op.
        db.user_store().await.unwrap();
        db.close().await;
    }

    #[tokio::test]
    async fn unreachable_postgres_is_unavailable() {
        // Port 1 on loopback: nothing listens there, the connection is refused at once.
        let err = Database::connect("postgres://user:secret@127.0.0.1:1/db")
            .await
            .unwrap_err();
        assert!(matches!(err, UserStoreError::Unavailable(_)), "{err:?}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
