//! User accounts for ringfence.
//!
//! - [`Email`]: the canonical form (trimmed; local part NFC and lowercased; domain by IDNA
//!   UTS #46) every lookup and insert goes through; [`normalize_stored_emails`] brings older
//!   rows to it at start.
//! - [`PasswordPolicy`]: NIST SP 800-63B style rules for new passwords (12 to 128 characters, a
//!   shipped blocklist of common passwords, not the e-mail, a zxcvbn estimate), no composition
//!   rules.
//! - [`PasswordHasher`]: argon2id at OWASP parameters on dedicated background-priority threads
//!   ([`HashPriority`]), bounded by a semaphore, with transparent rehashing when the parameters
//!   change.
//! - [`aspnet_identity`]: ASP.NET Core Identity password hashes (imported users keep their
//!   passwords; re-hashed with argon2id on their first sign-in).
//! - [`import`]: users of an ASP.NET Core Identity store brought over with their passwords.
//! - [`UserStore`]: the storage seam, implemented by [`SqliteUserStore`] and
//!   [`PostgresUserStore`] with the same SQL; [`conformance`] is the suite both pass.
//! - [`Database`]: opens either from a URL (and MongoDB, `mongo`, with the cargo feature
//!   `mongodb`).
//! - [`Accounts`]: the service (register, authenticate, change password, admin operations).
//! - [`lifecycle`]: the flows over mail (address verification, forgotten passwords, address
//!   changes, notices) and administrators' control of accounts (disable, enable, delete, set a
//!   password), with mails queued through the [`AccountMailer`] seam ([`notify`]) and the
//!   single-use tokens of mail links kept behind the [`MailTokenStore`] seam ([`tokens`]):
//!   Redis ([`RedisMailTokenStore`]), SQLite ([`SqliteMailTokenStore`]) or PostgreSQL
//!   ([`PostgresMailTokenStore`]), held to [`tokens_conformance`].
//! - [`passkeys`]: WebAuthn credentials ([`PasskeyStore`]: SQLite and PostgreSQL) and the
//!   ceremonies that register and use them ([`PasskeyService`], state in the token store).
//! - [`throttle`]: failed secret checks counted per (account, client address), per account and
//!   per client address, and registrations per client address, with growing,
//!   capped locks ([`Accounts::with_throttle`]); counters in Redis ([`RedisAttemptStore`]),
//!   SQLite ([`SqliteAttemptStore`]) or PostgreSQL ([`PostgresAttemptStore`]) behind the
//!   [`AttemptStore`] seam, held to [`throttle_conformance`].
//!
//! Backends are cargo features: `sqlite` (the `Sqlite*` stores, [`Database::Sqlite`]),
//! `postgres` (the `Postgres*` stores, [`Database::Postgres`]) and `redis`
//! ([`RedisAttemptStore`], [`RedisMailTokenStore`]), all on by default, each turning on the same
//! backend of `ringfence-sessions`; `mongodb` (the `mongo` module) is off by default.
//! [`Database`] exists with at least one of `sqlite`, `postgres`, `mongodb`; without any, an
//! app brings its own [`UserStore`]. `conformance` (off by default) ships the suites.
//!
//! ```no_run
//! # #[cfg(feature = "sqlite")]
//! # async fn demo(sessions: ringfence_sessions::SessionManager) -> Result<(), Box<dyn std::error::Error>> {
//! use ringfence_accounts::{Accounts, Database, PasswordHasher, PasswordPolicy};
//! use ringfence_keyring::SystemClock;
//!
//! let db = Database::connect("sqlite://ringfence-data/ringfence.db").await?;
//! let accounts = Accounts::new(
//!     db.user_store().await?,
//!     PasswordHasher::default(),
//!     PasswordPolicy::default(),
//!     sessions,
//!     SystemClock::shared(),
//! );
//! let user = accounts.register("Alice@Example.com", "correct horse battery staple").await?;
//! assert_eq!(accounts.authenticate("alice@example.com", "correct horse battery staple").await?.id, user.id);
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod aspnet_identity;
#[cfg(any(feature = "conformance", doc))]
pub mod conformance;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mongodb"))]
mod database;
mod email;
mod email_migration;
mod error;
pub mod factors;
#[cfg(any(feature = "conformance", doc))]
pub mod factors_conformance;
mod hash_pool;
mod hasher;
pub mod import;
pub mod lifecycle;
#[cfg(feature = "mongodb")]
pub mod mongo;
pub mod notify;
pub mod passkeys;
mod policy;
mod service;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
mod store;
pub mod throttle;
#[cfg(any(feature = "conformance", doc))]
pub mod throttle_conformance;
pub mod tokens;
#[cfg(any(feature = "conformance", doc))]
pub mod tokens_conformance;
mod user_cache;

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mongodb"))]
pub use database::{Database, ACQUIRE_TIMEOUT, CONNECT_TIMEOUT, SQLITE_BUSY_TIMEOUT};
pub use email::{Email, MAX_EMAIL_LEN, MAX_LOCAL_LEN};
pub use email_migration::{normalize_stored_emails, EmailMigration};
pub use error::AccountError;
#[cfg(feature = "postgres")]
pub use factors::PostgresFactorStore;
#[cfg(feature = "sqlite")]
pub use factors::SqliteFactorStore;
pub use factors::{FactorStore, MfaStatus, SecondFactorCode, TotpRecord, TotpSetup};
pub use hash_pool::HashPriority;
pub use hasher::{Argon2Params, PasswordHasher, Verification, HASH_QUEUE_LIMIT};
pub use lifecycle::MailFlowSettings;
pub use notify::{AccountMail, AccountMailer, SecondFactor};
#[cfg(feature = "postgres")]
pub use passkeys::PostgresPasskeyStore;
#[cfg(feature = "sqlite")]
pub use passkeys::SqlitePasskeyStore;
pub use passkeys::{PasskeyError, PasskeyService, PasskeyStore, PasskeyStoreError, StoredPasskey};
pub use policy::{
    common_password_count, is_common_password, PasswordPolicy, PasswordRejection, MIN_SCORE,
};
pub use service::{Accounts, CLOCK_SKEW_ALLOWANCE, REGISTRATIONS_METRIC, SIGN_IN_METRIC};
#[cfg(feature = "postgres")]
pub use sql::PostgresUserStore;
#[cfg(feature = "sqlite")]
pub use sql::SqliteUserStore;
pub use store::{User, UserRecord, UserStore, UserStoreError};
#[cfg(feature = "postgres")]
pub use throttle::PostgresAttemptStore;
#[cfg(feature = "redis")]
pub use throttle::RedisAttemptStore;
#[cfg(feature = "sqlite")]
pub use throttle::SqliteAttemptStore;
pub use throttle::{
    normalize_address, AttemptStore, AttemptStoreError, FailureCount, Throttle, ThrottleKey,
    ThrottleKeys, ThrottleKind, ThrottlePolicy,
};
#[cfg(feature = "postgres")]
pub use tokens::PostgresMailTokenStore;
#[cfg(feature = "redis")]
pub use tokens::RedisMailTokenStore;
#[cfg(feature = "sqlite")]
pub use tokens::SqliteMailTokenStore;
pub use tokens::{
    IssuedToken, MailToken, MailTokenRecord, MailTokenStore, TokenHash, TokenPurpose,
    TokenStoreError,
};
pub use user_cache::DEFAULT_USER_CACHE_TTL;

// The README's Rust blocks compile as doctests, so what a reader of crates.io copies works.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}
