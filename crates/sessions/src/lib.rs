//! Server-side sessions for a fleet of nodes.
//!
//! The browser's cookie holds only a *protected session reference* (the session secret and the
//! user id, sealed by the key ring); the session record lives in a [`SessionStore`] every node can
//! reach. Because the record is authoritative, deleting it anywhere signs the session out
//! everywhere on the next request.
//!
//! Layers:
//! - [`Session`], [`SessionId`], [`SessionSecret`]: the data.
//! - [`SessionStore`]: the storage seam (one trait; SQLite, PostgreSQL and Redis implement it, and
//!   `conformance`, behind the feature of that name, is the one suite every backend passes).
//! - [`SessionManager`]: the policy (idle and absolute timeouts, sliding renewal without a write
//!   per request, per-user cap, cookie protection).
//! - [`CachedSessionStore`]: Redis with the sessions a node reads kept in memory, and Redis
//!   pushing every change to every node ([`cache`], `ringfence_keyring::tracking`).

//!
//! Backends are cargo features, all on by default: `redis` ([`RedisSessionStore`],
//! [`CachedSessionStore`]), `sqlite` ([`SqliteSessionStore`]) and `postgres`
//! ([`PostgresSessionStore`]).

#![deny(missing_docs)]

#[cfg(feature = "redis")]
pub mod cache;
#[cfg(any(test, feature = "conformance", doc))]
pub mod conformance;
mod device;
pub mod events;
mod id;
mod manager;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub mod migrations;
#[cfg(feature = "postgres")]
pub mod postgres_store;
#[cfg(feature = "redis")]
pub mod redis_store;
mod session;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite_store;
mod store;

#[cfg(feature = "redis")]
pub use cache::{CachedSessionStore, SessionCache};
pub use device::{cap_user_agent, device_label, ClientInfo, MAX_IP_LEN, MAX_USER_AGENT_LEN};
pub use events::EVENTS_METRIC;
pub use id::{SessionId, SessionSecret, ID_BYTES, SECRET_LEN};
pub use manager::{
    ResolveError, SessionConfig, SessionManager, StartedSession, MAX_COOKIE_VALUE_LEN,
    SESSION_CEILING, SESSION_PURPOSE,
};
#[cfg(feature = "postgres")]
pub use postgres_store::PostgresSessionStore;
#[cfg(feature = "redis")]
pub use redis_store::RedisSessionStore;
pub use session::{Session, SessionCounts};
#[cfg(feature = "sqlite")]
pub use sqlite_store::SqliteSessionStore;
pub use store::{SessionStore, StoreError, UserWatch};

// The README's Rust blocks compile as doctests, so what a reader of crates.io copies works.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}
