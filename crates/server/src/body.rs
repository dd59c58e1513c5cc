//! Body extractors that answer with the contract's errors instead of axum's plain-text ones:
//! `400` malformed, `413` too large, `415` wrong content type, `422` valid JSON of the wrong shape.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, StatusCode};
use bytes::Bytes;
use ringfence_axum::RequestAuth;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::errors::{ApiError, PageError};

/// JSON body for the API.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ),
        JsonRejection::JsonDataError(e) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            &format!(
                "the JSON does not have the expected fields: {}",
                e.body_text()
            ),
        ),
        JsonRejection::JsonSyntaxError(_) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            "the body is not valid JSON",
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            too_large()
        }
        other => ApiError::new(StatusCode::BAD_REQUEST, "malformed", &other.body_text()),
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "the request body is too large",
    )
}

/// A page form whose `_csrf` field was checked against the requester (session or antiforgery
/// cookie) before the rest of the form is read: a post with a missing or wrong token gets the
/// `400` "Form expired" page whatever else it holds. `T` lists the other fields (unknown ones,
/// `_csrf` included, are ignored); forms with nothing but the token take [`CsrfOnly`]. Every
/// page form is read this way: the forms a signed-out visitor posts (sign-in, forgot password,
/// mail links) carry the token of the antiforgery cookie.
pub struct CsrfForm<T>(pub T);

/// The fields of a form that carries only the antiforgery token.
#[derive(Debug, Deserialize)]
pub struct CsrfOnly {}

/// Just the antiforgery field of a form.
#[derive(Deserialize)]
struct CsrfField {
    #[serde(default, rename = "_csrf")]
    csrf: Option<String>,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for CsrfForm<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let auth = RequestAuth::from_request_parts(&mut parts, state).await?;
        let bytes = form_bytes(Request::from_parts(parts, body), state).await?;
        let CsrfField { csrf } = parse_form(&bytes)?;
        auth.verify_csrf(csrf.as_deref()).await?;
        parse_form(&bytes).map(CsrfForm)
    }
}

/// The body of a form post: `415` for another content type, `413` over the body limit.
async fn form_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, PageError> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(PageError::status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported form",
            "Forms must be sent as application/x-www-form-urlencoded.",
        ));
    }
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            PageError::status(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                "The form is too large.",
            )
        } else {
            malformed_form()
        }
    })
}

fn parse_form<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, PageError> {
    serde_urlencoded::from_bytes(bytes).map_err(|_| malformed_form())
}

fn malformed_form() -> PageError {
    PageError::status(
        StatusCode::BAD_REQUEST,
        "Malformed form",
        "The form could not be read. Please go back and try again.",
    )
}
