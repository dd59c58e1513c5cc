//! ASP.NET Core interoperation: read and write what a fleet of ASP.NET Core apps shares.
//!
//! - [`keys`]: the Data Protection key ring as .NET persists it (key XML in a directory or a Redis
//!   list), revocations, the default key chosen as `DefaultKeyResolver` chooses it.
//! - [`protector`]: `IDataProtector.Protect`/`Unprotect` payloads (and `ITimeLimitedDataProtector`).
//! - [`ticket`]: the `TicketSerializer` format of authentication tickets.
//! - [`cookie`]: authentication cookies (chunking, the cookie handler's purposes, `ITicketStore`).
//!
//! The formats are documented in `docs/aspnet.md`. The cargo feature `redis` (on by default)
//! reads key rings from a Redis list and tickets from an `ITicketStore` over Redis; without it
//! the crate reads key directories, payloads, tickets and cookies only.
#![deny(missing_docs)]

pub mod cookie;
pub mod encryptor;
pub mod kdf;
pub mod keys;
pub mod protector;
pub mod ticket;

pub use encryptor::{Algorithm, Encryptor, Validation};
pub use keys::{Key, KeyDocument, KeyRing, KeySource, DEFAULT_REDIS_KEY};
pub use protector::DataProtector;
pub use ticket::{AuthenticationTicket, Claim, Identity};

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// What went wrong, one specific case each, with a message fit for a one-line error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key directory or Redis list could not be read.
    #[error("cannot read the key ring: {0}")]
    KeySource(String),
    /// A key-ring document is not what .NET writes.
    #[error("invalid key XML: {0}")]
    KeyXml(String),
    /// Not a Data Protection payload at all.
    #[error("not a .NET Data Protection payload: {0}")]
    NotAPayload(&'static str),
    /// The payload names a key the ring does not have.
    #[error("the payload was protected with key {0}, which is not in the key ring")]
    UnknownKey(Uuid),
    /// The payload's key has been revoked.
    #[error("the payload was protected with key {0}, which has been revoked")]
    RevokedKey(Uuid),
    /// The key exists but cannot be used here.
    #[error("key {id} cannot be used: {reason}")]
    UnusableKey {
        /// The key.
        id: Uuid,
        /// Why (an encrypted master key, an unknown algorithm).
        reason: String,
    },
    /// The authentication tag does not match. The purposes are part of what is authenticated and
    /// are not sent, so a wrong purpose chain and altered bytes cannot be told apart.
    #[error("the payload does not authenticate: the purpose chain differs from the one it was protected with, or its bytes were altered")]
    Unauthentic,
    /// A time-limited payload past its expiration.
    #[error("the payload expired at {}", .0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))]
    Expired(DateTime<Utc>),
    /// No key in the ring can protect new payloads; says why when keys exist but are unusable.
    #[error("the key ring has no usable default key{0}")]
    NoDefaultKey(String),
    /// The authentication ticket inside is malformed.
    #[error("invalid authentication ticket: {0}")]
    Ticket(String),
    /// The ticket's properties say it has expired.
    #[error("the authentication ticket expired at {}", .0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))]
    TicketExpired(DateTime<Utc>),
    /// The `ITicketStore` has no such ticket (signed out, expired) or a malformed entry.
    #[error("ticket store: {0}")]
    TicketStore(String),
    /// The `ITicketStore`'s Redis did not answer: an outage, not a sign-out.
    #[error("ticket store unavailable: {0}")]
    TicketStoreUnavailable(String),
}

/// .NET ticks (100 ns since 0001-01-01) of the Unix epoch.
const UNIX_EPOCH_TICKS: i64 = 621_355_968_000_000_000;

/// A time as .NET `DateTimeOffset.UtcTicks`.
pub fn to_ticks(time: DateTime<Utc>) -> i64 {
    // Saturating: chrono reaches years .NET ticks cannot (beyond 9999).
    time.timestamp()
        .saturating_mul(10_000_000)
        .saturating_add(UNIX_EPOCH_TICKS)
        .saturating_add(i64::from(time.timestamp_subsec_nanos() / 100))
}

/// A .NET tick count as a time (`None` beyond what chrono represents).
pub fn from_ticks(ticks: i64) -> Option<DateTime<Utc>> {
    let since_epoch = ticks.checked_sub(UNIX_EPOCH_TICKS)?;
    DateTime::from_timestamp(
        since_epoch.div_euclid(10_000_000),
        (since_epoch.rem_euclid(10_000_000) * 100) as u32,
    )
}

// The README's Rust blocks compile as doctests, so what a reader of crates.io copies works.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}
