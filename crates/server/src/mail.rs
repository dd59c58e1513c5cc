//! The bridge from the accounts service's mail seam ([`AccountMailer`], [`AccountMail`]) to the
//! mail crate ([`Mailer`], [`Letter`]): the one place where an account event becomes a letter.
//!
//! The accounts crate decides when a mail goes and to whom; the mail crate renders and delivers
//! it. Neither knows the other, so the server, which knows both, maps one onto the other here.
//! The links in the letters are built by the mail crate from its [`ringfence_mail::PublicUrl`],
//! which [`mail_public_url`] makes from the server's [`PublicUrl`] (`--public-url`, parsed once).

use std::path::Path;
use std::time::Duration;

use ringfence_accounts::{AccountMail, AccountMailer, Email, SecondFactor};
use ringfence_axum::PublicUrl;
use ringfence_mail::{ActionToken, Letter, MailError, MailSettings, Mailer, RetryPolicy};

/// The app's name as mails and their subjects say it.
pub const APP_NAME: &str = "ringfence";

/// The mail crate's public URL, made from the server's: the flag is parsed once (by
/// [`PublicUrl::parse`]) and its normalized form handed on, so links in mails and the
/// server's own idea of where it lives cannot disagree.
pub fn mail_public_url(url: &PublicUrl) -> Result<ringfence_mail::PublicUrl, MailError> {
    ringfence_mail::PublicUrl::parse(url.as_str())
}

/// The server's mail settings, as `ringfence serve` (and the admin commands that send mail)
/// take them from their flags.
#[derive(Debug, Clone, Copy)]
pub struct MailOptions<'a> {
    /// `--public-url`.
    pub public_url: &'a PublicUrl,
    /// `--smtp-url`; `None`: mails are written to `DATA_DIR/outbox/`.
    pub smtp_url: Option<&'a str>,
    /// `--mail-from`; `None`: `ringfence@` + the public URL's host.
    pub mail_from: Option<&'a str>,
    /// The data directory (for the outbox).
    pub data_dir: &'a Path,
}

/// Starts the mail queue for `options` (SMTP or the outbox) on the current Tokio runtime. Each
/// error is one line naming the setting at fault.
pub fn start_mailer(options: MailOptions<'_>) -> Result<Mailer, MailError> {
    Mailer::from_settings(MailSettings {
        app_name: APP_NAME,
        public_url: options.public_url.as_str(),
        smtp_url: options.smtp_url,
        mail_from: options.mail_from,
        data_dir: options.data_dir,
        policy: RetryPolicy::default(),
    })
}

/// The letter that tells what `mail` is about. Fails only for an action mail whose token the
/// mail crate refuses (it never does for tokens the accounts crate makes).
pub fn letter_for(mail: AccountMail) -> Result<Letter, MailError> {
    let action = |link: &ringfence_accounts::tokens::IssuedToken| {
        Ok::<_, MailError>((
            ActionToken::new(link.token.as_str())?,
            // Lifetimes are between a minute and 30 days (MailFlowSettings), never negative.
            link.valid_for.to_std().unwrap_or(Duration::ZERO),
        ))
    };
    Ok(match mail {
        AccountMail::VerifyEmail { link } => {
            let (token, valid_for) = action(&link)?;
            Letter::VerifyEmail { token, valid_for }
        }
        AccountMail::ResetPassword { link } => {
            let (token, valid_for) = action(&link)?;
            Letter::ResetPassword { token, valid_for }
        }
        AccountMail::ConfirmEmailChange { link, .. } => {
            let (token, valid_for) = action(&link)?;
            Letter::ConfirmEmailChange { token, valid_for }
        }
        AccountMail::PasswordChanged => Letter::PasswordChanged,
        AccountMail::PasswordReset => Letter::PasswordReset,
        AccountMail::EmailChanged { new_email } => Letter::EmailChanged { new_email },
        // The letters speak of "two-step verification" whichever factor it was.
        AccountMail::FactorAdded {
            factor: SecondFactor::Totp | SecondFactor::RecoveryCodes,
        } => Letter::SecondFactorAdded,
        AccountMail::FactorRemoved {
            factor: SecondFactor::Totp | SecondFactor::RecoveryCodes,
        } => Letter::SecondFactorRemoved,
        AccountMail::PasskeyAdded { name } => Letter::PasskeyAdded { name },
        AccountMail::PasskeyRemoved { name } => Letter::PasskeyRemoved { name },
        AccountMail::RecoveryCodeUsed { remaining } => Letter::RecoveryCodeUsed {
            codes_left: remaining,
        },
        AccountMail::MfaReset => Letter::SecondFactorsResetByAdmin,
    })
}

/// [`AccountMailer`] over a [`Mailer`]: maps each mail with [`letter_for`] and queues it.
#[derive(Debug, Clone)]
pub struct AccountLetters {
    mailer: Mailer,
}

impl AccountLetters {
    /// Sends the accounts service's mails through `mailer`.
    pub fn new(mailer: Mailer) -> Self {
        Self { mailer }
    }

    /// The mailer (for shutdown and statistics).
    pub fn mailer(&self) -> &Mailer {
        &self.mailer
    }

    /// Waits up to `grace` for queued mails to go out, then stops the queue. Returns how many
    /// were left undelivered (the mailer logs and counts them).
    pub async fn shutdown(&self, grace: Duration) -> usize {
        self.mailer.shutdown(grace).await
    }
}

impl AccountMailer for AccountLetters {
    fn send(&self, to: &Email, mail: AccountMail) {
        let kind = mail.kind();
        // A failure to queue never fails the user's action: the mailer has logged and counted
        // a full queue; the rest is logged here, without the address, link or token.
        match letter_for(mail) {
            Ok(letter) => {
                if let Err(e) = self.mailer.send(to.as_str(), letter) {
                    tracing::warn!(kind, error = %e, "account mail not queued");
                }
            }
            Err(e) => tracing::error!(kind, error = %e, "account mail could not be made"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringfence_accounts::tokens::{IssuedToken, MailToken};
    use ringfence_mail::Composer;

    fn issued(hours: i64) -> IssuedToken {
        IssuedToken {
            token: MailToken::generate(),
            expires_at: chrono::DateTime::<chrono::Utc>::from_timestamp(1_700_000_000, 0)
                .unwrap_or_default(),
            valid_for: chrono::Duration::hours(hours),
        }
    }

    /// The link in a letter is the accounts crate's link path after the public URL: the two
    /// crates agree on every page, the token travels unchanged, and the lifetime is kept.
    #[test]
    fn action_mails_become_letters_whose_link_is_the_public_url_and_the_link_path() {
        let public = PublicUrl::parse("https://auth.example.com/base/").unwrap();
        let mail_url = mail_public_url(&public).unwrap();
        assert_eq!(mail_url.as_str(), "https://auth.example.com/base");
        let composer = Composer::new(APP_NAME, mail_url.clone(), None).unwrap();
        for mail in [
            AccountMail::VerifyEmail { link: issued(24) },
            AccountMail::ResetPassword { link: issued(1) },
            AccountMail::ConfirmEmailChange {
                link: issued(24),
                new_email: "new@example.com".into(),
            },
        ] {
            let path = mail.link_path().unwrap();
            let hours = mail.valid_for().unwrap().num_hours();
            let letter = letter_for(mail).unwrap();
            let (action, token) = letter.action().unwrap();
            assert_eq!(mail_url.link(action, token), public.join(&path));
            let valid_for = match &letter {
                Letter::VerifyEmail { valid_for, .. }
                | Letter::ResetPassword { valid_for, .. }
                | Letter::ConfirmEmailChange { valid_for, .. } => *valid_for,
                other => panic!("not an action letter: {other:?}"),
            };
            assert_eq!(valid_for, Duration::from_secs(hours as u64 * 3600));
            let email = composer.compose("ada@example.com", &letter).unwrap();
            let text = String::from_utf8_lossy(email.bytes()).into_owned();
            assert!(text.contains(&public.join(&path)), "{text}");
        }
    }

    #[test]
    fn notices_become_letters_without_a_link() {
        for (mail, kind) in [
            (AccountMail::PasswordChanged, "password_changed"),
            (AccountMail::PasswordReset, "password_reset"),
            (
                AccountMail::EmailChanged {
                    new_email: "n@example.com".into(),
                },
                "email_changed",
            ),
            (
                AccountMail::FactorAdded {
                    factor: SecondFactor::Totp,
                },
                "second_factor_added",
            ),
            (
                AccountMail::FactorRemoved {
                    factor: SecondFactor::RecoveryCodes,
                },
                "second_factor_removed",
            ),
            (
                AccountMail::PasskeyAdded { name: "key".into() },
                "passkey_added",
            ),
            (
                AccountMail::PasskeyRemoved { name: "key".into() },
                "passkey_removed",
            ),
            (
                AccountMail::RecoveryCodeUsed { remaining: 7 },
                "recovery_code_used",
            ),
            (AccountMail::MfaReset, "second_factors_reset"),
        ] {
            let letter = letter_for(mail).unwrap();
            assert_eq!(letter.kind(), kind);
            assert!(letter.action().is_none(), "{kind}");
        }
        assert_eq!(
            letter_for(AccountMail::RecoveryCodeUsed { remaining: 7 }).unwrap(),
            Letter::RecoveryCodeUsed { codes_left: 7 }
        );
    }

    #[tokio::test]
    async fn account_mails_reach_the_outbox_of_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let public = PublicUrl::parse("http://localhost:8080").unwrap();
        let mailer = start_mailer(MailOptions {
            public_url: &public,
            smtp_url: None,
            mail_from: None,
            data_dir: dir.path(),
        })
        .unwrap();
        let letters = AccountLetters::new(mailer);
        let mail = AccountMail::ResetPassword { link: issued(1) };
        let link = public.join(&mail.link_path().unwrap());
        letters.send(&Email::parse("ada@example.com").unwrap(), mail);
        assert_eq!(letters.shutdown(Duration::from_secs(5)).await, 0);
        let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(
            text.contains("From: ringfence <ringfence@localhost>"),
            "{text}"
        );
        assert!(text.contains(&link), "{text}");
    }
}
