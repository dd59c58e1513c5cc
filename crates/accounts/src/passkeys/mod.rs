//! Passkeys (WebAuthn): registered credentials and the ceremonies that register and use them.
//!
//! # Storage
//!
//! [`PasskeyStore`] is the seam for the credentials themselves: [`SqlitePasskeyStore`] (the
//! embedded node) and [`PostgresPasskeyStore`] (a fleet), the same SQL on the `passkeys` table
//! (migration 3008), held to [`conformance`]. A row keeps the owner, the name its owner gave it,
//! the credential id (unique: one credential belongs to one account) and webauthn-rs's
//! `Passkey` as JSON (public key, sign counter, backup flags), rewritten after every sign-in so
//! the counter and the backup state stay current. Deleting the user deletes its passkeys (a
//! foreign key with `ON DELETE CASCADE`); disabling it removes them explicitly.
//!
//! # Ceremony state
//!
//! Between a ceremony's start and finish webauthn-rs's state (the challenge, the policy) waits
//! in the mail-token store ([`crate::tokens`]) under [`TokenPurpose::PasskeyRegistration`] or
//! [`TokenPurpose::PasskeyLogin`]: the `challenge_id` handed to the browser is a token of that
//! store (256 random bits, only its SHA-256 stored), the state its payload. So start and finish
//! may land on different nodes (the store is Redis, or the shared database), the finish takes
//! the state atomically (a ceremony finishes once), and it lives [`CEREMONY_LIFETIME`].
//!
//! # Sign-in ceremonies
//!
//! [`PasskeyService::start_login`] is for any account: discoverable, no `allowCredentials`, a
//! complete sign-in. [`PasskeyService::start_login_for`] is for one account (the second step
//! after its password, or re-authentication of its session): the options list its credentials,
//! only they are accepted ([`PasskeyError::OtherAccount`] otherwise), and the check goes through
//! the account's sign-in throttle. [`PasskeyService::finish_login`] finishes both and says which
//! kind it was ([`CeremonyScope`]); the server decides what the proof does.
//!
//! # Relying party
//!
//! [`PasskeyService`] builds webauthn-rs's relying party from the public URL (`--public-url`):
//! its host is the RP id, its origin the only origin accepted. A request's `Host` plays no part.

#[cfg(any(feature = "conformance", doc))]
pub mod conformance;
mod service;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use service::{
    Ceremony, CeremonyScope, PasskeyError, PasskeyProof, PasskeyService, MAX_NAME_CHARS,
};
#[cfg(feature = "postgres")]
pub use sql::PostgresPasskeyStore;
#[cfg(feature = "sqlite")]
pub use sql::SqlitePasskeyStore;

#[cfg(doc)]
use crate::TokenPurpose;

/// How long a ceremony may take between start and finish.
pub const CEREMONY_LIFETIME: chrono::Duration = chrono::Duration::minutes(5);

/// A registered passkey as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPasskey {
    /// Our id for it (a UUID), used in `/api/v1/passkeys/{id}`.
    pub id: String,
    /// The owner.
    pub user_id: String,
    /// The name its owner gave it.
    pub name: String,
    /// The authenticator's credential id, URL-safe base64 without padding.
    pub credential_id: String,
    /// webauthn-rs's `Passkey` as JSON: public key, sign counter, backup flags.
    pub credential: String,
    /// When it was registered (whole milliseconds).
    pub created_at: DateTime<Utc>,
    /// When it last signed someone in (whole milliseconds).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Why a passkey store call failed.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyStoreError {
    /// The credential id is registered already (to this or another account).
    #[error("this credential is registered already")]
    Duplicate,
    /// The store cannot be reached or timed out; callers answer `503`.
    #[error("passkey store unavailable: {0}")]
    Unavailable(String),
    /// The store returned data this code cannot read.
    #[error("passkey store returned malformed data: {0}")]
    Corrupt(String),
    /// The schema migrations could not be applied.
    #[error("passkey store migration failed: {0}")]
    Migration(String),
}

/// Where registered passkeys live. Every backend passes [`conformance`].
#[async_trait]
pub trait PasskeyStore: Send + Sync + 'static {
    /// Stores a new passkey; [`PasskeyStoreError::Duplicate`] when its credential id is taken.
    async fn insert(&self, passkey: &StoredPasskey) -> Result<(), PasskeyStoreError>;

    /// The user's passkeys, oldest first.
    async fn list(&self, user_id: &str) -> Result<Vec<StoredPasskey>, PasskeyStoreError>;

    /// How many passkeys the user has.
    async fn count(&self, user_id: &str) -> Result<u64, PasskeyStoreError>;

    /// The passkey with this credential id, whoever owns it.
    async fn by_credential_id(
        &self,
        credential_id: &str,
    ) -> Result<Option<StoredPasskey>, PasskeyStoreError>;

    /// After a sign-in: the credential as it is now (counter, backup flags) and when it was
    /// used. `false` when the passkey is gone.
    async fn record_use(
        &self,
        id: &str,
        credential: &str,
        used_at: DateTime<Utc>,
    ) -> Result<bool, PasskeyStoreError>;

    /// Renames the user's passkey `id`; `false` when the user has no such passkey.
    async fn rename(&self, user_id: &str, id: &str, name: &str) -> Result<bool, PasskeyStoreError>;

    /// Removes the user's passkey `id` and returns it; `None` when the user has no such
    /// passkey (another user's id included).
    async fn delete(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<Option<StoredPasskey>, PasskeyStoreError>;

    /// Removes every passkey of the user; returns how many.
    async fn delete_all(&self, user_id: &str) -> Result<u64, PasskeyStoreError>;
}
