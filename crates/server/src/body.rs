//! Body extractors of the server: the library's [`ApiJson`] for the API, and [`CsrfForm`] for
//! pages, which takes the library's antiforgery-checked form and answers a refusal with a page.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::errors::PageError;

pub use ringfence_axum::{ApiJson, CsrfOnly};

/// A page form whose `_csrf` field was checked before the rest was read (see
/// [`ringfence_axum::CsrfForm`]): a post with a missing or wrong token gets the `400` "Form
/// expired" page whatever else it holds. Every page form is read this way: the forms a
/// signed-out visitor posts (sign-in, forgot password, mail links) carry the token of the
/// antiforgery cookie.
pub struct CsrfForm<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for CsrfForm<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match ringfence_axum::CsrfForm::<T>::from_request(req, state).await {
            Ok(ringfence_axum::CsrfForm(form)) => Ok(CsrfForm(form)),
            Err(rejection) => Err(form_refused(rejection)),
        }
    }
}

fn form_refused(rejection: ringfence_axum::FormRejection) -> PageError {
    use ringfence_axum::FormRejection;
    match rejection {
        FormRejection::Csrf => PageError::csrf(),
        FormRejection::NotAForm => PageError::status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported form",
            "Forms must be sent as application/x-www-form-urlencoded.",
        ),
        FormRejection::TooLarge => PageError::status(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Too large",
            "The form is too large.",
        ),
        FormRejection::Malformed => PageError::status(
            StatusCode::BAD_REQUEST,
            "Malformed form",
            "The form could not be read. Please go back and try again.",
        ),
        FormRejection::Auth(error) => error.into(),
    }
}
