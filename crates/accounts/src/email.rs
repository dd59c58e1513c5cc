//! Normalized e-mail addresses.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::AccountError;

/// Longest address accepted, in bytes (RFC 5321 path limit minus the angle brackets).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest local part accepted, in bytes (RFC 5321).
pub const MAX_LOCAL_LEN: usize = 64;

/// An e-mail address in canonical form: trimmed and lowercased.
///
/// Every lookup and every insert goes through this type, so `Alice@Example.com ` and
/// `alice@example.com` are one account, and stores can compare addresses byte for byte.
/// The checks are deliberately loose (no attempt at full RFC 5322): they reject what is surely
/// not an address without rejecting real ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    /// Normalizes and validates user input.
    pub fn parse(input: &str) -> Result<Email, AccountError> {
        let normalized = input.trim().to_lowercase();
        let invalid = |reason: &str| AccountError::InvalidEmail(reason.to_owned());

        if normalized.is_empty() {
            return Err(invalid("the e-mail address is empty"));
        }
        if normalized.len() > MAX_EMAIL_LEN {
            return Err(invalid("the e-mail address is too long"));
        }
        if normalized.chars().any(is_forbidden) {
            return Err(invalid(
                "the e-mail address contains spaces or invisible characters",
            ));
        }
        let mut parts = normalized.split('@');
        let (local, domain) = match (parts.next(), parts.next(), parts.next()) {
            (Some(local), Some(domain), None) => (local, domain),
            _ => return Err(invalid("the e-mail address must contain exactly one '@'")),
        };
        if local.is_empty() {
            return Err(invalid("the part before the '@' is empty"));
        }
        if local.len() > MAX_LOCAL_LEN {
            return Err(invalid("the part before the '@' is too long"));
        }
        if local.chars().any(|c| "<>()[],;:\\\"".contains(c)) {
            return Err(invalid(
                "the part before the '@' contains invalid characters",
            ));
        }
        if !domain.contains('.') {
            return Err(invalid("the domain must contain a dot"));
        }
        if domain.split('.').any(str::is_empty) {
            return Err(invalid("the domain has an empty label"));
        }
        // Internationalized domains arrive as Unicode letters, so allow any alphanumeric.
        if !domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
        {
            return Err(invalid("the domain contains invalid characters"));
        }
        Ok(Email(normalized))
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the `@`.
    pub fn local_part(&self) -> &str {
        // parse() guarantees exactly one '@'.
        self.0.split('@').next().unwrap_or_default()
    }

    /// The part after the `@`.
    pub fn domain(&self) -> &str {
        self.0.rsplit('@').next().unwrap_or_default()
    }

    /// Consumes the value, returning the normalized address.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Whitespace, control characters and the invisible formatting characters used to make two
/// addresses look alike (zero-width spaces and joiners, bidi overrides, BOM).
fn is_forbidden(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Email {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_and_whitespace() {
        let e = Email::parse("  Alice.Smith+Tag@Example.COM\n").unwrap();
        assert_eq!(e.as_str(), "alice.smith+tag@example.com");
        assert_eq!(e.to_string(), "alice.smith+tag@example.com");
        assert_eq!(e.local_part(), "alice.smith+tag");
        assert_eq!(e.domain(), "example.com");
        assert_eq!(e, Email::parse("alice.smith+tag@example.com").unwrap());
    }

    #[test]
    fn lowercases_unicode() {
        let e = Email::parse("ÉLODIE@Exämple.DE").unwrap();
        assert_eq!(e.as_str(), "élodie@exämple.de");
        assert_eq!(
            Email::parse("ΣΟΦΙΑ@example.gr").unwrap(),
            Email::parse("σοφια@example.gr").unwrap()
        );
    }

    #[test]
    fn rejects_malformed() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_total = format!("a@{}.com", "b".repeat(250));
        for bad in [
            "",
            "   ",
            "plainaddress",
            "@example.com",
            "alice@",
            "alice@localhost",
            "alice@@example.com",
            "alice@bob@example.com",
            "alice smith@example.com",
            "alice@exa mple.com",
            "alice@example..com",
            "alice@.example.com",
            "alice@example.com.",
            "alice@exam_ple.com",
            "alice\u{0000}@example.com",
            "alice\u{200B}@example.com",
            "<alice>@example.com",
            "alice@[127.0.0.1]",
            long_local.as_str(),
            long_total.as_str(),
        ] {
            assert!(
                matches!(Email::parse(bad), Err(AccountError::InvalidEmail(_))),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn length_limit_is_inclusive() {
        let domain = format!("{}.com", "d".repeat(MAX_EMAIL_LEN - 2 - 4));
        let ok = format!("a@{domain}");
        assert_eq!(ok.len(), MAX_EMAIL_LEN);
        assert!(Email::parse(&ok).is_ok());
    }

    #[test]
    fn serializes_as_string() {
        let e = Email::parse("A@B.co").unwrap();
        assert_eq!(serde_json::to_string(&e).unwrap(), "\"a@b.co\"");
    }
}
