//! Sessions answered from memory, with Redis telling every node of every change.
//!
//! [`SessionCache`] holds recently read session records, keyed by the user's Redis key
//! (`P{u:U'}`, one hash per user) and the session id. It is a [`TrackingListener`]: the
//! [`Tracker`](ringfence_keyring::tracking::Tracker)'s broadcast tracking of the `P{u:` prefix names the
//! user's key whenever anything of that user changes, on any node, and the cache drops that
//! user's entries. [`CachedSessionStore`] puts it in front of a [`RedisSessionStore`]: `get`
//! answers from memory when it may, every other call goes to Redis, and the node's own writes
//! (insert, touch, remove) drop the user's entries at once (before the push of the same change
//! arrives).
//!
//! A record is served from memory only when both hold:
//! - **No change was missed.** Each shard has a generation, bumped under its lock by every
//!   invalidation of a key in it; a read from Redis takes a [`FillTicket`] (the generation and
//!   the cache's epoch) *before* it is sent and its result is kept only if neither moved by the
//!   time it is stored. An invalidation that arrives while the filling read is in flight
//!   therefore leaves nothing behind; one that arrives after it was stored removes it.
//!   Connects, disconnects, `FLUSHALL`/`FLUSHDB` and unknown pushes bump the epoch and empty
//!   every shard.
//! - **The tracking connection proved itself within the lease** ([`SessionCache::lease`]): the
//!   last heartbeat answered was sent less than a lease ago, so every change Redis applied
//!   before then has been heard (see `ringfence_keyring::tracking`). Otherwise the store reads Redis as
//!   it would without a cache.
//!
//! The same tickets serve what a node derives from a user's data kept elsewhere (the
//! second-factor summary of `/api/v1/me`): [`SessionStore::user_watch`] hands out a ticket for
//! the user's key and [`SessionStore::user_unchanged`] checks it as a fill would, and
//! [`SessionStore::announce_user_change`] rewrites the key's expiry so that every node hears of a
//! change made outside Redis.
//!
//! Memory is bounded by a cap on entries (spread over the shards; a full shard drops an
//! entry to make room) and by each session's own expiry (an expired entry is never served and
//! is dropped when met). Misses are not remembered, so unknown cookies cannot fill memory.
//! Sliding renewal is unchanged: the manager still writes (`touch`) once per renewal interval;
//! the write drops the entry and the next request reads the renewed record.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::redis_store::KeyScan;
use crate::store::UserWatch;
use crate::{RedisSessionStore, Session, SessionCounts, SessionId, SessionStore, StoreError};
use ringfence_keyring::tracking::TrackingListener;

/// How long a confirmed heartbeat lets the cache trust its memory. Well under the contract's
/// 1 s: with a heartbeat every 200 ms, a healthy connection keeps the cache trusted throughout,
/// and a stalled one stops being trusted at most this long after its last answered ping left.
pub const DEFAULT_LEASE: Duration = Duration::from_millis(750);

/// Sessions a node keeps in memory by default (about 300 bytes each with a browser's
/// User-Agent: some 30 MB at most).
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Shards of the cache: invalidations and fills of different users rarely share a lock.
const SHARDS: usize = 64;

/// An entry of the cache: the sessions of one user this node has read.
type UserEntries = Vec<Session>;

#[derive(Default)]
struct Shard {
    /// Bumped by every invalidation of a key in this shard (see the module docs).
    generation: u64,
    /// User key → the user's cached sessions.
    users: HashMap<Box<[u8]>, UserEntries>,
    /// Sessions held in this shard.
    len: usize,
}

impl Shard {
    fn drop_user(&mut self, key: &[u8]) {
        self.generation = self.generation.wrapping_add(1);
        if let Some(entries) = self.users.remove(key) {
            self.len -= entries.len();
        }
    }

    fn clear(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.users.clear();
        self.len = 0;
    }
}

/// Proof that a read from Redis started after every change the cache had heard of; see
/// [`SessionCache::ticket`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillTicket {
    shard: usize,
    generation: u64,
    epoch: u64,
}

/// The in-memory session records of one node (see the module docs).
pub struct SessionCache {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    per_shard: usize,
    lease: Duration,
    /// Bumped by every [`TrackingListener::reset`].
    epoch: AtomicU64,
    /// The reference instant of the two times below.
    base: Instant,
    /// Nanoseconds after `base` at which the last answered heartbeat was sent, plus one
    /// (0: none since the last reset, trust nothing).
    confirmed: AtomicU64,
    /// Nanoseconds after `base` of the last reset: heartbeats sent before it prove nothing.
    reset_at: AtomicU64,
    /// Counts invalidations and resets heard, for tests and metrics to await.
    changes: watch::Sender<u64>,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("capacity", &(self.per_shard * SHARDS))
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl SessionCache {
    /// A cache holding at most about `capacity` sessions, trusting its memory for `lease` after
    /// each answered heartbeat. It trusts nothing until a tracker confirms a heartbeat.
    pub fn new(capacity: usize, lease: Duration) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        Self {
            shards,
            hasher: RandomState::new(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            lease,
            epoch: AtomicU64::new(0),
            base: Instant::now(),
            confirmed: AtomicU64::new(0),
            reset_at: AtomicU64::new(0),
            changes: watch::Sender::new(0),
        }
    }

    /// How long an answered heartbeat keeps the memory trusted.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Whether the memory may be served now: a heartbeat sent less than a lease ago came back
    /// since the last reset.
    pub fn is_trusted(&self) -> bool {
        let confirmed = self.confirmed.load(Ordering::Acquire);
        if confirmed == 0 {
            return false;
        }
        let sent = Duration::from_nanos(confirmed - 1);
        self.base.elapsed().saturating_sub(sent) < self.lease
    }

    /// A receiver that changes on every invalidation or reset this cache hears, and when it
    /// becomes trusted again (tests await a push with it).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len).sum()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard_of(&self, user_key: &[u8]) -> usize {
        // The modulo of a u64 by 64 fits any usize.
        (self.hasher.hash_one(user_key) % SHARDS as u64) as usize
    }

    /// The session `id` of the user whose key is `user_key`, if held, trusted and active at
    /// `now`.
    pub fn lookup(&self, user_key: &[u8], id: &SessionId, now: DateTime<Utc>) -> Option<Session> {
        if !self.is_trusted() {
            return None;
        }
        let mut shard = lock(&self.shards[self.shard_of(user_key)]);
        let entries = shard.users.get_mut(user_key)?;
        let at = entries.iter().position(|session| session.id == *id)?;
        if entries[at].is_active(now) {
            return Some(entries[at].clone());
        }
        entries.swap_remove(at);
        if entries.is_empty() {
            shard.users.remove(user_key);
        }
        shard.len -= 1;
        None
    }

    /// Taken before reading `user_key` from Redis; [`SessionCache::fill`] keeps the result only
    /// if nothing about that key was heard in between.
    pub fn ticket(&self, user_key: &[u8]) -> FillTicket {
        let shard = self.shard_of(user_key);
        // The epoch is read under the shard lock: a reset bumps it before emptying the shards,
        // so a fill either sees the new epoch or is emptied after it.
        let guard = lock(&self.shards[shard]);
        FillTicket {
            shard,
            generation: guard.generation,
            epoch: self.epoch.load(Ordering::Acquire),
        }
    }

    /// Whether the memory is trusted and nothing about `user_key`'s shard was heard since
    /// `ticket` was taken for it: what this node derived from the user's data after taking the
    /// ticket is still current (see [`SessionStore::user_watch`]).
    pub fn unchanged_since(&self, user_key: &[u8], ticket: &FillTicket) -> bool {
        if !self.is_trusted() || self.shard_of(user_key) != ticket.shard {
            return false;
        }
        let shard = lock(&self.shards[ticket.shard]);
        shard.generation == ticket.generation && self.epoch.load(Ordering::Acquire) == ticket.epoch
    }

    /// Keeps `session`, read from Redis after `ticket` was taken, unless an invalidation of its
    /// shard or a reset came in between. Returns whether it was kept.
    pub fn fill(&self, ticket: FillTicket, user_key: &[u8], session: Session) -> bool {
        let mut shard = lock(&self.shards[ticket.shard]);
        if shard.generation != ticket.generation
            || self.epoch.load(Ordering::Acquire) != ticket.epoch
        {
            return false;
        }
        if let Some(entries) = shard.users.get_mut(user_key) {
            if let Some(held) = entries.iter_mut().find(|held| held.id == session.id) {
                *held = session;
                return true;
            }
        }
        if shard.len >= self.per_shard {
            // Full: make room by dropping some user (the map's order is effectively random).
            if let Some(key) = shard.users.keys().next().cloned() {
                if let Some(entries) = shard.users.remove(&key) {
                    shard.len -= entries.len();
                }
            }
        }
        shard
            .users
            .entry(user_key.into())
            .or_default()
            .push(session);
        shard.len += 1;
        true
    }

    /// Drops everything held about `user_key` and turns away fills in flight for its shard (an
    /// invalidation, or this node's own write).
    pub fn invalidate(&self, user_key: &[u8]) {
        lock(&self.shards[self.shard_of(user_key)]).drop_user(user_key);
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Drops everything and trusts nothing until a heartbeat sent after now comes back.
    pub fn flush(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        // `reset_at` first: a heartbeat confirmed concurrently either sees it or is undone by
        // the store of 0 that follows (see `CacheListener::confirmed`).
        self.reset_at
            .store(self.nanos(Instant::now()), Ordering::Release);
        self.confirmed.store(0, Ordering::Release);
        for shard in self.shards.iter() {
            lock(shard).clear();
        }
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX - 1)
    }
}

/// A poisoned shard only means a panic elsewhere mid-update; the maps stay consistent enough
/// to be emptied or read, and a cache must never take requests down.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The cache listens to the user-key prefix of one session store.
struct CacheListener {
    cache: Arc<SessionCache>,
    prefix: String,
}

impl TrackingListener for CacheListener {
    fn prefixes(&self) -> Vec<String> {
        vec![self.prefix.clone()]
    }

    fn invalidated(&self, key: &[u8]) {
        if key.starts_with(self.prefix.as_bytes()) {
            self.cache.invalidate(key);
        }
    }

    fn reset(&self) {
        self.cache.flush();
    }

    fn confirmed(&self, sent: Instant) {
        let sent = self.cache.nanos(sent);
        if sent < self.cache.reset_at.load(Ordering::Acquire) {
            return;
        }
        let before = self.cache.confirmed.fetch_max(sent + 1, Ordering::AcqRel);
        // A reset between the check and the store must win: it ran after this heartbeat left.
        if sent < self.cache.reset_at.load(Ordering::Acquire) {
            self.cache.confirmed.store(0, Ordering::Release);
        } else if before == 0 {
            // Trusted again: tell those awaiting it (tests, after a reconnect).
            self.cache.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// A [`RedisSessionStore`] answering `get` from a [`SessionCache`] when it may (see the
/// module docs); every other call goes to Redis and drops the user's cached entries.
pub struct CachedSessionStore<C = redis::aio::ConnectionManager> {
    store: RedisSessionStore<C>,
    cache: Arc<SessionCache>,
}

impl<C> std::fmt::Debug for CachedSessionStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedSessionStore")
            .field("store", &self.store)
            .field("cache", &self.cache)
            .finish()
    }
}

impl<C: KeyScan> CachedSessionStore<C> {
    /// `store` with `cache` in front. The cache trusts nothing until a tracker fed by
    /// [`CachedSessionStore::listener`] confirms a heartbeat.
    pub fn new(store: RedisSessionStore<C>, cache: Arc<SessionCache>) -> Self {
        Self { store, cache }
    }

    /// The listener to give a [`Tracker`](ringfence_keyring::tracking::Tracker) on the same Redis: it
    /// tracks the user-key prefix `P{u:`.
    pub fn listener(&self) -> Arc<dyn TrackingListener> {
        Arc::new(CacheListener {
            cache: self.cache.clone(),
            prefix: format!("{}{{u:", self.store.prefix()),
        })
    }

    /// The cache.
    pub fn cache(&self) -> &Arc<SessionCache> {
        &self.cache
    }

    /// The store behind the cache.
    pub fn store(&self) -> &RedisSessionStore<C> {
        &self.store
    }

    /// Runs this node's write of `user_id`'s data, dropping the user's entries before (so no
    /// fill in flight is kept) and after (so nothing read meanwhile is kept).
    async fn write<T>(
        &self,
        user_id: &str,
        write: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let key = self.store.user_key(user_id);
        self.cache.invalidate(key.as_bytes());
        let result = write.await;
        self.cache.invalidate(key.as_bytes());
        result
    }
}

#[async_trait]
impl<C: KeyScan> SessionStore for CachedSessionStore<C> {
    async fn insert(
        &self,
        session: &Session,
        cap: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionId>, StoreError> {
        self.write(&session.user_id, self.store.insert(session, cap, now))
            .await
    }

    async fn get(
        &self,
        user_id: &str,
        id: &SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let key = self.store.user_key(user_id);
        if let Some(session) = self.cache.lookup(key.as_bytes(), id, now) {
            return Ok(Some(session));
        }
        let ticket = self.cache.ticket(key.as_bytes());
        let found = self.store.get(user_id, id, now).await?;
        if let Some(session) = &found {
            self.cache.fill(ticket, key.as_bytes(), session.clone());
        }
        Ok(found)
    }

    async fn touch(&self, session: &Session, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.write(&session.user_id, self.store.touch(session, now))
            .await
    }

    async fn remove(
        &self,
        user_id: &str,
        id: &SessionId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.write(user_id, self.store.remove(user_id, id, now))
            .await
    }

    async fn remove_for_user(
        &self,
        user_id: &str,
        keep: Option<&SessionId>,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionId>, StoreError> {
        self.write(user_id, self.store.remove_for_user(user_id, keep, now))
            .await
    }

    async fn announce_user_change(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write(user_id, self.store.announce_user_change(user_id, now))
            .await
    }

    fn user_watch(&self, user_id: &str) -> Option<UserWatch> {
        // Taken only while trusted: a watch taken before the tracking connection proved
        // itself would vouch for nothing.
        if !self.cache.is_trusted() {
            return None;
        }
        let key = self.store.user_key(user_id);
        let ticket = self.cache.ticket(key.as_bytes());
        Some(UserWatch {
            // A shard index below 64 fits any u64.
            parts: [ticket.shard as u64, ticket.generation, ticket.epoch],
        })
    }

    fn user_unchanged(&self, user_id: &str, watch: &UserWatch) -> bool {
        let [shard, generation, epoch] = watch.parts;
        let Ok(shard) = usize::try_from(shard) else {
            return false;
        };
        let ticket = FillTicket {
            shard,
            generation,
            epoch,
        };
        let key = self.store.user_key(user_id);
        self.cache.unchanged_since(key.as_bytes(), &ticket)
    }

    async fn list_for_user(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, StoreError> {
        // The listing prunes only records expired at `now`, which the cache never serves at
        // or after `now` either (and Redis pushes the change to every node): nothing to drop.
        self.store.list_for_user(user_id, now).await
    }

    async fn count_for_user(&self, user_id: &str, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.store.count_for_user(user_id, now).await
    }

    async fn find(
        &self,
        id: &SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        self.store.find(id, now).await
    }

    async fn list_all(&self, limit: usize, now: DateTime<Utc>) -> Result<Vec<Session>, StoreError> {
        self.store.list_all(limit, now).await
    }

    async fn counts(&self, now: DateTime<Utc>) -> Result<SessionCounts, StoreError> {
        self.store.counts(now).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{base_now, sample_session};

    fn trusted_cache(capacity: usize) -> (Arc<SessionCache>, CacheListener) {
        let cache = Arc::new(SessionCache::new(capacity, DEFAULT_LEASE));
        let listener = CacheListener {
            cache: cache.clone(),
            prefix: "p{u:".to_owned(),
        };
        listener.confirmed(Instant::now());
        (cache, listener)
    }

    #[test]
    fn memory_stays_within_the_capacity() {
        let (cache, _listener) = trusted_cache(SHARDS * 2);
        let now = base_now();
        for n in 0..SHARDS * 20 {
            let key = format!("p{{u:{n}}}");
            let ticket = cache.ticket(key.as_bytes());
            cache.fill(ticket, key.as_bytes(), sample_session(&n.to_string(), now));
        }
        assert!(cache.len() <= SHARDS * 2, "{}", cache.len());
    }

    #[test]
    fn an_expired_session_is_never_served_and_is_dropped() {
        let (cache, _listener) = trusted_cache(100);
        let now = base_now();
        let session = sample_session("u", now);
        let ticket = cache.ticket(b"p{u:u}");
        assert!(cache.fill(ticket, b"p{u:u}", session.clone()));
        assert!(cache.lookup(b"p{u:u}", &session.id, now).is_some());
        assert!(cache
            .lookup(b"p{u:u}", &session.id, session.expires_at())
            .is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn a_heartbeat_sent_before_a_reset_does_not_restore_trust() {
        let (cache, listener) = trusted_cache(100);
        assert!(cache.is_trusted());
        let sent = Instant::now();
        listener.reset();
        listener.confirmed(sent);
        assert!(!cache.is_trusted());
        listener.confirmed(Instant::now());
        assert!(cache.is_trusted());
    }

    #[test]
    fn an_invalidation_of_another_prefix_is_ignored_and_of_the_user_drops_all_their_sessions() {
        let (cache, listener) = trusted_cache(100);
        let now = base_now();
        for _ in 0..2 {
            let ticket = cache.ticket(b"p{u:u}");
            assert!(cache.fill(ticket, b"p{u:u}", sample_session("u", now)));
        }
        listener.invalidated(b"other{u:u}");
        assert_eq!(cache.len(), 2);
        listener.invalidated(b"p{u:u}");
        assert!(cache.is_empty());
    }
}
