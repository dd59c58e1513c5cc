//! Recovery codes: format, generation, normalization, hashing.

use rand::rngs::OsRng;
use rand::Rng;
use sha2::{Digest, Sha256};

/// How many codes a set holds.
pub const RECOVERY_CODE_COUNT: usize = 10;
/// Characters of a code: 24 of Crockford's base32 alphabet, 5 bits each: 120 bits.
const CODE_CHARS: usize = 24;
/// Crockford's base32: no I, L, O or U, so nothing reads as another character.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Shown in groups of this many characters, joined by `-`.
const GROUP: usize = 4;
/// Longest input looked at (with separators and spaces).
const MAX_INPUT: usize = 64;

/// One recovery code in its canonical form (24 characters of the alphabet, no separators).
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode(…)")
    }
}

impl RecoveryCode {
    /// A fresh code from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut rng = OsRng;
        RecoveryCode(
            (0..CODE_CHARS)
                .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
                .collect(),
        )
    }

    /// Reads what a user typed: case, `-` and spaces do not matter, and the letters Crockford
    /// maps (`I`, `L` to `1`, `O` to `0`) are taken as meant. `None` for anything else.
    pub fn parse(input: &str) -> Option<Self> {
        if input.len() > MAX_INPUT {
            return None;
        }
        let mut code = String::with_capacity(CODE_CHARS);
        for c in input.chars() {
            let c = match c.to_ascii_uppercase() {
                '-' | ' ' => continue,
                'I' | 'L' => '1',
                'O' => '0',
                c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
                _ => return None,
            };
            code.push(c);
        }
        (code.len() == CODE_CHARS).then_some(RecoveryCode(code))
    }

    /// The form shown to the user: `XXXX-XXXX-XXXX-XXXX-XXXX-XXXX`.
    pub fn display(&self) -> String {
        self.0
            .as_bytes()
            .chunks(GROUP)
            .map(|g| String::from_utf8_lossy(g).into_owned())
            .collect::<Vec<_>>()
            .join("-")
    }

    /// What the store keeps: hex SHA-256 over the user id and the code (the user id makes equal
    /// codes of two users, however unlikely, different rows and hashes).
    pub fn hash_for(&self, user_id: &str) -> String {
        let mut digest = Sha256::new();
        digest.update(user_id.as_bytes());
        digest.update([0u8]);
        digest.update(self.0.as_bytes());
        hex(&digest.finalize())
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_120_bits_and_read_back_however_typed() {
        let code = RecoveryCode::generate();
        let shown = code.display();
        assert_eq!(shown.len(), 24 + 5);
        assert_eq!(RecoveryCode::parse(&shown), Some(code.clone()));
        assert_eq!(
            RecoveryCode::parse(&shown.to_lowercase().replace('-', " ")),
            Some(code)
        );
        assert_ne!(RecoveryCode::generate(), RecoveryCode::generate());
    }

    #[test]
    fn malformed_codes_are_refused() {
        for bad in [
            "",
            "123456",
            "ÄÄÄÄ-0000-0000-0000-0000-0000",
            &"0".repeat(25),
            &"0".repeat(500),
            "UUUU-0000-0000-0000-0000-0000",
        ] {
            assert_eq!(RecoveryCode::parse(bad), None, "{bad:?}");
        }
        assert!(RecoveryCode::parse("oooo-llll-iiii-0000-0000-0000").is_some());
    }

    #[test]
    fn hashes_differ_per_user() {
        let code = RecoveryCode::generate();
        assert_ne!(code.hash_for("a"), code.hash_for("b"));
        assert_eq!(code.hash_for("a").len(), 64);
    }
}
