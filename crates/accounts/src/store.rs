//! The user record and the storage seam for it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Email;

/// A user account as the rest of the system sees it (no password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// UUID v4, lowercase hyphenated; stable for the life of the account.
    pub id: String,
    /// Normalized e-mail address (see [`Email`]).
    pub email: String,
    /// May open the admin pages and API.
    pub is_admin: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// When the password was last set by its owner or an admin (not by a transparent rehash).
    pub password_changed_at: DateTime<Utc>,
    /// The owner proved they read mail at `email` (a verification link, a password reset link
    /// or a confirmed address change). Accounts made before this field existed start `false`.
    pub email_verified: bool,
    /// An administrator disabled the account: its right password gets
    /// [`crate::AccountError::AccountDisabled`] and it has no sessions.
    pub disabled: bool,
}

/// A user together with the stored password hash; only the accounts service sees this.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The account.
    pub user: User,
    /// argon2 PHC string.
    pub password_hash: String,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hash is not a secret in the strict sense, but it is offline-crackable: keep it
        // out of debug output and therefore out of logs.
        f.debug_struct("UserRecord")
            .field("user", &self.user)
            .field("password_hash", &"..")
            .finish()
    }
}

/// Why a user store call failed.
#[derive(Debug, thiserror::Error)]
pub enum UserStoreError {
    /// Another account already has this (normalized) e-mail address.
    #[error("an account with this e-mail address already exists")]
    EmailTaken,
    /// The database cannot be reached or timed out; callers answer `503`.
    #[error("account store unavailable: {0}")]
    Unavailable(String),
    /// The database returned a row this code cannot read.
    #[error("account store returned a malformed record: {0}")]
    Corrupt(String),
    /// The database URL is not one this crate can use.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// The schema migrations could not be applied (e.g. a changed migration already applied).
    #[error("account store migration failed: {0}")]
    Migration(String),
}

/// Where user accounts live. Every backend passes [`crate::conformance`].
///
/// E-mails arrive already normalized ([`Email`]), so backends compare them byte for byte and
/// order them by byte value.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Stores a new account; [`UserStoreError::EmailTaken`] when the e-mail is in use.
    async fn insert(&self, user: &User, password_hash: &str) -> Result<(), UserStoreError>;

    /// Finds an account by e-mail.
    async fn by_email(&self, email: &Email) -> Result<Option<UserRecord>, UserStoreError>;

    /// Finds an account by id.
    async fn by_id(&self, id: &str) -> Result<Option<UserRecord>, UserStoreError>;

    /// Replaces the password hash; `false` when no such account exists.
    async fn set_password_hash(
        &self,
        id: &str,
        hash: &str,
        changed_at: DateTime<Utc>,
    ) -> Result<bool, UserStoreError>;

    /// Grants or revokes admin rights; `false` when no such account exists.
    async fn set_admin(&self, id: &str, admin: bool) -> Result<bool, UserStoreError>;

    /// Replaces the stored e-mail (rewriting a row to the current normal form, see
    /// [`crate::normalize_stored_emails`]); `false` when no such account exists,
    /// [`UserStoreError::EmailTaken`] when another account has it.
    async fn set_email(&self, id: &str, email: &Email) -> Result<bool, UserStoreError>;

    /// One page of accounts ordered by e-mail.
    async fn list(&self, limit: u32, offset: u32) -> Result<Vec<User>, UserStoreError>;

    /// Marks the address verified or not; `false` when no such account exists.
    async fn set_email_verified(&self, id: &str, verified: bool) -> Result<bool, UserStoreError>;

    /// Disables or enables the account; `false` when no such account exists.
    async fn set_disabled(&self, id: &str, disabled: bool) -> Result<bool, UserStoreError>;

    /// Deletes the account; `false` when no such account exists.
    async fn delete(&self, id: &str) -> Result<bool, UserStoreError>;

    /// Moves the account from the address `from` to `to` and sets `email_verified`, in one
    /// statement: [`UserStoreError::EmailTaken`] when another account holds `to` at that moment
    /// (the unique index decides, so two accounts racing for one address cannot both get it);
    /// `false` when no account with this id has the address `from` (any more).
    async fn change_email(
        &self,
        id: &str,
        from: &Email,
        to: &Email,
        verified: bool,
    ) -> Result<bool, UserStoreError>;

    /// One page of accounts ordered by id (byte order): those with an id greater than `after`
    /// (all when `None`), at most `limit`. Stable under inserts and deletes, unlike an offset.
    async fn list_after(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<User>, UserStoreError>;

    /// Number of accounts.
    async fn count(&self) -> Result<u64, UserStoreError>;

    /// Checks that the store answers (readiness).
    async fn ping(&self) -> Result<(), UserStoreError>;
}
