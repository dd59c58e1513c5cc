//! The account's address: verification and change.

use crate::notify::AccountMail;
use crate::tokens::TokenPurpose;
use crate::{AccountError, Accounts, Email, User};

use super::{stored_email, MailLimit};

impl Accounts {
    /// Confirms the address with a verification token (the `POST /verify-email` form). The
    /// token must be a live verification token still bound to its account (same address and
    /// password as when it was sent, not disabled), otherwise [`AccountError::InvalidToken`];
    /// it works once. Returns the account, now verified.
    pub async fn verify_email(&self, token: &str) -> Result<User, AccountError> {
        let (_, record) = self.redeem(token, TokenPurpose::VerifyEmail, true).await?;
        let user_id = record.user.id.as_str();
        if !self.users().set_email_verified(user_id, true).await? {
            return Err(AccountError::InvalidToken);
        }
        self.forget_cached(user_id);
        tracing::info!(user_id, "e-mail address verified");
        Ok(User {
            email_verified: true,
            ..record.user
        })
    }

    /// Sends the verification mail again (`POST /api/v1/email/verification`), counted per user
    /// ([`AccountError::Throttled`] past the limit; see [`crate::lifecycle`]). Nothing is sent
    /// for an address already verified. [`AccountError::UserNotFound`] for no such account.
    pub async fn resend_verification(&self, user_id: &str) -> Result<(), AccountError> {
        let record = self
            .users()
            .by_id(user_id)
            .await?
            .ok_or(AccountError::UserNotFound)?;
        if record.user.email_verified {
            return Ok(());
        }
        self.token_store()?;
        self.count_mail_request(&[(MailLimit::Resend, user_id)])
            .await?;
        self.send_verification(&record).await
    }

    /// Starts moving the account to `new_email` (`POST /api/v1/email/change`; the caller checks
    /// recent authentication): a confirmation link goes to the new address, and nothing changes
    /// until it is followed ([`Accounts::confirm_email_change`]). Counted per user
    /// ([`AccountError::Throttled`]). [`AccountError::InvalidEmail`] for a malformed address or
    /// the current one, [`AccountError::EmailTaken`] when another account has it now
    /// (registration tells as much already), [`AccountError::UserNotFound`] for no such
    /// account.
    pub async fn request_email_change(
        &self,
        user_id: &str,
        new_email: &str,
    ) -> Result<(), AccountError> {
        let new_email = Email::parse(new_email)?;
        let record = self
            .users()
            .by_id(user_id)
            .await?
            .ok_or(AccountError::UserNotFound)?;
        if record.user.email == new_email.as_str() {
            return Err(AccountError::InvalidEmail(
                "this is already the account's address".into(),
            ));
        }
        if self.users().by_email(&new_email).await?.is_some() {
            return Err(AccountError::EmailTaken);
        }
        self.token_store()?;
        self.count_mail_request(&[(MailLimit::Change, user_id)])
            .await?;
        let confirm_to = new_email.clone();
        self.send_action_mail(
            &record,
            &confirm_to,
            TokenPurpose::ChangeEmail,
            Some(&new_email),
            |link| AccountMail::ConfirmEmailChange {
                link,
                new_email: new_email.as_str().to_owned(),
            },
        )
        .await
    }

    /// Completes an address change with its confirmation token (the `POST /confirm-email`
    /// form). The token must be a live change token still bound to its account, otherwise
    /// [`AccountError::InvalidToken`]; it works once. The new address must still be free at
    /// this moment ([`AccountError::EmailTaken`] otherwise; the token is spent). The address
    /// changes and counts as verified, every token bound to the old address is void from now
    /// on, and the [`AccountMail::EmailChanged`] notice goes to the *old* address. Sessions
    /// stay. Returns the account as it is now.
    pub async fn confirm_email_change(&self, token: &str) -> Result<User, AccountError> {
        let (taken, record) = self.redeem(token, TokenPurpose::ChangeEmail, true).await?;
        let user_id = record.user.id.as_str();
        let new_email = taken
            .payload
            .as_deref()
            .and_then(|e| Email::parse(e).ok())
            .ok_or_else(|| {
                AccountError::Corrupt(format!(
                    "an e-mail change token of user {user_id} has no valid new address"
                ))
            })?;
        let old_email = stored_email(&record.user)?;
        if !self
            .users()
            .change_email(user_id, &old_email, &new_email, true)
            .await?
        {
            // The address changed since the token was checked.
            return Err(AccountError::InvalidToken);
        }
        self.forget_cached(user_id);
        tracing::info!(user_id, "e-mail address changed");
        self.mail_to(
            &old_email,
            user_id,
            AccountMail::EmailChanged {
                new_email: new_email.as_str().to_owned(),
            },
        );
        Ok(User {
            email: new_email.into_string(),
            email_verified: true,
            ..record.user
        })
    }
}
