//! Errors and the contract's JSON error body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Builds `{"error":{"code":…,"message":…}}` with `status`.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// Why a request could not be authenticated or authorized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No session, or it was revoked or expired: `401`.
    #[error("not signed in")]
    Unauthenticated,
    /// Missing or wrong antiforgery token: `403` for the API (pages answer `400`).
    #[error("missing or invalid CSRF token")]
    Csrf,
    /// Signed in but not allowed: `403`.
    #[error("not allowed")]
    Forbidden,
    /// A sensitive operation, and the session's last authentication is older than the
    /// re-authentication window: `403` `reauth_required` (see [`crate::RecentAuth`]).
    #[error("please confirm it is you: sign in again or re-authenticate first")]
    ReauthRequired,
    /// An administrator without a second factor on an admin route while the deployment requires
    /// one (`--require-mfa-for-admins`): `403` `mfa_setup_required`.
    #[error("administrators must set up a second factor first")]
    MfaSetupRequired,
    /// A backing store did not answer: `503`, and the session is kept (never a sign-out).
    #[error("a backing store is unavailable: {0}")]
    Unavailable(String),
    /// The key ring has no usable key yet (a secondary waiting for its primary): `503`.
    #[error("the key ring has no usable key yet")]
    NoKey,
    /// The app forgot to install [`crate::RingfenceLayer`]: a programming error.
    #[error("RingfenceLayer is not installed on this route")]
    MissingLayer,
}

impl AuthError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Unauthenticated => StatusCode::UNAUTHORIZED,
            AuthError::Csrf
            | AuthError::Forbidden
            | AuthError::ReauthRequired
            | AuthError::MfaSetupRequired => StatusCode::FORBIDDEN,
            AuthError::Unavailable(_) | AuthError::NoKey => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::MissingLayer => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code in the error body.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Unauthenticated => "unauthenticated",
            AuthError::Csrf => "csrf",
            AuthError::Forbidden => "forbidden",
            AuthError::ReauthRequired => "reauth_required",
            AuthError::MfaSetupRequired => "mfa_setup_required",
            AuthError::Unavailable(_) | AuthError::NoKey => "unavailable",
            AuthError::MissingLayer => "internal",
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        if let AuthError::Unavailable(detail) = &self {
            // The detail (store address, driver message) is for operators, not clients.
            tracing::warn!(%detail, "store unavailable while authenticating");
            return error_response(
                self.status(),
                self.code(),
                "a backing store is unavailable; try again shortly",
            );
        }
        error_response(self.status(), self.code(), &self.to_string())
    }
}
