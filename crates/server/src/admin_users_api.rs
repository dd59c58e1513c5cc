//! Administrators' control of accounts over the JSON API (issue 14): find or page through
//! users, disable, enable, delete, set a password, send a password-reset link.
//!
//! Every handler takes [`RequireAdmin`] first, so a caller who is not an administrator gets
//! `403` before the query, path or CSRF header is looked at.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ringfence_accounts::{AccountError, MfaStatus, User};
use ringfence_axum::{CsrfHeader, RequestAuth, RequireAdmin};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::ErrorResponse;
use crate::api_mfa::MfaJson;
use crate::body::ApiJson;
use crate::errors::ApiError;
use crate::state::AppState;
use crate::views::timestamp;

/// Most users on one page.
pub const MAX_PAGE: u32 = 500;
/// Users on a page when `limit` is not given.
pub const DEFAULT_PAGE: u32 = 50;

/// The query of `GET /api/v1/admin/users`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// The user with this address (a list of one, or empty); `after` and `limit` are then
    /// ignored.
    email: Option<String>,
    /// Page: the users whose id sorts after this one (the last id of the previous page).
    after: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// A user as administrators see it.
#[derive(Serialize, ToSchema)]
pub struct AdminUserJson {
    /// The user's id.
    id: String,
    /// The normalized e-mail address.
    email: String,
    /// The owner proved they read mail at this address.
    email_verified: bool,
    /// Disabled by an administrator: cannot sign in, has no sessions.
    disabled: bool,
    /// May use the admin page and API.
    admin: bool,
    /// When the account was created (RFC 3339, UTC).
    created_at: String,
    /// Second factors.
    mfa: MfaJson,
}

impl AdminUserJson {
    fn new(user: &User, mfa: MfaStatus) -> Self {
        Self {
            id: user.id.clone(),
            email: user.email.clone(),
            email_verified: user.email_verified,
            disabled: user.disabled,
            admin: user.is_admin,
            created_at: timestamp(user.created_at),
            mfa: MfaJson::from(mfa),
        }
    }
}

/// `200` of `GET /api/v1/admin/users`.
#[derive(Serialize, ToSchema)]
pub struct UsersResponse {
    /// The users, ordered by id.
    users: Vec<AdminUserJson>,
}

/// `GET /api/v1/admin/users`: one user by address (`?email=`), or a page by id
/// (`?after=ID&limit=N`).
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", params(UsersQuery),
    security(("session_cookie" = [])),
    responses((status = 200, body = UsersResponse),
        (status = 400, body = ErrorResponse, description = "unreadable query, or limit outside 1 to 500"),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse, description = "not an administrator"),
        (status = 503, body = ErrorResponse)))]
pub async fn list_users(
    _admin: RequireAdmin,
    State(state): State<AppState>,
    query: Result<Query<UsersQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| malformed(&e.body_text()))?;
    let accounts = state.ringfence.accounts();
    let users = match query.email.as_deref() {
        // A malformed address has no account: an empty list, like any other address without one.
        Some(email) => match accounts.user_by_email(email).await {
            Ok(user) => user.into_iter().collect(),
            Err(AccountError::InvalidEmail(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        },
        None => {
            let limit = query.limit.unwrap_or(DEFAULT_PAGE);
            if !(1..=MAX_PAGE).contains(&limit) {
                return Err(malformed("limit must be between 1 and 500"));
            }
            accounts.list_after(query.after.as_deref(), limit).await?
        }
    };
    let mut listed = Vec::with_capacity(users.len());
    for user in &users {
        listed.push(AdminUserJson::new(user, accounts.mfa_status(user).await?));
    }
    Ok(Json(UsersResponse { users: listed }).into_response())
}

fn malformed(message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "malformed", message)
}

/// The `{id}` of the path; one that cannot even be read names no user.
fn user_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    id.map(|Path(id)| id).map_err(|_| no_such_user())
}

fn no_such_user() -> ApiError {
    ApiError::not_found("no such user")
}

/// An administrator's action on the account the path names: `404` when there is none, an
/// audit line when done (`done` says what; `ended`, the sessions it ended), `204`.
async fn act(
    admin: &User,
    id: Result<Path<String>, PathRejection>,
    done: &str,
    action: impl AsyncFnOnce(String) -> Result<Option<u64>, AccountError>,
) -> Result<Response, ApiError> {
    let id = user_id(id)?;
    let ended = action(id.clone()).await.map_err(admin_error)?;
    tracing::warn!(user = %id, admin = %admin.id, ended, "administrator {done}");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `UserNotFound` is `404` here: the administrator named an account, nobody's session is gone.
fn admin_error(error: AccountError) -> ApiError {
    match error {
        AccountError::UserNotFound => no_such_user(),
        other => other.into(),
    }
}

/// `POST /api/v1/admin/users/{id}/disable`: every session of the user ends at once; sign-in
/// with the right password answers `403` `account_disabled`.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/disable", tag = "admin",
    params(("id" = String, Path, description = "user id")),
    security(("session_cookie" = [], "csrf_header" = [])),
    responses((status = 204, description = "disabled; every session of the user has ended"),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse, description = "not an administrator, or the CSRF header is missing or wrong"),
        (status = 404, body = ErrorResponse, description = "no such user"),
        (status = 503, body = ErrorResponse)))]
pub async fn disable_user(
    RequireAdmin { user: admin, .. }: RequireAdmin,
    _csrf: CsrfHeader,
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    act(&admin, id, "disabled an account", async |id| {
        state.ringfence.accounts().disable(&id).await.map(Some)
    })
    .await
}

/// `POST /api/v1/admin/users/{id}/enable`: the account may sign in again.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/enable", tag = "admin",
    params(("id" = String, Path, description = "user id")),
    security(("session_cookie" = [], "csrf_header" = [])),
    responses((status = 204, description = "enabled"),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse, description = "not an administrator, or the CSRF header is missing or wrong"),
        (status = 404, body = ErrorResponse, description = "no such user"),
        (status = 503, body = ErrorResponse)))]
pub async fn enable_user(
    RequireAdmin { user: admin, .. }: RequireAdmin,
    _csrf: CsrfHeader,
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    act(&admin, id, "enabled an account", async |id| {
        state.ringfence.accounts().enable(&id).await.map(|()| None)
    })
    .await
}

/// The body of `POST /api/v1/admin/users/{id}/password`.
#[derive(Deserialize, ToSchema)]
pub struct SetPassword {
    /// The new password; the password policy applies as for the user's own change.
    password: String,
}

/// `POST /api/v1/admin/users/{id}/password` (`users set-password` over the API): the new
/// password takes effect, every session of the user ends (the administrator's own current
/// session stays when they set their own), every mail link of the user is void, and the user
/// is told by mail.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/password", tag = "admin",
    params(("id" = String, Path, description = "user id")),
    request_body = SetPassword,
    security(("session_cookie" = [], "csrf_header" = [])),
    responses((status = 204, description = "set; every session of the user has ended"),
        (status = 400, body = ErrorResponse, description = "malformed JSON"),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse, description = "not an administrator, or the CSRF header is missing or wrong"),
        (status = 404, body = ErrorResponse, description = "no such user"),
        (status = 413, body = ErrorResponse, description = "body over 64 KiB"),
        (status = 415, body = ErrorResponse, description = "not application/json"),
        (status = 422, body = ErrorResponse, description = "JSON of the wrong shape, or weak_password with the reason"),
        (status = 503, body = ErrorResponse)))]
pub async fn set_password(
    RequireAdmin { user: admin, .. }: RequireAdmin,
    _csrf: CsrfHeader,
    State(state): State<AppState>,
    auth: RequestAuth,
    id: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<SetPassword>,
) -> Result<Response, ApiError> {
    let keep = auth.session()?.map(|session| session.id);
    act(&admin, id, "set a password", async |id| {
        let accounts = state.ringfence.accounts();
        accounts
            .set_password(&id, &body.password, keep.as_ref())
            .await
            .map(Some)
    })
    .await
}

/// `POST /api/v1/admin/users/{id}/password-reset`: mails the user a password-reset link.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/password-reset", tag = "admin",
    params(("id" = String, Path, description = "user id")),
    security(("session_cookie" = [], "csrf_header" = [])),
    responses((status = 204, description = "the reset link is on its way"),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse, description = "not an administrator, the CSRF header is missing or wrong, or account_disabled (its links would not work)"),
        (status = 404, body = ErrorResponse, description = "no such user"),
        (status = 503, body = ErrorResponse)))]
pub async fn send_password_reset(
    RequireAdmin { user: admin, .. }: RequireAdmin,
    _csrf: CsrfHeader,
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    act(&admin, id, "sent a password-reset link", async |id| {
        let accounts = state.ringfence.accounts();
        accounts.send_password_reset(&id).await.map(|()| None)
    })
    .await
}

/// `DELETE /api/v1/admin/users/{id}`: the account and its sessions are gone.
#[utoipa::path(delete, path = "/api/v1/admin/users/{id}", tag = "admin",
    params(("id" = String, Path, description = "user id")),
    security(("session_cookie" = [], "csrf_header" = [])),
    responses((status = 204, description = "deleted; every session of the user has ended"),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse, description = "not an administrator, or the CSRF header is missing or wrong"),
        (status = 404, body = ErrorResponse, description = "no such user"),
        (status = 503, body = ErrorResponse)))]
pub async fn delete_user(
    RequireAdmin { user: admin, .. }: RequireAdmin,
    _csrf: CsrfHeader,
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    act(&admin, id, "deleted an account", async |id| {
        state.ringfence.accounts().delete(&id).await.map(Some)
    })
    .await
}
