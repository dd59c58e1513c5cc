//! How a key ring behaves ([`KeyRingConfig`]) and what can go wrong ([`KeyRingError`]).

use std::time::Duration as StdDuration;

use chrono::Duration;

use crate::document::{DocumentError, MasterKey};
use crate::key::KeyId;
use crate::repository::RepositoryError;

/// The shortest key lifetime accepted: shorter lifetimes leave too little room to propagate.
pub const MIN_KEY_LIFETIME: Duration = Duration::days(7);

/// How a key ring behaves. [`Default`] gives the documented defaults.
#[derive(Debug, Clone)]
pub struct KeyRingConfig {
    /// How long a key protects new payloads (default 90 days, at least 7 days).
    pub key_lifetime: Duration,
    /// How long before the default key expires its successor is created, so every node knows
    /// the successor long before anyone protects with it (default 72 hours).
    pub propagation_window: Duration,
    /// Tolerated clock difference between nodes (default 5 minutes): a key activating within
    /// this much in the future is already used.
    pub clock_skew: Duration,
    /// Whether this node may create keys (`--no-key-generation` turns it off).
    pub generate_keys: bool,
    /// How often the store's revision is polled for changes (default 500 ms).
    pub poll_interval: StdDuration,
    /// How often the whole ring is re-read regardless of the revision (default 60 s).
    pub reload_interval: StdDuration,
    /// Minimum time between re-reads caused by payloads naming unknown keys (default 1 s), so
    /// a flood of random key ids cannot turn into a flood of store reads.
    pub unknown_key_reload_interval: StdDuration,
    /// Key-encryption key for material at rest; `None` stores material in clear (with a warning).
    pub master_key: Option<MasterKey>,
    /// Former master keys, accepted for reading only while a master-key rotation is under way
    /// (see [`crate::KeyRing::rewrap`]); everything written is wrapped under `master_key`.
    pub previous_master_keys: Vec<MasterKey>,
}

impl Default for KeyRingConfig {
    fn default() -> Self {
        Self {
            key_lifetime: Duration::days(90),
            propagation_window: Duration::hours(72),
            clock_skew: Duration::minutes(5),
            generate_keys: true,
            poll_interval: StdDuration::from_millis(500),
            reload_interval: StdDuration::from_secs(60),
            unknown_key_reload_interval: StdDuration::from_secs(1),
            master_key: None,
            previous_master_keys: Vec::new(),
        }
    }
}

/// Why the key ring could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    /// The store failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    /// A key document cannot be opened in a way that makes the node unsafe to run (wrong or
    /// missing master key).
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// The configuration is not acceptable.
    #[error("invalid key ring configuration: {0}")]
    Config(String),
    /// No such key.
    #[error("no key with id {0}")]
    NoSuchKey(KeyId),
    /// Another writer kept moving the ring while this node tried to write.
    #[error("the key ring kept changing while writing; try again")]
    Contended,
}
