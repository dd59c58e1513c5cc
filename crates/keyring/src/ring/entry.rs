//! A key held in memory with the ciphers derived from it per purpose, and the map that finds
//! it by id.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, OnceLock, RwLock};

use aes_gcm::Aes256Gcm;

use crate::key::{Key, KeyInfo, KeyMaterial};
use crate::payload::derive_purpose_cipher;

/// Hasher for maps keyed by bytes that are already uniformly random: key ids from the OS
/// CSPRNG and SHA-256 purpose hashes. Their first eight bytes are as good a hash as any, and
/// SipHash cost more on the hot path than a payload's framing. Flooding is no concern: only
/// trusted values are inserted (keys from the store, purposes named in code), so a hostile key id
/// can only probe a table of a few entries.
#[derive(Default)]
pub(crate) struct RandomBytesHasher(u64);

impl Hasher for RandomBytesHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        // The rotation keeps an earlier write (the slice's length prefix) from cancelling
        // a later one; the random bytes land unchanged in the bits the table uses.
        self.0 = self.0.rotate_left(17) ^ u64::from_le_bytes(word);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by uniformly random bytes (see [`RandomBytesHasher`]).
pub(crate) type RandomBytesMap<K, V> = HashMap<K, V, BuildHasherDefault<RandomBytesHasher>>;

/// Purposes per key served without a lock; an application uses a handful.
pub(super) const CIPHER_SLOTS: usize = 8;

/// A key held in memory with the sub-key ciphers derived from it, one per purpose, computed
/// once and reused (derivation costs far more than a payload).
pub(crate) struct KeyEntry {
    pub(crate) info: KeyInfo,
    material: KeyMaterial,
    /// The first purposes used with this key, in order of first use. Reading a filled slot is
    /// one acquire load: no lock, no shared reference count on the hot path.
    pub(super) slots: [OnceLock<([u8; 32], Aes256Gcm)>; CIPHER_SLOTS],
    /// Purposes beyond the slots.
    pub(super) overflow: RwLock<RandomBytesMap<[u8; 32], Arc<Aes256Gcm>>>,
}

impl KeyEntry {
    pub(super) fn new(key: Key) -> Self {
        Self {
            info: key.info,
            material: key.material,
            slots: Default::default(),
            overflow: RwLock::new(RandomBytesMap::default()),
        }
    }

    /// Runs `f` with the cipher of `purpose`, deriving it on first use.
    pub(crate) fn with_cipher<R>(&self, purpose: &[u8; 32], f: impl FnOnce(&Aes256Gcm) -> R) -> R {
        for slot in &self.slots {
            let (slot_purpose, cipher) = match slot.get() {
                Some(filled) => filled,
                // Claim the first empty slot. Every thread scans in the same order, so a
                // purpose is placed once: a thread that loses the race to another purpose
                // moves on, one racing with the same purpose waits and finds it.
                None => slot.get_or_init(|| (*purpose, self.derive(purpose))),
            };
            if slot_purpose == purpose {
                return f(cipher);
            }
        }
        f(&self.overflow_cipher(purpose))
    }

    fn overflow_cipher(&self, purpose: &[u8; 32]) -> Arc<Aes256Gcm> {
        if let Some(cipher) = self
            .overflow
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(purpose)
        {
            return Arc::clone(cipher);
        }
        let cipher = Arc::new(self.derive(purpose));
        self.overflow
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(*purpose)
            .or_insert(cipher)
            .clone()
    }

    pub(super) fn derive(&self, purpose: &[u8; 32]) -> Aes256Gcm {
        derive_purpose_cipher(&self.material, &self.info.id, purpose)
    }

    pub(super) fn key(&self) -> Key {
        Key {
            info: self.info.clone(),
            material: self.material.clone(),
        }
    }
}
