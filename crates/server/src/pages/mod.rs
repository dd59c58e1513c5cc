//! Pages for browsers, one file per area: [`auth`] (register, sign in, sign out), [`account`]
//! (sessions, `/account/security`), [`recovery`] (forgotten passwords and the pages mail links
//! open), [`admin`].
//!
//! Forms post `application/x-www-form-urlencoded`. Every form that changes state is read with
//! [`CsrfForm`], which checks `_csrf` before the handler sees the form (a missing or wrong
//! token is the `400` "Form expired" page); admin handlers take [`PageAdmin`] before the form,
//! so a caller who may not use the page gets `403` whatever they post. Forms with errors are
//! shown again with a message and the status the API would give (`401` bad credentials, `403`
//! account disabled or address not verified, `409` e-mail taken, `422` invalid, `429` with
//! `Retry-After` when throttled).

mod account;
mod admin;
mod auth;
mod recovery;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use ringfence_accounts::{AccountError, User};
use ringfence_axum::{AuthError, RequestAuth, RequireAdmin};
use ringfence_sessions::Session;

use crate::errors::{ApiError, PageError};
use crate::state::AppState;

pub use crate::body::{CsrfForm, CsrfOnly};
pub(crate) use account::SecurityPage;
pub use account::{
    change_email, change_password, resend_verification, revoke, revoke_others, security, sessions,
};
pub use admin::{
    admin, admin_delete_user, admin_disable_user, admin_enable_user, admin_revoke_session,
    admin_revoke_user, admin_send_password_reset, admin_set_password,
};
pub use auth::{login, login_form, logout, register, register_form};
pub use recovery::{
    confirm_email, confirm_email_form, forgot_password, forgot_password_form, reset_password,
    reset_password_form, verify_email, verify_email_form,
};

/// What the shared page header shows.
pub struct Layout {
    pub node: String,
    pub email: Option<String>,
    pub is_admin: bool,
    pub csrf: String,
}

/// The signed-in user behind a page request, if any.
pub(crate) struct PageContext {
    pub(crate) layout: Layout,
    pub(crate) signed_in: Option<(User, Session)>,
}

pub(crate) async fn context(
    state: &AppState,
    auth: &RequestAuth,
) -> Result<PageContext, PageError> {
    let signed_in = match auth.session()? {
        Some(session) => state
            .ringfence
            .accounts()
            .session_user(&session)
            .await?
            .map(|user| (user, session)),
        None => None,
    };
    let layout = Layout::new(state, auth, signed_in.as_ref().map(|(u, _)| u))?;
    Ok(PageContext { layout, signed_in })
}

impl Layout {
    /// The header for `user` (or a signed-out visitor).
    fn new(state: &AppState, auth: &RequestAuth, user: Option<&User>) -> Result<Self, PageError> {
        Ok(Layout {
            node: state.node_name.to_string(),
            email: user.map(|u| u.email.clone()),
            is_admin: user.is_some_and(|u| u.is_admin),
            csrf: auth.csrf_token()?,
        })
    }
}

/// [`RequireAdmin`] for pages: not signed in sends the browser to the sign-in page, signed in
/// but not an administrator is a `403` page. Admin page handlers take it first, before the form,
/// so a caller who may not use the page gets `403` whatever they post.
pub struct PageAdmin(User);

impl<S: Send + Sync> FromRequestParts<S> for PageAdmin {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match RequireAdmin::from_request_parts(parts, state).await {
            Ok(admin) => Ok(PageAdmin(admin.user)),
            Err(AuthError::Forbidden) => Err(PageError::status(
                StatusCode::FORBIDDEN,
                "Admins only",
                "This page is for administrators.",
            )),
            // Sent to set one up: the security page has the TOTP and passkey forms.
            // The security page, where TOTP and passkeys can both be set up.
            Err(AuthError::MfaSetupRequired) => {
                Err(PageError::Redirect("/account/security#second-factors"))
            }
            Err(other) => Err(other.into()),
        }
    }
}

/// The sessions of `user_id` as the pages list them: `current` (this request's own session,
/// when it is one of them) first and marked, then the most recently active.
pub(crate) async fn session_rows(
    state: &AppState,
    user_id: &str,
    current: Option<&ringfence_sessions::SessionId>,
) -> Result<Vec<crate::views::SessionRow>, PageError> {
    let sessions = state.ringfence.sessions();
    let now = sessions.clock().now();
    let mut list = sessions.list(user_id).await?;
    list.sort_by_key(|s| (Some(&s.id) != current, std::cmp::Reverse(s.last_seen_at)));
    Ok(list
        .iter()
        .map(|s| crate::views::SessionRow::new(s, Some(&s.id) == current, now))
        .collect())
}

pub(crate) async fn signed_in(
    state: &AppState,
    auth: &RequestAuth,
) -> Result<(PageContext, User, Session), PageError> {
    let ctx = context(state, auth).await?;
    match ctx.signed_in.clone() {
        Some((user, session)) => Ok((ctx, user, session)),
        None => Err(PageError::Redirect("/login")),
    }
}

/// What a form shows when the account service refused it: the status, the message and the
/// `Retry-After` seconds; a store failure is the `503` page instead of the form.
struct FormRefusal {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl FormRefusal {
    fn new(error: AccountError) -> Result<Self, PageError> {
        let api = form_refusal(error)?;
        Ok(Self {
            status: api.status(),
            message: capitalize(api.message()),
            retry_after: api.retry_after(),
        })
    }

    /// `page` with this refusal's status and `Retry-After`.
    fn respond(self, page: impl IntoResponse) -> Response {
        let mut response = (self.status, page).into_response();
        crate::errors::with_retry_after(&mut response, self.retry_after);
        response
    }
}

/// The account service's refusal of a form as the API states it; a store failure is the `503`
/// page instead (it is not the form's fault).
pub(crate) fn form_refusal(error: AccountError) -> Result<ApiError, PageError> {
    let api = ApiError::from(error);
    if api.status() == StatusCode::SERVICE_UNAVAILABLE {
        return Err(PageError::status(
            api.status(),
            "Temporarily unavailable",
            api.message(),
        ));
    }
    Ok(api)
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
}

/// `GET /`.
pub async fn home(State(state): State<AppState>, auth: RequestAuth) -> Result<Response, PageError> {
    let ctx = context(&state, &auth).await?;
    Ok(HomePage { layout: ctx.layout }.into_response())
}

/// `GET /static/style.css`: the one stylesheet.
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/style.css"),
    )
        .into_response()
}
