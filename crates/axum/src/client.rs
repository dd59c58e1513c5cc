//! Who is calling: the client address (believing `X-Forwarded-For` only from trusted proxies)
//! and whether the request came over HTTPS.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use ipnet::IpNet;
use ringfence_sessions::ClientInfo;

/// The proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// No trusted proxies: forwarded headers are ignored.
    pub fn none() -> Self {
        Self::default()
    }

    /// Trusts these networks.
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    /// Parses CIDRs or plain addresses ("10.0.0.0/8", "127.0.0.1").
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, String> {
        items
            .iter()
            .map(|item| {
                let text = item.as_ref().trim();
                text.parse::<IpNet>()
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("not an IP network (CIDR) or address: {text:?}"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }
}

/// The client as seen through trusted proxies: (address, came over HTTPS).
///
/// HTTPS is known only from a trusted proxy's `X-Forwarded-Proto` (ringfence itself listens
/// in plain HTTP behind a TLS-terminating proxy); never from the request line, which the client
/// writes.
///
/// The address is the TCP peer unless the peer is a trusted proxy; then it is the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy (entries further left are
/// client-supplied and could be forged).
pub fn client_info(parts: &Parts, trusted: &TrustedProxies) -> (ClientInfo, bool) {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let from_proxy = peer.is_some_and(|ip| trusted.contains(&ip));
    let mut ip = peer;
    let mut secure = false;
    if from_proxy {
        let forwarded: Vec<IpAddr> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|item| item.trim().parse::<IpAddr>().ok())
            .collect();
        if let Some(client) = forwarded.iter().rev().find(|addr| !trusted.contains(addr)) {
            ip = Some(*client);
        } else if let Some(first) = forwarded.first() {
            ip = Some(*first);
        }
        secure = parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    }
    // Not `parts.uri.scheme_str()`: an absolute-form request line (`GET https://host/ HTTP/1.1`)
    // is the client's say-so, sent over whatever connection it likes.
    let user_agent = parts
        .headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (
        ClientInfo {
            ip: ip.map(|ip| ip.to_string()),
            user_agent,
        },
        secure,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(peer: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = Request::builder().uri("/");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let (mut parts, ()) = builder.body(()).unwrap().into_parts();
        parts
            .extensions
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        parts
    }

    #[test]
    fn forwarded_headers_ignored_from_untrusted_peers() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        let (info, secure) = client_info(
            &parts(
                "203.0.113.9:5000",
                &[
                    ("x-forwarded-for", "1.2.3.4"),
                    ("x-forwarded-proto", "https"),
                ],
            ),
            &trusted,
        );
        assert_eq!(info.ip.as_deref(), Some("203.0.113.9"));
        assert!(!secure);
    }

    #[test]
    fn rightmost_untrusted_forwarded_address_from_trusted_peer() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8", "127.0.0.1"]).unwrap();
        let (info, secure) = client_info(
            &parts(
                "127.0.0.1:5000",
                &[
                    ("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.2.3"),
                    ("x-forwarded-proto", "https"),
                ],
            ),
            &trusted,
        );
        assert_eq!(info.ip.as_deref(), Some("198.51.100.7"));
        assert!(secure);
    }

    #[test]
    fn finding_08_absolute_form_https_request_line_is_not_https() {
        let trusted = TrustedProxies::none();
        let (mut parts, ()) = Request::builder()
            .uri("https://victim.example/login")
            .body(())
            .unwrap()
            .into_parts();
        parts.extensions.insert(ConnectInfo(
            "203.0.113.9:5000".parse::<SocketAddr>().unwrap(),
        ));
        assert!(!client_info(&parts, &trusted).1);
    }

    #[test]
    fn garbage_forwarded_values_are_ignored() {
        let trusted = TrustedProxies::parse(&["127.0.0.1"]).unwrap();
        let (info, _) = client_info(
            &parts("127.0.0.1:1", &[("x-forwarded-for", "not-an-ip, <script>")]),
            &trusted,
        );
        assert_eq!(info.ip.as_deref(), Some("127.0.0.1"));
        assert!(TrustedProxies::parse(&["nonsense"]).is_err());
    }
}
