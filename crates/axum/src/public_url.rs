//! [`PublicUrl`]: where users reach the app, configured, never read from a request.

use std::fmt;

use axum::http::Uri;

/// The `Strict-Transport-Security` value sent with an `https://` public URL: one year, what
/// browsers' preload lists ask for; no `includeSubDomains`: sibling hosts are not ours to force
/// onto HTTPS.
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";

/// The address users reach the app at (`--public-url`): the base of every link the app builds
/// (a password-reset link in a mail, say) and the scheme its cookies are made for.
///
/// Configured, never taken from a request's `Host` header: a link built from a header an
/// attacker chose would send a victim's reset token to the attacker's host.
///
/// An `https://` URL means a TLS-terminating proxy sits in front: every cookie is then `Secure`
/// (and `__Host-` named) even on the plain connection from the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// Scheme and authority, and the path without a trailing slash (`https://example.com`,
    /// `https://example.com/auth`).
    base: String,
    https: bool,
    host: String,
}

/// Why a text is not a usable public URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid public URL {text:?}: {reason}")]
pub struct PublicUrlError {
    text: String,
    reason: &'static str,
}

impl PublicUrl {
    /// Parses an absolute `http://` or `https://` URL with a host and no query, fragment or
    /// credentials. A trailing slash is dropped.
    pub fn parse(text: &str) -> Result<Self, PublicUrlError> {
        let error = |reason| PublicUrlError {
            text: text.chars().take(200).collect(),
            reason,
        };
        if text.contains('#') {
            return Err(error("a fragment (#…) is not allowed"));
        }
        if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(error("spaces and control characters are not allowed"));
        }
        let uri: Uri = text
            .parse()
            .map_err(|_| error("not a URL; use e.g. https://auth.example.com"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            Some(_) => return Err(error("the scheme must be http or https")),
            None => return Err(error("must be absolute, e.g. https://auth.example.com")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| error("must name a host, e.g. https://auth.example.com"))?;
        if authority.as_str().contains('@') {
            return Err(error("credentials (user@) are not allowed"));
        }
        if authority.host().is_empty() {
            return Err(error("must name a host, e.g. https://auth.example.com"));
        }
        if uri.query().is_some() {
            return Err(error("a query (?…) is not allowed"));
        }
        let path = uri.path().trim_end_matches('/');
        let scheme = if https { "https" } else { "http" };
        Ok(Self {
            base: format!(
                "{scheme}://{}{path}",
                authority.as_str().to_ascii_lowercase()
            ),
            https,
            host: authority.host().to_ascii_lowercase(),
        })
    }

    /// `http://localhost:PORT` for a loopback listen address, else `http://` + the address:
    /// the default when none is configured.
    pub fn for_listen_address(address: std::net::SocketAddr) -> Self {
        let authority = if address.ip().is_loopback() {
            format!("localhost:{}", address.port())
        } else {
            address.to_string()
        };
        let host = if address.ip().is_loopback() {
            "localhost".to_owned()
        } else {
            match address.ip() {
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                std::net::IpAddr::V4(ip) => ip.to_string(),
            }
        };
        Self {
            base: format!("http://{authority}"),
            https: false,
            host,
        }
    }

    /// Whether users reach the app over HTTPS.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host (lower case, IPv6 in brackets), e.g. for a passkey relying-party id.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The base, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.base
    }

    /// The URL of `path_and_query` under this base: `join("/reset-password?token=T")` gives
    /// `https://example.com/reset-password?token=T`. A missing leading slash is added.
    pub fn join(&self, path_and_query: &str) -> String {
        if path_and_query.starts_with('/') {
            format!("{}{path_and_query}", self.base)
        } else {
            format!("{}/{path_and_query}", self.base)
        }
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

impl std::str::FromStr for PublicUrl {
    type Err = PublicUrlError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_joins() {
        let url = PublicUrl::parse("https://Auth.Example.com/").unwrap();
        assert!(url.is_https());
        assert_eq!(url.host(), "auth.example.com");
        assert_eq!(
            url.join("/reset-password?token=T"),
            "https://auth.example.com/reset-password?token=T"
        );
        let nested = PublicUrl::parse("http://127.0.0.1:8080/auth/").unwrap();
        assert!(!nested.is_https());
        assert_eq!(nested.join("login"), "http://127.0.0.1:8080/auth/login");
        assert_eq!(
            PublicUrl::parse("https://[::1]:8443").unwrap().host(),
            "[::1]"
        );
    }

    #[test]
    fn refuses_what_is_not_a_base_url() {
        for bad in [
            "",
            "example.com",
            "/relative",
            "ftp://example.com",
            "https://example.com/?a=b",
            "https://example.com/#top",
            "https://user:pw@example.com",
            "https://exa mple.com",
            "https://example.com/\n",
            "https://",
        ] {
            let error = PublicUrl::parse(bad).unwrap_err().to_string();
            assert!(!error.contains('\n'), "one line: {error}");
        }
    }

    #[test]
    fn default_from_the_listen_address() {
        let local = PublicUrl::for_listen_address("127.0.0.1:8080".parse().unwrap());
        assert_eq!(local.as_str(), "http://localhost:8080");
        let wide = PublicUrl::for_listen_address("10.0.0.11:8080".parse().unwrap());
        assert_eq!(wide.as_str(), "http://10.0.0.11:8080");
        let v6 = PublicUrl::for_listen_address("[2001:db8::1]:80".parse().unwrap());
        assert_eq!(v6.as_str(), "http://[2001:db8::1]:80");
    }
}
