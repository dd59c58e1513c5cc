//! The authenticated encryptors of .NET Data Protection: AES-CBC + HMAC (the default,
//! `ManagedAuthenticatedEncryptor`/`CbcAuthenticatedEncryptor`) and AES-GCM
//! (`AesGcmAuthenticatedEncryptor`/`GcmAuthenticatedEncryptor`). Both derive fresh subkeys for
//! every payload from the key's master key (the key-derivation key) with SP800-108, the additional
//! authenticated data as the label and a random 128-bit key modifier as the context, so the AAD
//! (magic header, key id, purposes) is authenticated without ever being sent.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::AesGcm;
use hmac::{Hmac, Mac};
use rand::RngCore;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::kdf;

/// Size of the random key modifier at the front of every payload.
const KEY_MODIFIER_LEN: usize = 16;
/// AES block size, also the CBC IV size.
const BLOCK_LEN: usize = 16;
/// GCM nonce and tag sizes .NET uses.
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The MAC of a CBC encryptor (`<validation algorithm=…>` / CNG `<hash algorithm=…>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// HMAC-SHA1 (only the managed and CNG descriptors can name it).
    HmacSha1,
    /// HMAC-SHA256, the default.
    HmacSha256,
    /// HMAC-SHA384 (managed and CNG descriptors).
    HmacSha384,
    /// HMAC-SHA512.
    HmacSha512,
}

impl Validation {
    /// Digest length in bytes, which is also the MAC subkey length .NET derives.
    pub fn digest_len(self) -> usize {
        match self {
            Validation::HmacSha1 => 20,
            Validation::HmacSha256 => 32,
            Validation::HmacSha384 => 48,
            Validation::HmacSha512 => 64,
        }
    }

    fn mac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            let Ok(mut mac) = <M as hmac::digest::KeyInit>::new_from_slice(key) else {
                unreachable!("HMAC accepts keys of every length")
            };
            for part in parts {
                mac.update(part);
            }
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Validation::HmacSha1 => run::<Hmac<sha1::Sha1>>(key, parts),
            Validation::HmacSha256 => run::<Hmac<sha2::Sha256>>(key, parts),
            Validation::HmacSha384 => run::<Hmac<sha2::Sha384>>(key, parts),
            Validation::HmacSha512 => run::<Hmac<sha2::Sha512>>(key, parts),
        }
    }
}

/// An encryption algorithm pair a .NET key descriptor names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// AES in CBC mode (PKCS#7 padding) then HMAC over IV and ciphertext.
    Cbc {
        /// AES key size in bytes: 16, 24 or 32.
        key_len: usize,
        /// The MAC.
        validation: Validation,
    },
    /// AES-GCM with a 96-bit nonce and a 128-bit tag.
    Gcm {
        /// AES key size in bytes: 16, 24 or 32.
        key_len: usize,
    },
}

impl Algorithm {
    /// The default of `AddDataProtection()`: AES-256-CBC with HMAC-SHA256.
    pub const DEFAULT: Algorithm = Algorithm::Cbc {
        key_len: 32,
        validation: Validation::HmacSha256,
    };

    /// The name `AuthenticatedEncryptorDescriptor` writes (`AES_256_CBC`, …).
    pub fn encryption_name(self) -> String {
        match self {
            Algorithm::Cbc { key_len, .. } => format!("AES_{}_CBC", key_len * 8),
            Algorithm::Gcm { key_len } => format!("AES_{}_GCM", key_len * 8),
        }
    }
}

/// Why a payload's encryptor output did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Shorter than the fixed parts of the format.
    Truncated,
    /// The MAC or tag does not match: other bytes, or other additional authenticated data.
    Unauthentic,
}

/// One key's encryptor: its algorithm, master key and the context header .NET mixes into every
/// derivation (so a key can never be used under two algorithms).
pub struct Encryptor {
    algorithm: Algorithm,
    master_key: Zeroizing<Vec<u8>>,
    context_header: Vec<u8>,
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Encryptor {
    /// An encryptor for `master_key` (the key's `<masterKey>`, 64 bytes as .NET makes them);
    /// refuses AES key sizes other than 16, 24 and 32 bytes.
    pub fn new(algorithm: Algorithm, master_key: Vec<u8>) -> Result<Encryptor, String> {
        let (Algorithm::Cbc { key_len, .. } | Algorithm::Gcm { key_len }) = algorithm;
        if ![16, 24, 32].contains(&key_len) {
            return Err(format!("unsupported AES key size of {key_len} bytes"));
        }
        Ok(Encryptor {
            algorithm,
            master_key: Zeroizing::new(master_key),
            context_header: context_header(algorithm),
        })
    }

    /// The algorithm pair.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The context header (exposed for the known-answer tests).
    pub fn context_header(&self) -> &[u8] {
        &self.context_header
    }

    /// Encrypts with a fresh random key modifier and IV/nonce.
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut random = [0u8; KEY_MODIFIER_LEN + BLOCK_LEN];
        rand::rngs::OsRng.fill_bytes(&mut random);
        self.encrypt_with_randomness(plaintext, aad, &random)
    }

    /// Encrypts with the given key modifier followed by IV (CBC, 16 bytes) or nonce (GCM, 12
    /// bytes). Only known-answer tests pass fixed bytes here; everything else calls `encrypt`.
    #[doc(hidden)]
    pub fn encrypt_with_randomness(&self, plaintext: &[u8], aad: &[u8], random: &[u8]) -> Vec<u8> {
        let (key_modifier, rest) = random.split_at(KEY_MODIFIER_LEN.min(random.len()));
        match self.algorithm {
            Algorithm::Cbc {
                key_len,
                validation,
            } => {
                let iv = &rest[..BLOCK_LEN];
                let keys = self.subkeys(aad, key_modifier, key_len + validation.digest_len());
                let (enc_key, mac_key) = keys.split_at(key_len);
                let ciphertext = cbc_encrypt(enc_key, iv, plaintext);
                let mac = validation.mac(mac_key, &[iv, &ciphertext]);
                [key_modifier, iv, &ciphertext, &mac].concat()
            }
            Algorithm::Gcm { key_len } => {
                let nonce = &rest[..NONCE_LEN];
                let key = self.subkeys(aad, key_modifier, key_len);
                let mut buffer = plaintext.to_vec();
                let tag = gcm_seal(&key, nonce, &mut buffer);
                [key_modifier, nonce, &buffer, &tag].concat()
            }
        }
    }

    /// Opens the encryptor output of a payload (what follows the magic header and key id).
    pub(crate) fn decrypt(&self, payload: &[u8], aad: &[u8]) -> Result<Vec<u8>, OpenError> {
        match self.algorithm {
            Algorithm::Cbc {
                key_len,
                validation,
            } => {
                let mac_len = validation.digest_len();
                if payload.len() < KEY_MODIFIER_LEN + BLOCK_LEN + mac_len {
                    return Err(OpenError::Truncated);
                }
                let (key_modifier, rest) = payload.split_at(KEY_MODIFIER_LEN);
                let (authenticated, mac) = rest.split_at(rest.len() - mac_len);
                let keys = self.subkeys(aad, key_modifier, key_len + mac_len);
                let (enc_key, mac_key) = keys.split_at(key_len);
                let expected = validation.mac(mac_key, &[authenticated]);
                if !bool::from(expected.ct_eq(mac)) {
                    return Err(OpenError::Unauthentic);
                }
                let (iv, ciphertext) = authenticated.split_at(BLOCK_LEN);
                cbc_decrypt(enc_key, iv, ciphertext).ok_or(OpenError::Unauthentic)
            }
            Algorithm::Gcm { key_len } => {
                if payload.len() < KEY_MODIFIER_LEN + NONCE_LEN + TAG_LEN {
                    return Err(OpenError::Truncated);
                }
                let (key_modifier, rest) = payload.split_at(KEY_MODIFIER_LEN);
                let (nonce, rest) = rest.split_at(NONCE_LEN);
                let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
                let key = self.subkeys(aad, key_modifier, key_len);
                let mut buffer = ciphertext.to_vec();
                gcm_open(&key, nonce, &mut buffer, tag).ok_or(OpenError::Unauthentic)?;
                Ok(buffer)
            }
        }
    }

    fn subkeys(&self, aad: &[u8], key_modifier: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(vec![0u8; len]);
        kdf::derive(
            &self.master_key,
            aad,
            &self.context_header,
            key_modifier,
            &mut out,
        );
        out
    }
}

/// The context header: algorithm parameters and a fingerprint of the algorithm (its output under
/// keys derived from an empty key), as .NET's encryptors compute it.
fn context_header(algorithm: Algorithm) -> Vec<u8> {
    let be = |n: usize| (n as u32).to_be_bytes();
    match algorithm {
        Algorithm::Cbc {
            key_len,
            validation,
        } => {
            let mac_len = validation.digest_len();
            let mut keys = vec![0u8; key_len + mac_len];
            kdf::derive(&[], &[], &[], &[], &mut keys);
            let (enc_key, mac_key) = keys.split_at(key_len);
            let empty_ciphertext = cbc_encrypt(enc_key, &[0u8; BLOCK_LEN], &[]);
            let empty_mac = validation.mac(mac_key, &[]);
            [
                &[0u8, 0][..],
                &be(key_len),
                &be(BLOCK_LEN),
                &be(mac_len),
                &be(mac_len),
                &empty_ciphertext,
                &empty_mac,
            ]
            .concat()
        }
        Algorithm::Gcm { key_len } => {
            let mut key = vec![0u8; key_len];
            kdf::derive(&[], &[], &[], &[], &mut key);
            let tag = gcm_seal(&key, &[0u8; NONCE_LEN], &mut []);
            [
                &[0u8, 1][..],
                &be(key_len),
                &be(NONCE_LEN),
                &be(TAG_LEN),
                &be(TAG_LEN),
                &tag,
            ]
            .concat()
        }
    }
}

fn cbc_encrypt(key: &[u8], iv: &[u8], plaintext: &[u8]) -> Vec<u8> {
    fn run<C>(key: &[u8], iv: &[u8], plaintext: &[u8]) -> Vec<u8>
    where
        cbc::Encryptor<C>: KeyIvInit + BlockEncryptMut,
        C: aes::cipher::BlockCipher + aes::cipher::BlockEncryptMut,
    {
        match cbc::Encryptor::<C>::new_from_slices(key, iv) {
            Ok(cipher) => cipher.encrypt_padded_vec_mut::<Pkcs7>(plaintext),
            Err(_) => unreachable!("key and IV lengths come from the algorithm"),
        }
    }
    match key.len() {
        16 => run::<aes::Aes128>(key, iv, plaintext),
        24 => run::<aes::Aes192>(key, iv, plaintext),
        _ => run::<aes::Aes256>(key, iv, plaintext),
    }
}

fn cbc_decrypt(key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
    fn run<C>(key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>>
    where
        cbc::Decryptor<C>: KeyIvInit + BlockDecryptMut,
        C: aes::cipher::BlockCipher + aes::cipher::BlockDecryptMut,
    {
        cbc::Decryptor::<C>::new_from_slices(key, iv)
            .ok()?
            .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
            .ok()
    }
    match key.len() {
        16 => run::<aes::Aes128>(key, iv, ciphertext),
        24 => run::<aes::Aes192>(key, iv, ciphertext),
        _ => run::<aes::Aes256>(key, iv, ciphertext),
    }
}

/// GCM without associated data: .NET authenticates the AAD through the derived key instead.
fn gcm_seal(key: &[u8], nonce: &[u8], buffer: &mut [u8]) -> Vec<u8> {
    fn run<C>(key: &[u8], nonce: &[u8], buffer: &mut [u8]) -> Vec<u8>
    where
        AesGcm<C, U12>: KeyInit + AeadInPlace,
    {
        let Ok(cipher) = AesGcm::<C, U12>::new_from_slice(key) else {
            unreachable!("key length comes from the algorithm")
        };
        match cipher.encrypt_in_place_detached(nonce.into(), &[], buffer) {
            Ok(tag) => tag.to_vec(),
            Err(_) => unreachable!("payloads are far below GCM's length limit"),
        }
    }
    match key.len() {
        16 => run::<aes::Aes128>(key, nonce, buffer),
        24 => run::<aes::Aes192>(key, nonce, buffer),
        _ => run::<aes::Aes256>(key, nonce, buffer),
    }
}

fn gcm_open(key: &[u8], nonce: &[u8], buffer: &mut [u8], tag: &[u8]) -> Option<()> {
    fn run<C>(key: &[u8], nonce: &[u8], buffer: &mut [u8], tag: &[u8]) -> Option<()>
    where
        AesGcm<C, U12>: KeyInit + AeadInPlace,
    {
        AesGcm::<C, U12>::new_from_slice(key)
            .ok()?
            .decrypt_in_place_detached(nonce.into(), &[], buffer, tag.into())
            .ok()
    }
    match key.len() {
        16 => run::<aes::Aes128>(key, nonce, buffer, tag),
        24 => run::<aes::Aes192>(key, nonce, buffer, tag),
        _ => run::<aes::Aes256>(key, nonce, buffer, tag),
    }
}
