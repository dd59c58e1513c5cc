//! Opens the stores the options name and builds the services on them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{IntoConnectionInfo, ProtocolVersion, TlsCertificates};
use ringfence_accounts::tokens::{MailTokenStore, RedisMailTokenStore};
use ringfence_accounts::{
    Accounts, AttemptStore, Database, MailFlowSettings, PasskeyStore, PasswordHasher,
    PasswordPolicy, RedisAttemptStore, ThrottlePolicy,
};
use ringfence_axum::PublicUrl;
use ringfence_keyring::tracking::{Tracker, TrackingListener};
use ringfence_keyring::{
    private_files, DirectoryKeyRepository, KeyRepository, KeyRing, KeyRingConfig, MasterKey,
    PostgresKeyRepository, RedisKeyRepository, SharedClock, SystemClock,
};
use ringfence_server::mail::{start_mailer, AccountLetters, MailOptions};
use ringfence_sessions::cache::{DEFAULT_CAPACITY, DEFAULT_LEASE};
use ringfence_sessions::{
    CachedSessionStore, PostgresSessionStore, RedisSessionStore, SessionCache, SessionConfig,
    SessionManager, SessionStore, SqliteSessionStore,
};

use crate::cli::{MailArgs, StoreArgs};

/// Store calls that take longer than this fail (answered `503`), so a hung Redis cannot hang
/// requests.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// The key ring's poll when Redis pushes its changes (a safety net only; see
/// `ringfence_keyring`'s `push` module).
const PUSHED_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Everything a subcommand needs.
pub struct Services {
    pub keyring: KeyRing,
    pub sessions: SessionManager,
    pub accounts: Accounts,
    pub clock: SharedClock,
    pub database: Database,
    /// With a single Redis server: the tracking connection that pushes session and key-ring
    /// changes to this node. Dropping it stops the pushes (the cache then trusts nothing).
    pub _tracking: Option<Tracker>,
    /// Registered passkeys (in the accounts database).
    pub passkeys: Arc<dyn PasskeyStore>,
    /// Where passkey ceremonies wait between start and finish: Redis when there is one, else
    /// the accounts database, so any node finishes what another started.
    pub ceremonies: Arc<dyn MailTokenStore>,
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

/// The Redis the options name, connected: one server or a cluster. Both stores are generic over
/// the connection, and every request they send stays in one hash slot, so either fits.
enum RedisBackend {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Connects to `--redis` or `--redis-cluster`, if either is given.
async fn connect_redis_backend(args: &StoreArgs) -> Result<Option<RedisBackend>, StartError> {
    let ca_file = args.redis_ca_file.as_deref();
    match (&args.redis, &args.redis_cluster) {
        (Some(_), Some(_)) => Err(StartError(
            "--redis and --redis-cluster exclude each other: give one server or the cluster's seed nodes"
                .to_owned(),
        )),
        (Some(url), None) => Ok(Some(RedisBackend::Single(
            connect_redis(url, ca_file).await?,
        ))),
        (None, Some(seeds)) => Ok(Some(RedisBackend::Cluster(
            connect_cluster(seeds, ca_file).await?,
        ))),
        (None, None) => match ca_file {
            Some(_) => Err(StartError(
                "--redis-ca-file needs a rediss:// --redis URL or --redis-cluster seeds".to_owned(),
            )),
            None => Ok(None),
        },
    }
}

fn is_tls_url(url: &str) -> bool {
    url.trim_start()
        .get(..9)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("rediss://"))
}

/// The CA certificates (PEM) that verify a `rediss://` server: the `--redis-ca-file` bundle, or
/// else the system trust store (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured). `None` when the
/// system has no trust store either; the redis client then falls back to its bundled Mozilla
/// roots.
fn tls_roots(ca_file: Option<&Path>) -> Result<Option<Vec<u8>>, StartError> {
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                StartError(format!(
                    "cannot read --redis-ca-file {}: {e}",
                    path.display()
                ))
            })?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err(StartError(format!(
                    "--redis-ca-file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    path.display()
                )));
            }
            Ok(Some(pem))
        }
        None => {
            // Unreadable entries are skipped like a browser would; whatever loaded still counts.
            let native = rustls_native_certs::load_native_certs();
            if native.certs.is_empty() {
                return Ok(None);
            }
            let mut pem = String::new();
            for cert in &native.certs {
                let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
                pem.push_str("-----BEGIN CERTIFICATE-----\n");
                for line in b64.as_bytes().chunks(64) {
                    pem.push_str(&String::from_utf8_lossy(line));
                    pem.push('\n');
                }
                pem.push_str("-----END CERTIFICATE-----\n");
            }
            Ok(Some(pem.into_bytes()))
        }
    }
}

/// What a connection attempt was made with, to word its failure.
struct Attempt<'a> {
    /// The URL (or seed list) with passwords removed.
    target: &'a str,
    /// Whether the URL carries a user name or password.
    credentials: bool,
    ca_file: Option<&'a Path>,
}

/// What went wrong talking to Redis, read from the error's kind, the server's error code and the
/// TLS error inside it, never from its message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RedisProblem {
    /// The server refused the credentials, or wants some (`WRONGPASS`, `NOAUTH`).
    Auth,
    /// The TLS handshake failed (an unknown CA, a name mismatch, a server speaking plain TCP).
    Tls,
    /// The server answered but is not a Redis Cluster node (`cluster_enabled:0`).
    NotCluster,
    /// Anything else: refused, timed out, reset.
    Unreachable,
}

impl RedisProblem {
    fn of(error: &redis::RedisError) -> Self {
        if error.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(error.code(), Some("WRONGPASS" | "NOAUTH"))
        {
            RedisProblem::Auth
        } else if tls_failure_in(error) {
            RedisProblem::Tls
        } else {
            RedisProblem::Unreachable
        }
    }
}

/// Whether a rustls error is in `error`'s chain of sources. redis keeps an I/O error behind an
/// `Arc`, and an `io::Error` hides the error it wraps from `source()`, so both are opened here.
fn tls_failure_in(error: &(dyn std::error::Error + 'static)) -> bool {
    type Shared = Arc<dyn std::error::Error + Send + Sync>;
    let mut next = Some(error);
    while let Some(current) = next {
        let io = current.downcast_ref::<std::io::Error>().or_else(|| {
            current
                .downcast_ref::<Shared>()
                .and_then(|shared| shared.downcast_ref::<std::io::Error>())
        });
        let wrapped = io.and_then(std::io::Error::get_ref);
        if current.is::<rustls::Error>() || wrapped.is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        next = current.source();
    }
    false
}

/// Why connecting to a cluster failed. The cluster client folds the seeds' errors into the text
/// of one "initial connections" error, so their kind is lost: one seed is asked again on its
/// own, where the error keeps its type, and asked whether it is a cluster node at all.
async fn cluster_problem(
    seed: &str,
    ca_file: Option<&Path>,
    error: &redis::RedisError,
) -> RedisProblem {
    let seen = RedisProblem::of(error);
    if seen != RedisProblem::Unreachable {
        return seen;
    }
    let Ok(client) = redis_client(seed, ca_file, ProtocolVersion::RESP2) else {
        return seen;
    };
    let probe = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        ping(&mut conn).await?;
        redis::cmd("INFO")
            .arg("cluster")
            .query_async::<String>(&mut conn)
            .await
    };
    match tokio::time::timeout(REDIS_TIMEOUT, probe).await {
        Ok(Ok(info)) if info.lines().any(|line| line.trim() == "cluster_enabled:0") => {
            RedisProblem::NotCluster
        }
        Ok(Err(e)) => RedisProblem::of(&e),
        _ => seen,
    }
}

/// A message naming what went wrong talking to Redis, with the URL's password removed.
fn redis_failure(
    attempt: &Attempt<'_>,
    problem: RedisProblem,
    error: &redis::RedisError,
) -> StartError {
    let target = attempt.target;
    let text = error.to_string();
    match problem {
        RedisProblem::Auth if attempt.credentials => StartError(format!(
            "Redis at {target} refused the user name or password in the URL: {text}"
        )),
        RedisProblem::Auth => StartError(format!(
            "Redis at {target} wants a user name and password; put them in the URL (rediss://USER:PASSWORD@HOST:PORT/): {text}"
        )),
        RedisProblem::Tls => {
            let hint = match attempt.ca_file {
                Some(path) => format!(
                    "is {} the CA that signed the server's certificate, and does the certificate name the host in the URL?",
                    path.display()
                ),
                None => "the system trust store does not vouch for the server; name its CA with --redis-ca-file".to_owned(),
            };
            StartError(format!("TLS to Redis at {target} failed: {text} ({hint})"))
        }
        RedisProblem::NotCluster => StartError(format!(
            "Redis at {target} is not a Redis Cluster node ({text}); use --redis for a single server"
        )),
        RedisProblem::Unreachable => {
            StartError(format!("cannot reach Redis at {target}: {text}"))
        }
    }
}

/// Whether a Redis URL carries credentials (`user:password@` or `:password@`).
fn has_credentials(url: &str) -> bool {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) => at > scheme + 3,
        _ => false,
    }
}

/// A client for `--redis` speaking `protocol` (RESP2 for the stores, RESP3 for the tracking
/// connection, whose invalidations arrive as RESP3 pushes).
fn redis_client(
    url: &str,
    ca_file: Option<&Path>,
    protocol: ProtocolVersion,
) -> Result<redis::Client, StartError> {
    let shown = redact(url);
    let invalid = |e: redis::RedisError| StartError(format!("invalid --redis URL {shown}: {e}"));
    let info = url.into_connection_info().map_err(invalid)?;
    let settings = info.redis_settings().clone().set_protocol(protocol);
    let info = info
        .set_redis_settings(settings)
        .set_tcp_settings(tcp_settings());
    Ok(if is_tls_url(url) {
        match tls_roots(ca_file)? {
            Some(root_cert) => redis::Client::build_with_tls(
                info,
                TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                },
            )
            .map_err(|e| tls_setup_failure(ca_file, &e))?,
            None => redis::Client::open(info).map_err(invalid)?,
        }
    } else {
        if ca_file.is_some() {
            return Err(StartError(format!(
                "--redis-ca-file is for TLS, but --redis {shown} is not a rediss:// URL"
            )));
        }
        redis::Client::open(info).map_err(invalid)?
    })
}

async fn connect_redis(url: &str, ca_file: Option<&Path>) -> Result<ConnectionManager, StartError> {
    let shown = redact(url);
    let client = redis_client(url, ca_file, ProtocolVersion::RESP2)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT))
        .set_number_of_retries(2);
    let connect = async {
        let mut conn = ConnectionManager::new_with_config(client, config).await?;
        ping(&mut conn).await?;
        Ok(conn)
    };
    match tokio::time::timeout(REDIS_TIMEOUT * 3, connect).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(redis_failure(
            &Attempt {
                target: &shown,
                credentials: has_credentials(url),
                ca_file,
            },
            RedisProblem::of(&e),
            &e,
        )),
        Err(_) => Err(StartError(format!(
            "cannot reach Redis at {shown}: timed out"
        ))),
    }
}

/// Socket options of every Redis connection: `TCP_NODELAY`, so a request's command leaves at
/// once instead of waiting (Nagle) for the previous one's acknowledgement; every authenticated
/// request waits on one such round trip, so a delayed segment is a delayed response.
fn tcp_settings() -> redis::io::tcp::TcpSettings {
    redis::io::tcp::TcpSettings::default().set_nodelay(true)
}

/// A connection is made without a command when no credentials are given, so a server that
/// wants them would only say so at the first real request; ask now, where the error is clear.
async fn ping(conn: &mut impl redis::aio::ConnectionLike) -> redis::RedisResult<()> {
    redis::cmd("PING")
        .query_async::<String>(conn)
        .await
        .map(drop)
}

/// A CA bundle the redis client could not turn into trust anchors (or a URL it rejected).
fn tls_setup_failure(ca_file: Option<&Path>, error: &redis::RedisError) -> StartError {
    match ca_file {
        Some(path) => StartError(format!(
            "cannot use --redis-ca-file {}: {error}",
            path.display()
        )),
        None => StartError(format!("cannot load the system CA certificates: {error}")),
    }
}

/// Connects to a Redis Cluster through its comma-separated seed nodes.
async fn connect_cluster(
    seeds: &str,
    ca_file: Option<&Path>,
) -> Result<ClusterConnection, StartError> {
    let seeds: Vec<&str> = seeds
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if seeds.is_empty() {
        return Err(StartError(
            "--redis-cluster needs at least one redis://host:port seed node".to_owned(),
        ));
    }
    let mut nodes = Vec::with_capacity(seeds.len());
    for seed in &seeds {
        let info = seed.into_connection_info().map_err(|e| {
            StartError(format!(
                "invalid --redis-cluster seed {}: {e}",
                redact(seed)
            ))
        })?;
        nodes.push(info);
    }
    let shown = seeds
        .iter()
        .map(|s| redact(s))
        .collect::<Vec<_>>()
        .join(",");
    let tls = seeds.iter().filter(|s| is_tls_url(s)).count();
    if tls != 0 && tls != seeds.len() {
        return Err(StartError(format!(
            "--redis-cluster mixes rediss:// and redis:// seeds ({shown}); use one scheme"
        )));
    }
    // The response timeout also bounds a whole request with its retries and MOVED/ASK
    // redirects, so the default retry count can stay (it rides out a failover or resharding).
    let mut builder = ClusterClient::builder(nodes)
        .tcp_settings(tcp_settings())
        .connection_timeout(REDIS_TIMEOUT)
        .response_timeout(REDIS_TIMEOUT);
    if tls > 0 {
        if let Some(root_cert) = tls_roots(ca_file)? {
            builder = builder.certs(TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert),
            });
        }
    } else if ca_file.is_some() {
        return Err(StartError(format!(
            "--redis-ca-file is for TLS, but the --redis-cluster seeds ({shown}) are not rediss:// URLs"
        )));
    }
    let client = builder.build().map_err(|e| {
        // The seeds are parsed already: what fails with an I/O kind here is reading the CA
        // certificates (their PEM or trust anchors); the rest is InvalidClientConfig.
        if tls > 0 && e.kind() == redis::ErrorKind::Io {
            tls_setup_failure(ca_file, &e)
        } else {
            StartError(format!("invalid --redis-cluster {shown}: {e}"))
        }
    })?;
    let connect = async {
        let mut conn = client.get_async_connection().await?;
        ping(&mut conn).await?;
        Ok(conn)
    };
    match tokio::time::timeout(REDIS_TIMEOUT * 3, connect).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(redis_failure(
            &Attempt {
                target: &format!("cluster {shown}"),
                credentials: seeds.iter().any(|s| has_credentials(s)),
                ca_file,
            },
            cluster_problem(seeds[0], ca_file, &e).await,
            &e,
        )),
        Err(_) => Err(StartError(format!(
            "cannot reach Redis at cluster {shown}: timed out"
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

/// Reads a master key file, warning when group or others may read it. The file is the
/// operator's (perhaps a mounted secret the service may not change), so it is reported rather
/// than changed.
fn load_master_key(path: &Path) -> Result<MasterKey, StartError> {
    if let Ok(Some(mode)) = private_files::readable_by_others(path) {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{mode:o}"),
            "the master key file is readable by group or others: anyone who can read it can read every key; chmod 600 it"
        );
    }
    MasterKey::from_file(path).map_err(|e| StartError(e.to_string()))
}

/// Opens every store and builds the services.
pub async fn open(
    args: &StoreArgs,
    keyring_config: KeyRingConfig,
    session_config: SessionConfig,
) -> Result<Services, StartError> {
    let clock = SystemClock::shared();
    let master_key = match &args.master_key_file {
        Some(path) => Some(load_master_key(path)?),
        None => None,
    };
    let previous_master_keys = args
        .previous_master_key_files
        .iter()
        .map(|path| load_master_key(path))
        .collect::<Result<Vec<_>, _>>()?;
    let redis = connect_redis_backend(args).await?;
    // With a single Redis server, a tracking connection pushes changes to this node (Redis
    // Cluster keeps the direct reads and the plain poll: tracking there would have to be right
    // per shard).
    let tracking_client = match (&redis, &args.redis) {
        (Some(RedisBackend::Single(_)), Some(url)) => Some(redis_client(
            url,
            args.redis_ca_file.as_deref(),
            ProtocolVersion::RESP3,
        )?),
        _ => None,
    };
    let poll_interval = match tracking_client {
        // Pushed changes arrive within milliseconds; the poll is only the safety net.
        Some(_) => keyring_config.poll_interval.max(PUSHED_POLL_INTERVAL),
        None => keyring_config.poll_interval,
    };
    let keyring_config = KeyRingConfig {
        master_key,
        previous_master_keys,
        poll_interval,
        ..keyring_config
    };
    let mut listeners: Vec<Arc<dyn TrackingListener>> = Vec::new();

    // 0700 whatever the umask (and tightened when an older version left it open): it holds the
    // key files, the database and the outbox. After Redis answered, so a node that cannot reach
    // it says only that.
    private_files::create_dir(&args.data_dir).map_err(|e| {
        StartError(format!(
            "cannot create data dir {}: {e}",
            args.data_dir.display()
        ))
    })?;
    let embedded_db = args.data_dir.join("ringfence.db");
    let database_url = args
        .database
        .clone()
        .unwrap_or_else(|| sqlite_url(&embedded_db));
    let database = Database::connect(&database_url)
        .await
        .map_err(|e| fail("cannot open the database")(e.to_string()))?;
    // MongoDB holds the accounts only: without Redis the keys would fall back to files and the
    // sessions to SQLite in this node's data dir, which a fleet cannot share.
    if database.backend() == "mongodb" && redis.is_none() {
        return Err(StartError(
            "--database mongodb://… keeps the accounts only: sessions and keys are not stored on \
             MongoDB, so it needs --redis (or --redis-cluster)"
                .to_owned(),
        ));
    }
    let users = database
        .user_store()
        .await
        .map_err(|e| fail("cannot prepare the user store")(e.to_string()))?;
    // Rows written before e-mails were normalized with IDNA and NFC: rewrite what is safe,
    // report (in the log, by account id) what collides; see ringfence_accounts::email_migration.
    ringfence_accounts::normalize_stored_emails(users.as_ref())
        .await
        .map_err(|e| fail("cannot check the stored e-mail addresses")(e.to_string()))?;

    // Keys live where every node reaches them: Redis when there is one, else the shared
    // PostgreSQL, else (a single node) files in the data dir.
    let key_repository: Arc<dyn KeyRepository> = match (&redis, database.postgres_pool()) {
        (Some(RedisBackend::Single(conn)), _) => {
            Arc::new(RedisKeyRepository::new(conn.clone(), &args.redis_prefix))
        }
        (Some(RedisBackend::Cluster(conn)), _) => {
            Arc::new(RedisKeyRepository::new(conn.clone(), &args.redis_prefix))
        }
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
    if tracking_client.is_some() {
        listeners.push(keyring.tracking_listener(&args.redis_prefix));
    }

    let session_store: Arc<dyn SessionStore> = match &redis {
        Some(RedisBackend::Single(conn)) => {
            let store = RedisSessionStore::new(conn.clone(), args.redis_prefix.clone());
            if args.session_cache {
                let cache = Arc::new(SessionCache::new(DEFAULT_CAPACITY, DEFAULT_LEASE));
                let cached = CachedSessionStore::new(store, cache);
                listeners.push(cached.listener());
                Arc::new(cached)
            } else {
                Arc::new(store)
            }
        }
        Some(RedisBackend::Cluster(conn)) => Arc::new(RedisSessionStore::with_connection(
            conn.clone(),
            args.redis_prefix.clone(),
        )),
        // Without Redis, sessions live where the accounts are when every node reaches it: the
        // shared PostgreSQL (a fleet); otherwise in the embedded SQLite, the accounts database
        // when it is SQLite, else a SQLite file in the data dir (single node).
        None => match database.postgres_pool() {
            Some(pool) => {
                let store = PostgresSessionStore::new(pool.clone());
                store
                    .migrate()
                    .await
                    .map_err(|e| fail("cannot prepare the session store")(e.to_string()))?;
                Arc::new(store)
            }
            None => {
                let pool = match database.sqlite_pool() {
                    Some(pool) => pool.clone(),
                    None => Database::connect(&sqlite_url(&embedded_db))
                        .await
                        .map_err(|e| {
                            fail("cannot open the embedded session database")(e.to_string())
                        })?
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
        },
    };
    let sessions = SessionManager::new(session_store, &keyring, clock.clone(), session_config);
    let hasher = PasswordHasher::default();
    // Failed sign-ins are counted where every node sees them: Redis when there is one, else the
    // accounts database.
    let attempts: Arc<dyn AttemptStore> = match &redis {
        Some(RedisBackend::Single(conn)) => Arc::new(RedisAttemptStore::new(
            conn.clone(),
            args.redis_prefix.clone(),
        )),
        Some(RedisBackend::Cluster(conn)) => Arc::new(RedisAttemptStore::new(
            conn.clone(),
            args.redis_prefix.clone(),
        )),
        None => database
            .attempt_store()
            .await
            .map_err(|e| fail("cannot prepare the sign-in attempt store")(e.to_string()))?,
    };
    // Mail-link tokens, like sessions, where every node redeems them: Redis when there is
    // one, else the accounts database.
    let mail_tokens: Arc<dyn MailTokenStore> = match &redis {
        Some(RedisBackend::Single(conn)) => Arc::new(RedisMailTokenStore::new(
            conn.clone(),
            args.redis_prefix.clone(),
        )),
        Some(RedisBackend::Cluster(conn)) => Arc::new(RedisMailTokenStore::new(
            conn.clone(),
            args.redis_prefix.clone(),
        )),
        None => database
            .mail_token_store()
            .await
            .map_err(|e| fail("cannot prepare the mail token store")(e.to_string()))?,
    };
    // Second factors live with the accounts: the step a TOTP code used is remembered where
    // every node reads it.
    let factors = database
        .factor_store()
        .await
        .map_err(|e| fail("cannot prepare the second-factor store")(e.to_string()))?;
    let accounts = Accounts::new(
        users,
        hasher,
        PasswordPolicy::default(),
        sessions.clone(),
        clock.clone(),
    )
    .with_throttle(attempts, ThrottlePolicy::default())
    .with_mail_tokens(mail_tokens.clone())
    .with_factors(factors, &keyring);
    let tracking = tracking_client.map(|client| Tracker::spawn(client, listeners));
    let passkeys = database
        .passkey_store()
        .await
        .map_err(|e| fail("cannot prepare the passkey store")(e.to_string()))?;
    let accounts = accounts.with_passkey_store(passkeys.clone());
    // Passkey ceremonies wait in the same shared store as mail links (their own purposes).
    let ceremonies = mail_tokens;
    Ok(Services {
        passkeys,
        ceremonies,
        keyring,
        sessions,
        accounts,
        clock,
        database,
        _tracking: tracking,
    })
}

/// The mail-flow settings the flags give (`--require-verified-email`, the token lifetimes).
pub fn mail_flow_settings(mail: &MailArgs) -> Result<MailFlowSettings, StartError> {
    let settings = MailFlowSettings {
        reset_token_lifetime: mail.reset_token_lifetime,
        verify_token_lifetime: mail.email_token_lifetime,
        change_token_lifetime: mail.email_token_lifetime,
        require_verified_email: mail.require_verified_email,
        ..MailFlowSettings::default()
    };
    settings.validate().map_err(|e| StartError(e.to_string()))?;
    Ok(settings)
}

/// Starts the mail queue the flags name (SMTP with `--smtp-url`, else `DATA_DIR/outbox/`) and
/// hands it, with the mail-flow settings, to the accounts service. Returns the queue's handle
/// for the shutdown.
pub fn attach_mail(
    services: &mut Services,
    store: &StoreArgs,
    mail: &MailArgs,
    public_url: &PublicUrl,
) -> Result<AccountLetters, StartError> {
    let settings = mail_flow_settings(mail)?;
    let mailer = start_mailer(MailOptions {
        public_url,
        smtp_url: mail.smtp_url.as_deref(),
        mail_from: mail.mail_from.as_deref(),
        data_dir: &store.data_dir,
    })
    .map_err(|e| StartError(e.to_string()))?;
    let letters = AccountLetters::new(mailer);
    services.accounts = services
        .accounts
        .clone()
        .with_mailer(Arc::new(letters.clone()))
        .with_mail_settings(settings);
    Ok(letters)
}

#[cfg(test)]
mod tests {
    use super::{has_credentials, is_tls_url, redact, RedisProblem};

    #[test]
    fn redis_failures_are_classified_by_type_not_by_their_words() {
        use redis::{ErrorKind, RedisError};
        use std::io;
        let auth = RedisError::from((
            ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        assert_eq!(RedisProblem::of(&auth), RedisProblem::Auth);
        for code in ["WRONGPASS", "NOAUTH"] {
            let refused = redis::make_extension_error(code.to_owned(), Some("no".to_owned()));
            assert_eq!(RedisProblem::of(&refused), RedisProblem::Auth, "{code}");
        }
        let handshake = RedisError::from(io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        assert_eq!(RedisProblem::of(&handshake), RedisProblem::Tls);
        // Words that used to decide are not enough any more, in either direction.
        let wordy = RedisError::from(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "TLS certificate WRONGPASS NOAUTH AuthenticationFailed cluster support disabled",
        ));
        assert_eq!(RedisProblem::of(&wordy), RedisProblem::Unreachable);
        let refused = RedisError::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(RedisProblem::of(&refused), RedisProblem::Unreachable);
    }

    #[test]
    fn tls_and_credentials_are_read_from_the_url() {
        assert!(is_tls_url("rediss://127.0.0.1:6380/"));
        assert!(is_tls_url("REDISS://h:1"));
        assert!(!is_tls_url("redis://127.0.0.1:6379/"));
        assert!(!is_tls_url("redis"));
        assert!(has_credentials("rediss://alice:pw@h:1/"));
        assert!(has_credentials("redis://:pw@h:1/"));
        assert!(!has_credentials("redis://h:1/"));
        assert!(!has_credentials("redis://@h:1/"));
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("redis://user:secret@127.0.0.1:6379/"),
            "redis://…@127.0.0.1:6379/"
        );
        assert_eq!(redact("redis://127.0.0.1:6379/"), "redis://127.0.0.1:6379/");
    }
}
