//! The JSON API of the account lifecycle over mail (issue 14): forgotten passwords, address
//! verification, address changes. The flows themselves are the accounts service's
//! ([`ringfence_accounts::lifecycle`]); these handlers only read the request and shape the answer.
//!
//! The token routes need no session: the token in the mail link is the authority, and it works
//! once, on any node. Mail tokens that are unknown, used, expired, for another purpose or
//! malformed all get the same `400` `invalid_token`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ringfence_axum::{CsrfHeader, CurrentSession, RecentAuth, RequestAuth};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::ErrorResponse;
use crate::body::ApiJson;
use crate::errors::ApiError;
use crate::state::AppState;

/// `POST /api/v1/password/forgot`.
#[derive(Deserialize, ToSchema)]
pub struct ForgotPassword {
    /// The address to send the reset link to, if it has an account.
    email: String,
}

/// `POST /api/v1/password/reset`.
#[derive(Deserialize, ToSchema)]
pub struct ResetPassword {
    /// The token of the reset link (`?token=…`).
    token: String,
    /// The new password (same rules as at registration).
    new_password: String,
}

/// The token of a mail link: `POST /api/v1/email/verify`, `POST /api/v1/email/confirm`.
#[derive(Deserialize, ToSchema)]
pub struct MailLinkToken {
    /// The token of the link (`?token=…`).
    token: String,
}

/// `POST /api/v1/email/change`.
#[derive(Deserialize, ToSchema)]
pub struct EmailChange {
    /// The address to move the account to; a confirmation link goes there.
    new_email: String,
}

/// `202`: the request is taken; a mail goes out if there is one to send.
#[derive(Serialize, ToSchema)]
pub struct Accepted {
    /// For people; the same text whatever happened, so it tells nothing about accounts.
    message: &'static str,
}

/// The one answer of `POST /api/v1/password/forgot`, with or without an account.
const FORGOT_ANSWER: &str =
    "If an account has this address, a link to reset its password is on its way.";

fn accepted(message: &'static str) -> Response {
    (StatusCode::ACCEPTED, Json(Accepted { message })).into_response()
}

/// `POST /api/v1/password/forgot`: mails a reset link if the address has an account. The
/// answer, and the time it takes, are the same either way: the lookup and the mail happen after
/// it.
#[utoipa::path(post, path = "/api/v1/password/forgot", request_body = ForgotPassword, tag = "accounts",
    security(()),
    responses(
        (status = 202, body = Accepted, description = "the same answer whether or not the address has an account"),
        (status = 400, body = ErrorResponse, description = "malformed JSON"),
        (status = 413, body = ErrorResponse, description = "body over 64 KiB"),
        (status = 415, body = ErrorResponse, description = "not application/json"),
        (status = 422, body = ErrorResponse, description = "JSON of the wrong shape or not an e-mail address"),
        (status = 429, body = ErrorResponse, description = "too many requests for this address or from this client; see Retry-After"),
        (status = 503, body = ErrorResponse)))]
pub async fn forgot_password(
    State(state): State<AppState>,
    auth: RequestAuth,
    ApiJson(body): ApiJson<ForgotPassword>,
) -> Result<Response, ApiError> {
    state
        .ringfence
        .accounts()
        .request_password_reset(&body.email, auth.client().ip.as_deref())
        .await?;
    Ok(accepted(FORGOT_ANSWER))
}

/// `POST /api/v1/password/reset`: sets the new password with the token of a reset link. Every
/// session of the user ends; it does not sign in.
#[utoipa::path(post, path = "/api/v1/password/reset", request_body = ResetPassword, tag = "accounts",
    security(()),
    responses(
        (status = 204, description = "the password is set; every session of the user has ended"),
        (status = 400, body = ErrorResponse, description = "malformed JSON, or invalid_token: unknown, used, expired or for another purpose"),
        (status = 413, body = ErrorResponse, description = "body over 64 KiB"),
        (status = 415, body = ErrorResponse, description = "not application/json"),
        (status = 422, body = ErrorResponse, description = "JSON of the wrong shape or weak new password (the token stays usable)"),
        (status = 503, body = ErrorResponse)))]
pub async fn reset_password(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ResetPassword>,
) -> Result<Response, ApiError> {
    state
        .ringfence
        .accounts()
        .reset_password(&body.token, &body.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/email/verify`: confirms the address with the token of a verification link.
#[utoipa::path(post, path = "/api/v1/email/verify", request_body = MailLinkToken, tag = "accounts",
    security(()),
    responses(
        (status = 204, description = "the address is verified"),
        (status = 400, body = ErrorResponse, description = "malformed JSON, or invalid_token: unknown, used, expired or for another purpose"),
        (status = 413, body = ErrorResponse, description = "body over 64 KiB"),
        (status = 415, body = ErrorResponse, description = "not application/json"),
        (status = 422, body = ErrorResponse, description = "JSON of the wrong shape"),
        (status = 503, body = ErrorResponse)))]
pub async fn verify_email(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<MailLinkToken>,
) -> Result<Response, ApiError> {
    state.ringfence.accounts().verify_email(&body.token).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/email/verification`: sends the signed-in user the verification mail again
/// (nothing when the address is verified already).
#[utoipa::path(post, path = "/api/v1/email/verification", tag = "accounts",
    security(("session_cookie" = [], "csrf_header" = [])),
    responses(
        (status = 202, body = Accepted, description = "the verification mail is on its way (none when already verified)"),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse, description = "the CSRF header is missing or wrong"),
        (status = 429, body = ErrorResponse, description = "too many mails asked for; see Retry-After"),
        (status = 503, body = ErrorResponse)))]
pub async fn resend_verification(
    State(state): State<AppState>,
    CurrentSession(current): CurrentSession,
    _csrf: CsrfHeader,
) -> Result<Response, ApiError> {
    state
        .ringfence
        .accounts()
        .resend_verification(&current.user_id)
        .await
        .map_err(signed_in_user_gone)?;
    Ok(accepted(
        "If the address is not verified yet, a verification link is on its way.",
    ))
}

/// `POST /api/v1/email/change`: sends a confirmation link to the new address (recent
/// authentication needed); nothing changes until it is followed.
#[utoipa::path(post, path = "/api/v1/email/change", request_body = EmailChange, tag = "accounts",
    security(("session_cookie" = [], "csrf_header" = [])),
    responses(
        (status = 202, body = Accepted, description = "a confirmation link is on its way to the new address"),
        (status = 400, body = ErrorResponse, description = "malformed JSON"),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse, description = "the CSRF header is missing or wrong, or reauth_required: the session did not authenticate recently"),
        (status = 409, body = ErrorResponse, description = "another account has this address"),
        (status = 413, body = ErrorResponse, description = "body over 64 KiB"),
        (status = 415, body = ErrorResponse, description = "not application/json"),
        (status = 422, body = ErrorResponse, description = "JSON of the wrong shape, not an e-mail address, or the current one"),
        (status = 429, body = ErrorResponse, description = "too many changes asked for; see Retry-After"),
        (status = 503, body = ErrorResponse)))]
pub async fn request_email_change(
    RecentAuth { user, .. }: RecentAuth,
    State(state): State<AppState>,
    _csrf: CsrfHeader,
    ApiJson(body): ApiJson<EmailChange>,
) -> Result<Response, ApiError> {
    state
        .ringfence
        .accounts()
        .request_email_change(&user.id, &body.new_email)
        .await
        .map_err(signed_in_user_gone)?;
    Ok(accepted(
        "A link to confirm the new address is on its way to it.",
    ))
}

/// `POST /api/v1/email/confirm`: completes an address change with the token of its link; a
/// notice goes to the old address.
#[utoipa::path(post, path = "/api/v1/email/confirm", request_body = MailLinkToken, tag = "accounts",
    security(()),
    responses(
        (status = 204, description = "the address is changed"),
        (status = 400, body = ErrorResponse, description = "malformed JSON, or invalid_token: unknown, used, expired or for another purpose"),
        (status = 409, body = ErrorResponse, description = "another account took the new address meanwhile (the token is spent)"),
        (status = 413, body = ErrorResponse, description = "body over 64 KiB"),
        (status = 415, body = ErrorResponse, description = "not application/json"),
        (status = 422, body = ErrorResponse, description = "JSON of the wrong shape"),
        (status = 503, body = ErrorResponse)))]
pub async fn confirm_email_change(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<MailLinkToken>,
) -> Result<Response, ApiError> {
    state
        .ringfence
        .accounts()
        .confirm_email_change(&body.token)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The signed-in user's account vanished between the session check and the action (deleted
/// meanwhile): as for any session whose user is gone, `401`.
fn signed_in_user_gone(error: ringfence_accounts::AccountError) -> ApiError {
    match error {
        ringfence_accounts::AccountError::UserNotFound => {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "not signed in")
        }
        other => other.into(),
    }
}
