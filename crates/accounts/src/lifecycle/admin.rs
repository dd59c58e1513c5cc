//! Administrators' control of accounts: disable, enable, delete, set a password, list by id.

use ringfence_sessions::SessionId;

use crate::notify::AccountMail;
use crate::{AccountError, Accounts, User};

use super::stored_email;

impl Accounts {
    /// Disables the account (`users disable`, `POST …/disable`): from now on its right password
    /// gets [`AccountError::AccountDisabled`] (a wrong one the usual answer), every session of
    /// the user ends at once (on every node: they share the session store), its mail links stop
    /// working, and [`Accounts::session_user`] refuses it even for a session a racing sign-in
    /// started. Returns how many sessions ended. Disabling a disabled account only ends
    /// sessions again.
    ///
    /// Its second factors (TOTP, recovery codes, passkeys) stay: enabling the account again
    /// must not leave it signing in with the password alone without anyone being told. An
    /// administrator who believes a factor is the attacker's removes them with
    /// [`Accounts::reset_mfa`] (`users reset-mfa`), which notifies the owner.
    pub async fn disable(&self, user_id: &str) -> Result<u64, AccountError> {
        if !self.users().set_disabled(user_id, true).await? {
            return Err(AccountError::UserNotFound);
        }
        self.forget_cached(user_id);
        tracing::info!(user_id, "account disabled");
        self.end_every_session(user_id, "the account was disabled")
            .await
    }

    /// Removes the second factors of an account being deleted. Best effort: the
    /// account is already refused everywhere, and left-over rows of a random, never reused
    /// user id open nothing; a failure is logged for the operator to retry.
    async fn drop_factors_of(&self, user_id: &str) {
        if let Err(e) = self.remove_factors(user_id).await {
            tracing::warn!(user_id, error = %e, "removing the second factors failed");
        }
    }

    /// Enables a disabled account again (`users enable`, `POST …/enable`); its password and
    /// second factors are the ones it had.
    pub async fn enable(&self, user_id: &str) -> Result<(), AccountError> {
        if !self.users().set_disabled(user_id, false).await? {
            return Err(AccountError::UserNotFound);
        }
        self.forget_cached(user_id);
        tracing::info!(user_id, "account enabled");
        Ok(())
    }

    /// Deletes the account (`users delete`, `DELETE /api/v1/admin/users/{id}`): the record
    /// goes, then every session of the user. Its outstanding mail links are void (they name an
    /// account that no longer exists). Returns how many sessions ended.
    pub async fn delete(&self, user_id: &str) -> Result<u64, AccountError> {
        if !self.users().delete(user_id).await? {
            return Err(AccountError::UserNotFound);
        }
        self.forget_cached(user_id);
        tracing::info!(user_id, "account deleted");
        self.drop_factors_of(user_id).await;
        self.end_every_session(user_id, "the account was deleted")
            .await
    }

    /// Sets the account's password (`users set-password`): the policy applies, every session
    /// of the user except `keep` ends (all of them when `None`), every outstanding mail link of
    /// the user is void, and the [`AccountMail::PasswordChanged`] notice is queued. Returns how
    /// many sessions ended.
    pub async fn set_password(
        &self,
        user_id: &str,
        password: &str,
        keep: Option<&SessionId>,
    ) -> Result<u64, AccountError> {
        let record = self
            .users()
            .by_id(user_id)
            .await?
            .ok_or(AccountError::UserNotFound)?;
        let email = stored_email(&record.user)?;
        self.policy().validate(password, &email)?;
        let hash = self.hasher().hash(password.to_owned()).await?;
        if !self
            .users()
            .set_password_hash(user_id, &hash, self.now())
            .await?
        {
            return Err(AccountError::UserNotFound);
        }
        self.forget_cached(user_id);
        tracing::info!(user_id, "password set by an administrator");
        self.notify(&record.user, AccountMail::PasswordChanged);
        let ended = match keep {
            Some(keep) => self.sessions().end_others(user_id, keep).await,
            None => self.sessions().end_all(user_id).await,
        }
        .map_err(|e| {
            AccountError::Store(format!(
                "the password was set, but the sessions could not be signed out: {e}"
            ))
        })?;
        tracing::info!(
            user_id,
            ended,
            "sessions signed out after the password was set"
        );
        Ok(ended)
    }

    /// One page of accounts ordered by id (`GET /api/v1/admin/users?after=ID&limit=N`): those
    /// after `after` (from the start when `None`), at most `limit`.
    pub async fn list_after(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<User>, AccountError> {
        Ok(self.users().list_after(after, limit).await?)
    }

    /// Ends every session of a user whose account just changed; the change is stored, so a
    /// failure here must still reach the caller (a session would outlive it).
    async fn end_every_session(&self, user_id: &str, why: &str) -> Result<u64, AccountError> {
        let ended = self.sessions().end_all(user_id).await.map_err(|e| {
            AccountError::Store(format!(
                "{why}, but its sessions could not be signed out: {e}"
            ))
        })?;
        tracing::info!(user_id, ended, "every session signed out: {why}");
        Ok(ended)
    }
}
