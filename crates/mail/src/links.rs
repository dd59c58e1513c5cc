//! Where users reach the app, and the action links built from it.

use std::fmt;

use crate::MailError;

/// The longest token a link accepts: far above the 43 characters of 256 random bits in
/// base64url, far below what would make a mail line or a URL unwieldy.
pub const MAX_TOKEN_LEN: usize = 256;

/// The base of every link in a mail (`--public-url`), e.g. `https://auth.example.com`.
///
/// Configuration, never taken from a request's `Host`: a forged `Host` header must not be able to
/// send a user a reset link to someone else's server. Kept without a trailing slash, so that
/// `PUBLIC_URL + "/reset-password"` is the link whether or not the flag ended with `/`.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicUrl {
    base: String,
    host: String,
}

impl PublicUrl {
    /// Parses an absolute `http://` or `https://` URL with a host, optionally a path prefix
    /// (`https://example.com/auth`), without user info, query or fragment.
    pub fn parse(input: &str) -> Result<PublicUrl, MailError> {
        let bad = |why: &str| MailError::PublicUrl(why.to_owned());
        let url = url::Url::parse(input.trim()).map_err(|e| MailError::PublicUrl(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(MailError::PublicUrl(format!(
                "the scheme must be http or https, not `{}`",
                url.scheme()
            )));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("it has no host"))?
            .to_owned();
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("it must not contain a user name or password"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("it must not have a query (?…) or fragment (#…)"));
        }
        let base = url.as_str().trim_end_matches('/').to_owned();
        Ok(PublicUrl { base, host })
    }

    /// The URL without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.base
    }

    /// The host (a domain name, an IPv4 address, or an IPv6 address in brackets): the right
    /// side of every Message-ID and of the default `From:`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The link for `action` carrying `token`: `PUBLIC_URL/reset-password?token=T` and so on.
    pub fn link(&self, action: Action, token: &ActionToken) -> String {
        format!("{}{}?token={}", self.base, action.path(), token.0)
    }
}

impl fmt::Debug for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicUrl").field(&self.base).finish()
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

/// What a mail link asks the user to do; each has its page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `/reset-password?token=T`
    ResetPassword,
    /// `/verify-email?token=T`
    VerifyEmail,
    /// `/confirm-email?token=T`
    ConfirmEmail,
}

impl Action {
    /// The page's path.
    pub fn path(self) -> &'static str {
        match self {
            Action::ResetPassword => "/reset-password",
            Action::VerifyEmail => "/verify-email",
            Action::ConfirmEmail => "/confirm-email",
        }
    }
}

/// A token for a mail link, checked to be URL-safe (`[A-Za-z0-9_-]`, 1 to [`MAX_TOKEN_LEN`]
/// characters) so that it goes into the link as it is, without escaping.
///
/// `Debug` never shows it: whoever holds the token holds the account for its lifetime, so it must
/// not reach a log by way of a `{:?}`.
#[derive(Clone, PartialEq, Eq)]
pub struct ActionToken(String);

impl ActionToken {
    /// Checks `token`; a token outside the alphabet is refused, never escaped or trimmed.
    pub fn new(token: impl Into<String>) -> Result<ActionToken, MailError> {
        let token = token.into();
        let ok = !token.is_empty()
            && token.len() <= MAX_TOKEN_LEN
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(ActionToken(token))
        } else {
            Err(MailError::Token)
        }
    }

    /// The token itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ActionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ActionToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_the_public_url_plus_the_page_and_token() {
        let url = PublicUrl::parse("https://auth.example.com/").unwrap();
        let t = ActionToken::new("abc_DEF-123").unwrap();
        assert_eq!(
            url.link(Action::ResetPassword, &t),
            "https://auth.example.com/reset-password?token=abc_DEF-123"
        );
        assert_eq!(
            url.link(Action::VerifyEmail, &t),
            "https://auth.example.com/verify-email?token=abc_DEF-123"
        );
        let prefixed = PublicUrl::parse("http://127.0.0.1:8080/auth").unwrap();
        assert_eq!(
            prefixed.link(Action::ConfirmEmail, &t),
            "http://127.0.0.1:8080/auth/confirm-email?token=abc_DEF-123"
        );
        assert_eq!(prefixed.host(), "127.0.0.1");
    }

    #[test]
    fn tokens_outside_the_url_safe_alphabet_are_refused() {
        for bad in ["", "a b", "a+b", "a/b", "a=b", "a&x=1", "é", "a.b", "%41"] {
            assert!(ActionToken::new(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(ActionToken::new("a".repeat(MAX_TOKEN_LEN + 1)).is_err());
        assert!(ActionToken::new("a".repeat(MAX_TOKEN_LEN)).is_ok());
    }

    #[test]
    fn token_debug_never_shows_the_token() {
        let t = ActionToken::new("s3cr3tT0ken").unwrap();
        assert!(!format!("{t:?}").contains("s3cr3tT0ken"));
    }

    #[test]
    fn bad_public_urls_get_one_line_errors() {
        for (input, want) in [
            ("example.com", "relative URL"),
            ("ftp://example.com", "scheme"),
            ("https://example.com/?x=1", "query"),
            ("https://example.com/#top", "fragment"),
            ("https://u:p@example.com", "user name"),
        ] {
            let e = PublicUrl::parse(input).unwrap_err().to_string();
            assert!(e.contains(want), "{input}: {e}");
            assert!(!e.contains('\n'));
        }
    }
}
