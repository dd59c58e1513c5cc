//! Active sessions and signed-in users as bucketed counters (see the module docs of
//! [`crate::redis_store`], "Counts").
//!
//! A session is counted in the bucket of the second `B(e) = floor((e - 1) / 1000)` of its expiry
//! `e` (unix ms): the last whole second at whose start it is still active. `counts(now)` adds
//! every bucket at or after `floor(now / 1000)`, so with a whole-second `now` a session counts
//! exactly while `now < e`, and never at `e` itself; with a fractional `now` it may count for up
//! to one second too long. A user is counted the same way by their latest expiry.
//!
//! Buckets live in two levels, every key sharing the hash tag `{c}` (one Cluster slot):
//! `P{c}:n` holds a field per minute and kind (`s<minute>` sessions, `u<minute>` users) and
//! `P{c}:n:<minute>` a field per second of that minute (`s<0-59>`, `u<0-59>`). Each change
//! increments both levels; a query reads the minute fields after the current minute and the
//! second fields of the current minute from the current second on.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use redis::Script;

/// Which counter a change moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    /// Active sessions.
    Sessions,
    /// Signed-in users.
    Users,
}

impl Kind {
    fn letter(self) -> char {
        match self {
            Kind::Sessions => 's',
            Kind::Users => 'u',
        }
    }
}

/// The bucket second of an expiry.
pub(super) fn bucket(expires_ms: i64) -> i64 {
    (expires_ms - 1).div_euclid(1000)
}

/// Whether something expiring at `expires_ms` is counted at `now_ms`.
pub(super) fn counted(expires_ms: i64, now_ms: i64) -> bool {
    bucket(expires_ms) >= now_ms.div_euclid(1000)
}

/// Net counter changes of one per-user operation, sent as one call of [`MOVE`].
#[derive(Debug, Default)]
pub(super) struct Moves {
    now_ms: i64,
    /// (kind, bucket second) → delta.
    deltas: BTreeMap<(Kind, i64), i64>,
}

impl Moves {
    pub(super) fn new(now_ms: i64) -> Self {
        Self {
            now_ms,
            deltas: BTreeMap::new(),
        }
    }

    /// Something of `kind` that was counted by `old` (an expiry, or `None`/0: not there) is now
    /// counted by `new`. Buckets already past at `now` are left alone: they no longer count, and
    /// their keys expire.
    pub(super) fn change(&mut self, kind: Kind, old: Option<i64>, new: Option<i64>) {
        let old = old
            .filter(|&e| e > 0 && counted(e, self.now_ms))
            .map(bucket);
        let new = new
            .filter(|&e| e > 0 && counted(e, self.now_ms))
            .map(bucket);
        if old == new {
            return;
        }
        for (second, delta) in [(old, -1), (new, 1)] {
            if let Some(second) = second {
                *self.deltas.entry((kind, second)).or_insert(0) += delta;
            }
        }
    }

    /// Sessions a script removed (each with its expiry) leave the session counts; their ids
    /// are handed back.
    pub(super) fn sessions_gone<Id>(&mut self, gone: Vec<(Id, i64)>) -> Vec<Id> {
        gone.into_iter()
            .map(|(id, expires)| {
                self.change(Kind::Sessions, Some(expires), None);
                id
            })
            .collect()
    }

    /// The script's keys and arguments, or `None` when nothing changed. `index` is `P{c}:n`.
    ///
    /// ARGV: current minute, number of index fields n, n × (field, delta), then for each minute
    /// key KEYS[2..]: its expiry (ms), number of fields k, k × (field, delta).
    pub(super) fn invocation(&self, index: &str) -> Option<(Vec<String>, Vec<String>)> {
        let mut by_minute: BTreeMap<i64, Vec<(String, i64)>> = BTreeMap::new();
        let mut index_fields: BTreeMap<(Kind, i64), i64> = BTreeMap::new();
        for (&(kind, second), &delta) in &self.deltas {
            if delta == 0 {
                continue;
            }
            let minute = second.div_euclid(60);
            by_minute
                .entry(minute)
                .or_default()
                .push((format!("{}{}", kind.letter(), second.rem_euclid(60)), delta));
            *index_fields.entry((kind, minute)).or_insert(0) += delta;
        }
        if by_minute.is_empty() {
            return None;
        }
        let index_fields: Vec<(String, i64)> = index_fields
            .into_iter()
            .filter(|&(_, delta)| delta != 0)
            .map(|((kind, minute), delta)| (format!("{}{minute}", kind.letter()), delta))
            .collect();
        let mut keys = vec![index.to_owned()];
        let mut args = vec![
            self.now_ms.div_euclid(60_000).to_string(),
            index_fields.len().to_string(),
        ];
        for (field, delta) in index_fields {
            args.push(field);
            args.push(delta.to_string());
        }
        for (minute, fields) in by_minute {
            keys.push(format!("{index}:{minute}"));
            // Kept until a minute after its own minute ends: nodes whose clocks run a little
            // behind still read it as the current minute.
            args.push(((minute + 2) * 60_000).to_string());
            args.push(fields.len().to_string());
            for (field, delta) in fields {
                args.push(field);
                args.push(delta.to_string());
            }
        }
        Some((keys, args))
    }
}

/// The keys and arguments of [`COUNT`] at `now_ms`.
pub(super) fn count_invocation(index: &str, now_ms: i64) -> ([String; 2], [String; 2]) {
    let second = now_ms.div_euclid(1000);
    let minute = second.div_euclid(60);
    (
        [index.to_owned(), format!("{index}:{minute}")],
        [minute.to_string(), second.rem_euclid(60).to_string()],
    )
}

/// Applies [`Moves`] and returns how many sessions the sweep found expired. Fields reaching
/// exactly 0 are deleted; negative values are kept, so that two writers of one user whose calls
/// arrive in the other order still add up (a -1 may come before its +1). Once a minute (field
/// `t` remembers the last), index fields of minutes before the previous one (by the earlier of
/// the caller's clock and Redis's `TIME`) are deleted: they no longer count, and sessions that
/// simply expired leave their +1 behind there. The index key's expiry only ever moves later, to
/// a minute after the latest minute key touched, so everything vanishes once nothing can count
/// any more.
///
/// What the sweep deletes of the sessions kind is exactly the sessions whose time ran out in
/// those minutes: a session ended early or renewed took its +1 out of its bucket (a -1) when
/// that happened, so what is left was still there when the bucket passed. The sweep runs once
/// per minute for the whole fleet (the `t` field, inside this script), so the sum it returns
/// counts each expiry once: the caller reports it as `expired` events ([`crate::events`]). A
/// sum that comes out negative (a -1 whose +1 was lost with a failed call) is reported as 0.
const LUA_MOVE: &str = r#"
local index = KEYS[1]
local current = tonumber(ARGV[1])
local a = 3
local function apply(key, n)
  for _ = 1, n do
    local field, delta = ARGV[a], ARGV[a + 1]
    a = a + 2
    if redis.call('HINCRBY', key, field, delta) == 0 then redis.call('HDEL', key, field) end
  end
end
apply(index, tonumber(ARGV[2]))
local want = (current + 2) * 60000
for k = 2, #KEYS do
  local expires = tonumber(ARGV[a])
  local n = tonumber(ARGV[a + 1])
  a = a + 2
  apply(KEYS[k], n)
  redis.call('PEXPIREAT', KEYS[k], expires)
  if expires > want then want = expires end
end
-- The sweep deletes counts for good, so it never goes past Redis's own clock: a node whose
-- clock runs ahead must not drop minutes that still count for everyone else.
local sweep = math.min(current, math.floor(tonumber(redis.call('TIME')[1]) / 60))
-- HMGET, not HGET: commandstats then tells this apart from the hot path's HGET.
local expired = 0
if tonumber(redis.call('HMGET', index, 't')[1] or '0') < sweep then
  local stale = {}
  local flat = redis.call('HGETALL', index)
  for i = 1, #flat, 2 do
    local f = flat[i]
    local m = tonumber(string.sub(f, 2))
    if m and m < sweep - 1 then
      stale[#stale + 1] = f
      if string.sub(f, 1, 1) == 's' then expired = expired + tonumber(flat[i + 1]) end
    end
  end
  for i = 1, #stale, 1000 do
    redis.call('HDEL', index, unpack(stale, i, math.min(i + 999, #stale)))
  end
  redis.call('HSET', index, 't', sweep)
end
local t = redis.call('PEXPIRETIME', index)
if t == -1 or (t >= 0 and t < want) then redis.call('PEXPIREAT', index, want) end
if expired < 0 then expired = 0 end
return expired
"#;

/// KEYS: `P{c}:n`, `P{c}:n:<current minute>`. ARGV: current minute, current second of it.
/// Returns {sessions, users}. Reads at most one field per kind and minute of the idle timeout
/// plus 120 second fields: O(buckets), never O(sessions).
const LUA_COUNT: &str = r#"#!lua flags=no-writes
local current, second = tonumber(ARGV[1]), tonumber(ARGV[2])
local totals = {s = 0, u = 0}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local kind, m = string.sub(flat[i], 1, 1), tonumber(string.sub(flat[i], 2))
  if m and m > current and totals[kind] then totals[kind] = totals[kind] + tonumber(flat[i + 1]) end
end
flat = redis.call('HGETALL', KEYS[2])
for i = 1, #flat, 2 do
  local kind, s = string.sub(flat[i], 1, 1), tonumber(string.sub(flat[i], 2))
  if s and s >= second and totals[kind] then totals[kind] = totals[kind] + tonumber(flat[i + 1]) end
end
return {totals.s, totals.u}
"#;

/// The counter-moving script.
pub(super) static MOVE: LazyLock<Script> = LazyLock::new(|| Script::new(LUA_MOVE));
/// The counting script (read-only).
pub(super) static COUNT: LazyLock<Script> = LazyLock::new(|| Script::new(LUA_COUNT));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_count_up_to_but_not_at_the_expiry() {
        let e = 1_700_000_040_000;
        assert!(counted(e, e - 1000));
        assert!(counted(e, e - 1));
        assert!(!counted(e, e));
        // A fractional expiry counts through the second it falls in.
        let e = 1_700_000_040_500;
        assert!(counted(e, 1_700_000_040_000));
        assert!(!counted(e, 1_700_000_041_000));
        assert_eq!(bucket(1_700_000_040_000), 1_700_000_039);
        assert_eq!(bucket(1_700_000_040_001), 1_700_000_040);
    }

    #[test]
    fn moves_net_out_and_skip_the_past() {
        let now = 1_700_000_000_000;
        let mut moves = Moves::new(now);
        // Same bucket: nothing to do.
        moves.change(Kind::Sessions, Some(now + 60_000), Some(now + 60_000));
        // Past old bucket: only the new one moves.
        moves.change(Kind::Users, Some(now - 5_000), Some(now + 120_000));
        assert!(moves.invocation("p{c}:n").is_some());
        let mut none = Moves::new(now);
        none.change(Kind::Sessions, Some(now), None);
        none.change(Kind::Sessions, None, Some(now - 1));
        none.change(Kind::Sessions, Some(0), Some(0));
        assert!(none.invocation("p{c}:n").is_none());

        let mut moves = Moves::new(now);
        let (old, new) = (now + 1_800_000, now + 1_980_000);
        moves.change(Kind::Sessions, Some(old), Some(new));
        moves.change(Kind::Users, Some(old), Some(new));
        let (keys, args) = moves.invocation("p{c}:n").unwrap();
        let minute = |e: i64| bucket(e).div_euclid(60);
        assert_eq!(
            keys,
            vec![
                "p{c}:n".to_owned(),
                format!("p{{c}}:n:{}", minute(old)),
                format!("p{{c}}:n:{}", minute(new)),
            ]
        );
        assert_eq!(args[0], (now / 60_000).to_string());
        assert_eq!(args[1], "4");
    }
}
