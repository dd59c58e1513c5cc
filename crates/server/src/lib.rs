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
use axum::http::{header, HeaderName, HeaderValue};
use axum::routing::{delete, get, post};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;

pub use state::{AppState, Readiness};

/// Largest request body accepted (forms and JSON are tiny; anything bigger is refused `413`).
pub const BODY_LIMIT: usize = 64 * 1024;

/// The content security policy of every page: no inline scripts, no framing, forms only to us.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

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
        // service that axum clones per request, so eight separate calls cost eight nested
        // clones on every request (about a third of `/healthz`). `track_requests` sits inside:
        // it reads the `MatchedPath` the router sets per route.
        .layer(
            ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::X_FRAME_OPTIONS,
                    HeaderValue::from_static("DENY"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("same-origin"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(CSP),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    HeaderName::from_static("x-ringfence-node"),
                    node,
                ))
                .layer(DefaultBodyLimit::max(BODY_LIMIT))
                .layer(axum::middleware::from_fn(ops::track_requests)),
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
    let app = router(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        readiness.start_draining();
        tracing::info!("draining: readiness is 503, finishing requests in flight");
    })
    .await
}
