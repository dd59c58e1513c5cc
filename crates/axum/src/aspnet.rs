//! A request signed in by an ASP.NET Core authentication cookie: a ringfence-based service behind
//! the same proxy as .NET apps accepts their users (see `docs/aspnet.md`).
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use axum::{routing::get, Router};
//! # use ringfence_aspnet::{cookie::cookie_protector, KeyRing};
//! # use ringfence_axum::{AspNetCookieAuth, AspNetUser};
//! # fn app(ring: Arc<KeyRing>) -> Router {
//! let auth = AspNetCookieAuth::new(cookie_protector(ring, Some("shop"), "Cookies"));
//! Router::new()
//!     .route("/me", get(|user: AspNetUser| async move { user.id }))
//!     .layer(axum::Extension(auth))
//! # }
//! ```

use std::sync::{Arc, PoisonError, RwLock};

use axum::extract::FromRequestParts;
use axum::http::header::COOKIE;
use axum::http::request::Parts;
use ringfence_aspnet::cookie::{self, DEFAULT_COOKIE_NAME};
use ringfence_aspnet::ticket::{
    DEFAULT_NAME_CLAIM_TYPE, EMAIL_CLAIM_TYPE, NAME_IDENTIFIER_CLAIM_TYPE,
};
use ringfence_aspnet::{AuthenticationTicket, DataProtector, Error, KeySource};

use crate::error::AuthError;

/// How to read the .NET cookie: its protector (application name and scheme), its name, and the
/// `ITicketStore` behind it, if any. Install it with `.layer(axum::Extension(auth))`.
#[derive(Clone)]
pub struct AspNetCookieAuth {
    /// Swapped whole when the ring is reloaded; requests clone the current one.
    protector: Arc<RwLock<DataProtector>>,
    cookie_name: String,
    #[cfg(feature = "redis")]
    ticket_store: Option<Arc<TicketStore>>,
}

#[cfg(feature = "redis")]
struct TicketStore {
    conn: redis::aio::ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for AspNetCookieAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AspNetCookieAuth")
            .field("purposes", &self.protector().purposes().to_vec())
            .field("cookie_name", &self.cookie_name)
            .finish_non_exhaustive()
    }
}

impl AspNetCookieAuth {
    /// Reads `.AspNetCore.Cookies` with `protector` (from [`cookie::cookie_protector`]).
    pub fn new(protector: DataProtector) -> AspNetCookieAuth {
        AspNetCookieAuth {
            protector: Arc::new(RwLock::new(protector)),
            cookie_name: DEFAULT_COOKIE_NAME.to_owned(),
            #[cfg(feature = "redis")]
            ticket_store: None,
        }
    }

    /// The protector in use now.
    pub fn protector(&self) -> DataProtector {
        self.protector
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the key ring again from `source` and uses it from the next request on (call it
    /// every few hours: .NET writes a new key days before it activates). On an error the ring in
    /// use stays.
    pub async fn reload_keys(&self, source: &KeySource) -> Result<(), Error> {
        let ring = Arc::new(source.load().await?);
        let mut protector = self
            .protector
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *protector = protector.with_ring(ring);
        Ok(())
    }

    /// The app's `CookieAuthenticationOptions.Cookie.Name`.
    pub fn cookie_name(mut self, name: &str) -> AspNetCookieAuth {
        self.cookie_name = name.to_owned();
        self
    }

    /// Resolves cookies that hold only an `ITicketStore` session key in this Redis
    /// `IDistributedCache` (`prefix`: its `InstanceName`). Cargo feature `redis`.
    #[cfg(feature = "redis")]
    pub fn ticket_store(
        mut self,
        conn: redis::aio::ConnectionManager,
        prefix: &str,
    ) -> AspNetCookieAuth {
        self.ticket_store = Some(Arc::new(TicketStore {
            conn,
            prefix: prefix.to_owned(),
        }));
        self
    }

    /// The ticket of the request's cookie (chunked or not), or why there is none.
    pub async fn authenticate(&self, parts: &Parts) -> Result<AuthenticationTicket, AuthError> {
        let cookies: Vec<(String, String)> = parts
            .headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(cookie::split_cookie_header)
            .collect();
        let lookup = |name: &str| {
            cookies
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let value =
            cookie::joined_cookie(&self.cookie_name, lookup).ok_or(AuthError::Unauthenticated)?;
        let now = chrono::Utc::now();
        let ticket = cookie::read_cookie(&self.protector(), &value, now).map_err(|e| {
            tracing::debug!(error = %e, "ASP.NET Core cookie refused");
            AuthError::Unauthenticated
        })?;
        let Some(key) = cookie::session_key(&ticket) else {
            return Ok(ticket);
        };
        self.stored_ticket(key, now).await
    }

    /// The ticket a cookie holding only an `ITicketStore` session key names; without a ticket
    /// store (or without the `redis` feature) nobody is signed in by it.
    #[cfg(feature = "redis")]
    async fn stored_ticket(
        &self,
        key: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<AuthenticationTicket, AuthError> {
        let store = self
            .ticket_store
            .as_ref()
            .ok_or(AuthError::Unauthenticated)?;
        let mut conn = store.conn.clone();
        let key = format!("{}{key}", store.prefix);
        match cookie::read_stored_ticket_with(&mut conn, &key, now).await {
            Ok(ticket) => Ok(ticket),
            // A store that does not answer is an outage, not a sign-out.
            Err(Error::TicketStoreUnavailable(e)) => Err(AuthError::Unavailable(e)),
            Err(e) => {
                tracing::debug!(error = %e, "ASP.NET Core stored ticket refused");
                Err(AuthError::Unauthenticated)
            }
        }
    }

    #[cfg(not(feature = "redis"))]
    async fn stored_ticket(
        &self,
        _key: &str,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<AuthenticationTicket, AuthError> {
        Err(AuthError::Unauthenticated)
    }
}

/// A user signed in by a .NET authentication cookie; rejects with `401` otherwise.
#[derive(Debug, Clone)]
pub struct AspNetUser {
    /// The `nameidentifier` claim (ASP.NET Core Identity's user id).
    pub id: String,
    /// The `name` claim.
    pub name: Option<String>,
    /// The `emailaddress` claim.
    pub email: Option<String>,
    /// The whole ticket, for other claims and properties.
    pub ticket: AuthenticationTicket,
}

impl<S: Send + Sync> FromRequestParts<S> for AspNetUser {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let auth = parts
            .extensions
            .get::<AspNetCookieAuth>()
            .cloned()
            .ok_or(AuthError::MissingLayer)?;
        let ticket = auth.authenticate(parts).await?;
        let id = ticket
            .claim(NAME_IDENTIFIER_CLAIM_TYPE)
            .ok_or(AuthError::Unauthenticated)?
            .to_owned();
        Ok(AspNetUser {
            id,
            name: ticket.claim(DEFAULT_NAME_CLAIM_TYPE).map(str::to_owned),
            email: ticket.claim(EMAIL_CLAIM_TYPE).map(str::to_owned),
            ticket,
        })
    }
}
