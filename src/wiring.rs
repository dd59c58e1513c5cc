//! Opens the stores the options name and builds the services on them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ringfence_accounts::{Accounts, Database, PasswordHasher, PasswordPolicy};
use ringfence_keyring::{
    DirectoryKeyRepository, KeyRepository, KeyRing, KeyRingConfig, MasterKey,
    PostgresKeyRepository, RedisKeyRepository, SharedClock, SystemClock,
};
use ringfence_sessions::{
    RedisSessionStore, SessionConfig, SessionManager, SessionStore, SqliteSessionStore,
};

use crate::cli::StoreArgs;

/// Store calls that take longer than this fail (answered `503`), so a hung Redis cannot hang
/// requests.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything a subcommand needs.
pub struct Services {
    pub keyring: KeyRing,
    pub sessions: SessionManager,
    pub accounts: Accounts,
    pub clock: SharedClock,
    pub database: Database,
}

/// A failure to start, reported as one line.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn fail(what: &str) -> impl Fn(String) -> StartError + '_ {
    move |e| StartError(format!("{what}: {e}"))
}

async fn connect_redis(url: &str) -> Result<ConnectionManager, StartError> {
    let client =
        redis::Client::open(url).map_err(|e| StartError(format!("invalid --redis URL: {e}")))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT))
        .set_number_of_retries(2);
    let connect = ConnectionManager::new_with_config(client, config);
    match tokio::time::timeout(REDIS_TIMEOUT * 3, connect).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(StartError(format!(
            "cannot reach Redis at {}: {e}",
            redact(url)
        ))),
        Err(_) => Err(StartError(format!(
            "cannot reach Redis at {}: timed out",
            redact(url)
        ))),
    }
}

/// A URL with any password replaced, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// Opens every store and builds the services.
pub async fn open(
    args: &StoreArgs,
    keyring_config: KeyRingConfig,
    session_config: SessionConfig,
) -> Result<Services, StartError> {
    if args.redis_cluster.is_some() {
        return Err(StartError(
            "--redis-cluster is not supported yet; use --redis with a single Redis server"
                .to_owned(),
        ));
    }
    if args.redis_ca_file.is_some() {
        return Err(StartError(
            "--redis-ca-file is not supported yet".to_owned(),
        ));
    }
    let clock = SystemClock::shared();
    std::fs::create_dir_all(&args.data_dir).map_err(|e| {
        StartError(format!(
            "cannot create data dir {}: {e}",
            args.data_dir.display()
        ))
    })?;
    let master_key = match &args.master_key_file {
        Some(path) => Some(MasterKey::from_file(path).map_err(|e| StartError(e.to_string()))?),
        None => None,
    };
    let previous_master_keys = args
        .previous_master_key_files
        .iter()
        .map(|path| MasterKey::from_file(path).map_err(|e| StartError(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let keyring_config = KeyRingConfig {
        master_key,
        previous_master_keys,
        ..keyring_config
    };

    let redis = match &args.redis {
        Some(url) => Some(connect_redis(url).await?),
        None => None,
    };
    let embedded_db = args.data_dir.join("ringfence.db");
    let database_url = args
        .database
        .clone()
        .unwrap_or_else(|| sqlite_url(&embedded_db));
    let database = Database::connect(&database_url)
        .await
        .map_err(|e| fail("cannot open the database")(e.to_string()))?;
    let users = database
        .user_store()
        .await
        .map_err(|e| fail("cannot prepare the user store")(e.to_string()))?;

    // Keys live where every node reaches them: Redis when there is one, else the shared
    // PostgreSQL, else (a single node) files in the data dir.
    let key_repository: Arc<dyn KeyRepository> = match (&redis, database.postgres_pool()) {
        (Some(conn), _) => Arc::new(RedisKeyRepository::new(conn.clone(), &args.redis_prefix)),
        (None, Some(pool)) => {
            let repository = PostgresKeyRepository::new(pool.clone());
            repository
                .migrate()
                .await
                .map_err(|e| fail("cannot prepare the key tables")(e.to_string()))?;
            Arc::new(repository)
        }
        (None, None) => Arc::new(
            DirectoryKeyRepository::new(args.data_dir.join("keys"))
                .map_err(|e| StartError(e.to_string()))?,
        ),
    };
    let keyring = KeyRing::open(key_repository, keyring_config, clock.clone())
        .await
        .map_err(|e| StartError(format!("cannot open the key ring: {e}")))?;

    let session_store: Arc<dyn SessionStore> = match &redis {
        Some(conn) => Arc::new(RedisSessionStore::new(
            conn.clone(),
            args.redis_prefix.clone(),
        )),
        None => {
            // Without Redis, sessions live in the embedded SQLite: the accounts database when it
            // is SQLite, otherwise a SQLite file in the data dir (single node).
            let pool = match database.sqlite_pool() {
                Some(pool) => pool.clone(),
                None => Database::connect(&sqlite_url(&embedded_db))
                    .await
                    .map_err(|e| fail("cannot open the embedded session database")(e.to_string()))?
                    .sqlite_pool()
                    .cloned()
                    .ok_or_else(|| {
                        StartError("embedded session database is not SQLite".to_owned())
                    })?,
            };
            let store = SqliteSessionStore::new(pool);
            store
                .migrate()
                .await
                .map_err(|e| fail("cannot prepare the session store")(e.to_string()))?;
            Arc::new(store)
        }
    };
    let sessions = SessionManager::new(session_store, &keyring, clock.clone(), session_config);
    let hasher = PasswordHasher::default();
    let accounts = Accounts::new(
        users,
        hasher,
        PasswordPolicy::default(),
        sessions.clone(),
        clock.clone(),
    );
    Ok(Services {
        keyring,
        sessions,
        accounts,
        clock,
        database,
    })
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("redis://user:secret@127.0.0.1:6379/"),
            "redis://…@127.0.0.1:6379/"
        );
        assert_eq!(redact("redis://127.0.0.1:6379/"), "redis://127.0.0.1:6379/");
    }
}
