//! Session secrets (only ever in the protected cookie) and session ids (their hashes).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Length of a session secret: 256 bits from the OS CSPRNG.
pub const SECRET_LEN: usize = 32;

/// Length of a session id in bytes (its text is these bytes in base64url, [`SessionId::LEN`]
/// characters).
pub const ID_BYTES: usize = 16;

/// The bearer secret of a session. It exists only inside the protected cookie and in memory
/// while a request is handled; stores keep [`SessionId`], its hash, so a leaked store dump cannot
/// be replayed as cookies.
#[derive(Clone)]
pub struct SessionSecret([u8; SECRET_LEN]);

impl SessionSecret {
    /// A fresh secret from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; SECRET_LEN];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Rebuilds a secret from bytes read out of a cookie; `None` when the length is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        <[u8; SECRET_LEN]>::try_from(bytes).ok().map(Self)
    }

    /// The raw bytes (to be sealed into the cookie).
    pub fn as_bytes(&self) -> &[u8; SECRET_LEN] {
        &self.0
    }

    /// The public id of the session this secret opens.
    pub fn id(&self) -> SessionId {
        let digest = Sha256::digest(self.0);
        // 128 bits of the hash are plenty for a unique, unguessable handle and keep keys short.
        let mut bytes = [0u8; ID_BYTES];
        bytes.copy_from_slice(&digest[..ID_BYTES]);
        SessionId::from_bytes(bytes)
    }
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret, not even in debug output.
        f.write_str("SessionSecret(..)")
    }
}

/// Public, loggable id of a session: base64url of the first 128 bits of SHA-256(secret),
/// 22 characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    /// Length of the textual id.
    pub const LEN: usize = 22;

    /// Parses an id from user input (a URL path, a CLI argument); `None` unless it has the exact
    /// shape of an id, so malformed input never reaches a store.
    pub fn parse(text: &str) -> Option<Self> {
        let valid = text.len() == Self::LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid.then(|| Self(text.to_owned()))
    }

    /// The textual id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id's 16 bytes (what the Redis store keeps as a hash field: 16 bytes instead of 22).
    /// `None` for text that [`SessionId::parse`] accepts but no secret can hash to: 22 characters
    /// hold 132 bits, and an id whose last character sets any of the 4 bits beyond the 128 is
    /// not the encoding of any 16 bytes, so no store can hold a session under it.
    pub fn to_bytes(&self) -> Option<[u8; ID_BYTES]> {
        let mut bytes = [0u8; ID_BYTES];
        // The engine refuses non-zero trailing bits, so this is exactly the inverse of `from_bytes`.
        match URL_SAFE_NO_PAD.decode_slice(self.0.as_bytes(), &mut bytes) {
            Ok(ID_BYTES) => Some(bytes),
            _ => None,
        }
    }

    /// The id whose bytes are `bytes` (the inverse of [`SessionId::to_bytes`]).
    pub fn from_bytes(bytes: [u8; ID_BYTES]) -> Self {
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Constant-time comparison, for checks an attacker could time (antiforgery binding).
    pub fn ct_eq(&self, other: &SessionId) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_stable_hash_of_secret() {
        let s = SessionSecret::generate();
        assert_eq!(s.id(), s.id());
        assert_eq!(s.id().as_str().len(), SessionId::LEN);
        assert_ne!(s.id(), SessionSecret::generate().id());
    }

    #[test]
    fn parse_rejects_malformed_ids() {
        let id = SessionSecret::generate().id();
        assert_eq!(SessionId::parse(id.as_str()), Some(id));
        for bad in [
            "",
            "short",
            "../../../../etc/passwd",
            "aaaaaaaaaaaaaaaaaaaaa!",
            &"a".repeat(23),
        ] {
            assert!(SessionId::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn bytes_round_trip_and_refuse_ids_no_secret_hashes_to() {
        for _ in 0..100 {
            let id = SessionSecret::generate().id();
            let bytes = id.to_bytes().unwrap();
            assert_eq!(SessionId::from_bytes(bytes), id);
        }
        // Parseable (22 base64url characters) but with bits set beyond the 128th.
        let odd = SessionId::parse("AAAAAAAAAAAAAAAAAAAAAB").unwrap();
        assert_eq!(odd.to_bytes(), None);
        let zero = SessionId::parse("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
        assert_eq!(zero.to_bytes(), Some([0; ID_BYTES]));
    }

    #[test]
    fn debug_hides_secret() {
        assert_eq!(
            format!("{:?}", SessionSecret::generate()),
            "SessionSecret(..)"
        );
    }
}
