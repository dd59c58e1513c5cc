//! Antiforgery tokens that every node accepts.
//!
//! Tokens are stateless: they are key-ring payloads, so any node sharing the ring checks a token
//! any other node made, with no store read.
//!
//! - Signed in: the token seals `"s" ‖ session id`. It is valid exactly while that session is
//!   the requester's, and dies with the session (sign-out, revocation, timeout).
//! - Signed out (sign-in and registration forms): the token seals `"a" ‖ r`, where `r` is a
//!   random 128-bit value that also sits, sealed under a different purpose, in the HttpOnly
//!   `ringfence_csrf` cookie. A cross-site attacker can neither read the cookie nor make a token
//!   matching it.
//!
//! Comparisons of the bound values are constant-time.

use rand::RngCore;
use ringfence_keyring::{KeyRing, ProtectError, Protector};
use ringfence_sessions::SessionId;
use subtle::ConstantTimeEq;

pub(crate) const ANON_LEN: usize = 16;
/// Longest token looked at; anything longer is rejected before decoding.
const MAX_TOKEN: usize = 512;

#[derive(Clone, Debug)]
pub(crate) struct Antiforgery {
    token: Protector,
    cookie: Protector,
}

impl Antiforgery {
    pub(crate) fn new(keyring: &KeyRing) -> Self {
        let base = keyring.protector("ringfence.csrf.v1");
        Self {
            token: base.purpose("token"),
            cookie: base.purpose("cookie"),
        }
    }

    pub(crate) fn new_anon_secret() -> [u8; ANON_LEN] {
        let mut secret = [0u8; ANON_LEN];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        secret
    }

    pub(crate) fn session_token(&self, id: &SessionId) -> Result<String, ProtectError> {
        let mut bound = Vec::with_capacity(1 + id.as_str().len());
        bound.push(b's');
        bound.extend_from_slice(id.as_str().as_bytes());
        self.token.protect(&bound)
    }

    pub(crate) fn anon_token(&self, secret: &[u8; ANON_LEN]) -> Result<String, ProtectError> {
        let mut bound = [0u8; 1 + ANON_LEN];
        bound[0] = b'a';
        bound[1..].copy_from_slice(secret);
        self.token.protect(&bound)
    }

    pub(crate) fn anon_cookie(&self, secret: &[u8; ANON_LEN]) -> Result<String, ProtectError> {
        self.cookie.protect(secret)
    }

    pub(crate) async fn read_anon_cookie(&self, value: &str) -> Option<[u8; ANON_LEN]> {
        let plain = self.cookie.unprotect(value).await.ok()?;
        plain.as_slice().try_into().ok()
    }

    /// Whether `token` was made for this requester: bound to `session` when signed in, to the
    /// anonymous cookie secret otherwise.
    pub(crate) async fn verify(
        &self,
        token: &str,
        session: Option<&SessionId>,
        anon: Option<&[u8; ANON_LEN]>,
    ) -> bool {
        if token.is_empty() || token.len() > MAX_TOKEN {
            return false;
        }
        let Ok(bound) = self.token.unprotect(token).await else {
            return false;
        };
        match (bound.split_first(), session, anon) {
            (Some((b's', id)), Some(session), _) => id.ct_eq(session.as_str().as_bytes()).into(),
            (Some((b'a', secret)), None, Some(anon)) => secret.ct_eq(anon.as_slice()).into(),
            _ => false,
        }
    }
}
