//! ringfence for axum: a tower layer and extractors that add the shared key ring, server-side
//! sessions, sign-in and antiforgery tokens to an axum app in a few lines.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use ringfence_axum::{account_routes, CurrentUser, Ringfence};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let ringfence = Ringfence::builder().embedded("app-data").build().await?;
//! let app = Router::new()
//!     .route("/me", get(|CurrentUser { user, .. }: CurrentUser| async move { user.email }))
//!     .merge(account_routes())
//!     .layer(ringfence.layer());
//! ringfence_axum::serve(tokio::net::TcpListener::bind("127.0.0.1:3000").await?, app).await?;
//! # Ok(()) }
//! ```
//!
//! The layer resolves the session cookie once per request (one store read, no write unless the
//! sliding renewal is due) and puts a [`RequestAuth`] in the request's extensions. Handlers use
//! it to sign in ([`RequestAuth::sign_in`]), sign out, make and check antiforgery tokens;
//! the layer writes the resulting cookies into the response. Extractors ([`CurrentSession`],
//! [`CurrentUser`], [`RequireAdmin`], [`CsrfHeader`]) reject with the contract's JSON errors.
//!
//! [`Ringfence::builder`] assembles the services from a choice of storage ([`RingfenceBuilder`]);
//! [`Ringfence::new`] takes services an app built itself. See `examples/` in the repository.
//!
//! # Cargo features
//!
//! `redis`, `sqlite` and `postgres` (all on by default) choose the stores compiled in, down to
//! the key ring, sessions and accounts crates: [`RingfenceBuilder::embedded`] needs `sqlite`,
//! [`RingfenceBuilder::shared`] `redis` (and a SQL backend for the accounts),
//! [`RingfenceBuilder::postgres`] `postgres`; `redis` also gives
//! [`AspNetCookieAuth::ticket_store`]. An app on PostgreSQL alone, say, depends on
//! `ringfence-axum = { version = "0.1", default-features = false, features = ["postgres"] }`.

#![deny(missing_docs)]

mod api_error;
mod aspnet;
mod auth;
mod body;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod builder;
mod client;
mod cookies;
mod csrf;
mod error;
mod extract;
mod layer;
mod pending;
mod public_url;
mod recent;
pub mod routes;
mod serve;
mod sign_in;

pub use api_error::{with_retry_after, ApiError};
pub use aspnet::{AspNetCookieAuth, AspNetUser};
pub use auth::{RequestAuth, SessionState};
pub use body::{ApiJson, CsrfForm, CsrfOnly, FormRejection};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use builder::{BuildError, NoStorage, RingfenceBuilder, Storage, DEFAULT_REDIS_PREFIX};
pub use client::{client_info, TrustedProxies};
pub use cookies::{CookieNames, CSRF_COOKIE, SESSION_COOKIE};
pub use error::{error_response, AuthError};
pub use extract::{CsrfHeader, CurrentSession, CurrentUser, RequireAdmin, CSRF_HEADER};
pub use layer::{Ringfence, RingfenceLayer, RingfenceService};
pub use pending::{PendingSignIn, PENDING_COOKIE, PENDING_PURPOSE, PENDING_SIGN_IN_LIFETIME};
pub use public_url::{PublicUrl, PublicUrlError, STRICT_TRANSPORT_SECURITY};
pub use recent::{
    RecentAuth, StepUpSettings, DEFAULT_REAUTH_WINDOW, REAUTH_COOKIE, REAUTH_PURPOSE,
};
pub use routes::account_routes;
pub use serve::serve;
pub use sign_in::{PasswordSignIn, SignInError};

// The README's Rust blocks compile as doctests of this crate, so the way in cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
mod project_readme {}

// The README's Rust blocks compile as doctests, so what a reader of crates.io copies works.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}
