//! A minimal axum app with ringfence: accounts, server-side sessions and a shared key ring on
//! one node, everything stored in a data directory.
//!
//! ```sh
//! cargo run --example minimal            # then:
//! curl -c jar -H 'content-type: application/json' -d '{"email":"a@example.com","password":"a long passphrase nobody guesses"}' localhost:3000/register
//! curl -b jar localhost:3000/
//! ```
//!
//! `account_routes` adds `POST /register`, `/login`, `/login/mfa`, `/logout` and `GET /me`.
//! Environment: `LISTEN` (default `127.0.0.1:3000`), `DATA_DIR` (default `example-data`).
//! For a fleet, see `examples/fleet.rs`: only the builder's storage line changes.

use axum::{routing::get, Router};
use ringfence_axum::{account_routes, CurrentUser, Ringfence};

/// Signed in: greets the user. Not signed in: the extractor answers `401`.
async fn hello(CurrentUser { user, .. }: CurrentUser) -> String {
    format!("hello {}\n", user.email)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data_dir = std::env::var("DATA_DIR").unwrap_or_else(|_| "example-data".into());
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());

    let ringfence = Ringfence::builder().embedded(data_dir).build().await?;
    let app = Router::new()
        .route("/", get(hello))
        .merge(account_routes())
        .layer(ringfence.layer());

    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    ringfence_axum::serve(listener, app).await?;
    Ok(())
}
