//! Sessions in Redis: the store a fleet of nodes shares (key layout v2).
//!
//! # Key layout
//!
//! `P` is the prefix (default `ringfence:`, [`DEFAULT_PREFIX`]); `U'` the compact user id: a
//! user id that is a canonical UUID (lowercase, hyphenated, as `ringfence-accounts` makes them)
//! is written as the 22 base64url characters of its 16 bytes, any other id as `.` followed by the
//! id itself (`.` is not in the base64url alphabet, so the forms never collide and the key names
//! its user). All times are unix milliseconds.
//!
//! | key | type | content | expiry |
//! |-----|------|---------|--------|
//! | `P{u:U'}` | hash | one field per session: the 16 bytes of its [`SessionId`] → the binary record | `PEXPIREAT` = the latest `expires_at` of its fields |
//! | `P{c}:n` | hash | counts per minute: `s<minute>` sessions, `u<minute>` users expiring in that unix minute; `t` = last minute swept | `PEXPIREAT` a minute after the latest minute counted |
//! | `P{c}:n:<minute>` | hash | counts per second of that minute: `s<0-59>`, `u<0-59>` | `PEXPIREAT` a minute after that minute ends |
//!
//! The record (byte by byte in `redis_store/record.rs` and docs/ARCHITECTURE.md) is binary:
//! version byte 2, `expires_at` (= min(idle, absolute) expiry) and `created_at` as 6-byte
//! big-endian numbers at fixed offsets so the Lua scripts read them with `string.byte`, the other
//! times as zigzag-varint deltas, the address as 4 or 16 bytes (text when it would not print
//! back identically), then the User-Agent, the device label and the node as length-prefixed
//! UTF-8. A typical record (70-byte User-Agent, IPv4) is 119 bytes; the JSON of layout v1 was
//! about 190. Decoding checks every length and returns [`StoreError::Corrupt`] on anything
//! malformed.
//!
//! Memory (`MEMORY USAGE … SAMPLES 0`, Redis 7.0 with default settings, UUID user ids, a 70-byte
//! Firefox User-Agent, an IPv4 address, node `node-1`; summed over every key the store wrote,
//! count keys included, and divided by sessions; the `memory_per_session` test prints it):
//!
//! | sessions per user | user hash | count keys | total | with `hash-max-listpack-value 256` | layout v1 |
//! |---|---|---|---|---|---|
//! | 1 | 360 | 0.2 | **360** | 248 | 749 |
//! | 2 | 272 | 0.2 | **272** | 204 | 620 |
//! | 5 | 232 | 0.2 | **232** | 171 | 549 |
//!
//! At one session per user the 360 bytes are the key name (36 characters in a 48-byte
//! allocation), the key's entries in the keyspace and expiry tables, a small hash table, and one
//! entry: the 16-byte field and the 119-byte record in a 128-byte allocation. The count keys hold a few fields per second of
//! expiry, not per session: shared out, well under a byte per session once more than a few
//! hundred sessions are active (they were all created in the same second here; real traffic
//! spreads them over one idle timeout: with 30 minutes, at most about 60 minute fields and 3,600
//! second fields in all, tens of KiB whatever the number of sessions).
//!
//! A record above 64 bytes makes Redis keep the hash as a hash table, not a listpack
//! (`hash-max-listpack-value 64`); with `hash-max-listpack-value 256` in redis.conf the user hash
//! is a listpack and costs about a third less (docs/operations.md).
//!
//! # Consistency
//!
//! - **Per-user data is the truth**, in one key: every per-user operation (insert with the
//!   optional cap, touch, remove, remove-for-user, list) is one Lua script on `P{u:U'}` alone, so
//!   it is atomic and single-slot on Redis Cluster. Each script first deletes the fields whose
//!   `expires_at` is at or before `now` (Redis 7.0 has no per-field expiry), then works, then
//!   sets `PEXPIREAT` to the latest remaining expiry (the hash is gone with its last field). A
//!   user's data therefore vanishes by itself even if no node ever runs again.
//! - [`SessionStore::get`] is exactly one `HGET` (the hot path of every request); the record is
//!   decoded and its expiry re-checked against the caller's `now`, since an expired field stays
//!   until the next script of that user prunes it.
//! - `touch` rewrites a field only if it still exists after pruning, so a renewal racing a
//!   sign-out never resurrects the session. It writes the record it is given (the one the caller
//!   read, with new `last_seen_at` and `idle_expires_at`).
//! - The cap evicts the user's oldest sessions by `created_at`, read from the records inside the
//!   insert script (an unreadable record counts as oldest).
//! - **Counts without per-session global members.** A session is counted in the bucket of the
//!   second of its `expires_at`, a signed-in user in the bucket of their latest `expires_at`, in
//!   the `{c}` keys above. The per-user scripts return what moved (the user's latest expiry
//!   before and after, the affected sessions' old and new expiries) and the store then sends
//!   **one** call of a small script on the `{c}` slot that moves the counters (`HINCRBY` −1 on the
//!   old bucket, +1 on the new; buckets already past are left alone). [`SessionStore::counts`]
//!   is one script summing the minute buckets after the current minute and the second buckets
//!   of the current minute from the current second on: O(buckets), at most one field per kind
//!   and minute of the idle timeout plus 120, never O(sessions). Counts have **1-second
//!   resolution**: with whole-second `now`s they are exact (a session counts while
//!   `now < expires_at`, not at it); otherwise a session may count up to a second too long.
//! - The counts are bookkeeping, eventually exact. A failed counts call (or a crash between the
//!   two calls) is logged and does not fail the operation; the count it missed is wrong only
//!   until its bucket's second passes (at most one idle timeout later), because buckets count
//!   only while they are in the future and past ones are swept. Two writers of one user may
//!   apply their moves in either order: fields reaching 0 are deleted but negative ones are
//!   kept, so the sum comes out right; a total is never reported below 0.
//! - `find` and `list_all` (admin tools) have no global index to walk: they `SCAN` the keys
//!   matching `P{u:*` (`COUNT 1000` per step) on every server holding keys ([`KeyScan`]) and read
//!   the hashes in batches of 256 concurrent `HGET`/`HGETALL`. O(users + sessions) time;
//!   `list_all` keeps only the best `limit` in memory.
//!
//! Redis expires keys by its own clock and the nodes decide expiry by theirs; keep them in NTP
//! sync. The prefix must not contain `{` or `}` (it would change the hash tags). A user id may
//! contain anything: a `}` in it ends the hash tag early, which only moves that user's key to
//! another slot (each user has exactly one key).
//!
//! # Connections
//!
//! [`RedisSessionStore`] is generic over the connection (`ConnectionManager` by default), which
//! must implement [`KeyScan`] (done for `ConnectionManager`, `MultiplexedConnection` and
//! `redis::cluster_async::ClusterConnection`). Every request it sends touches a single hash slot
//! (one command or one script) except the admin listings' `SCAN`, which the [`KeyScan`] of a
//! cluster sends to every master. The `{c}` count keys share one slot: on a cluster every write
//! also reaches that slot's master once.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use futures_util::future::try_join_all;
use redis::aio::ConnectionManager;
use redis::{Cmd, Script, Value};
use uuid::Uuid;

use crate::session::millis;
use crate::{Session, SessionCounts, SessionId, SessionStore, StoreError, ID_BYTES};

mod counts;
mod record;
mod scan;

pub use scan::{KeyScan, ScanTarget};

use counts::{Kind, Moves};

/// The key prefix used when none is configured.
pub const DEFAULT_PREFIX: &str = "ringfence:";

/// Per-user reads the admin listings send concurrently.
const FETCH_BATCH: usize = 256;

/// `SCAN … COUNT`: how many slots of the keyspace one admin-listing step walks.
const SCAN_COUNT: usize = 1000;

/// [`SessionStore`] over Redis (see the module docs for the key layout).
#[derive(Clone)]
pub struct RedisSessionStore<C = ConnectionManager> {
    conn: C,
    prefix: String,
    /// `P{c}:n`, the minute-level counts hash (its per-minute hashes append `:<minute>`).
    counts_key: String,
}

impl<C> std::fmt::Debug for RedisSessionStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessionStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisSessionStore<ConnectionManager> {
    /// A store on a single Redis server (or a primary behind a proxy), keys under `prefix`
    /// (normally [`DEFAULT_PREFIX`]).
    pub fn new(conn: ConnectionManager, prefix: String) -> Self {
        Self::with_connection(conn, prefix)
    }
}

impl<C: KeyScan> RedisSessionStore<C> {
    /// A store over any async connection that can also walk the keyspace ([`KeyScan`]), for
    /// example a cluster connection: every request this store sends stays within one hash slot,
    /// except the admin listings' `SCAN`, which visits every master.
    pub fn with_connection(conn: C, prefix: String) -> Self {
        let counts_key = format!("{prefix}{{c}}:n");
        Self {
            conn,
            prefix,
            counts_key,
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `P{u:U'}`: the hash holding every session of `user_id` (for operators and tests; `U'` is
    /// the compact user id of the module docs).
    pub fn user_key(&self, user_id: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + 5 + user_id.len());
        key.push_str(&self.prefix);
        key.push_str("{u:");
        push_compact_user_id(&mut key, user_id);
        key.push('}');
        key
    }

    /// `P{c}:n`: the minute-level counts hash. Its per-minute companions are `P{c}:n:<minute>`
    /// (unix minutes); every counts key matches `P{c}:n*`.
    pub fn counts_key(&self) -> &str {
        &self.counts_key
    }

    /// The user id a key written by [`RedisSessionStore::user_key`] belongs to; `None` for
    /// any other key the `SCAN` pattern matches, such as the `P{u:U}:s:S` and `P{u:U}:idx` keys
    /// layout v1 left behind until they expire.
    fn user_of_key(&self, key: &str) -> Option<String> {
        key.strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix("{u:"))
            .and_then(|rest| rest.strip_suffix('}'))
            .and_then(expand_user_id)
    }

    /// The (key, user id) pairs of a page of [`UserScan`], leaving out keys that only look like
    /// user keys (layout v1's, until they expire): they are not hashes and hold no v2 record.
    fn user_keys(&self, keys: Vec<String>) -> Vec<(String, String)> {
        keys.into_iter()
            .filter_map(|key| {
                let user_id = self.user_of_key(&key)?;
                Some((key, user_id))
            })
            .collect()
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn).await.map_err(map_redis_error)
    }

    /// Runs one per-user script on the user's key.
    async fn user_script(
        &self,
        script: &Script,
        user_id: &str,
        args: &[&[u8]],
    ) -> Result<Vec<Value>, StoreError> {
        let mut invocation = script.key(self.user_key(user_id));
        for arg in args {
            invocation.arg(*arg);
        }
        let mut conn = self.conn.clone();
        invocation
            .invoke_async(&mut conn)
            .await
            .map_err(map_redis_error)
    }

    /// Applies counter changes with one script call on the `{c}` slot. The counts are
    /// bookkeeping, not the truth: a failure is logged rather than failing the call whose
    /// per-user write already happened, and the wrong bucket heals when its second passes.
    async fn move_counts(&self, moves: &Moves) {
        let Some((keys, args)) = moves.invocation(&self.counts_key) else {
            return;
        };
        let mut invocation = counts::MOVE.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(arg);
        }
        let mut conn = self.conn.clone();
        match invocation.invoke_async::<i64>(&mut conn).await {
            Ok(expired) => crate::events::expired_unnamed(u64::try_from(expired).unwrap_or(0)),
            Err(error) => {
                tracing::warn!(%error, "session store: counts update failed; the counts heal when the bucket passes");
            }
        }
    }

    /// The last step of every per-user write: applies `moves` with the user's own move, from
    /// the latest expiry of their sessions `before` the script to the latest `after` it (as
    /// the script returned them).
    async fn move_user_counts(
        &self,
        mut moves: Moves,
        before: &Value,
        after: &Value,
    ) -> Result<(), StoreError> {
        moves.change(Kind::Users, Some(int(before)?), Some(int(after)?));
        self.move_counts(&moves).await;
        Ok(())
    }

    /// Every user key of this prefix, page by page, on every server holding keys.
    async fn scan_users(&self) -> Result<UserScan<C>, StoreError> {
        let mut conn = self.conn.clone();
        let targets = conn.scan_targets().await.map_err(map_redis_error)?;
        Ok(UserScan {
            conn,
            targets,
            target: 0,
            cursor: 0,
            pattern: format!("{}{{u:*", glob_escape(&self.prefix)),
        })
    }
}

/// A walk over every user key with `SCAN MATCH P{u:* COUNT 1000`, one target after the other.
struct UserScan<C> {
    conn: C,
    targets: Vec<ScanTarget>,
    target: usize,
    cursor: u64,
    pattern: String,
}

impl<C: KeyScan> UserScan<C> {
    /// The next non-empty page of keys; `None` when every target is walked. A key may come
    /// twice (SCAN guarantees at least once, during rehashing or slot migration more).
    async fn next_page(&mut self) -> Result<Option<Vec<String>>, StoreError> {
        while let Some(target) = self.targets.get(self.target) {
            let cmd = redis::cmd("SCAN")
                .arg(self.cursor)
                .arg("MATCH")
                .arg(&self.pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .to_owned();
            let reply = self
                .conn
                .query_target(target, &cmd)
                .await
                .map_err(map_redis_error)?;
            let (next, keys): (u64, Vec<String>) = redis::from_redis_value(reply)
                .map_err(|e| StoreError::Corrupt(format!("SCAN reply: {e}")))?;
            if next == 0 {
                self.target += 1;
            }
            self.cursor = next;
            if !keys.is_empty() {
                return Ok(Some(keys));
            }
        }
        Ok(None)
    }
}

/// Shared Lua: reading a record's times, pruning a user's hash, and its expiry.
const LUA_PRELUDE: &str = r#"
-- A record's expiry (unix ms): 6 big-endian bytes after the version byte; exact in a double.
-- Anything too short or of another version was not written by this code: it reads as 0,
-- expired, and is pruned.
local function expiry(v)
  if #v < 13 or string.byte(v, 1) ~= 2 then return 0 end
  local a, b, c, d, e, f = string.byte(v, 2, 7)
  return ((((a * 256 + b) * 256 + c) * 256 + d) * 256 + e) * 256 + f
end
-- A record's created_at (the next 6 bytes); -1 when unreadable, so it is evicted first.
local function created(v)
  if #v < 13 or string.byte(v, 1) ~= 2 then return -1 end
  local a, b, c, d, e, f = string.byte(v, 8, 13)
  return ((((a * 256 + b) * 256 + c) * 256 + d) * 256 + e) * 256 + f
end
-- HDEL in chunks: unpack has a limit on its results.
local function hdel(key, fields)
  for i = 1, #fields, 1000 do
    redis.call('HDEL', key, unpack(fields, i, math.min(i + 999, #fields)))
  end
end
-- Reads the user's hash and deletes the fields that expired at or before now. Returns the live
-- fields (field -> record) and the latest expiry before pruning (0: none).
local function load(key, now)
  local flat = redis.call('HGETALL', key)
  local live, dead, before = {}, {}, 0
  for i = 1, #flat, 2 do
    local e = expiry(flat[i + 1])
    if e > before then before = e end
    if e <= now then dead[#dead + 1] = flat[i] else live[flat[i]] = flat[i + 1] end
  end
  hdel(key, dead)
  return live, before
end
-- Sets the key to expire with its latest record and returns that expiry (0: none left; Redis
-- already deleted the hash with its last field).
local function finish(key, live)
  local latest = 0
  for _, v in pairs(live) do
    local e = expiry(v)
    if e > latest then latest = e end
  end
  if latest > 0 then redis.call('PEXPIREAT', key, latest) end
  return latest
end
"#;

/// KEYS: user. ARGV: now, field, record, cap (-1 = none).
/// Returns {latest before, latest after, old expiry of this field or 0, evicted field, its expiry, …}.
const LUA_INSERT: &str = r#"
local live, before = load(KEYS[1], tonumber(ARGV[1]))
local old = live[ARGV[2]]
local result = {before, 0, old and expiry(old) or 0}
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
live[ARGV[2]] = ARGV[3]
local cap = tonumber(ARGV[4])
if cap >= 0 then
  local aged = {}
  for f, v in pairs(live) do
    if f ~= ARGV[2] then aged[#aged + 1] = {f, created(v), expiry(v)} end
  end
  local excess = #aged + 1 - cap
  if excess > 0 then
    table.sort(aged, function(x, y)
      if x[2] == y[2] then return x[1] < y[1] end
      return x[2] < y[2]
    end)
    local gone = {}
    for k = 1, math.min(excess, #aged) do
      gone[#gone + 1] = aged[k][1]
      live[aged[k][1]] = nil
      result[#result + 1] = aged[k][1]
      result[#result + 1] = aged[k][3]
    end
    hdel(KEYS[1], gone)
  end
end
result[2] = finish(KEYS[1], live)
return result
"#;

/// KEYS: user. ARGV: now, field, record. Rewrites the field only if it still exists, so a
/// renewal racing a sign-out never resurrects the session.
/// Returns {1 if rewritten else 0, latest before, latest after, old expiry or 0}.
const LUA_TOUCH: &str = r#"
local live, before = load(KEYS[1], tonumber(ARGV[1]))
local old = live[ARGV[2]]
if not old then return {0, before, finish(KEYS[1], live), 0} end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
live[ARGV[2]] = ARGV[3]
return {1, before, finish(KEYS[1], live), expiry(old)}
"#;

/// KEYS: user. ARGV: now, field.
/// Returns {1 if it existed else 0, latest before, latest after, its expiry or 0}.
const LUA_REMOVE: &str = r#"
local live, before = load(KEYS[1], tonumber(ARGV[1]))
local old = live[ARGV[2]]
if not old then return {0, before, finish(KEYS[1], live), 0} end
redis.call('HDEL', KEYS[1], ARGV[2])
live[ARGV[2]] = nil
return {1, before, finish(KEYS[1], live), expiry(old)}
"#;

/// KEYS: user. ARGV: now, field to keep ('' = none).
/// Returns {latest before, latest after, removed field, its expiry, …}.
const LUA_REMOVE_FOR_USER: &str = r#"
local live, before = load(KEYS[1], tonumber(ARGV[1]))
local result, gone = {before, 0}, {}
for f, v in pairs(live) do
  if f ~= ARGV[2] then
    gone[#gone + 1] = f
    result[#result + 1] = f
    result[#result + 1] = expiry(v)
  end
end
for _, f in ipairs(gone) do live[f] = nil end
hdel(KEYS[1], gone)
result[2] = finish(KEYS[1], live)
return result
"#;

/// KEYS: user. ARGV: now. Returns {field, record, field, record, …} of the live sessions.
/// Pruning leaves the latest expiry (and so the key's expiry and the counts) as it was: only
/// records already past it go.
const LUA_LIST: &str = r#"
local live = load(KEYS[1], tonumber(ARGV[1]))
local result = {}
for f, v in pairs(live) do
  result[#result + 1] = f
  result[#result + 1] = v
end
return result
"#;

/// KEYS: user. ARGV: now. Sets the key's expiry again to its latest live record's (pruning
/// expired ones, as every script does): a write that every node's tracking connection hears,
/// changing no record. Returns {that expiry} (0: no live record, no key, nothing to tell).
const LUA_ANNOUNCE: &str = r#"
local live = load(KEYS[1], tonumber(ARGV[1]))
return {finish(KEYS[1], live)}
"#;

fn script(body: &str) -> Script {
    Script::new(&format!("{LUA_PRELUDE}{body}"))
}

static INSERT: LazyLock<Script> = LazyLock::new(|| script(LUA_INSERT));
static TOUCH: LazyLock<Script> = LazyLock::new(|| script(LUA_TOUCH));
static REMOVE: LazyLock<Script> = LazyLock::new(|| script(LUA_REMOVE));
static REMOVE_FOR_USER: LazyLock<Script> = LazyLock::new(|| script(LUA_REMOVE_FOR_USER));
static LIST: LazyLock<Script> = LazyLock::new(|| script(LUA_LIST));
static ANNOUNCE: LazyLock<Script> = LazyLock::new(|| script(LUA_ANNOUNCE));

#[async_trait]
impl<C: KeyScan> SessionStore for RedisSessionStore<C> {
    async fn insert(
        &self,
        session: &Session,
        cap: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionId>, StoreError> {
        let now_ms = millis(now);
        let field = storable_id(&session.id)?;
        let value = record::encode(session)?;
        let cap = cap.map_or(-1, i64::from).to_string();
        let now_arg = now_ms.to_string();
        let reply = self
            .user_script(
                &INSERT,
                &session.user_id,
                &[now_arg.as_bytes(), &field, &value, cap.as_bytes()],
            )
            .await?;
        let [before, after, old, evicted @ ..] = reply.as_slice() else {
            return Err(malformed("insert"));
        };
        let mut moves = Moves::new(now_ms);
        moves.change(
            Kind::Sessions,
            Some(int(old)?),
            Some(millis(session.expires_at())),
        );
        let evicted = moves.sessions_gone(id_expiry_pairs(evicted)?);
        self.move_user_counts(moves, before, after).await?;
        Ok(evicted)
    }

    async fn get(
        &self,
        user_id: &str,
        id: &SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        // An id no secret hashes to cannot be stored: a miss without asking Redis.
        let Some(field) = id.to_bytes() else {
            return Ok(None);
        };
        let raw: Option<Vec<u8>> = self
            .query(
                redis::cmd("HGET")
                    .arg(self.user_key(user_id))
                    .arg(&field[..]),
            )
            .await?;
        let Some(raw) = raw else { return Ok(None) };
        let session = record::decode(user_id, id, &raw)?;
        // Redis keeps an expired field until a script prunes it: the caller's clock decides.
        Ok(session.is_active(now).then_some(session))
    }

    async fn touch(&self, session: &Session, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let now_ms = millis(now);
        let Some(field) = session.id.to_bytes() else {
            return Ok(false);
        };
        let value = record::encode(session)?;
        let now_arg = now_ms.to_string();
        let reply = self
            .user_script(
                &TOUCH,
                &session.user_id,
                &[now_arg.as_bytes(), &field, &value],
            )
            .await?;
        let [rewritten, before, after, old] = reply.as_slice() else {
            return Err(malformed("touch"));
        };
        let rewritten = int(rewritten)? == 1;
        if rewritten {
            let mut moves = Moves::new(now_ms);
            moves.change(
                Kind::Sessions,
                Some(int(old)?),
                Some(millis(session.expires_at())),
            );
            self.move_user_counts(moves, before, after).await?;
        }
        Ok(rewritten)
    }

    async fn remove(
        &self,
        user_id: &str,
        id: &SessionId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now_ms = millis(now);
        let Some(field) = id.to_bytes() else {
            return Ok(false);
        };
        let now_arg = now_ms.to_string();
        let reply = self
            .user_script(&REMOVE, user_id, &[now_arg.as_bytes(), &field])
            .await?;
        let [existed, before, after, old] = reply.as_slice() else {
            return Err(malformed("remove"));
        };
        let existed = int(existed)? == 1;
        if existed {
            let mut moves = Moves::new(now_ms);
            moves.change(Kind::Sessions, Some(int(old)?), None);
            self.move_user_counts(moves, before, after).await?;
        }
        Ok(existed)
    }

    async fn remove_for_user(
        &self,
        user_id: &str,
        keep: Option<&SessionId>,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionId>, StoreError> {
        let now_ms = millis(now);
        // A keep id no secret hashes to is not stored: nothing to keep.
        let keep = keep.and_then(SessionId::to_bytes);
        let keep: &[u8] = keep.as_ref().map_or(&[], |bytes| &bytes[..]);
        let now_arg = now_ms.to_string();
        let reply = self
            .user_script(&REMOVE_FOR_USER, user_id, &[now_arg.as_bytes(), keep])
            .await?;
        let [before, after, removed @ ..] = reply.as_slice() else {
            return Err(malformed("remove-for-user"));
        };
        let mut moves = Moves::new(now_ms);
        let removed = moves.sessions_gone(id_expiry_pairs(removed)?);
        self.move_user_counts(moves, before, after).await?;
        Ok(removed)
    }

    async fn list_for_user(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, StoreError> {
        let now_arg = millis(now).to_string();
        let flat = self
            .user_script(&LIST, user_id, &[now_arg.as_bytes()])
            .await?;
        if !flat.len().is_multiple_of(2) {
            return Err(malformed("list"));
        }
        let mut sessions = Vec::with_capacity(flat.len() / 2);
        for pair in flat.chunks_exact(2) {
            // One damaged record must not take the whole "where you're signed in" page down;
            // it is logged, left out, and still ended by "sign out everywhere else".
            let Some(session) = decoded_or_logged(user_id, &field_id(&pair[0])?, bulk(&pair[1])?)
            else {
                continue;
            };
            if session.is_active(now) {
                sessions.push(session);
            }
        }
        sort_recent_first(&mut sessions);
        Ok(sessions)
    }

    async fn find(
        &self,
        id: &SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let Some(field) = id.to_bytes() else {
            return Ok(None);
        };
        // Admin path, O(users): walk every user key and ask each for the field.
        let mut scan = self.scan_users().await?;
        while let Some(keys) = scan.next_page().await? {
            for chunk in self.user_keys(keys).chunks(FETCH_BATCH) {
                let fetches = chunk.iter().map(|(key, user_id)| async move {
                    let raw: Option<Vec<u8>> = self
                        .query(redis::cmd("HGET").arg(key).arg(&field[..]))
                        .await?;
                    Ok::<_, StoreError>(raw.map(|raw| (user_id, raw)))
                });
                for (user_id, raw) in try_join_all(fetches).await?.into_iter().flatten() {
                    // One damaged record must not hide every other from the admin tools.
                    let Some(session) = decoded_or_logged(user_id, id, &raw) else {
                        continue;
                    };
                    if session.is_active(now) {
                        return Ok(Some(session));
                    }
                }
            }
        }
        Ok(None)
    }

    async fn list_all(&self, limit: usize, now: DateTime<Utc>) -> Result<Vec<Session>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Admin path, O(sessions) time but O(limit) memory: the best `limit` so far are kept,
        // and once there are that many, records last seen before the worst of them are passed
        // over without decoding (most of them, on a large store).
        let now_ms = millis(now);
        let mut kept = Vec::new();
        let mut cut = i64::MIN;
        let mut scan = self.scan_users().await?;
        while let Some(keys) = scan.next_page().await? {
            for chunk in self.user_keys(keys).chunks(FETCH_BATCH) {
                let fetches = chunk.iter().map(|(key, user_id)| async move {
                    let fields: HashMap<Vec<u8>, Vec<u8>> =
                        self.query(redis::cmd("HGETALL").arg(key)).await?;
                    Ok::<_, StoreError>((user_id, fields))
                });
                for (user_id, fields) in try_join_all(fetches).await? {
                    for (field, raw) in fields {
                        if let Some((expires, last_seen)) = record::peek(&raw) {
                            if expires <= now_ms || last_seen < cut {
                                continue;
                            }
                        }
                        let Ok(id) = id_from_field(&field) else {
                            tracing::warn!(user_id = %user_id, "session store: a user hash holds a field that is not a session id; skipped");
                            continue;
                        };
                        let Some(session) = decoded_or_logged(user_id, &id, &raw) else {
                            continue;
                        };
                        if session.is_active(now) {
                            kept.push(session);
                        }
                    }
                }
                if kept.len() >= limit.saturating_add(FETCH_BATCH).saturating_mul(2) {
                    keep_best(&mut kept, limit);
                    // Ties on last_seen_at are ordered by id, so only strictly older ones go.
                    if kept.len() == limit {
                        cut = kept.last().map_or(cut, |worst| millis(worst.last_seen_at));
                    }
                }
            }
        }
        keep_best(&mut kept, limit);
        Ok(kept)
    }

    async fn counts(&self, now: DateTime<Utc>) -> Result<SessionCounts, StoreError> {
        let (keys, args) = counts::count_invocation(&self.counts_key, millis(now));
        let mut conn = self.conn.clone();
        let (sessions, users): (i64, i64) = counts::COUNT
            .key(&keys[..])
            .arg(&args[..])
            .invoke_async(&mut conn)
            .await
            .map_err(map_redis_error)?;
        // Negative only after lost updates (see the module docs): never report below zero.
        Ok(SessionCounts {
            active_sessions: u64::try_from(sessions).unwrap_or(0),
            signed_in_users: u64::try_from(users).unwrap_or(0),
        })
    }

    async fn announce_user_change(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now_arg = millis(now).to_string();
        self.user_script(&ANNOUNCE, user_id, &[now_arg.as_bytes()])
            .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }
}

/// The field name of a session to be stored: its 16 bytes.
fn storable_id(id: &SessionId) -> Result<[u8; ID_BYTES], StoreError> {
    id.to_bytes().ok_or_else(|| {
        StoreError::Corrupt(format!(
            "session id {id} is not the hash of a secret and cannot be stored"
        ))
    })
}

/// Appends `U'` for `user_id`: a canonical (lowercase, hyphenated) UUID as the 22 base64url
/// characters of its 16 bytes, anything else as `.` and the id itself. `.` is not in the
/// base64url alphabet, so the two forms never meet and [`expand_user_id`] reverses either.
fn push_compact_user_id(out: &mut String, user_id: &str) {
    if user_id.len() == 36 {
        if let Ok(uuid) = Uuid::try_parse(user_id) {
            let mut buf = [0u8; 36];
            // `try_parse` also takes upper case; only the exact canonical text maps to bytes,
            // or two spellings of one UUID would share a key.
            if uuid.hyphenated().encode_lower(&mut buf) == user_id {
                URL_SAFE_NO_PAD.encode_string(uuid.as_bytes(), out);
                return;
            }
        }
    }
    out.push('.');
    out.push_str(user_id);
}

/// The user id behind a compact id `U'`; `None` when it is neither form.
fn expand_user_id(compact: &str) -> Option<String> {
    if let Some(raw) = compact.strip_prefix('.') {
        return Some(raw.to_owned());
    }
    if compact.len() != 22 {
        return None;
    }
    let mut bytes = [0u8; 16];
    match URL_SAFE_NO_PAD.decode_slice(compact, &mut bytes) {
        Ok(16) => Some(Uuid::from_bytes(bytes).hyphenated().to_string()),
        _ => None,
    }
}

/// `text` with Redis glob characters escaped, for `SCAN MATCH`.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn malformed(script: &str) -> StoreError {
    StoreError::Corrupt(format!(
        "session {script} script returned an unexpected reply"
    ))
}

fn int(value: &Value) -> Result<i64, StoreError> {
    match value {
        Value::Int(n) => Ok(*n),
        other => Err(StoreError::Corrupt(format!(
            "expected an integer from a session script, got {other:?}"
        ))),
    }
}

fn bulk(value: &Value) -> Result<&[u8], StoreError> {
    match value {
        Value::BulkString(bytes) => Ok(bytes),
        other => Err(StoreError::Corrupt(format!(
            "expected a string from a session script, got {other:?}"
        ))),
    }
}

/// Decodes a record for the listings; a damaged one is logged (ids only) and skipped.
fn decoded_or_logged(user_id: &str, id: &SessionId, raw: &[u8]) -> Option<Session> {
    match record::decode(user_id, id, raw) {
        Ok(session) => Some(session),
        Err(error) => {
            tracing::warn!(user_id, session = %id, %error, "session store: unreadable session record left out of a listing");
            None
        }
    }
}

fn id_from_field(field: &[u8]) -> Result<SessionId, StoreError> {
    <[u8; ID_BYTES]>::try_from(field)
        .map(SessionId::from_bytes)
        .map_err(|_| {
            StoreError::Corrupt(format!("malformed session field of {} bytes", field.len()))
        })
}

fn field_id(value: &Value) -> Result<SessionId, StoreError> {
    id_from_field(bulk(value)?)
}

/// `[field, expiry, field, expiry, …]` from a script reply.
fn id_expiry_pairs(flat: &[Value]) -> Result<Vec<(SessionId, i64)>, StoreError> {
    if !flat.len().is_multiple_of(2) {
        return Err(StoreError::Corrupt(
            "session script returned an odd list of sessions".into(),
        ));
    }
    flat.chunks_exact(2)
        .map(|pair| Ok((field_id(&pair[0])?, int(&pair[1])?)))
        .collect()
}

fn sort_recent_first(sessions: &mut [Session]) {
    sessions.sort_by(|a, b| {
        b.last_seen_at
            .cmp(&a.last_seen_at)
            .then_with(|| a.id.cmp(&b.id))
    });
}

/// The `limit` most recently seen sessions, each once (a SCAN may visit a key twice).
fn keep_best(sessions: &mut Vec<Session>, limit: usize) {
    sort_recent_first(sessions);
    let mut seen = HashSet::new();
    sessions.retain(|session| seen.insert(session.id.clone()));
    sessions.truncate(limit);
}

fn map_redis_error(error: redis::RedisError) -> StoreError {
    match error.kind() {
        redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType => {
            StoreError::Corrupt(error.to_string())
        }
        // Connection refused or dropped, timeouts, a failing-over or loading server, script
        // errors: the store cannot serve the request right now.
        _ => StoreError::Unavailable(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compact(user_id: &str) -> String {
        let mut out = String::new();
        push_compact_user_id(&mut out, user_id);
        out
    }

    #[test]
    fn compact_user_ids_round_trip_and_never_collide() {
        let uuid = "0b6f3c1e-1c2d-4e5f-8a9b-00000000beef";
        assert_eq!(compact(uuid).len(), 22);
        assert_eq!(expand_user_id(&compact(uuid)).as_deref(), Some(uuid));
        for other in [
            "0B6F3C1E-1C2D-4E5F-8A9B-00000000BEEF",
            "0b6f3c1e1c2d4e5f8a9b00000000beef",
            "{0b6f3c1e-1c2d-4e5f-8a9b-00000000beef}",
            "tenant:42",
            "",
            ".",
            "a}b{c",
            "Cxk8HhwtTl-KmwAAAAC-7w",
        ] {
            let c = compact(other);
            assert!(c.starts_with('.'), "{other}: {c}");
            assert_eq!(expand_user_id(&c).as_deref(), Some(other));
        }
        assert_eq!(expand_user_id("short"), None);
        assert_eq!(expand_user_id("AAAAAAAAAAAAAAAAAAAAAB"), None);
    }

    #[test]
    fn glob_characters_in_the_prefix_are_escaped() {
        assert_eq!(glob_escape("app*[1]?\\:"), "app\\*\\[1\\]\\?\\\\:");
        assert_eq!(glob_escape("ringfence:"), "ringfence:");
    }
}
