//! The JSON API (`/api/v1`). Cookie-authenticated writes carry `X-CSRF-Token`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ringfence_axum::{CsrfHeader, CurrentSession, CurrentUser, RequestAuth};
use ringfence_sessions::SessionId;
use serde::Deserialize;
use serde_json::json;

use crate::body::ApiJson;
use crate::errors::ApiError;
use crate::state::AppState;
use crate::views::{SessionJson, UserJson};

/// `{email, password}`.
#[derive(Deserialize)]
pub struct Credentials {
    email: String,
    password: String,
}

/// `{current_password, new_password}`.
#[derive(Deserialize)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// `POST /api/v1/register` → `201 {user}`.
pub async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let user = state
        .ringfence
        .accounts()
        .register(&body.email, &body.password)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"user": UserJson::from(&user)})),
    )
        .into_response())
}

/// `POST /api/v1/login` → `200 {user, session, csrf_token}` and the session cookie.
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
    let csrf_token = auth.csrf_token()?;
    Ok(Json(json!({
        "user": UserJson::from(&user),
        "session": SessionJson::new(&session, true),
        "csrf_token": csrf_token,
    }))
    .into_response())
}

/// `POST /api/v1/logout` → `204`. Signed in, it needs the CSRF header like every write;
/// without a session there is nothing to end and it answers `204` all the same.
pub async fn logout(
    auth: RequestAuth,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    if auth.session()?.is_some() {
        let token = headers
            .get(ringfence_axum::CSRF_HEADER)
            .and_then(|v| v.to_str().ok());
        auth.verify_csrf(token).await?;
    }
    auth.sign_out().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/me` → `{user, session, node, csrf_token}`.
pub async fn me(
    State(state): State<AppState>,
    auth: RequestAuth,
    current: CurrentUser,
) -> Result<Response, ApiError> {
    Ok(Json(json!({
        "user": UserJson::from(&current.user),
        "session": SessionJson::new(&current.session, true),
        "node": &*state.node_name,
        "csrf_token": auth.csrf_token()?,
    }))
    .into_response())
}

/// `GET /api/v1/sessions` → `{sessions: [...]}`, the current one marked.
pub async fn sessions(
    State(state): State<AppState>,
    CurrentSession(current): CurrentSession,
) -> Result<Response, ApiError> {
    let list = state.ringfence.sessions().list(&current.user_id).await?;
    let sessions: Vec<SessionJson> = list
        .iter()
        .map(|s| SessionJson::new(s, s.id == current.id))
        .collect();
    Ok(Json(json!({ "sessions": sessions })).into_response())
}

/// `DELETE /api/v1/sessions/{id}` → `204`; `404` when the user has no such session.
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

/// `POST /api/v1/sessions/revoke-others` → `{revoked: N}`.
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
    Ok(Json(json!({ "revoked": revoked })).into_response())
}

/// `POST /api/v1/password` → `204`; every other session of the user is signed out.
pub async fn change_password(
    State(state): State<AppState>,
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
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/admin/stats` → `{users, active_sessions, signed_in_users}` (admins only).
pub async fn admin_stats(
    State(state): State<AppState>,
    current: CurrentUser,
) -> Result<Response, ApiError> {
    if !current.user.is_admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "administrators only",
        ));
    }
    let users = state.ringfence.accounts().count().await?;
    let counts = state.ringfence.sessions().counts().await?;
    Ok(Json(json!({
        "users": users,
        "active_sessions": counts.active_sessions,
        "signed_in_users": counts.signed_in_users,
    }))
    .into_response())
}

/// Anything else: `404` in the contract's shape.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}
