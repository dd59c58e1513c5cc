//! Error answers: JSON for the API, a small page for browsers. Nothing a client sends turns
//! into a `500`: store failures are `503`, everything else a specific `4xx`.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use ringfence_accounts::AccountError;
use ringfence_axum::AuthError;
use ringfence_sessions::StoreError;

pub use ringfence_axum::{with_retry_after, ApiError};

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
