//! Signing in on a request: the password step and the second step, in one place, so an app's
//! handlers and `ringfence serve`'s take the same path (throttled by client address, a pending
//! sign-in for users with a second factor, a new session id at the end).

use ringfence_accounts::{AccountError, SecondFactorCode, User};
use ringfence_sessions::Session;

use crate::api_error::ApiError;
use crate::auth::RequestAuth;
use crate::error::AuthError;
use crate::layer::Ringfence;
use crate::pending::PendingSignIn;

/// Why a sign-in step failed: the account said no (wrong password or code, throttled,
/// disabled: the answer to show the user), or the request could not be served (a store, the
/// key ring). Both turn into an [`ApiError`] with `?`.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The account service refused or failed.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// Signing in or out could not be done.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl From<SignInError> for ApiError {
    fn from(error: SignInError) -> Self {
        match error {
            SignInError::Account(e) => e.into(),
            SignInError::Auth(e) => e.into(),
        }
    }
}

impl Ringfence {
    /// The account a pending sign-in is for, while it is still the same account (password
    /// unchanged) and not disabled; [`AuthError::Unauthenticated`] otherwise.
    pub async fn pending_user(&self, pending: &PendingSignIn) -> Result<User, SignInError> {
        let user = self
            .accounts()
            .user(&pending.user_id)
            .await?
            .filter(|u| pending.matches(u))
            .ok_or(AuthError::Unauthenticated)?;
        if user.disabled {
            return Err(AccountError::AccountDisabled.into());
        }
        Ok(user)
    }
}

/// What a right password led to.
#[derive(Debug, Clone)]
pub enum PasswordSignIn {
    /// Signed in: a new session, whose cookie the layer sets on the response.
    SignedIn {
        /// Who.
        user: User,
        /// The new session.
        session: Session,
    },
    /// The user has a second factor: nothing is signed in yet, a pending sign-in cookie is set
    /// (5 minutes, any node), and [`RequestAuth::finish_sign_in`] takes the code.
    SecondFactorRequired {
        /// Who is signing in.
        user: User,
        /// What the second step accepts (`totp`, `passkey`, `recovery_code`).
        methods: Vec<&'static str>,
    },
}

impl RequestAuth {
    /// The first step of signing in: checks the password (throttled per account and client
    /// address; a wrong password is `401`, too many `429` with `Retry-After`), then either
    /// signs in or, for a user with a second factor, starts the pending sign-in.
    pub async fn sign_in_with_password(
        &self,
        email: &str,
        password: &str,
    ) -> Result<PasswordSignIn, SignInError> {
        let accounts = self.ringfence().accounts();
        let user = accounts
            .authenticate_from(email, password, self.client().ip.as_deref())
            .await?;
        let mfa = accounts.mfa_status(&user).await?;
        if mfa.has_second_factor() {
            self.start_pending_sign_in(&user)?;
            return Ok(PasswordSignIn::SecondFactorRequired {
                user,
                methods: mfa.methods(),
            });
        }
        let session = self.sign_in(&user.id).await?;
        Ok(PasswordSignIn::SignedIn { user, session })
    }

    /// The second step: checks `code` (once only, throttled like the password), ends the
    /// pending sign-in and signs in on a new session.
    pub async fn finish_sign_in(
        &self,
        pending: &PendingSignIn,
        code: SecondFactorCode<'_>,
    ) -> Result<(User, Session), SignInError> {
        let user = self.ringfence().pending_user(pending).await?;
        self.ringfence()
            .accounts()
            .verify_second_factor(&user, code, self.client().ip.as_deref())
            .await?;
        // Signing in clears the pending cookie.
        let session = self.sign_in(&user.id).await?;
        Ok((user, session))
    }
}
