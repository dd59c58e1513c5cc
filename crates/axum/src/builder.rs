//! [`RingfenceBuilder`]: every service ringfence needs, built from one description of where
//! things are stored, so that the wiring cannot be half done.
//!
//! Put together by hand, an app has to pass one clock to three services, the key ring to two,
//! start the key ring's refresh task and keep it, remember the throttle, and serve with the
//! client's address; each of those, forgotten, fails silently (keys never roll over on other
//! nodes, passwords can be guessed at full speed, every client shares one throttle). The
//! builder makes them impossible to forget:
//!
//! - there is no `build` until storage is chosen ([`RingfenceBuilder::embedded`],
//!   [`RingfenceBuilder::shared`] or [`RingfenceBuilder::postgres`]): a compile error, not a
//!   runtime surprise;
//! - one clock, one key ring, the throttle always on, mail tokens and second factors wired;
//! - the key ring's refresh runs for as long as the [`Ringfence`] lives (it ends by itself with
//!   the last clone), so there is no handle to lose;
//! - a [`Ringfence`] from the builder refuses, loudly, to run without the client's address
//!   (see [`crate::serve`]), since per-address throttling depends on it.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let ringfence = ringfence_axum::Ringfence::builder()
//!     .embedded("app-data")
//!     .build()
//!     .await?;
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::Arc;
#[cfg(feature = "redis")]
use std::time::Duration;

#[cfg(feature = "redis")]
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ringfence_accounts::{
    Accounts, AttemptStore, Database, MailTokenStore, PasswordHasher, PasswordPolicy,
    ThrottlePolicy,
};
#[cfg(feature = "redis")]
use ringfence_accounts::{RedisAttemptStore, RedisMailTokenStore};
#[cfg(feature = "postgres")]
use ringfence_keyring::PostgresKeyRepository;
#[cfg(feature = "redis")]
use ringfence_keyring::RedisKeyRepository;
#[cfg(feature = "sqlite")]
use ringfence_keyring::{private_files, DirectoryKeyRepository};
use ringfence_keyring::{KeyRepository, KeyRing, KeyRingConfig, SharedClock, SystemClock};
#[cfg(feature = "postgres")]
use ringfence_sessions::PostgresSessionStore;
#[cfg(feature = "redis")]
use ringfence_sessions::RedisSessionStore;
#[cfg(feature = "sqlite")]
use ringfence_sessions::SqliteSessionStore;
use ringfence_sessions::{SessionConfig, SessionManager, SessionStore};

use crate::client::TrustedProxies;
use crate::layer::Ringfence;
use crate::public_url::PublicUrl;
use crate::recent::StepUpSettings;

/// How long a store may take to answer at start before the build gives up with its name.
#[cfg(feature = "redis")]
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The Redis key prefix the builder uses (the same as `ringfence serve`'s default), so an app
/// and a `ringfence serve` fleet on one Redis share keys and sessions.
pub const DEFAULT_REDIS_PREFIX: &str = "ringfence:";

/// Storage not chosen yet: [`RingfenceBuilder::build`] does not exist in this state.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStorage;

/// Storage chosen: the builder can build.
#[derive(Debug, Clone)]
pub struct Storage(Backend);

#[derive(Debug, Clone)]
enum Backend {
    /// One node: key files and a SQLite database in a directory.
    #[cfg(feature = "sqlite")]
    Embedded(PathBuf),
    /// A fleet: keys, sessions, throttle counters and mail tokens in Redis, accounts in a
    /// database every node reaches.
    #[cfg(feature = "redis")]
    Shared { redis: String, database: String },
    /// A fleet without Redis: everything in one PostgreSQL database.
    #[cfg(feature = "postgres")]
    Postgres(String),
}

/// Builds a [`Ringfence`]; start with [`Ringfence::builder`].
#[derive(Clone)]
#[must_use = "a builder does nothing until `build` is awaited"]
pub struct RingfenceBuilder<S = NoStorage> {
    storage: S,
    clock: Option<SharedClock>,
    keyring: KeyRingConfig,
    sessions: SessionConfig,
    password_policy: PasswordPolicy,
    throttle: ThrottlePolicy,
    trusted_proxies: TrustedProxies,
    public_url: Option<PublicUrl>,
    step_up: StepUpSettings,
    redis_prefix: String,
}

impl<S: std::fmt::Debug> std::fmt::Debug for RingfenceBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingfenceBuilder")
            .field("storage", &self.storage)
            .field("keyring", &self.keyring)
            .field("sessions", &self.sessions)
            .field("redis_prefix", &self.redis_prefix)
            .finish_non_exhaustive()
    }
}

/// Why the services could not be built: names the store or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The data directory of an embedded node cannot be created or used.
    #[error("cannot use the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Redis did not answer, or refused.
    #[error("cannot reach Redis: {0}")]
    Redis(String),
    /// The accounts database did not answer, or refused.
    #[error("cannot open the database: {0}")]
    Database(String),
    /// A store answered but could not be prepared (migrations, indexes).
    #[error("cannot prepare the {what}: {detail}")]
    Prepare {
        /// Which store.
        what: &'static str,
        /// The store's error.
        detail: String,
    },
    /// The key ring could not be opened (no key and none may be made, a bad setting).
    #[error("cannot open the key ring: {0}")]
    KeyRing(#[from] ringfence_keyring::KeyRingError),
}

impl Ringfence {
    /// A builder for every service ringfence needs (see [`RingfenceBuilder`]).
    pub fn builder() -> RingfenceBuilder<NoStorage> {
        RingfenceBuilder {
            storage: NoStorage,
            clock: None,
            keyring: KeyRingConfig::default(),
            sessions: SessionConfig::default(),
            password_policy: PasswordPolicy::default(),
            throttle: ThrottlePolicy::default(),
            trusted_proxies: TrustedProxies::none(),
            public_url: None,
            step_up: StepUpSettings::default(),
            redis_prefix: DEFAULT_REDIS_PREFIX.to_owned(),
        }
    }
}

impl RingfenceBuilder<NoStorage> {
    /// One node, everything in `dir` (created `0700`): key files in `dir/keys`, accounts,
    /// sessions, throttle counters and mail tokens in the SQLite database `dir/ringfence.db`.
    #[cfg(feature = "sqlite")]
    pub fn embedded(self, dir: impl Into<PathBuf>) -> RingfenceBuilder<Storage> {
        self.with_storage(Backend::Embedded(dir.into()))
    }

    /// Any number of nodes: keys, sessions, throttle counters and mail tokens in Redis
    /// (`redis://…` or `rediss://…`), accounts in the database at `database_url`
    /// (`postgres://…`; `sqlite://…` only when the nodes share the file).
    #[cfg(feature = "redis")]
    pub fn shared(
        self,
        redis_url: impl Into<String>,
        database_url: impl Into<String>,
    ) -> RingfenceBuilder<Storage> {
        self.with_storage(Backend::Shared {
            redis: redis_url.into(),
            database: database_url.into(),
        })
    }

    /// Any number of nodes on PostgreSQL alone (`postgres://…`): keys, sessions, throttle
    /// counters, mail tokens and accounts in that one database. Every session check reads it,
    /// so a revocation is refused everywhere at once; Redis ([`RingfenceBuilder::shared`])
    /// takes that read off the database.
    #[cfg(feature = "postgres")]
    pub fn postgres(self, database_url: impl Into<String>) -> RingfenceBuilder<Storage> {
        self.with_storage(Backend::Postgres(database_url.into()))
    }

    fn with_storage(self, backend: Backend) -> RingfenceBuilder<Storage> {
        RingfenceBuilder {
            storage: Storage(backend),
            clock: self.clock,
            keyring: self.keyring,
            sessions: self.sessions,
            password_policy: self.password_policy,
            throttle: self.throttle,
            trusted_proxies: self.trusted_proxies,
            public_url: self.public_url,
            step_up: self.step_up,
            redis_prefix: self.redis_prefix,
        }
    }
}

impl<S> RingfenceBuilder<S> {
    /// The clock every service reads (tests pass a `ManualClock`); the system clock otherwise.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Key lifetimes, propagation window, master key (see [`KeyRingConfig`]).
    pub fn keyring_config(mut self, config: KeyRingConfig) -> Self {
        self.keyring = config;
        self
    }

    /// Idle and absolute session timeouts (see [`SessionConfig`]).
    pub fn session_config(mut self, config: SessionConfig) -> Self {
        self.sessions = config;
        self
    }

    /// What a new password must satisfy (see [`PasswordPolicy`]).
    pub fn password_policy(mut self, policy: PasswordPolicy) -> Self {
        self.password_policy = policy;
        self
    }

    /// How failed secret checks are throttled (see [`ThrottlePolicy`]); it is always on.
    pub fn throttle_policy(mut self, policy: ThrottlePolicy) -> Self {
        self.throttle = policy;
        self
    }

    /// The reverse proxies whose `X-Forwarded-For` / `-Proto` are believed.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// Where users reach the app (links in mails, the passkey relying party; `https://` makes
    /// every cookie `Secure`).
    pub fn public_url(mut self, url: PublicUrl) -> Self {
        self.public_url = Some(url);
        self
    }

    /// Recent-authentication window and second-factor rules (see [`StepUpSettings`]).
    pub fn step_up(mut self, settings: StepUpSettings) -> Self {
        self.step_up = settings;
        self
    }

    /// The prefix of every Redis key (default [`DEFAULT_REDIS_PREFIX`]).
    pub fn redis_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.redis_prefix = prefix.into();
        self
    }
}

/// The stores of one deployment, before the services are put on them.
struct Stores {
    keys: Arc<dyn KeyRepository>,
    sessions: Arc<dyn SessionStore>,
    attempts: Arc<dyn AttemptStore>,
    mail_tokens: Arc<dyn MailTokenStore>,
    database: Database,
}

impl RingfenceBuilder<Storage> {
    /// Opens the stores (each must answer within 5 s), opens the key ring and starts its
    /// refresh, and assembles the services. The error names the store at fault.
    pub async fn build(self) -> Result<Ringfence, BuildError> {
        let clock = self.clock.unwrap_or_else(SystemClock::shared);
        let stores = match &self.storage.0 {
            #[cfg(feature = "sqlite")]
            Backend::Embedded(dir) => embedded_stores(dir).await?,
            #[cfg(feature = "redis")]
            Backend::Shared { redis, database } => {
                shared_stores(redis, database, &self.redis_prefix).await?
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(url) => postgres_stores(url).await?,
        };
        let keyring = KeyRing::open(stores.keys, self.keyring, clock.clone()).await?;
        // Detached on purpose: the task holds only a weak reference and ends with the last
        // clone of the ring, which the Ringfence keeps; there is nothing for the app to hold.
        drop(keyring.spawn_refresh());
        let sessions = SessionManager::new(stores.sessions, &keyring, clock.clone(), self.sessions);
        let database = stores.database;
        let users = database.user_store().await.map_err(prepare("user store"))?;
        let factors = database
            .factor_store()
            .await
            .map_err(prepare("second-factor store"))?;
        let passkeys = database
            .passkey_store()
            .await
            .map_err(prepare("passkey store"))?;
        let accounts = Accounts::new(
            users,
            PasswordHasher::default(),
            self.password_policy,
            sessions.clone(),
            clock,
        )
        .with_throttle(stores.attempts, self.throttle)
        .with_mail_tokens(stores.mail_tokens)
        .with_factors(factors, &keyring)
        .with_passkey_store(passkeys);
        let mut ringfence =
            Ringfence::with_trusted_proxies(keyring, sessions, accounts, self.trusted_proxies)
                .with_step_up(self.step_up)
                .requiring_client_address();
        if let Some(url) = self.public_url {
            ringfence = ringfence.with_public_url(url);
        }
        Ok(ringfence)
    }
}

/// The error of a store that answered but could not be prepared: names it, keeps its words.
fn prepare<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> BuildError {
    move |e| BuildError::Prepare {
        what,
        detail: e.to_string(),
    }
}

/// The stores of a deployment without Redis: keys and sessions as given, throttle counters and
/// mail tokens in the accounts database.
async fn in_the_database(
    database: Database,
    keys: Arc<dyn KeyRepository>,
    sessions: Arc<dyn SessionStore>,
) -> Result<Stores, BuildError> {
    let attempts = database
        .attempt_store()
        .await
        .map_err(prepare("sign-in attempt store"))?;
    let mail_tokens = database
        .mail_token_store()
        .await
        .map_err(prepare("mail token store"))?;
    Ok(Stores {
        keys,
        sessions,
        attempts,
        mail_tokens,
        database,
    })
}

#[cfg(feature = "sqlite")]
async fn embedded_stores(dir: &std::path::Path) -> Result<Stores, BuildError> {
    private_files::create_dir(dir).map_err(|source| BuildError::DataDir {
        path: dir.to_owned(),
        source,
    })?;
    let keys = DirectoryKeyRepository::new(dir.join("keys")).map_err(prepare("key directory"))?;
    let url = format!("sqlite://{}", dir.join("ringfence.db").display());
    let database = Database::connect(&url)
        .await
        .map_err(|e| BuildError::Database(e.to_string()))?;
    let pool = database
        .sqlite_pool()
        .cloned()
        .ok_or_else(|| BuildError::Database("the embedded database is not SQLite".to_owned()))?;
    let sessions = SqliteSessionStore::new(pool);
    sessions.migrate().await.map_err(prepare("session store"))?;
    in_the_database(database, Arc::new(keys), Arc::new(sessions)).await
}

#[cfg(feature = "redis")]
async fn shared_stores(
    redis_url: &str,
    database_url: &str,
    prefix: &str,
) -> Result<Stores, BuildError> {
    let conn = connect_redis(redis_url).await?;
    let database = Database::connect(database_url)
        .await
        .map_err(|e| BuildError::Database(e.to_string()))?;
    Ok(Stores {
        keys: Arc::new(RedisKeyRepository::new(conn.clone(), prefix)),
        sessions: Arc::new(RedisSessionStore::new(conn.clone(), prefix.to_owned())),
        attempts: Arc::new(RedisAttemptStore::new(conn.clone(), prefix.to_owned())),
        mail_tokens: Arc::new(RedisMailTokenStore::new(conn, prefix.to_owned())),
        database,
    })
}

#[cfg(feature = "postgres")]
async fn postgres_stores(url: &str) -> Result<Stores, BuildError> {
    let database = Database::connect(url)
        .await
        .map_err(|e| BuildError::Database(e.to_string()))?;
    let pool = database.postgres_pool().cloned().ok_or_else(|| {
        BuildError::Database(format!(
            "{} is not a postgres:// URL",
            url.split("://").next().unwrap_or("the URL")
        ))
    })?;
    let keys = PostgresKeyRepository::new(pool.clone());
    keys.migrate().await.map_err(prepare("key tables"))?;
    let sessions = PostgresSessionStore::new(pool);
    sessions.migrate().await.map_err(prepare("session store"))?;
    in_the_database(database, Arc::new(keys), Arc::new(sessions)).await
}

#[cfg(feature = "redis")]
async fn connect_redis(url: &str) -> Result<ConnectionManager, BuildError> {
    let failed = |e: redis::RedisError| BuildError::Redis(e.to_string());
    let client = redis::Client::open(url).map_err(failed)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(CONNECT_TIMEOUT));
    let connect = async {
        let mut conn = ConnectionManager::new_with_config(client, config).await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(conn)
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(failed(e)),
        Err(_) => Err(BuildError::Redis(format!(
            "no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_built_ringfence_refuses_requests_served_without_the_client_address() {
        let dir = tempfile::tempdir().unwrap();
        let ringfence = Ringfence::builder()
            .embedded(dir.path())
            .build()
            .await
            .unwrap();
        let app = Router::new()
            .route("/", get(|| async { "reached" }))
            .layer(ringfence.layer());
        let response = app
            .clone()
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&body).contains("into_make_service_with_connect_info"));

        let peer: std::net::SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let mut request = Request::get("/").body(Body::empty()).unwrap();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn an_unreachable_redis_is_a_clear_error_naming_redis() {
        let port = ringfence_testkit::free_port();
        let error = Ringfence::builder()
            .shared(format!("redis://127.0.0.1:{port}"), "sqlite::memory:")
            .build()
            .await
            .unwrap_err();
        assert!(matches!(error, BuildError::Redis(_)), "{error}");
        assert!(
            error.to_string().starts_with("cannot reach Redis"),
            "{error}"
        );
    }
}
