//! Pages for browsers. Forms post `application/x-www-form-urlencoded` with an `_csrf` field;
//! a missing or wrong token is a `400` page. Forms with errors are shown again with a message
//! and the status the API would give (`401` bad credentials, `409` e-mail taken, `422` invalid).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use ringfence_accounts::{AccountError, User};
use ringfence_axum::{AuthError, RequestAuth, RequireAdmin};
use ringfence_sessions::{Session, SessionId};
use serde::Deserialize;

use crate::body::PageForm;
use crate::errors::{ApiError, PageError};
use crate::state::AppState;
use crate::views::{KeyRow, SessionRow};

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
    signed_in: Option<(User, Session)>,
}

async fn context(state: &AppState, auth: &RequestAuth) -> Result<PageContext, PageError> {
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
            Err(other) => Err(other.into()),
        }
    }
}

/// The page context of a signed-in user; not signed in sends the browser to `/login`.
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

async fn check_csrf(auth: &RequestAuth, token: Option<&str>) -> Result<(), PageError> {
    auth.verify_csrf(token).await.map_err(PageError::from)
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

#[derive(Template, WebTemplate)]
#[template(path = "auth_form.html")]
struct AuthFormPage {
    layout: Layout,
    heading: &'static str,
    action: &'static str,
    button: &'static str,
    password_autocomplete: &'static str,
    is_register: bool,
    email: String,
    error: Option<String>,
}

impl AuthFormPage {
    fn new(layout: Layout, is_register: bool, email: String, error: Option<String>) -> Self {
        let (heading, action, button, password_autocomplete) = if is_register {
            (
                "Create account",
                "/register",
                "Create account",
                "new-password",
            )
        } else {
            ("Sign in", "/login", "Sign in", "current-password")
        };
        Self {
            layout,
            heading,
            action,
            button,
            password_autocomplete,
            is_register,
            email,
            error,
        }
    }
}

/// Credentials posted by the sign-in and registration forms.
#[derive(Deserialize)]
pub struct CredentialsForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default, rename = "_csrf")]
    csrf: Option<String>,
}

/// A form that carries only the antiforgery token.
#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default, rename = "_csrf")]
    csrf: Option<String>,
}

/// `GET /register`.
pub async fn register_form(
    State(state): State<AppState>,
    auth: RequestAuth,
) -> Result<Response, PageError> {
    let ctx = context(&state, &auth).await?;
    Ok(AuthFormPage::new(ctx.layout, true, String::new(), None).into_response())
}

/// `GET /login`.
pub async fn login_form(
    State(state): State<AppState>,
    auth: RequestAuth,
) -> Result<Response, PageError> {
    let ctx = context(&state, &auth).await?;
    Ok(AuthFormPage::new(ctx.layout, false, String::new(), None).into_response())
}

/// Shows the form again with the error's message and status (and `Retry-After` when throttled).
async fn form_again(
    state: &AppState,
    auth: &RequestAuth,
    is_register: bool,
    email: String,
    error: AccountError,
) -> Result<Response, PageError> {
    let api = ApiError::from(error);
    if api.status() == StatusCode::SERVICE_UNAVAILABLE {
        return Err(PageError::status(
            api.status(),
            "Temporarily unavailable",
            api.message(),
        ));
    }
    let ctx = context(state, auth).await?;
    let message = capitalize(api.message());
    let mut response = (
        api.status(),
        AuthFormPage::new(ctx.layout, is_register, email, Some(message)),
    )
        .into_response();
    crate::errors::with_retry_after(&mut response, api.retry_after());
    Ok(response)
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

/// The sign-in and registration forms: check the token, create or check the account, sign in.
async fn credentials_posted(
    state: AppState,
    auth: RequestAuth,
    form: CredentialsForm,
    is_register: bool,
) -> Result<Response, PageError> {
    check_csrf(&auth, form.csrf.as_deref()).await?;
    let accounts = state.ringfence.accounts();
    let ip = auth.client().ip.clone();
    let result = if is_register {
        accounts
            .register_from(&form.email, &form.password, ip.as_deref())
            .await
    } else {
        accounts
            .authenticate_from(&form.email, &form.password, ip.as_deref())
            .await
    };
    match result {
        Ok(user) => {
            auth.sign_in(&user.id).await?;
            Ok(Redirect::to("/").into_response())
        }
        Err(error) => form_again(&state, &auth, is_register, form.email, error).await,
    }
}

/// `POST /register`: creates the account and signs in.
pub async fn register(
    State(state): State<AppState>,
    auth: RequestAuth,
    PageForm(form): PageForm<CredentialsForm>,
) -> Result<Response, PageError> {
    credentials_posted(state, auth, form, true).await
}

/// `POST /login`: signs in.
pub async fn login(
    State(state): State<AppState>,
    auth: RequestAuth,
    PageForm(form): PageForm<CredentialsForm>,
) -> Result<Response, PageError> {
    credentials_posted(state, auth, form, false).await
}

/// `POST /logout`: ends the session on the server and clears the cookie.
pub async fn logout(
    auth: RequestAuth,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    check_csrf(&auth, form.csrf.as_deref()).await?;
    auth.sign_out().await?;
    Ok(Redirect::to("/").into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "sessions.html")]
struct SessionsPage {
    layout: Layout,
    sessions: Vec<SessionRow>,
    notice: Option<String>,
}

/// `GET /account/sessions`: every device this user is signed in on.
pub async fn sessions(
    State(state): State<AppState>,
    auth: RequestAuth,
) -> Result<Response, PageError> {
    let (ctx, user, current) = signed_in(&state, &auth).await?;
    let now = state.ringfence.sessions().clock().now();
    let mut list = state.ringfence.sessions().list(&user.id).await?;
    // The current session first, then most recently active.
    list.sort_by_key(|s| (s.id != current.id, std::cmp::Reverse(s.last_seen_at)));
    let sessions = list
        .iter()
        .map(|s| SessionRow::new(s, s.id == current.id, now))
        .collect();
    Ok(SessionsPage {
        layout: ctx.layout,
        sessions,
        notice: None,
    }
    .into_response())
}

/// `POST /account/sessions/{id}/revoke`: signs that device out, wherever it is.
pub async fn revoke(
    State(state): State<AppState>,
    auth: RequestAuth,
    Path(id): Path<String>,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    check_csrf(&auth, form.csrf.as_deref()).await?;
    let (_, user, current) = signed_in(&state, &auth).await?;
    let Some(id) = SessionId::parse(&id) else {
        return Err(PageError::status(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such session.",
        ));
    };
    if id == current.id {
        auth.sign_out().await?;
        return Ok(Redirect::to("/").into_response());
    }
    state.ringfence.sessions().end_by_id(&user.id, &id).await?;
    Ok(Redirect::to("/account/sessions").into_response())
}

/// `POST /account/sessions/revoke-others`: signs out every other device.
pub async fn revoke_others(
    State(state): State<AppState>,
    auth: RequestAuth,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    check_csrf(&auth, form.csrf.as_deref()).await?;
    let (_, user, current) = signed_in(&state, &auth).await?;
    state
        .ringfence
        .sessions()
        .end_others(&user.id, &current.id)
        .await?;
    Ok(Redirect::to("/account/sessions").into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "password.html")]
struct PasswordPage {
    layout: Layout,
    error: Option<String>,
    notice: Option<String>,
}

/// The password change form's fields.
#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default, rename = "_csrf")]
    csrf: Option<String>,
}

/// `GET /account/password`.
pub async fn password_form(
    State(state): State<AppState>,
    auth: RequestAuth,
) -> Result<Response, PageError> {
    let (ctx, _, _) = signed_in(&state, &auth).await?;
    Ok(PasswordPage {
        layout: ctx.layout,
        error: None,
        notice: None,
    }
    .into_response())
}

/// `POST /account/password`: changes the password and signs out every other device.
pub async fn change_password(
    State(state): State<AppState>,
    auth: RequestAuth,
    PageForm(form): PageForm<PasswordForm>,
) -> Result<Response, PageError> {
    check_csrf(&auth, form.csrf.as_deref()).await?;
    let (ctx, user, current) = signed_in(&state, &auth).await?;
    let result = state
        .ringfence
        .accounts()
        .change_password(
            &user.id,
            &form.current_password,
            &form.new_password,
            &current.id,
            auth.client().ip.as_deref(),
        )
        .await;
    let mut retry_after = None;
    let (status, error, notice) = match result {
        Ok(others) => (
            StatusCode::OK,
            None,
            Some(match others {
                0 => "Password changed.".to_owned(),
                1 => "Password changed. 1 other device was signed out.".to_owned(),
                n => format!("Password changed. {n} other devices were signed out."),
            }),
        ),
        Err(e) => {
            let api = ApiError::from(e);
            if api.status() == StatusCode::SERVICE_UNAVAILABLE {
                return Err(PageError::status(
                    api.status(),
                    "Temporarily unavailable",
                    api.message(),
                ));
            }
            retry_after = api.retry_after();
            (api.status(), Some(capitalize(api.message())), None)
        }
    };
    let mut response = (
        status,
        PasswordPage {
            layout: ctx.layout,
            error,
            notice,
        },
    )
        .into_response();
    // A throttled check says when to come back, as the sign-in form does.
    crate::errors::with_retry_after(&mut response, retry_after);
    Ok(response)
}

#[derive(Template, WebTemplate)]
#[template(path = "admin.html")]
struct AdminPage {
    layout: Layout,
    notice: Option<String>,
    /// The e-mail looked up with `?email=` and that user's active sessions.
    lookup: Option<(String, u64)>,
    users: u64,
    active_sessions: u64,
    signed_in_users: u64,
    key_store: String,
    keys: Vec<KeyRow>,
}

/// The admin page's query: `?email=` looks up one user's sessions count.
#[derive(Deserialize)]
pub struct AdminQuery {
    email: Option<String>,
}

/// `GET /admin`: counts and key ring state, for admins; `?email=` adds one user's count.
pub async fn admin(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    auth: RequestAuth,
    query: Result<Query<AdminQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let Ok(Query(query)) = query else {
        return Err(PageError::status(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "That address could not be read.",
        ));
    };
    let email = query
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    admin_page(&state, &auth, &admin, email, None).await
}

/// The admin form that signs a user out everywhere.
#[derive(Deserialize)]
pub struct RevokeUserForm {
    #[serde(default)]
    email: String,
    #[serde(default, rename = "_csrf")]
    csrf: Option<String>,
}

/// `POST /admin/revoke-user`: signs a user out on every device.
pub async fn admin_revoke_user(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    auth: RequestAuth,
    PageForm(form): PageForm<RevokeUserForm>,
) -> Result<Response, PageError> {
    check_csrf(&auth, form.csrf.as_deref()).await?;
    let email = form.email.trim();
    let notice = match admin_lookup(
        crate::api::revoke_user_everywhere(&state, email).await,
        email,
    )? {
        Ok(n) => format!(
            "Signed {email} out of {n} session{}.",
            if n == 1 { "" } else { "s" }
        ),
        Err(no_such_user) => no_such_user,
    };
    admin_page(&state, &auth, &admin, None, Some(notice)).await
}

/// What an administrator's action on the user with `email` gives the page: the value, or (no
/// such user) the notice to show instead; a store failure is the error page.
fn admin_lookup<T>(
    result: Result<T, ApiError>,
    email: &str,
) -> Result<Result<T, String>, PageError> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(e) if e.status() == StatusCode::NOT_FOUND => {
            Ok(Err(format!("There is no user {email}.")))
        }
        Err(e) => Err(PageError::status(
            e.status(),
            "Temporarily unavailable",
            e.message(),
        )),
    }
}

async fn admin_page(
    state: &AppState,
    auth: &RequestAuth,
    admin: &User,
    lookup_email: Option<&str>,
    mut notice: Option<String>,
) -> Result<Response, PageError> {
    let mut lookup = None;
    if let Some(email) = lookup_email {
        match admin_lookup(crate::api::user_session_count(state, email).await, email)? {
            Ok((found, count)) => lookup = Some((found.email, count)),
            Err(no_such_user) => notice = Some(no_such_user),
        }
    }
    let users = state.ringfence.accounts().count().await?;
    let counts = state.ringfence.sessions().counts().await?;
    let keyring = state.ringfence.keyring();
    let now = keyring.clock().now();
    let default = keyring.default_key_id();
    let keys = keyring
        .keys()
        .iter()
        .rev()
        .map(|k| KeyRow::new(k, Some(k.id) == default, now))
        .collect();
    Ok(AdminPage {
        layout: Layout::new(state, auth, Some(admin))?,
        notice,
        lookup,
        users,
        active_sessions: counts.active_sessions,
        signed_in_users: counts.signed_in_users,
        key_store: keyring.describe_store(),
        keys,
    }
    .into_response())
}

/// `GET /static/style.css`: the one stylesheet.
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/style.css"),
    )
        .into_response()
}
