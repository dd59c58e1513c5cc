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
            format!("{HOST_PREFIX}{base}")
        } else {
            base.to_owned()
        }
    }
}

/// Prefix that makes browsers insist on `Secure`, `Path=/` and no `Domain`.
const HOST_PREFIX: &str = "__Host-";

/// Reads cookies by base name in one pass over the `Cookie` headers, each preferring its
/// `__Host-` form, then the first plain one; with `host_only` (requests over HTTPS, where
/// ringfence only ever sets `__Host-` cookies) only the `__Host-` form counts. Values longer
/// than [`MAX_COOKIE_VALUE`] and malformed pairs are skipped.
///
/// Why `host_only`: a plain-named cookie can be planted by a sibling subdomain or over plain
/// HTTP; on HTTPS, accepting it when no `__Host-` cookie is present would let an attacker sign
/// a visitor into the attacker's own session (login CSRF).
///
/// A plain scan rather than a general cookie parser: this runs on every request and only two
/// names matter, so nothing is allocated or decoded for the others. Values are taken as sent
/// (ours are base64url), without percent-decoding; RFC 6265 double quotes around a value are
/// removed.
pub(crate) fn read<'h, const N: usize>(
    headers: &'h HeaderMap,
    bases: [&str; N],
    host_only: bool,
) -> [Option<&'h str>; N] {
    let mut host: [Option<&str>; N] = [None; N];
    let mut plain: [Option<&str>; N] = [None; N];
    for header in headers.get_all(header::COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for pair in text.split(';') {
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let name = name.trim_matches([' ', '\t']);
            let value = value.trim_matches([' ', '\t']);
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            if value.len() > MAX_COOKIE_VALUE {
                continue;
            }
            let (slots, name) = match name.strip_prefix(HOST_PREFIX) {
                Some(base) => (&mut host, base),
                None if host_only => continue,
                None => (&mut plain, name),
            };
            if let Some(i) = bases.iter().position(|base| *base == name) {
                slots[i].get_or_insert(value);
            }
        }
    }
    std::array::from_fn(|i| host[i].or(plain[i]))
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
        let read_one =
            |headers: &HeaderMap| read(headers, [SESSION_COOKIE], false)[0].map(str::to_owned);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("ringfence_session=a; __Host-ringfence_session=b"),
        );
        assert_eq!(read_one(&headers).as_deref(), Some("b"));
        let big = format!("ringfence_session={}", "x".repeat(5000));
        headers.insert(header::COOKIE, HeaderValue::from_str(&big).unwrap());
        assert_eq!(read_one(&headers), None);
        for garbage in ["garbage;;==;", "", ";", "=", "ringfence_session", "__Host-"] {
            headers.insert(header::COOKIE, HeaderValue::from_static(garbage));
            assert_eq!(read_one(&headers), None, "{garbage:?}");
        }
        // Not valid UTF-8 (obs-text): skipped, not an error.
        headers.insert(
            header::COOKIE,
            HeaderValue::from_bytes(b"ringfence_session=\xff").unwrap(),
        );
        assert_eq!(read_one(&headers), None);
    }

    #[test]
    fn reading_several_names_in_one_pass() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("theme=dark;ringfence_csrf=c1 ; ringfence_session=\"s1\""),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("ringfence_session=s2;\t__Host-ringfence_csrf=c2"),
        );
        // Earlier plain values win over later plain ones; a __Host- one wins over both.
        assert_eq!(
            read(&headers, [SESSION_COOKIE, CSRF_COOKIE, "absent"], false),
            [Some("s1"), Some("c2"), None]
        );
        // Over HTTPS only the __Host- forms count: a planted plain cookie is ignored.
        assert_eq!(
            read(&headers, [SESSION_COOKIE, CSRF_COOKIE], true),
            [None, Some("c2")]
        );
        // An empty value is a value (a cleared cookie the browser still sends).
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("ringfence_session="),
        );
        assert_eq!(read(&headers, [SESSION_COOKIE], false), [Some("")]);
    }
}
