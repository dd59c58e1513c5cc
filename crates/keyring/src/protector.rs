//! Protectors: protect and unprotect payloads for one purpose.

use std::sync::Arc;

use aes_gcm::Aes256Gcm;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};

use crate::key::KeyId;
use crate::payload::{self, purpose_hash};
use crate::ring::{KeyEntry, KeyRing, RingState};

/// Why a payload could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtectError {
    /// The ring has no usable key (a node with `--no-key-generation` before the first key
    /// exists, or every key revoked).
    #[error("the key ring has no usable key")]
    NoDefaultKey,
}

/// Why a payload did not open. Every variant means "treat the input as absent": callers answer
/// with a specific error, never with a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnprotectError {
    /// Not base64, or shorter than the smallest possible payload (truncated).
    #[error("payload is malformed or truncated")]
    Malformed,
    /// A format version this code does not know.
    #[error("payload format version {0} is not supported")]
    UnsupportedVersion(u8),
    /// The key id is not in the key ring, even after re-reading the store.
    #[error("the key {0} was not found in the key ring")]
    UnknownKey(KeyId),
    /// The key was revoked.
    #[error("the key {0} was revoked")]
    Revoked(KeyId),
    /// Authentication failed: tampered, or made for another purpose.
    #[error("payload failed authentication (tampered, or made for another purpose)")]
    Invalid,
    /// A time-limited payload past its expiry.
    #[error("payload expired at {0}")]
    Expired(DateTime<Utc>),
}

/// Protects and unprotects payloads for one purpose chain.
///
/// A purpose names what a payload is for ("ringfence.session.v1", "csrf"); a payload made for
/// one purpose never opens under another, because each purpose gets its own sub-key.
#[derive(Clone)]
pub struct Protector {
    ring: KeyRing,
    purposes: Arc<[String]>,
    purpose: [u8; 32],
}

impl std::fmt::Debug for Protector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protector")
            .field("purposes", &self.purposes)
            .finish_non_exhaustive()
    }
}

impl Protector {
    pub(crate) fn new(ring: KeyRing, purposes: Vec<String>) -> Self {
        let purpose = purpose_hash(&purposes);
        Self {
            ring,
            purposes: purposes.into(),
            purpose,
        }
    }

    /// A protector for a sub-purpose of this one (`["app", "invites"]`): isolated from the
    /// parent and from every sibling.
    pub fn purpose(&self, sub: &str) -> Protector {
        let mut purposes = self.purposes.to_vec();
        purposes.push(sub.to_owned());
        Protector::new(self.ring.clone(), purposes)
    }

    /// The purpose chain.
    pub fn purposes(&self) -> &[String] {
        &self.purposes
    }

    /// Protects `plaintext` into raw payload bytes under the default key.
    pub fn protect_bytes(&self, plaintext: &[u8]) -> Result<Vec<u8>, ProtectError> {
        let state = self.ring.state_ref();
        let key = self.default_key(&state).ok_or(ProtectError::NoDefaultKey)?;
        Ok(key.with_cipher(&self.purpose, |cipher| {
            payload::seal(cipher, &key.info.id, plaintext)
        }))
    }

    /// Protects `plaintext` into URL-safe base64 (cookie-, header- and URL-safe).
    pub fn protect(&self, plaintext: &[u8]) -> Result<String, ProtectError> {
        self.protect_bytes(plaintext)
            .map(|bytes| URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The default key now, read off the state's timeline with the clock in nanoseconds; a
    /// calendar date is built only where nanoseconds saturate (before 1677, after 2262).
    fn default_key<'s>(&self, state: &'s RingState) -> Option<&'s Arc<KeyEntry>> {
        let clock = &self.ring.inner.clock;
        let skew = self.ring.inner.config.clock_skew;
        match state.default_key_at_nanos(clock.now_nanos(), skew) {
            Some(found) => found,
            None => state.default_key(clock.now(), skew),
        }
    }

    /// Opens `payload` with the key it names, if this node holds it and it is not revoked, by
    /// handing it to `open` with this purpose's cipher. The ring's state is borrowed for this
    /// call only (it is synchronous, so never across an await), and nothing shared is
    /// reference-counted.
    fn open_cached<P: AsRef<[u8]>, R>(
        &self,
        payload: P,
        open: impl FnOnce(&Aes256Gcm, P) -> Result<R, UnprotectError>,
    ) -> Result<R, UnprotectError> {
        let id = payload::key_id_of(payload.as_ref())?;
        let state = self.ring.state_ref();
        let key = state.keys.get(&id).ok_or(UnprotectError::UnknownKey(id))?;
        if key.info.is_revoked() {
            return Err(UnprotectError::Revoked(id));
        }
        let plain = key.with_cipher(&self.purpose, |cipher| open(cipher, payload))?;
        self.note_key(&state, id);
        Ok(plain)
    }

    /// Counts payloads opened under a key other than the default one: tells operators when
    /// payloads under old keys stop arriving. "Default" is the default as of the last lookup
    /// on this state: every protect on this node and every poll of the refresh task (500 ms)
    /// look it up with the clock, so after the default changes by time alone the count follows
    /// at the next of either. Reading the clock here would make it exact to the nanosecond for
    /// about 35 ns more per round trip (an eighth), while keys switch once per lifetime.
    fn note_key(&self, state: &RingState, id: KeyId) {
        let default = match state.recent_default_key(self.ring.inner.config.clock_skew) {
            Some(recent) => recent,
            None => self.default_key(state),
        };
        if default.is_none_or(|d| d.info.id != id) {
            metrics::counter!("ringfence_keyring_unprotect_non_default_key_total").increment(1);
        }
    }

    /// Opens raw payload bytes with the keys in memory only (no store access).
    pub fn unprotect_bytes_cached(&self, payload: &[u8]) -> Result<Vec<u8>, UnprotectError> {
        self.open_cached(payload, payload::open)
    }

    /// Opens raw payload bytes. A payload under a key this node does not know makes it re-read
    /// the store (rate-limited) and try once more, so a key made on another node a moment ago
    /// works here too.
    pub async fn unprotect_bytes(&self, payload: &[u8]) -> Result<Vec<u8>, UnprotectError> {
        self.unprotect_owned(payload.to_vec()).await
    }

    /// Opens a payload made by [`Protector::protect`]. The decoded buffer is decrypted in
    /// place: one allocation per call.
    pub async fn unprotect(&self, payload: &str) -> Result<Vec<u8>, UnprotectError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| UnprotectError::Malformed)?;
        self.unprotect_owned(bytes).await
    }

    async fn unprotect_owned(&self, mut bytes: Vec<u8>) -> Result<Vec<u8>, UnprotectError> {
        // The buffer is lent, not moved, so it is still there for the retry after an unknown
        // key; the opener takes it only once the key is found, and decrypts in place.
        let open = |cipher: &Aes256Gcm, bytes: &mut Vec<u8>| {
            payload::open_owned(cipher, std::mem::take(bytes))
        };
        match self.open_cached(&mut bytes, open) {
            Err(UnprotectError::UnknownKey(_)) if self.ring.reload_for_unknown_key().await => {
                self.open_cached(&mut bytes, open)
            }
            other => other,
        }
    }

    /// A protector whose payloads carry an expiry inside the authenticated plaintext.
    pub fn time_limited(&self) -> TimeLimitedProtector {
        TimeLimitedProtector {
            // A separate purpose: a time-limited payload never opens as a plain one or back.
            inner: self.purpose("ringfence.time-limited"),
        }
    }
}

/// Protects payloads that stop opening after a given time.
#[derive(Clone, Debug)]
pub struct TimeLimitedProtector {
    inner: Protector,
}

impl TimeLimitedProtector {
    /// Protects `plaintext` so that it opens only before `expires_at`.
    pub fn protect(
        &self,
        plaintext: &[u8],
        expires_at: DateTime<Utc>,
    ) -> Result<String, ProtectError> {
        let mut framed = Vec::with_capacity(8 + plaintext.len());
        framed.extend_from_slice(&expires_at.timestamp_millis().to_be_bytes());
        framed.extend_from_slice(plaintext);
        self.inner.protect(&framed)
    }

    /// Opens a payload, returning the plaintext and its expiry; [`UnprotectError::Expired`]
    /// once the ring's clock reaches the expiry.
    pub async fn unprotect(
        &self,
        payload: &str,
    ) -> Result<(Vec<u8>, DateTime<Utc>), UnprotectError> {
        let mut framed = self.inner.unprotect(payload).await?;
        let millis: [u8; 8] = framed
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or(UnprotectError::Malformed)?;
        let expires_at = Utc
            .timestamp_millis_opt(i64::from_be_bytes(millis))
            .single()
            .ok_or(UnprotectError::Malformed)?;
        if self.inner.ring.inner.clock.now() >= expires_at {
            return Err(UnprotectError::Expired(expires_at));
        }
        framed.drain(..8);
        Ok((framed, expires_at))
    }
}
