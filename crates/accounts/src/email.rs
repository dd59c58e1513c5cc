//! Normalized e-mail addresses.

use std::fmt;

use serde::{Serialize, Serializer};
use unicode_normalization::UnicodeNormalization;

use crate::AccountError;

/// Longest address accepted, in bytes (RFC 5321 path limit minus the angle brackets).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest local part accepted, in bytes (RFC 5321).
pub const MAX_LOCAL_LEN: usize = 64;

/// An e-mail address in canonical form: trimmed, the local part in Unicode NFC and lowercased,
/// the domain mapped by IDNA (UTS #46, through the `idna` crate) and shown in its Unicode form.
///
/// Every lookup and every insert goes through this type, so `Alice@Example.com `,
/// `alice@example.com`, `alice@exämple.com`, `alice@EXÄMPLE.com`, `alice@xn--exmple-cua.com`
/// and a local part typed with a combining accent (`e` + U+0301) rather than `é` are each one
/// account, and stores can compare addresses byte for byte. Control characters, whitespace and
/// the invisible formatting characters used to make two addresses look alike (zero-width
/// characters, bidirectional overrides, isolates and marks) are refused, not removed.
///
/// The local part is otherwise taken as typed (no removal of dots or `+tags`: for most domains
/// those are different mailboxes). The checks are deliberately loose (no attempt at full
/// RFC 5322): they reject what is surely not an address without rejecting real ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    /// Normalizes and validates user input.
    pub fn parse(input: &str) -> Result<Email, AccountError> {
        let invalid = |reason: &str| AccountError::InvalidEmail(reason.to_owned());
        let trimmed = input.trim();

        if trimmed.is_empty() {
            return Err(invalid("the e-mail address is empty"));
        }
        // Checked before normalizing, which must not get the chance to hide them, and bounded
        // before the (linear, but not free) Unicode work.
        if trimmed.len() > MAX_EMAIL_LEN * 4 {
            return Err(invalid("the e-mail address is too long"));
        }
        if trimmed.chars().any(is_forbidden) {
            return Err(invalid(
                "the e-mail address contains spaces or invisible characters",
            ));
        }
        let mut parts = trimmed.split('@');
        let (local, domain) = match (parts.next(), parts.next(), parts.next()) {
            (Some(local), Some(domain), None) => (local, domain),
            _ => return Err(invalid("the e-mail address must contain exactly one '@'")),
        };
        let local: String = local.to_lowercase().nfc().collect();
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
        let domain = canonical_domain(domain).map_err(&invalid)?;
        let normalized = format!("{local}@{domain}");
        if normalized.len() > MAX_EMAIL_LEN {
            return Err(invalid("the e-mail address is too long"));
        }
        if normalized.chars().any(is_forbidden) {
            return Err(invalid(
                "the e-mail address contains spaces or invisible characters",
            ));
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

/// The domain in one canonical form: mapped and checked by IDNA (UTS #46, STD3 rules, DNS
/// lengths), then shown in Unicode (`xn--exmple-cua.com` and `EXÄMPLE.com` both give
/// `exämple.com`).
fn canonical_domain(domain: &str) -> Result<String, &'static str> {
    if domain.is_empty() {
        return Err("the domain is empty");
    }
    let ascii = idna::domain_to_ascii_strict(domain)
        .map_err(|_| "the domain contains invalid characters")?;
    if !ascii.contains('.') {
        return Err("the domain must contain a dot");
    }
    if ascii.split('.').any(str::is_empty) {
        return Err("the domain has an empty label");
    }
    let (unicode, result) = idna::domain_to_unicode(&ascii);
    result.map_err(|_| "the domain contains invalid characters")?;
    Ok(unicode)
}

/// Whitespace, control characters and the invisible formatting characters used to make two
/// addresses look alike (zero-width spaces and joiners, bidirectional marks, embeddings,
/// overrides and isolates, word joiners, BOM).
fn is_forbidden(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
        )
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
        // DNS labels are at most 63 bytes.
        let label = "d".repeat(63);
        let last = "d".repeat(MAX_EMAIL_LEN - 2 - 4 - 3 * 64);
        let domain = format!("{label}.{label}.{label}.{last}.com");
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
