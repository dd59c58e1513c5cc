//! `IDataProtector` payloads: `09 F0 C9 F0` (magic header), the 16-byte key id in .NET's GUID byte
//! order, then the key's encryptor output. The additional authenticated data is the magic header,
//! the key id and the purpose chain (a big-endian count, then each purpose as .NET's
//! `BinaryWriter` writes a string), so a payload only opens under the purposes it was made for.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::encryptor::OpenError;
use crate::keys::KeyRing;
use crate::{from_ticks, to_ticks, Error};

/// The first four bytes of every payload.
pub const MAGIC_HEADER: [u8; 4] = [0x09, 0xF0, 0xC9, 0xF0];
/// The purpose `ITimeLimitedDataProtector` appends to its inner protector's.
pub const TIME_LIMITED_PURPOSE: &str =
    "Microsoft.AspNetCore.DataProtection.TimeLimitedDataProtector.v1";

/// A protector for one purpose chain (the application discriminator first) over a key ring.
#[derive(Debug, Clone)]
pub struct DataProtector {
    ring: Arc<KeyRing>,
    purposes: Vec<String>,
}

impl DataProtector {
    /// A protector for `purposes`, exactly as .NET's `CreateProtector(a).CreateProtector(b)…`.
    pub fn new(ring: Arc<KeyRing>, purposes: Vec<String>) -> DataProtector {
        DataProtector { ring, purposes }
    }

    /// The same ring with one more purpose.
    pub fn create_protector(&self, purpose: &str) -> DataProtector {
        let mut purposes = self.purposes.clone();
        purposes.push(purpose.to_owned());
        DataProtector::new(self.ring.clone(), purposes)
    }

    /// The same purposes over another ring (the ring reloaded).
    pub fn with_ring(&self, ring: Arc<KeyRing>) -> DataProtector {
        DataProtector::new(ring, self.purposes.clone())
    }

    /// The purpose chain.
    pub fn purposes(&self) -> &[String] {
        &self.purposes
    }

    /// Protects under the ring's default key at `now`.
    pub fn protect(&self, plaintext: &[u8], now: DateTime<Utc>) -> Result<Vec<u8>, Error> {
        let key = self.ring.default_key(now).ok_or_else(|| {
            // The likely cause worth naming: keys encrypted at rest or of an unknown algorithm.
            let unusable = self.ring.keys().iter().find_map(|k| {
                let reason = k.encryptor.as_ref().err()?;
                Some(format!(" (key {}: {reason})", k.id))
            });
            Error::NoDefaultKey(unusable.unwrap_or_default())
        })?;
        let encryptor = key
            .encryptor
            .as_ref()
            .map_err(|reason| Error::UnusableKey {
                id: key.id,
                reason: reason.clone(),
            })?;
        let aad = additional_authenticated_data(key.id, &self.purposes);
        let body = encryptor.encrypt(plaintext, &aad);
        Ok([&aad[..20], &body].concat())
    }

    /// Opens a payload protected under this purpose chain with any key of the ring.
    pub fn unprotect(&self, payload: &[u8]) -> Result<Vec<u8>, Error> {
        if payload.len() < 20 {
            return Err(Error::NotAPayload(
                "shorter than the magic header and key id",
            ));
        }
        if payload[..4] != MAGIC_HEADER {
            return Err(Error::NotAPayload(
                "it does not start with the magic header 09 F0 C9 F0",
            ));
        }
        let mut id_bytes = [0u8; 16];
        id_bytes.copy_from_slice(&payload[4..20]);
        let id = Uuid::from_bytes_le(id_bytes);
        let key = self.ring.key(id).ok_or(Error::UnknownKey(id))?;
        if key.revoked {
            return Err(Error::RevokedKey(id));
        }
        let encryptor = key
            .encryptor
            .as_ref()
            .map_err(|reason| Error::UnusableKey {
                id,
                reason: reason.clone(),
            })?;
        let aad = additional_authenticated_data(id, &self.purposes);
        encryptor
            .decrypt(&payload[20..], &aad)
            .map_err(|e| match e {
                OpenError::Truncated => Error::NotAPayload("too short for its key's algorithm"),
                OpenError::Unauthentic => Error::Unauthentic,
            })
    }

    /// `ITimeLimitedDataProtector.Protect`: the expiration (UTC ticks, big-endian) before the
    /// plaintext, under one more purpose.
    pub fn protect_until(
        &self,
        plaintext: &[u8],
        expiration: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<u8>, Error> {
        let inner = self.create_protector(TIME_LIMITED_PURPOSE);
        let stamped = [&to_ticks(expiration).to_be_bytes()[..], plaintext].concat();
        inner.protect(&stamped, now)
    }

    /// `ITimeLimitedDataProtector.Unprotect`: the plaintext and its expiration, refused after it.
    pub fn unprotect_time_limited(
        &self,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(Vec<u8>, DateTime<Utc>), Error> {
        let inner = self.create_protector(TIME_LIMITED_PURPOSE);
        let stamped = inner.unprotect(payload)?;
        if stamped.len() < 8 {
            return Err(Error::NotAPayload(
                "no expiration in the time-limited payload",
            ));
        }
        let (stamp, plaintext) = stamped.split_at(8);
        let mut ticks = [0u8; 8];
        ticks.copy_from_slice(stamp);
        let expiration = from_ticks(i64::from_be_bytes(ticks))
            .ok_or(Error::NotAPayload("the expiration is out of range"))?;
        if expiration < now {
            return Err(Error::Expired(expiration));
        }
        Ok((plaintext.to_vec(), expiration))
    }
}

/// Magic header ‖ key id (GUID byte order) ‖ purpose count (big-endian u32) ‖ purposes.
pub fn additional_authenticated_data(key_id: Uuid, purposes: &[String]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(24 + purposes.iter().map(|p| p.len() + 2).sum::<usize>());
    aad.extend_from_slice(&MAGIC_HEADER);
    aad.extend_from_slice(&key_id.to_bytes_le());
    aad.extend_from_slice(&(purposes.len() as u32).to_be_bytes());
    for purpose in purposes {
        crate::ticket::write_string(&mut aad, purpose);
    }
    aad
}
