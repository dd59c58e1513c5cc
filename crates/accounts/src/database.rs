//! Opening the account database from a URL.

#[cfg(feature = "sqlite")]
use std::path::Path;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "sqlite")]
use ringfence_keyring::private_files;
#[cfg(feature = "sqlite")]
use ringfence_sessions::migrations::is_sqlite_busy;
#[cfg(feature = "postgres")]
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
#[cfg(feature = "sqlite")]
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
#[cfg(feature = "postgres")]
use sqlx::PgPool;
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;

use crate::factors::FactorStore;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::sql::store_error;
use crate::tokens::{MailTokenStore, TokenStoreError};
use crate::{
    AttemptStore, AttemptStoreError, PasskeyStore, PasskeyStoreError, UserStore, UserStoreError,
};

/// How long SQLite waits for a lock held by another connection or process before failing.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening a PostgreSQL connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a query waits for a free pooled connection before the store counts as unavailable.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The URL schemes of each backend, with the cargo feature that builds it in and its name.
const BACKENDS: [(&[&str], bool, &str, &str); 3] = [
    (&["sqlite"], cfg!(feature = "sqlite"), "sqlite", "SQLite"),
    (
        &["postgres", "postgresql"],
        cfg!(feature = "postgres"),
        "postgres",
        "PostgreSQL",
    ),
    (
        &["mongodb"],
        cfg!(feature = "mongodb"),
        "mongodb",
        "MongoDB",
    ),
];

/// The schemes this build opens, for error messages: `sqlite://, postgres:// or …`.
fn accepted_schemes() -> String {
    let schemes: Vec<String> = BACKENDS
        .iter()
        .filter(|(_, built, _, _)| *built)
        .flat_map(|(schemes, _, _, _)| schemes.iter().map(|s| format!("{s}://")))
        .collect();
    match schemes.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// A connection pool to the account database: SQLite (cargo feature `sqlite`), PostgreSQL
/// (`postgres`) or MongoDB (`mongodb`).
#[derive(Debug, Clone)]
pub enum Database {
    /// An embedded SQLite file (WAL mode).
    #[cfg(feature = "sqlite")]
    Sqlite(SqlitePool),
    /// A PostgreSQL server.
    #[cfg(feature = "postgres")]
    Postgres(PgPool),
    /// A MongoDB server (see [`crate::mongo`]).
    #[cfg(feature = "mongodb")]
    Mongo(crate::mongo::MongoDatabase),
}

/// How often opening a SQLite file that another process holds busy is tried.
#[cfg(feature = "sqlite")]
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
            #[cfg(feature = "sqlite")]
            Some("sqlite") => Self::connect_sqlite(url).await,
            #[cfg(feature = "postgres")]
            Some("postgres" | "postgresql") => Self::connect_postgres(url).await,
            #[cfg(feature = "mongodb")]
            Some("mongodb") => Ok(Database::Mongo(
                crate::mongo::MongoDatabase::connect(url).await?,
            )),
            Some(other) => Err(UserStoreError::InvalidUrl(unsupported(other))),
            None => Err(UserStoreError::InvalidUrl(format!(
                "the database URL must start with {}",
                accepted_schemes()
            ))),
        }
    }

    #[cfg(feature = "sqlite")]
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

    #[cfg(feature = "postgres")]
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
            #[cfg(feature = "sqlite")]
            Database::Sqlite(pool) => {
                let store = crate::SqliteUserStore::new(pool.clone());
                store.migrate().await?;
                Arc::new(store)
            }
            #[cfg(feature = "postgres")]
            Database::Postgres(pool) => {
                let store = crate::PostgresUserStore::new(pool.clone());
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
            #[cfg(feature = "sqlite")]
            Database::Sqlite(pool) => {
                let store = crate::SqliteAttemptStore::new(pool.clone());
                store.migrate().await?;
                Arc::new(store)
            }
            #[cfg(feature = "postgres")]
            Database::Postgres(pool) => {
                let store = crate::PostgresAttemptStore::new(pool.clone());
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
    pub async fn passkey_store(&self) -> Result<Arc<dyn PasskeyStore>, PasskeyStoreError> {
        Ok(match self {
            #[cfg(feature = "sqlite")]
            Database::Sqlite(pool) => {
                let store = crate::SqlitePasskeyStore::new(pool.clone());
                store.migrate().await?;
                Arc::new(store)
            }
            #[cfg(feature = "postgres")]
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
            #[cfg(feature = "sqlite")]
            Database::Sqlite(pool) => {
                let store = crate::SqliteMailTokenStore::new(pool.clone());
                store.migrate().await?;
                Arc::new(store)
            }
            #[cfg(feature = "postgres")]
            Database::Postgres(pool) => {
                let store = crate::PostgresMailTokenStore::new(pool.clone());
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
            #[cfg(feature = "sqlite")]
            Database::Sqlite(pool) => {
                let store = crate::SqliteFactorStore::new(pool.clone());
                store.migrate().await?;
                Arc::new(store)
            }
            #[cfg(feature = "postgres")]
            Database::Postgres(pool) => {
                let store = crate::PostgresFactorStore::new(pool.clone());
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
    #[cfg(feature = "sqlite")]
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match self {
            Database::Sqlite(pool) => Some(pool),
            // Unreachable in a build with SQLite alone.
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The PostgreSQL pool.
    #[cfg(feature = "postgres")]
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match self {
            Database::Postgres(pool) => Some(pool),
            // Unreachable in a build with PostgreSQL alone.
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The MongoDB database.
    #[cfg(feature = "mongodb")]
    pub fn mongo(&self) -> Option<&crate::mongo::MongoDatabase> {
        match self {
            Database::Mongo(db) => Some(db),
            // Unreachable in a build with MongoDB alone.
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// `"sqlite"`, `"postgres"` or `"mongodb"`, for logs and status pages.
    pub fn backend(&self) -> &'static str {
        match self {
            #[cfg(feature = "sqlite")]
            Database::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Database::Postgres(_) => "postgres",
            #[cfg(feature = "mongodb")]
            Database::Mongo(_) => "mongodb",
        }
    }

    /// Closes the pool, waiting for connections in use to be returned (graceful shutdown).
    pub async fn close(&self) {
        match self {
            #[cfg(feature = "sqlite")]
            Database::Sqlite(pool) => pool.close().await,
            #[cfg(feature = "postgres")]
            Database::Postgres(pool) => pool.close().await,
            #[cfg(feature = "mongodb")]
            Database::Mongo(db) => db.close().await,
        }
    }
}

/// Why `scheme` (lowercase) is refused: a backend this build leaves out names its cargo
/// feature; anything else lists what is accepted. Never repeats more than a short scheme.
fn unsupported(scheme: &str) -> String {
    let left_out = BACKENDS
        .iter()
        .find(|(schemes, built, _, _)| !built && schemes.contains(&scheme));
    match left_out {
        Some((_, _, feature, name)) => format!(
            "this build has no {name} support (the cargo feature `{feature}` of ringfence-accounts)"
        ),
        None if !scheme.is_empty() && scheme.len() <= 32 => {
            format!("unsupported scheme {scheme:?}; use {}", accepted_schemes())
        }
        None => format!("the database URL must start with {}", accepted_schemes()),
    }
}

/// Makes the SQLite file at `path` readable by its owner only, before SQLite opens it.
///
/// SQLite creates a database with mode `0644` (less the umask), and its `-wal`, `-shm` and
/// `-journal` files with the database's own mode. So the database is created here first, empty
/// (an empty file is an empty database) and `0600`, and an existing one, with its companions,
/// is tightened when group or others could read it (with a warning: the data was exposed).
/// In-memory databases have no file.
#[cfg(feature = "sqlite")]
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
            for (schemes, built, _, _) in BACKENDS {
                assert_eq!(msg.contains(&format!("{}://", schemes[0])), built, "{msg}");
            }
            assert!(!msg.contains("hunter2"), "{msg}");
        }
    }

    #[tokio::test]
    async fn a_backend_left_out_of_the_build_names_its_cargo_feature() {
        for (schemes, built, feature, _) in BACKENDS {
            if built {
                continue;
            }
            for scheme in schemes {
                let url = format!("{scheme}://user:hunter2@127.0.0.1:1/db");
                let err = Database::connect(&url).await.unwrap_err();
                let msg = err.to_string();
                assert!(matches!(err, UserStoreError::InvalidUrl(_)), "{err:?}");
                assert!(msg.contains(&format!("cargo feature `{feature}`")), "{msg}");
                assert!(!msg.contains("hunter2"), "{msg}");
            }
        }
    }

    #[cfg(feature = "sqlite")]
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

    #[cfg(feature = "postgres")]
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
