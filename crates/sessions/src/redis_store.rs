//! Sessions in Redis: the store a fleet of nodes shares.
//!
//! # Key layout
//!
//! `P` is the prefix (default `ringfence:`, [`DEFAULT_PREFIX`]); `U` a user id; `S` a
//! [`SessionId`] (22 characters of base64url, never the secret). All times are unix milliseconds.
//!
//! | key | type | content | expiry |
//! |-----|------|---------|--------|
//! | `P{u:U}:s:S` | string | the session record (below) | `PXAT` = the session's `expires_at` |
//! | `P{u:U}:idx` | zset | the per-user index: member `S`, score `expires_at` | `PEXPIREAT` = highest score |
//! | `Psessions` | zset | every session: member `U:S`, score `expires_at` | none (pruned by score) |
//! | `Pusers` | zset | signed-in users: member `U`, score = the user's latest `expires_at` | none (pruned by score) |
//!
//! The record is JSON with one-letter fields, the user and session ids being in the key already:
//! `{"c":created,"l":last_seen-created,"i":idle_expires-last_seen,"a":absolute_expires-created,
//! "p":"ip","u":"user agent","d":"device","n":"node"}` (`p` and `u` omitted when unknown; the
//! deltas keep the numbers short).
//!
//! Memory (`MEMORY USAGE`, Redis 7.0, UUID user ids, a 70-byte Firefox User-Agent, summed over
//! all four kinds of key and divided by sessions; the `memory_per_session` test prints it):
//!
//! | sessions per user | record | user index | `Psessions` | `Pusers` | total |
//! |---|---|---|---|---|---|
//! | 1 | 312 | 152 | 150 | 134 | 748 |
//! | 2 | 312 | 92 | 149 | 67 | 620 |
//! | 5 | 312 | 59 | 150 | 28 | 549 |
//!
//! About 130 bytes of the record and most of each index entry are key names and Redis's per-key
//! and per-zset-entry overhead, so the layout costs roughly 450 bytes per session before any
//! session content; every 40 bytes of User-Agent add 40.
//!
//! # Consistency
//!
//! - **Per-user data is the truth.** A user's record keys and index share the hash tag `{u:U}`,
//!   so they live in one Redis Cluster slot and change together inside one Lua script (insert,
//!   touch, remove, remove-for-user, list). Each script first prunes index members whose score is
//!   at or before `now` (deleting their records), then does its work, then sets the index's
//!   `PEXPIREAT` to its highest score. Records carry `PXAT`, so a user's keys vanish by themselves
//!   even if no node ever runs again; when a node does run, stale index members are pruned by the
//!   next read or write of that user.
//! - Scripts reach sibling records of the same user (for the cap and remove-for-user) by building
//!   their keys from the per-user prefix passed as an argument: always the same hash slot.
//! - **Global keys are eventually exact.** `Psessions` and `Pusers` sit in other slots, so they
//!   are updated by separate commands right after the per-user script (sent concurrently on the
//!   multiplexed connection, so effectively one more round trip). Counting uses `ZCOUNT` over
//!   scores after `now`, so expiry alone keeps them right without any scan; only a lost update
//!   (a crash between the script and the global commands, or two writers of one user racing) can
//!   leave an entry too many, and it disappears when its score passes (at most one idle timeout).
//!   A failed global update is logged and does not fail the call.
//! - [`SessionStore::get`] is one `GET` (the hot path of every request); the record is decoded
//!   and its expiry re-checked against the caller's `now`.
//! - `touch` rewrites a record only if it still exists (`SET XX`, after the same check in the
//!   script), so a renewal racing a sign-out never resurrects the session. It writes the record
//!   it is given (the one the caller read, with new `last_seen_at` and `idle_expires_at`), so
//!   the absolute expiry stays whatever the caller read.
//! - The cap evicts the user's oldest sessions by `created_at`, read from the records inside the
//!   insert script (a user has at most cap + 1 sessions at that moment, so this stays small and
//!   saves a second per-user zset).
//! - `find` and `list_all` (admin tools) walk `Psessions` and `GET` each record: O(n).
//!
//! Redis expires keys by its own clock and the nodes decide expiry by theirs; keep them in NTP
//! sync. The prefix must not contain `{` or `}` (it would change the hash tag).
//!
//! # Connections
//!
//! [`RedisSessionStore`] is generic over the connection (`ConnectionManager` by default). Every
//! request it sends touches a single hash slot (one script or one command), so a
//! `redis::cluster_async::ClusterConnection` can be plugged in with
//! [`RedisSessionStore::with_connection`] without changing the layout. The integration tests run
//! the conformance suite over a `ClusterConnection` to a one-node cluster, which refuses any
//! cross-slot request.

use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::future::try_join_all;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, Script};
use serde::{Deserialize, Serialize};

use crate::sqlite_store::{from_millis, millis};
use crate::{Session, SessionCounts, SessionId, SessionStore, StoreError};

/// The key prefix used when none is configured.
pub const DEFAULT_PREFIX: &str = "ringfence:";

/// Records fetched concurrently by the admin listings.
const FETCH_BATCH: usize = 256;

/// [`SessionStore`] over Redis (see the module docs for the key layout).
#[derive(Clone)]
pub struct RedisSessionStore<C = ConnectionManager> {
    conn: C,
    prefix: String,
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

impl<C> RedisSessionStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// A store over any async connection, for example a cluster connection: every request this
    /// store sends stays within one hash slot.
    pub fn with_connection(conn: C, prefix: String) -> Self {
        Self { conn, prefix }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `P{u:U}:`: the hash-tagged prefix of every per-user key.
    fn user_base(&self, user_id: &str) -> String {
        format!("{}{{u:{user_id}}}:", self.prefix)
    }

    fn record_key(&self, user_id: &str, id: &SessionId) -> String {
        format!("{}s:{id}", self.user_base(user_id))
    }

    fn record_prefix(&self, user_id: &str) -> String {
        format!("{}s:", self.user_base(user_id))
    }

    fn index_key(&self, user_id: &str) -> String {
        format!("{}idx", self.user_base(user_id))
    }

    fn sessions_key(&self) -> String {
        format!("{}sessions", self.prefix)
    }

    fn users_key(&self) -> String {
        format!("{}users", self.prefix)
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn).await.map_err(map_redis_error)
    }

    /// Sends commands on the global keys concurrently. They are bookkeeping for the counts and
    /// the admin listings, not the truth, so a failure is logged rather than failing the call
    /// whose per-user write already happened.
    async fn update_globals(&self, cmds: Vec<Cmd>) {
        let sends = cmds.iter().map(|cmd| async move {
            let mut conn = self.conn.clone();
            cmd.query_async::<redis::Value>(&mut conn).await
        });
        if let Err(error) = try_join_all(sends).await {
            tracing::warn!(%error, "session store: global session index update failed; counts catch up by expiry");
        }
    }

    /// The command that records a user's latest expiry (or drops the user) in `Pusers`.
    fn user_presence_cmd(&self, user_id: &str, latest: Option<i64>) -> Cmd {
        match latest {
            Some(score) => redis::cmd("ZADD")
                .arg(self.users_key())
                .arg(score)
                .arg(user_id)
                .to_owned(),
            None => redis::cmd("ZREM")
                .arg(self.users_key())
                .arg(user_id)
                .to_owned(),
        }
    }

    fn prune_globals_cmds(&self, now_ms: i64) -> [Cmd; 2] {
        [self.sessions_key(), self.users_key()].map(|key| {
            redis::cmd("ZREMRANGEBYSCORE")
                .arg(key)
                .arg("-inf")
                .arg(now_ms)
                .to_owned()
        })
    }

    async fn fetch_records(
        &self,
        members: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, StoreError> {
        let mut sessions = Vec::new();
        for chunk in members.chunks(FETCH_BATCH) {
            let fetches = chunk.iter().filter_map(|member| {
                let (user_id, id) = split_member(member)?;
                let key = self.record_key(user_id, &id);
                Some(async move {
                    let raw: Option<String> = self.query(redis::cmd("GET").arg(key)).await?;
                    raw.map(|raw| decode(user_id, &id, &raw)).transpose()
                })
            });
            for session in try_join_all(fetches).await?.into_iter().flatten() {
                if session.is_active(now) {
                    sessions.push(session);
                }
            }
        }
        Ok(sessions)
    }
}

/// Shared Lua: pruning a user's index and refreshing its expiry.
const LUA_PRELUDE: &str = r#"
local function prune(idx, now, rprefix)
  local dead = redis.call('ZRANGEBYSCORE', idx, '-inf', now)
  if #dead > 0 then
    for _, m in ipairs(dead) do redis.call('DEL', rprefix .. m) end
    redis.call('ZREMRANGEBYSCORE', idx, '-inf', now)
  end
end
local function latest(idx)
  local top = redis.call('ZRANGE', idx, -1, -1, 'WITHSCORES')
  if top[2] then
    redis.call('PEXPIREAT', idx, top[2])
    return top[2]
  end
  return ''
end
"#;

/// KEYS: record, index. ARGV: now, id, value, expires_at, cap (-1 = none), record prefix.
/// Returns {latest score or '', evicted ids...}.
const LUA_INSERT: &str = r#"
prune(KEYS[2], ARGV[1], ARGV[6])
redis.call('SET', KEYS[1], ARGV[3], 'PXAT', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
local result = {''}
local cap = tonumber(ARGV[5])
if cap >= 0 then
  local members = redis.call('ZRANGE', KEYS[2], 0, -1)
  local excess = #members - cap
  if excess > 0 then
    local aged = {}
    for _, m in ipairs(members) do
      if m ~= ARGV[2] then
        -- A record that cannot be read counts as oldest: it goes first.
        local created = -1
        local raw = redis.call('GET', ARGV[6] .. m)
        if raw then
          local ok, rec = pcall(cjson.decode, raw)
          if ok and type(rec) == 'table' and type(rec.c) == 'number' then created = rec.c end
        end
        aged[#aged + 1] = {m, created}
      end
    end
    table.sort(aged, function(x, y)
      if x[2] == y[2] then return x[1] < y[1] end
      return x[2] < y[2]
    end)
    for k = 1, math.min(excess, #aged) do
      local m = aged[k][1]
      redis.call('DEL', ARGV[6] .. m)
      redis.call('ZREM', KEYS[2], m)
      result[#result + 1] = m
    end
  end
end
result[1] = latest(KEYS[2])
return result
"#;

/// KEYS: record, index. ARGV: now, id, value, expires_at, record prefix.
/// Returns {1 if rewritten else 0, latest score or ''}.
const LUA_TOUCH: &str = r#"
prune(KEYS[2], ARGV[1], ARGV[5])
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return {0, latest(KEYS[2])}
end
redis.call('SET', KEYS[1], ARGV[3], 'XX', 'PXAT', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
return {1, latest(KEYS[2])}
"#;

/// KEYS: record, index. ARGV: now, id, record prefix.
/// Returns {1 if it existed else 0, latest score or ''}.
const LUA_REMOVE: &str = r#"
prune(KEYS[2], ARGV[1], ARGV[3])
local existed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return {existed, latest(KEYS[2])}
"#;

/// KEYS: index. ARGV: now, id to keep ('' = none), record prefix.
/// Returns {latest score or '', removed ids...}.
const LUA_REMOVE_FOR_USER: &str = r#"
prune(KEYS[1], ARGV[1], ARGV[3])
local result = {''}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if m ~= ARGV[2] then
    local existed = redis.call('DEL', ARGV[3] .. m)
    redis.call('ZREM', KEYS[1], m)
    if existed == 1 then result[#result + 1] = m end
  end
end
result[1] = latest(KEYS[1])
return result
"#;

/// KEYS: index. ARGV: now, record prefix. Returns {id, record, id, record, ...}.
const LUA_LIST: &str = r#"
prune(KEYS[1], ARGV[1], ARGV[2])
local result = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local raw = redis.call('GET', ARGV[2] .. m)
  if raw then
    result[#result + 1] = m
    result[#result + 1] = raw
  else
    -- Redis already expired the record (its clock ran ahead of ours): drop the index entry.
    redis.call('ZREM', KEYS[1], m)
  end
end
latest(KEYS[1])
return result
"#;

fn script(body: &str) -> Script {
    Script::new(&format!("{LUA_PRELUDE}{body}"))
}

static INSERT: LazyLock<Script> = LazyLock::new(|| script(LUA_INSERT));
static TOUCH: LazyLock<Script> = LazyLock::new(|| script(LUA_TOUCH));
static REMOVE: LazyLock<Script> = LazyLock::new(|| script(LUA_REMOVE));
static REMOVE_FOR_USER: LazyLock<Script> = LazyLock::new(|| script(LUA_REMOVE_FOR_USER));
static LIST: LazyLock<Script> = LazyLock::new(|| script(LUA_LIST));

#[async_trait]
impl<C> SessionStore for RedisSessionStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn insert(
        &self,
        session: &Session,
        cap: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionId>, StoreError> {
        let now_ms = millis(now);
        let expires_ms = millis(session.expires_at());
        let user_id = session.user_id.as_str();
        let mut conn = self.conn.clone();
        let result: Vec<String> = INSERT
            .key(self.record_key(user_id, &session.id))
            .key(self.index_key(user_id))
            .arg(now_ms)
            .arg(session.id.as_str())
            .arg(encode(session)?)
            .arg(expires_ms)
            .arg(cap.map_or(-1, i64::from))
            .arg(self.record_prefix(user_id))
            .invoke_async(&mut conn)
            .await
            .map_err(map_redis_error)?;
        let (latest, evicted) = split_latest(result)?;
        let evicted = evicted
            .iter()
            .map(|id| parse_id(id))
            .collect::<Result<Vec<_>, _>>()?;

        let mut cmds = Vec::from(self.prune_globals_cmds(now_ms));
        cmds.push(
            redis::cmd("ZADD")
                .arg(self.sessions_key())
                .arg(expires_ms)
                .arg(member(user_id, &session.id))
                .to_owned(),
        );
        if !evicted.is_empty() {
            let mut zrem = redis::cmd("ZREM");
            zrem.arg(self.sessions_key());
            for id in &evicted {
                zrem.arg(member(user_id, id));
            }
            cmds.push(zrem);
        }
        cmds.push(self.user_presence_cmd(user_id, latest));
        self.update_globals(cmds).await;
        Ok(evicted)
    }

    async fn get(
        &self,
        user_id: &str,
        id: &SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let raw: Option<String> = self
            .query(redis::cmd("GET").arg(self.record_key(user_id, id)))
            .await?;
        let Some(raw) = raw else { return Ok(None) };
        let session = decode(user_id, id, &raw)?;
        Ok(session.is_active(now).then_some(session))
    }

    async fn touch(&self, session: &Session, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let expires_ms = millis(session.expires_at());
        let user_id = session.user_id.as_str();
        let mut conn = self.conn.clone();
        let (rewritten, latest): (i64, String) = TOUCH
            .key(self.record_key(user_id, &session.id))
            .key(self.index_key(user_id))
            .arg(millis(now))
            .arg(session.id.as_str())
            .arg(encode(session)?)
            .arg(expires_ms)
            .arg(self.record_prefix(user_id))
            .invoke_async(&mut conn)
            .await
            .map_err(map_redis_error)?;
        let latest = parse_score(&latest)?;
        if rewritten == 1 {
            // Plain ZADD (not XX): a touch also repairs an entry a lost update left out.
            let cmds = vec![
                redis::cmd("ZADD")
                    .arg(self.sessions_key())
                    .arg(expires_ms)
                    .arg(member(user_id, &session.id))
                    .to_owned(),
                self.user_presence_cmd(user_id, latest),
            ];
            self.update_globals(cmds).await;
        }
        Ok(rewritten == 1)
    }

    async fn remove(
        &self,
        user_id: &str,
        id: &SessionId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let (existed, latest): (i64, String) = REMOVE
            .key(self.record_key(user_id, id))
            .key(self.index_key(user_id))
            .arg(millis(now))
            .arg(id.as_str())
            .arg(self.record_prefix(user_id))
            .invoke_async(&mut conn)
            .await
            .map_err(map_redis_error)?;
        let latest = parse_score(&latest)?;
        let cmds = vec![
            redis::cmd("ZREM")
                .arg(self.sessions_key())
                .arg(member(user_id, id))
                .to_owned(),
            self.user_presence_cmd(user_id, latest),
        ];
        self.update_globals(cmds).await;
        Ok(existed == 1)
    }

    async fn remove_for_user(
        &self,
        user_id: &str,
        keep: Option<&SessionId>,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionId>, StoreError> {
        let mut conn = self.conn.clone();
        let result: Vec<String> = REMOVE_FOR_USER
            .key(self.index_key(user_id))
            .arg(millis(now))
            .arg(keep.map(SessionId::as_str).unwrap_or(""))
            .arg(self.record_prefix(user_id))
            .invoke_async(&mut conn)
            .await
            .map_err(map_redis_error)?;
        let (latest, removed) = split_latest(result)?;
        let removed = removed
            .iter()
            .map(|id| parse_id(id))
            .collect::<Result<Vec<_>, _>>()?;
        let mut cmds = Vec::new();
        if !removed.is_empty() {
            let mut zrem = redis::cmd("ZREM");
            zrem.arg(self.sessions_key());
            for id in &removed {
                zrem.arg(member(user_id, id));
            }
            cmds.push(zrem);
        }
        cmds.push(self.user_presence_cmd(user_id, latest));
        self.update_globals(cmds).await;
        Ok(removed)
    }

    async fn list_for_user(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, StoreError> {
        let mut conn = self.conn.clone();
        let flat: Vec<String> = LIST
            .key(self.index_key(user_id))
            .arg(millis(now))
            .arg(self.record_prefix(user_id))
            .invoke_async(&mut conn)
            .await
            .map_err(map_redis_error)?;
        if !flat.len().is_multiple_of(2) {
            return Err(StoreError::Corrupt(
                "session list script returned an odd number of items".into(),
            ));
        }
        let mut sessions = Vec::with_capacity(flat.len() / 2);
        for pair in flat.chunks_exact(2) {
            let session = decode(user_id, &parse_id(&pair[0])?, &pair[1])?;
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
        // Admin path: walk the global zset for a member ending in ":<id>". Ids are base64url,
        // so they hold no glob characters.
        let pattern = format!("*:{id}");
        let mut cursor: u64 = 0;
        let mut found = Vec::new();
        loop {
            let (next, page): (u64, Vec<String>) = self
                .query(
                    redis::cmd("ZSCAN")
                        .arg(self.sessions_key())
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000),
                )
                .await?;
            // ZSCAN pages alternate member and score.
            found.extend(page.into_iter().step_by(2));
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let sessions = self.fetch_records(&found, now).await?;
        Ok(sessions.into_iter().find(|session| &session.id == id))
    }

    async fn list_all(&self, limit: usize, now: DateTime<Utc>) -> Result<Vec<Session>, StoreError> {
        let members: Vec<String> = self
            .query(
                redis::cmd("ZRANGE")
                    .arg(self.sessions_key())
                    .arg(format!("({}", millis(now)))
                    .arg("+inf")
                    .arg("BYSCORE"),
            )
            .await?;
        let mut sessions = self.fetch_records(&members, now).await?;
        sort_recent_first(&mut sessions);
        sessions.truncate(limit);
        Ok(sessions)
    }

    async fn counts(&self, now: DateTime<Utc>) -> Result<SessionCounts, StoreError> {
        let now_ms = millis(now);
        // Pruning keeps the zsets small; ZCOUNT over scores after `now` is exact with or without it.
        self.update_globals(Vec::from(self.prune_globals_cmds(now_ms)))
            .await;
        let after_now = format!("({now_ms}");
        let count = |key: String| {
            let cmd = redis::cmd("ZCOUNT")
                .arg(key)
                .arg(&after_now)
                .arg("+inf")
                .to_owned();
            async move { self.query::<u64>(&cmd).await }
        };
        let (active_sessions, signed_in_users) =
            tokio::try_join!(count(self.sessions_key()), count(self.users_key()))?;
        Ok(SessionCounts {
            active_sessions,
            signed_in_users,
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }
}

/// The stored record; the user and session ids live in the key. Times after `c` are deltas
/// (small numbers instead of 13-digit ones: about 25 bytes less per record).
#[derive(Serialize, Deserialize)]
struct Record {
    /// created_at, unix ms.
    c: i64,
    /// last_seen_at - created_at, ms.
    l: i64,
    /// idle_expires_at - last_seen_at, ms.
    i: i64,
    /// absolute_expires_at - created_at, ms.
    a: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<String>,
    d: String,
    n: String,
}

fn encode(session: &Session) -> Result<String, StoreError> {
    let created = millis(session.created_at);
    let last_seen = millis(session.last_seen_at);
    let record = Record {
        c: created,
        l: last_seen.saturating_sub(created),
        i: millis(session.idle_expires_at).saturating_sub(last_seen),
        a: millis(session.absolute_expires_at).saturating_sub(created),
        p: session.ip.clone(),
        u: session.user_agent.clone(),
        d: session.device.clone(),
        n: session.node.clone(),
    };
    // Serialising plain strings and integers cannot fail; map it anyway rather than panic.
    serde_json::to_string(&record).map_err(|e| StoreError::Corrupt(format!("encode session: {e}")))
}

fn decode(user_id: &str, id: &SessionId, raw: &str) -> Result<Session, StoreError> {
    let record: Record = serde_json::from_str(raw)
        .map_err(|e| StoreError::Corrupt(format!("session record {id}: {e}")))?;
    let time = |ms: Option<i64>| {
        ms.and_then(from_millis)
            .ok_or_else(|| StoreError::Corrupt(format!("session record {id}: time out of range")))
    };
    let last_seen = record.c.checked_add(record.l);
    Ok(Session {
        id: id.clone(),
        user_id: user_id.to_owned(),
        created_at: time(Some(record.c))?,
        last_seen_at: time(last_seen)?,
        idle_expires_at: time(last_seen.and_then(|l| l.checked_add(record.i)))?,
        absolute_expires_at: time(record.c.checked_add(record.a))?,
        ip: record.p,
        user_agent: record.u,
        device: record.d,
        node: record.n,
    })
}

/// Member of `Psessions`: `U:S`. Ids contain no `:`, so the last `:` splits it back.
fn member(user_id: &str, id: &SessionId) -> String {
    format!("{user_id}:{id}")
}

fn split_member(member: &str) -> Option<(&str, SessionId)> {
    let (user_id, id) = member.rsplit_once(':')?;
    Some((user_id, SessionId::parse(id)?))
}

fn parse_id(text: &str) -> Result<SessionId, StoreError> {
    SessionId::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("malformed session id {text:?} in index")))
}

/// A zset score as Redis prints it ("1700000000000"); `None` for the empty marker.
fn parse_score(text: &str) -> Result<Option<i64>, StoreError> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<f64>()
        .ok()
        .filter(|score| score.is_finite())
        .map(|score| Some(score as i64))
        .ok_or_else(|| StoreError::Corrupt(format!("malformed index score {text:?}")))
}

fn split_latest(mut result: Vec<String>) -> Result<(Option<i64>, Vec<String>), StoreError> {
    if result.is_empty() {
        return Err(StoreError::Corrupt(
            "session script returned nothing".into(),
        ));
    }
    let latest = parse_score(&result.remove(0))?;
    Ok((latest, result))
}

fn sort_recent_first(sessions: &mut [Session]) {
    sessions.sort_by(|a, b| {
        b.last_seen_at
            .cmp(&a.last_seen_at)
            .then_with(|| a.id.cmp(&b.id))
    });
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

    #[test]
    fn member_round_trips_user_ids_with_colons() {
        let id = crate::SessionSecret::generate().id();
        let m = member("tenant:42", &id);
        assert_eq!(split_member(&m), Some(("tenant:42", id)));
        assert_eq!(split_member("no-colon"), None);
        assert_eq!(split_member("u:not-an-id"), None);
    }

    #[test]
    fn scores_parse() {
        assert_eq!(parse_score("").unwrap(), None);
        assert_eq!(
            parse_score("1700000000000").unwrap(),
            Some(1_700_000_000_000)
        );
        assert_eq!(parse_score("1.7e12").unwrap(), Some(1_700_000_000_000));
        assert!(parse_score("nan").is_err());
        assert!(parse_score("x").is_err());
    }

    #[test]
    fn decode_rejects_garbage() {
        let id = crate::SessionSecret::generate().id();
        for raw in [
            "",
            "{}",
            "[1]",
            r#"{"c":1}"#,
            r#"{"c":9e99,"l":1,"i":1,"a":1,"d":"","n":""}"#,
            r#"{"c":9223372036854775807,"l":1,"i":1,"a":1,"d":"","n":""}"#,
            r#"{"c":1,"l":9223372036854775807,"i":1,"a":1,"d":"","n":""}"#,
        ] {
            assert!(
                matches!(decode("u", &id, raw), Err(StoreError::Corrupt(_))),
                "{raw}"
            );
        }
    }
}
