//! The pending sign-in between a right password and the second factor.
//!
//! A user with a second factor who gives the right password is not signed in yet: no session is
//! started (so nothing counts them as signed in, lists them or lets them act). The browser gets
//! instead a cookie ([`PENDING_COOKIE`]) holding a time-limited key-ring payload (purpose
//! [`PENDING_PURPOSE`], 5 minutes, [`PENDING_SIGN_IN_LIFETIME`]) that seals the user id and the
//! password's change time. Only the second step reads it ([`PendingSignIn`]): any node opens
//! it, it dies with the 5 minutes or a password change, and it is cleared when the step
//! completes. It is not single-use by itself; what the second step accepts is (a TOTP step is
//! taken once, a recovery code is deleted), and every wrong code is counted by the sign-in
//! throttle of the user.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use ringfence_accounts::User;

use crate::auth::RequestAuth;
use crate::cookies;
use crate::error::AuthError;

/// Base name of the pending sign-in cookie.
pub const PENDING_COOKIE: &str = "ringfence_mfa";
/// Key-ring purpose of the pending sign-in cookie.
pub const PENDING_PURPOSE: &str = "ringfence.mfa-pending.v1";
/// How long the second step may take.
pub const PENDING_SIGN_IN_LIFETIME: chrono::Duration = chrono::Duration::minutes(5);

/// A sign-in waiting for its second factor: who, and the password change time it was made
/// under. The handler of the second step loads the user and checks that the account is still
/// the same ([`PendingSignIn::matches`]). Rejects with `401` without a valid cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSignIn {
    /// The user signing in.
    pub user_id: String,
    /// The user's `password_changed_at` when the password was checked.
    pub password_changed_at: DateTime<Utc>,
}

impl PendingSignIn {
    /// Whether `user` is still the account the password was checked for: same id, password
    /// unchanged since.
    pub fn matches(&self, user: &User) -> bool {
        user.id == self.user_id
            && user.password_changed_at.timestamp_millis()
                == self.password_changed_at.timestamp_millis()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PendingSignIn {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = RequestAuth::from_request_parts(parts, state).await?;
        let [value] = cookies::read(&parts.headers, [PENDING_COOKIE], auth.is_secure());
        let value = value
            .filter(|v| !v.is_empty())
            .ok_or(AuthError::Unauthenticated)?;
        let (plain, _) = auth
            .ringfence()
            .keyring()
            .protector(PENDING_PURPOSE)
            .time_limited()
            .unprotect(value)
            .await
            .map_err(|_| AuthError::Unauthenticated)?;
        let (millis, user_id) = plain
            .split_at_checked(8)
            .ok_or(AuthError::Unauthenticated)?;
        let millis = i64::from_be_bytes(millis.try_into().map_err(|_| AuthError::Unauthenticated)?);
        Ok(PendingSignIn {
            user_id: String::from_utf8(user_id.to_vec()).map_err(|_| AuthError::Unauthenticated)?,
            password_changed_at: DateTime::from_timestamp_millis(millis)
                .ok_or(AuthError::Unauthenticated)?,
        })
    }
}

impl RequestAuth {
    /// Starts a pending sign-in for `user` (right password, second factor still to come):
    /// sets the pending cookie, starts no session.
    pub fn start_pending_sign_in(&self, user: &User) -> Result<(), AuthError> {
        let keyring = self.ringfence().keyring();
        let expires = keyring.clock().now() + PENDING_SIGN_IN_LIFETIME;
        let mut plain = user
            .password_changed_at
            .timestamp_millis()
            .to_be_bytes()
            .to_vec();
        plain.extend_from_slice(user.id.as_bytes());
        let sealed = keyring
            .protector(PENDING_PURPOSE)
            .time_limited()
            .protect(&plain, expires)
            .map_err(|_| AuthError::NoKey)?;
        self.add_cookie(cookies::set(
            PENDING_COOKIE,
            &sealed,
            self.is_secure(),
            Some(PENDING_SIGN_IN_LIFETIME),
        ));
        Ok(())
    }

    /// Ends a pending sign-in (completed or abandoned): clears its cookie.
    pub fn clear_pending_sign_in(&self) {
        self.add_cookie(cookies::clear(PENDING_COOKIE, self.is_secure()));
    }
}
