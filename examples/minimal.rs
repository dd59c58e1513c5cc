//! A minimal axum app using the ringfence libraries: a shared key ring, server-side sessions
//! and sign-in in a few lines.
//!
//! ```sh
//! cargo run --example minimal            # then:
//! curl -c jar -H 'content-type: application/json' -d '{"email":"a@example.com","password":"correct horse battery staple"}' localhost:3000/signup
//! curl -b jar -c jar -H 'content-type: application/json' -d '{"email":"a@example.com","password":"correct horse battery staple"}' localhost:3000/signin
//! curl -b jar localhost:3000/
//! ```
//!
//! Swap `DirectoryKeyRepository` and `SqliteSessionStore` for `RedisKeyRepository` and
//! `RedisSessionStore` (and SQLite for PostgreSQL) and any number of copies of this app share
//! keys and sessions.

use std::sync::Arc;

use axum::routing::{get, post};
use axum::{Json, Router};
use ringfence_accounts::{Accounts, Database, PasswordHasher, PasswordPolicy};
use ringfence_axum::{AuthError, CurrentUser, RequestAuth, Ringfence};
use ringfence_keyring::{DirectoryKeyRepository, KeyRing, KeyRingConfig, SystemClock};
use ringfence_sessions::{SessionConfig, SessionManager, SqliteSessionStore};
use serde::Deserialize;

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

/// Signed in: greets the user. Not signed in: the extractor answers 401 for us.
async fn hello(CurrentUser { user, session }: CurrentUser) -> String {
    format!(
        "hello {}, signed in on {} since {}\n",
        user.email, session.device, session.created_at
    )
}

async fn signup(auth: RequestAuth, Json(body): Json<Credentials>) -> Result<String, String> {
    let user = auth
        .ringfence()
        .accounts()
        .register(&body.email, &body.password)
        .await
        .map_err(|e| e.to_string())?;
    auth.sign_in(&user.id).await.map_err(|e| e.to_string())?;
    Ok(format!("welcome {}\n", user.email))
}

async fn signin(auth: RequestAuth, Json(body): Json<Credentials>) -> Result<String, String> {
    let user = auth
        .ringfence()
        .accounts()
        .authenticate(&body.email, &body.password)
        .await
        .map_err(|e| e.to_string())?;
    auth.sign_in(&user.id).await.map_err(|e| e.to_string())?;
    Ok("signed in\n".to_owned())
}

async fn signout(auth: RequestAuth) -> Result<&'static str, AuthError> {
    auth.sign_out().await?;
    Ok("signed out\n")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = std::path::Path::new("example-data");
    std::fs::create_dir_all(data)?;
    let clock = SystemClock::shared();

    // 1. The key ring: keys in a directory (Redis or SQL for a fleet).
    let keys = Arc::new(DirectoryKeyRepository::new(data.join("keys"))?);
    let keyring = KeyRing::open(keys, KeyRingConfig::default(), clock.clone()).await?;
    let _refresh = keyring.spawn_refresh();

    // 2. Sessions and accounts in one SQLite file.
    let db = Database::connect(&format!("sqlite://{}", data.join("app.db").display())).await?;
    let pool = db
        .sqlite_pool()
        .expect("a SQLite URL gives a SQLite pool")
        .clone();
    let store = SqliteSessionStore::new(pool);
    store.migrate().await?;
    let sessions = SessionManager::new(
        Arc::new(store),
        &keyring,
        clock.clone(),
        SessionConfig::default(),
    );
    let accounts = Accounts::new(
        db.user_store().await?,
        PasswordHasher::default(),
        PasswordPolicy::default(),
        sessions.clone(),
        clock,
    );

    // 3. One layer, then extractors in handlers.
    let ringfence = Ringfence::new(keyring, sessions, accounts);
    let app = Router::new()
        .route("/", get(hello))
        .route("/signup", post(signup))
        .route("/signin", post(signin))
        .route("/signout", post(signout))
        .layer(ringfence.layer());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await?;
    Ok(())
}
