//! [`ApiError`]: the contract's JSON error answer for anything a handler can fail with, so an
//! app's handlers return `Result<_, ApiError>` and `?` gives every account, session and
//! authentication error its fitting status (a wrong password `401`, a throttled one `429` with
//! `Retry-After`, a taken e-mail `409`, a weak password `422`, a store outage `503`). Never a
//! `500` for anything a client sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ringfence_accounts::AccountError;
use ringfence_sessions::StoreError;

use crate::error::{error_response, AuthError};

/// An API error: status, machine code, human message, and a wait to announce.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds for a `Retry-After` header (throttled sign-ins).
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this status, machine-readable code and message for people.
    pub fn new(status: StatusCode, code: &'static str, message: &str) -> Self {
        Self {
            status,
            code,
            message: message.to_owned(),
            retry_after: None,
        }
    }

    /// `404` `not_found`.
    pub fn not_found(message: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// `422` `invalid_input`: the request was well-formed JSON but asks for something
    /// impossible (both of two exclusive fields, say).
    pub fn invalid_input(message: &str) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message)
    }

    /// The seconds announced in `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message for people.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = error_response(self.status, self.code, &self.message);
        with_retry_after(&mut response, self.retry_after);
        response
    }
}

/// Adds `Retry-After: seconds` when there is a wait to announce.
pub fn with_retry_after(response: &mut Response, seconds: Option<u64>) {
    if let Some(seconds) = seconds {
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(seconds),
        );
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        if let AuthError::Unavailable(detail) = &error {
            // The detail (store address, driver message) is for operators, not clients.
            tracing::warn!(%detail, "store unavailable");
            return Self::new(
                error.status(),
                error.code(),
                "a backing store is unavailable; try again shortly",
            );
        }
        Self::new(error.status(), error.code(), &error.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        AuthError::Unavailable(error.to_string()).into()
    }
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        let status = match &error {
            AccountError::InvalidEmail(_) | AccountError::WeakPassword(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            AccountError::EmailTaken
            | AccountError::NoPendingTotp
            | AccountError::MfaNotEnabled => StatusCode::CONFLICT,
            AccountError::InvalidCredentials
            | AccountError::UserNotFound
            | AccountError::InvalidCode => StatusCode::UNAUTHORIZED,
            AccountError::CurrentPasswordIncorrect
            | AccountError::AccountDisabled
            | AccountError::EmailNotVerified => StatusCode::FORBIDDEN,
            AccountError::InvalidToken => StatusCode::BAD_REQUEST,
            AccountError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            AccountError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            AccountError::Store(_)
            | AccountError::Corrupt(_)
            | AccountError::InvalidConfig(_)
            | AccountError::Internal(_) => {
                tracing::error!(%error, "account service failure");
                return Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the account service is temporarily unavailable; try again shortly",
                );
            }
        };
        let mut api = Self::new(status, error.code(), &error.to_string());
        api.retry_after = error.retry_after_secs();
        api
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_password_is_401_and_a_throttled_one_429_with_its_wait() {
        let wrong = ApiError::from(AccountError::InvalidCredentials);
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        let throttled = ApiError::from(AccountError::Throttled {
            retry_after: chrono::Duration::seconds(30),
        });
        assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
        let response = throttled.into_response();
        assert_eq!(response.headers()["retry-after"], "30");
    }
}
