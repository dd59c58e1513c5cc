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
        SessionId(URL_SAFE_NO_PAD.encode(&digest[..16]))
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
    fn debug_hides_secret() {
        assert_eq!(
            format!("{:?}", SessionSecret::generate()),
            "SessionSecret(..)"
        );
    }
}
