//! The ready ringfence server: pages, the JSON API, health, readiness and metrics, on top of
//! [`ringfence_axum`]. The `ringfence` binary only parses configuration, wires stores and calls
//! [`serve`].
//!
//! Routes are fixed by the project's contract (`CONTRACT.md`): see [`router`].

#![deny(missing_docs)]

mod api;
mod body;
mod errors;
pub mod openapi;
mod ops;
mod pages;
mod state;
mod views;

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::DefaultBodyLimit;
use axum::http::HeaderValue;
use axum::routing::{delete, get, post};
use axum::Router;
use tower::ServiceBuilder;

pub use state::{AppState, Readiness};

/// Largest request body accepted (forms and JSON are tiny; anything bigger is refused `413`).
pub const BODY_LIMIT: usize = 64 * 1024;

/// Every route of the contract, with the ringfence layer, body limit and common headers.
pub fn router(state: AppState) -> Router {
    let node =
        HeaderValue::from_str(&state.node_name).unwrap_or(HeaderValue::from_static("ringfence"));
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
            get(pages::password_form).post(pages::change_password),
        )
        .route("/admin", get(pages::admin))
        .route("/static/style.css", get(pages::stylesheet))
        .route("/api/v1/register", post(api::register))
        .route("/api/v1/login", post(api::login))
        .route("/api/v1/logout", post(api::logout))
        .route("/api/v1/me", get(api::me))
        .route("/api/v1/sessions", get(api::sessions))
        .route("/api/v1/sessions/revoke-others", post(api::revoke_others))
        .route("/api/v1/sessions/{id}", delete(api::revoke))
        .route("/api/v1/password", post(api::change_password))
        .route("/api/v1/admin/stats", get(api::admin_stats))
        .route("/api/v1/admin/revoke-user", post(api::admin_revoke_user))
        .route("/admin/revoke-user", post(pages::admin_revoke_user))
        .route("/api/v1/openapi.json", get(openapi::document))
        .fallback(api::not_found)
        .layer(ringfence.layer())
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        // One composite layer: every `Router::layer` call wraps each route in another boxed
        // service that axum clones per request. `finish_requests` sits inside the router (a
        // route layer, not around the router) because it reads the `MatchedPath` set per route.
        .layer(
            ServiceBuilder::new()
                .layer(DefaultBodyLimit::max(BODY_LIMIT))
                .layer(axum::middleware::from_fn_with_state(
                    ops::common_headers(node),
                    ops::finish_requests,
                )),
        );
    app.with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` resolves, then finishes requests in
/// flight. Readiness turns `503` as soon as `shutdown` resolves, before the listener closes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let readiness = state.readiness.clone();
    let upkeep = state.metrics.clone().map(spawn_metrics_upkeep);
    let app = router(state);
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        readiness.start_draining();
        tracing::info!("draining: readiness is 503, finishing requests in flight");
    })
    .await;
    if let Some(upkeep) = upkeep {
        upkeep.abort();
    }
    served
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
