//! The stored form of a key ("key document") and encryption at rest under a master key.
//!
//! A key document is one small JSON object per key:
//!
//! ```json
//! {"version":1,"id":"6f1c…","created_at":"…","activates_at":"…","expires_at":"…",
//!  "revoked_at":null,
//!  "material":{"encryption":"aes256gcm","master_key":"3b9d0c1e5a7f2468",
//!              "nonce":"<base64 12 bytes>","ciphertext":"<base64 32+16 bytes>"}}
//! ```
//!
//! Without a master key the material is `{"encryption":"none","key":"<base64 32 bytes>"}`.
//! Wrapping uses AES-256-GCM with the key id as associated data, so a wrapped blob copied onto
//! another key's document does not open.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::key::{Key, KeyId, KeyInfo, KeyMaterial};

/// Version of the key-document format this code writes and reads.
pub const DOCUMENT_VERSION: u32 = 1;

const WRAP_AAD_PREFIX: &[u8] = b"ringfence key-wrap v1:";

/// A key-encryption key: key material is stored only wrapped under it.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
    fingerprint: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.fingerprint)
    }
}

/// Why a master key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    /// The file could not be read.
    #[error("cannot read master key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file does not hold 32 bytes in base64.
    #[error("master key file {path} must hold 32 random bytes in base64 (as `openssl rand -base64 32` writes them)")]
    Malformed {
        /// The file.
        path: String,
    },
}

impl MasterKey {
    /// A master key from 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let digest = Sha256::new_with_prefix(b"ringfence master key fingerprint:")
            .chain_update(bytes)
            .finalize();
        let fingerprint = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            cipher: Aes256Gcm::new(bytes.into()),
            fingerprint,
        }
    }

    /// Reads a master key from a file holding 32 bytes in base64 (surrounding whitespace ignored).
    pub fn from_file(path: &Path) -> Result<Self, MasterKeyError> {
        let shown = path.display().to_string();
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| MasterKeyError::Io {
                    path: shown.clone(),
                    source,
                })?,
            );
        let bytes = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| {
            MasterKeyError::Malformed {
                path: shown.clone(),
            }
        })?);
        let array: &[u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| MasterKeyError::Malformed { path: shown })?;
        Ok(Self::from_bytes(array))
    }

    /// A short public fingerprint: stored beside wrapped material so a wrong master key is
    /// reported as such rather than as corruption.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn aad(id: &KeyId) -> Vec<u8> {
        let mut aad = WRAP_AAD_PREFIX.to_vec();
        aad.extend_from_slice(id.as_bytes());
        aad
    }
}

/// How the material is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "encryption", rename_all = "snake_case")]
pub enum MaterialDocument {
    /// In clear (base64). Only when no master key is configured; the node warns at start.
    None {
        /// Base64 of the 32 bytes.
        key: String,
    },
    /// Wrapped with AES-256-GCM under a master key.
    #[serde(rename = "aes256gcm")]
    Aes256Gcm {
        /// Fingerprint of the master key that wrapped it.
        master_key: String,
        /// Base64 of the 12-byte nonce.
        nonce: String,
        /// Base64 of ciphertext and tag.
        ciphertext: String,
    },
}

/// A key as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDocument {
    /// Format version ([`DOCUMENT_VERSION`]).
    pub version: u32,
    /// The key's id.
    pub id: KeyId,
    /// When the key was made.
    pub created_at: DateTime<Utc>,
    /// From when it protects new payloads.
    pub activates_at: DateTime<Utc>,
    /// From when it stops protecting new payloads.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked.
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
    /// The (possibly wrapped) material.
    pub material: MaterialDocument,
}

/// Why a key document could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// Not JSON of the expected shape.
    #[error("not a key document: {0}")]
    Malformed(String),
    /// A version this code does not know.
    #[error("key document version {0} is not supported")]
    UnsupportedVersion(u32),
    /// The material is wrapped but the node has no master key.
    #[error("key {id} is encrypted at rest under master key {fingerprint}; start the node with --master-key-file")]
    MasterKeyRequired {
        /// The key.
        id: KeyId,
        /// Fingerprint of the master key it needs.
        fingerprint: String,
    },
    /// The material is wrapped under another master key.
    #[error("wrong master key: key {id} is encrypted under master key {expected}, but the given master key is {given}")]
    WrongMasterKey {
        /// The key.
        id: KeyId,
        /// Fingerprint recorded in the document.
        expected: String,
        /// Fingerprint of the key given to this node.
        given: String,
    },
    /// The wrapped material does not authenticate (tampered document or wrong master key).
    #[error("key {0}: wrapped material does not decrypt with the given master key (wrong master key or tampered document)")]
    UnwrapFailed(KeyId),
}

impl KeyDocument {
    /// Seals a key for storage, wrapping its material when a master key is given.
    pub fn seal(key: &Key, master: Option<&MasterKey>) -> Self {
        let info = &key.info;
        let material = match master {
            None => MaterialDocument::None {
                key: STANDARD.encode(key.material.expose()),
            },
            Some(master) => {
                let mut nonce = [0u8; 12];
                rand::rngs::OsRng.fill_bytes(&mut nonce);
                let aad = MasterKey::aad(&info.id);
                // Encrypting 32 bytes into a fresh Vec cannot fail with AES-GCM; fall back to an
                // empty ciphertext (which will never open) rather than panic if it somehow does.
                let ciphertext = master
                    .cipher
                    .encrypt(
                        Nonce::from_slice(&nonce),
                        Payload {
                            msg: key.material.expose(),
                            aad: &aad,
                        },
                    )
                    .unwrap_or_default();
                MaterialDocument::Aes256Gcm {
                    master_key: master.fingerprint.clone(),
                    nonce: STANDARD.encode(nonce),
                    ciphertext: STANDARD.encode(ciphertext),
                }
            }
        };
        Self {
            version: DOCUMENT_VERSION,
            id: info.id,
            created_at: info.created_at,
            activates_at: info.activates_at,
            expires_at: info.expires_at,
            revoked_at: info.revoked_at,
            material,
        }
    }

    /// Parses a stored document.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DocumentError> {
        let doc: Self =
            serde_json::from_slice(bytes).map_err(|e| DocumentError::Malformed(e.to_string()))?;
        if doc.version != DOCUMENT_VERSION {
            return Err(DocumentError::UnsupportedVersion(doc.version));
        }
        if doc.expires_at <= doc.activates_at {
            return Err(DocumentError::Malformed(format!(
                "key {} expires before it activates",
                doc.id
            )));
        }
        Ok(doc)
    }

    /// The document as JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain strings and timestamps cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The public description.
    pub fn info(&self) -> KeyInfo {
        KeyInfo {
            id: self.id,
            created_at: self.created_at,
            activates_at: self.activates_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
        }
    }

    /// Whether the material is encrypted at rest.
    pub fn is_wrapped(&self) -> bool {
        matches!(self.material, MaterialDocument::Aes256Gcm { .. })
    }

    /// Opens the document into a usable key.
    pub fn open(&self, master: Option<&MasterKey>) -> Result<Key, DocumentError> {
        let malformed = |what: &str| DocumentError::Malformed(format!("key {}: {what}", self.id));
        let material = match (&self.material, master) {
            (MaterialDocument::None { key }, _) => {
                let bytes = Zeroizing::new(
                    STANDARD
                        .decode(key)
                        .map_err(|_| malformed("material is not base64"))?,
                );
                KeyMaterial::from_slice(&bytes)
                    .ok_or_else(|| malformed("material is not 32 bytes"))?
            }
            (MaterialDocument::Aes256Gcm { master_key, .. }, None) => {
                return Err(DocumentError::MasterKeyRequired {
                    id: self.id,
                    fingerprint: master_key.clone(),
                })
            }
            (
                MaterialDocument::Aes256Gcm {
                    master_key,
                    nonce,
                    ciphertext,
                },
                Some(master),
            ) => {
                if master_key != master.fingerprint() {
                    return Err(DocumentError::WrongMasterKey {
                        id: self.id,
                        expected: master_key.clone(),
                        given: master.fingerprint().to_owned(),
                    });
                }
                let nonce = STANDARD
                    .decode(nonce)
                    .map_err(|_| malformed("nonce is not base64"))?;
                if nonce.len() != 12 {
                    return Err(malformed("nonce is not 12 bytes"));
                }
                let ciphertext = STANDARD
                    .decode(ciphertext)
                    .map_err(|_| malformed("ciphertext is not base64"))?;
                let aad = MasterKey::aad(&self.id);
                let plain = Zeroizing::new(
                    master
                        .cipher
                        .decrypt(
                            Nonce::from_slice(&nonce),
                            Payload {
                                msg: &ciphertext,
                                aad: &aad,
                            },
                        )
                        .map_err(|_| DocumentError::UnwrapFailed(self.id))?,
                );
                KeyMaterial::from_slice(&plain)
                    .ok_or_else(|| malformed("material is not 32 bytes"))?
            }
        };
        Ok(Key {
            info: self.info(),
            material,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn key() -> Key {
        let now = Utc::now();
        Key {
            info: KeyInfo {
                id: KeyId::generate(),
                created_at: now,
                activates_at: now,
                expires_at: now + Duration::days(90),
                revoked_at: None,
            },
            material: KeyMaterial::generate(),
        }
    }

    #[test]
    fn plain_document_round_trips() {
        let key = key();
        let doc = KeyDocument::seal(&key, None);
        let back = KeyDocument::from_json(doc.to_json().as_bytes()).unwrap();
        assert_eq!(
            back.open(None).unwrap().material.expose(),
            key.material.expose()
        );
    }

    #[test]
    fn wrapped_document_needs_the_right_master_key() {
        let key = key();
        let master = MasterKey::from_bytes(&[7; 32]);
        let doc = KeyDocument::seal(&key, Some(&master));
        assert!(!doc
            .to_json()
            .contains(&STANDARD.encode(key.material.expose())));
        assert_eq!(
            doc.open(Some(&master)).unwrap().material.expose(),
            key.material.expose()
        );
        assert!(matches!(
            doc.open(None),
            Err(DocumentError::MasterKeyRequired { .. })
        ));
        let wrong = MasterKey::from_bytes(&[8; 32]);
        assert!(matches!(
            doc.open(Some(&wrong)),
            Err(DocumentError::WrongMasterKey { .. })
        ));
    }

    #[test]
    fn wrapped_material_is_bound_to_its_key_id() {
        let master = MasterKey::from_bytes(&[7; 32]);
        let mut doc = KeyDocument::seal(&key(), Some(&master));
        doc.id = KeyId::generate();
        assert!(matches!(
            doc.open(Some(&master)),
            Err(DocumentError::UnwrapFailed(_))
        ));
    }

    #[test]
    fn malformed_documents_are_errors() {
        for bad in [&b"not json"[..], b"{}", br#"{"version":2}"#] {
            assert!(KeyDocument::from_json(bad).is_err());
        }
    }

    #[test]
    fn master_key_file_must_hold_32_base64_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        std::fs::write(&good, format!("{}\n", STANDARD.encode([1u8; 32]))).unwrap();
        assert!(MasterKey::from_file(&good).is_ok());
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "c2hvcnQ=\n").unwrap();
        assert!(matches!(
            MasterKey::from_file(&bad),
            Err(MasterKeyError::Malformed { .. })
        ));
        assert!(matches!(
            MasterKey::from_file(&dir.path().join("missing")),
            Err(MasterKeyError::Io { .. })
        ));
    }
}
