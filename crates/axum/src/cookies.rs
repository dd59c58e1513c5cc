//! The cookies ringfence sets: names, attributes, parsing.

use axum::http::{header, HeaderMap, HeaderValue};
use cookie::{Cookie, SameSite};

/// Base name of the session cookie (holds only a protected session reference).
pub const SESSION_COOKIE: &str = "ringfence_session";
/// Base name of the antiforgery cookie used before sign-in.
pub const CSRF_COOKIE: &str = "ringfence_csrf";

/// Longest cookie value read; anything longer is ignored before any decoding work.
const MAX_COOKIE_VALUE: usize = 4096;

/// Cookie naming: over HTTPS the `__Host-` prefix makes browsers insist on `Secure`,
/// `Path=/` and no `Domain`, so a sibling subdomain cannot plant or overwrite the cookie.
#[derive(Debug, Clone, Copy)]
pub struct CookieNames;

impl CookieNames {
    /// The name a cookie has on a secure or plain connection.
    pub fn name(base: &str, secure: bool) -> String {
        if secure {
            format!("__Host-{base}")
        } else {
            base.to_owned()
        }
    }
}

/// Reads a cookie by base name, preferring the `__Host-` form.
pub(crate) fn read(headers: &HeaderMap, base: &str) -> Option<String> {
    let host_name = CookieNames::name(base, true);
    let mut plain = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for cookie in Cookie::split_parse(text).flatten() {
            if cookie.value().len() > MAX_COOKIE_VALUE {
                continue;
            }
            if cookie.name() == host_name {
                return Some(cookie.value().to_owned());
            }
            if cookie.name() == base && plain.is_none() {
                plain = Some(cookie.value().to_owned());
            }
        }
    }
    plain
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure over HTTPS.
pub(crate) fn set(
    base: &str,
    value: &str,
    secure: bool,
    max_age: Option<chrono::Duration>,
) -> Option<HeaderValue> {
    let mut cookie = Cookie::build((CookieNames::name(base, secure), value.to_owned()))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(secure);
    if let Some(age) = max_age {
        cookie = cookie.max_age(cookie::time::Duration::seconds(age.num_seconds()));
    }
    HeaderValue::from_str(&cookie.build().to_string()).ok()
}

/// A `Set-Cookie` value that deletes the cookie.
pub(crate) fn clear(base: &str, secure: bool) -> Option<HeaderValue> {
    set(base, "", secure, Some(chrono::Duration::zero()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_secure_by_default() {
        let plain = set(SESSION_COOKIE, "v", false, None).unwrap();
        let plain = plain.to_str().unwrap();
        assert!(plain.starts_with("ringfence_session=v"));
        assert!(
            plain.contains("HttpOnly")
                && plain.contains("SameSite=Lax")
                && plain.contains("Path=/")
        );
        assert!(!plain.contains("Secure"));
        let secure = set(SESSION_COOKIE, "v", true, None).unwrap();
        let secure = secure.to_str().unwrap();
        assert!(secure.starts_with("__Host-ringfence_session=v") && secure.contains("Secure"));
    }

    #[test]
    fn reading_prefers_host_prefix_and_ignores_oversized() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("ringfence_session=a; __Host-ringfence_session=b"),
        );
        assert_eq!(read(&headers, SESSION_COOKIE).as_deref(), Some("b"));
        let big = format!("ringfence_session={}", "x".repeat(5000));
        headers.insert(header::COOKIE, HeaderValue::from_str(&big).unwrap());
        assert_eq!(read(&headers, SESSION_COOKIE), None);
        headers.insert(header::COOKIE, HeaderValue::from_static("garbage;;==;"));
        assert_eq!(read(&headers, SESSION_COOKIE), None);
    }
}
