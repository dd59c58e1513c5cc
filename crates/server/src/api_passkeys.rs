//! `/api/v1/passkeys/*`: registering, listing, renaming and removing passkeys, and signing in
//! with one (see [`ringfence_accounts::passkeys`] for the ceremonies and their shared state).
//!
//! Registration and removal are sensitive: they take [`RecentAuth`] (`403 reauth_required`
//! when the session did not sign in or re-authenticate within `--reauth-window`).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ringfence_accounts::passkeys::Ceremony;
use ringfence_accounts::{PasskeyError, PasskeyService, StoredPasskey};
use ringfence_axum::{CsrfHeader, CurrentUser, RecentAuth, RequestAuth};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{login_response, ErrorResponse, LoginResponse};
use crate::body::ApiJson;
use crate::errors::ApiError;
use crate::state::AppState;
use crate::views::timestamp;

/// A started ceremony.
#[derive(Serialize, ToSchema)]
pub struct CeremonyResponse {
    /// Sent back with the finish; works once, on any node, for 5 minutes.
    challenge_id: String,
    /// The options for `navigator.credentials.create` / `get`, binary fields URL-safe base64
    /// (what `PublicKeyCredential.parseCreationOptionsFromJSON` /
    /// `parseRequestOptionsFromJSON` take).
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    public_key: serde_json::Value,
}

impl From<Ceremony> for CeremonyResponse {
    fn from(c: Ceremony) -> Self {
        Self {
            challenge_id: c.challenge_id,
            public_key: c.public_key,
        }
    }
}

/// The finish of a registration.
#[derive(Deserialize, ToSchema)]
pub struct RegisterFinish {
    /// From the start.
    challenge_id: String,
    /// A name for the passkey (1 to 64 characters).
    name: String,
    /// The `PublicKeyCredential` as its `toJSON()` gives it.
    #[schema(value_type = Object)]
    credential: serde_json::Value,
}

/// A new name.
#[derive(Deserialize, ToSchema)]
pub struct PasskeyRename {
    /// 1 to 64 characters.
    name: String,
}

/// The start of a passkey sign-in.
#[derive(Deserialize, ToSchema, Default)]
pub struct LoginStart {
    /// Only a passkey of this account will do; without it, any registered (discoverable)
    /// passkey signs its owner in.
    #[serde(default)]
    email: Option<String>,
}

/// The finish of a passkey sign-in.
#[derive(Deserialize, ToSchema)]
pub struct LoginFinish {
    /// From the start.
    challenge_id: String,
    /// The `PublicKeyCredential` as its `toJSON()` gives it.
    #[schema(value_type = Object)]
    credential: serde_json::Value,
}

/// `201` of a registration.
#[derive(Serialize, ToSchema)]
pub struct PasskeyCreated {
    /// The passkey's id (for `DELETE /api/v1/passkeys/{id}`).
    id: String,
    /// Its name.
    name: String,
    /// When it was registered.
    created_at: String,
}

/// One passkey of the list.
#[derive(Serialize, ToSchema)]
pub struct PasskeyJson {
    /// Its id.
    id: String,
    /// Its name.
    name: String,
    /// When it was registered.
    created_at: String,
    /// When it last signed in, if ever.
    last_used_at: Option<String>,
}

impl From<StoredPasskey> for PasskeyJson {
    fn from(p: StoredPasskey) -> Self {
        Self {
            id: p.id,
            name: p.name,
            created_at: timestamp(p.created_at),
            last_used_at: p.last_used_at.map(timestamp),
        }
    }
}

/// `200` of the list.
#[derive(Serialize, ToSchema)]
pub struct PasskeysResponse {
    /// Oldest first.
    passkeys: Vec<PasskeyJson>,
}

/// The node's passkey service; `404` when this node runs without one.
fn service(state: &AppState) -> Result<&PasskeyService, ApiError> {
    state
        .passkeys
        .as_ref()
        .ok_or_else(|| ApiError::not_found("passkeys are not enabled on this node"))
}

/// A [`PasskeyError`] as an answer; `refused` is the status of a spent or unknown ceremony and
/// of a refused authenticator answer: `422` registering (well-formed input that does not
/// hold), `401` signing in (not signed in). `400` stays for JSON that does not parse.
fn passkey_error(error: PasskeyError, refused: StatusCode) -> ApiError {
    let message = error.to_string();
    match error {
        PasskeyError::InvalidName(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_name", &message)
        }
        PasskeyError::InvalidChallenge => ApiError::new(refused, "invalid_challenge", &message),
        PasskeyError::MalformedCredential(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "malformed_credential",
            &message,
        ),
        PasskeyError::Rejected(_) => ApiError::new(refused, "passkey_rejected", &message),
        PasskeyError::Duplicate => ApiError::new(StatusCode::CONFLICT, "passkey_exists", &message),
        PasskeyError::NotFound => ApiError::not_found(&message),
        PasskeyError::Account(e) => e.into(),
    }
}

fn registering(error: PasskeyError) -> ApiError {
    passkey_error(error, StatusCode::UNPROCESSABLE_ENTITY)
}

fn signing_in(error: PasskeyError) -> ApiError {
    passkey_error(error, StatusCode::UNAUTHORIZED)
}

/// `POST /api/v1/passkeys/register/start` (recent authentication).
#[utoipa::path(post, path = "/api/v1/passkeys/register/start", tag = "passkeys",
    security(("session_cookie" = [], "csrf_header" = [])),
    responses((status = 200, body = CeremonyResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse, description = "the CSRF header is missing or wrong, or reauth_required"),
        (status = 404, body = ErrorResponse, description = "passkeys are not enabled"),
        (status = 503, body = ErrorResponse)))]
pub async fn register_start(
    current: RecentAuth,
    State(state): State<AppState>,
    _csrf: CsrfHeader,
) -> Result<Response, ApiError> {
    let passkeys = service(&state)?;
    let ceremony = passkeys
        .start_registration(&current.user)
        .await
        .map_err(registering)?;
    Ok(Json(CeremonyResponse::from(ceremony)).into_response())
}

/// `POST /api/v1/passkeys/register/finish`.
#[utoipa::path(post, path = "/api/v1/passkeys/register/finish", tag = "passkeys",
    request_body = RegisterFinish,
    security(("session_cookie" = [], "csrf_header" = [])),
    responses((status = 201, body = PasskeyCreated),
        (status = 400, body = ErrorResponse, description = "JSON that does not parse"),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse, description = "the CSRF header is missing or wrong"),
        (status = 404, body = ErrorResponse, description = "passkeys are not enabled"),
        (status = 409, body = ErrorResponse, description = "passkey_exists: the credential is registered already"),
        (status = 413, body = ErrorResponse, description = "body over 64 KiB"),
        (status = 415, body = ErrorResponse, description = "not application/json"),
        (status = 422, body = ErrorResponse, description = "invalid_challenge (unknown, finished or expired ceremony), malformed_credential, passkey_rejected (wrong origin, RP id, challenge or signature, no user verification), invalid_name, or JSON of the wrong shape"),
        (status = 503, body = ErrorResponse)))]
pub async fn register_finish(
    State(state): State<AppState>,
    current: CurrentUser,
    _csrf: CsrfHeader,
    ApiJson(body): ApiJson<RegisterFinish>,
) -> Result<Response, ApiError> {
    let passkeys = service(&state)?;
    let stored = passkeys
        .finish_registration(
            &current.user,
            &body.challenge_id,
            &body.name,
            &body.credential,
        )
        .await
        .map_err(registering)?;
    let created = PasskeyCreated {
        id: stored.id,
        name: stored.name,
        created_at: timestamp(stored.created_at),
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `GET /api/v1/passkeys`.
#[utoipa::path(get, path = "/api/v1/passkeys", tag = "passkeys",
    security(("session_cookie" = [])),
    responses((status = 200, body = PasskeysResponse),
        (status = 401, body = ErrorResponse),
        (status = 404, body = ErrorResponse, description = "passkeys are not enabled"),
        (status = 503, body = ErrorResponse)))]
pub async fn list(
    State(state): State<AppState>,
    current: CurrentUser,
) -> Result<Response, ApiError> {
    let passkeys = service(&state)?
        .list(&current.user.id)
        .await
        .map_err(registering)?;
    let passkeys = passkeys.into_iter().map(PasskeyJson::from).collect();
    Ok(Json(PasskeysResponse { passkeys }).into_response())
}

/// `PATCH /api/v1/passkeys/{id}`: renames it.
#[utoipa::path(patch, path = "/api/v1/passkeys/{id}", tag = "passkeys",
    params(("id" = String, Path, description = "passkey id")),
    request_body = PasskeyRename,
    security(("session_cookie" = [], "csrf_header" = [])),
    responses((status = 204),
        (status = 400, body = ErrorResponse, description = "malformed JSON"),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse, description = "the CSRF header is missing or wrong"),
        (status = 404, body = ErrorResponse, description = "the user has no such passkey"),
        (status = 413, body = ErrorResponse, description = "body over 64 KiB"),
        (status = 415, body = ErrorResponse, description = "not application/json"),
        (status = 422, body = ErrorResponse, description = "invalid_name, or JSON of the wrong shape"),
        (status = 503, body = ErrorResponse)))]
pub async fn rename(
    State(state): State<AppState>,
    current: CurrentUser,
    _csrf: CsrfHeader,
    id: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<PasskeyRename>,
) -> Result<Response, ApiError> {
    let passkeys = service(&state)?;
    let Ok(Path(id)) = id else {
        return Err(ApiError::not_found("no such passkey"));
    };
    passkeys
        .rename(&current.user, &id, &body.name)
        .await
        .map_err(registering)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /api/v1/passkeys/{id}` (recent authentication).
#[utoipa::path(delete, path = "/api/v1/passkeys/{id}", tag = "passkeys",
    params(("id" = String, Path, description = "passkey id")),
    security(("session_cookie" = [], "csrf_header" = [])),
    responses((status = 204),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse, description = "the CSRF header is missing or wrong, or reauth_required"),
        (status = 404, body = ErrorResponse, description = "the user has no such passkey"),
        (status = 503, body = ErrorResponse)))]
pub async fn delete(
    current: RecentAuth,
    State(state): State<AppState>,
    _csrf: CsrfHeader,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let passkeys = service(&state)?;
    let Ok(Path(id)) = id else {
        return Err(ApiError::not_found("no such passkey"));
    };
    passkeys
        .delete(&current.user, &id)
        .await
        .map_err(registering)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/passkeys/login/start`.
#[utoipa::path(post, path = "/api/v1/passkeys/login/start", tag = "passkeys",
    request_body = LoginStart,
    security(()),
    responses((status = 200, body = CeremonyResponse),
        (status = 400, body = ErrorResponse, description = "malformed JSON"),
        (status = 404, body = ErrorResponse, description = "passkeys are not enabled"),
        (status = 413, body = ErrorResponse, description = "body over 64 KiB"),
        (status = 415, body = ErrorResponse, description = "not application/json"),
        (status = 422, body = ErrorResponse, description = "a malformed e-mail address, or JSON of the wrong shape"),
        (status = 503, body = ErrorResponse)))]
pub async fn login_start(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginStart>,
) -> Result<Response, ApiError> {
    let ceremony = service(&state)?
        .start_login(body.email.as_deref())
        .await
        .map_err(signing_in)?;
    Ok(Json(CeremonyResponse::from(ceremony)).into_response())
}

/// `POST /api/v1/passkeys/login/finish`: a complete sign-in (a new session).
#[utoipa::path(post, path = "/api/v1/passkeys/login/finish", tag = "passkeys",
    request_body = LoginFinish,
    security(()),
    responses((status = 200, body = LoginResponse),
        (status = 400, body = ErrorResponse, description = "JSON that does not parse"),
        (status = 401, body = ErrorResponse, description = "invalid_challenge (unknown, finished or expired ceremony), or passkey_rejected: unknown passkey, wrong origin, RP id, challenge or signature, no user verification, counter going backwards"),
        (status = 403, body = ErrorResponse, description = "account_disabled"),
        (status = 404, body = ErrorResponse, description = "passkeys are not enabled"),
        (status = 413, body = ErrorResponse, description = "body over 64 KiB"),
        (status = 415, body = ErrorResponse, description = "not application/json"),
        (status = 422, body = ErrorResponse, description = "malformed_credential, or JSON of the wrong shape"),
        (status = 503, body = ErrorResponse)))]
pub async fn login_finish(
    State(state): State<AppState>,
    auth: RequestAuth,
    ApiJson(body): ApiJson<LoginFinish>,
) -> Result<Response, ApiError> {
    let user = service(&state)?
        .finish_login(&body.challenge_id, &body.credential)
        .await
        .map_err(signing_in)?;
    login_response(&auth, &user).await
}

/// `GET /static/passkeys.js`: the pages' passkey script (no CDN; no inline code needed).
pub async fn script() -> Response {
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/javascript; charset=utf-8",
            ),
            (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/passkeys.js"),
    )
        .into_response()
}
