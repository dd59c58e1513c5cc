//! The JSON API (`/api/v1`). Cookie-authenticated writes carry `X-CSRF-Token`.
//!
//! Every handler is annotated for the OpenAPI document ([`crate::openapi`]), and its responses
//! are typed structs, so the document is generated from the same code that answers. Each
//! annotation lists every status the handler can answer and its security (the session cookie,
//! and the CSRF header on cookie-authenticated writes).
//!
//! Extractors run in argument order: admin handlers take [`RequireAdmin`] first, so a caller who
//! is not an administrator gets `403` before the body or query is read.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ringfence_accounts::User;
use ringfence_axum::{
    CsrfHeader, CurrentSession, CurrentUser, PasswordSignIn, RequestAuth, RequireAdmin, CSRF_HEADER,
};
use ringfence_sessions::SessionId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::body::ApiJson;
use crate::errors::ApiError;
use crate::state::AppState;
use crate::views::{SessionJson, UserJson};

/// E-mail and password.
#[derive(Deserialize, ToSchema)]
pub struct Credentials {
    /// E-mail address (trimmed and lower-cased).
    email: String,
    /// Password: at least 12 characters, not a common one.
    password: String,
}

/// A password change.
#[derive(Deserialize, ToSchema)]
pub struct PasswordChange {
    /// The password now.
    current_password: String,
    /// The new password (same rules as at registration).
    new_password: String,
}

/// `201` of registration.
#[derive(Serialize, ToSchema)]
pub struct RegisterResponse {
    /// The new user.
    user: UserJson,
}

/// `200` of sign-in.
#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// The user.
    user: UserJson,
    /// The new session (the cookie refers to it).
    session: SessionJson,
    /// Send as `X-CSRF-Token` with cookie-authenticated writes.
    csrf_token: String,
}

impl LoginResponse {
    /// The answer of a completed sign-in.
    pub fn new(user: UserJson, session: SessionJson, csrf_token: String) -> Self {
        Self {
            user,
            session,
            csrf_token,
        }
    }
}

/// `200` of `POST /api/v1/login`: signed in, or (for a user with a second factor) the pending
/// sign-in that `POST /api/v1/login/mfa` completes.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginAnswer {
    /// Signed in.
    SignedIn(Box<LoginResponse>),
    /// A second factor is needed.
    MfaRequired(crate::api_mfa::MfaRequiredResponse),
}

/// `200` of `GET /api/v1/me`.
#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    /// The signed-in user.
    user: UserJson,
    /// This session.
    session: SessionJson,
    /// The node that answered.
    node: String,
    /// Send as `X-CSRF-Token` with cookie-authenticated writes.
    csrf_token: String,
}

/// The user's sessions.
#[derive(Serialize, ToSchema)]
pub struct SessionsResponse {
    /// Every active session of the user, the current one marked.
    sessions: Vec<SessionJson>,
}

/// How many sessions were signed out.
#[derive(Serialize, ToSchema)]
pub struct RevokedResponse {
    /// Number of sessions ended.
    revoked: u64,
}

/// Counts for administrators.
#[derive(Serialize, ToSchema)]
pub struct StatsResponse {
    /// User accounts.
    users: u64,
    /// Sessions not expired.
    active_sessions: u64,
    /// Users with at least one active session.
    signed_in_users: u64,
    /// The user asked for with `?email=`, with their own count; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<UserStats>,
}

/// One user's sessions count (`GET /api/v1/admin/stats?email=…`).
#[derive(Serialize, ToSchema)]
pub struct UserStats {
    /// The user's id.
    id: String,
    /// The normalized e-mail address.
    email: String,
    /// That user's active sessions.
    active_sessions: u64,
}

/// The query of `GET /api/v1/admin/stats`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Also count this user's active sessions.
    email: Option<String>,
}

/// Every error: `{"error":{"code","message"}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorResponse {
    /// The error.
    error: ErrorDetail,
}

/// An error's code and message.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code ("unauthenticated", "csrf", "email_taken", …).
    code: String,
    /// For people.
    message: String,
}

/// `POST /api/v1/register`: creates an account (does not sign in).
#[utoipa::path(post, path = "/api/v1/register", request_body = Credentials, tag = "accounts",
    security(()),
    responses(
        (status = 201, body = RegisterResponse),
        (status = 400, body = ErrorResponse, description = "malformed JSON"),
        (status = 409, body = ErrorResponse, description = "e-mail taken"),
        (status = 413, body = ErrorResponse, description = "body over 64 KiB"),
        (status = 415, body = ErrorResponse, description = "not application/json"),
        (status = 422, body = ErrorResponse, description = "JSON of the wrong shape, invalid e-mail or weak password"),
        (status = 429, body = ErrorResponse, description = "too many registrations from this address; see Retry-After"),
        (status = 503, body = ErrorResponse)))]
pub async fn register(
    State(state): State<AppState>,
    auth: RequestAuth,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let user = state
        .ringfence
        .accounts()
        .register_from(&body.email, &body.password, auth.client().ip.as_deref())
        .await?;
    let body = RegisterResponse {
        user: UserJson::from(&user),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `POST /api/v1/login`: signs in and sets the session cookie.
#[utoipa::path(post, path = "/api/v1/login", request_body = Credentials, tag = "sessions",
    security(()),
    responses(
        (status = 200, body = LoginAnswer, description = "signed in and the session cookie is set; or, for a user with a second factor, mfa_required with the pending sign-in cookie"),
        (status = 400, body = ErrorResponse, description = "malformed JSON"),
        (status = 401, body = ErrorResponse, description = "wrong e-mail or password"),
        (status = 403, body = ErrorResponse, description = "the right password of an account that is account_disabled, or email_not_verified under --require-verified-email"),
        (status = 413, body = ErrorResponse, description = "body over 64 KiB"),
        (status = 415, body = ErrorResponse, description = "not application/json"),
        (status = 422, body = ErrorResponse, description = "JSON of the wrong shape"),
        (status = 429, body = ErrorResponse, description = "too many failed attempts; see Retry-After"),
        (status = 503, body = ErrorResponse)))]
pub async fn login(
    auth: RequestAuth,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let answer = match auth
        .sign_in_with_password(&body.email, &body.password)
        .await?
    {
        PasswordSignIn::SignedIn { user, session } => {
            LoginAnswer::SignedIn(Box::new(LoginResponse::new(
                UserJson::from(&user),
                SessionJson::new(&session, true),
                auth.csrf_token()?,
            )))
        }
        PasswordSignIn::SecondFactorRequired { methods, .. } => LoginAnswer::MfaRequired(
            crate::api_mfa::MfaRequiredResponse::new(methods, auth.csrf_token()?),
        ),
    };
    Ok(Json(answer).into_response())
}

/// Signs `user` in on a new session and answers with the login response (password and passkey
/// sign-ins alike).
pub(crate) async fn login_response(auth: &RequestAuth, user: &User) -> Result<Response, ApiError> {
    let session = auth.sign_in(&user.id).await?;
    let body = LoginResponse {
        user: UserJson::from(user),
        session: SessionJson::new(&session, true),
        csrf_token: auth.csrf_token()?,
    };
    Ok(Json(LoginAnswer::SignedIn(Box::new(body))).into_response())
}

/// `POST /api/v1/logout`: ends this session. Signed in, it needs the CSRF header like every
/// write; without a session there is nothing to end and it answers `204` all the same.
#[utoipa::path(post, path = "/api/v1/logout", tag = "sessions",
    security((), ("session_cookie" = [], "csrf_header" = [])),
    responses((status = 204, description = "signed out (or was not signed in)"),
        (status = 403, body = ErrorResponse, description = "signed in, but the CSRF header is missing or wrong"),
        (status = 503, body = ErrorResponse)))]
pub async fn logout(auth: RequestAuth, headers: HeaderMap) -> Result<Response, ApiError> {
    if auth.session()?.is_some() {
        let token = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        auth.verify_csrf(token).await?;
    }
    auth.sign_out().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/me`: the signed-in user, this session, the node, a CSRF token.
#[utoipa::path(get, path = "/api/v1/me", tag = "sessions",
    security(("session_cookie" = [])),
    responses((status = 200, body = MeResponse), (status = 401, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn me(
    State(state): State<AppState>,
    auth: RequestAuth,
    current: CurrentUser,
) -> Result<Response, ApiError> {
    let mut user = UserJson::from(&current.user);
    user.mfa = Some(
        state
            .ringfence
            .accounts()
            .displayed_mfa_status(&current.session, &current.user)
            .await?
            .into(),
    );
    let body = MeResponse {
        user,
        session: SessionJson::new(&current.session, true),
        node: state.node_name.to_string(),
        csrf_token: auth.csrf_token()?,
    };
    Ok(presized_json(&body, ME_BODY_CAPACITY))
}

/// Room for the whole `/api/v1/me` body (about 600 bytes with a browser's User-Agent).
const ME_BODY_CAPACITY: usize = 1024;

/// `body` as a JSON response, serialized into a buffer of `capacity` bytes: `Json` starts at 128
/// bytes and grows its buffer (a copy each time) three times for the `/me` body, on every call.
fn presized_json(body: &impl Serialize, capacity: usize) -> Response {
    let mut buffer = Vec::with_capacity(capacity);
    match serde_json::to_writer(&mut buffer, body) {
        Ok(()) => (
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            buffer,
        )
            .into_response(),
        // Strings, numbers and booleans into a Vec cannot fail; should a future field, the
        // answer is what `Json` would give.
        Err(_) => Json(body).into_response(),
    }
}

/// `GET /api/v1/sessions`: every device the user is signed in on.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions",
    security(("session_cookie" = [])),
    responses((status = 200, body = SessionsResponse), (status = 401, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn sessions(
    State(state): State<AppState>,
    CurrentSession(current): CurrentSession,
) -> Result<Response, ApiError> {
    let list = state.ringfence.sessions().list(&current.user_id).await?;
    let sessions = list
        .iter()
        .map(|s| SessionJson::new(s, s.id == current.id))
        .collect();
    Ok(Json(SessionsResponse { sessions }).into_response())
}

/// `DELETE /api/v1/sessions/{id}`: signs that device out, on every node.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, description = "session id")),
    security(("session_cookie" = [], "csrf_header" = [])),
    responses((status = 204), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse, description = "the CSRF header is missing or wrong"),
        (status = 404, body = ErrorResponse, description = "the user has no such session"), (status = 503, body = ErrorResponse)))]
pub async fn revoke(
    State(state): State<AppState>,
    auth: RequestAuth,
    CurrentSession(current): CurrentSession,
    _csrf: CsrfHeader,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    // An id that is not even UTF-8 once percent-decoded names no session either: the same 404
    // in the contract's shape, not axum's plain-text 400.
    let id = id
        .ok()
        .and_then(|Path(id)| SessionId::parse(&id))
        .ok_or_else(|| ApiError::not_found("no such session"))?;
    if id == current.id {
        auth.sign_out().await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    if state
        .ringfence
        .sessions()
        .end_by_id(&current.user_id, &id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found("no such session"))
    }
}

/// `POST /api/v1/sessions/revoke-others`: signs out every other device.
#[utoipa::path(post, path = "/api/v1/sessions/revoke-others", tag = "sessions",
    security(("session_cookie" = [], "csrf_header" = [])),
    responses((status = 200, body = RevokedResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse, description = "the CSRF header is missing or wrong"),
        (status = 503, body = ErrorResponse)))]
pub async fn revoke_others(
    State(state): State<AppState>,
    CurrentSession(current): CurrentSession,
    _csrf: CsrfHeader,
) -> Result<Response, ApiError> {
    let revoked = state
        .ringfence
        .sessions()
        .end_others(&current.user_id, &current.id)
        .await?;
    Ok(Json(RevokedResponse { revoked }).into_response())
}

/// `POST /api/v1/password`: changes the password; every other session is signed out.
#[utoipa::path(post, path = "/api/v1/password", request_body = PasswordChange, tag = "accounts",
    security(("session_cookie" = [], "csrf_header" = [])),
    responses((status = 204, description = "changed; every other session is signed out"),
        (status = 400, body = ErrorResponse, description = "malformed JSON"),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse, description = "bad CSRF token or wrong current password"),
        (status = 413, body = ErrorResponse, description = "body over 64 KiB"),
        (status = 415, body = ErrorResponse, description = "not application/json"),
        (status = 422, body = ErrorResponse, description = "JSON of the wrong shape or weak new password"),
        (status = 429, body = ErrorResponse, description = "too many wrong current passwords; see Retry-After"),
        (status = 503, body = ErrorResponse)))]
pub async fn change_password(
    State(state): State<AppState>,
    auth: RequestAuth,
    CurrentSession(current): CurrentSession,
    _csrf: CsrfHeader,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<Response, ApiError> {
    state
        .ringfence
        .accounts()
        .change_password(
            &current.user_id,
            &body.current_password,
            &body.new_password,
            &current.id,
            auth.client().ip.as_deref(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/admin/stats`: counts, for administrators; with `?email=` one user's too.
#[utoipa::path(get, path = "/api/v1/admin/stats", tag = "admin", params(StatsQuery),
    security(("session_cookie" = [])),
    responses((status = 200, body = StatsResponse),
        (status = 400, body = ErrorResponse, description = "unreadable query (a field twice)"),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse, description = "not an administrator"),
        (status = 404, body = ErrorResponse, description = "no user with that e-mail"),
        (status = 503, body = ErrorResponse)))]
pub async fn admin_stats(
    _admin: RequireAdmin,
    State(state): State<AppState>,
    query: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed", &e.body_text()))?;
    let user = match query.email.as_deref().map(str::trim) {
        Some(email) => {
            let (user, active_sessions) = user_session_count(&state, email).await?;
            Some(UserStats {
                id: user.id,
                email: user.email,
                active_sessions,
            })
        }
        None => None,
    };
    let users = state.ringfence.accounts().count().await?;
    let counts = state.ringfence.sessions().counts().await?;
    let body = StatsResponse {
        users,
        active_sessions: counts.active_sessions,
        signed_in_users: counts.signed_in_users,
        user,
    };
    Ok(Json(body).into_response())
}

/// The user with this e-mail (an administrator's lookup); `404` when there is none.
async fn user_by_email(state: &AppState, email: &str) -> Result<User, ApiError> {
    state
        .ringfence
        .accounts()
        .user_by_email(email)
        .await?
        .ok_or_else(|| ApiError::not_found("no user with that e-mail address"))
}

/// The user with this e-mail and their active sessions count; `404` when there is none.
pub async fn user_session_count(state: &AppState, email: &str) -> Result<(User, u64), ApiError> {
    let user = user_by_email(state, email).await?;
    let count = state.ringfence.sessions().count_for_user(&user.id).await?;
    Ok((user, count))
}

/// Whose sessions an administrator ends.
#[derive(Deserialize, ToSchema)]
pub struct RevokeUser {
    /// The user's e-mail address.
    email: String,
}

/// `POST /api/v1/admin/revoke-user`: signs a user out everywhere (administrators only).
#[utoipa::path(post, path = "/api/v1/admin/revoke-user", request_body = RevokeUser, tag = "admin",
    security(("session_cookie" = [], "csrf_header" = [])),
    responses((status = 200, body = RevokedResponse),
        (status = 400, body = ErrorResponse, description = "malformed JSON"),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse, description = "not an administrator, or the CSRF header is missing or wrong"),
        (status = 404, body = ErrorResponse, description = "no such user"),
        (status = 413, body = ErrorResponse, description = "body over 64 KiB"),
        (status = 415, body = ErrorResponse, description = "not application/json"),
        (status = 422, body = ErrorResponse, description = "JSON of the wrong shape"),
        (status = 503, body = ErrorResponse)))]
pub async fn admin_revoke_user(
    _admin: RequireAdmin,
    _csrf: CsrfHeader,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RevokeUser>,
) -> Result<Response, ApiError> {
    let revoked = revoke_user_everywhere(&state, &body.email).await?;
    Ok(Json(RevokedResponse { revoked }).into_response())
}

/// Ends every session of the user with this e-mail; `404` when there is none.
pub async fn revoke_user_everywhere(state: &AppState, email: &str) -> Result<u64, ApiError> {
    let user = user_by_email(state, email).await?;
    let revoked = state.ringfence.sessions().end_all(&user.id).await?;
    tracing::warn!(user = %user.id, revoked, "administrator signed a user out everywhere");
    Ok(revoked)
}

/// Anything else: `404` in the contract's shape.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}
