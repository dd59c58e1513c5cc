//! The storage seam of the key ring.
//!
//! A [`KeyRepository`] is a dumb, versioned store of key documents: it never decides anything
//! about keys. Every write is a compare-and-set on the ring's *revision*, a counter that moves on
//! every change, which is what lets nodes that start together on an empty store agree on exactly
//! one first key, and lets every node notice a change by polling one small value.

mod directory;
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;

pub use self::directory::DirectoryKeyRepository;
pub use self::memory::MemoryKeyRepository;
#[cfg(feature = "redis")]
pub use self::redis::RedisKeyRepository;
#[cfg(feature = "postgres")]
pub use self::sql::PostgresKeyRepository;
#[cfg(feature = "sqlite")]
pub use self::sql::SqliteKeyRepository;

use async_trait::async_trait;

use crate::document::KeyDocument;

/// A ring revision: 0 for an empty (or purged) store, then moves on every write.
pub type Revision = u64;

/// One stored document, unparsed, with a name that points at it in error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDocument {
    /// Where it lives (file name, hash field, row id).
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Everything in the store at one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RingSnapshot {
    /// The revision the documents belong to.
    pub revision: Revision,
    /// Every key document.
    pub documents: Vec<RawDocument>,
}

/// Why a repository call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepositoryError {
    /// The store cannot be reached or timed out.
    #[error("key store unavailable: {0}")]
    Unavailable(String),
    /// The store answered with something this code cannot use.
    #[error("key store is corrupt: {0}")]
    Corrupt(String),
}

/// Where key documents live. Every backend passes the suite in `conformance` (the cargo feature
/// of that name).
#[async_trait]
pub trait KeyRepository: Send + Sync + 'static {
    /// Reads every document and the revision they belong to, consistently.
    async fn load(&self) -> Result<RingSnapshot, RepositoryError>;

    /// Reads only the revision: the cheap call nodes poll to see changes within a second.
    async fn revision(&self) -> Result<Revision, RepositoryError>;

    /// Writes (inserts or replaces by id) `documents` and moves the revision, only if the
    /// revision is still `expected`. Returns `false` when another writer moved it first; the
    /// caller then reloads and decides again.
    async fn compare_and_write(
        &self,
        expected: Revision,
        documents: &[KeyDocument],
    ) -> Result<bool, RepositoryError>;

    /// A short description for logs and the CLI ("directory ./ringfence-data/keys").
    fn describe(&self) -> String;
}
