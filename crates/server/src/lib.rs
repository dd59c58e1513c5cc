//! The ready ringfence server: pages, the JSON API, health, readiness and metrics, on top of
//! [`ringfence_axum`]. The `ringfence` binary only parses configuration, wires stores and calls
//! [`serve`].
//!
//! Routes are fixed by the project's contract (`CONTRACT.md`): see [`router`].

#![deny(missing_docs)]

mod account_api;
mod admin_users_api;
mod api;
mod api_mfa;
mod api_passkeys;
mod body;
mod connections;
mod errors;
pub mod mail;
pub mod openapi;
mod ops;
mod pages;
mod pages_mfa;
mod pages_passkeys;
mod state;
mod views;

use std::future::Future;

use axum::extract::DefaultBodyLimit;
use axum::http::HeaderValue;
use axum::routing::{delete, get, post};
use axum::Router;
use tower::ServiceBuilder;

pub use connections::ServeOptions;
pub use ringfence_axum::PublicUrl;
pub use state::{AppState, Readiness};

/// Largest request body accepted (forms and JSON are tiny; anything bigger is refused `413`).
pub const BODY_LIMIT: usize = 64 * 1024;

/// Every route of the contract, with the ringfence layer, body limit and common headers.
/// `/metrics` answers only clients connected directly from loopback (see [`Server`] for a
/// separate metrics listener).
pub fn router(state: AppState) -> Router {
    routes(state, true)
}

/// The routes, with `/metrics` (loopback-only) or without it (served on its own listener).
fn routes(state: AppState, with_metrics: bool) -> Router {
    let ringfence = state.ringfence.clone();
    let app = Router::new()
        .route("/", get(pages::home))
        .route("/register", get(pages::register_form).post(pages::register))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/account/sessions", get(pages::sessions))
        .route(
            "/account/sessions/revoke-others",
            post(pages::revoke_others),
        )
        .route("/account/sessions/{id}/revoke", post(pages::revoke))
        .route(
            "/account/password",
            get(pages::security).post(pages::change_password),
        )
        .route(
            "/login/mfa",
            get(pages_mfa::login_mfa_form).post(pages_mfa::login_mfa),
        )
        .route("/account/security/mfa", get(pages_mfa::security_mfa))
        .route("/account/security/reauth", post(pages_mfa::reauth))
        .route("/account/security/totp/setup", post(pages_mfa::totp_setup))
        .route(
            "/account/security/totp/confirm",
            post(pages_mfa::totp_confirm),
        )
        .route(
            "/account/security/totp/disable",
            post(pages_mfa::totp_disable),
        )
        .route(
            "/account/security/recovery-codes",
            post(pages_mfa::recovery_codes),
        )
        .route("/admin", get(pages::admin))
        .merge(issue_14_pages())
        .route("/static/style.css", get(pages::stylesheet))
        .route("/api/v1/register", post(api::register))
        .route("/api/v1/login", post(api::login))
        .route("/api/v1/logout", post(api::logout))
        .route("/api/v1/me", get(api::me))
        .route("/api/v1/sessions", get(api::sessions))
        .route("/api/v1/sessions/revoke-others", post(api::revoke_others))
        .route("/api/v1/sessions/{id}", delete(api::revoke))
        .route("/api/v1/password", post(api::change_password))
        .route("/api/v1/reauth", post(api_mfa::reauth))
        .route("/api/v1/mfa/totp/setup", post(api_mfa::totp_setup))
        .route("/api/v1/mfa/totp/confirm", post(api_mfa::totp_confirm))
        .route("/api/v1/mfa/totp", delete(api_mfa::totp_delete))
        .route("/api/v1/mfa/recovery-codes", post(api_mfa::recovery_codes))
        .route("/api/v1/login/mfa", post(api_mfa::login_mfa))
        .route("/api/v1/passkeys", get(api_passkeys::list))
        .route(
            "/api/v1/passkeys/register/start",
            post(api_passkeys::register_start),
        )
        .route(
            "/api/v1/passkeys/register/finish",
            post(api_passkeys::register_finish),
        )
        .route(
            "/api/v1/passkeys/login/start",
            post(api_passkeys::login_start),
        )
        .route(
            "/api/v1/passkeys/login/finish",
            post(api_passkeys::login_finish),
        )
        .route(
            "/api/v1/passkeys/{id}",
            delete(api_passkeys::delete).patch(api_passkeys::rename),
        )
        .route("/static/passkeys.js", get(api_passkeys::script))
        .route("/account/passkeys", get(pages_passkeys::passkeys))
        .route("/api/v1/admin/stats", get(api::admin_stats))
        .route("/api/v1/admin/revoke-user", post(api::admin_revoke_user))
        .route(
            "/api/v1/password/forgot",
            post(account_api::forgot_password),
        )
        .route("/api/v1/password/reset", post(account_api::reset_password))
        .route("/api/v1/email/verify", post(account_api::verify_email))
        .route(
            "/api/v1/email/verification",
            post(account_api::resend_verification),
        )
        .route(
            "/api/v1/email/change",
            post(account_api::request_email_change),
        )
        .route(
            "/api/v1/email/confirm",
            post(account_api::confirm_email_change),
        )
        .route("/api/v1/admin/users", get(admin_users_api::list_users))
        .route(
            "/api/v1/admin/users/{id}",
            delete(admin_users_api::delete_user),
        )
        .route(
            "/api/v1/admin/users/{id}/disable",
            post(admin_users_api::disable_user),
        )
        .route(
            "/api/v1/admin/users/{id}/enable",
            post(admin_users_api::enable_user),
        )
        .route(
            "/api/v1/admin/users/{id}/password-reset",
            post(admin_users_api::send_password_reset),
        )
        .route(
            "/api/v1/admin/users/{id}/password",
            post(admin_users_api::set_password),
        )
        .route("/admin/revoke-user", post(pages::admin_revoke_user))
        .route("/api/v1/openapi.json", get(openapi::document))
        .fallback(api::not_found)
        .layer(ringfence.layer())
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz));
    let app = if with_metrics {
        app.route("/metrics", get(ops::metrics_local_only))
    } else {
        app
    };
    finish(app, state)
}

/// The pages of account recovery and control (issue 14): mail links, `/account/security`, and
/// the admin page's actions on one account.
fn issue_14_pages() -> Router<AppState> {
    Router::new()
        .route(
            "/forgot-password",
            get(pages::forgot_password_form).post(pages::forgot_password),
        )
        .route(
            "/reset-password",
            get(pages::reset_password_form).post(pages::reset_password),
        )
        .route(
            "/verify-email",
            get(pages::verify_email_form).post(pages::verify_email),
        )
        .route(
            "/confirm-email",
            get(pages::confirm_email_form).post(pages::confirm_email),
        )
        .route("/account/security", get(pages::security))
        .route("/account/security/password", post(pages::change_password))
        .route("/account/security/email", post(pages::change_email))
        .route(
            "/account/security/verification",
            post(pages::resend_verification),
        )
        .route("/admin/users/{id}/disable", post(pages::admin_disable_user))
        .route("/admin/users/{id}/enable", post(pages::admin_enable_user))
        .route("/admin/users/{id}/delete", post(pages::admin_delete_user))
        .route(
            "/admin/users/{id}/password",
            post(pages::admin_set_password),
        )
        .route(
            "/admin/users/{id}/password-reset",
            post(pages::admin_send_password_reset),
        )
        .route(
            "/admin/users/{id}/sessions/{session}/revoke",
            post(pages::admin_revoke_session),
        )
}

/// The router of a separate metrics listener (`--metrics-listen`): `/metrics` for anyone who
/// reaches that address, nothing else.
pub fn metrics_router(state: AppState) -> Router {
    let app = Router::new()
        .route("/metrics", get(ops::metrics))
        .fallback(api::not_found);
    finish(app, state)
}

/// The layers every router gets: body limit, request accounting and the common headers.
fn finish(app: Router<AppState>, state: AppState) -> Router {
    let node =
        HeaderValue::from_str(&state.node_name).unwrap_or(HeaderValue::from_static("ringfence"));
    let https = state.public_url().is_some_and(PublicUrl::is_https);
    // One composite layer: every `Router::layer` call wraps each route in another boxed
    // service that axum clones per request. `finish_requests` sits inside the router (a
    // route layer, not around the router) because it reads the `MatchedPath` set per route.
    app.layer(
        ServiceBuilder::new()
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .layer(axum::middleware::from_fn_with_state(
                ops::common_headers(node, https),
                ops::finish_requests,
            )),
    )
    .with_state(state)
}

/// Serves `router(state)` on `listener` with the default [`ServeOptions`] but no drain delay
/// until `shutdown` resolves, then stops accepting and finishes requests in flight. Readiness
/// turns `503` as soon as `shutdown` resolves. See [`Server`] for the rest.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    Server::new(listener)
        .options(ServeOptions {
            drain_delay: std::time::Duration::ZERO,
            ..ServeOptions::default()
        })
        .run(state, Box::pin(futures_util::stream::once(shutdown)))
        .await
}

/// The server: listeners and [`ServeOptions`]. `Server::new(listener).run(state, stops)`.
#[derive(Debug)]
pub struct Server {
    listener: tokio::net::TcpListener,
    metrics_listener: Option<tokio::net::TcpListener>,
    options: ServeOptions,
}

impl Server {
    /// Serves on `listener` with the default [`ServeOptions`].
    pub fn new(listener: tokio::net::TcpListener) -> Self {
        Self {
            listener,
            metrics_listener: None,
            options: ServeOptions::default(),
        }
    }

    /// Serves `/metrics` on `listener` (to anyone who reaches it), and no longer on the main
    /// listener.
    pub fn metrics_listener(mut self, listener: tokio::net::TcpListener) -> Self {
        self.metrics_listener = Some(listener);
        self
    }

    /// Timeouts, connection cap, drain delay.
    pub fn options(mut self, options: ServeOptions) -> Self {
        self.options = options;
        self
    }

    /// Serves until `stops` yields or ends (SIGTERM, say), then drains: readiness turns `503`
    /// at once, the server keeps accepting and serving for [`ServeOptions::drain_delay`] (a
    /// second item of `stops` cuts it short), then stops accepting, lets requests in flight
    /// finish, closes idle keep-alive connections and returns.
    pub async fn run(
        self,
        state: AppState,
        stops: impl futures_util::Stream<Item = ()> + Send + Unpin,
    ) -> std::io::Result<()> {
        let readiness = state.readiness.clone();
        let upkeep = state.metrics.clone().map(spawn_metrics_upkeep);
        let main = routes(state.clone(), self.metrics_listener.is_none());
        let metrics = self
            .metrics_listener
            .map(|listener| (listener, metrics_router(state)));
        let served = connections::run(
            (self.listener, main),
            metrics,
            readiness,
            self.options,
            stops,
        )
        .await;
        if let Some(upkeep) = upkeep {
            upkeep.abort();
        }
        served
    }
}

/// How often the metrics recorder's histograms are drained (the exporter's own default).
pub const METRICS_UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Drains the recorder's histogram samples every [`METRICS_UPKEEP_INTERVAL`].
///
/// A recorder installed with `PrometheusBuilder::install_recorder` (no HTTP listener of its own)
/// leaves upkeep to the caller: without it every observation of a histogram (one per request
/// here) stays queued until the next scrape, so memory grows with traffic on a node nobody
/// scrapes, and the first scrape pays for all of it at once. [`serve`] runs this for the handle
/// in its state; an app that renders the handle itself should too.
pub fn spawn_metrics_upkeep(
    handle: metrics_exporter_prometheus::PrometheusHandle,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    })
}

// The README's Rust blocks compile as doctests, so what a reader of crates.io copies works.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}
