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
use ringfence_keyring::KeyRing;

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
        open(auth.ringfence().keyring(), value)
            .await
            .ok_or(AuthError::Unauthenticated)
    }
}

/// Seals a pending sign-in of `user`, valid for [`PENDING_SIGN_IN_LIFETIME`] from the ring's
/// clock.
fn seal(keyring: &KeyRing, user: &User) -> Result<String, AuthError> {
    let expires = keyring.clock().now() + PENDING_SIGN_IN_LIFETIME;
    let mut plain = user
        .password_changed_at
        .timestamp_millis()
        .to_be_bytes()
        .to_vec();
    plain.extend_from_slice(user.id.as_bytes());
    keyring
        .protector(PENDING_PURPOSE)
        .time_limited()
        .protect(&plain, expires)
        .map_err(|_| AuthError::NoKey)
}

/// Opens a pending sign-in cookie; `None` when tampered, of another purpose or expired.
async fn open(keyring: &KeyRing, value: &str) -> Option<PendingSignIn> {
    let (plain, _) = keyring
        .protector(PENDING_PURPOSE)
        .time_limited()
        .unprotect(value)
        .await
        .ok()?;
    let (millis, user_id) = plain.split_at_checked(8)?;
    let millis = i64::from_be_bytes(millis.try_into().ok()?);
    Some(PendingSignIn {
        user_id: String::from_utf8(user_id.to_vec()).ok()?,
        password_changed_at: DateTime::from_timestamp_millis(millis)?,
    })
}

impl RequestAuth {
    /// Starts a pending sign-in for `user` (right password, second factor still to come):
    /// sets the pending cookie, starts no session.
    pub fn start_pending_sign_in(&self, user: &User) -> Result<(), AuthError> {
        let sealed = seal(self.ringfence().keyring(), user)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use ringfence_keyring::ManualClock;

    fn user(changed_ms: i64) -> User {
        let at = Utc.timestamp_millis_opt(changed_ms).unwrap();
        User {
            id: "7d1c9a4e-0000-4000-8000-000000000001".into(),
            email: "alice@example.com".into(),
            is_admin: false,
            created_at: at,
            password_changed_at: at,
            email_verified: true,
            disabled: false,
        }
    }

    #[tokio::test]
    async fn a_pending_sign_in_expires_after_five_minutes() {
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap());
        let keyring = KeyRing::in_memory(clock.shared());
        keyring.ensure_keys().await.unwrap();
        let alice = user(1_700_000_000_123);
        let sealed = seal(&keyring, &alice).unwrap();
        let opened = open(&keyring, &sealed).await.unwrap();
        assert!(opened.matches(&alice));
        clock.advance(PENDING_SIGN_IN_LIFETIME - chrono::Duration::seconds(1));
        assert!(open(&keyring, &sealed).await.is_some());
        clock.advance(chrono::Duration::seconds(1));
        assert_eq!(
            open(&keyring, &sealed).await,
            None,
            "expired at five minutes"
        );
    }

    #[tokio::test]
    async fn a_password_change_or_tampering_voids_a_pending_sign_in() {
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap());
        let keyring = KeyRing::in_memory(clock.shared());
        keyring.ensure_keys().await.unwrap();
        let alice = user(1_700_000_000_123);
        let sealed = seal(&keyring, &alice).unwrap();
        let opened = open(&keyring, &sealed).await.unwrap();
        assert!(
            !opened.matches(&user(1_700_000_999_000)),
            "password changed since"
        );
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            open(&keyring, &String::from_utf8(tampered).unwrap()).await,
            None
        );
        // A session cookie or any other payload does not open as a pending sign-in.
        let other = keyring
            .protector("ringfence.csrf.v1")
            .protect(b"x")
            .unwrap();
        assert_eq!(open(&keyring, &other).await, None);
    }
}
