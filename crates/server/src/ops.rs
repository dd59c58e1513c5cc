//! Health, readiness, metrics, request accounting.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::state::AppState;

/// How long readiness waits for each store before calling it unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// `200` while the process runs.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `200` when the stores answer and the key ring has a usable key; `503` otherwise and while
/// draining. The load balancer's health check.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let mut problems: Vec<String> = Vec::new();
    if state.readiness.is_draining() {
        problems.push("draining".to_owned());
    }
    let keyring = state.ringfence.keyring();
    if !keyring.is_ready() {
        problems.push("key ring has no usable key".to_owned());
    }
    if !keyring.store_healthy() {
        problems.push("key store unreachable".to_owned());
    }
    let sessions = tokio::time::timeout(PROBE_TIMEOUT, state.ringfence.sessions().ping());
    let users = tokio::time::timeout(PROBE_TIMEOUT, state.ringfence.accounts().users().ping());
    let (sessions, users) = tokio::join!(sessions, users);
    match sessions {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(format!("session store: {e}")),
        Err(_) => problems.push("session store: timed out".to_owned()),
    }
    match users {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(format!("user store: {e}")),
        Err(_) => problems.push("user store: timed out".to_owned()),
    }
    if problems.is_empty() {
        (
            StatusCode::OK,
            Json(json!({"status": "ready", "node": &*state.node_name})),
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "node": &*state.node_name, "problems": problems})),
        )
            .into_response()
    }
}

/// `/metrics` on the main listener (no `--metrics-listen`): only for clients connected directly
/// from loopback, since it tells user and session counts to whoever asks.
///
/// A request with `X-Forwarded-For` or `Forwarded` is refused even from a loopback peer: a proxy
/// on the same machine (HAProxy, a sidecar) forwards the whole internet from loopback, and a
/// scraper talking to the node directly sends neither header.
pub async fn metrics_local_only(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let forwarded =
        headers.contains_key("x-forwarded-for") || headers.contains_key(header::FORWARDED);
    if !peer.ip().is_loopback() || forwarded {
        return ringfence_axum::error_response(
            StatusCode::FORBIDDEN,
            "forbidden",
            "metrics are served only to clients on this machine, or on --metrics-listen",
        );
    }
    metrics(State(state)).await
}

/// Prometheus text format. Session and user counts are read at scrape time (they are O(log n)).
pub async fn metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = &state.metrics else {
        return (StatusCode::NOT_FOUND, "metrics recorder not installed\n").into_response();
    };
    if let Ok(Ok(counts)) =
        tokio::time::timeout(PROBE_TIMEOUT, state.ringfence.sessions().counts()).await
    {
        metrics::gauge!("ringfence_active_sessions").set(counts.active_sessions as f64);
        metrics::gauge!("ringfence_signed_in_users").set(counts.signed_in_users as f64);
    }
    if let Ok(Ok(users)) =
        tokio::time::timeout(PROBE_TIMEOUT, state.ringfence.accounts().count()).await
    {
        metrics::gauge!("ringfence_users").set(users as f64);
    }
    metrics::gauge!("ringfence_ready").set(
        if state.ringfence.keyring().is_ready() && !state.readiness.is_draining() {
            1.0
        } else {
            0.0
        },
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        handle.render(),
    )
        .into_response()
}

/// The headers every response carries: `(name, value, overriding)`. Handlers may set their own
/// value for the others (`Cache-Control` on the stylesheet, say). With `https` (an `https://`
/// public URL) that includes `Strict-Transport-Security`: browsers then never try plain HTTP.
pub(crate) fn common_headers(
    node: HeaderValue,
    https: bool,
) -> Arc<[(HeaderName, HeaderValue, bool)]> {
    let mut headers = vec![
        (HeaderName::from_static("x-ringfence-node"), node, true),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
            false,
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
            false,
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
            false,
        ),
        (
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
            false,
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
            false,
        ),
    ];
    if https {
        headers.push((
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(ringfence_axum::STRICT_TRANSPORT_SECURITY),
            true,
        ));
    }
    headers.into()
}

/// The method as a metrics label: one of the standard methods, or `other`. Methods are
/// client-chosen tokens; as labels they made a new series per made-up method (finding 1).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The content security policy of every page: no inline scripts, no framing, forms only to us.
const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Counts requests by route pattern and status, times them, and adds the common headers.
///
/// Every label comes from a closed set, so `/metrics` cannot grow with what clients send: the
/// route is the matched template (`/api/v1/sessions/{id}`, never the path) or `unmatched`, the
/// method one of [`method_label`]'s, the status a number below 1000.
///
/// One middleware rather than a layer per header: each layer is another boxed service and
/// future per request, and inserting the headers one by one regrew the header map several
/// times; here it is reserved once.
pub async fn finish_requests(
    State(headers): State<Arc<[(HeaderName, HeaderValue, bool)]>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let mut response = next.run(request).await;
    let map = response.headers_mut();
    map.reserve(headers.len());
    for (name, value, overriding) in headers.iter() {
        if *overriding || !map.contains_key(name) {
            map.insert(name.clone(), value.clone());
        }
    }
    let status = response.status().as_u16().to_string();
    metrics::counter!("ringfence_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("ringfence_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finding_01_methods_map_to_a_closed_set() {
        assert_eq!(method_label(&Method::GET), "GET");
        for made_up in ["FOO", "get", "X-1", "PROPFIND"] {
            let method = Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other", "{made_up}");
        }
    }
}
