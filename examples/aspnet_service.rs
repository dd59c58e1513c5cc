//! A Rust service in an ASP.NET Core fleet: it reads the .NET apps' Data Protection key ring
//! (the Redis list `PersistKeysToStackExchangeRedis` writes, or a `PersistKeysToFileSystem`
//! directory) and accepts their authentication cookie, so users signed in on a .NET app are
//! signed in here too, behind the same HAProxy (see docs/aspnet.md).
//!
//! ```sh
//! ASPNET_KEYS_REDIS=redis://127.0.0.1:6379 ASPNET_APPLICATION_NAME=shop \
//!     LISTEN=127.0.0.1:5001 cargo run --example aspnet_service
//! curl -b '.AspNetCore.Cookies=CfDJ8…' localhost:5001/me
//! ```
//!
//! Environment: `ASPNET_KEYS_REDIS` (a `redis://` URL; the list is `DataProtection-Keys` unless
//! `ASPNET_KEYS_LIST` names another) or `ASPNET_KEYS_DIR`; `ASPNET_APPLICATION_NAME` (the .NET
//! apps' `SetApplicationName`), `ASPNET_SCHEME` (default `Cookies`), `ASPNET_TICKET_REDIS` (when
//! the apps keep tickets in an `ITicketStore` on Redis) with `ASPNET_TICKET_PREFIX`, `LISTEN`.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::{Extension, Json, Router};
use ringfence_aspnet::cookie::cookie_protector;
use ringfence_aspnet::{KeySource, DEFAULT_REDIS_KEY};
use ringfence_axum::{AspNetCookieAuth, AspNetUser};
use serde_json::{json, Value};

/// How often the key ring is read again: .NET writes a key days before it activates it, so a
/// reader this far behind never meets a payload under a key it has not seen.
const RELOAD_EVERY: Duration = Duration::from_secs(15 * 60);

/// The user the .NET cookie signs in; `401` without a valid one.
async fn me(user: AspNetUser) -> Json<Value> {
    Json(json!({"id": user.id, "name": user.name, "email": user.email}))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let source = match (env("ASPNET_KEYS_REDIS"), env("ASPNET_KEYS_DIR")) {
        (Some(url), _) => KeySource::Redis {
            url,
            list: env("ASPNET_KEYS_LIST").unwrap_or_else(|| DEFAULT_REDIS_KEY.to_owned()),
        },
        (None, Some(dir)) => KeySource::Dir(dir.into()),
        (None, None) => return Err("set ASPNET_KEYS_REDIS or ASPNET_KEYS_DIR".into()),
    };
    let ring = Arc::new(source.load().await?);
    let application = env("ASPNET_APPLICATION_NAME");
    let scheme = env("ASPNET_SCHEME").unwrap_or_else(|| "Cookies".to_owned());
    let mut auth = AspNetCookieAuth::new(cookie_protector(ring, application.as_deref(), &scheme));
    if let Some(url) = env("ASPNET_TICKET_REDIS") {
        let prefix = env("ASPNET_TICKET_PREFIX").unwrap_or_default();
        let conn = redis::Client::open(url)?.get_connection_manager().await?;
        auth = auth.ticket_store(conn, &prefix);
    }

    let reloading = auth.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(RELOAD_EVERY).await;
            if let Err(error) = reloading.reload_keys(&source).await {
                eprintln!("keeping the key ring in use: cannot read it again: {error}");
            }
        }
    });

    let app = Router::new()
        .route("/me", get(me))
        .route("/healthz", get(|| async { "ok" }))
        .layer(Extension(auth));
    let listen = env("LISTEN").unwrap_or_else(|| "127.0.0.1:5001".to_owned());
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
