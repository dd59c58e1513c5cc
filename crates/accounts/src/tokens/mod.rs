//! Single-use tokens for the links in account mails (password reset, address verification,
//! address change), also holding the state of passkey ceremonies between their start and finish
//! (the `challenge_id` is such a token: same format, same atomic take, 5 minutes).
//!
//! # Format
//!
//! A token is 256 bits from the operating system's CSPRNG, written as URL-safe base64 without
//! padding: 43 characters of `[A-Za-z0-9_-]`, so it goes into a link as is
//! (`PUBLIC_URL/reset-password?token=T`). Anything else is refused before any store is asked.
//!
//! # Storage
//!
//! Stores keep only the SHA-256 of a token ([`TokenHash`]), next to a [`MailTokenRecord`]: the
//! purpose, the user id, the expiry and a *binding*, a digest of the account's state when the
//! token was issued (its id, address and password hash; see [`account_binding`]). A token is
//! honoured only while the account still has that state, so changing the password (or having it
//! reset) or the address voids every token issued before, without the store having to find them.
//! Someone who reads the store learns no token; someone who could write it still cannot forge a
//! binding without the password hash.
//!
//! A token is redeemed by an atomic [`MailTokenStore::take`]: of any number of concurrent takes
//! of one token, on any number of nodes, exactly one gets the record. A take names the purpose it
//! expects and only ever removes a token of that purpose, so a verification token offered to the
//! reset form is refused and still works for verification.
//!
//! [`MailTokenStore`] is the seam: [`RedisMailTokenStore`] (a fleet with Redis),
//! [`SqliteMailTokenStore`] (the embedded node) and [`PostgresMailTokenStore`] (a fleet without
//! Redis), all held to [`crate::tokens_conformance`].

#[cfg(feature = "redis")]
mod redis_store;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::UserRecord;

#[cfg(feature = "redis")]
pub use redis_store::RedisMailTokenStore;
#[cfg(feature = "postgres")]
pub use sql::PostgresMailTokenStore;
#[cfg(feature = "sqlite")]
pub use sql::SqliteMailTokenStore;

/// Expired tokens are purged once per this many inserted through one store value (the stores
/// without an expiry of their own: SQL and MongoDB).
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mongodb"))]
pub(crate) const PURGE_EVERY: u64 = 64;

/// Random bytes in a token.
pub const TOKEN_BYTES: usize = 32;
/// Characters in a token's text (43: URL-safe base64 of [`TOKEN_BYTES`] without padding).
pub const TOKEN_LEN: usize = 43;

/// What a token allows; a token is redeemed only for its own purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// Set a new password (forgot password, admin reset link).
    ResetPassword,
    /// Confirm that the owner reads mail at the account's address.
    VerifyEmail,
    /// Move the account to the new address the token carries.
    ChangeEmail,
    /// Finish registering a passkey: the token is the ceremony's `challenge_id`, the payload
    /// webauthn-rs's registration state (see [`crate::passkeys`]).
    PasskeyRegistration,
    /// Finish signing in with a passkey: the payload is the authentication state.
    PasskeyLogin,
}

impl TokenPurpose {
    /// Every purpose.
    pub const ALL: [TokenPurpose; 5] = [
        TokenPurpose::ResetPassword,
        TokenPurpose::VerifyEmail,
        TokenPurpose::ChangeEmail,
        TokenPurpose::PasskeyRegistration,
        TokenPurpose::PasskeyLogin,
    ];

    /// `reset_password`, `verify_email`, `change_email`, `passkey_registration` or
    /// `passkey_login`: the name stores keep.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::ResetPassword => "reset_password",
            TokenPurpose::VerifyEmail => "verify_email",
            TokenPurpose::ChangeEmail => "change_email",
            TokenPurpose::PasskeyRegistration => "passkey_registration",
            TokenPurpose::PasskeyLogin => "passkey_login",
        }
    }

    /// The purpose named by [`TokenPurpose::as_str`].
    pub fn parse(name: &str) -> Option<TokenPurpose> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// The secret of a mail link. Its `Debug` form hides the value, so it cannot reach a log by
/// accident; [`MailToken::as_str`] is for building the link and nothing else.
#[derive(Clone, PartialEq, Eq)]
pub struct MailToken(String);

impl MailToken {
    /// A new token from the OS CSPRNG.
    pub fn generate() -> MailToken {
        let mut bytes = [0u8; TOKEN_BYTES];
        OsRng.fill_bytes(&mut bytes);
        MailToken(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A token as a client sent it back (surrounding whitespace ignored), or `None` when it
    /// cannot be one: wrong length, a character outside `[A-Za-z0-9_-]`, or a non-canonical
    /// encoding. Cheap and store-free, so malformed input costs nothing.
    pub fn parse(text: &str) -> Option<MailToken> {
        let text = text.trim();
        if text.len() != TOKEN_LEN {
            return None;
        }
        // The decoder refuses any other alphabet and set trailing bits: one spelling per token.
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        (bytes.len() == TOKEN_BYTES).then(|| MailToken(text.to_owned()))
    }

    /// The token's text, to put in a link.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What stores keep instead of the token.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl std::fmt::Debug for MailToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MailToken(..)")
    }
}

/// The SHA-256 of a token's text: how stores name a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

/// A token as it was issued: the secret and when it stops working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The secret for the link.
    pub token: MailToken,
    /// When it expires (whole milliseconds, as stores keep it).
    pub expires_at: DateTime<Utc>,
    /// How long it works from its issue: the lifetime a mail states ("this link works for
    /// 1 hour").
    pub valid_for: chrono::Duration,
}

/// What a store keeps for one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailTokenRecord {
    /// What the token allows.
    pub purpose: TokenPurpose,
    /// The account it acts on.
    pub user_id: String,
    /// When it stops working (stores keep whole milliseconds).
    pub expires_at: DateTime<Utc>,
    /// [`account_binding`] of the account when the token was issued.
    pub binding: String,
    /// What the purpose carries: for [`TokenPurpose::ChangeEmail`] the (normalized) address to
    /// move to, for the passkey purposes the serialized ceremony state; `None` otherwise. Stores
    /// keep it as opaque text (the SQL column is still called `new_email`, from before passkey
    /// ceremonies shared the store).
    pub payload: Option<String>,
}

/// Why a token store call failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenStoreError {
    /// The store cannot be reached or timed out; callers answer `503`.
    #[error("mail token store unavailable: {0}")]
    Unavailable(String),
    /// The store returned data this code cannot read.
    #[error("mail token store returned malformed data: {0}")]
    Corrupt(String),
    /// The schema migrations could not be applied.
    #[error("mail token store migration failed: {0}")]
    Migration(String),
}

/// Where mail-link tokens live. Every backend passes [`crate::tokens_conformance`].
///
/// Times are the caller's `now`, never the store's clock; a store may use its own clock only to
/// drop records that are surely expired. Expiry is kept in whole milliseconds: a record is live
/// while `now` is before `expires_at`.
#[async_trait]
pub trait MailTokenStore: Send + Sync + 'static {
    /// Stores a token's record until it expires. A record already expired at `now` may be
    /// dropped at once.
    async fn insert(
        &self,
        token: &TokenHash,
        record: &MailTokenRecord,
        now: DateTime<Utc>,
    ) -> Result<(), TokenStoreError>;

    /// The record of `token` when it exists, has `purpose` and is live at `now`; it stays in
    /// place (to check a form before spending the token).
    async fn find(
        &self,
        token: &TokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<MailTokenRecord>, TokenStoreError>;

    /// Atomically removes and returns the record of `token` when it exists, has `purpose` and
    /// is live at `now`. Of concurrent takes of one token from any number of nodes exactly one
    /// gets it. A record of another purpose is neither returned nor removed.
    async fn take(
        &self,
        token: &TokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<MailTokenRecord>, TokenStoreError>;
}

/// The digest binding tokens to the account's present state: SHA-256 over the id, the address
/// and the stored password hash (hex). A new password (its hash has a fresh salt even when the
/// password is the same) or a new address gives a new binding, which voids every token issued
/// before. A transparent rehash after an argon2 parameter change does too; that is rare and
/// costs at most a new mail.
pub fn account_binding(record: &UserRecord) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"ringfence/mail-token-binding/v1\0");
    for part in [
        record.user.id.as_str(),
        record.user.email.as_str(),
        record.password_hash.as_str(),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex(&hasher.finalize())
}

/// Whether two bindings are equal, in time independent of where they differ.
pub(crate) fn bindings_match(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

/// Milliseconds since the epoch, as every store keeps expiry.
#[cfg(any(
    feature = "redis",
    feature = "sqlite",
    feature = "postgres",
    feature = "mongodb"
))]
pub(crate) fn millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

#[cfg(any(
    feature = "redis",
    feature = "sqlite",
    feature = "postgres",
    feature = "mongodb"
))]
pub(crate) fn from_millis(ms: i64) -> Result<DateTime<Utc>, TokenStoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| TokenStoreError::Corrupt(format!("expiry {ms} ms out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_url_safe_characters_and_parse_back() {
        let a = MailToken::generate();
        let b = MailToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), TOKEN_LEN);
        assert!(a
            .as_str()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(MailToken::parse(a.as_str()), Some(a.clone()));
        assert_eq!(
            MailToken::parse(&format!(" {} ", a.as_str())),
            Some(a.clone())
        );
        assert_eq!(format!("{a:?}"), "MailToken(..)");
        assert_eq!(a.hash(), MailToken::parse(a.as_str()).unwrap().hash());
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash().to_hex().len(), 64);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = MailToken::generate();
        let mut plus = good.as_str().to_owned();
        plus.replace_range(0..1, "+");
        // The last character carries 2 spare bits; only the canonical spelling is accepted.
        let mut bytes = [0u8; TOKEN_BYTES];
        bytes[TOKEN_BYTES - 1] = 0;
        let canonical = URL_SAFE_NO_PAD.encode(bytes);
        let mut sloppy = canonical.clone();
        sloppy.replace_range(TOKEN_LEN - 1.., "B");
        assert!(MailToken::parse(&canonical).is_some());
        for bad in [
            "",
            "abc",
            &good.as_str()[1..],
            &format!("{}A", good.as_str()),
            &format!("{}=", &good.as_str()[..TOKEN_LEN - 1]),
            &plus,
            &sloppy,
            &"é".repeat(TOKEN_LEN),
            &"A".repeat(10_000),
        ] {
            assert!(MailToken::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn purposes_round_trip() {
        for p in TokenPurpose::ALL {
            assert_eq!(TokenPurpose::parse(p.as_str()), Some(p));
        }
        assert_eq!(TokenPurpose::parse("admin"), None);
    }

    #[test]
    fn binding_follows_address_and_password_hash() {
        let t = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let record = UserRecord {
            user: crate::User {
                id: "u1".into(),
                email: "a@example.com".into(),
                is_admin: false,
                created_at: t,
                password_changed_at: t,
                email_verified: false,
                disabled: false,
            },
            password_hash: "$argon2id$one".into(),
        };
        let base = account_binding(&record);
        let mut other = record.clone();
        other.user.email = "b@example.com".into();
        assert!(!bindings_match(&base, &account_binding(&other)));
        let mut other = record.clone();
        other.password_hash = "$argon2id$two".into();
        assert!(!bindings_match(&base, &account_binding(&other)));
        // Flags do not void tokens.
        let mut other = record.clone();
        other.user.email_verified = true;
        other.user.is_admin = true;
        assert!(bindings_match(&base, &account_binding(&other)));
        // Parts cannot run into each other.
        let mut shifted = record.clone();
        shifted.user.id = "u1a".into();
        shifted.user.email = "@example.com".into();
        assert!(!bindings_match(&base, &account_binding(&shifted)));
    }
}
