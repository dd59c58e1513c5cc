//! `--smtp-url`: where and how to reach the SMTP relay.

use std::fmt;

use percent_encoding::percent_decode_str;

use crate::MailError;

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://host:port`: plain text (a relay on the same host or network).
    Plain,
    /// `smtp://host:port?tls=required`: STARTTLS, and the mail is not sent if the relay does not
    /// offer it or its certificate does not verify.
    StartTls,
    /// `smtps://host:port`: TLS from the first byte (implicit TLS, usually port 465).
    ImplicitTls,
}

/// The parsed `--smtp-url`: `smtp://[user:pass@]host:port` (plain), `…?tls=required`
/// (STARTTLS) or `smtps://[user:pass@]host:port` (implicit TLS).
///
/// User name and password are percent-decoded (`%40` for `@` in a user name). `Debug` shows the
/// user but never the password, and no error message quotes the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    host: String,
    port: u16,
    security: SmtpSecurity,
    credentials: Option<(String, String)>,
}

impl SmtpUrl {
    /// Parses the URL; every error is one line naming the problem.
    pub fn parse(input: &str) -> Result<SmtpUrl, MailError> {
        let bad = |why: String| MailError::SmtpUrl(why);
        // The url crate's message for an unparseable URL never quotes it, so no password leaks.
        let url = url::Url::parse(input.trim()).map_err(|e| bad(e.to_string()))?;
        let implicit = match url.scheme() {
            "smtp" => false,
            "smtps" => true,
            other => {
                return Err(bad(format!(
                    "the scheme must be smtp:// or smtps://, not `{other}://`"
                )))
            }
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(bad("it has no host (smtp://host:port)".into())),
        };
        if !matches!(url.path(), "" | "/") {
            return Err(bad(format!(
                "it must not have a path (`{}`); the form is smtp://[user:pass@]host:port",
                url.path()
            )));
        }
        if url.fragment().is_some() {
            return Err(bad("it must not have a fragment (#…)".into()));
        }
        let mut starttls = false;
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref()) {
                ("tls", "required") if !implicit => starttls = true,
                ("tls", "required") => {
                    return Err(bad(
                        "?tls=required is for smtp:// (STARTTLS); smtps:// is TLS already".into(),
                    ))
                }
                ("tls", other) => {
                    return Err(bad(format!(
                        "unknown tls mode `{other}`; the only one is ?tls=required (STARTTLS)"
                    )))
                }
                (other, _) => {
                    return Err(bad(format!(
                        "unknown parameter `{other}`; the only one is ?tls=required"
                    )))
                }
            }
        }
        let security = match (implicit, starttls) {
            (true, _) => SmtpSecurity::ImplicitTls,
            (false, true) => SmtpSecurity::StartTls,
            (false, false) => SmtpSecurity::Plain,
        };
        let port = url.port().unwrap_or(match security {
            SmtpSecurity::Plain => 25,
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::ImplicitTls => 465,
        });
        if port == 0 {
            return Err(bad("the port must not be 0".into()));
        }
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            ("", Some(_)) => return Err(bad("a password without a user name".into())),
            (_, None) => {
                return Err(bad(
                    "a user name without a password (smtp://user:pass@host:port)".into(),
                ))
            }
            (user, Some(pass)) => {
                let decode = |s: &str, what: &str| {
                    percent_decode_str(s)
                        .decode_utf8()
                        .map(|c| c.into_owned())
                        .map_err(|_| bad(format!("the {what} is not UTF-8 once percent-decoded")))
                };
                Some((decode(user, "user name")?, decode(pass, "password")?))
            }
        };
        Ok(SmtpUrl {
            host,
            port,
            security,
            credentials,
        })
    }

    /// The relay's host name or IP address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The relay's port (default 25, 587 with STARTTLS, 465 for `smtps://`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Plain, STARTTLS or implicit TLS.
    pub fn security(&self) -> SmtpSecurity {
        self.security
    }

    /// The user name, when the URL has credentials.
    pub fn user(&self) -> Option<&str> {
        self.credentials.as_ref().map(|(u, _)| u.as_str())
    }

    /// The password, when the URL has credentials (handed to the SMTP client, never logged).
    pub fn password(&self) -> Option<&str> {
        self.credentials.as_ref().map(|(_, p)| p.as_str())
    }
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.user())
            .field("password", &self.credentials.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `smtp://host:port` with the mode and user, never the password: for logs.
impl fmt::Display for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.security == SmtpSecurity::ImplicitTls {
            "smtps"
        } else {
            "smtp"
        };
        write!(f, "{scheme}://")?;
        if let Some(user) = self.user() {
            write!(f, "{user}:***@")?;
        }
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{host}:{}", self.port)?;
        if self.security == SmtpSecurity::StartTls {
            f.write_str("?tls=required")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms_parse() {
        let plain = SmtpUrl::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!(
            (plain.host(), plain.port(), plain.security(), plain.user()),
            ("127.0.0.1", 2525, SmtpSecurity::Plain, None)
        );
        let start = SmtpUrl::parse("smtp://mail.example.com?tls=required").unwrap();
        assert_eq!(start.security(), SmtpSecurity::StartTls);
        assert_eq!(start.port(), 587);
        let implicit = SmtpUrl::parse("smtps://u%40x:p%3Ass@mail.example.com").unwrap();
        assert_eq!(implicit.security(), SmtpSecurity::ImplicitTls);
        assert_eq!(implicit.port(), 465);
        assert_eq!(implicit.user(), Some("u@x"));
        assert_eq!(implicit.password(), Some("p:ss"));
        let v6 = SmtpUrl::parse("smtp://[::1]:25").unwrap();
        assert_eq!(v6.host(), "::1");
        assert_eq!(v6.to_string(), "smtp://[::1]:25");
    }

    #[test]
    fn the_password_never_shows_in_debug_display_or_errors() {
        let url = SmtpUrl::parse("smtp://mailer:Sup3rS3cret@relay:587?tls=required").unwrap();
        assert_eq!(url.password(), Some("Sup3rS3cret"));
        let shown = format!("{url:?} {url}");
        assert!(!shown.contains("Sup3rS3cret"), "{shown}");
        assert!(shown.contains("mailer"));
        for bad in [
            "smtp://mailer:Sup3rS3cret@relay:587/path",
            "smtp://mailer:Sup3rS3cret@relay:587?tls=maybe",
            "smtps://mailer:Sup3rS3cret@relay:465?tls=required",
            "http://mailer:Sup3rS3cret@relay",
            "smtp://mailer:Sup3rS3cret@relay:99999",
        ] {
            let e = SmtpUrl::parse(bad).unwrap_err().to_string();
            assert!(!e.contains("Sup3rS3cret"), "{e}");
        }
    }

    #[test]
    fn bad_urls_get_clear_one_line_errors() {
        for (input, want) in [
            ("relay:25", "scheme"),
            ("mailto:x@y", "scheme"),
            ("smtp://", "host"),
            ("smtp://relay:25/x", "path"),
            ("smtp://relay:25?tls=yes", "tls mode"),
            ("smtp://relay:25?starttls=1", "unknown parameter"),
            ("smtps://relay?tls=required", "smtps"),
            ("smtp://user@relay", "without a password"),
            ("smtp://:pw@relay", "without a user"),
            ("smtp://relay:0", "port"),
            ("smtp://relay:70000", "port"),
            ("", "relative url"),
        ] {
            let e = SmtpUrl::parse(input).unwrap_err().to_string();
            assert!(e.to_lowercase().contains(want), "{input:?}: {e}");
            assert!(!e.contains('\n'), "{input:?}: {e}");
        }
    }
}
