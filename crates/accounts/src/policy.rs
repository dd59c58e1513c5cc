//! Which passwords are accepted (NIST SP 800-63B style: length, a blocklist and a strength
//! estimate, no composition rules, no forced expiry).
//!
//! The checks run cheapest first: length (at most 128 characters, ASVS 2.1.2), the shipped list
//! of common passwords (a set lookup), the e-mail's local part, repetition, and finally the
//! zxcvbn estimate ([`MIN_SCORE`]), given the account's e-mail, its parts and the product name as
//! words an attacker would try first. The refusal says why in words taken from zxcvbn's fixed
//! feedback, never from the password itself.

use std::collections::HashSet;
use std::sync::LazyLock;

use zxcvbn::Score;

use crate::Email;

/// The lowest zxcvbn score accepted: `Four`, more than about 10^10 guesses: out of reach of
/// online guessing (which the throttle caps) and costly offline against argon2id. `Three`
/// (10^8) would let through the e-mail's words plus a year ("alicesmith1990"), which is what
/// giving zxcvbn the e-mail is meant to stop.
pub const MIN_SCORE: Score = Score::Four;

/// The product name, given to zxcvbn as a word users are tempted to put in their password.
const PRODUCT_NAME: &str = "ringfence";

/// The shipped blocklist; see the header of the file for what it holds.
static COMMON_PASSWORDS_TEXT: &str = include_str!("../data/common-passwords.txt");

/// The blocklist, parsed once on first use.
static COMMON_PASSWORDS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    COMMON_PASSWORDS_TEXT
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_lowercase)
        .collect()
});

/// Whether `password` (compared case-insensitively) is on the shipped list of common passwords.
pub fn is_common_password(password: &str) -> bool {
    COMMON_PASSWORDS.contains(&password.to_lowercase())
}

/// Number of entries on the shipped list of common passwords.
pub fn common_password_count() -> usize {
    COMMON_PASSWORDS.len()
}

/// Why a new password was refused. The messages are written for the person choosing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejection {
    /// Fewer characters than the policy's minimum.
    #[error("the password must be at least {min} characters long")]
    TooShort {
        /// The minimum, in characters.
        min: usize,
    },
    /// More characters than the policy's maximum.
    #[error("the password must be at most {max} characters long")]
    TooLong {
        /// The maximum, in characters.
        max: usize,
    },
    /// On the list of commonly used (and therefore guessed first) passwords.
    #[error("this password is too common; choose one that is harder to guess")]
    Common,
    /// Contains the part of the e-mail address before the `@`.
    #[error("the password must not contain your e-mail address")]
    ContainsEmail,
    /// Uses so few distinct characters that it is trivially guessed ("aaaaaaaaaaaa", "abababababab").
    #[error("the password is too repetitive; choose one that is harder to guess")]
    Repetitive,
    /// The strength estimate (zxcvbn) is below [`MIN_SCORE`]; `reason` is zxcvbn's warning and
    /// suggestions (fixed sentences, never the password).
    #[error("this password is too easy to guess: {reason}")]
    Guessable {
        /// Why, and what would help, for the person choosing the password.
        reason: String,
    },
}

impl PasswordRejection {
    /// A short machine-readable code for APIs.
    pub fn code(&self) -> &'static str {
        match self {
            PasswordRejection::TooShort { .. } => "too_short",
            PasswordRejection::TooLong { .. } => "too_long",
            PasswordRejection::Common => "common",
            PasswordRejection::ContainsEmail => "contains_email",
            PasswordRejection::Repetitive => "repetitive",
            PasswordRejection::Guessable { .. } => "guessable",
        }
    }
}

/// Length limits for new passwords, counted in characters (Unicode scalar values), not bytes,
/// so a passphrase in any script gets the same allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Shortest accepted password.
    pub min_len: usize,
    /// Longest accepted password (bounds the work done per hash and per strength estimate).
    /// Default 128 (ASVS 2.1.2).
    pub max_len: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_len: 12,
            max_len: 128,
        }
    }
}

/// Local parts shorter than this are too likely to occur by chance ("al", "bob") to be refused.
const MIN_LOCAL_PART_CHECK: usize = 4;
/// Fewer distinct characters than this is a pattern, not a password.
const MIN_DISTINCT_CHARS: usize = 4;

impl PasswordPolicy {
    /// Checks a new password for the account `email`. Applies to registration, admin-created
    /// accounts and password changes alike; never to sign-in (old passwords keep working).
    pub fn validate(&self, password: &str, email: &Email) -> Result<(), PasswordRejection> {
        let chars = password.chars().count();
        if chars < self.min_len {
            return Err(PasswordRejection::TooShort { min: self.min_len });
        }
        if chars > self.max_len {
            return Err(PasswordRejection::TooLong { max: self.max_len });
        }
        let lowered = password.to_lowercase();
        if COMMON_PASSWORDS.contains(&lowered) {
            return Err(PasswordRejection::Common);
        }
        let local = email.local_part();
        if local.chars().count() >= MIN_LOCAL_PART_CHECK && lowered.contains(local) {
            return Err(PasswordRejection::ContainsEmail);
        }
        let distinct: HashSet<char> = lowered.chars().collect();
        if distinct.len() < MIN_DISTINCT_CHARS {
            return Err(PasswordRejection::Repetitive);
        }
        guessability(password, email)
    }
}

/// The zxcvbn verdict for `password` chosen by the owner of `email`.
fn guessability(password: &str, email: &Email) -> Result<(), PasswordRejection> {
    let domain = email.domain();
    let mut inputs = vec![email.as_str(), email.local_part(), domain, PRODUCT_NAME];
    // "alice.smith" -> "alice", "smith"; "mail.example.com" -> "mail", "example", "com".
    inputs.extend(
        email
            .local_part()
            .split(|c: char| !c.is_alphanumeric())
            .chain(domain.split('.'))
            .filter(|word| word.chars().count() >= 3),
    );
    let estimate = zxcvbn::zxcvbn(password, &inputs);
    if estimate.score() >= MIN_SCORE {
        return Ok(());
    }
    let mut reason: Vec<String> = Vec::new();
    if let Some(feedback) = estimate.feedback() {
        reason.extend(feedback.warning().map(|w| w.to_string()));
        reason.extend(feedback.suggestions().iter().map(ToString::to_string));
    }
    if reason.is_empty() {
        reason.push("Add another word or two. Uncommon words are better.".to_owned());
    }
    Err(PasswordRejection::Guessable {
        reason: reason.join(" "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email::parse("alice.smith@example.com").unwrap()
    }

    #[test]
    fn list_is_loaded() {
        assert!(
            common_password_count() >= 19_000,
            "{}",
            common_password_count()
        );
        for p in [
            "password1234",
            "qwertyuiop123",
            "123456789012",
            "iloveyou1234",
            "Password1234",
            "QWERTYUIOP123",
            // From the Django list (entries the decorated base words did not hold).
            "!qaz2wsx",
            "michelle1",
        ] {
            assert!(is_common_password(p), "{p}");
        }
        assert!(!is_common_password("correct horse battery staple"));
    }

    #[test]
    fn list_has_no_comments_or_blanks() {
        assert!(!COMMON_PASSWORDS
            .iter()
            .any(|p| p.is_empty() || p.starts_with('#')));
        assert!(COMMON_PASSWORDS.iter().all(|p| p.chars().count() >= 8));
    }

    #[test]
    fn accepts_a_good_password() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            policy.validate("correct horse battery staple", &email()),
            Ok(())
        );
        // No composition rules: lowercase letters only is fine when long enough.
        assert_eq!(policy.validate("mauve frog trumpet", &email()), Ok(()));
        // Length is counted in characters: 12 two-byte characters pass.
        assert_eq!(policy.validate("ŧĳřæðœßŋħĸłþ", &email()), Ok(()));
    }

    #[test]
    fn rejects_short_and_long() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            policy.validate("short pw", &email()),
            Err(PasswordRejection::TooShort { min: 12 })
        );
        // 11 characters but 22 bytes: still too short.
        assert_eq!(
            policy.validate("ĳķĺļľŀłńņňŉ", &email()),
            Err(PasswordRejection::TooShort { min: 12 })
        );
        assert_eq!(
            policy.validate(&"abcdefgh".repeat(17), &email()),
            Err(PasswordRejection::TooLong { max: 128 })
        );
    }

    #[test]
    fn rejects_common_case_insensitively() {
        let policy = PasswordPolicy::default();
        for p in [
            "password1234",
            "PassWord1234",
            "qwertyuiop123",
            "123456789012",
        ] {
            assert_eq!(
                policy.validate(p, &email()),
                Err(PasswordRejection::Common),
                "{p}"
            );
        }
    }

    #[test]
    fn rejects_email_local_part() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            policy.validate("xx-Alice.Smith-2024", &email()),
            Err(PasswordRejection::ContainsEmail)
        );
        // Short local parts are not checked: "bob" appears in plenty of good passwords.
        let bob = Email::parse("bob@example.com").unwrap();
        assert_eq!(policy.validate("kebob grill nights", &bob), Ok(()));
    }

    #[test]
    fn rejects_repetitive() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            policy.validate("zzzzzzzzzzzzzzzz", &email()),
            Err(PasswordRejection::Repetitive)
        );
        assert_eq!(
            policy.validate("xyzxyzxyzxyzxyz", &email()),
            Err(PasswordRejection::Repetitive)
        );
    }

    #[test]
    fn custom_limits() {
        let policy = PasswordPolicy {
            min_len: 8,
            max_len: 14,
        };
        assert_eq!(policy.validate("vq8#tz!w3K&pZ", &email()), Ok(()));
        assert_eq!(
            policy.validate("vq8#tz!w3K&pZ2x", &email()),
            Err(PasswordRejection::TooLong { max: 14 })
        );
    }
}
