//! The load benchmark's reference app: what a Rust web app does for sessions and sign-in today,
//! built from the most used crates (`tower-sessions`, `tower-sessions-redis-store`, `axum-login`)
//! the way their READMEs and examples wire them. `bench/load.sh` runs it beside `ringfence serve`
//! on the same Redis and compares the same authenticated route.
//!
//! ```sh
//! cargo run --release --example peer_app -- 127.0.0.1:3001 redis://127.0.0.1:6379/1
//! curl -c jar -H 'content-type: application/json' \
//!     -d '{"email":"peer@example.com","password":"correct horse battery staple"}' localhost:3001/login
//! curl -b jar localhost:3001/api/v1/me
//! ```
//!
//! Arguments: `LISTEN_ADDR [REDIS_URL]`. Environment: `PEER_REDIS_URL` (when no second argument;
//! default `redis://127.0.0.1:6379/1`: database 1 keeps its keys apart from ringfence's in
//! database 0), `PEER_EMAIL` / `PEER_PASSWORD` (the one user), `PEER_REDIS_POOL` (connections,
//! default 6 as in the store's example), `PEER_ALWAYS_SAVE=1` (write the session back on every
//! request, tower-sessions' way of sliding the inactivity expiry; off by default, as in
//! axum-login's example, so an authenticated request is one Redis `GET`).
//!
//! It also serves `GET /limit/redis-get`: one Redis `GET` of a fixed 200-byte value and a small
//! JSON body, with no session, cookie or user logic. That is the ceiling for any design that
//! makes one Redis round trip per request on this machine, the fair "limit" for an
//! authenticated route beside the unauthenticated `/healthz`.

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_login::{login_required, AuthManagerLayerBuilder, AuthUser, AuthnBackend, UserId};
use serde::{Deserialize, Serialize};
use tower_sessions::cookie::time::Duration;
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, KeysInterface, Pool};
use tower_sessions_redis_store::RedisStore;

const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/1";
const DEFAULT_EMAIL: &str = "peer@example.com";
const DEFAULT_PASSWORD: &str = "correct horse battery staple";
/// Same as `ringfence serve`'s default idle timeout, so both apps promise the same.
const INACTIVITY: Duration = Duration::minutes(30);

/// The one user. axum-login re-checks `session_auth_hash` against the stored session on every
/// request, so a password change signs other sessions out; the PHC string serves as that hash,
/// as in axum-login's examples.
#[derive(Clone)]
struct User {
    id: u64,
    email: String,
    password_hash: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password hash.
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

impl AuthUser for User {
    type Id = u64;

    fn id(&self) -> Self::Id {
        self.id
    }

    fn session_auth_hash(&self) -> &[u8] {
        self.password_hash.as_bytes()
    }
}

#[derive(Clone, Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

/// An in-memory user store holding one user.
#[derive(Clone)]
struct Backend {
    user: Arc<User>,
}

#[derive(Debug, thiserror::Error)]
enum BackendError {
    #[error("password check task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl AuthnBackend for Backend {
    type User = User;
    type Credentials = Credentials;
    type Error = BackendError;

    async fn authenticate(&self, creds: Credentials) -> Result<Option<User>, BackendError> {
        if creds.email != self.user.email {
            return Ok(None);
        }
        let user = Arc::clone(&self.user);
        // argon2 takes tens of milliseconds: keep it off the async workers.
        let verified = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&user.password_hash).is_ok_and(|hash| {
                Argon2::default()
                    .verify_password(creds.password.as_bytes(), &hash)
                    .is_ok()
            })
        })
        .await?;
        Ok(verified.then(|| User::clone(&self.user)))
    }

    async fn get_user(&self, user_id: &UserId<Self>) -> Result<Option<User>, BackendError> {
        Ok((*user_id == self.user.id).then(|| User::clone(&self.user)))
    }
}

type AuthSession = axum_login::AuthSession<Backend>;

#[derive(Serialize)]
struct UserJson {
    id: u64,
    email: String,
}

#[derive(Serialize)]
struct UserResponse {
    user: UserJson,
}

fn user_response(user: &User) -> Response {
    Json(UserResponse {
        user: UserJson {
            id: user.id,
            email: user.email.clone(),
        },
    })
    .into_response()
}

async fn login(mut auth_session: AuthSession, Json(creds): Json<Credentials>) -> Response {
    let user = match auth_session.authenticate(creds).await {
        Ok(Some(user)) => user,
        Ok(None) => return StatusCode::UNAUTHORIZED.into_response(),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    if auth_session.login(&user).await.is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    user_response(&user)
}

async fn me(auth_session: AuthSession) -> Response {
    match &auth_session.user {
        Some(user) => user_response(user),
        // `login_required!` already answered 401; kept for a route mounted without it.
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

/// The key `/limit/redis-get` reads; written once at start.
const PROBE_KEY: &str = "peer:limit:probe";

async fn redis_get(axum::extract::State(pool): axum::extract::State<Pool>) -> Response {
    match pool.get::<Option<String>, _>(PROBE_KEY).await {
        Ok(Some(value)) => Json(serde_json::json!({ "bytes": value.len() })).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

fn hash_password(password: &str) -> Result<String, Box<dyn Error>> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| format!("hashing the password: {e}"))?;
    Ok(hash.to_string())
}

async fn run() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args
        .next()
        .ok_or("usage: peer_app LISTEN_ADDR [REDIS_URL]")?;
    let listen: SocketAddr = listen
        .parse()
        .map_err(|e| format!("bad listen address {listen:?}: {e}"))?;
    let redis_url = args
        .next()
        .or_else(|| std::env::var("PEER_REDIS_URL").ok())
        .unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned());
    let pool_size = match std::env::var("PEER_REDIS_POOL") {
        Ok(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("bad PEER_REDIS_POOL {text:?}: want a positive integer"))?,
        Err(_) => 6,
    };
    let always_save = std::env::var("PEER_ALWAYS_SAVE").is_ok_and(|v| v == "1");
    let email = std::env::var("PEER_EMAIL").unwrap_or_else(|_| DEFAULT_EMAIL.to_owned());
    let password = std::env::var("PEER_PASSWORD").unwrap_or_else(|_| DEFAULT_PASSWORD.to_owned());

    let backend = Backend {
        user: Arc::new(User {
            id: 1,
            email,
            password_hash: hash_password(&password)?,
        }),
    };

    let config =
        Config::from_url(&redis_url).map_err(|e| format!("bad Redis URL {redis_url:?}: {e}"))?;
    let pool = Pool::new(config, None, None, None, pool_size)?;
    let redis_task = pool.connect();
    pool.wait_for_connect()
        .await
        .map_err(|e| format!("connecting to Redis at {redis_url}: {e}"))?;

    pool.set::<(), _, _>(PROBE_KEY, "x".repeat(200), None, None, false)
        .await
        .map_err(|e| format!("writing the probe key: {e}"))?;
    let limit = Router::new()
        .route("/limit/redis-get", get(redis_get))
        .with_state(pool.clone());

    let session_layer = SessionManagerLayer::new(RedisStore::new(pool))
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(INACTIVITY))
        .with_always_save(always_save);
    let auth_layer = AuthManagerLayerBuilder::new(backend, session_layer).build();

    let app = Router::new()
        .route("/api/v1/me", get(me))
        .route_layer(login_required!(Backend))
        .route("/login", post(login))
        .layer(auth_layer)
        .route("/healthz", get(healthz))
        .merge(limit);

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("binding {listen}: {e}"))?;
    let address = listener.local_addr()?;
    println!("listening on http://{address}");

    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            // An error here means no signal handler: then run until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await?;
    redis_task.abort();
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("peer_app: {error}");
        std::process::exit(1);
    }
}
