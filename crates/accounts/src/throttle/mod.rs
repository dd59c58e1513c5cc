//! Sign-in throttling: failed sign-ins are counted per account and per client address, and a key
//! with too many recent failures is locked for a growing, capped delay.
//!
//! # Keys
//!
//! Two counters are kept, each under a key that never contains the e-mail or the address itself:
//!
//! - **account**: `account:<hex SHA-256 of the normalized e-mail>` (see [`Email`]), for every
//!   well-formed e-mail, whether or not it has an account. Unknown e-mails take exactly the same
//!   path as known ones, so being throttled says nothing about whether an account exists.
//! - **address**: `address:<hex SHA-256 of the client address>`: an IPv4 address as is, an IPv6
//!   address reduced to its `/64` (one subscriber usually gets a whole `/64`, so counting single
//!   IPv6 addresses would let one client rotate through 2^64 of them), an IPv4-mapped IPv6
//!   address as the IPv4 address.
//!
//! The hash only keeps e-mails and addresses out of key names (Redis `KEYS`, SQL dumps); it is
//! unsalted, so someone holding a list of candidate e-mails can still test them against it.
//!
//! # Schedule
//!
//! A key with `failures` recent failures and `free` free attempts
//! ([`ThrottlePolicy::account_free_attempts`], default 5, or
//! [`ThrottlePolicy::address_free_attempts`], default 20) is locked after each failure for
//!
//! ```text
//! failures <  free:  no lock
//! failures >= free:  min(base_delay * 2^(failures - free), max_delay)
//! ```
//!
//! counted from the moment of that failure. With the defaults (base 1 s, cap 15 min) an account
//! key goes:
//!
//! | failures | 1–4 | 5 | 6 | 7 | 8 | 9 | 10 | 11 | 12 | 13 | 14 | 15 and more |
//! |---|---|---|---|---|---|---|---|---|---|---|---|---|
//! | lock | none | 1 s | 2 s | 4 s | 8 s | 16 s | 32 s | 64 s | 128 s | 256 s | 512 s | 15 min |
//!
//! and an address key the same fifteen failures later (20 → 1 s, …, 30 and more → 15 min).
//!
//! - **While a key is locked** every sign-in it covers is refused with
//!   [`AccountError::Throttled`] *before* the password is checked, so even the right password
//!   is refused, and no hashing time is spent. Refused attempts are not counted: the lock only
//!   grows with failures whose result was revealed.
//! - **Forgetting**: a key is forgotten `window` (default 15 min) after its last failure or, when
//!   that failure locked it, `window` after the lock ends, whichever is later. Without the
//!   second clause the 15-minute lock and the 15-minute window would end together, the count
//!   would restart at zero after every capped lock and an attacker would get 15 guesses every
//!   32 minutes (about 670 a day); with it, the count stays at the cap and the pace is one guess
//!   per 15 minutes (about 100 a day per account, on top of the address limit).
//! - **A successful sign-in** resets the account key (not the address key: one user signing in
//!   must not clear the count of a shared address an attacker is using).
//!
//! Every lock therefore ends by itself at most `max_delay` after the last counted failure: there
//! is no permanent lock an attacker can impose. While an attacker keeps guessing at the allowed
//! pace, the account stays locked for its owner too; that is the price of per-account limits.
//!
//! # Races
//!
//! The check before the password is verified and the count afterwards are separate store calls,
//! so sign-ins racing in parallel could all pass the first check. [`Accounts`](crate::Accounts)
//! therefore checks again after verifying and, if a parallel failure locked the key meanwhile,
//! answers `Throttled` whatever the password was (and counts nothing), so a burst of parallel
//! guesses learns at most as much as the schedule allows plus the few that finish within one
//! store round trip of each other.
//!
//! # When the store is down
//!
//! Sign-in fails closed: if the counters cannot be read or written, sign-in answers
//! [`AccountError::Store`] (`503`), even for the right password. Failing open would hand an
//! attacker unlimited guesses whenever the store is slow or unreachable (and an attacker may be
//! able to make it so); a legitimate user only waits for the store to come back, as for an
//! outage of the user store. A failed reset after a successful sign-in is only logged: the
//! count decays by itself.
//!
//! # Storage
//!
//! [`AttemptStore`] is the seam: [`RedisAttemptStore`] for a fleet with Redis (every node sees
//! the same counts), [`SqliteAttemptStore`] for the embedded single node and
//! [`PostgresAttemptStore`] for a fleet without Redis. [`crate::throttle_conformance`] is the
//! suite all three pass. Timestamps are kept in unix milliseconds.

mod redis_store;
mod sql;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use crate::{AccountError, Email};

pub use redis_store::RedisAttemptStore;
pub use sql::{PostgresAttemptStore, SqliteAttemptStore};

/// Smallest accepted [`ThrottlePolicy::base_delay`]: stores keep milliseconds.
const MIN_DELAY: Duration = Duration::milliseconds(1);
/// Largest accepted [`ThrottlePolicy::max_delay`] and [`ThrottlePolicy::window`]: locks and
/// counters must end in a reasonable time.
const MAX_SPAN: Duration = Duration::days(1);

/// The throttling rules. Fields are public for configuration; [`Throttle::new`] clamps values
/// outside the ranges [`ThrottlePolicy::validate`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures of one account (e-mail) before the first lock. Default 5.
    pub account_free_attempts: u32,
    /// Failures from one client address (IPv4 address, IPv6 `/64`) before the first lock.
    /// Default 20: several people may share an address.
    pub address_free_attempts: u32,
    /// The first lock; every further failure doubles it. Default 1 s, at least 1 ms.
    pub base_delay: Duration,
    /// The longest lock. Default 15 min, at most 1 day.
    pub max_delay: Duration,
    /// How long a key is remembered after its last failure (or after the lock that failure
    /// caused). Default 15 min, between 1 ms and 1 day.
    pub window: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            account_free_attempts: 5,
            address_free_attempts: 20,
            base_delay: Duration::seconds(1),
            max_delay: Duration::minutes(15),
            window: Duration::minutes(15),
        }
    }
}

impl ThrottlePolicy {
    /// Checks the values: free attempts at least 1; `base_delay` at least 1 ms; `max_delay`
    /// at least `base_delay` and at most 1 day; `window` between 1 ms and 1 day.
    pub fn validate(&self) -> Result<(), AccountError> {
        let invalid = |what: &str| Err(AccountError::InvalidConfig(format!("throttle: {what}")));
        if self.account_free_attempts == 0 || self.address_free_attempts == 0 {
            return invalid("free attempts must be at least 1");
        }
        if self.base_delay < MIN_DELAY {
            return invalid("the base delay must be at least 1 ms");
        }
        if self.max_delay < self.base_delay || self.max_delay > MAX_SPAN {
            return invalid("the maximum delay must be between the base delay and 1 day");
        }
        if self.window < MIN_DELAY || self.window > MAX_SPAN {
            return invalid("the window must be between 1 ms and 1 day");
        }
        Ok(())
    }

    /// The policy with every value moved into the range [`ThrottlePolicy::validate`] accepts.
    pub fn clamped(self) -> Self {
        let base_delay = self.base_delay.clamp(MIN_DELAY, MAX_SPAN);
        Self {
            account_free_attempts: self.account_free_attempts.max(1),
            address_free_attempts: self.address_free_attempts.max(1),
            base_delay,
            max_delay: self.max_delay.clamp(base_delay, MAX_SPAN),
            window: self.window.clamp(MIN_DELAY, MAX_SPAN),
        }
    }

    /// The free attempts of a kind of key.
    pub fn free_attempts(&self, kind: ThrottleKind) -> u32 {
        match kind {
            ThrottleKind::Account => self.account_free_attempts,
            ThrottleKind::Address => self.address_free_attempts,
        }
    }

    /// The lock after the `failures`-th recent failure of a key allowing `free_attempts`
    /// (see the module docs); zero when that failure does not lock. Whole milliseconds.
    pub fn delay_after(&self, failures: u32, free_attempts: u32) -> Duration {
        Duration::milliseconds(self.delay_ms(failures, free_attempts))
    }

    pub(crate) fn delay_ms(&self, failures: u32, free_attempts: u32) -> i64 {
        let p = self.clamped();
        if failures < free_attempts.max(1) {
            return 0;
        }
        let max = p.max_delay.num_milliseconds();
        let mut delay = p.base_delay.num_milliseconds();
        // Doubling from at least 1 ms reaches a 1-day cap within 27 rounds.
        for _ in 0..failures - free_attempts.max(1) {
            if delay >= max {
                break;
            }
            delay = delay.saturating_mul(2);
        }
        delay.min(max)
    }

    pub(crate) fn window_ms(&self) -> i64 {
        self.clamped().window.num_milliseconds()
    }
}

/// The two kinds of counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThrottleKind {
    /// Failures for one (normalized) e-mail address.
    Account,
    /// Failures from one client address.
    Address,
}

impl ThrottleKind {
    /// `"account"` or `"address"`: the first part of the key.
    pub fn as_str(self) -> &'static str {
        match self {
            ThrottleKind::Account => "account",
            ThrottleKind::Address => "address",
        }
    }
}

/// The store key of one counter: `<kind>:<64 hex digits>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ThrottleKey {
    kind: ThrottleKind,
    key: String,
}

impl ThrottleKey {
    /// The key counting failures for `email`.
    pub fn account(email: &Email) -> Self {
        Self::new(ThrottleKind::Account, email.as_str())
    }

    /// The key counting failures from the client address `ip` (as [`normalize_address`]
    /// reduces it).
    pub fn address(ip: &str) -> Self {
        Self::new(ThrottleKind::Address, &normalize_address(ip))
    }

    fn new(kind: ThrottleKind, subject: &str) -> Self {
        let mut hasher = Sha256::new();
        // Domain separation: an e-mail and an address never share a digest.
        hasher.update(b"ringfence/throttle/v1/");
        hasher.update(kind.as_str().as_bytes());
        hasher.update([0]);
        hasher.update(subject.as_bytes());
        let digest = hasher.finalize();
        let mut key = String::with_capacity(kind.as_str().len() + 1 + 64);
        key.push_str(kind.as_str());
        key.push(':');
        for byte in digest {
            key.push(char::from(HEX[usize::from(byte >> 4)]));
            key.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        Self { kind, key }
    }

    /// Which counter this is.
    pub fn kind(&self) -> ThrottleKind {
        self.kind
    }

    /// The key as stores use it.
    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// A short prefix of the digest for logs (enough to correlate lines, not to look up).
    fn log_id(&self) -> &str {
        let end = (self.kind.as_str().len() + 1 + 12).min(self.key.len());
        self.key.get(..end).unwrap_or(&self.key)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The form of a client address that is counted: an IPv4 address as is (`203.0.113.7`), an
/// IPv6 address as its `/64` (`2001:db8:1:2::/64`), an IPv4-mapped IPv6 address as IPv4. A
/// socket address (`203.0.113.7:5123`, `[2001:db8::1]:443`) counts as its IP. Anything else is
/// counted as its trimmed, lowercased text, so odd input is still throttled, never an error.
pub fn normalize_address(ip: &str) -> String {
    let trimmed = ip.trim();
    let parsed = trimmed
        .parse::<IpAddr>()
        .ok()
        .or_else(|| trimmed.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            // `[2001:db8::1]` without a port.
            trimmed
                .strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inner| inner.parse::<IpAddr>().ok())
        });
    match parsed.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{net}/64")
        }
        None => format!("unparsed:{}", trimmed.to_lowercase()),
    }
}

/// The state of one counter right after a failure was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCount {
    /// Recent failures, this one included.
    pub failures: u32,
    /// Until when the key is locked, if it is (after this failure or an earlier one).
    pub locked_until: Option<DateTime<Utc>>,
}

/// Why an attempt store call failed.
#[derive(Debug, thiserror::Error)]
pub enum AttemptStoreError {
    /// The store cannot be reached or timed out; sign-in answers `503`.
    #[error("sign-in attempt store unavailable: {0}")]
    Unavailable(String),
    /// The store returned data this code cannot read.
    #[error("sign-in attempt store returned malformed data: {0}")]
    Corrupt(String),
    /// The schema migrations could not be applied.
    #[error("sign-in attempt store migration failed: {0}")]
    Migration(String),
}

/// Where failed sign-in counters live. Every backend passes [`crate::throttle_conformance`].
///
/// Keys are [`ThrottleKey::as_str`] values (ASCII, at most 72 bytes). Times are the caller's
/// `now`, never the store's clock (stores may use their own clock only to expire data
/// that is surely dead). A counter whose forget time has passed behaves exactly like an absent
/// one.
#[async_trait]
pub trait AttemptStore: Send + Sync + 'static {
    /// Until when `key` is locked, or `None` if it is not locked at `now`.
    async fn check(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, AttemptStoreError>;

    /// Atomically counts one failure of `key` at `now`: forgets the old count if its forget
    /// time has passed, adds one, locks for [`ThrottlePolicy::delay_after`] (never shortening a
    /// lock in force), and sets the new forget time to `window` after the later of `now` and
    /// the lock's end. Concurrent calls from any number of nodes are all counted.
    async fn record_failure(
        &self,
        key: &str,
        free_attempts: u32,
        policy: &ThrottlePolicy,
        now: DateTime<Utc>,
    ) -> Result<FailureCount, AttemptStoreError>;

    /// Forgets `key` (count and lock). Resetting an unknown key is not an error.
    async fn reset(&self, key: &str) -> Result<(), AttemptStoreError>;
}

/// The counters one sign-in touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleKeys {
    /// The account key; `None` for a malformed e-mail (it cannot have an account).
    pub account: Option<ThrottleKey>,
    /// The address key; `None` when the client address is unknown.
    pub address: Option<ThrottleKey>,
}

impl ThrottleKeys {
    /// The keys of a sign-in for `email` (if well-formed) from `client_ip` (if known).
    pub fn new(email: Option<&Email>, client_ip: Option<&str>) -> Self {
        Self {
            account: email.map(ThrottleKey::account),
            address: client_ip.map(ThrottleKey::address),
        }
    }
}

/// The throttle: an [`AttemptStore`] and a [`ThrottlePolicy`]. Cheap to clone.
#[derive(Clone)]
pub struct Throttle {
    store: Arc<dyn AttemptStore>,
    policy: ThrottlePolicy,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Throttle {
    /// A throttle over `store`; `policy` is [clamped](ThrottlePolicy::clamped) into range
    /// (check it with [`ThrottlePolicy::validate`] first to report bad settings).
    pub fn new(store: Arc<dyn AttemptStore>, policy: ThrottlePolicy) -> Self {
        Self {
            store,
            policy: policy.clamped(),
        }
    }

    /// The rules in force.
    pub fn policy(&self) -> &ThrottlePolicy {
        &self.policy
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn AttemptStore> {
        &self.store
    }

    /// The latest end of a lock on any of `keys` at `now`, or `None` when none is locked.
    pub async fn locked_until(
        &self,
        keys: &ThrottleKeys,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, AttemptStoreError> {
        let check = |key: &Option<ThrottleKey>| {
            let key = key.clone();
            async move {
                match key {
                    Some(key) => self.store.check(key.as_str(), now).await,
                    None => Ok(None),
                }
            }
        };
        let (account, address) = tokio::try_join!(check(&keys.account), check(&keys.address))?;
        Ok(account.max(address))
    }

    /// Counts a failure on every key; returns the latest lock end among them, if any.
    pub async fn record_failure(
        &self,
        keys: &ThrottleKeys,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, AttemptStoreError> {
        let record = |key: &Option<ThrottleKey>| {
            let key = key.clone();
            async move {
                let Some(key) = key else { return Ok(None) };
                let free = self.policy.free_attempts(key.kind());
                let count = self
                    .store
                    .record_failure(key.as_str(), free, &self.policy, now)
                    .await?;
                if count.failures == free {
                    // The first lock of a run: worth a line; the following ones are the
                    // same story.
                    tracing::warn!(
                        key = key.log_id(),
                        failures = count.failures,
                        "sign-in throttled after repeated failures"
                    );
                }
                Ok::<_, AttemptStoreError>(count.locked_until)
            }
        };
        let (account, address) = tokio::try_join!(record(&keys.account), record(&keys.address))?;
        Ok(account.max(address))
    }

    /// Forgets the account key after a successful sign-in.
    pub async fn reset_account(&self, keys: &ThrottleKeys) -> Result<(), AttemptStoreError> {
        match &keys.account {
            Some(key) => self.store.reset(key.as_str()).await,
            None => Ok(()),
        }
    }
}

/// Milliseconds since the epoch, as every store keeps time.
pub(crate) fn millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> Result<DateTime<Utc>, AttemptStoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| AttemptStoreError::Corrupt(format!("timestamp {ms} ms out of range")))
}

/// The lock at `now_ms` from a stored `locked_until_ms` (0 or past = none).
pub(crate) fn lock_from_millis(
    locked_until_ms: i64,
    now_ms: i64,
) -> Result<Option<DateTime<Utc>>, AttemptStoreError> {
    if locked_until_ms > now_ms {
        from_millis(locked_until_ms).map(Some)
    } else {
        Ok(None)
    }
}

pub(crate) fn failures_from(n: i64) -> Result<u32, AttemptStoreError> {
    if n < 1 {
        return Err(AttemptStoreError::Corrupt(format!(
            "failure count {n} after a failure"
        )));
    }
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule() {
        let p = ThrottlePolicy::default();
        p.validate().unwrap();
        let secs: Vec<i64> = (1..=16)
            .map(|n| p.delay_after(n, 5).num_seconds())
            .collect();
        assert_eq!(
            secs,
            [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]
        );
        assert_eq!(p.delay_after(19, 20), Duration::zero());
        assert_eq!(p.delay_after(20, 20), Duration::seconds(1));
        assert_eq!(p.delay_after(30, 20), Duration::minutes(15));
        assert_eq!(p.delay_after(u32::MAX, 20), Duration::minutes(15));
    }

    #[test]
    fn bad_policies_are_reported_and_clamped() {
        let bad = ThrottlePolicy {
            account_free_attempts: 0,
            address_free_attempts: 0,
            base_delay: Duration::zero(),
            max_delay: Duration::days(400),
            window: Duration::seconds(-5),
        };
        assert!(matches!(
            bad.validate(),
            Err(AccountError::InvalidConfig(_))
        ));
        let c = bad.clamped();
        c.validate().unwrap();
        assert_eq!(c.account_free_attempts, 1);
        assert_eq!(c.base_delay, Duration::milliseconds(1));
        assert_eq!(c.max_delay, Duration::days(1));
        assert_eq!(c.window, Duration::milliseconds(1));
        assert_eq!(bad.delay_after(u32::MAX, 0), Duration::days(1));
        let inverted = ThrottlePolicy {
            base_delay: Duration::minutes(5),
            max_delay: Duration::minutes(1),
            ..ThrottlePolicy::default()
        };
        assert!(inverted.validate().is_err());
        assert_eq!(inverted.delay_after(9, 5), Duration::minutes(5));
    }

    #[test]
    fn keys_hide_their_subject() {
        let email = Email::parse("Alice@Example.com").unwrap();
        let key = ThrottleKey::account(&email);
        assert_eq!(key.kind(), ThrottleKind::Account);
        assert!(key.as_str().starts_with("account:"));
        assert_eq!(key.as_str().len(), "account:".len() + 64);
        assert!(!key.as_str().contains("alice"));
        assert_eq!(
            key,
            ThrottleKey::account(&Email::parse(" alice@EXAMPLE.com").unwrap())
        );
        let addr = ThrottleKey::address("203.0.113.7");
        assert!(addr.as_str().starts_with("address:"));
        assert!(!addr.as_str().contains("203"));
        assert_ne!(addr, ThrottleKey::address("203.0.113.8"));
        assert_eq!(key.log_id().len(), "account:".len() + 12);
    }

    #[test]
    fn addresses_are_normalized() {
        for (input, expected) in [
            ("203.0.113.7", "203.0.113.7"),
            (" 203.0.113.7 ", "203.0.113.7"),
            ("203.0.113.7:5123", "203.0.113.7"),
            ("::ffff:203.0.113.7", "203.0.113.7"),
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
            ("2001:DB8:1:2::ffff", "2001:db8:1:2::/64"),
            ("[2001:db8:1:2::1]:443", "2001:db8:1:2::/64"),
            ("[2001:db8:1:2::1]", "2001:db8:1:2::/64"),
            ("::1", "::/64"),
            ("unknown", "unparsed:unknown"),
            ("", "unparsed:"),
        ] {
            assert_eq!(normalize_address(input), expected, "{input:?}");
        }
        assert_eq!(
            ThrottleKey::address("2001:db8:1:2::1"),
            ThrottleKey::address("2001:db8:1:2:ffff::9")
        );
        assert_ne!(
            ThrottleKey::address("2001:db8:1:2::1"),
            ThrottleKey::address("2001:db8:1:3::1")
        );
    }
}
