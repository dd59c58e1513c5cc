//! `/admin`: counts, the key ring, and control of one account at a time.
//!
//! An administrator finds a user by e-mail (`GET /admin?email=E`), sees the account's status
//! and sessions, and acts on it with forms that post to `/admin/users/{id}/…`: disable, enable,
//! delete (after a confirm step), set a password, mail a reset link. Every handler takes
//! [`PageAdmin`] first and reads its form with [`CsrfForm`], so the admin check comes before
//! the form and the token check before the fields.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ringfence_accounts::{AccountError, Accounts, User};
use ringfence_axum::RequestAuth;
use ringfence_sessions::SessionId;
use serde::Deserialize;

use super::{session_rows, CsrfForm, CsrfOnly, FormRefusal, Layout, PageAdmin};
use crate::errors::{ApiError, PageError};
use crate::state::AppState;
use crate::views::{KeyRow, SessionRow};

/// One account as the admin page shows it.
pub struct UserLookup {
    user: User,
    sessions: u64,
    /// Its sessions, most recently active first (empty on the delete confirmation).
    devices: Vec<SessionRow>,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin.html")]
struct AdminPage {
    layout: Layout,
    notice: Option<String>,
    error: Option<String>,
    /// The user looked up with `?email=` (or acted on), and their active sessions.
    lookup: Option<UserLookup>,
    users: u64,
    active_sessions: u64,
    signed_in_users: u64,
    key_store: String,
    keys: Vec<KeyRow>,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_confirm_delete.html")]
struct ConfirmDeletePage {
    layout: Layout,
    lookup: UserLookup,
}

/// The admin page's query: `?email=` looks up one user.
#[derive(Deserialize)]
pub struct AdminQuery {
    email: Option<String>,
}

/// What the admin page shows besides the counts.
#[derive(Default)]
struct AdminView {
    lookup_email: Option<String>,
    notice: Option<String>,
    error: Option<String>,
    status: Option<StatusCode>,
}

/// `GET /admin`: counts and key ring state, for admins; `?email=` finds one user.
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
        .filter(|e| !e.is_empty())
        .map(str::to_owned);
    let view = AdminView {
        lookup_email: email,
        ..AdminView::default()
    };
    admin_page(&state, &auth, &admin, view).await
}

/// The admin form that signs a user out everywhere.
#[derive(Deserialize)]
pub struct RevokeUserForm {
    #[serde(default)]
    email: String,
}

/// `POST /admin/revoke-user`: signs a user out on every device.
pub async fn admin_revoke_user(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    auth: RequestAuth,
    CsrfForm(form): CsrfForm<RevokeUserForm>,
) -> Result<Response, PageError> {
    let email = form.email.trim();
    let notice = match admin_lookup(
        crate::api::revoke_user_everywhere(&state, email).await,
        email,
    )? {
        Ok(n) => format!("Signed {email} out of {n} session{}.", plural(n)),
        Err(no_such_user) => no_such_user,
    };
    let view = AdminView {
        notice: Some(notice),
        ..AdminView::default()
    };
    admin_page(&state, &auth, &admin, view).await
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
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

/// The account an action names by id; `404` page when there is none (deleted meanwhile).
async fn target(state: &AppState, id: &str) -> Result<User, PageError> {
    state.ringfence.accounts().user(id).await?.ok_or_else(|| {
        PageError::status(
            StatusCode::NOT_FOUND,
            "No such user",
            "This account does not exist (any more).",
        )
    })
}

/// The admin page after an action on `user`: its outcome, and the user shown again.
async fn acted(
    state: &AppState,
    auth: &RequestAuth,
    admin: &User,
    user: &User,
    outcome: Result<String, AccountError>,
) -> Result<Response, PageError> {
    let mut view = AdminView {
        lookup_email: Some(user.email.clone()),
        ..AdminView::default()
    };
    match outcome {
        Ok(notice) => view.notice = Some(notice),
        Err(e) => {
            let refusal = FormRefusal::new(e)?;
            view.status = Some(refusal.status);
            view.error = Some(refusal.message);
        }
    }
    admin_page(state, auth, admin, view).await
}

/// An administrator's action on the account `id` names: runs it, logs it when done (`done`
/// says what, for the audit trail) and shows the page with the outcome and the account again.
async fn act(
    state: &AppState,
    auth: &RequestAuth,
    admin: &User,
    id: &str,
    done: &str,
    action: impl AsyncFnOnce(&Accounts, &User) -> Result<String, AccountError>,
) -> Result<Response, PageError> {
    let user = target(state, id).await?;
    let outcome = action(state.ringfence.accounts(), &user).await;
    if outcome.is_ok() {
        tracing::warn!(admin = %admin.id, user = %user.id, "administrator {done}");
    }
    acted(state, auth, admin, &user, outcome).await
}

/// `POST /admin/users/{id}/disable`: the account is refused sign-in and signed out everywhere.
pub async fn admin_disable_user(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    auth: RequestAuth,
    Path(id): Path<String>,
    CsrfForm(CsrfOnly {}): CsrfForm<CsrfOnly>,
) -> Result<Response, PageError> {
    act(
        &state,
        &auth,
        &admin,
        &id,
        "disabled an account",
        async |accounts, user| {
            let n = accounts.disable(&user.id).await?;
            Ok(format!(
                "Disabled {}; {n} session{} ended.",
                user.email,
                plural(n)
            ))
        },
    )
    .await
}

/// `POST /admin/users/{id}/enable`.
pub async fn admin_enable_user(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    auth: RequestAuth,
    Path(id): Path<String>,
    CsrfForm(CsrfOnly {}): CsrfForm<CsrfOnly>,
) -> Result<Response, PageError> {
    act(
        &state,
        &auth,
        &admin,
        &id,
        "enabled an account",
        async |accounts, user| {
            accounts.enable(&user.id).await?;
            Ok(format!("Enabled {}.", user.email))
        },
    )
    .await
}

/// The delete form: without `confirm=yes` it asks first.
#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

/// `POST /admin/users/{id}/delete`: first the confirm page, then (with `confirm=yes`) the
/// account, its sessions and its links are gone.
pub async fn admin_delete_user(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    auth: RequestAuth,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<DeleteForm>,
) -> Result<Response, PageError> {
    let user = target(&state, &id).await?;
    if form.confirm != "yes" {
        let sessions = state.ringfence.sessions().count_for_user(&user.id).await?;
        return Ok(ConfirmDeletePage {
            layout: Layout::new(&state, &auth, Some(&admin))?,
            lookup: UserLookup {
                user,
                sessions,
                devices: Vec::new(),
            },
        }
        .into_response());
    }
    if user.id == admin.id {
        let view = AdminView {
            lookup_email: Some(user.email.clone()),
            error: Some("You cannot delete your own account here.".to_owned()),
            status: Some(StatusCode::FORBIDDEN),
            ..AdminView::default()
        };
        return admin_page(&state, &auth, &admin, view).await;
    }
    match state.ringfence.accounts().delete(&user.id).await {
        Ok(n) => {
            tracing::warn!(admin = %admin.id, user = %user.id, "administrator deleted an account");
            let view = AdminView {
                notice: Some(format!(
                    "Deleted {}; {n} session{} ended.",
                    user.email,
                    plural(n)
                )),
                ..AdminView::default()
            };
            admin_page(&state, &auth, &admin, view).await
        }
        Err(e) => acted(&state, &auth, &admin, &user, Err(e)).await,
    }
}

/// The set-password form's field.
#[derive(Deserialize)]
pub struct SetPasswordForm {
    #[serde(default)]
    password: String,
}

/// `POST /admin/users/{id}/password`: sets the password (the policy applies); every session of
/// the user ends and a notice is mailed.
pub async fn admin_set_password(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    auth: RequestAuth,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<SetPasswordForm>,
) -> Result<Response, PageError> {
    // The administrator's own current session stays when they set their own password.
    let keep = auth.session()?.map(|s| s.id);
    act(
        &state,
        &auth,
        &admin,
        &id,
        "set a password",
        async |accounts, user| {
            let n = accounts
                .set_password(&user.id, &form.password, keep.as_ref())
                .await?;
            Ok(format!(
                "Password of {} set; {n} session{} ended.",
                user.email,
                plural(n)
            ))
        },
    )
    .await
}

/// `POST /admin/users/{id}/password-reset`: mails the user a reset link.
pub async fn admin_send_password_reset(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    auth: RequestAuth,
    Path(id): Path<String>,
    CsrfForm(CsrfOnly {}): CsrfForm<CsrfOnly>,
) -> Result<Response, PageError> {
    let done = "sent a password-reset link";
    act(&state, &auth, &admin, &id, done, async |accounts, user| {
        accounts.send_password_reset(&user.id).await?;
        Ok(format!("A reset link is on its way to {}.", user.email))
    })
    .await
}

/// The sessions of `user` as rows; the administrator's own current session (when they look
/// themselves up) is marked and has no sign-out button here (and is refused if posted anyway:
/// signing out is the way to end it).
async fn devices_of(
    state: &AppState,
    auth: &RequestAuth,
    user: &User,
) -> Result<Vec<SessionRow>, PageError> {
    let current = auth.session()?.map(|s| s.id);
    session_rows(state, &user.id, current.as_ref()).await
}

/// `POST /admin/users/{id}/sessions/{session}/revoke`: signs one device of the user out,
/// on every node. An id that names no session of this user changes nothing.
pub async fn admin_revoke_session(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    auth: RequestAuth,
    Path((id, session)): Path<(String, String)>,
    CsrfForm(CsrfOnly {}): CsrfForm<CsrfOnly>,
) -> Result<Response, PageError> {
    let session = SessionId::parse(&session);
    if session.is_some() && session == auth.session()?.map(|s| s.id) {
        let user = target(&state, &id).await?;
        let view = AdminView {
            lookup_email: Some(user.email),
            error: Some("That is your own session: sign out to end it.".to_owned()),
            status: Some(StatusCode::CONFLICT),
            ..AdminView::default()
        };
        return admin_page(&state, &auth, &admin, view).await;
    }
    let done = "signed a session out (or found it ended)";
    act(&state, &auth, &admin, &id, done, async |_, user| {
        let ended = match session {
            Some(session) => state
                .ringfence
                .sessions()
                .end_by_id(&user.id, &session)
                .await
                .map_err(|e| AccountError::Store(e.to_string()))?,
            None => false,
        };
        Ok(if ended {
            format!("Signed {} out of one session.", user.email)
        } else {
            "That session had already ended.".to_owned()
        })
    })
    .await
}

async fn admin_page(
    state: &AppState,
    auth: &RequestAuth,
    admin: &User,
    view: AdminView,
) -> Result<Response, PageError> {
    let AdminView {
        lookup_email,
        mut notice,
        error,
        status,
    } = view;
    let mut lookup = None;
    if let Some(email) = lookup_email.as_deref() {
        match admin_lookup(crate::api::user_session_count(state, email).await, email)? {
            Ok((user, sessions)) => {
                let devices = devices_of(state, auth, &user).await?;
                lookup = Some(UserLookup {
                    user,
                    sessions,
                    devices,
                })
            }
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
    let page = AdminPage {
        layout: Layout::new(state, auth, Some(admin))?,
        notice,
        error,
        lookup,
        users,
        active_sessions: counts.active_sessions,
        signed_in_users: counts.signed_in_users,
        key_store: keyring.describe_store(),
        keys,
    };
    Ok((status.unwrap_or(StatusCode::OK), page).into_response())
}
