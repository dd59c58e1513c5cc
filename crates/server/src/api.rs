//! The JSON API (`/api/v1`). Cookie-authenticated writes carry `X-CSRF-Token`.
//!
//! Every handler is annotated for the OpenAPI document ([`crate::openapi`]), and its responses
//! are typed structs, so the document is generated from the same code that answers.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ringfence_accounts::User;
use ringfence_axum::{CsrfHeader, CurrentSession, CurrentUser, RequestAuth, CSRF_HEADER};
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
    responses(
        (status = 201, body = RegisterResponse),
        (status = 400, body = ErrorResponse, description = "malformed JSON"),
        (status = 409, body = ErrorResponse, description = "e-mail taken"),
        (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse),
        (status = 422, body = ErrorResponse, description = "invalid e-mail or weak password"),
        (status = 429, body = ErrorResponse, description = "too many registrations from this client; see Retry-After"),
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
    responses(
        (status = 200, body = LoginResponse, description = "signed in; the session cookie is set"),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse, description = "wrong e-mail or password"),
        (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse), (status = 422, body = ErrorResponse),
        (status = 429, body = ErrorResponse, description = "too many failed attempts; see Retry-After"),
        (status = 503, body = ErrorResponse)))]
pub async fn login(
    State(state): State<AppState>,
    auth: RequestAuth,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let user = state
        .ringfence
        .accounts()
        .authenticate_from(&body.email, &body.password, auth.client().ip.as_deref())
        .await?;
    let session = auth.sign_in(&user.id).await?;
    let body = LoginResponse {
        user: UserJson::from(&user),
        session: SessionJson::new(&session, true),
        csrf_token: auth.csrf_token()?,
    };
    Ok(Json(body).into_response())
}

/// `POST /api/v1/logout`: ends this session. Signed in, it needs the CSRF header like every
/// write; without a session there is nothing to end and it answers `204` all the same.
#[utoipa::path(post, path = "/api/v1/logout", tag = "sessions",
    params(("X-CSRF-Token" = Option<String>, Header, description = "required when signed in")),
    responses((status = 204), (status = 403, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
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
    responses((status = 200, body = MeResponse), (status = 401, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
pub async fn me(
    State(state): State<AppState>,
    auth: RequestAuth,
    current: CurrentUser,
) -> Result<Response, ApiError> {
    let body = MeResponse {
        user: UserJson::from(&current.user),
        session: SessionJson::new(&current.session, true),
        node: state.node_name.to_string(),
        csrf_token: auth.csrf_token()?,
    };
    Ok(Json(body).into_response())
}

/// `GET /api/v1/sessions`: every device the user is signed in on.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions",
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
    params(("id" = String, Path, description = "session id"), ("X-CSRF-Token" = String, Header)),
    responses((status = 204), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse, description = "the user has no such session"), (status = 503, body = ErrorResponse)))]
pub async fn revoke(
    State(state): State<AppState>,
    auth: RequestAuth,
    CurrentSession(current): CurrentSession,
    _csrf: CsrfHeader,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = SessionId::parse(&id).ok_or_else(|| ApiError::not_found("no such session"))?;
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
    params(("X-CSRF-Token" = String, Header)),
    responses((status = 200, body = RevokedResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
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
    params(("X-CSRF-Token" = String, Header)),
    responses((status = 204), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse, description = "bad CSRF token or wrong current password"),
        (status = 422, body = ErrorResponse, description = "weak new password"),
        (status = 429, body = ErrorResponse, description = "too many wrong passwords; see Retry-After"),
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
    responses((status = 200, body = StatsResponse), (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse, description = "no user with that e-mail"),
        (status = 503, body = ErrorResponse)))]
pub async fn admin_stats(
    State(state): State<AppState>,
    current: CurrentUser,
    query: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    require_admin(&current)?;
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

/// `403` unless the signed-in user is an administrator.
fn require_admin(current: &CurrentUser) -> Result<(), ApiError> {
    if current.user.is_admin {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "administrators only",
        ))
    }
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
    params(("X-CSRF-Token" = String, Header)),
    responses((status = 200, body = RevokedResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse, description = "no such user"),
        (status = 503, body = ErrorResponse)))]
pub async fn admin_revoke_user(
    State(state): State<AppState>,
    current: CurrentUser,
    _csrf: CsrfHeader,
    ApiJson(body): ApiJson<RevokeUser>,
) -> Result<Response, ApiError> {
    require_admin(&current)?;
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
