//! The minimal app as a fleet: run any number of copies behind a load balancer and they share
//! keys, sessions, throttle counters and mail tokens in Redis and accounts in PostgreSQL
//! (without `REDIS_URL`, everything in PostgreSQL). A user
//! signed in on one copy is signed in on all; signing out (or an admin revoking the session) on
//! one is refused by every other at once.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379 DATABASE_URL=postgres://app@127.0.0.1/app \
//!     LISTEN=127.0.0.1:3001 cargo run --example fleet
//! ```

use axum::{routing::get, Router};
use ringfence_axum::{account_routes, CurrentUser, Ringfence};

async fn hello(CurrentUser { user, session }: CurrentUser) -> String {
    format!("hello {}, signed in on {}\n", user.email, session.device)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let database = std::env::var("DATABASE_URL")?;
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());

    let ringfence = match std::env::var("REDIS_URL") {
        Ok(redis) => Ringfence::builder().shared(redis, database),
        Err(_) => Ringfence::builder().postgres(database),
    };
    let ringfence = ringfence.build().await?;
    let app = Router::new()
        .route("/", get(hello))
        .merge(account_routes())
        .layer(ringfence.layer());

    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    ringfence_axum::serve(listener, app).await?;
    Ok(())
}
