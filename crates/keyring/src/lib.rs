//! A data-protection key ring shared by every node of a fleet.
//!
//! Payloads (cookies, antiforgery tokens, anything a node hands out and must read back) are
//! sealed with AES-256-GCM under a key whose id travels in the payload, so any node holding the
//! ring opens what any other node made. Keys live in a [`KeyRepository`] every node reaches (a
//! directory, Redis, SQL), rotate on a schedule with a propagation window, can be revoked, and
//! can be encrypted at rest under a [`MasterKey`].
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use ringfence_keyring::{KeyRing, KeyRingConfig, MemoryKeyRepository, SystemClock};
//!
//! let ring = KeyRing::open(Arc::new(MemoryKeyRepository::new()), KeyRingConfig::default(), SystemClock::shared()).await?;
//! let invites = ring.protector("invites");
//! let token = invites.protect(b"user 42")?;
//! assert_eq!(invites.unprotect(&token).await?, b"user 42");
//! assert!(ring.protector("password-reset").unprotect(&token).await.is_err());
//! # Ok(()) }
//! ```
//!
//! The payload bytes are described in [`payload`]; the key document in [`document`].

#![deny(missing_docs)]

mod clock;
#[cfg(any(feature = "conformance", doc))]
pub mod conformance;
pub mod document;
mod key;
pub mod payload;
pub mod private_files;
mod protector;
mod push;
pub mod repository;
mod ring;
#[cfg(feature = "redis")]
pub mod tracking;

pub use clock::{add_saturating, Clock, ManualClock, SharedClock, SystemClock};
pub use document::{DocumentError, KeyDocument, MasterKey, MasterKeyError};
pub use key::{Key, KeyId, KeyInfo, KeyMaterial, KeyStatus, ParseKeyIdError};
pub use protector::{ProtectError, Protector, TimeLimitedProtector, UnprotectError};
#[cfg(feature = "postgres")]
pub use repository::PostgresKeyRepository;
#[cfg(feature = "redis")]
pub use repository::RedisKeyRepository;
#[cfg(feature = "sqlite")]
pub use repository::SqliteKeyRepository;
pub use repository::{
    DirectoryKeyRepository, KeyRepository, MemoryKeyRepository, RepositoryError, Revision,
    RingSnapshot,
};
pub use ring::{KeyRing, KeyRingConfig, KeyRingError, MIN_KEY_LIFETIME};

// The README's Rust blocks compile as doctests, so what a reader of crates.io copies works.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}
