//! The protected-payload format, version 1.
//!
//! ```text
//! offset  size  field
//! 0       1     format version, 0x01
//! 1       16    key id
//! 17      12    nonce (random per payload)
//! 29      n     ciphertext (AES-256-GCM, same length as the plaintext)
//! 29+n    16    GCM tag
//! ```
//!
//! The key id (bytes 1..17) is the associated data, so changing it fails authentication. The
//! version byte is not: it must be exactly [`FORMAT_VERSION`] (anything else is
//! [`UnsupportedVersion`](UnprotectError::UnsupportedVersion) before any key is looked up), and
//! it is bound into every sub-key by the HKDF info (`ringfence/v1/…`), so a later format gets
//! other keys rather than relying on this byte being authenticated. Sixteen bytes of
//! associated data are exactly one GHASH block; a 17th byte cost a second, zero-padded block in
//! each direction, about a fifth of a 64-byte round trip.
//!
//! The AES key is not the key's material but a sub-key derived per purpose
//! (see [`derive_purpose_cipher`]), so a payload made for one purpose never opens under
//! another. Payloads travel as URL-safe base64 without padding (cookie- and URL-safe).

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::key::{KeyId, KeyMaterial, KEY_ID_LEN};
use crate::UnprotectError;

/// The format version byte this code writes and reads.
pub const FORMAT_VERSION: u8 = 0x01;
/// Bytes of the clear header (version and key id); only the key id, [`ASSOCIATED_DATA`], is
/// authenticated.
pub const HEADER_LEN: usize = 1 + KEY_ID_LEN;
/// The bytes of a payload authenticated as associated data: the key id.
pub const ASSOCIATED_DATA: std::ops::Range<usize> = 1..HEADER_LEN;
/// Bytes of the nonce.
pub const NONCE_LEN: usize = 12;
/// Bytes of the authentication tag.
pub const TAG_LEN: usize = 16;
/// Bytes a payload adds to its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

/// A purpose chain folded into 32 bytes: the cache key for derived sub-keys and the HKDF info.
/// Each purpose is length-prefixed so `["a", "bc"]` and `["ab", "c"]` differ.
pub fn purpose_hash<S: AsRef<str>>(purposes: &[S]) -> [u8; 32] {
    let mut hasher = Sha256::new_with_prefix(b"ringfence purposes v1");
    for purpose in purposes {
        let bytes = purpose.as_ref().as_bytes();
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    }
    hasher.finalize().into()
}

/// Derives the AES-256-GCM cipher of one (key, purpose): HKDF-SHA256 with the key material as
/// input keying material, the key id as salt and the purpose hash as info.
pub fn derive_purpose_cipher(material: &KeyMaterial, id: &KeyId, purpose: &[u8; 32]) -> Aes256Gcm {
    let hkdf = Hkdf::<Sha256>::new(Some(id.as_bytes()), material.expose());
    let mut okm = Zeroizing::new([0u8; 32]);
    let mut info = [0u8; 25 + 32];
    info[..25].copy_from_slice(b"ringfence/v1/aes-256-gcm/");
    info[25..].copy_from_slice(purpose);
    // 32 bytes is far below HKDF-SHA256's 8160-byte output limit, so expand cannot fail.
    let _ = hkdf.expand(&info, okm.as_mut_slice());
    Aes256Gcm::new((&*okm).into())
}

/// Reads the key id out of a raw payload, checking only the framing.
pub fn key_id_of(payload: &[u8]) -> Result<KeyId, UnprotectError> {
    if payload.len() < OVERHEAD {
        return Err(UnprotectError::Malformed);
    }
    if payload[0] != FORMAT_VERSION {
        return Err(UnprotectError::UnsupportedVersion(payload[0]));
    }
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&payload[1..HEADER_LEN]);
    Ok(KeyId(id))
}

/// Seals `plaintext` into a raw payload (one allocation: the output).
pub fn seal(cipher: &Aes256Gcm, id: &KeyId, plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.push(FORMAT_VERSION);
    out.extend_from_slice(id.as_bytes());
    let mut nonce = [0u8; NONCE_LEN];
    // A userspace CSPRNG (ChaCha, reseeded from the OS) keeps the hot path free of syscalls.
    rand::thread_rng().fill_bytes(&mut nonce);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let (head, body) = out.split_at_mut(HEADER_LEN + NONCE_LEN);
    // Encryption in place only fails for plaintexts beyond GCM's 64 GiB limit.
    let tag = cipher
        .encrypt_in_place_detached(
            Nonce::from_slice(&head[HEADER_LEN..]),
            &head[ASSOCIATED_DATA],
            body,
        )
        .unwrap_or_default();
    out.extend_from_slice(&tag);
    out
}

/// Checks the framing [`key_id_of`] checks: the version byte is not authenticated, so the
/// openers refuse any other version themselves rather than trust every caller to have asked.
fn check_framing(payload: &[u8]) -> Result<(), UnprotectError> {
    match payload.first() {
        _ if payload.len() < OVERHEAD => Err(UnprotectError::Malformed),
        Some(&FORMAT_VERSION) => Ok(()),
        Some(&other) => Err(UnprotectError::UnsupportedVersion(other)),
        None => Err(UnprotectError::Malformed),
    }
}

/// Opens a raw payload (under the key [`key_id_of`] names).
pub fn open(cipher: &Aes256Gcm, payload: &[u8]) -> Result<Vec<u8>, UnprotectError> {
    check_framing(payload)?;
    let (head, rest) = payload.split_at(HEADER_LEN + NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut plain = ciphertext.to_vec();
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(&head[HEADER_LEN..]),
            &head[ASSOCIATED_DATA],
            &mut plain,
            Tag::from_slice(tag),
        )
        .map_err(|_| UnprotectError::Invalid)?;
    Ok(plain)
}

/// Opens a raw payload in its own buffer: decrypts in place and keeps only the plaintext, so
/// the buffer decoded from base64 is the only allocation.
pub fn open_owned(cipher: &Aes256Gcm, mut payload: Vec<u8>) -> Result<Vec<u8>, UnprotectError> {
    check_framing(&payload)?;
    let tag_at = payload.len() - TAG_LEN;
    let (head, rest) = payload.split_at_mut(HEADER_LEN + NONCE_LEN);
    let (ciphertext, tag) = rest.split_at_mut(tag_at - HEADER_LEN - NONCE_LEN);
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(&head[HEADER_LEN..]),
            &head[ASSOCIATED_DATA],
            ciphertext,
            Tag::from_slice(tag),
        )
        .map_err(|_| UnprotectError::Invalid)?;
    payload.truncate(tag_at);
    payload.drain(..HEADER_LEN + NONCE_LEN);
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_are_length_prefixed() {
        assert_ne!(purpose_hash(&["a", "bc"]), purpose_hash(&["ab", "c"]));
        assert_ne!(purpose_hash::<&str>(&[]), purpose_hash(&[""]));
    }

    #[test]
    fn seal_open_round_trip_and_header() {
        let id = KeyId::generate();
        let cipher = derive_purpose_cipher(&KeyMaterial::generate(), &id, &purpose_hash(&["t"]));
        let sealed = seal(&cipher, &id, b"hello");
        assert_eq!(sealed.len(), OVERHEAD + 5);
        assert_eq!(sealed[0], FORMAT_VERSION);
        assert_eq!(key_id_of(&sealed).unwrap(), id);
        assert_eq!(open(&cipher, &sealed).unwrap(), b"hello");
        assert_eq!(open_owned(&cipher, sealed.clone()).unwrap(), b"hello");
        let mut tampered = sealed.clone();
        tampered[OVERHEAD - 1] ^= 1;
        assert_eq!(open_owned(&cipher, tampered), Err(UnprotectError::Invalid));

        // The associated data is the key id alone, byte for byte.
        let (head, rest) = sealed.split_at(HEADER_LEN + NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut plain = ciphertext.to_vec();
        cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&head[HEADER_LEN..]),
                id.as_bytes(),
                &mut plain,
                Tag::from_slice(tag),
            )
            .unwrap();
        assert_eq!(plain, b"hello");
    }

    #[test]
    fn every_version_but_one_is_refused_before_decryption() {
        let id = KeyId::generate();
        let cipher = derive_purpose_cipher(&KeyMaterial::generate(), &id, &purpose_hash(&["t"]));
        let sealed = seal(&cipher, &id, b"hello");
        for version in (0..=u8::MAX).filter(|v| *v != FORMAT_VERSION) {
            let mut other = sealed.clone();
            other[0] = version;
            let refused = UnprotectError::UnsupportedVersion(version);
            assert_eq!(key_id_of(&other), Err(refused.clone()));
            assert_eq!(open(&cipher, &other), Err(refused.clone()));
            assert_eq!(open_owned(&cipher, other), Err(refused));
        }
    }
}
