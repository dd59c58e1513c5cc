//! The headers every response carries, whatever answered it: a page, the API, an error, the
//! health check, a static file (which may choose its own caching).

use axum::http::StatusCode;

use crate::harness::{Backend, Deployment, Device};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let d = Deployment::single(Backend::Sqlite, None).await;
    let node = d.node(0);
    let device = Device::new(FIREFOX, "203.0.113.7");
    for (path, status, cache) in [
        ("/healthz", StatusCode::OK, "no-store"),
        ("/login", StatusCode::OK, "no-store"),
        ("/api/v1/me", StatusCode::UNAUTHORIZED, "no-store"),
        ("/no/such/page", StatusCode::NOT_FOUND, "no-store"),
        ("/static/style.css", StatusCode::OK, "public, max-age=3600"),
    ] {
        let reply = device.get(node, path).await;
        assert_eq!(reply.status, status, "{path}");
        let header = |name: &str| {
            let values: Vec<_> = reply.headers.get_all(name).iter().collect();
            assert_eq!(values.len(), 1, "{path}: one {name}, not {values:?}");
            values[0].to_str().unwrap_or_default().to_owned()
        };
        assert_eq!(header("x-ringfence-node"), reply.node(), "{path}");
        assert!(!reply.node().is_empty(), "{path}");
        assert!(
            header("content-security-policy").contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "same-origin", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("cache-control"), cache, "{path}");
    }
}
