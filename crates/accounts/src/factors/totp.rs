//! RFC 6238 time-based codes: SHA-1, 6 digits, 30-second steps, one step of drift either way.
//!
//! `totp-rs` computes the codes; this module fixes the parameters, finds which step a code
//! belongs to (the store takes that step once), and writes the `otpauth://` URI that
//! authenticator apps read from the QR code.

use chrono::{DateTime, Utc};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::rngs::OsRng;
use rand::RngCore;
use totp_rs::{Algorithm, Builder, Secret, Totp};

/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;
/// Digits per code.
pub const DIGITS: u8 = 6;
/// Steps of clock drift accepted either way.
pub const SKEW: u16 = 1;
/// Bytes of a secret: 160 bits, RFC 4226's recommendation for HMAC-SHA-1.
pub const SECRET_BYTES: usize = 20;

/// Everything but the unreserved characters of RFC 3986 is escaped in the URI.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A TOTP secret (its `Debug` hides it).
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(…)")
    }
}

impl TotpSecret {
    /// A fresh secret from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        OsRng.fill_bytes(&mut bytes);
        TotpSecret(bytes)
    }

    /// A secret from its raw bytes (as unsealed from the store); `None` unless 20 bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() == SECRET_BYTES).then_some(TotpSecret(bytes))
    }

    /// A secret from the base32 text a user (or a test) was shown.
    pub fn from_base32(text: &str) -> Option<Self> {
        Secret::try_from_base32(text)
            .ok()
            .and_then(|s| Self::from_bytes(s.as_ref().to_vec()))
    }

    /// The raw bytes (to seal for the store).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Base32 without padding, as authenticator apps take it typed in.
    pub fn to_base32(&self) -> String {
        Secret::from(self.0.clone())
            .to_base32()
            .trim_end_matches('=')
            .to_owned()
    }

    fn totp(&self) -> Option<Totp> {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS)
            .with_skew(SKEW)
            .with_step_duration(STEP_SECONDS)
            .with_secret(self.0.clone())
            .build()
            .ok()
    }

    /// The code for the step `at` falls in.
    pub fn code_at(&self, at: DateTime<Utc>) -> String {
        match self.totp() {
            Some(totp) => totp.generate(unix_seconds(at)).to_string(),
            None => String::new(),
        }
    }

    /// The step (`step_at`) that `code` belongs to, looking at the step of `now` and one either
    /// side; `None` for a wrong or malformed code. Comparisons are constant-time (`totp-rs`).
    pub fn matching_step(&self, code: &str, now: DateTime<Utc>) -> Option<i64> {
        let code = parse_code(code)?;
        let step = self.totp()?.check(&code, unix_seconds(now))?;
        i64::try_from(step).ok()
    }

    /// The `otpauth://totp/…` URI of this secret for `account` at `issuer`.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        let label = format!("{issuer}:{account}");
        format!(
            "otpauth://totp/{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
            utf8_percent_encode(&label, ESCAPED),
            self.to_base32(),
            utf8_percent_encode(issuer, ESCAPED),
        )
    }
}

/// The step `at` falls in.
pub fn step_at(at: DateTime<Utc>) -> i64 {
    i64::try_from(unix_seconds(at) / STEP_SECONDS).unwrap_or(0)
}

/// A code as typed: spaces ignored, exactly six ASCII digits; `None` otherwise.
pub fn parse_code(input: &str) -> Option<String> {
    if input.len() > 32 {
        return None;
    }
    let code: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    (code.len() == usize::from(DIGITS) && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

fn unix_seconds(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 (the 8-digit values' last six digits).
    #[test]
    fn rfc_6238_test_vectors() {
        let secret = TotpSecret(b"12345678901234567890".to_vec());
        for (t, code) in [
            (59, "287082"),
            (1111111109, "081804"),
            (1111111111, "050471"),
            (1234567890, "005924"),
            (2000000000, "279037"),
        ] {
            let at = DateTime::from_timestamp(t, 0).unwrap();
            assert_eq!(secret.code_at(at), code, "t={t}");
        }
    }

    #[test]
    fn one_step_of_drift_either_way_and_not_two() {
        let secret = TotpSecret::generate();
        let now = DateTime::from_timestamp(1_800_000_015, 0).unwrap();
        let step = step_at(now);
        for (offset, accepted) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let at = now + chrono::Duration::seconds(offset * 30);
            let found = secret.matching_step(&secret.code_at(at), now);
            assert_eq!(found, accepted.then_some(step + offset), "offset {offset}");
        }
    }

    #[test]
    fn malformed_codes_match_nothing() {
        let secret = TotpSecret::generate();
        let now = Utc::now();
        for bad in [
            "",
            "12345",
            "1234567",
            "12a456",
            "+12345",
            "１２３４５６",
            &"1".repeat(1000),
        ] {
            assert_eq!(secret.matching_step(bad, now), None, "{bad:?}");
        }
        assert_eq!(parse_code(" 123 456 ").as_deref(), Some("123456"));
    }

    #[test]
    fn base32_and_uri_round_trip() {
        let secret = TotpSecret::generate();
        assert_eq!(
            TotpSecret::from_base32(&secret.to_base32()),
            Some(secret.clone())
        );
        let uri = secret.otpauth_uri("ringfence", "a+b@example.com");
        assert!(uri.starts_with("otpauth://totp/ringfence%3Aa%2Bb%40example.com?secret="));
        assert!(uri.ends_with("&issuer=ringfence&algorithm=SHA1&digits=6&period=30"));
    }
}
