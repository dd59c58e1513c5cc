//! Registration, sign-in and sign-out pages.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use ringfence_accounts::AccountError;
use ringfence_axum::{PasswordSignIn, RequestAuth, SignInError};
use serde::Deserialize;

use super::{context, CsrfForm, CsrfOnly, FormRefusal, Layout};
use crate::errors::PageError;
use crate::state::AppState;

#[derive(Template, WebTemplate)]
#[template(path = "auth_form.html")]
struct AuthFormPage {
    layout: Layout,
    heading: &'static str,
    action: &'static str,
    button: &'static str,
    password_autocomplete: &'static str,
    is_register: bool,
    /// The sign-in form offers "Sign in with a passkey" (passkeys are enabled here).
    passkeys: bool,
    email: String,
    error: Option<String>,
}

impl AuthFormPage {
    fn new(
        state: &AppState,
        layout: Layout,
        is_register: bool,
        email: String,
        error: Option<String>,
    ) -> Self {
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
            passkeys: !is_register && state.passkeys.is_some(),
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
}

/// `GET /register`.
pub async fn register_form(
    State(state): State<AppState>,
    auth: RequestAuth,
) -> Result<Response, PageError> {
    let ctx = context(&state, &auth).await?;
    Ok(AuthFormPage::new(&state, ctx.layout, true, String::new(), None).into_response())
}

/// `GET /login`.
pub async fn login_form(
    State(state): State<AppState>,
    auth: RequestAuth,
) -> Result<Response, PageError> {
    let ctx = context(&state, &auth).await?;
    Ok(AuthFormPage::new(&state, ctx.layout, false, String::new(), None).into_response())
}

/// Shows the form again with the error's message and status (and `Retry-After` when throttled).
async fn form_again(
    state: &AppState,
    auth: &RequestAuth,
    is_register: bool,
    email: String,
    error: AccountError,
) -> Result<Response, PageError> {
    // Only the right password learns these two (a wrong one is the usual 401), so the page
    // may say plainly what to do.
    let explained = match &error {
        AccountError::AccountDisabled => {
            Some("This account is disabled. Ask an administrator to enable it again.".to_owned())
        }
        AccountError::EmailNotVerified => Some(
            "Please confirm your e-mail address first. We have sent you a new verification \
             mail: follow its link, then sign in."
                .to_owned(),
        ),
        _ => None,
    };
    let mut refusal = FormRefusal::new(error)?;
    if let Some(message) = explained {
        refusal.message = message;
    }
    let ctx = context(state, auth).await?;
    let page = AuthFormPage::new(
        state,
        ctx.layout,
        is_register,
        email,
        Some(refusal.message.clone()),
    );
    Ok(refusal.respond(page))
}

/// The sign-in and registration forms: create or check the account, sign in.
async fn credentials_posted(
    state: AppState,
    auth: RequestAuth,
    form: CredentialsForm,
    is_register: bool,
) -> Result<Response, PageError> {
    if is_register {
        let registered = state
            .ringfence
            .accounts()
            .register_from(&form.email, &form.password, auth.client().ip.as_deref())
            .await;
        return match registered {
            Ok(user) => {
                auth.sign_in(&user.id).await?;
                Ok(Redirect::to("/").into_response())
            }
            Err(error) => form_again(&state, &auth, true, form.email, error).await,
        };
    }
    match auth
        .sign_in_with_password(&form.email, &form.password)
        .await
    {
        Ok(PasswordSignIn::SignedIn { .. }) => Ok(Redirect::to("/").into_response()),
        Ok(PasswordSignIn::SecondFactorRequired { .. }) => {
            Ok(Redirect::to("/login/mfa").into_response())
        }
        Err(SignInError::Account(error)) => {
            form_again(&state, &auth, false, form.email, error).await
        }
        Err(SignInError::Auth(error)) => Err(error.into()),
    }
}

/// `POST /register`: creates the account and signs in.
pub async fn register(
    State(state): State<AppState>,
    auth: RequestAuth,
    CsrfForm(form): CsrfForm<CredentialsForm>,
) -> Result<Response, PageError> {
    credentials_posted(state, auth, form, true).await
}

/// `POST /login`: signs in.
pub async fn login(
    State(state): State<AppState>,
    auth: RequestAuth,
    CsrfForm(form): CsrfForm<CredentialsForm>,
) -> Result<Response, PageError> {
    credentials_posted(state, auth, form, false).await
}

/// `POST /logout`: ends the session on the server and clears the cookie.
pub async fn logout(
    auth: RequestAuth,
    CsrfForm(CsrfOnly {}): CsrfForm<CsrfOnly>,
) -> Result<Response, PageError> {
    auth.sign_out().await?;
    Ok(Redirect::to("/").into_response())
}
