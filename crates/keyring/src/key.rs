//! Keys: ids, lifetimes and secret material.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Bytes of a key id in a payload.
pub const KEY_ID_LEN: usize = 16;
/// Bytes of key material (AES-256).
pub const KEY_MATERIAL_LEN: usize = 32;

/// A key's id: 128 random bits, carried in clear in every payload so any node can find the key
/// that opens it. Written like a UUID (`8-4-4-4-12` hex) in documents, logs and the CLI.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl KeyId {
    /// A fresh random id.
    pub fn generate() -> Self {
        let mut bytes = [0u8; KEY_ID_LEN];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_ID_LEN] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A string that is not a key id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a key id (expected 32 hex digits, dashes allowed): {0:?}")]
pub struct ParseKeyIdError(pub String);

impl FromStr for KeyId {
    type Err = ParseKeyIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || ParseKeyIdError(text.chars().take(64).collect());
        let hex: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
        if hex.len() != KEY_ID_LEN * 2 || text.len() > 36 {
            return Err(err());
        }
        let mut bytes = [0u8; KEY_ID_LEN];
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            let digit = |c: u8| (c as char).to_digit(16).ok_or_else(err);
            bytes[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
        }
        Ok(Self(bytes))
    }
}

impl Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Secret key material. Zeroed on drop; never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct KeyMaterial(pub(crate) [u8; KEY_MATERIAL_LEN]);

impl KeyMaterial {
    /// 256 fresh bits from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; KEY_MATERIAL_LEN];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Material from exact bytes; `None` unless 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; KEY_MATERIAL_LEN]>::try_from(bytes).ok().map(Self)
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8; KEY_MATERIAL_LEN] {
        &self.0
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyMaterial(..)")
    }
}

/// What a key is at a moment in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// Created, activation still ahead: known to every node before anyone protects with it.
    Pending,
    /// Active and usable for new payloads.
    Active,
    /// Past its expiration: still opens old payloads, never protects new ones.
    Expired,
    /// Revoked: opens nothing.
    Revoked,
}

/// A key's public description (everything but the material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// The key's id.
    pub id: KeyId,
    /// When the key was made.
    pub created_at: DateTime<Utc>,
    /// From when it may protect new payloads.
    pub activates_at: DateTime<Utc>,
    /// From when it no longer protects new payloads (it still opens old ones).
    pub expires_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl KeyInfo {
    /// The key's status at `now`.
    pub fn status(&self, now: DateTime<Utc>) -> KeyStatus {
        if self.revoked_at.is_some() {
            KeyStatus::Revoked
        } else if now >= self.expires_at {
            KeyStatus::Expired
        } else if now < self.activates_at {
            KeyStatus::Pending
        } else {
            KeyStatus::Active
        }
    }

    /// Whether the key is revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// A key: its description and its material.
#[derive(Clone)]
pub struct Key {
    /// Public description.
    pub info: KeyInfo,
    /// Secret material.
    pub material: KeyMaterial,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_round_trips_through_text() {
        let id = KeyId::generate();
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(text.parse::<KeyId>(), Ok(id));
        assert_eq!(text.replace('-', "").parse::<KeyId>(), Ok(id));
    }

    #[test]
    fn key_id_rejects_garbage() {
        for bad in [
            "",
            "xyz",
            "0123456789abcdef0123456789abcdeg",
            "-----------------------------------------------------",
        ] {
            assert!(bad.parse::<KeyId>().is_err(), "{bad}");
        }
    }
}
