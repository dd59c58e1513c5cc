//! Getting back in and proving an address: `/forgot-password`, and the pages the links in
//! mails open (`/reset-password`, `/verify-email`, `/confirm-email`).
//!
//! A mail link's page acts only on its form's `POST`: the `GET` shows a form holding the token
//! (checked for form only, never looked up), so a mail scanner following the link uses up
//! nothing. An unknown, used or expired token is the `400` "link not valid" page, which points
//! to where a new link comes from.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use ringfence_accounts::{AccountError, MailToken};
use ringfence_axum::RequestAuth;
use serde::Deserialize;

use super::{context, CsrfForm, FormRefusal, Layout};
use crate::errors::PageError;
use crate::state::AppState;

/// A page that tells the outcome of a mail link or a request, with one link onwards.
#[derive(Template, WebTemplate)]
#[template(path = "message.html")]
struct MessagePage {
    layout: Layout,
    heading: &'static str,
    message: String,
    link: &'static str,
    link_text: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "forgot_password.html")]
struct ForgotPasswordPage {
    layout: Layout,
    email: String,
    error: Option<String>,
}

/// The forgot-password form's field.
#[derive(Deserialize)]
pub struct ForgotPasswordForm {
    #[serde(default)]
    email: String,
}

/// `GET /forgot-password`.
pub async fn forgot_password_form(
    State(state): State<AppState>,
    auth: RequestAuth,
) -> Result<Response, PageError> {
    let ctx = context(&state, &auth).await?;
    Ok(ForgotPasswordPage {
        layout: ctx.layout,
        email: String::new(),
        error: None,
    }
    .into_response())
}

/// `POST /forgot-password`: the same page whether or not the address has an account (the
/// lookup and the mail happen off the request path); a malformed address is shown again
/// (`422`), too many requests are `429` with `Retry-After`.
pub async fn forgot_password(
    State(state): State<AppState>,
    auth: RequestAuth,
    CsrfForm(form): CsrfForm<ForgotPasswordForm>,
) -> Result<Response, PageError> {
    let email = form.email.trim();
    let result = state
        .ringfence
        .accounts()
        .request_password_reset(email, auth.client().ip.as_deref())
        .await;
    let ctx = context(&state, &auth).await?;
    match result {
        Ok(()) => Ok(MessagePage {
            layout: ctx.layout,
            heading: "Check your mail",
            message: "If an account uses this address, we have sent it a link to choose a new \
                      password. The link works for a limited time and only once."
                .to_owned(),
            link: "/login",
            link_text: "Back to sign-in",
        }
        .into_response()),
        Err(e) => {
            let refusal = FormRefusal::new(e)?;
            let page = ForgotPasswordPage {
                layout: ctx.layout,
                email: email.to_owned(),
                error: Some(refusal.message.clone()),
            };
            Ok(refusal.respond(page))
        }
    }
}

/// What a mail link's page is for.
#[derive(Clone, Copy)]
enum LinkPage {
    ResetPassword,
    VerifyEmail,
    ConfirmEmail,
}

impl LinkPage {
    fn action(self) -> &'static str {
        match self {
            LinkPage::ResetPassword => "/reset-password",
            LinkPage::VerifyEmail => "/verify-email",
            LinkPage::ConfirmEmail => "/confirm-email",
        }
    }

    fn heading(self) -> &'static str {
        match self {
            LinkPage::ResetPassword => "Choose a new password",
            LinkPage::VerifyEmail => "Confirm your e-mail address",
            LinkPage::ConfirmEmail => "Confirm your new e-mail address",
        }
    }

    fn intro(self) -> &'static str {
        match self {
            LinkPage::ResetPassword => {
                "Every device signed in to your account will be signed out. Sign in with the new password afterwards."
            }
            LinkPage::VerifyEmail => "Press the button to confirm that this address is yours.",
            LinkPage::ConfirmEmail => {
                "Press the button to move your account to this address. Your old address gets a notice."
            }
        }
    }

    fn button(self) -> &'static str {
        match self {
            LinkPage::ResetPassword => "Set new password",
            LinkPage::VerifyEmail => "Confirm address",
            LinkPage::ConfirmEmail => "Change address",
        }
    }

    /// Where a fresh link comes from, for the "link not valid" page.
    fn fresh_link(self) -> (&'static str, &'static str) {
        match self {
            LinkPage::ResetPassword => ("/forgot-password", "Ask for a new link"),
            LinkPage::VerifyEmail | LinkPage::ConfirmEmail => (
                "/account/security",
                "Ask for a new link on your account page",
            ),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "token_form.html")]
struct TokenFormPage {
    layout: Layout,
    heading: &'static str,
    intro: &'static str,
    action: &'static str,
    button: &'static str,
    token: String,
    /// The reset page asks for the new password.
    with_password: bool,
    error: Option<String>,
}

/// The query of a mail link: `?token=T`.
#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// The form of a mail link's page.
#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    token: String,
    /// The new password (reset only).
    #[serde(default)]
    password: String,
}

/// The `400` page for a token that is malformed, unknown, used or expired.
async fn link_not_valid(
    state: &AppState,
    auth: &RequestAuth,
    page: LinkPage,
) -> Result<Response, PageError> {
    let ctx = context(state, auth).await?;
    let (link, link_text) = page.fresh_link();
    let message = MessagePage {
        layout: ctx.layout,
        heading: "This link is not valid",
        message: "The link is incomplete, was already used, or has expired. Links in our mails \
                  work once and for a limited time."
            .to_owned(),
        link,
        link_text,
    };
    Ok((StatusCode::BAD_REQUEST, message).into_response())
}

/// The `GET` of a mail link: the form with the token, nothing redeemed.
async fn show_token_form(
    state: &AppState,
    auth: &RequestAuth,
    query: Result<Query<TokenQuery>, QueryRejection>,
    page: LinkPage,
) -> Result<Response, PageError> {
    let token = match query {
        Ok(Query(TokenQuery { token: Some(token) })) if MailToken::parse(&token).is_some() => token,
        _ => return link_not_valid(state, auth, page).await,
    };
    let ctx = context(state, auth).await?;
    Ok(token_form(ctx.layout, page, token, None).into_response())
}

fn token_form(
    layout: Layout,
    page: LinkPage,
    token: String,
    error: Option<String>,
) -> TokenFormPage {
    TokenFormPage {
        layout,
        heading: page.heading(),
        intro: page.intro(),
        action: page.action(),
        button: page.button(),
        token,
        with_password: matches!(page, LinkPage::ResetPassword),
        error,
    }
}

/// The answer to a mail link's `POST` that the account service refused.
async fn token_refused(
    state: &AppState,
    auth: &RequestAuth,
    page: LinkPage,
    token: String,
    error: AccountError,
) -> Result<Response, PageError> {
    if matches!(error, AccountError::InvalidToken) {
        return link_not_valid(state, auth, page).await;
    }
    // A weak password (or an address taken meanwhile): the form again with the reason; the
    // token is still good for another try where the service kept it.
    let refusal = FormRefusal::new(error)?;
    let ctx = context(state, auth).await?;
    let form = token_form(ctx.layout, page, token, Some(refusal.message.clone()));
    Ok(refusal.respond(form))
}

/// `GET /reset-password?token=T`: the new-password form.
pub async fn reset_password_form(
    State(state): State<AppState>,
    auth: RequestAuth,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    show_token_form(&state, &auth, query, LinkPage::ResetPassword).await
}

/// `POST /reset-password`: sets the new password, ends every session of the user, and sends
/// the browser to sign in (`303` to `/login`; it does not sign in).
pub async fn reset_password(
    State(state): State<AppState>,
    auth: RequestAuth,
    CsrfForm(form): CsrfForm<TokenForm>,
) -> Result<Response, PageError> {
    let result = state
        .ringfence
        .accounts()
        .reset_password(&form.token, &form.password)
        .await;
    match result {
        Ok(user) => {
            // The reset ended every session of the user; if this browser held one of them,
            // clear its cookie too.
            if auth.session()?.is_some_and(|s| s.user_id == user.id) {
                auth.sign_out().await?;
            }
            Ok(Redirect::to("/login").into_response())
        }
        Err(e) => token_refused(&state, &auth, LinkPage::ResetPassword, form.token, e).await,
    }
}

/// `GET /verify-email?token=T`: the confirm button.
pub async fn verify_email_form(
    State(state): State<AppState>,
    auth: RequestAuth,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    show_token_form(&state, &auth, query, LinkPage::VerifyEmail).await
}

/// `POST /verify-email`: confirms the address.
pub async fn verify_email(
    State(state): State<AppState>,
    auth: RequestAuth,
    CsrfForm(form): CsrfForm<TokenForm>,
) -> Result<Response, PageError> {
    match state.ringfence.accounts().verify_email(&form.token).await {
        Ok(user) => {
            let ctx = context(&state, &auth).await?;
            Ok(MessagePage {
                layout: ctx.layout,
                heading: "Address confirmed",
                message: format!("Thank you: {} is confirmed.", user.email),
                link: "/",
                link_text: "Continue",
            }
            .into_response())
        }
        Err(e) => token_refused(&state, &auth, LinkPage::VerifyEmail, form.token, e).await,
    }
}

/// `GET /confirm-email?token=T`: the confirm button of an address change.
pub async fn confirm_email_form(
    State(state): State<AppState>,
    auth: RequestAuth,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    show_token_form(&state, &auth, query, LinkPage::ConfirmEmail).await
}

/// `POST /confirm-email`: completes the address change.
pub async fn confirm_email(
    State(state): State<AppState>,
    auth: RequestAuth,
    CsrfForm(form): CsrfForm<TokenForm>,
) -> Result<Response, PageError> {
    match state
        .ringfence
        .accounts()
        .confirm_email_change(&form.token)
        .await
    {
        Ok(user) => {
            let ctx = context(&state, &auth).await?;
            Ok(MessagePage {
                layout: ctx.layout,
                heading: "Address changed",
                message: format!(
                    "Your account's address is now {}. Sign in with it from now on.",
                    user.email
                ),
                link: "/",
                link_text: "Continue",
            }
            .into_response())
        }
        // The new address was taken meanwhile: the token is spent, so no form to try again.
        Err(AccountError::EmailTaken) => {
            let ctx = context(&state, &auth).await?;
            let page = MessagePage {
                layout: ctx.layout,
                heading: "Address taken",
                message: "Another account uses this address now, so your address stays as it \
                          was. Choose another one on your account page."
                    .to_owned(),
                link: "/account/security",
                link_text: "Your account",
            };
            Ok((StatusCode::CONFLICT, page).into_response())
        }
        Err(e) => token_refused(&state, &auth, LinkPage::ConfirmEmail, form.token, e).await,
    }
}
