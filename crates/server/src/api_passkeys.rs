//! `/api/v1/passkeys/*`: registering, listing, renaming and removing passkeys, and signing in
//! with one (see [`ringfence_accounts::passkeys`] for the ceremonies and their shared state).
//!
//! Registration and removal are sensitive: they take [`RecentAuth`] (`403 reauth_required`
//! when the session did not sign in or re-authenticate within `--reauth-window`).
//!
//! The one sign-in ceremony (`login/start`, `login/finish`) serves three purposes, told apart
//! by the cookies the start carries: a pending sign-in (second step after a password), a
//! signed-in session (re-authentication), or neither (a sign-in with the passkey alone). The
//! finish needs no CSRF token: what it accepts is an assertion whose signed client data names
//! this site's origin (checked against `--public-url`), which no other site can make.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ringfence_accounts::passkeys::{Ceremony, CeremonyScope};
use ringfence_accounts::{PasskeyError, PasskeyService, StoredPasskey, User};
use ringfence_axum::{AuthError, CsrfHeader, CurrentUser, PendingSignIn, RecentAuth, RequestAuth};
use ringfence_sessions::Session;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{login_response, ErrorResponse, LoginResponse};
use crate::body::ApiJson;
use crate::errors::ApiError;
use crate::state::AppState;
use crate::views::{timestamp, SessionJson, UserJson};

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
    /// passkey signs its owner in. Ignored with a pending sign-in or a session, whose own
    /// account the ceremony is for.
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
        PasskeyError::OtherAccount => {
            ApiError::new(StatusCode::FORBIDDEN, "passkey_other_account", &message)
        }
        PasskeyError::NoPasskeys => ApiError::new(StatusCode::CONFLICT, "no_passkeys", &message),
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

/// Who a passkey sign-in ceremony is for, from the request's cookies: the user of a pending
/// sign-in (the second step after a password) first, then the signed-in user
/// (re-authentication); `None` for anybody (a sign-in with the passkey alone). A cookie that
/// does not open, or a session that is over, counts as absent; a store that is down does not.
async fn ceremony_account(
    state: &AppState,
    pending: Result<PendingSignIn, AuthError>,
    current: Result<CurrentUser, AuthError>,
) -> Result<Option<User>, ApiError> {
    if let Ok(pending) = pending {
        return Ok(Some(state.ringfence.pending_user(&pending).await?));
    }
    match current {
        Ok(current) => Ok(Some(current.user)),
        Err(AuthError::Unauthenticated) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `POST /api/v1/passkeys/login/start`: a sign-in ceremony. With a pending sign-in cookie
/// (a right password, second step to come) it is for that user only; signed in, for the
/// signed-in user only (re-authentication); otherwise for any registered passkey.
#[utoipa::path(post, path = "/api/v1/passkeys/login/start", tag = "passkeys",
    request_body = LoginStart,
    security((), ("pending_sign_in_cookie" = []), ("session_cookie" = [])),
    responses((status = 200, body = CeremonyResponse, description = "the options; for a pending sign-in or a signed-in session, allowCredentials lists that account's passkeys"),
        (status = 400, body = ErrorResponse, description = "malformed JSON"),
        (status = 401, body = ErrorResponse, description = "the pending sign-in is void (password changed since)"),
        (status = 403, body = ErrorResponse, description = "account_disabled"),
        (status = 404, body = ErrorResponse, description = "passkeys are not enabled"),
        (status = 409, body = ErrorResponse, description = "no_passkeys: the pending or signed-in account has no passkeys"),
        (status = 413, body = ErrorResponse, description = "body over 64 KiB"),
        (status = 415, body = ErrorResponse, description = "not application/json"),
        (status = 422, body = ErrorResponse, description = "a malformed e-mail address, or JSON of the wrong shape"),
        (status = 503, body = ErrorResponse)))]
pub async fn login_start(
    State(state): State<AppState>,
    pending: Result<PendingSignIn, AuthError>,
    current: Result<CurrentUser, AuthError>,
    ApiJson(body): ApiJson<LoginStart>,
) -> Result<Response, ApiError> {
    let passkeys = service(&state)?;
    let ceremony = match ceremony_account(&state, pending, current).await? {
        Some(user) => passkeys.start_login_for(&user).await,
        None => passkeys.start_login(body.email.as_deref()).await,
    };
    Ok(Json(CeremonyResponse::from(ceremony.map_err(signing_in)?)).into_response())
}

/// `POST /api/v1/passkeys/login/finish`: what the proof does depends on how the ceremony
/// started. For a pending sign-in, it completes it (a new session, the pending cookie
/// cleared), as a code does at `POST /api/v1/login/mfa`; for a signed-in session, that session
/// counts as recently authenticated, as after `POST /api/v1/reauth` (`200`, the login response of
/// the same session); otherwise it is a complete sign-in (a new session). In a ceremony started
/// for one account (the pending or signed-in one), another account's passkey is refused (`403`
/// `passkey_other_account`) and nobody is switched.
#[utoipa::path(post, path = "/api/v1/passkeys/login/finish", tag = "passkeys",
    request_body = LoginFinish,
    security((), ("pending_sign_in_cookie" = []), ("session_cookie" = [])),
    responses((status = 200, body = LoginResponse, description = "signed in: a new session cookie is set (and a pending sign-in cookie cleared); or, for the signed-in user's own passkey, this session re-authenticated (same session id)"),
        (status = 400, body = ErrorResponse, description = "JSON that does not parse"),
        (status = 401, body = ErrorResponse, description = "invalid_challenge (unknown, finished or expired ceremony), passkey_rejected (unknown passkey, wrong origin, RP id, challenge or signature, no user verification, counter going backwards), or unauthenticated: the pending sign-in or session the ceremony was started for is over"),
        (status = 403, body = ErrorResponse, description = "account_disabled, or passkey_other_account: in a ceremony started for the pending or signed-in account, another account's passkey"),
        (status = 404, body = ErrorResponse, description = "passkeys are not enabled"),
        (status = 413, body = ErrorResponse, description = "body over 64 KiB"),
        (status = 415, body = ErrorResponse, description = "not application/json"),
        (status = 422, body = ErrorResponse, description = "malformed_credential, or JSON of the wrong shape"),
        (status = 429, body = ErrorResponse, description = "the second step or re-authentication failed too often (the account's sign-in throttle); see Retry-After"),
        (status = 503, body = ErrorResponse)))]
pub async fn login_finish(
    State(state): State<AppState>,
    auth: RequestAuth,
    pending: Result<PendingSignIn, AuthError>,
    current: Result<CurrentUser, AuthError>,
    ApiJson(body): ApiJson<LoginFinish>,
) -> Result<Response, ApiError> {
    let proof = service(&state)?
        .finish_login(
            &body.challenge_id,
            &body.credential,
            auth.client().ip.as_deref(),
        )
        .await
        .map_err(signing_in)?;
    let user = proof.user;
    let current = match current {
        Ok(current) => Some(current),
        Err(AuthError::Unauthenticated) => None,
        Err(e) => return Err(e.into()),
    };
    match proof.scope {
        // Started for one account: the pending sign-in or the session it was started in
        // must still be there, for the same account.
        CeremonyScope::OneAccount => {
            if let Ok(pending) = pending.as_ref() {
                if pending.user_id == user.id {
                    state.ringfence.pending_user(pending).await?;
                    // Signing in clears the pending cookie.
                    return login_response(&auth, &user).await;
                }
            }
            match current {
                Some(current) if current.user.id == user.id => {
                    reauthenticated(&auth, &current.user, &current.session)
                }
                _ => Err(AuthError::Unauthenticated.into()),
            }
        }
        // Any account's passkey: a complete sign-in (the contract's), as a right password is:
        // a browser signed in as someone else is signed in as the passkey's user instead (its
        // old session ends); signed in as the same user, the session is re-authenticated.
        CeremonyScope::AnyAccount => match current {
            Some(current) if current.user.id == user.id => {
                reauthenticated(&auth, &current.user, &current.session)
            }
            _ => login_response(&auth, &user).await,
        },
    }
}

/// The signed-in `session` proved its user again with a passkey: it counts as recently
/// authenticated (as after `/api/v1/reauth`), and the answer is the login response of that same
/// session (the contract's `200` for `login/finish`; the session id does not change).
fn reauthenticated(
    auth: &RequestAuth,
    user: &User,
    session: &Session,
) -> Result<Response, ApiError> {
    auth.mark_recently_authenticated(session)?;
    let body = LoginResponse::new(
        UserJson::from(user),
        SessionJson::new(session, true),
        auth.csrf_token()?,
    );
    Ok(Json(body).into_response())
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
