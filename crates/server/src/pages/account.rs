//! The signed-in user's own pages: where they are signed in, and `/account/security`.
//!
//! `/account/security` is one page of sections (`templates/security.html` includes one
//! template per section from `templates/security/`): password, e-mail address, and the second
//! factors (`security/factors.html` embeds the TOTP and recovery-code section of
//! [`crate::pages_mfa`] and the passkey section of [`crate::pages_passkeys`], which are also
//! pages of their own). Each section posts to its own route and the answer is the whole page
//! again, with that section's feedback. A new section adds a template under
//! `templates/security/`, an include line, a field on [`SecurityPage`] filled in
//! [`SecurityPage::load`], and its routes.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use ringfence_accounts::User;
use ringfence_axum::RequestAuth;
use ringfence_sessions::{Session, SessionId};
use serde::Deserialize;

use super::{session_rows, signed_in, CsrfForm, CsrfOnly, FormRefusal, Layout};
use crate::errors::PageError;
use crate::pages_mfa::{mfa_section, MfaSection};
use crate::pages_passkeys::{passkey_rows, PasskeyRow};
use crate::state::AppState;
use crate::views::SessionRow;

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
    let sessions = session_rows(&state, &user.id, Some(&current.id)).await?;
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
    CsrfForm(CsrfOnly {}): CsrfForm<CsrfOnly>,
) -> Result<Response, PageError> {
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
    CsrfForm(CsrfOnly {}): CsrfForm<CsrfOnly>,
) -> Result<Response, PageError> {
    let (_, user, current) = signed_in(&state, &auth).await?;
    state
        .ringfence
        .sessions()
        .end_others(&user.id, &current.id)
        .await?;
    Ok(Redirect::to("/account/sessions").into_response())
}

/// What one section of the security page says after its form was posted.
#[derive(Default)]
pub struct Feedback {
    /// The refusal (`role="alert"`).
    pub error: Option<String>,
    /// What was done (`role="status"`).
    pub notice: Option<String>,
}

impl Feedback {
    fn done(notice: impl Into<String>) -> Self {
        Self {
            error: None,
            notice: Some(notice.into()),
        }
    }

    fn refused(message: String) -> Self {
        Self {
            error: Some(message),
            notice: None,
        }
    }
}

/// `GET /account/security`: the account's security settings, one section each.
#[derive(Template, WebTemplate)]
#[template(path = "security.html")]
pub struct SecurityPage {
    layout: Layout,
    /// The account's address and whether it is verified (the e-mail section).
    email: String,
    email_verified: bool,
    /// The change-password section.
    password: Feedback,
    /// The e-mail section (address change, verification mail again).
    address: Feedback,
    /// What the address-change field held when the form comes back refused.
    new_email: String,
    /// The TOTP and recovery-code section (`mfa_section.html`); its forms fill its feedback.
    pub(crate) mfa: MfaSection,
    /// Passkeys are enabled on this node: the passkey section is shown.
    passkeys_enabled: bool,
    /// The passkey section's list (`passkeys_section.html`).
    passkeys: Vec<PasskeyRow>,
}

impl SecurityPage {
    /// The page for the signed-in `user` on `session`, every section without feedback.
    pub(crate) async fn load(
        state: &AppState,
        auth: &RequestAuth,
        headers: &HeaderMap,
        layout: Layout,
        user: &User,
        session: &Session,
    ) -> Result<Self, PageError> {
        let mfa = mfa_section(state, auth, headers, user, session).await?;
        let passkeys = passkey_rows(state, user).await?;
        Ok(Self {
            layout,
            email: user.email.clone(),
            email_verified: user.email_verified,
            password: Feedback::default(),
            address: Feedback::default(),
            new_email: String::new(),
            mfa,
            passkeys_enabled: passkeys.is_some(),
            passkeys: passkeys.unwrap_or_default(),
        })
    }
}

/// `GET /account/security` (and `GET /account/password`, its old address).
pub async fn security(
    State(state): State<AppState>,
    auth: RequestAuth,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let (ctx, user, session) = signed_in(&state, &auth).await?;
    let page = SecurityPage::load(&state, &auth, &headers, ctx.layout, &user, &session).await?;
    Ok(page.into_response())
}

/// The password change form's fields.
#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

/// `POST /account/security/password` (and `POST /account/password`): changes the password and
/// signs out every other device.
pub async fn change_password(
    State(state): State<AppState>,
    auth: RequestAuth,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Result<Response, PageError> {
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
    let mut page = SecurityPage::load(&state, &auth, &headers, ctx.layout, &user, &current).await?;
    match result {
        Ok(others) => {
            page.password = Feedback::done(match others {
                0 => "Password changed.".to_owned(),
                1 => "Password changed. 1 other device was signed out.".to_owned(),
                n => format!("Password changed. {n} other devices were signed out."),
            });
            Ok(page.into_response())
        }
        Err(e) => {
            // A throttled check says when to come back, as the sign-in form does.
            let refusal = FormRefusal::new(e)?;
            page.password = Feedback::refused(refusal.message.clone());
            Ok(refusal.respond(page))
        }
    }
}

/// The address change form's field.
#[derive(Deserialize)]
pub struct EmailChangeForm {
    #[serde(default)]
    new_email: String,
}

/// `POST /account/security/email`: mails a confirmation link to the new address; the address
/// changes only when that link's page is posted.
pub async fn change_email(
    State(state): State<AppState>,
    auth: RequestAuth,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<EmailChangeForm>,
) -> Result<Response, PageError> {
    let (ctx, user, session) = signed_in(&state, &auth).await?;
    let new_email = form.new_email.trim();
    // The same rule as the API's (`RecentAuth`): the section says what to do, the field keeps
    // what was typed.
    if !auth.is_recently_authenticated(&session, &headers).await {
        let mut page =
            SecurityPage::load(&state, &auth, &headers, ctx.layout, &user, &session).await?;
        page.address = Feedback::refused(
            "This needs a recent sign-in: confirm it is you under Two-step sign-in (password, code or passkey) or sign in again, then retry.".to_owned(),
        );
        page.new_email = new_email.to_owned();
        return Ok((StatusCode::FORBIDDEN, page).into_response());
    }
    let result = state
        .ringfence
        .accounts()
        .request_email_change(&user.id, new_email)
        .await;
    let mut page = SecurityPage::load(&state, &auth, &headers, ctx.layout, &user, &session).await?;
    match result {
        Ok(()) => {
            page.address = Feedback::done(format!(
                "We sent a confirmation link to {new_email}. Your address changes when you follow it."
            ));
            Ok(page.into_response())
        }
        Err(e) => {
            let refusal = FormRefusal::new(e)?;
            page.address = Feedback::refused(refusal.message.clone());
            page.new_email = new_email.to_owned();
            Ok(refusal.respond(page))
        }
    }
}

/// `POST /account/security/verification`: the verification mail again.
pub async fn resend_verification(
    State(state): State<AppState>,
    auth: RequestAuth,
    headers: HeaderMap,
    CsrfForm(CsrfOnly {}): CsrfForm<CsrfOnly>,
) -> Result<Response, PageError> {
    let (ctx, user, session) = signed_in(&state, &auth).await?;
    let result = state
        .ringfence
        .accounts()
        .resend_verification(&user.id)
        .await;
    let mut page = SecurityPage::load(&state, &auth, &headers, ctx.layout, &user, &session).await?;
    match result {
        Ok(()) if user.email_verified => {
            page.address = Feedback::done("Your address is already verified.");
            Ok(page.into_response())
        }
        Ok(()) => {
            page.address = Feedback::done(format!(
                "We sent a new verification link to {}.",
                user.email
            ));
            Ok(page.into_response())
        }
        Err(e) => {
            let refusal = FormRefusal::new(e)?;
            page.address = Feedback::refused(refusal.message.clone());
            Ok(refusal.respond(page))
        }
    }
}
