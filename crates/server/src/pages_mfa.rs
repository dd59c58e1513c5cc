//! Pages of second factors (issue 15): the second step of signing in (`/login/mfa`, a code
//! form and, for a user with a passkey, a passkey button) and the two-step sign-in section
//! of the security page (the forms it posts; also `/account/security/mfa` on its own). The
//! section is its own template (`mfa_section.html`), which `/account/security` embeds; the
//! answer of each of its forms is that whole page.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use qrcode::render::svg;
use qrcode::QrCode;
use ringfence_accounts::{AccountError, SecondFactorCode, TotpSetup, User};
use ringfence_axum::{AuthError, PendingSignIn, RequestAuth, SignInError};
use ringfence_sessions::Session;
use serde::Deserialize;

use crate::api_mfa::TOTP_ISSUER;
use crate::body::{CsrfForm, CsrfOnly};
use crate::errors::{ApiError, PageError};
use crate::pages::{context, signed_in, Layout, SecurityPage};
use crate::state::AppState;

/// [`PendingSignIn`] for pages: without one, the browser goes back to the sign-in page.
pub struct PagePending(PendingSignIn);

impl<S: Send + Sync> FromRequestParts<S> for PagePending {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        PendingSignIn::from_request_parts(parts, state)
            .await
            .map(PagePending)
            .map_err(|_| PageError::Redirect("/login"))
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "login_mfa.html")]
struct LoginMfaPage {
    layout: Layout,
    error: Option<String>,
    /// The user has a passkey (and passkeys are enabled here): the passkey button.
    passkey: bool,
    /// The user has TOTP or recovery codes: the code form.
    codes: bool,
}

impl LoginMfaPage {
    /// The second step's page for `user`, offering the methods the user has.
    async fn new(
        state: &AppState,
        auth: &RequestAuth,
        user: &User,
        error: Option<String>,
    ) -> Result<Self, PageError> {
        let mfa = state.ringfence.accounts().mfa_status(user).await?;
        let ctx = context(state, auth).await?;
        Ok(Self {
            layout: ctx.layout,
            error,
            passkey: mfa.passkeys > 0 && state.passkeys.is_some(),
            // With no factor left at all (removed since the password step), the code form
            // still says what went wrong when posted.
            codes: mfa.totp || mfa.recovery_codes_left > 0 || mfa.passkeys == 0,
        })
    }
}

/// A form with one `code` (and for re-authentication a `password`).
#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    password: String,
}

/// `GET /login/mfa`: the code form of a pending sign-in.
pub async fn login_mfa_form(
    PagePending(pending): PagePending,
    State(state): State<AppState>,
    auth: RequestAuth,
) -> Result<Response, PageError> {
    let user = state
        .ringfence
        .pending_user(&pending)
        .await
        .map_err(|_| PageError::Redirect("/login"))?;
    Ok(LoginMfaPage::new(&state, &auth, &user, None)
        .await?
        .into_response())
}

/// `POST /login/mfa`: a TOTP code or a recovery code completes the sign-in.
pub async fn login_mfa(
    PagePending(pending): PagePending,
    State(state): State<AppState>,
    auth: RequestAuth,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Result<Response, PageError> {
    let code = SecondFactorCode::either(form.code.trim());
    match auth.finish_sign_in(&pending, code).await {
        Ok(_) => Ok(Redirect::to("/").into_response()),
        Err(SignInError::Auth(AuthError::Unauthenticated)) => Err(PageError::Redirect("/login")),
        Err(SignInError::Auth(error)) => Err(error.into()),
        Err(SignInError::Account(error)) => {
            let api = crate::pages::form_refusal(error)?;
            // The form again, for the same account (gone or disabled meanwhile: sign in again).
            let user = state
                .ringfence
                .pending_user(&pending)
                .await
                .map_err(|_| PageError::Redirect("/login"))?;
            let page =
                LoginMfaPage::new(&state, &auth, &user, Some(api.message().to_owned())).await?;
            let mut response = (api.status(), page).into_response();
            crate::errors::with_retry_after(&mut response, api.retry_after());
            Ok(response)
        }
    }
}

/// A TOTP setup as the page shows it.
pub struct SetupView {
    /// The secret, base32.
    pub secret: String,
    /// The QR code of the otpauth URI, an SVG drawn here (no outside service).
    pub qr_svg: String,
}

/// What `mfa_section.html` shows.
#[derive(Default)]
pub struct MfaSection {
    /// TOTP is on.
    pub totp: bool,
    /// Recovery codes left.
    pub recovery_codes_left: u32,
    /// The session authenticated recently (the forms that change factors are shown).
    pub recent: bool,
    /// The user has a passkey (and passkeys are enabled): it can confirm it is them.
    pub passkey: bool,
    /// A setup to confirm.
    pub setup: Option<SetupView>,
    /// Codes to show once.
    pub recovery_codes: Vec<String>,
    /// An error.
    pub error: Option<String>,
    /// A notice.
    pub notice: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "mfa.html")]
struct MfaPage {
    layout: Layout,
    mfa: MfaSection,
}

fn setup_view(setup: TotpSetup) -> SetupView {
    let qr_svg = QrCode::new(setup.otpauth_uri.as_bytes())
        .map(|code| {
            code.render::<svg::Color<'_>>()
                .min_dimensions(200, 200)
                .build()
        })
        .unwrap_or_default();
    SetupView {
        secret: setup.secret,
        qr_svg,
    }
}

/// The section's state for `user` (without setup, codes or messages).
pub async fn mfa_section(
    state: &AppState,
    auth: &RequestAuth,
    headers: &HeaderMap,
    user: &User,
    session: &Session,
) -> Result<MfaSection, PageError> {
    let status = state.ringfence.accounts().mfa_status(user).await?;
    Ok(MfaSection {
        totp: status.totp,
        recovery_codes_left: status.recovery_codes_left,
        recent: auth.is_recently_authenticated(session, headers).await,
        passkey: status.passkeys > 0 && state.passkeys.is_some(),
        ..MfaSection::default()
    })
}

/// The answer of the section's forms: the whole security page (which embeds the section),
/// the section changed by `change`.
async fn render(
    state: &AppState,
    auth: &RequestAuth,
    headers: &HeaderMap,
    status: StatusCode,
    change: impl FnOnce(&mut MfaSection),
) -> Result<Response, PageError> {
    let (ctx, user, session) = signed_in(state, auth).await?;
    let mut page = SecurityPage::load(state, auth, headers, ctx.layout, &user, &session).await?;
    change(&mut page.mfa);
    Ok((status, page).into_response())
}

/// `GET /account/security/mfa`: the TOTP and recovery-code section on a page of its own.
pub async fn security_mfa(
    State(state): State<AppState>,
    auth: RequestAuth,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let (ctx, user, session) = signed_in(&state, &auth).await?;
    let mfa = mfa_section(&state, &auth, &headers, &user, &session).await?;
    Ok(MfaPage {
        layout: ctx.layout,
        mfa,
    }
    .into_response())
}

/// The signed-in user of a sensitive form of the section whose session authenticated
/// recently ([`RecentAuth`](ringfence_axum::RecentAuth) for pages). Otherwise the section
/// again with the re-authentication form (`403`), or the sign-in page when signed out; taken
/// before the form, so nothing of it is read for a session that may not act. It also comes
/// before the form's `_csrf` check ([`CsrfForm`] reads the body, so it goes last): a session
/// that may not act gets this refusal whatever token it sent; nothing changes either way.
pub struct RecentPageUser(User);

impl FromRequestParts<AppState> for RecentPageUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let auth = RequestAuth::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let refused = |e: PageError| e.into_response();
        let (_, user, session) = signed_in(state, &auth).await.map_err(refused)?;
        if auth
            .is_recently_authenticated(&session, &parts.headers)
            .await
        {
            return Ok(RecentPageUser(user));
        }
        Err(
            render(state, &auth, &parts.headers, StatusCode::FORBIDDEN, |m| {
                m.error = Some("Please confirm it is you first.".to_owned())
            })
            .await
            .unwrap_or_else(refused),
        )
    }
}

fn failure(error: AccountError) -> (StatusCode, String) {
    let api = ApiError::from(error);
    (api.status(), api.message().to_owned())
}

/// `POST /account/security/reauth`: the password or a code; the section's forms open.
pub async fn reauth(
    State(state): State<AppState>,
    auth: RequestAuth,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Result<Response, PageError> {
    let (_, user, session) = signed_in(&state, &auth).await?;
    let accounts = state.ringfence.accounts();
    let ip = auth.client().ip.clone();
    let result = if !form.password.is_empty() {
        match accounts.users().by_id(&user.id).await {
            Ok(Some(record)) => accounts
                .check_current_password(&record, &form.password, ip.as_deref())
                .await
                .and_then(|right| right.then_some(()).ok_or(AccountError::InvalidCredentials)),
            Ok(None) => Err(AccountError::UserNotFound),
            Err(e) => Err(e.into()),
        }
    } else {
        accounts
            .verify_second_factor(
                &user,
                SecondFactorCode::either(form.code.trim()),
                ip.as_deref(),
            )
            .await
    };
    match result {
        Ok(()) => {
            auth.mark_recently_authenticated(&session)?;
            Ok(Redirect::to("/account/security#two-factor").into_response())
        }
        Err(error) => {
            let (status, message) = failure(error);
            render(&state, &auth, &headers, status, |m| m.error = Some(message)).await
        }
    }
}

/// `POST /account/security/totp/setup`: shows the QR code and the secret.
pub async fn totp_setup(
    RecentPageUser(user): RecentPageUser,
    State(state): State<AppState>,
    auth: RequestAuth,
    headers: HeaderMap,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Result<Response, PageError> {
    let setup = state
        .ringfence
        .accounts()
        .begin_totp_setup(&user, TOTP_ISSUER)
        .await?;
    render(&state, &auth, &headers, StatusCode::OK, |m| {
        m.setup = Some(setup_view(setup))
    })
    .await
}

/// `POST /account/security/totp/confirm`: a code turns TOTP on; the recovery codes are shown.
pub async fn totp_confirm(
    State(state): State<AppState>,
    auth: RequestAuth,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Result<Response, PageError> {
    let (_, user, _) = signed_in(&state, &auth).await?;
    let accounts = state.ringfence.accounts();
    match accounts
        .confirm_totp(&user, form.code.trim(), auth.client().ip.as_deref())
        .await
    {
        Ok(codes) => {
            render(&state, &auth, &headers, StatusCode::OK, |m| {
                m.recovery_codes = codes;
                m.notice = Some("The authenticator app is on.".to_owned());
            })
            .await
        }
        Err(error) => {
            let setup = accounts.pending_totp_setup(&user, TOTP_ISSUER).await?;
            let (status, message) = failure(error);
            render(&state, &auth, &headers, status, |m| {
                m.setup = setup.map(setup_view);
                m.error = Some(message);
            })
            .await
        }
    }
}

/// `POST /account/security/totp/disable`.
pub async fn totp_disable(
    RecentPageUser(user): RecentPageUser,
    State(state): State<AppState>,
    auth: RequestAuth,
    headers: HeaderMap,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Result<Response, PageError> {
    state.ringfence.accounts().disable_totp(&user).await?;
    render(&state, &auth, &headers, StatusCode::OK, |m| {
        m.notice =
            Some("The authenticator app is off; the recovery codes no longer work.".to_owned())
    })
    .await
}

/// `POST /account/security/recovery-codes`: a new set, shown once.
pub async fn recovery_codes(
    RecentPageUser(user): RecentPageUser,
    State(state): State<AppState>,
    auth: RequestAuth,
    headers: HeaderMap,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Result<Response, PageError> {
    match state.ringfence.accounts().new_recovery_codes(&user).await {
        Ok(codes) => {
            render(&state, &auth, &headers, StatusCode::OK, |m| {
                m.recovery_codes = codes
            })
            .await
        }
        Err(error) => {
            let (status, message) = failure(error);
            render(&state, &auth, &headers, status, |m| m.error = Some(message)).await
        }
    }
}
