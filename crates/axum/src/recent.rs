//! Recent authentication ("sudo mode"): sensitive operations need the session to have signed in,
//! or proved its user again (`POST /api/v1/reauth`), within the re-authentication window.
//!
//! Signing in counts through the session itself: every sign-in starts a new session, so its
//! `created_at` is the time of the sign-in. A later proof (password or second-factor code) is
//! kept in a cookie, not in a store: a time-limited key-ring payload (purpose
//! [`REAUTH_PURPOSE`]) sealing the session id, expiring at the end of the window. So checking it
//! costs no store round trip, any node of the fleet accepts it, and it is worthless with another
//! session (a stolen proof cookie without the session cookie it names proves nothing) and after
//! the window.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use ringfence_accounts::User;
use ringfence_sessions::Session;
use subtle::ConstantTimeEq;

use crate::auth::RequestAuth;
use crate::cookies;
use crate::error::AuthError;
use crate::extract::CurrentUser;

/// Base name of the cookie holding the proof of a recent re-authentication.
pub const REAUTH_COOKIE: &str = "ringfence_reauth";
/// Key-ring purpose of the proof cookie.
pub const REAUTH_PURPOSE: &str = "ringfence.reauth.v1";
/// The default re-authentication window (`--reauth-window`): 10 minutes.
pub const DEFAULT_REAUTH_WINDOW: chrono::Duration = chrono::Duration::minutes(10);

/// Settings for recent authentication and second factors (`--reauth-window`,
/// `--require-mfa-for-admins`), carried by [`crate::Ringfence`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepUpSettings {
    /// How long after an authentication a session may do sensitive operations.
    pub reauth_window: chrono::Duration,
    /// Whether an administrator without a second factor is refused on admin routes
    /// ([`AuthError::MfaSetupRequired`]).
    pub require_mfa_for_admins: bool,
}

impl Default for StepUpSettings {
    fn default() -> Self {
        Self {
            reauth_window: DEFAULT_REAUTH_WINDOW,
            require_mfa_for_admins: false,
        }
    }
}

/// The signed-in user, whose session authenticated recently: signed in, or passed a
/// re-authentication ([`RequestAuth::mark_recently_authenticated`]), within the window
/// ([`StepUpSettings::reauth_window`]). Rejects with `401` when not signed in and `403`
/// `reauth_required` ([`AuthError::ReauthRequired`]) when the last authentication is older.
///
/// Like [`crate::RequireAdmin`], put it first among a handler's arguments.
#[derive(Debug, Clone)]
pub struct RecentAuth {
    /// The user.
    pub user: User,
    /// The session.
    pub session: Session,
}

impl<S: Send + Sync> FromRequestParts<S> for RecentAuth {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = RequestAuth::from_request_parts(parts, state).await?;
        let CurrentUser { user, session } = CurrentUser::from_request_parts(parts, state).await?;
        if auth
            .is_recently_authenticated(&session, &parts.headers)
            .await
        {
            Ok(RecentAuth { user, session })
        } else {
            Err(AuthError::ReauthRequired)
        }
    }
}

impl RequestAuth {
    /// Whether `session` signed in, or carries a re-authentication proof cookie (in `headers`)
    /// made, within the window.
    pub async fn is_recently_authenticated(&self, session: &Session, headers: &HeaderMap) -> bool {
        let ringfence = self.ringfence();
        let window = ringfence.step_up().reauth_window;
        let now = ringfence.keyring().clock().now();
        if within(session.created_at, window, now) {
            return true;
        }
        let [proof] = cookies::read(headers, [REAUTH_COOKIE], self.is_secure());
        let Some(proof) = proof.filter(|p| !p.is_empty()) else {
            return false;
        };
        let protector = ringfence.keyring().protector(REAUTH_PURPOSE).time_limited();
        // The payload expires at the end of the window it was made under; a window shortened
        // since then is honoured through the proof time sealed inside.
        let Ok((plain, _expires)) = protector.unprotect(proof).await else {
            return false;
        };
        let Some((at, id)) = split_proof(&plain) else {
            return false;
        };
        bool::from(id.ct_eq(session.id.as_str().as_bytes())) && within(at, window, now)
    }

    /// Records that the signed-in `session` just proved its user again (a password or a
    /// second-factor code through `/api/v1/reauth`): sets the proof cookie, valid for the
    /// window, on this session only.
    pub fn mark_recently_authenticated(&self, session: &Session) -> Result<(), AuthError> {
        let ringfence = self.ringfence();
        let window = ringfence.step_up().reauth_window;
        let now = ringfence.keyring().clock().now();
        let mut plain = now.timestamp_millis().to_be_bytes().to_vec();
        plain.extend_from_slice(session.id.as_str().as_bytes());
        let sealed = ringfence
            .keyring()
            .protector(REAUTH_PURPOSE)
            .time_limited()
            .protect(&plain, now + window)
            .map_err(|_| AuthError::NoKey)?;
        self.add_cookie(cookies::set(
            REAUTH_COOKIE,
            &sealed,
            self.is_secure(),
            Some(window),
        ));
        Ok(())
    }
}

fn within(at: DateTime<Utc>, window: chrono::Duration, now: DateTime<Utc>) -> bool {
    at <= now + chrono::Duration::seconds(1) && now - at < window
}

/// `(proof time, session id)` from a proof's plaintext.
fn split_proof(plain: &[u8]) -> Option<(DateTime<Utc>, &[u8])> {
    let (millis, id) = plain.split_at_checked(8)?;
    let millis = i64::from_be_bytes(millis.try_into().ok()?);
    Some((DateTime::from_timestamp_millis(millis)?, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn recent_means_within_the_window_and_not_in_the_future() {
        let now = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let window = chrono::Duration::minutes(10);
        assert!(within(now, window, now));
        assert!(within(
            now - window + chrono::Duration::seconds(1),
            window,
            now
        ));
        assert!(!within(now - window, window, now));
        // Another node's clock a little ahead is tolerated; a proof from far ahead is not.
        assert!(within(
            now + chrono::Duration::milliseconds(900),
            window,
            now
        ));
        assert!(!within(now + chrono::Duration::minutes(5), window, now));
    }

    #[test]
    fn proofs_hold_their_time_and_session() {
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let mut plain = at.timestamp_millis().to_be_bytes().to_vec();
        plain.extend_from_slice(b"session-id");
        assert_eq!(split_proof(&plain), Some((at, &b"session-id"[..])));
        assert_eq!(split_proof(&plain[..5]), None);
    }
}
