//! Forgotten passwords: the reset request, the reset itself, and reset links made by an
//! administrator.

use crate::notify::AccountMail;
use crate::throttle::normalize_address;
use crate::tokens::{IssuedToken, TokenPurpose};
use crate::{AccountError, Accounts, Email, ThrottleKeys, User, UserRecord};

use super::{stored_email, MailLimit};

impl Accounts {
    /// "Forgot password" for `email`, from a client at `client_ip` when known.
    ///
    /// The answer, and the work done before it, are the same whether or not the address has an
    /// account (OWASP Forgot Password Cheat Sheet): the address is checked for form (a malformed
    /// one is [`AccountError::InvalidEmail`]), the request is counted per address and per
    /// client address ([`AccountError::Throttled`] when either is locked; see the module docs of
    /// [`crate::lifecycle`]), and the account lookup, the token and the mail happen in a
    /// background job ([`Accounts::wait_for_mail_jobs`] waits for it). Then `Ok(())`. An
    /// address without an account, or whose account is disabled, gets no mail.
    pub async fn request_password_reset(
        &self,
        email: &str,
        client_ip: Option<&str>,
    ) -> Result<(), AccountError> {
        let email = Email::parse(email)?;
        self.token_store()?;
        let client = client_ip.map(normalize_address);
        let mut limits = vec![(MailLimit::ResetAddress, email.as_str())];
        if let Some(client) = &client {
            limits.push((MailLimit::ResetClient, client.as_str()));
        }
        self.count_mail_request(&limits).await?;
        let this = self.clone();
        self.mail().jobs.spawn(async move {
            if let Err(e) = this.mail_reset_link(&email).await {
                // No address in the log: it may not belong to anyone.
                tracing::warn!(error = %e, "password reset mail could not be prepared");
            }
        });
        Ok(())
    }

    /// The background half of [`Accounts::request_password_reset`].
    async fn mail_reset_link(&self, email: &Email) -> Result<(), AccountError> {
        let Some(record) = self.users().by_email(email).await? else {
            tracing::debug!("password reset asked for an address without an account");
            return Ok(());
        };
        if record.user.disabled {
            tracing::info!(user_id = %record.user.id, "password reset asked for a disabled account; no mail");
            return Ok(());
        }
        self.send_reset_mail(&record).await
    }

    async fn send_reset_mail(&self, record: &UserRecord) -> Result<(), AccountError> {
        let to = stored_email(&record.user)?;
        self.send_action_mail(record, &to, TokenPurpose::ResetPassword, None, |link| {
            AccountMail::ResetPassword { link }
        })
        .await
    }

    /// Sets a new password with a reset token (the `POST /reset-password` form).
    ///
    /// The token must be a live reset token still bound to its account (the address and
    /// password it was issued for; the account not disabled), otherwise
    /// [`AccountError::InvalidToken`]. The new password must meet the policy
    /// ([`AccountError::WeakPassword`]); a refused password does not spend the token, so the
    /// user can try another. Then the token is taken atomically (of concurrent redemptions
    /// exactly one gets here), the password is replaced, **every** session of the user ends,
    /// the address counts as verified (the link reached it), the account's sign-in failure count
    /// is cleared, and the [`AccountMail::PasswordReset`] notice is queued. Every other
    /// outstanding token of the user is void from now on (the password hash changed). The
    /// caller does not sign the user in. Returns the account.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &str,
    ) -> Result<User, AccountError> {
        let purpose = TokenPurpose::ResetPassword;
        let (_, record) = self.redeem(token, purpose, false).await?;
        let email = stored_email(&record.user)?;
        self.policy().validate(new_password, &email)?;
        let hash = self.hasher().hash(new_password.to_owned()).await?;
        // Hashing took a while: the take decides, and the account is read again.
        let (_, record) = self.redeem(token, purpose, true).await?;
        let user_id = record.user.id.as_str();
        if !self
            .users()
            .set_password_hash(user_id, &hash, self.now())
            .await?
        {
            return Err(AccountError::InvalidToken);
        }
        self.forget_cached(user_id);
        tracing::info!(user_id, "password reset through a mail link");
        if !record.user.email_verified {
            match self.users().set_email_verified(user_id, true).await {
                Ok(_) => tracing::info!(user_id, "e-mail address verified by a password reset"),
                Err(e) => {
                    tracing::warn!(user_id, error = %e, "marking the address verified after a reset failed")
                }
            }
        }
        if let Some(throttle) = self.throttle() {
            if let Err(e) = throttle
                .reset_account(&ThrottleKeys::new(Some(&email), None))
                .await
            {
                tracing::warn!(user_id, error = %e, "clearing the sign-in failure count after a reset failed");
            }
        }
        self.notify(&record.user, AccountMail::PasswordReset);
        // The password is replaced at this point; if the sessions cannot be ended the caller
        // must still learn it: a stolen session would survive the reset.
        let ended = self.sessions().end_all(user_id).await.map_err(|e| {
            AccountError::Store(format!(
                "the password was reset, but the sessions could not be signed out: {e}"
            ))
        })?;
        tracing::info!(
            user_id,
            ended,
            "every session signed out after a password reset"
        );
        let user = self.users().by_id(user_id).await?.map(|r| r.user);
        Ok(user.unwrap_or(record.user))
    }

    /// Mails a reset link to the account (admin: `users reset-password EMAIL`, the admin API's
    /// `…/password-reset`). [`AccountError::UserNotFound`] for no such account,
    /// [`AccountError::AccountDisabled`] for a disabled one (its links would not work), and
    /// [`AccountError::InvalidConfig`] without a token store or a mailer.
    pub async fn send_password_reset(&self, user_id: &str) -> Result<(), AccountError> {
        if self.mail().mailer.is_none() {
            return Err(AccountError::InvalidConfig(
                "no mailer is configured to send the reset link".into(),
            ));
        }
        let record = self.resettable(user_id).await?;
        self.send_reset_mail(&record).await
    }

    /// A reset token for the account, handed to the administrator instead of mailed
    /// (`users reset-password EMAIL --print-link`); the link is
    /// `PUBLIC_URL/reset-password?token=T`. Errors as [`Accounts::send_password_reset`],
    /// except that no mailer is needed.
    pub async fn admin_reset_link(&self, user_id: &str) -> Result<IssuedToken, AccountError> {
        let record = self.resettable(user_id).await?;
        let issued = self
            .issue(&record, TokenPurpose::ResetPassword, None)
            .await?;
        tracing::info!(user_id, "reset link handed to an administrator");
        Ok(issued)
    }

    async fn resettable(&self, user_id: &str) -> Result<UserRecord, AccountError> {
        let record = self
            .users()
            .by_id(user_id)
            .await?
            .ok_or(AccountError::UserNotFound)?;
        if record.user.disabled {
            return Err(AccountError::AccountDisabled);
        }
        Ok(record)
    }
}
