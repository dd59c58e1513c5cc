//! The JSON API of second factors and recent authentication (issue 15): `/api/v1/reauth`,
//! `/api/v1/mfa/*` and the second step of signing in, `/api/v1/login/mfa`.
//!
//! Sensitive operations take [`RecentAuth`] first (`403` `reauth_required` past the
//! re-authentication window); every code and password check goes through the sign-in
//! throttle of the user ([`ringfence_accounts::Accounts::check_user_secret`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ringfence_accounts::{AccountError, MfaStatus, SecondFactorCode};
use ringfence_axum::{CsrfHeader, CurrentUser, PendingSignIn, RecentAuth, RequestAuth};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{ErrorResponse, LoginResponse};
use crate::body::ApiJson;
use crate::errors::ApiError;
use crate::state::AppState;
use crate::views::{SessionJson, UserJson};

/// The issuer authenticator apps show next to the account.
pub const TOTP_ISSUER: &str = "ringfence";

/// `POST /api/v1/reauth`: the password or a second-factor code (exactly one).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReauthRequest {
    /// The current password.
    #[serde(default)]
    password: Option<String>,
    /// A TOTP code (six digits) or a recovery code.
    #[serde(default)]
    code: Option<String>,
}

/// A TOTP code.
#[derive(Deserialize, ToSchema)]
pub struct CodeRequest {
    /// Six digits from the authenticator app.
    code: String,
}

/// `POST /api/v1/login/mfa`: a TOTP code or a recovery code (exactly one).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaLoginRequest {
    /// Six digits from the authenticator app.
    #[serde(default)]
    code: Option<String>,
    /// One of the recovery codes.
    #[serde(default)]
    recovery_code: Option<String>,
}

/// `200` of `POST /api/v1/mfa/totp/setup`.
#[derive(Serialize, ToSchema)]
pub struct TotpSetupResponse {
    /// The secret, base32 (RFC 6238: SHA-1, 6 digits, 30 s).
    secret: String,
    /// `otpauth://totp/…` for authenticator apps (the QR code of the security page).
    otpauth_uri: String,
}

/// New recovery codes, shown once.
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodesResponse {
    /// Ten codes; each works once.
    recovery_codes: Vec<String>,
}

/// `200` of `POST /api/v1/login` for a user with a second factor: not signed in yet.
#[derive(Serialize, ToSchema)]
pub struct MfaRequiredResponse {
    /// Always `true`.
    mfa_required: bool,
    /// The second steps the user has: `totp` and `recovery_code` (`POST /api/v1/login/mfa`),
    /// `passkey` (`POST /api/v1/passkeys/login/start` and `/finish` with the pending cookie).
    methods: Vec<String>,
    /// Send as `X-CSRF-Token` with `POST /api/v1/login/mfa`.
    csrf_token: String,
}

/// `user.mfa` of `GET /api/v1/me`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaJson {
    /// TOTP is on.
    totp: bool,
    /// Passkeys registered.
    passkeys: u32,
    /// Recovery codes not used yet.
    recovery_codes_left: u32,
}

impl From<MfaStatus> for MfaJson {
    fn from(status: MfaStatus) -> Self {
        Self {
            totp: status.totp,
            passkeys: status.passkeys,
            recovery_codes_left: status.recovery_codes_left,
        }
    }
}

impl MfaRequiredResponse {
    /// The answer of a right password for a user with a second factor.
    pub fn new(methods: Vec<&'static str>, csrf_token: String) -> Self {
        Self {
            mfa_required: true,
            methods: methods.into_iter().map(str::to_owned).collect(),
            csrf_token,
        }
    }
}

fn invalid_input(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message)
}

/// `POST /api/v1/reauth`: this session counts as recently authenticated for the window.
#[utoipa::path(post, path = "/api/v1/reauth", request_body = ReauthRequest, tag = "mfa",
    security(("session_cookie" = [], "csrf_header" = [])),
    responses(
        (status = 204, description = "this session counts as recently authenticated"),
        (status = 400, body = ErrorResponse, description = "malformed JSON"),
        (status = 401, body = ErrorResponse, description = "not signed in, or a wrong password (invalid_credentials) or code (invalid_code)"),
        (status = 403, body = ErrorResponse, description = "CSRF header missing or wrong"),
        (status = 413, body = ErrorResponse, description = "body over 64 KiB"),
        (status = 415, body = ErrorResponse, description = "not application/json"),
        (status = 422, body = ErrorResponse, description = "neither or both of password and code"),
        (status = 429, body = ErrorResponse, description = "too many failed attempts; see Retry-After"),
        (status = 503, body = ErrorResponse)))]
pub async fn reauth(
    State(state): State<AppState>,
    auth: RequestAuth,
    CurrentUser { user, session }: CurrentUser,
    _csrf: CsrfHeader,
    ApiJson(body): ApiJson<ReauthRequest>,
) -> Result<Response, ApiError> {
    let accounts = state.ringfence.accounts();
    let ip = auth.client().ip.clone();
    match (body.password, body.code) {
        (Some(password), None) => {
            let record = accounts
                .users()
                .by_id(&user.id)
                .await
                .map_err(AccountError::from)?
                .ok_or(AccountError::UserNotFound)?;
            if !accounts
                .check_current_password(&record, &password, ip.as_deref())
                .await?
            {
                return Err(AccountError::InvalidCredentials.into());
            }
        }
        (None, Some(code)) => {
            accounts
                .verify_second_factor(&user, SecondFactorCode::either(&code), ip.as_deref())
                .await?
        }
        _ => return Err(invalid_input("give either password or code")),
    }
    auth.mark_recently_authenticated(&session)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/mfa/totp/setup`: a new TOTP secret, pending until confirmed.
#[utoipa::path(post, path = "/api/v1/mfa/totp/setup", tag = "mfa",
    security(("session_cookie" = [], "csrf_header" = [])),
    responses(
        (status = 200, body = TotpSetupResponse),
        (status = 401, body = ErrorResponse, description = "not signed in"),
        (status = 403, body = ErrorResponse, description = "CSRF header missing or wrong, or reauth_required"),
        (status = 503, body = ErrorResponse)))]
pub async fn totp_setup(
    RecentAuth { user, .. }: RecentAuth,
    State(state): State<AppState>,
    _csrf: CsrfHeader,
) -> Result<Response, ApiError> {
    let setup = state
        .ringfence
        .accounts()
        .begin_totp_setup(&user, TOTP_ISSUER)
        .await?;
    Ok(Json(TotpSetupResponse {
        secret: setup.secret,
        otpauth_uri: setup.otpauth_uri,
    })
    .into_response())
}

/// `POST /api/v1/mfa/totp/confirm`: a code of the pending secret turns TOTP on.
#[utoipa::path(post, path = "/api/v1/mfa/totp/confirm", request_body = CodeRequest, tag = "mfa",
    security(("session_cookie" = [], "csrf_header" = [])),
    responses(
        (status = 200, body = RecoveryCodesResponse, description = "TOTP is on; ten recovery codes, shown once"),
        (status = 400, body = ErrorResponse, description = "malformed JSON"),
        (status = 401, body = ErrorResponse, description = "not signed in, or a wrong code (invalid_code)"),
        (status = 403, body = ErrorResponse, description = "CSRF header missing or wrong"),
        (status = 409, body = ErrorResponse, description = "no TOTP setup to confirm"),
        (status = 413, body = ErrorResponse, description = "body over 64 KiB"),
        (status = 415, body = ErrorResponse, description = "not application/json"),
        (status = 422, body = ErrorResponse, description = "JSON of the wrong shape"),
        (status = 429, body = ErrorResponse, description = "too many failed attempts; see Retry-After"),
        (status = 503, body = ErrorResponse)))]
pub async fn totp_confirm(
    State(state): State<AppState>,
    auth: RequestAuth,
    CurrentUser { user, .. }: CurrentUser,
    _csrf: CsrfHeader,
    ApiJson(body): ApiJson<CodeRequest>,
) -> Result<Response, ApiError> {
    let recovery_codes = state
        .ringfence
        .accounts()
        .confirm_totp(&user, &body.code, auth.client().ip.as_deref())
        .await?;
    Ok(Json(RecoveryCodesResponse { recovery_codes }).into_response())
}

/// `DELETE /api/v1/mfa/totp`: turns TOTP off; the recovery codes go with it.
#[utoipa::path(delete, path = "/api/v1/mfa/totp", tag = "mfa",
    security(("session_cookie" = [], "csrf_header" = [])),
    responses(
        (status = 204, description = "TOTP is off (or was)"),
        (status = 401, body = ErrorResponse, description = "not signed in"),
        (status = 403, body = ErrorResponse, description = "CSRF header missing or wrong, or reauth_required"),
        (status = 503, body = ErrorResponse)))]
pub async fn totp_delete(
    RecentAuth { user, .. }: RecentAuth,
    State(state): State<AppState>,
    _csrf: CsrfHeader,
) -> Result<Response, ApiError> {
    state.ringfence.accounts().disable_totp(&user).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/mfa/recovery-codes`: a new set; the old codes stop working.
#[utoipa::path(post, path = "/api/v1/mfa/recovery-codes", tag = "mfa",
    security(("session_cookie" = [], "csrf_header" = [])),
    responses(
        (status = 200, body = RecoveryCodesResponse),
        (status = 401, body = ErrorResponse, description = "not signed in"),
        (status = 403, body = ErrorResponse, description = "CSRF header missing or wrong, or reauth_required"),
        (status = 409, body = ErrorResponse, description = "TOTP is not on (mfa_not_enabled)"),
        (status = 503, body = ErrorResponse)))]
pub async fn recovery_codes(
    RecentAuth { user, .. }: RecentAuth,
    State(state): State<AppState>,
    _csrf: CsrfHeader,
) -> Result<Response, ApiError> {
    let recovery_codes = state.ringfence.accounts().new_recovery_codes(&user).await?;
    Ok(Json(RecoveryCodesResponse { recovery_codes }).into_response())
}

/// `POST /api/v1/login/mfa`: the second step of signing in, with the pending sign-in cookie.
#[utoipa::path(post, path = "/api/v1/login/mfa", request_body = MfaLoginRequest, tag = "mfa",
    security(("pending_sign_in_cookie" = [], "csrf_header" = [])),
    responses(
        (status = 200, body = LoginResponse, description = "signed in; a new session cookie is set"),
        (status = 400, body = ErrorResponse, description = "malformed JSON"),
        (status = 401, body = ErrorResponse, description = "no pending sign-in (or it expired), or a wrong or used code (invalid_code)"),
        (status = 403, body = ErrorResponse, description = "CSRF header missing or wrong, or the account was disabled"),
        (status = 413, body = ErrorResponse, description = "body over 64 KiB"),
        (status = 415, body = ErrorResponse, description = "not application/json"),
        (status = 422, body = ErrorResponse, description = "neither or both of code and recovery_code"),
        (status = 429, body = ErrorResponse, description = "too many failed attempts; see Retry-After"),
        (status = 503, body = ErrorResponse)))]
pub async fn login_mfa(
    pending: PendingSignIn,
    auth: RequestAuth,
    _csrf: CsrfHeader,
    ApiJson(body): ApiJson<MfaLoginRequest>,
) -> Result<Response, ApiError> {
    let code = match (&body.code, &body.recovery_code) {
        (Some(code), None) => SecondFactorCode::Totp(code),
        (None, Some(code)) => SecondFactorCode::Recovery(code),
        _ => return Err(invalid_input("give either code or recovery_code")),
    };
    let (user, session) = auth.finish_sign_in(&pending, code).await?;
    Ok(Json(LoginResponse::new(
        UserJson::from(&user),
        SessionJson::new(&session, true),
        auth.csrf_token()?,
    ))
    .into_response())
}
