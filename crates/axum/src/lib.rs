//! ringfence for axum: a tower layer and extractors that add the shared key ring, server-side
//! sessions, sign-in and antiforgery tokens to an axum app in a few lines.
//!
//! ```ignore
//! let ringfence = Ringfence::new(keyring, sessions, accounts);
//! let app = Router::new()
//!     .route("/me", get(|CurrentUser { user, .. }: CurrentUser| async move { user.email }))
//!     .layer(ringfence.layer());
//! ```
//!
//! The layer resolves the session cookie once per request (one store read, no write unless the
//! sliding renewal is due) and puts a [`RequestAuth`] in the request's extensions. Handlers use
//! it to sign in ([`RequestAuth::sign_in`]), sign out, make and check antiforgery tokens;
//! the layer writes the resulting cookies into the response. Extractors ([`CurrentSession`],
//! [`CurrentUser`], [`RequireAdmin`], [`CsrfHeader`]) reject with the contract's JSON errors.
//!
//! See `examples/minimal.rs` in the repository for a complete app.

#![deny(missing_docs)]

mod aspnet;
mod auth;
mod client;
mod cookies;
mod csrf;
mod error;
mod extract;
mod layer;
mod pending;
mod public_url;
mod recent;

pub use aspnet::{AspNetCookieAuth, AspNetUser};
pub use auth::{RequestAuth, SessionState};
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
