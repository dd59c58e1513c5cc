//! Password hashes written by ASP.NET Core Identity's `PasswordHasher`, verified so that users
//! brought over from an ASP.NET Core application keep their passwords (issue 19).
//!
//! Such a hash is only ever verified: on the first successful sign-in the accounts service
//! stores an argon2id hash in its place ([`crate::Verification::needs_rehash`] is always set).
//!
//! The formats (base64 of these bytes):
//! - version 2: `0x00 | salt (16) | subkey (32)`, PBKDF2 with HMAC-SHA1, 1,000 iterations;
//! - version 3: `0x01 | PRF (u32 BE) | iterations (u32 BE) | salt length (u32 BE) | salt | subkey`,
//!   PRF 0 = HMAC-SHA1, 1 = HMAC-SHA256, 2 = HMAC-SHA512; the subkey is the rest.
//!
//! In a user store such a hash is kept as [`ASPNET_IDENTITY_PREFIX`] followed by the base64 text,
//! so it can never be mistaken for (or parsed as) an argon2 PHC string.

use base64::Engine as _;
use hmac::Hmac;
use subtle::ConstantTimeEq;

/// What a stored ASP.NET Core Identity hash starts with in a ringfence user store.
pub const ASPNET_IDENTITY_PREFIX: &str = "$aspnet-identity$";

/// The most PBKDF2 iterations a stored version 3 hash may ask for. .NET 7 and later write
/// 100,000 (HMAC-SHA512), older versions 10,000: ten times the newest default leaves room for a
/// team that raised it, while a damaged or planted row cannot make one sign-in spend minutes of
/// CPU on a hashing thread (PBKDF2 cost grows linearly with the count, up to 2^32 - 1). Such a
/// hash is refused, not verified with fewer iterations: that could never match anyway.
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// The longest salt accepted (ASP.NET writes 16 bytes); bounds the work of a planted row.
const MAX_SALT_LEN: usize = 1024;
/// The shortest salt and subkey ASP.NET itself accepts (128 bits).
const MIN_LEN: usize = 16;
/// The longest subkey accepted (ASP.NET writes 32): each extra output block is a full PBKDF2 run.
const MAX_SUBKEY_LEN: usize = 64;

/// Why a value is not a usable ASP.NET Core Identity password hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AspNetHashError {
    /// The text is not standard base64.
    #[error("not base64")]
    NotBase64,
    /// Too short for its version's header, salt or subkey.
    #[error("truncated")]
    Truncated,
    /// The first byte names a format this code does not know.
    #[error("unknown format version byte {0:#04x}")]
    UnknownVersion(u8),
    /// The version 3 header names an unknown pseudo-random function.
    #[error("unknown PRF {0}")]
    UnknownPrf(u32),
    /// Zero iterations, or more than [`MAX_ITERATIONS`].
    #[error("iteration count {0} out of range (1 to {MAX_ITERATIONS})")]
    Iterations(u32),
    /// Salt or subkey length outside what ASP.NET writes and accepts.
    #[error("salt or subkey length out of range")]
    Length,
}

/// The pseudo-random function of PBKDF2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prf {
    Sha1,
    Sha256,
    Sha512,
}

/// A parsed hash, borrowing its salt and subkey.
#[derive(Debug)]
struct Parsed<'a> {
    prf: Prf,
    iterations: u32,
    salt: &'a [u8],
    subkey: &'a [u8],
}

fn parse(bytes: &[u8]) -> Result<Parsed<'_>, AspNetHashError> {
    match bytes.first() {
        None => Err(AspNetHashError::Truncated),
        Some(0x00) => {
            // Version 2 has a fixed size; anything else is damaged.
            if bytes.len() != 1 + 16 + 32 {
                return Err(AspNetHashError::Truncated);
            }
            Ok(Parsed {
                prf: Prf::Sha1,
                iterations: 1000,
                salt: &bytes[1..17],
                subkey: &bytes[17..],
            })
        }
        Some(0x01) => {
            let header = bytes.get(1..13).ok_or(AspNetHashError::Truncated)?;
            let word = |i: usize| {
                let mut b = [0u8; 4];
                b.copy_from_slice(&header[i * 4..i * 4 + 4]);
                u32::from_be_bytes(b)
            };
            let prf = match word(0) {
                0 => Prf::Sha1,
                1 => Prf::Sha256,
                2 => Prf::Sha512,
                other => return Err(AspNetHashError::UnknownPrf(other)),
            };
            let iterations = word(1);
            if iterations == 0 || iterations > MAX_ITERATIONS {
                return Err(AspNetHashError::Iterations(iterations));
            }
            let salt_len = usize::try_from(word(2)).map_err(|_| AspNetHashError::Length)?;
            if !(MIN_LEN..=MAX_SALT_LEN).contains(&salt_len) {
                return Err(AspNetHashError::Length);
            }
            let rest = &bytes[13..];
            if rest.len() < salt_len {
                return Err(AspNetHashError::Truncated);
            }
            let (salt, subkey) = rest.split_at(salt_len);
            if subkey.len() < MIN_LEN {
                return Err(AspNetHashError::Truncated);
            }
            if subkey.len() > MAX_SUBKEY_LEN {
                return Err(AspNetHashError::Length);
            }
            Ok(Parsed {
                prf,
                iterations,
                salt,
                subkey,
            })
        }
        Some(&other) => Err(AspNetHashError::UnknownVersion(other)),
    }
}

fn decode(base64_text: &str) -> Result<Vec<u8>, AspNetHashError> {
    base64::engine::general_purpose::STANDARD
        .decode(base64_text.trim())
        .map_err(|_| AspNetHashError::NotBase64)
}

/// Checks an ASP.NET Core Identity `PasswordHash` column (base64) and returns the value to keep
/// in a ringfence user store ([`ASPNET_IDENTITY_PREFIX`] + the base64), or why it is unusable.
pub fn import_hash(base64_text: &str) -> Result<String, AspNetHashError> {
    let bytes = decode(base64_text)?;
    parse(&bytes)?;
    Ok(format!("{ASPNET_IDENTITY_PREFIX}{}", base64_text.trim()))
}

/// Whether a stored value is an imported ASP.NET Core Identity hash (by its prefix).
pub(crate) fn is_aspnet_identity(stored: &str) -> bool {
    stored.starts_with(ASPNET_IDENTITY_PREFIX)
}

/// Verifies `password` against a stored value ([`ASPNET_IDENTITY_PREFIX`] + base64) in
/// constant time; an unusable value is an error, never a panic.
pub(crate) fn verify(password: &str, stored: &str) -> Result<bool, AspNetHashError> {
    let text = stored
        .strip_prefix(ASPNET_IDENTITY_PREFIX)
        .ok_or(AspNetHashError::NotBase64)?;
    let bytes = decode(text)?;
    let parsed = parse(&bytes)?;
    let mut computed = vec![0u8; parsed.subkey.len()];
    let password = password.as_bytes();
    match parsed.prf {
        Prf::Sha1 => pbkdf2::pbkdf2::<Hmac<sha1::Sha1>>(
            password,
            parsed.salt,
            parsed.iterations,
            &mut computed,
        ),
        Prf::Sha256 => pbkdf2::pbkdf2::<Hmac<sha2::Sha256>>(
            password,
            parsed.salt,
            parsed.iterations,
            &mut computed,
        ),
        Prf::Sha512 => pbkdf2::pbkdf2::<Hmac<sha2::Sha512>>(
            password,
            parsed.salt,
            parsed.iterations,
            &mut computed,
        ),
    }
    // HMAC accepts keys of any length: this cannot fail, but is not unwrapped.
    .map_err(|_| AspNetHashError::Length)?;
    Ok(bool::from(computed.ct_eq(parsed.subkey)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Salt 00 01 … 0f, password "my password"; computed from the format's definition with
    /// Python's `hashlib.pbkdf2_hmac` (the version 2 and the SHA-256 vectors are also the ones
    /// ASP.NET Core's own PasswordHasher tests publish).
    const V2: &str = "AAABAgMEBQYHCAkKCwwNDg+ukCEMDf0yyQ29NYubggHIVY0sdEUfdyeM+E1LtH1uJg==";
    const V3_SHA1_250: &str =
        "AQAAAAAAAAD6AAAAEAABAgMEBQYHCAkKCwwNDg/CikwJEH+7cFLomeJSBduD6Vg41Dm5IUTirFYqNp2eWA==";
    const V3_SHA256_10000: &str =
        "AQAAAAEAACcQAAAAEAABAgMEBQYHCAkKCwwNDg+yWU7rLgUwPZb1Itsmra7cbxw2EFpwpVFIEtP+JIuUEw==";
    const V3_SHA512_100000: &str =
        "AQAAAAIAAYagAAAAEAABAgMEBQYHCAkKCwwNDg/Q8A0WMKbtHQJQ2DHCdoEeeFBrgNlldq6vH4qX/CGqGQ==";
    /// 32-byte salt 100..131, 64-byte subkey, SHA-512, 1,000 iterations, password "pässwörd ✓".
    const V3_SHA512_LONG: &str = "AQAAAAIAAAPoAAAAIGRlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKDt+qPllf1uN5Bz1qMS9G3NVcxjx4pQXPs6/8JlgbFHWdH2oldY0TuZol6urgd5Y+nrI1B2X69zGYLanHlatF9hw==";

    fn stored(b64: &str) -> String {
        import_hash(b64).unwrap()
    }

    #[test]
    fn known_answers_of_both_versions_verify() {
        for vector in [V2, V3_SHA1_250, V3_SHA256_10000, V3_SHA512_100000] {
            assert_eq!(verify("my password", &stored(vector)), Ok(true), "{vector}");
            assert_eq!(
                verify("my passwore", &stored(vector)),
                Ok(false),
                "{vector}"
            );
            assert_eq!(verify("", &stored(vector)), Ok(false), "{vector}");
        }
        assert_eq!(verify("pässwörd ✓", &stored(V3_SHA512_LONG)), Ok(true));
        assert_eq!(verify("passwörd ✓", &stored(V3_SHA512_LONG)), Ok(false));
    }

    #[test]
    fn imported_value_carries_the_prefix_and_the_base64() {
        let kept = import_hash(&format!(" {V2}\n")).unwrap();
        assert_eq!(kept, format!("{ASPNET_IDENTITY_PREFIX}{V2}"));
        assert!(is_aspnet_identity(&kept));
        assert!(!is_aspnet_identity("$argon2id$v=19$m=19456,t=2,p=1$x$y"));
    }

    fn with_bytes(edit: impl FnOnce(&mut Vec<u8>)) -> String {
        let engine = base64::engine::general_purpose::STANDARD;
        let mut bytes = engine.decode(V3_SHA256_10000).unwrap();
        edit(&mut bytes);
        engine.encode(bytes)
    }

    #[test]
    fn truncated_malformed_and_unknown_hashes_are_refused_not_panicked_on() {
        let engine = base64::engine::general_purpose::STANDARD;
        let v2 = engine.decode(V2).unwrap();
        let v3 = engine.decode(V3_SHA256_10000).unwrap();
        let cases: Vec<(String, AspNetHashError)> = vec![
            (String::new(), AspNetHashError::Truncated),
            ("not base64!".into(), AspNetHashError::NotBase64),
            (engine.encode(&v2[..48]), AspNetHashError::Truncated),
            (
                engine.encode([v2.as_slice(), &[0]].concat()),
                AspNetHashError::Truncated,
            ),
            (engine.encode(&v3[..5]), AspNetHashError::Truncated),
            (engine.encode(&v3[..13]), AspNetHashError::Truncated),
            (engine.encode(&v3[..20]), AspNetHashError::Truncated),
            (engine.encode(&v3[..40]), AspNetHashError::Truncated),
            (
                with_bytes(|b| b[0] = 0x02),
                AspNetHashError::UnknownVersion(2),
            ),
            (
                with_bytes(|b| b[0] = 0xff),
                AspNetHashError::UnknownVersion(0xff),
            ),
            (with_bytes(|b| b[4] = 3), AspNetHashError::UnknownPrf(3)),
            (
                with_bytes(|b| b[5..9].copy_from_slice(&[0; 4])),
                AspNetHashError::Iterations(0),
            ),
            (
                with_bytes(|b| b[5..9].copy_from_slice(&u32::MAX.to_be_bytes())),
                AspNetHashError::Iterations(u32::MAX),
            ),
            (
                with_bytes(|b| b[5..9].copy_from_slice(&(MAX_ITERATIONS + 1).to_be_bytes())),
                AspNetHashError::Iterations(MAX_ITERATIONS + 1),
            ),
            (
                with_bytes(|b| b[9..13].copy_from_slice(&8u32.to_be_bytes())),
                AspNetHashError::Length,
            ),
            (
                with_bytes(|b| b[9..13].copy_from_slice(&u32::MAX.to_be_bytes())),
                AspNetHashError::Length,
            ),
            (
                with_bytes(|b| b[9..13].copy_from_slice(&40u32.to_be_bytes())),
                AspNetHashError::Truncated,
            ),
            (
                with_bytes(|b| b.extend_from_slice(&[7; 64])),
                AspNetHashError::Length,
            ),
        ];
        for (b64, why) in cases {
            assert_eq!(import_hash(&b64), Err(why.clone()), "{b64:?}");
            let kept = format!("{ASPNET_IDENTITY_PREFIX}{b64}");
            assert_eq!(verify("my password", &kept), Err(why), "{b64:?}");
        }
        // Without the prefix the value is not one of ours.
        assert_eq!(verify("my password", V2), Err(AspNetHashError::NotBase64));
    }

    #[test]
    fn a_changed_subkey_byte_does_not_verify() {
        let changed = with_bytes(|b| {
            let last = b.len() - 1;
            b[last] ^= 1;
        });
        assert_eq!(verify("my password", &stored(&changed)), Ok(false));
    }
}
