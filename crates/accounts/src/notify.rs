//! The seam through which the accounts service has mail sent: [`AccountMailer`] takes an
//! [`AccountMail`] (what happened, and for an action the token of its link) and an address.
//!
//! The service decides *when* a mail goes and to whom; an implementation decides how it looks
//! and how it travels (the server adapts this trait to its mail crate: templates, SMTP or the
//! outbox directory, retries). Nothing here knows the public URL: [`AccountMail::link_path`]
//! gives the path and query of the one link an action mail holds, to be put after it.

use chrono::{DateTime, Utc};

use crate::tokens::{IssuedToken, MailToken};
use crate::Email;

/// Hands account mails to delivery.
///
/// `send` must return at once: it is called on the request path (and from sign-in), so an
/// implementation enqueues and delivers elsewhere. It cannot fail the caller's action: a
/// delivery problem is the implementation's to retry, log and count, never the user's answer.
pub trait AccountMailer: Send + Sync + 'static {
    /// Queues `mail` for `to`.
    fn send(&self, to: &Email, mail: AccountMail);
}

/// A second factor, as notices name it (issue 15 adds the factors themselves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecondFactor {
    /// A TOTP authenticator app.
    Totp,
    /// A set of recovery codes.
    RecoveryCodes,
}

impl SecondFactor {
    /// `totp` or `recovery_codes`.
    pub fn as_str(self) -> &'static str {
        match self {
            SecondFactor::Totp => "totp",
            SecondFactor::RecoveryCodes => "recovery_codes",
        }
    }
}

/// One mail about an account. Action mails carry the token of their only link (its `Debug`
/// form hides it); notices carry what they tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountMail {
    /// "Confirm your address": `/verify-email?token=T`, to the account's address.
    VerifyEmail {
        /// The link's token and expiry.
        link: IssuedToken,
    },
    /// "Reset your password": `/reset-password?token=T`, to the account's address.
    ResetPassword {
        /// The link's token and expiry.
        link: IssuedToken,
    },
    /// "Confirm your new address": `/confirm-email?token=T`, to the *new* address.
    ConfirmEmailChange {
        /// The link's token and expiry.
        link: IssuedToken,
        /// The address the account moves to once confirmed.
        new_email: String,
    },
    /// Notice: the password was changed by its owner or by an administrator.
    PasswordChanged,
    /// Notice: the password was reset through a reset link; every session ended.
    PasswordReset,
    /// Notice to the *old* address: the account moved to `new_email`.
    EmailChanged {
        /// The account's address from now on.
        new_email: String,
    },
    /// Notice: a second factor was set up.
    FactorAdded {
        /// Which one.
        factor: SecondFactor,
    },
    /// Notice: a second factor was removed.
    FactorRemoved {
        /// Which one.
        factor: SecondFactor,
    },
    /// Notice: a passkey was registered.
    PasskeyAdded {
        /// The name its owner gave it.
        name: String,
    },
    /// Notice: a passkey was removed.
    PasskeyRemoved {
        /// Its name.
        name: String,
    },
    /// Notice: a recovery code was used to sign in.
    RecoveryCodeUsed {
        /// Codes still unused.
        remaining: u32,
    },
    /// Notice: an administrator removed every second factor and passkey.
    MfaReset,
}

impl AccountMail {
    /// A stable name of the kind of mail (`verify_email`, `password_reset`, …): for template
    /// names, logs and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            AccountMail::VerifyEmail { .. } => "verify_email",
            AccountMail::ResetPassword { .. } => "reset_password",
            AccountMail::ConfirmEmailChange { .. } => "confirm_email_change",
            AccountMail::PasswordChanged => "password_changed",
            AccountMail::PasswordReset => "password_reset",
            AccountMail::EmailChanged { .. } => "email_changed",
            AccountMail::FactorAdded { .. } => "factor_added",
            AccountMail::FactorRemoved { .. } => "factor_removed",
            AccountMail::PasskeyAdded { .. } => "passkey_added",
            AccountMail::PasskeyRemoved { .. } => "passkey_removed",
            AccountMail::RecoveryCodeUsed { .. } => "recovery_code_used",
            AccountMail::MfaReset => "mfa_reset",
        }
    }

    /// The token and expiry of an action mail's link; `None` for a notice.
    pub fn link(&self) -> Option<&IssuedToken> {
        match self {
            AccountMail::VerifyEmail { link }
            | AccountMail::ResetPassword { link }
            | AccountMail::ConfirmEmailChange { link, .. } => Some(link),
            _ => None,
        }
    }

    /// The page an action mail's link opens (`/reset-password`, `/verify-email`,
    /// `/confirm-email`); `None` for a notice.
    pub fn link_page(&self) -> Option<&'static str> {
        match self {
            AccountMail::VerifyEmail { .. } => Some("/verify-email"),
            AccountMail::ResetPassword { .. } => Some("/reset-password"),
            AccountMail::ConfirmEmailChange { .. } => Some("/confirm-email"),
            _ => None,
        }
    }

    /// Path and query of an action mail's only link, e.g. `/reset-password?token=T`, to put
    /// after the public URL; `None` for a notice. The token needs no escaping
    /// (`[A-Za-z0-9_-]`).
    pub fn link_path(&self) -> Option<String> {
        let page = self.link_page()?;
        let link = self.link()?;
        Some(format!("{page}?token={}", link.token.as_str()))
    }

    /// When an action mail's link stops working; `None` for a notice.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.link().map(|l| l.expires_at)
    }

    /// How long an action mail's link works from when it was sent (to state in the mail);
    /// `None` for a notice.
    pub fn valid_for(&self) -> Option<chrono::Duration> {
        self.link().map(|l| l.valid_for)
    }

    /// The token of an action mail; `None` for a notice.
    pub fn token(&self) -> Option<&MailToken> {
        self.link().map(|l| &l.token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_mails_have_one_link_and_notices_none() {
        let link = IssuedToken {
            token: MailToken::generate(),
            expires_at: DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
            valid_for: chrono::Duration::hours(1),
        };
        let reset = AccountMail::ResetPassword { link: link.clone() };
        assert_eq!(
            reset.link_path(),
            Some(format!("/reset-password?token={}", link.token.as_str()))
        );
        assert_eq!(reset.expires_at(), Some(link.expires_at));
        assert_eq!(reset.valid_for(), Some(chrono::Duration::hours(1)));
        assert!(!format!("{reset:?}").contains(link.token.as_str()));
        let change = AccountMail::ConfirmEmailChange {
            link: link.clone(),
            new_email: "new@example.com".into(),
        };
        assert!(change
            .link_path()
            .unwrap()
            .starts_with("/confirm-email?token="));
        assert!(AccountMail::VerifyEmail { link }
            .link_path()
            .unwrap()
            .starts_with("/verify-email?token="));
        for notice in [
            AccountMail::PasswordChanged,
            AccountMail::PasswordReset,
            AccountMail::EmailChanged {
                new_email: "n@example.com".into(),
            },
            AccountMail::FactorAdded {
                factor: SecondFactor::Totp,
            },
            AccountMail::MfaReset,
        ] {
            assert_eq!(notice.link_path(), None, "{}", notice.kind());
            assert_eq!(notice.token(), None);
        }
    }
}
