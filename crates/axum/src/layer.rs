//! [`Ringfence`] (the services) and [`RingfenceLayer`] (the tower layer).

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::Request;
use axum::response::Response;
use futures_util::future::BoxFuture;
use ringfence_accounts::Accounts;
use ringfence_keyring::KeyRing;
use ringfence_sessions::SessionManager;
use tower::{Layer, Service};

use crate::auth::RequestAuth;
use crate::client::{client_info, TrustedProxies};
use crate::cookies::{self, CSRF_COOKIE, SESSION_COOKIE};
use crate::csrf::Antiforgery;
use crate::public_url::PublicUrl;
use crate::recent::StepUpSettings;

#[derive(Clone)]
struct Inner {
    keyring: KeyRing,
    sessions: SessionManager,
    accounts: Accounts,
    antiforgery: Antiforgery,
    trusted_proxies: TrustedProxies,
    public_url: Option<PublicUrl>,
    step_up: StepUpSettings,
    /// Built by [`Ringfence::builder`]: a request without the client's address (the app was
    /// not served with `ConnectInfo`) is refused rather than throttled as one shared client.
    require_client_address: bool,
}

/// The ringfence services an app runs with: key ring, sessions, accounts, antiforgery. Cheap to
/// clone. Install [`Ringfence::layer`] on the router.
#[derive(Clone)]
pub struct Ringfence {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Ringfence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ringfence").finish_non_exhaustive()
    }
}

impl Ringfence {
    /// Ringfence over these services, believing no forwarded headers.
    pub fn new(keyring: KeyRing, sessions: SessionManager, accounts: Accounts) -> Self {
        Self::with_trusted_proxies(keyring, sessions, accounts, TrustedProxies::none())
    }

    /// Ringfence believing `X-Forwarded-For` / `-Proto` from `trusted_proxies`.
    pub fn with_trusted_proxies(
        keyring: KeyRing,
        sessions: SessionManager,
        accounts: Accounts,
        trusted_proxies: TrustedProxies,
    ) -> Self {
        let antiforgery = Antiforgery::new(&keyring);
        Self {
            inner: Arc::new(Inner {
                keyring,
                sessions,
                accounts,
                antiforgery,
                trusted_proxies,
                public_url: None,
                step_up: StepUpSettings::default(),
                require_client_address: false,
            }),
        }
    }

    /// The same services, with users reaching the app at `public_url`: the base of the links
    /// the app builds ([`Ringfence::public_url`]). An `https://` URL makes every cookie `Secure`
    /// (and `__Host-` named) whatever the connection from the proxy says.
    pub fn with_public_url(self, public_url: PublicUrl) -> Self {
        self.rebuilt(|inner| inner.public_url = Some(public_url))
    }

    /// The same services with other recent-authentication and second-factor settings
    /// ([`StepUpSettings`]: `--reauth-window`, `--require-mfa-for-admins`).
    pub fn with_step_up(self, step_up: StepUpSettings) -> Self {
        self.rebuilt(|inner| inner.step_up = step_up)
    }

    /// The same services refusing requests that come without the client's address.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn requiring_client_address(self) -> Self {
        self.rebuilt(|inner| inner.require_client_address = true)
    }

    /// The recent-authentication and second-factor settings.
    pub fn step_up(&self) -> &StepUpSettings {
        &self.inner.step_up
    }

    fn rebuilt(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Inner::clone(&self.inner);
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Where users reach the app, when configured ([`Ringfence::with_public_url`]).
    pub fn public_url(&self) -> Option<&PublicUrl> {
        self.inner.public_url.as_ref()
    }

    /// The proxies whose forwarded headers are believed.
    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.inner.trusted_proxies
    }

    /// The tower layer to put on a router.
    pub fn layer(&self) -> RingfenceLayer {
        RingfenceLayer {
            ringfence: self.clone(),
        }
    }

    /// The key ring.
    pub fn keyring(&self) -> &KeyRing {
        &self.inner.keyring
    }

    /// The session manager.
    pub fn sessions(&self) -> &SessionManager {
        &self.inner.sessions
    }

    /// The accounts service.
    pub fn accounts(&self) -> &Accounts {
        &self.inner.accounts
    }

    pub(crate) fn antiforgery(&self) -> &Antiforgery {
        &self.inner.antiforgery
    }

    /// Resolves the request's cookies into a [`RequestAuth`]: at most one session-store read.
    async fn authenticate(&self, parts: &axum::http::request::Parts) -> (RequestAuth, bool) {
        let (client, over_https) = client_info(parts, &self.inner.trusted_proxies);
        // Users reach an https:// public URL over TLS whatever the hop from the proxy was.
        let secure = over_https
            || self
                .inner
                .public_url
                .as_ref()
                .is_some_and(PublicUrl::is_https);
        let [session_cookie, anon_cookie, pending_cookie] = cookies::read(
            &parts.headers,
            [SESSION_COOKIE, CSRF_COOKIE, crate::pending::PENDING_COOKIE],
            secure,
        );
        let state = match session_cookie {
            None => crate::SessionState::Anonymous,
            Some(value) => RequestAuth::state_from(self.inner.sessions.resolve(value).await),
        };
        let anon = match anon_cookie {
            Some(value) => self.inner.antiforgery.read_anon_cookie(value).await,
            None => None,
        };
        (
            RequestAuth::new(
                self.clone(),
                client,
                secure,
                state,
                anon,
                pending_cookie.is_some(),
            ),
            session_cookie.is_some(),
        )
    }
}

/// Tower layer that authenticates every request (see the crate docs).
#[derive(Clone, Debug)]
pub struct RingfenceLayer {
    ringfence: Ringfence,
}

impl<S> Layer<S> for RingfenceLayer {
    type Service = RingfenceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RingfenceService {
            inner,
            ringfence: self.ringfence.clone(),
        }
    }
}

/// The service [`RingfenceLayer`] wraps around an app.
#[derive(Clone, Debug)]
pub struct RingfenceService<S> {
    inner: S,
    ringfence: Ringfence,
}

impl<S> Service<Request<Body>> for RingfenceService<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The clone that was polled ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let ringfence = self.ringfence.clone();
        Box::pin(async move {
            if ringfence.inner.require_client_address
                && request
                    .extensions()
                    .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                    .is_none()
            {
                return Ok(missing_client_address());
            }
            let (mut parts, body) = request.into_parts();
            let (auth, had_session_cookie) = ringfence.authenticate(&parts).await;
            parts.extensions.insert(auth.clone());
            let mut response = inner.call(Request::from_parts(parts, body)).await?;
            auth.finish(&mut response, had_session_cookie);
            if ringfence.public_url().is_some_and(PublicUrl::is_https) {
                // Users reach the app over HTTPS only: browsers should never try plain HTTP.
                response
                    .headers_mut()
                    .entry(axum::http::header::STRICT_TRANSPORT_SECURITY)
                    .or_insert(axum::http::HeaderValue::from_static(
                        crate::public_url::STRICT_TRANSPORT_SECURITY,
                    ));
            }
            Ok(response)
        })
    }
}

/// The answer when the app was served without `ConnectInfo`: a wiring mistake of the app, said
/// plainly in the log and the response, instead of throttling every client as one address.
fn missing_client_address() -> Response {
    const WHY: &str = "the app is served without the client's address: serve it with \
        ringfence_axum::serve, or axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())";
    static LOGGED: std::sync::Once = std::sync::Once::new();
    LOGGED.call_once(|| tracing::error!("{WHY}"));
    crate::error::error_response(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "misconfigured",
        WHY,
    )
}
