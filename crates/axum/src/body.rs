//! Body extractors that answer with the contract's errors instead of axum's plain-text ones:
//! [`ApiJson`] for JSON APIs (`400` malformed, `413` too large, `415` wrong content type, `422`
//! valid JSON of the wrong shape) and [`CsrfForm`] for HTML forms, whose antiforgery field is
//! checked before anything else in the form is read.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::api_error::ApiError;
use crate::auth::RequestAuth;
use crate::error::AuthError;

/// A JSON body; rejects with [`ApiError`] in the contract's shape.
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
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is too large",
            )
        }
        other => ApiError::new(StatusCode::BAD_REQUEST, "malformed", &other.body_text()),
    }
}

/// A form (`application/x-www-form-urlencoded`) whose `_csrf` field was checked against the
/// requester (the session, or the antiforgery cookie of a signed-out visitor) before the rest of
/// the form is read: a post with a missing or wrong token is refused whatever else it holds.
/// `T` lists the other fields (unknown ones, `_csrf` included, are ignored); forms with
/// nothing but the token take [`CsrfOnly`]. Put [`RequestAuth::csrf_token`] in the form as a
/// hidden `_csrf` field.
pub struct CsrfForm<T>(pub T);

/// The fields of a form that carries only the antiforgery token.
#[derive(Debug, Deserialize)]
pub struct CsrfOnly {}

/// Why a [`CsrfForm`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormRejection {
    /// The `_csrf` field is missing or wrong: `400` (the form expired, or a cross-site post).
    #[error(
        "the form's security token is missing or does not match; reload the page and try again"
    )]
    Csrf,
    /// Not `application/x-www-form-urlencoded`: `415`.
    #[error("forms must be sent as application/x-www-form-urlencoded")]
    NotAForm,
    /// Over the body limit: `413`.
    #[error("the form is too large")]
    TooLarge,
    /// The fields could not be read as `T`: `400`.
    #[error("the form could not be read")]
    Malformed,
    /// The request could not be authenticated (no layer, a store outage).
    #[error(transparent)]
    Auth(AuthError),
}

impl FormRejection {
    /// The HTTP status of this refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            FormRejection::Csrf | FormRejection::Malformed => StatusCode::BAD_REQUEST,
            FormRejection::NotAForm => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            FormRejection::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            FormRejection::Auth(error) => error.status(),
        }
    }
}

impl From<AuthError> for FormRejection {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Csrf => FormRejection::Csrf,
            other => FormRejection::Auth(other),
        }
    }
}

impl IntoResponse for FormRejection {
    fn into_response(self) -> Response {
        match self {
            FormRejection::Auth(error) => error.into_response(),
            other => (other.status(), other.to_string()).into_response(),
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for CsrfForm<T> {
    type Rejection = FormRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let auth = RequestAuth::from_request_parts(&mut parts, state).await?;
        let bytes = form_bytes(Request::from_parts(parts, body), state).await?;
        let CsrfField { csrf } = parse_form(&bytes)?;
        auth.verify_csrf(csrf.as_deref()).await?;
        parse_form(&bytes).map(CsrfForm)
    }
}

/// Just the antiforgery field of a form.
#[derive(Deserialize)]
struct CsrfField {
    #[serde(default, rename = "_csrf")]
    csrf: Option<String>,
}

/// The body of a form post.
async fn form_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, FormRejection> {
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
        return Err(FormRejection::NotAForm);
    }
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            FormRejection::TooLarge
        } else {
            FormRejection::Malformed
        }
    })
}

fn parse_form<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FormRejection> {
    serde_urlencoded::from_bytes(bytes).map_err(|_| FormRejection::Malformed)
}
