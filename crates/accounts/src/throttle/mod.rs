//! Throttling of every secret check (sign-in, the current password of a signed-in user, and
//! later second-factor codes) and of registration: failures are counted per key, and a key with
//! too many recent failures is locked for a growing, capped delay.
//!
//! # Keys
//!
//! Each counter lives under a key that never contains the e-mail or the address itself:
//!
//! - **account and address**: `account_address:<hex SHA-256 of the normalized e-mail and the
//!   client address>`: the tight limit ([`ThrottlePolicy::account_address_free_attempts`],
//!   default 5). It stops one client guessing one account's password. An unknown client
//!   address counts as one address of its own.
//! - **account**: `account:<hex SHA-256 of the normalized e-mail>` (see [`Email`]), the loose
//!   limit ([`ThrottlePolicy::account_free_attempts`], default 10). It counts one failure per
//!   *run* of an (account, address) counter, that is per client address that starts failing,
//!   not per failure. It stops guessing spread over many addresses.
//! - **address**: `address:<hex SHA-256 of the client address>`: an IPv4 address as is, an IPv6
//!   address reduced to its `/64` (one subscriber usually gets a whole `/64`, so counting single
//!   IPv6 addresses would let one client rotate through 2^64 of them), an IPv4-mapped IPv6
//!   address as the IPv4 address ([`ThrottlePolicy::address_free_attempts`], default 20). It
//!   stops one client trying one password on many accounts.
//! - **registration**: `registration:<hex SHA-256 of the client address>`: registrations
//!   (created, or refused with `409` because the address has an account) from one client
//!   address ([`ThrottlePolicy::registration_free_attempts`], default 10). It slows down both
//!   mass account creation and using `409` to find out which addresses have accounts.
//!
//! The account keys are used for every well-formed e-mail, whether or not it has an account.
//! Unknown e-mails take exactly the same path as known ones, so being throttled says nothing
//! about whether an account exists.
//!
//! The hash only keeps e-mails and addresses out of key names (Redis `KEYS`, SQL dumps); it is
//! unsalted, so someone holding a list of candidate e-mails can still test them against it.
//!
//! # Lockout is not a weapon, and what that costs
//!
//! A per-account limit counting every failure lets anyone lock the owner out, from any address,
//! for as long as they keep failing. Here one attacking address only ever locks its own
//! (account, address) counter: it adds one failure to the account counter when its run starts
//! and nothing after, and the account counter needs failures from
//! [`ThrottlePolicy::account_free_attempts`] different addresses (runs) before it locks. So the
//! owner, signing in from another address, is not locked out by one address, nor by fewer than
//! ten; an attacker with ten addresses (or `/64`s) can still lock the account for everyone
//! (capped, renewable only by bringing new addresses).
//!
//! The price is paid against distributed guessing: each address now gets its own schedule
//! against an account (5 free, then doubling to one guess per 15 minutes, about 100 a day)
//! instead of sharing one schedule per account. An attacker with `n` addresses gets about `n`
//! times as many guesses until the account counter locks, at most
//! [`ThrottlePolicy::account_free_attempts`] address runs' worth in a window, and then the
//! account's own schedule; the address counter still caps each address across all accounts.
//! The password policy (zxcvbn at score 3, about 10^10 guesses) keeps that far from enough.
//!
//! # Schedule
//!
//! A key with `failures` recent failures and `free` free attempts (the policy's value for its
//! kind, [`ThrottlePolicy::free_attempts`]) is locked after each failure for
//!
//! ```text
//! failures <  free:  no lock
//! failures >= free:  min(base_delay * 2^(failures - free), max_delay)
//! ```
//!
//! counted from the moment of that failure. This is the only definition of the schedule:
//! [`ThrottlePolicy::delay_after`] computes it, the SQL stores call it, and the Redis script
//! is handed the list of delays it yields ([`ThrottlePolicy::schedule_ms`]) rather than a copy
//! of the rule. With the defaults (base 1 s, cap 15 min) an (account, address) key goes:
//!
//! | failures | 1–4 | 5 | 6 | 7 | 8 | 9 | 10 | 11 | 12 | 13 | 14 | 15 and more |
//! |---|---|---|---|---|---|---|---|---|---|---|---|---|
//! | lock | none | 1 s | 2 s | 4 s | 8 s | 16 s | 32 s | 64 s | 128 s | 256 s | 512 s | 15 min |
//!
//! an account key the same five failures (address runs) later, an address key fifteen later
//! (20 → 1 s, …, 30 and more → 15 min).
//!
//! - **While a key is locked** every check it covers is refused with
//!   [`AccountError::Throttled`] *before* the password is checked, so even the right password
//!   is refused, and no hashing time is spent. Refused attempts are not counted: the lock only
//!   grows with failures whose result was revealed.
//! - **Forgetting**: a key is forgotten `window` (default 15 min) after its last failure or, when
//!   that failure locked it, `window` after the lock ends, whichever is later. Without the
//!   second clause the 15-minute lock and the 15-minute window would end together, the count
//!   would restart at zero after every capped lock and an attacker would get 15 guesses every
//!   32 minutes (about 670 a day); with it, the count stays at the cap and the pace is one guess
//!   per 15 minutes (about 100 a day per account, on top of the address limit).
//! - **A successful check** (sign-in, current password) resets the account and the (account,
//!   address) keys, not the address key: one user signing in must not clear the count of a
//!   shared address an attacker is using.
//!
//! Every lock therefore ends by itself at most `max_delay` after the last counted failure: there
//! is no permanent lock an attacker can impose, and a lock imposed from one address holds only
//! for that address (see above).
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

#[cfg(any(
    feature = "redis",
    feature = "sqlite",
    feature = "postgres",
    feature = "mongodb"
))]
mod counter;
#[cfg(feature = "redis")]
mod redis_store;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use crate::{AccountError, Email};

#[cfg(any(
    feature = "redis",
    feature = "sqlite",
    feature = "postgres",
    feature = "mongodb"
))]
pub(crate) use counter::{failures_from, lock_from_millis, millis};
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mongodb"))]
pub(crate) use counter::{next_lock, PURGE_EVERY};
#[cfg(feature = "redis")]
pub use redis_store::RedisAttemptStore;
#[cfg(feature = "postgres")]
pub use sql::PostgresAttemptStore;
#[cfg(feature = "sqlite")]
pub use sql::SqliteAttemptStore;

/// Smallest accepted [`ThrottlePolicy::base_delay`]: stores keep milliseconds.
const MIN_DELAY: Duration = Duration::milliseconds(1);
/// Largest accepted [`ThrottlePolicy::max_delay`] and [`ThrottlePolicy::window`]: locks and
/// counters must end in a reasonable time.
const MAX_SPAN: Duration = Duration::days(1);

/// The throttling rules. Fields are public for configuration; [`Throttle::new`] clamps values
/// outside the ranges [`ThrottlePolicy::validate`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures of one account (e-mail) from one client address before the first lock of that
    /// pair. Default 5.
    pub account_address_free_attempts: u32,
    /// Runs of failures of one account, one per client address that starts failing, before the
    /// first lock of the account for every address. Default 10: fewer addresses cannot lock
    /// the owner out.
    pub account_free_attempts: u32,
    /// Failures from one client address (IPv4 address, IPv6 `/64`) before the first lock.
    /// Default 20: several people may share an address.
    pub address_free_attempts: u32,
    /// Registrations (created or refused as taken) from one client address before the first
    /// lock. Default 10.
    pub registration_free_attempts: u32,
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
            account_address_free_attempts: 5,
            account_free_attempts: 10,
            address_free_attempts: 20,
            registration_free_attempts: 10,
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
        if self.account_address_free_attempts == 0
            || self.account_free_attempts == 0
            || self.address_free_attempts == 0
            || self.registration_free_attempts == 0
        {
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
            account_address_free_attempts: self.account_address_free_attempts.max(1),
            account_free_attempts: self.account_free_attempts.max(1),
            address_free_attempts: self.address_free_attempts.max(1),
            registration_free_attempts: self.registration_free_attempts.max(1),
            base_delay,
            max_delay: self.max_delay.clamp(base_delay, MAX_SPAN),
            window: self.window.clamp(MIN_DELAY, MAX_SPAN),
        }
    }

    /// The free attempts of a kind of key.
    pub fn free_attempts(&self, kind: ThrottleKind) -> u32 {
        match kind {
            ThrottleKind::AccountAddress => self.account_address_free_attempts,
            ThrottleKind::Account => self.account_free_attempts,
            ThrottleKind::Address => self.address_free_attempts,
            ThrottleKind::Registration => self.registration_free_attempts,
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

    /// The locks of the `free_attempts`-th, the next, … failure up to the first one at the cap
    /// (that one included), in milliseconds: [`ThrottlePolicy::delay_after`] as a table, for
    /// stores that cannot call it (the Redis script). At most 28 entries (1 ms doubled 27
    /// times passes the 1-day cap).
    pub fn schedule_ms(&self, free_attempts: u32) -> Vec<i64> {
        let free = free_attempts.max(1);
        let max = self.clamped().max_delay.num_milliseconds();
        let mut table = Vec::new();
        for failures in free..=free.saturating_add(64) {
            let delay = self.delay_ms(failures, free);
            table.push(delay);
            if delay >= max {
                break;
            }
        }
        table
    }
}

/// The kinds of counter (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThrottleKind {
    /// Failures for one (normalized) e-mail address from one client address: the tight limit.
    AccountAddress,
    /// Runs of failures for one (normalized) e-mail address, one per client address: the
    /// loose limit.
    Account,
    /// Failures from one client address, whatever the account.
    Address,
    /// Registrations from one client address.
    Registration,
}

impl ThrottleKind {
    /// `"account_address"`, `"account"`, `"address"` or `"registration"`: the first part of
    /// the key.
    pub fn as_str(self) -> &'static str {
        match self {
            ThrottleKind::AccountAddress => "account_address",
            ThrottleKind::Account => "account",
            ThrottleKind::Address => "address",
            ThrottleKind::Registration => "registration",
        }
    }
}

/// What an unknown client address counts as in an (account, address) key.
const UNKNOWN_ADDRESS: &str = "unknown";

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

    /// The key counting failures for `email` from the client address `ip` (as
    /// [`normalize_address`] reduces it; an unknown address is one address of its own).
    pub fn account_address(email: &Email, ip: Option<&str>) -> Self {
        let address = ip.map_or_else(|| UNKNOWN_ADDRESS.to_owned(), normalize_address);
        // The NUL cannot occur in a normalized e-mail, so the pair is unambiguous.
        Self::new(
            ThrottleKind::AccountAddress,
            &format!("{}\0{address}", email.as_str()),
        )
    }

    /// The key counting failures from the client address `ip` (as [`normalize_address`]
    /// reduces it).
    pub fn address(ip: &str) -> Self {
        Self::new(ThrottleKind::Address, &normalize_address(ip))
    }

    /// The key counting registrations from the client address `ip`.
    pub fn registration(ip: &str) -> Self {
        Self::new(ThrottleKind::Registration, &normalize_address(ip))
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

/// The counters one secret check (a sign-in, a current password) touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleKeys {
    /// The (account, address) key; `None` for a malformed e-mail (it cannot have an account).
    pub account_address: Option<ThrottleKey>,
    /// The account key; `None` for a malformed e-mail.
    pub account: Option<ThrottleKey>,
    /// The address key; `None` when the client address is unknown.
    pub address: Option<ThrottleKey>,
}

impl ThrottleKeys {
    /// The keys of a check for `email` (if well-formed) from `client_ip` (if known).
    pub fn new(email: Option<&Email>, client_ip: Option<&str>) -> Self {
        Self {
            account_address: email.map(|email| ThrottleKey::account_address(email, client_ip)),
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
        let (pair, account, address) = tokio::try_join!(
            self.check(keys.account_address.as_ref(), now),
            self.check(keys.account.as_ref(), now),
            self.check(keys.address.as_ref(), now),
        )?;
        Ok(pair.max(account).max(address))
    }

    /// Until when `key` is locked at `now`, if it is (`None` for no key).
    pub async fn check(
        &self,
        key: Option<&ThrottleKey>,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, AttemptStoreError> {
        match key {
            Some(key) => self.store.check(key.as_str(), now).await,
            None => Ok(None),
        }
    }

    /// Counts a failure on `keys`: on the (account, address) key and the address key always,
    /// on the account key only when this failure starts a new run of the (account, address)
    /// key (see the module docs). Returns the latest lock end among them, if any.
    pub async fn record_failure(
        &self,
        keys: &ThrottleKeys,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, AttemptStoreError> {
        let account = async {
            let Some(pair_key) = &keys.account_address else {
                return self.record(keys.account.as_ref(), now).await;
            };
            let pair = self.record_key(pair_key, now).await?;
            if pair.failures != 1 {
                return Ok(pair.locked_until);
            }
            let account = self.record(keys.account.as_ref(), now).await?;
            Ok(pair.locked_until.max(account))
        };
        let (account, address) =
            tokio::try_join!(account, self.record(keys.address.as_ref(), now))?;
        Ok(account.max(address))
    }

    /// Counts one failure (or registration) of `key`, if there is one; returns its lock end.
    pub async fn record(
        &self,
        key: Option<&ThrottleKey>,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, AttemptStoreError> {
        match key {
            Some(key) => Ok(self.record_key(key, now).await?.locked_until),
            None => Ok(None),
        }
    }

    async fn record_key(
        &self,
        key: &ThrottleKey,
        now: DateTime<Utc>,
    ) -> Result<FailureCount, AttemptStoreError> {
        let free = self.policy.free_attempts(key.kind());
        let count = self
            .store
            .record_failure(key.as_str(), free, &self.policy, now)
            .await?;
        if count.failures == free {
            // The first lock of a run: worth a line; the following ones are the same story.
            tracing::warn!(
                key = key.log_id(),
                failures = count.failures,
                "throttled after repeated failures"
            );
        }
        Ok(count)
    }

    /// Forgets the account and (account, address) keys after a successful check.
    pub async fn reset_account(&self, keys: &ThrottleKeys) -> Result<(), AttemptStoreError> {
        for key in [&keys.account_address, &keys.account].into_iter().flatten() {
            self.store.reset(key.as_str()).await?;
        }
        Ok(())
    }
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
    fn the_schedule_table_is_delay_after_up_to_the_cap() {
        let p = ThrottlePolicy::default();
        let secs: Vec<i64> = p.schedule_ms(5).iter().map(|ms| ms / 1000).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900]);
        let tiny = ThrottlePolicy {
            base_delay: Duration::milliseconds(1),
            max_delay: Duration::days(1),
            ..ThrottlePolicy::default()
        };
        let table = tiny.schedule_ms(1);
        assert_eq!(table.len(), 28);
        assert_eq!(
            table.last().copied(),
            Some(Duration::days(1).num_milliseconds())
        );
    }

    #[test]
    fn pair_keys_separate_addresses_and_hide_both() {
        let email = Email::parse("alice@example.com").unwrap();
        let a = ThrottleKey::account_address(&email, Some("198.51.100.66"));
        let b = ThrottleKey::account_address(&email, Some("203.0.113.5"));
        let unknown = ThrottleKey::account_address(&email, None);
        assert_ne!(a, b);
        assert_ne!(a, unknown);
        assert_eq!(a.kind(), ThrottleKind::AccountAddress);
        assert!(a.as_str().starts_with("account_address:"));
        assert!(!a.as_str().contains("alice") && !a.as_str().contains("198."));
        assert_eq!(
            a,
            ThrottleKey::account_address(&email, Some("198.51.100.66:4711"))
        );
        let registration = ThrottleKey::registration("198.51.100.66");
        let address = ThrottleKey::address("198.51.100.66");
        assert!(registration.as_str().starts_with("registration:"));
        // Domain separation: the same address gives unrelated digests for the two kinds.
        let digest = |key: &ThrottleKey| key.as_str().rsplit(':').next().unwrap().to_owned();
        assert_ne!(digest(&registration), digest(&address));
    }

    #[test]
    fn bad_policies_are_reported_and_clamped() {
        let bad = ThrottlePolicy {
            account_address_free_attempts: 0,
            account_free_attempts: 0,
            address_free_attempts: 0,
            registration_free_attempts: 0,
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
