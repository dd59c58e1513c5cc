//! [`RequestAuth`]: the per-request view of who is calling, and the actions that change it.

use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderValue};
use axum::response::Response;
use ringfence_sessions::{ClientInfo, ResolveError, Session, SessionManager};

use crate::cookies::{self, CSRF_COOKIE, SESSION_COOKIE};
use crate::csrf::{Antiforgery, ANON_LEN};
use crate::error::AuthError;
use crate::layer::Ringfence;

/// What the session cookie of a request amounted to.
#[derive(Debug, Clone)]
pub enum SessionState {
    /// No session cookie.
    Anonymous,
    /// A valid session.
    Active(Session),
    /// A cookie that no longer (or never) named a valid session: tampered, revoked, expired.
    /// The layer deletes the stale cookie in the response.
    Ended,
    /// The session store did not answer; the cookie is kept and requests that need a session
    /// answer `503`.
    Unavailable(String),
}

#[derive(Default)]
struct Mutable {
    state: Option<SessionState>,
    set_cookies: Vec<HeaderValue>,
    anon_secret: Option<[u8; ANON_LEN]>,
    anon_cookie_valid: bool,
    session_cookie_written: bool,
    /// The request carried a pending sign-in cookie that no response has cleared yet.
    pending_cookie: bool,
}

/// The per-request authentication context the [`crate::RingfenceLayer`] puts into request
/// extensions. Extract it in a handler to read the session, sign in or out, and make or check
/// antiforgery tokens; the layer writes any cookies these produce into the response.
#[derive(Clone)]
pub struct RequestAuth {
    ringfence: Ringfence,
    client: Arc<ClientInfo>,
    secure: bool,
    mutable: Arc<Mutex<Mutable>>,
}

impl std::fmt::Debug for RequestAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestAuth")
            .field("client", &self.client)
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

impl RequestAuth {
    pub(crate) fn new(
        ringfence: Ringfence,
        client: ClientInfo,
        secure: bool,
        state: SessionState,
        anon_secret: Option<[u8; ANON_LEN]>,
        pending_cookie: bool,
    ) -> Self {
        Self {
            ringfence,
            client: Arc::new(client),
            secure,
            mutable: Arc::new(Mutex::new(Mutable {
                state: Some(state),
                anon_cookie_valid: anon_secret.is_some(),
                anon_secret,
                pending_cookie,
                ..Mutable::default()
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Mutable> {
        self.mutable.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The ringfence services this request runs under.
    pub fn ringfence(&self) -> &Ringfence {
        &self.ringfence
    }

    /// The client: address (through trusted proxies) and User-Agent.
    pub fn client(&self) -> &ClientInfo {
        &self.client
    }

    /// Whether the request came over HTTPS (directly or via a trusted proxy).
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The raw session state.
    pub fn state(&self) -> SessionState {
        self.lock().state.clone().unwrap_or(SessionState::Anonymous)
    }

    /// The session, if signed in; `Err(Unavailable)` when the store could not be asked, so a
    /// caller never mistakes an outage for a sign-out.
    pub fn session(&self) -> Result<Option<Session>, AuthError> {
        match self.state() {
            SessionState::Active(session) => Ok(Some(session)),
            SessionState::Anonymous | SessionState::Ended => Ok(None),
            SessionState::Unavailable(detail) => Err(AuthError::Unavailable(detail)),
        }
    }

    /// The session, or `Unauthenticated`.
    pub fn require_session(&self) -> Result<Session, AuthError> {
        self.session()?.ok_or(AuthError::Unauthenticated)
    }

    fn sessions(&self) -> &SessionManager {
        self.ringfence.sessions()
    }

    /// Signs `user_id` in: ends the current session if there is one (a new session id at every
    /// sign-in, so a planted id is worthless), starts a new one and sets its cookie. A pending
    /// two-step sign-in this browser had is over too: its cookie is cleared, so a passkey
    /// ceremony started later is not scoped to that stale account.
    pub async fn sign_in(&self, user_id: &str) -> Result<Session, AuthError> {
        if let Ok(Some(old)) = self.session() {
            self.sessions()
                .end(&old)
                .await
                .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        }
        let started = self
            .sessions()
            .start(user_id, &self.client)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        let max_age = self.sessions().config().absolute_timeout;
        self.end_pending_sign_in();
        let mut m = self.lock();
        m.state = Some(SessionState::Active(started.session.clone()));
        m.session_cookie_written = true;
        m.set_cookies.extend(cookies::set(
            SESSION_COOKIE,
            &started.cookie_value,
            self.secure,
            Some(max_age),
        ));
        Ok(started.session)
    }

    /// Signs out: deletes the session on the server (so every node refuses it at once) and
    /// clears the cookie, and the pending sign-in cookie with it (signing out abandons a
    /// half-finished two-step sign-in too). Signing out without a session is not an error.
    pub async fn sign_out(&self) -> Result<(), AuthError> {
        if let Some(session) = self.session()? {
            self.sessions()
                .end(&session)
                .await
                .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        }
        self.end_pending_sign_in();
        let mut m = self.lock();
        m.state = Some(SessionState::Ended);
        m.session_cookie_written = true;
        m.set_cookies
            .extend(cookies::clear(SESSION_COOKIE, self.secure));
        Ok(())
    }

    /// Clears the pending sign-in cookie if the request carried one (a sign-in or sign-out
    /// ends a half-finished two-step sign-in); adds no header otherwise.
    fn end_pending_sign_in(&self) {
        let had = std::mem::take(&mut self.lock().pending_cookie);
        if had {
            self.clear_pending_sign_in();
        }
    }

    /// An antiforgery token for this requester, for a form's `_csrf` field or the
    /// `X-CSRF-Token` header. Before sign-in this also sets the antiforgery cookie.
    pub fn csrf_token(&self) -> Result<String, AuthError> {
        let csrf: &Antiforgery = self.ringfence.antiforgery();
        let mut m = self.lock();
        // Borrowed under the lock: this runs on every page and `/me`, no copy of the session.
        if let Some(SessionState::Active(session)) = &m.state {
            return csrf
                .session_token(&session.id)
                .map_err(|_| AuthError::NoKey);
        }
        let secret = match m.anon_secret {
            Some(secret) => secret,
            None => {
                let secret = Antiforgery::new_anon_secret();
                m.anon_secret = Some(secret);
                secret
            }
        };
        if !m.anon_cookie_valid {
            let cookie = csrf.anon_cookie(&secret).map_err(|_| AuthError::NoKey)?;
            m.set_cookies
                .extend(cookies::set(CSRF_COOKIE, &cookie, self.secure, None));
            m.anon_cookie_valid = true;
        }
        drop(m);
        csrf.anon_token(&secret).map_err(|_| AuthError::NoKey)
    }

    /// Checks an antiforgery token (`None` = missing) against this requester.
    pub async fn verify_csrf(&self, token: Option<&str>) -> Result<(), AuthError> {
        let Some(token) = token else {
            return Err(AuthError::Csrf);
        };
        let session = self.session()?;
        let anon = self.lock().anon_secret;
        let ok = self
            .ringfence
            .antiforgery()
            .verify(token, session.as_ref().map(|s| &s.id), anon.as_ref())
            .await;
        if ok {
            Ok(())
        } else {
            Err(AuthError::Csrf)
        }
    }

    /// Queues a `Set-Cookie` for the response (`None`: a value that could not be a header).
    pub(crate) fn add_cookie(&self, cookie: Option<HeaderValue>) {
        self.lock().set_cookies.extend(cookie);
    }

    /// Adds the cookies this request produced to its response; deletes a stale session cookie.
    pub(crate) fn finish(&self, response: &mut Response, had_session_cookie: bool) {
        let m = self.lock();
        let headers = response.headers_mut();
        for value in &m.set_cookies {
            headers.append(header::SET_COOKIE, value.clone());
        }
        let stale = matches!(m.state, Some(SessionState::Ended)) && had_session_cookie;
        if stale && !m.session_cookie_written {
            if let Some(value) = cookies::clear(SESSION_COOKIE, self.secure) {
                headers.append(header::SET_COOKIE, value);
            }
        }
    }

    pub(crate) fn state_from(result: Result<Session, ResolveError>) -> SessionState {
        match result {
            Ok(session) => SessionState::Active(session),
            Err(ResolveError::Store(error)) => SessionState::Unavailable(error.to_string()),
            Err(_) => SessionState::Ended,
        }
    }
}
