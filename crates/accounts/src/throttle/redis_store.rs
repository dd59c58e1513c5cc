//! Attempt counters in Redis: every node of a fleet sees the same counts.
//!
//! # Key layout
//!
//! One key per counter, `P` being the prefix (normally `ringfence:`):
//!
//! | key | type | fields | expiry |
//! |-----|------|--------|--------|
//! | `Pthrottle:account:<sha256 hex>` | hash | `failures`, `locked_until` (unix ms, 0 = none), `forget_at` (unix ms) | `PEXPIRE` = `forget_at - now` |
//! | `Pthrottle:address:<sha256 hex>` | hash | the same | the same |
//!
//! A failure is one Lua script on that one key (read, forget if `forget_at` has passed, add one,
//! compute the lock, write, `PEXPIRE`), so concurrent failures from every node are all counted,
//! and every request touches a single key: the store works unchanged over a Redis Cluster
//! connection. `check` is one `HMGET`, `reset` one `DEL`.
//!
//! Expiry decisions use the caller's `now` (`forget_at` and `locked_until` are compared in the
//! script and in [`RedisAttemptStore::check`]); Redis's own clock only drops keys the nodes
//! already consider forgotten, and the expiry is relative so a skew between node and Redis
//! clocks does not shorten it.

use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::Script;

use super::{
    failures_from, lock_from_millis, millis, AttemptStore, AttemptStoreError, FailureCount,
    ThrottlePolicy,
};

/// KEYS: the counter. ARGV: now, free attempts, window (ms), then the schedule: the locks of
/// the `free`-th, the next, … failure up to the cap, in ms ([`ThrottlePolicy::schedule_ms`]).
/// Returns {failures, locked_until}.
///
/// The script does not compute delays: it only picks the entry for this failure (the last one
/// past the end of the table), so the schedule is defined once, in Rust. Lua numbers are
/// doubles: exact for millisecond timestamps and for delays up to the 1-day cap.
const LUA_RECORD_FAILURE: &str = r#"
local now = tonumber(ARGV[1])
local free = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local steps = #ARGV - 3
local v = redis.call('HMGET', KEYS[1], 'failures', 'locked_until', 'forget_at')
local failures, lock = 0, 0
local forget = tonumber(v[3])
if forget and forget > now then
  failures = tonumber(v[1]) or 0
  lock = tonumber(v[2]) or 0
end
failures = failures + 1
if failures >= free and steps > 0 then
  local step = math.min(failures - free + 1, steps)
  local delay = tonumber(ARGV[3 + step])
  if now + delay > lock then lock = now + delay end
end
forget = math.max(lock, now) + window
redis.call('HSET', KEYS[1], 'failures', failures, 'locked_until', lock, 'forget_at', forget)
redis.call('PEXPIRE', KEYS[1], forget - now)
return {failures, lock}
"#;

static RECORD_FAILURE: LazyLock<Script> = LazyLock::new(|| Script::new(LUA_RECORD_FAILURE));

/// [`AttemptStore`] over Redis (see the module docs for the key layout).
#[derive(Clone)]
pub struct RedisAttemptStore<C = ConnectionManager> {
    conn: C,
    prefix: String,
}

impl<C> std::fmt::Debug for RedisAttemptStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAttemptStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl<C> RedisAttemptStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// A store over any async connection (a `ConnectionManager`, or a cluster connection:
    /// every request touches one key), keys under `prefix` (normally `ringfence:`).
    pub fn new(conn: C, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key of a counter key (`account:<hex>` → `Pthrottle:account:<hex>`).
    pub fn redis_key(&self, key: &str) -> String {
        format!("{}throttle:{key}", self.prefix)
    }
}

fn map_redis_error(error: redis::RedisError) -> AttemptStoreError {
    match error.kind() {
        redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType => {
            AttemptStoreError::Corrupt(error.to_string())
        }
        // Refused or dropped connections, timeouts, a loading or failing-over server, script
        // errors (e.g. WRONGTYPE on a key someone else wrote): not usable right now.
        _ => AttemptStoreError::Unavailable(error.to_string()),
    }
}

fn parse_ms(field: &str, value: Option<String>) -> Result<Option<i64>, AttemptStoreError> {
    value
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                AttemptStoreError::Corrupt(format!("throttle field {field} is not a number"))
            })
        })
        .transpose()
}

#[async_trait]
impl<C> AttemptStore for RedisAttemptStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn check(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, AttemptStoreError> {
        let now_ms = millis(now);
        let mut conn = self.conn.clone();
        let (locked, forget): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.redis_key(key))
            .arg("locked_until")
            .arg("forget_at")
            .query_async(&mut conn)
            .await
            .map_err(map_redis_error)?;
        let locked = parse_ms("locked_until", locked)?;
        let forget = parse_ms("forget_at", forget)?;
        match (locked, forget) {
            (Some(locked), Some(forget)) if forget > now_ms => lock_from_millis(locked, now_ms),
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
        let p = policy.clamped();
        let now_ms = millis(now);
        let mut conn = self.conn.clone();
        let (failures, lock): (i64, i64) = RECORD_FAILURE
            .key(self.redis_key(key))
            .arg(now_ms)
            .arg(free_attempts.max(1))
            .arg(p.window.num_milliseconds())
            .arg(p.schedule_ms(free_attempts))
            .invoke_async(&mut conn)
            .await
            .map_err(map_redis_error)?;
        Ok(FailureCount {
            failures: failures_from(failures)?,
            locked_until: lock_from_millis(lock, now_ms)?,
        })
    }

    async fn reset(&self, key: &str) -> Result<(), AttemptStoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(self.redis_key(key))
            .query_async(&mut conn)
            .await
            .map_err(map_redis_error)?;
        Ok(())
    }
}
