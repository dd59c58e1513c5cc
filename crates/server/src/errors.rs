//! Error answers: JSON for the API, a small page for browsers. Nothing a client sends turns
//! into a `500`: store failures are `503`, everything else a specific `4xx`.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use ringfence_accounts::AccountError;
use ringfence_axum::{error_response, AuthError};
use ringfence_sessions::StoreError;

/// An API error: status, machine code, human message.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds for a `Retry-After` header (throttled sign-ins).
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: &str) -> Self {
        Self {
            status,
            code,
            message: message.to_owned(),
            retry_after: None,
        }
    }

    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    pub fn not_found(message: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

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

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    heading: &'a str,
    message: &'a str,
}

/// A browser-facing error: a small page with a status.
#[derive(Debug, Clone)]
pub enum PageError {
    /// Show this page.
    Status {
        /// Status code.
        status: StatusCode,
        /// Title.
        heading: String,
        /// Explanation.
        message: String,
    },
    /// Send the browser elsewhere (not signed in → sign-in page).
    Redirect(&'static str),
}

impl PageError {
    pub fn status(status: StatusCode, heading: &str, message: &str) -> Self {
        PageError::Status {
            status,
            heading: heading.to_owned(),
            message: message.to_owned(),
        }
    }

    pub fn csrf() -> Self {
        Self::status(
            StatusCode::BAD_REQUEST,
            "Form expired",
            "This form was missing its security token or the token did not match your session. Go back, reload the page and try again.",
        )
    }
}

impl From<AuthError> for PageError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Unauthenticated => PageError::Redirect("/login"),
            AuthError::Csrf => PageError::csrf(),
            other => {
                let api = ApiError::from(other);
                PageError::status(api.status(), "Temporarily unavailable", api.message())
            }
        }
    }
}

impl From<StoreError> for PageError {
    fn from(error: StoreError) -> Self {
        AuthError::Unavailable(error.to_string()).into()
    }
}

impl From<AccountError> for PageError {
    fn from(error: AccountError) -> Self {
        let api = ApiError::from(error);
        PageError::status(api.status(), "Something went wrong", api.message())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::Redirect(to) => axum::response::Redirect::to(to).into_response(),
            PageError::Status {
                status,
                heading,
                message,
            } => {
                let page = ErrorPage {
                    heading: &heading,
                    message: &message,
                };
                match page.render() {
                    Ok(html) => (status, Html(html)).into_response(),
                    Err(_) => (status, message).into_response(),
                }
            }
        }
    }
}
