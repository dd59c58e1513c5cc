//! Extractors.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use ringfence_accounts::User;
use ringfence_sessions::Session;

use crate::auth::RequestAuth;
use crate::error::AuthError;

/// The header cookie-authenticated API writes carry their antiforgery token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

impl<S: Send + Sync> FromRequestParts<S> for RequestAuth {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RequestAuth>()
            .cloned()
            .ok_or(AuthError::MissingLayer)
    }
}

/// The signed-in session; rejects with `401` (or `503` when the store is down).
#[derive(Debug, Clone)]
pub struct CurrentSession(pub Session);

impl<S: Send + Sync> FromRequestParts<S> for CurrentSession {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = RequestAuth::from_request_parts(parts, state).await?;
        auth.require_session().map(CurrentSession)
    }
}

/// The signed-in user and session; rejects with `401` when not signed in or the user is gone.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    /// The user.
    pub user: User,
    /// The session.
    pub session: Session,
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = RequestAuth::from_request_parts(parts, state).await?;
        let session = auth.require_session()?;
        let user = auth
            .ringfence()
            .accounts()
            .session_user(&session)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?
            .ok_or(AuthError::Unauthenticated)?;
        Ok(CurrentUser { user, session })
    }
}

/// The signed-in user, who is an administrator; rejects with `401` when not signed in (or the
/// user is gone) and `403` ([`AuthError::Forbidden`]) when the user is not an administrator,
/// or ([`AuthError::MfaSetupRequired`]) when the deployment requires administrators to have a
/// second factor ([`crate::StepUpSettings::require_mfa_for_admins`]) and this one has none.
///
/// It looks the user up exactly as [`CurrentUser`] does. Put it FIRST among a handler's
/// arguments, before the body extractor: axum runs extractors in argument order, and a caller
/// who may not use the route must get `403` whatever body they send, not `415` or `422` that
/// tell them what the route would have accepted (and without the body being read at all).
///
/// ```
/// # use axum::Json;
/// # use ringfence_axum::RequireAdmin;
/// # #[derive(serde::Deserialize)] struct Disable { user_id: String }
/// async fn disable(RequireAdmin { user, .. }: RequireAdmin, Json(body): Json<Disable>) -> String {
///     format!("{} disables {}", user.email, body.user_id)
/// }
/// # let _: axum::Router = axum::Router::new().route("/disable", axum::routing::post(disable));
/// ```
#[derive(Debug, Clone)]
pub struct RequireAdmin {
    /// The administrator.
    pub user: User,
    /// The administrator's session.
    pub session: Session,
}

impl<S: Send + Sync> FromRequestParts<S> for RequireAdmin {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = RequestAuth::from_request_parts(parts, state).await?;
        let CurrentUser { user, session } = CurrentUser::from_request_parts(parts, state).await?;
        if !user.is_admin {
            return Err(AuthError::Forbidden);
        }
        if auth.ringfence().step_up().require_mfa_for_admins {
            let mfa = auth
                .ringfence()
                .accounts()
                .mfa_status(&user)
                .await
                .map_err(|e| AuthError::Unavailable(e.to_string()))?;
            if !mfa.has_second_factor() {
                return Err(AuthError::MfaSetupRequired);
            }
        }
        Ok(RequireAdmin { user, session })
    }
}

/// Proof that a cookie-authenticated API write carries a valid `X-CSRF-Token`; rejects `403`.
#[derive(Debug, Clone, Copy)]
pub struct CsrfHeader;

impl<S: Send + Sync> FromRequestParts<S> for CsrfHeader {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = RequestAuth::from_request_parts(parts, state).await?;
        let token = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        auth.verify_csrf(token.as_deref())
            .await
            .map(|()| CsrfHeader)
    }
}
