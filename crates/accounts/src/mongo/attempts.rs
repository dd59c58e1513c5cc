//! Failed sign-in counters on MongoDB, for a node without Redis (see [`crate::throttle`]).
//!
//! A key's failures form a chain of documents in `ringfence_login_attempts`, one per failure:
//! `{ _id: "EPISODE:N:KEY", key, episode, n, locked_until_ms, forget_at_ms }`. Failure `n` is
//! computed from failure `n - 1` (the count, the lock that never shortens, the forget time) and
//! claimed by inserting its `_id`: of concurrent failures exactly one gets each `n`, the others
//! read the chain again and take the next one, so every failure is counted and gets its own
//! count. (An `$inc` would do on MongoDB; FerretDB 1.x applies updates as a read and a write,
//! and loses increments.) A failure after the forget time starts a new episode at 1. Older
//! episodes, and documents far behind the newest, are deleted as failures are recorded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::bson::{doc, Document};
use mongodb::options::FindOneOptions;
use mongodb::Collection;

use super::{ensure_index, is_duplicate_key, store_error, MongoDatabase};
use crate::throttle::{
    failures_from, lock_from_millis, millis, next_lock, AttemptStore, AttemptStoreError,
    FailureCount, ThrottlePolicy, PURGE_EVERY,
};
use crate::UserStoreError;

/// How often one failure may lose the race for its number before the store gives up (only
/// that many concurrent failures of one key could make it).
const MAX_TRIES: u32 = 256;
/// Documents this far behind the newest of an episode are deleted: no failure still in flight
/// read a chain that long ago.
const KEEP_BEHIND: i64 = 1000;

/// [`AttemptStore`] on MongoDB.
#[derive(Debug, Clone)]
pub struct MongoAttemptStore {
    attempts: Collection<Document>,
    recorded: Arc<AtomicU64>,
}

/// The newest document of a key's chain.
struct Link {
    episode: i64,
    n: i64,
    locked_until_ms: i64,
    forget_at_ms: i64,
}

impl MongoAttemptStore {
    /// The store on `db`; call [`MongoAttemptStore::migrate`] before use.
    pub fn new(db: &MongoDatabase) -> Self {
        MongoAttemptStore {
            attempts: db.database().collection("ringfence_login_attempts"),
            recorded: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Creates the indexes (idempotent; every node runs it at start).
    pub async fn migrate(&self) -> Result<(), AttemptStoreError> {
        ensure_index(
            &self.attempts,
            doc! { "key": 1, "episode": -1, "n": -1 },
            "login_attempts_chain",
            false,
        )
        .await
        .map_err(from_user_store)?;
        ensure_index(
            &self.attempts,
            doc! { "forget_at_ms": 1 },
            "login_attempts_forget",
            false,
        )
        .await
        .map_err(from_user_store)
    }

    /// Deletes every chain forgotten at `now`; returns how many documents went.
    pub async fn purge(&self, now: DateTime<Utc>) -> Result<u64, AttemptStoreError> {
        let done = self
            .attempts
            .delete_many(doc! { "forget_at_ms": { "$lte": millis(now) } })
            .await
            .map_err(error)?;
        Ok(done.deleted_count)
    }

    async fn newest(&self, key: &str) -> Result<Option<Link>, AttemptStoreError> {
        let newest_first = FindOneOptions::builder()
            .sort(doc! { "episode": -1, "n": -1 })
            .build();
        let Some(d) = self
            .attempts
            .find_one(doc! { "key": key })
            .with_options(newest_first)
            .await
            .map_err(error)?
        else {
            return Ok(None);
        };
        let field = |name: &str| {
            d.get_i64(name)
                .map_err(|_| AttemptStoreError::Corrupt(format!("login attempt document: {name}")))
        };
        Ok(Some(Link {
            episode: field("episode")?,
            n: field("n")?,
            locked_until_ms: field("locked_until_ms")?,
            forget_at_ms: field("forget_at_ms")?,
        }))
    }

    /// Deletes what no failure in flight can still build on, and now and then every
    /// forgotten chain. Best effort: a failure here only leaves documents for later.
    async fn tidy(&self, key: &str, episode: i64, n: i64, now: DateTime<Utc>) {
        let stale = self
            .attempts
            .delete_many(doc! { "key": key, "episode": { "$lt": episode } })
            .await
            .and(
                self.attempts
                    .delete_many(doc! {
                        "key": key, "episode": episode, "n": { "$lt": n - KEEP_BEHIND },
                    })
                    .await,
            );
        if let Err(e) = stale {
            tracing::warn!(error = %e, "deleting old sign-in attempt documents failed");
        }
        if self.recorded.fetch_add(1, Ordering::Relaxed) % PURGE_EVERY == PURGE_EVERY - 1 {
            if let Err(e) = self.purge(now).await {
                tracing::warn!(error = %e, "purging sign-in attempt documents failed");
            }
        }
    }
}

fn from_user_store(e: UserStoreError) -> AttemptStoreError {
    match e {
        UserStoreError::Corrupt(detail) => AttemptStoreError::Corrupt(detail),
        UserStoreError::Migration(detail) => AttemptStoreError::Migration(detail),
        other => AttemptStoreError::Unavailable(other.to_string()),
    }
}

fn error(e: mongodb::error::Error) -> AttemptStoreError {
    from_user_store(store_error(e))
}

#[async_trait]
impl AttemptStore for MongoAttemptStore {
    async fn check(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, AttemptStoreError> {
        let now_ms = millis(now);
        match self.newest(key).await? {
            Some(link) if link.forget_at_ms > now_ms => {
                lock_from_millis(link.locked_until_ms, now_ms)
            }
            _ => Ok(None),
        }
    }

    async fn record_failure(
        &self,
        key: &str,
        free_attempts: u32,
        policy: &ThrottlePolicy,
        now: DateTime<Utc>,
    ) -> Result<FailureCount, AttemptStoreError> {
        let now_ms = millis(now);
        for _ in 0..MAX_TRIES {
            let (episode, n, previous_lock) = match self.newest(key).await? {
                Some(link) if link.forget_at_ms > now_ms => {
                    (link.episode, link.n + 1, link.locked_until_ms)
                }
                Some(link) => (link.episode + 1, 1, 0),
                None => (1, 1, 0),
            };
            let failures = failures_from(n)?;
            let (lock, forget) = next_lock(failures, previous_lock, free_attempts, policy, now_ms);
            let claimed = self
                .attempts
                .insert_one(doc! {
                    "_id": format!("{episode}:{n}:{key}"),
                    "key": key, "episode": episode, "n": n,
                    "locked_until_ms": lock, "forget_at_ms": forget,
                })
                .await;
            match claimed {
                Ok(_) => {
                    self.tidy(key, episode, n, now).await;
                    return Ok(FailureCount {
                        failures,
                        locked_until: lock_from_millis(lock, now_ms)?,
                    });
                }
                // Another failure took this number first: build on it.
                Err(e) if is_duplicate_key(&e) => continue,
                Err(e) => return Err(error(e)),
            }
        }
        Err(AttemptStoreError::Unavailable(format!(
            "more than {MAX_TRIES} concurrent failures of one key"
        )))
    }

    async fn reset(&self, key: &str) -> Result<(), AttemptStoreError> {
        self.attempts
            .delete_many(doc! { "key": key })
            .await
            .map_err(error)?;
        Ok(())
    }
}
