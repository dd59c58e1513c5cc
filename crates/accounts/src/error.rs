//! The error type of the accounts service.

use crate::tokens::TokenStoreError;
use crate::{AttemptStoreError, PasswordRejection, UserStoreError};

/// Why an account operation failed. Every message can be shown to the person using the app;
/// none tells whether an e-mail address has an account when signing in.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The e-mail address is malformed; the text says how.
    #[error("invalid e-mail address: {0}")]
    InvalidEmail(String),
    /// The new password does not meet the policy.
    #[error("{0}")]
    WeakPassword(PasswordRejection),
    /// Registration with an e-mail address that already has an account.
    #[error("an account with this e-mail address already exists")]
    EmailTaken,
    /// Sign-in failed: unknown e-mail or wrong password (deliberately indistinguishable).
    #[error("the e-mail address or password is incorrect")]
    InvalidCredentials,
    /// Too many recent failed secret checks (sign-in, current password) for this e-mail
    /// address or from this client address, or too many registrations from this client
    /// address (see [`crate::throttle`]); nothing was checked. HTTP `429` with a `Retry-After`
    /// of [`AccountError::retry_after_secs`]. The same for every e-mail, known or not.
    #[error("too many attempts; please wait {} s and try again", whole_seconds(*.retry_after))]
    Throttled {
        /// How long until the lock ends (positive).
        retry_after: chrono::Duration,
    },
    /// A password change with a wrong current password.
    #[error("the current password is incorrect")]
    CurrentPasswordIncorrect,
    /// The account does not exist (any more).
    #[error("no such account")]
    UserNotFound,
    /// A mail-link token that is malformed, unknown, already used, expired, of another purpose,
    /// or void because the account's password or address changed since it was sent. HTTP `400`.
    #[error("this link is invalid or has expired; please ask for a new one")]
    InvalidToken,
    /// A wrong, replayed or malformed second-factor code (TOTP or recovery code); counted
    /// like a wrong password. HTTP `401` `invalid_code`.
    #[error("the code is incorrect or was already used")]
    InvalidCode,
    /// A TOTP confirmation without a setup to confirm. HTTP `409`.
    #[error("start setting up TOTP first")]
    NoPendingTotp,
    /// An operation on second factors the user does not have (new recovery codes without
    /// TOTP). HTTP `409`.
    #[error("no second factor is set up")]
    MfaNotEnabled,
    /// The right password of an account an administrator disabled (a wrong one gets
    /// [`AccountError::InvalidCredentials`]). HTTP `403`.
    #[error("this account is disabled")]
    AccountDisabled,
    /// The right password, but the address is not verified and the deployment requires it;
    /// a verification mail was sent. HTTP `403`.
    #[error("please confirm your e-mail address first: follow the link in the mail we sent you")]
    EmailNotVerified,
    /// Every password-hashing thread stayed busy for longer than the hasher waits
    /// ([`crate::HASH_QUEUE_LIMIT`]): the node is saturated. HTTP `503` with a `Retry-After`;
    /// nothing was checked or changed.
    #[error(
        "the server is too busy to check passwords right now; please try again in a few seconds"
    )]
    Busy,
    /// A backing store (users or sessions) is unreachable; HTTP `503`.
    #[error("the account service is temporarily unavailable ({0})")]
    Store(String),
    /// Stored data could not be read (e.g. a malformed password hash); logged, never the
    /// client's fault.
    #[error("stored account data is malformed: {0}")]
    Corrupt(String),
    /// The service was configured with impossible settings (e.g. argon2 parameters).
    #[error("invalid accounts configuration: {0}")]
    InvalidConfig(String),
    /// An internal failure (a hashing task panicked or was cancelled at shutdown).
    #[error("internal error in the account service: {0}")]
    Internal(String),
}

impl AccountError {
    /// A stable machine-readable code for APIs.
    pub fn code(&self) -> &'static str {
        match self {
            AccountError::InvalidEmail(_) => "invalid_email",
            AccountError::WeakPassword(_) => "weak_password",
            AccountError::EmailTaken => "email_taken",
            AccountError::InvalidCredentials => "invalid_credentials",
            AccountError::Throttled { .. } => "too_many_attempts",
            AccountError::CurrentPasswordIncorrect => "current_password_incorrect",
            AccountError::UserNotFound => "user_not_found",
            AccountError::InvalidToken => "invalid_token",
            AccountError::InvalidCode => "invalid_code",
            AccountError::NoPendingTotp => "totp_setup_not_started",
            AccountError::MfaNotEnabled => "mfa_not_enabled",
            AccountError::AccountDisabled => "account_disabled",
            AccountError::EmailNotVerified => "email_not_verified",
            AccountError::Busy => "busy",
            AccountError::Store(_) => "store_unavailable",
            AccountError::Corrupt(_) => "corrupt_data",
            AccountError::InvalidConfig(_) => "invalid_config",
            AccountError::Internal(_) => "internal",
        }
    }

    /// Whether the client's input was at fault (`4xx`) rather than the service (`5xx`).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            AccountError::InvalidEmail(_)
                | AccountError::WeakPassword(_)
                | AccountError::EmailTaken
                | AccountError::InvalidCredentials
                | AccountError::Throttled { .. }
                | AccountError::CurrentPasswordIncorrect
                | AccountError::UserNotFound
                | AccountError::InvalidToken
                | AccountError::InvalidCode
                | AccountError::NoPendingTotp
                | AccountError::MfaNotEnabled
                | AccountError::AccountDisabled
                | AccountError::EmailNotVerified
        )
    }

    /// For [`AccountError::Throttled`], the wait in whole seconds, rounded up and at least 1
    /// (the value of an HTTP `Retry-After` header); for [`AccountError::Busy`], a few seconds;
    /// `None` for every other error.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            AccountError::Throttled { retry_after } => Some(whole_seconds(*retry_after)),
            AccountError::Busy => Some(BUSY_RETRY_AFTER_SECS),
            _ => None,
        }
    }
}

/// What a client told [`AccountError::Busy`] waits before trying again.
const BUSY_RETRY_AFTER_SECS: u64 = 5;

/// Rounded up, at least 1: a client told to come back in 0 s would come back too early.
fn whole_seconds(d: chrono::Duration) -> u64 {
    let ms = d.num_milliseconds().max(1);
    u64::try_from((ms + 999) / 1000).unwrap_or(1)
}

impl From<AttemptStoreError> for AccountError {
    fn from(e: AttemptStoreError) -> Self {
        match e {
            // Sign-in fails closed: without the counters, guessing would be unlimited.
            AttemptStoreError::Unavailable(msg) | AttemptStoreError::Migration(msg) => {
                AccountError::Store(format!("sign-in attempt store: {msg}"))
            }
            AttemptStoreError::Corrupt(msg) => {
                AccountError::Corrupt(format!("sign-in attempt store: {msg}"))
            }
        }
    }
}

impl From<TokenStoreError> for AccountError {
    fn from(e: TokenStoreError) -> Self {
        match e {
            TokenStoreError::Unavailable(msg) | TokenStoreError::Migration(msg) => {
                AccountError::Store(format!("mail token store: {msg}"))
            }
            TokenStoreError::Corrupt(msg) => {
                AccountError::Corrupt(format!("mail token store: {msg}"))
            }
        }
    }
}

impl From<PasswordRejection> for AccountError {
    fn from(rejection: PasswordRejection) -> Self {
        AccountError::WeakPassword(rejection)
    }
}

impl From<UserStoreError> for AccountError {
    fn from(e: UserStoreError) -> Self {
        match e {
            UserStoreError::EmailTaken => AccountError::EmailTaken,
            UserStoreError::Unavailable(msg) => AccountError::Store(msg),
            UserStoreError::Corrupt(msg) => AccountError::Corrupt(msg),
            UserStoreError::InvalidUrl(msg) => AccountError::InvalidConfig(msg),
            UserStoreError::Migration(msg) => AccountError::Store(msg),
        }
    }
}
