//! The storage seam for sessions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{Session, SessionCounts, SessionId};

/// Why a session store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing store cannot be reached or timed out; callers answer `503`.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// The store answered with data this code cannot read (a corrupt record); never a client's
    /// fault. [`crate::SessionManager::resolve`] ends such a session rather than failing every
    /// request that carries it.
    #[error("session store returned a malformed record: {0}")]
    Corrupt(String),
}

/// Where session records live. Every backend passes the suite in `conformance` (the cargo
/// feature of that name).
///
/// Rules every implementation keeps:
/// - the per-user index changes in the same atomic step as the record (a transaction in SQL;
///   in Redis the user's hash is both, changed by one script), so nothing leaks when sessions
///   expire while no node runs;
/// - records whose `expires_at()` is at or before `now` are never returned and are pruned from
///   the per-user index on read and write;
/// - ids are [`SessionId`]s (hashes of the secret), never the secret itself.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new session. With `cap = Some(n)`, the user's oldest sessions (by `created_at`)
    /// beyond `n` active ones are removed in the same step and their ids returned.
    async fn insert(
        &self,
        session: &Session,
        cap: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionId>, StoreError>;

    /// Fetches one session of a user; `None` when absent or expired. On Redis this is one
    /// command: it is the hot path of every authenticated request.
    async fn get(
        &self,
        user_id: &str,
        id: &SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError>;

    /// Writes `last_seen_at` and `idle_expires_at` (sliding renewal). Returns `false` when the
    /// session no longer exists (revoked meanwhile): a renewal must never resurrect a session.
    async fn touch(&self, session: &Session, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Deletes one session of a user; `true` when it existed.
    async fn remove(
        &self,
        user_id: &str,
        id: &SessionId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Deletes every session of a user except `keep`; returns the ids removed.
    async fn remove_for_user(
        &self,
        user_id: &str,
        keep: Option<&SessionId>,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionId>, StoreError>;

    /// The user's active sessions, most recently seen first.
    async fn list_for_user(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, StoreError>;

    /// How many active sessions the user has (the per-user count of the admin tools). The
    /// default lists them; a backend with a cheaper way overrides it. Bounded by the user's
    /// sessions (at most [`crate::SESSION_CEILING`]), never by everyone's.
    async fn count_for_user(&self, user_id: &str, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let sessions = self.list_for_user(user_id, now).await?;
        Ok(u64::try_from(sessions.len()).unwrap_or(u64::MAX))
    }

    /// Finds a session by id alone (admin tools); may be slower than [`SessionStore::get`].
    async fn find(&self, id: &SessionId, now: DateTime<Utc>)
        -> Result<Option<Session>, StoreError>;

    /// Up to `limit` active sessions of all users, most recently seen first (admin tools).
    async fn list_all(&self, limit: usize, now: DateTime<Utc>) -> Result<Vec<Session>, StoreError>;

    /// Active sessions and signed-in users, in O(log n) or better (no scan of all sessions).
    ///
    /// A store may delete records that have expired by `now` while it counts (SQLite does, so
    /// that its maintained totals hold only live rows; PostgreSQL subtracts them and then sweeps
    /// a bounded batch).
    ///
    /// Resolution: SQLite and PostgreSQL count to the millisecond; Redis counts to the second (its counters
    /// are per-second buckets, see [`crate::redis_store`]). With a whole-second `now` both are
    /// exact and a session is counted while `now < expires_at()`, never at it; with a
    /// fractional `now` a Redis count may include sessions that ended earlier in that second.
    /// Redis counts are also eventually exact: an update lost to a crash or an outage is wrong
    /// only until its bucket passes.
    async fn counts(&self, now: DateTime<Utc>) -> Result<SessionCounts, StoreError>;

    /// Checks that the store answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Tells every node that something of `user_id` kept outside this store changed (their
    /// second factors), so that what a node derived from it and keeps under
    /// [`SessionStore::user_watch`] is dropped. Redis rewrites the user's key with its own
    /// expiry, which every node's tracking connection hears; a store whose nodes keep no
    /// memory has nothing to tell.
    async fn announce_user_change(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let _ = (user_id, now);
        Ok(())
    }

    /// A watch on `user_id`'s data for something a node derives from it and keeps: taken
    /// before reading that something, it stays [`SessionStore::user_unchanged`] until any
    /// change of the user's sessions or an [`SessionStore::announce_user_change`] reaches
    /// this node, on any node, or the node stops hearing changes. `None` when this store
    /// hears nothing (no session cache): keep nothing then.
    fn user_watch(&self, user_id: &str) -> Option<UserWatch> {
        let _ = user_id;
        None
    }

    /// Whether nothing of `user_id` changed since `watch` was taken, and this node still
    /// hears changes (see [`SessionStore::user_watch`]).
    fn user_unchanged(&self, user_id: &str, watch: &UserWatch) -> bool {
        let _ = (user_id, watch);
        false
    }
}

/// What [`SessionStore::user_watch`] gives: opaque; compare it with
/// [`SessionStore::user_unchanged`].
/// Plain numbers, so that the seam does not depend on the cache (a store without one never
/// makes a watch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserWatch {
    /// What the store that made it needs to check it (the cache: shard, generation, epoch).
    pub(crate) parts: [u64; 3],
}
