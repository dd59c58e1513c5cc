//! [`account_routes`]: ready JSON routes for signing up, in and out, for an app that wants them
//! without writing the handlers (`ringfence serve` has the full API of the contract; these are
//! the part every app needs, with the same statuses and error bodies).
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /register` | `{email, password}` | `201` `{user}`, signed in |
//! | `POST /login` | `{email, password}` | `200` `{user, csrf_token}`, or `{mfa_required: true, methods, csrf_token}` |
//! | `POST /login/mfa` | `{code}` or `{recovery_code}` (the pending sign-in cookie) | `200` `{user, csrf_token}` |
//! | `POST /logout` | `X-CSRF-Token` header when signed in | `204` |
//! | `GET /me` | | `200` `{user, csrf_token}`, `401` when not signed in |
//!
//! A wrong password is `401` `invalid_credentials`, a wrong code `401` `invalid_code`, too many
//! `429` with `Retry-After`, a taken address `409`, a weak password `422`, a store outage `503`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ringfence_accounts::{SecondFactorCode, User};
use serde::{Deserialize, Serialize};

use crate::api_error::ApiError;
use crate::auth::RequestAuth;
use crate::body::ApiJson;
use crate::extract::{CsrfHeader, CurrentUser};
use crate::pending::PendingSignIn;
use crate::sign_in::PasswordSignIn;

/// The routes of the table above, to merge into an app's router (under the
/// [`crate::RingfenceLayer`]).
pub fn account_routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/register", post(register))
        .route("/login", post(login))
        .route("/login/mfa", post(login_mfa))
        .route("/logout", post(logout))
        .route("/me", get(me))
}

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

#[derive(Deserialize)]
struct SecondStep {
    code: Option<String>,
    recovery_code: Option<String>,
}

/// The public part of an account.
#[derive(Serialize)]
struct UserBody {
    id: String,
    email: String,
    email_verified: bool,
}

impl From<&User> for UserBody {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.clone(),
            email: user.email.clone(),
            email_verified: user.email_verified,
        }
    }
}

#[derive(Serialize)]
struct SignedIn {
    user: UserBody,
    csrf_token: String,
}

#[derive(Serialize)]
struct SecondFactorRequired {
    mfa_required: bool,
    methods: Vec<&'static str>,
    csrf_token: String,
}

fn signed_in(auth: &RequestAuth, user: &User) -> Result<Json<SignedIn>, ApiError> {
    Ok(Json(SignedIn {
        user: user.into(),
        csrf_token: auth.csrf_token()?,
    }))
}

async fn register(
    auth: RequestAuth,
    ApiJson(credentials): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let user = auth
        .ringfence()
        .accounts()
        .register_from(
            &credentials.email,
            &credentials.password,
            auth.client().ip.as_deref(),
        )
        .await?;
    auth.sign_in(&user.id).await?;
    Ok((StatusCode::CREATED, signed_in(&auth, &user)?).into_response())
}

async fn login(
    auth: RequestAuth,
    ApiJson(credentials): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    match auth
        .sign_in_with_password(&credentials.email, &credentials.password)
        .await?
    {
        PasswordSignIn::SignedIn { user, .. } => Ok(signed_in(&auth, &user)?.into_response()),
        PasswordSignIn::SecondFactorRequired { methods, .. } => Ok(Json(SecondFactorRequired {
            mfa_required: true,
            methods,
            csrf_token: auth.csrf_token()?,
        })
        .into_response()),
    }
}

async fn login_mfa(
    pending: PendingSignIn,
    auth: RequestAuth,
    _csrf: CsrfHeader,
    ApiJson(step): ApiJson<SecondStep>,
) -> Result<Response, ApiError> {
    let code = match (&step.code, &step.recovery_code) {
        (Some(code), None) => SecondFactorCode::Totp(code),
        (None, Some(code)) => SecondFactorCode::Recovery(code),
        _ => return Err(ApiError::invalid_input("give either code or recovery_code")),
    };
    let (user, _) = auth.finish_sign_in(&pending, code).await?;
    Ok(signed_in(&auth, &user)?.into_response())
}

async fn logout(auth: RequestAuth, headers: axum::http::HeaderMap) -> Result<StatusCode, ApiError> {
    if auth.session()?.is_some() {
        let token = headers
            .get(crate::extract::CSRF_HEADER)
            .and_then(|v| v.to_str().ok());
        auth.verify_csrf(token).await?;
    }
    auth.sign_out().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(auth: RequestAuth, current: CurrentUser) -> Result<Json<SignedIn>, ApiError> {
    signed_in(&auth, &current.user)
}
