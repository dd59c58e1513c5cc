//! Recent authentication: the operations the contract marks so (an e-mail change, and the
//! second-factor operations of issue 15) need the session to have authenticated within a
//! window; otherwise `403` `reauth_required`.
//!
//! For now a session counts as recently authenticated while it is younger than
//! [`REAUTH_WINDOW`] (it was made by a sign-in, and every sign-in makes a new session). Issue 15
//! adds `POST /api/v1/reauth` and `--reauth-window`; it replaces the check in
//! [`require_recent_auth`] (the one place every such operation calls) with the session's last
//! authentication time and the configured window.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use ringfence_sessions::Session;

use crate::errors::ApiError;
use crate::state::AppState;

/// How long after signing in a session may do sensitive operations (the contract's default of
/// `--reauth-window`).
pub const REAUTH_WINDOW: chrono::Duration = chrono::Duration::minutes(10);

/// `Ok` when `session` authenticated within the window, else `403` `reauth_required`.
pub fn require_recent_auth(state: &AppState, session: &Session) -> Result<(), ApiError> {
    if is_recent(session.created_at, state.ringfence.sessions().clock().now()) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "reauth_required",
            "this needs a recent sign-in: sign in again (or confirm your password) and retry",
        ))
    }
}

/// Whether an authentication at `authenticated_at` still counts at `now`.
fn is_recent(authenticated_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now - authenticated_at <= REAUTH_WINDOW
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_authentication_counts_for_ten_minutes() {
        let signed_in = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        assert!(is_recent(signed_in, signed_in));
        assert!(is_recent(signed_in, signed_in + REAUTH_WINDOW));
        assert!(!is_recent(
            signed_in,
            signed_in + REAUTH_WINDOW + chrono::Duration::seconds(1)
        ));
    }
}
