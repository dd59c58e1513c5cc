//! Every mail the product sends, and its two templates (plain text and HTML).

use std::time::Duration;

use askama::Template;

use crate::links::{Action, ActionToken};
use crate::MailError;

/// A mail the product sends. Action letters carry the token of their one link (the
/// [`crate::Composer`] builds the link from the public URL); notices carry no link at all, so
/// a phishing mail imitating one stands out.
///
/// `Debug` never shows a token ([`ActionToken`] redacts itself).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Letter {
    /// After registration (and on resend): `PUBLIC_URL/verify-email?token=T`.
    VerifyEmail {
        /// The token of the link.
        token: ActionToken,
        /// How long the token works, said in the mail.
        valid_for: Duration,
    },
    /// Forgot password, or an administrator's reset: `PUBLIC_URL/reset-password?token=T`.
    ResetPassword {
        /// The token of the link.
        token: ActionToken,
        /// How long the token works, said in the mail.
        valid_for: Duration,
    },
    /// To the NEW address of an e-mail change: `PUBLIC_URL/confirm-email?token=T`.
    ConfirmEmailChange {
        /// The token of the link.
        token: ActionToken,
        /// How long the token works, said in the mail.
        valid_for: Duration,
    },
    /// Notice: the password was changed by the signed-in user (or an administrator).
    PasswordChanged,
    /// Notice: the password was reset through a reset link.
    PasswordReset,
    /// Notice to the OLD address: the address was changed to `new_email`.
    EmailChanged {
        /// The account's new address.
        new_email: String,
    },
    /// Notice: a second factor (TOTP) was turned on.
    SecondFactorAdded,
    /// Notice: a second factor (TOTP) was turned off.
    SecondFactorRemoved,
    /// Notice: a passkey was registered.
    PasskeyAdded {
        /// The name the user gave it.
        name: String,
    },
    /// Notice: a passkey was removed.
    PasskeyRemoved {
        /// Its name.
        name: String,
    },
    /// Notice: a recovery code was used to sign in.
    RecoveryCodeUsed {
        /// How many unused codes are left.
        codes_left: u32,
    },
    /// Notice: an administrator removed every second factor and passkey of the account.
    SecondFactorsResetByAdmin,
}

impl Letter {
    /// A stable name for logs and file names: `verify_email`, `password_changed`, …
    pub fn kind(&self) -> &'static str {
        match self {
            Letter::VerifyEmail { .. } => "verify_email",
            Letter::ResetPassword { .. } => "reset_password",
            Letter::ConfirmEmailChange { .. } => "confirm_email_change",
            Letter::PasswordChanged => "password_changed",
            Letter::PasswordReset => "password_reset",
            Letter::EmailChanged { .. } => "email_changed",
            Letter::SecondFactorAdded => "second_factor_added",
            Letter::SecondFactorRemoved => "second_factor_removed",
            Letter::PasskeyAdded { .. } => "passkey_added",
            Letter::PasskeyRemoved { .. } => "passkey_removed",
            Letter::RecoveryCodeUsed { .. } => "recovery_code_used",
            Letter::SecondFactorsResetByAdmin => "second_factors_reset",
        }
    }

    /// The `Subject:`, naming the app.
    pub fn subject(&self, app: &str) -> String {
        match self {
            Letter::VerifyEmail { .. } => format!("Confirm your e-mail address for {app}"),
            Letter::ResetPassword { .. } => format!("Reset your {app} password"),
            Letter::ConfirmEmailChange { .. } => {
                format!("Confirm your new e-mail address for {app}")
            }
            Letter::PasswordChanged => format!("Your {app} password was changed"),
            Letter::PasswordReset => format!("Your {app} password was reset"),
            Letter::EmailChanged { .. } => format!("Your {app} e-mail address was changed"),
            Letter::SecondFactorAdded => format!("Two-step verification turned on for {app}"),
            Letter::SecondFactorRemoved => format!("Two-step verification turned off for {app}"),
            Letter::PasskeyAdded { .. } => format!("A passkey was added to your {app} account"),
            Letter::PasskeyRemoved { .. } => {
                format!("A passkey was removed from your {app} account")
            }
            Letter::RecoveryCodeUsed { .. } => format!("A {app} recovery code was used"),
            Letter::SecondFactorsResetByAdmin => {
                format!("Your {app} second factors were removed by an administrator")
            }
        }
    }

    /// The action and token of the letter's one link, or `None` for a notice.
    pub fn action(&self) -> Option<(Action, &ActionToken)> {
        match self {
            Letter::VerifyEmail { token, .. } => Some((Action::VerifyEmail, token)),
            Letter::ResetPassword { token, .. } => Some((Action::ResetPassword, token)),
            Letter::ConfirmEmailChange { token, .. } => Some((Action::ConfirmEmail, token)),
            _ => None,
        }
    }

    /// The plain text and HTML bodies. `link` is the action link (ignored by notices).
    pub(crate) fn render(
        &self,
        app: &str,
        to: &str,
        link: &str,
    ) -> Result<(String, String), MailError> {
        let subject = &self.subject(app);
        macro_rules! both {
            ($text:ident, $html:ident { $($field:ident : $value:expr),* }) => {{
                let text = $text { app, to, subject, $($field: $value),* }.render()?;
                let html = $html { app, to, subject, $($field: $value),* }.render()?;
                (text, html)
            }};
        }
        Ok(match self {
            Letter::VerifyEmail { valid_for, .. } => {
                let valid_for = &human_duration(*valid_for);
                both!(
                    VerifyEmailText,
                    VerifyEmailHtml {
                        link: link,
                        valid_for: valid_for
                    }
                )
            }
            Letter::ResetPassword { valid_for, .. } => {
                let valid_for = &human_duration(*valid_for);
                both!(
                    ResetPasswordText,
                    ResetPasswordHtml {
                        link: link,
                        valid_for: valid_for
                    }
                )
            }
            Letter::ConfirmEmailChange { valid_for, .. } => {
                let valid_for = &human_duration(*valid_for);
                both!(
                    ConfirmEmailChangeText,
                    ConfirmEmailChangeHtml {
                        link: link,
                        valid_for: valid_for
                    }
                )
            }
            Letter::PasswordChanged => both!(PasswordChangedText, PasswordChangedHtml {}),
            Letter::PasswordReset => both!(PasswordResetText, PasswordResetHtml {}),
            Letter::EmailChanged { new_email } => {
                both!(
                    EmailChangedText,
                    EmailChangedHtml {
                        new_email: new_email
                    }
                )
            }
            Letter::SecondFactorAdded => both!(SecondFactorAddedText, SecondFactorAddedHtml {}),
            Letter::SecondFactorRemoved => {
                both!(SecondFactorRemovedText, SecondFactorRemovedHtml {})
            }
            Letter::PasskeyAdded { name } => {
                both!(PasskeyAddedText, PasskeyAddedHtml { name: name })
            }
            Letter::PasskeyRemoved { name } => {
                both!(PasskeyRemovedText, PasskeyRemovedHtml { name: name })
            }
            Letter::RecoveryCodeUsed { codes_left } => {
                both!(
                    RecoveryCodeUsedText,
                    RecoveryCodeUsedHtml {
                        codes_left: codes_left
                    }
                )
            }
            Letter::SecondFactorsResetByAdmin => {
                both!(SecondFactorsResetText, SecondFactorsResetHtml {})
            }
        })
    }
}

/// "1 hour", "24 hours", "30 minutes", "2 days": how a mail says how long its link works.
fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = if secs > 86_400 && secs.is_multiple_of(86_400) {
        (secs / 86_400, "day")
    } else if secs >= 3_600 && secs.is_multiple_of(3_600) {
        (secs / 3_600, "hour")
    } else if secs >= 60 {
        (secs.div_ceil(60), "minute")
    } else {
        (secs.max(1), "second")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// One template struct per letter and format; every one has the app's name, the recipient and
/// the subject, plus the letter's own fields. `.txt` templates are not escaped, `.html` ones are.
macro_rules! template {
    ($name:ident, $path:tt { $($field:ident : $ty:ty),* }) => {
        #[derive(Template)]
        #[template(path = $path)]
        struct $name<'a> {
            app: &'a str,
            to: &'a str,
            #[allow(dead_code)] // used by the HTML layout's <title> only
            subject: &'a str,
            $($field: $ty),*
        }
    };
}

template!(VerifyEmailText, "verify_email.txt" { link: &'a str, valid_for: &'a str });
template!(VerifyEmailHtml, "verify_email.html" { link: &'a str, valid_for: &'a str });
template!(ResetPasswordText, "reset_password.txt" { link: &'a str, valid_for: &'a str });
template!(ResetPasswordHtml, "reset_password.html" { link: &'a str, valid_for: &'a str });
template!(ConfirmEmailChangeText, "confirm_email_change.txt" { link: &'a str, valid_for: &'a str });
template!(ConfirmEmailChangeHtml, "confirm_email_change.html" { link: &'a str, valid_for: &'a str });
template!(PasswordChangedText, "password_changed.txt" {});
template!(PasswordChangedHtml, "password_changed.html" {});
template!(PasswordResetText, "password_reset.txt" {});
template!(PasswordResetHtml, "password_reset.html" {});
template!(EmailChangedText, "email_changed.txt" { new_email: &'a str });
template!(EmailChangedHtml, "email_changed.html" { new_email: &'a str });
template!(SecondFactorAddedText, "second_factor_added.txt" {});
template!(SecondFactorAddedHtml, "second_factor_added.html" {});
template!(SecondFactorRemovedText, "second_factor_removed.txt" {});
template!(SecondFactorRemovedHtml, "second_factor_removed.html" {});
template!(PasskeyAddedText, "passkey_added.txt" { name: &'a str });
template!(PasskeyAddedHtml, "passkey_added.html" { name: &'a str });
template!(PasskeyRemovedText, "passkey_removed.txt" { name: &'a str });
template!(PasskeyRemovedHtml, "passkey_removed.html" { name: &'a str });
template!(RecoveryCodeUsedText, "recovery_code_used.txt" { codes_left: &'a u32 });
template!(RecoveryCodeUsedHtml, "recovery_code_used.html" { codes_left: &'a u32 });
template!(SecondFactorsResetText, "second_factors_reset.txt" {});
template!(SecondFactorsResetHtml, "second_factors_reset.html" {});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_secs(3600)), "1 hour");
        assert_eq!(human_duration(Duration::from_secs(86_400)), "24 hours");
        assert_eq!(human_duration(Duration::from_secs(2 * 86_400)), "2 days");
        assert_eq!(human_duration(Duration::from_secs(1800)), "30 minutes");
        assert_eq!(human_duration(Duration::from_secs(90)), "2 minutes");
        assert_eq!(human_duration(Duration::from_secs(5)), "5 seconds");
    }

    #[test]
    fn html_escapes_what_users_typed_and_text_keeps_it() {
        let letter = Letter::PasskeyAdded {
            name: "<script>alert(1)</script> & \"x\"".into(),
        };
        let (text, html) = letter.render("Acme <Corp>", "a@example.com", "").unwrap();
        assert!(
            text.contains("\"<script>alert(1)</script> & \"x\"\""),
            "{text}"
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62; &#38; &#34;x&#34;"),
            "{html}"
        );
        assert!(html.contains("Acme &#60;Corp&#62;"), "{html}");
    }
}
