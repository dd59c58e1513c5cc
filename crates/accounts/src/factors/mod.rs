//! Second factors: TOTP authenticators and recovery codes (issue 15).
//!
//! - **TOTP** ([`totp`]): RFC 6238 with SHA-1, 6 digits, 30-second steps, one step of drift
//!   either way, through `totp-rs`. A secret is 160 random bits, stored only sealed under the
//!   key ring (purpose [`TOTP_SECRET_PURPOSE`], with the user id as a sub-purpose, so a sealed
//!   secret copied onto another user's row does not open). Setting up stores a *pending*
//!   secret; TOTP turns on only when a code of it is confirmed. A code is accepted once: the
//!   store takes its time step with one conditional update (`… WHERE last_step < step`), so a
//!   code replayed within its window is refused on every node sharing the database.
//! - **Recovery codes** (`recovery.rs`): 10 codes of 120 random bits each, shown once. Stored
//!   as SHA-256: NIST SP 800-63B (5.1.2.2) and OWASP allow an unsalted fast hash for look-up
//!   secrets of at least 112 bits, since no dictionary or brute force reaches them; argon2
//!   would only cost ten hashes per sign-in attempt. Using a code deletes its row (exactly one
//!   of concurrent uses wins); a new set replaces the old in one transaction.
//! - Every code check goes through [`crate::Accounts::check_user_secret`]: a wrong code counts
//!   toward the same throttle and lockout as a wrong password.
//!
//! Storage is the [`FactorStore`] seam in the users database ([`SqliteFactorStore`],
//! [`PostgresFactorStore`]; [`crate::factors_conformance`] is the suite every backend passes).

mod recovery;
mod service;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
mod status_cache;
pub mod totp;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use recovery::{RecoveryCode, RECOVERY_CODE_COUNT};
pub(crate) use service::FactorService;
pub use service::{MfaStatus, SecondFactorCode, TotpSetup, TOTP_SECRET_PURPOSE};
#[cfg(feature = "postgres")]
pub use sql::PostgresFactorStore;
#[cfg(feature = "sqlite")]
pub use sql::SqliteFactorStore;
pub(crate) use status_cache::StatusCache;

use crate::UserStoreError;

/// A user's TOTP row as stored: sealed secrets and the last step taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpRecord {
    /// The confirmed secret, sealed; TOTP is on when set.
    pub secret: Option<String>,
    /// A secret set up but not confirmed yet, sealed.
    pub pending_secret: Option<String>,
    /// The last time step accepted (`-1`: none).
    pub last_step: i64,
}

/// Where second factors live: in the users database, shared by every node. Backends store and
/// fetch atomically; policy (codes, sealing, throttling) lives above, in
/// [`crate::Accounts`].
#[async_trait]
pub trait FactorStore: Send + Sync + 'static {
    /// The user's TOTP row, if any.
    async fn totp(&self, user_id: &str) -> Result<Option<TotpRecord>, UserStoreError>;

    /// Stores a pending (unconfirmed) secret, replacing any earlier pending one and keeping a
    /// confirmed one (and its last step) as it is.
    async fn put_pending_totp(
        &self,
        user_id: &str,
        sealed: &str,
        now: DateTime<Utc>,
    ) -> Result<(), UserStoreError>;

    /// Turns the pending secret `sealed` into the confirmed one, with `step` taken; `false`
    /// when the pending secret is no longer `sealed` (replaced or confirmed meanwhile).
    async fn confirm_totp(
        &self,
        user_id: &str,
        sealed: &str,
        step: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, UserStoreError>;

    /// Takes time step `step` of the confirmed secret: `true` only if TOTP is on and no step
    /// at or after `step` was taken before (one conditional update; exactly one of concurrent
    /// takes of a step wins).
    async fn take_totp_step(&self, user_id: &str, step: i64) -> Result<bool, UserStoreError>;

    /// Removes the user's TOTP row (confirmed and pending); `true` if TOTP was on.
    async fn remove_totp(&self, user_id: &str) -> Result<bool, UserStoreError>;

    /// Replaces the user's recovery codes with `hashes` (an empty slice removes them), in one
    /// transaction.
    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        hashes: &[String],
    ) -> Result<(), UserStoreError>;

    /// Takes (deletes) one recovery code by hash: `true` if it was there.
    async fn take_recovery_code(&self, user_id: &str, hash: &str) -> Result<bool, UserStoreError>;

    /// How many recovery codes the user has left.
    async fn recovery_codes_left(&self, user_id: &str) -> Result<u32, UserStoreError>;

    /// `(TOTP is on, recovery codes left)`: what `GET /api/v1/me` shows, asked on every call of
    /// it, so a backend may answer in one round trip (the SQL stores do).
    async fn summary(&self, user_id: &str) -> Result<(bool, u32), UserStoreError> {
        let totp = self
            .totp(user_id)
            .await?
            .is_some_and(|r| r.secret.is_some());
        Ok((totp, self.recovery_codes_left(user_id).await?))
    }
}
