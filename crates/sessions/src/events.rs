//! Session events: one structured log line (target `ringfence_sessions::events`, level `info`)
//! and one increment of [`EVENTS_METRIC`] per event.
//!
//! | event | when | logged by |
//! |---|---|---|
//! | `created` | a sign-in stored a new session | [`crate::SessionManager::start`] |
//! | `renewed` | a request wrote the sliding renewal (once per renewal interval) | [`crate::SessionManager::resolve`] |
//! | `revoked` | a session was ended before its time: sign-out, "sign out that device", everywhere else, an administrator, the per-user cap (`reason = "cap"`), an unreadable record (`reason = "unreadable"`) | the manager |
//! | `expired` | a session's idle or absolute timeout passed | the store that finds it expired, or the manager when the policy ends it |
//!
//! Every line carries `event`, `session` (the session id: a hash of the secret, safe to log and
//! useless as a cookie) and `user_id`; the secret never appears anywhere.
//!
//! Expiry is not an action anyone takes, so it is reported where it is noticed, without
//! keyspace notifications (which Redis Cluster and restarts lose):
//! - SQLite deletes expired rows whenever a user's sessions are written or read, a batch of
//!   anyone's on each sign-in, and all of them before it counts; each deleted row is one
//!   `expired` line with its id.
//! - Redis expires a user's hash by itself and prunes dead fields inside the per-user scripts,
//!   so single sessions are not seen expiring. The count buckets are: once a minute the node
//!   whose write sweeps the past minutes (one node fleet-wide, inside a script) reports the
//!   sessions left in them, which are exactly those whose time ran out (ended and renewed
//!   sessions moved out of their bucket when that happened), as one line with `sessions = N`
//!   and an increment of N. The counter is exact across the fleet (the sum over nodes); it lags
//!   by one to two minutes, and by longer while no node writes.

use crate::SessionId;

/// Name of the counter of session events (label `event`: created, renewed, revoked, expired).
pub const EVENTS_METRIC: &str = "ringfence_session_events_total";

/// Target of the event log lines (filter with `RUST_LOG=ringfence_sessions::events=info`).
pub const EVENTS_TARGET: &str = "ringfence_sessions::events";

/// A session event, for the log line and the counter label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Created,
    Renewed,
    Revoked,
    Expired,
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Event::Created => "created",
            Event::Renewed => "renewed",
            Event::Revoked => "revoked",
            Event::Expired => "expired",
        }
    }
}

/// One event of one session: the log line and the counter.
pub(crate) fn session(event: Event, id: &SessionId, user_id: &str) {
    session_because(event, "", id, user_id);
}

/// One event of one session with a reason (`cap`, `unreadable`, `idle`, …; empty for none).
pub(crate) fn session_because(event: Event, reason: &'static str, id: &SessionId, user_id: &str) {
    let name = event.name();
    if reason.is_empty() {
        tracing::info!(target: EVENTS_TARGET, event = name, session = %id, user_id, "session {name}");
    } else {
        tracing::info!(target: EVENTS_TARGET, event = name, reason, session = %id, user_id, "session {name}");
    }
    count(event, 1);
}

/// `n` sessions expired that no single id stands for (the Redis count sweep).
#[cfg(feature = "redis")]
pub(crate) fn expired_unnamed(n: u64) {
    if n == 0 {
        return;
    }
    tracing::info!(target: EVENTS_TARGET, event = "expired", sessions = n, "{n} sessions expired");
    count(Event::Expired, n);
}

fn count(event: Event, n: u64) {
    metrics::counter!(EVENTS_METRIC, "event" => event.name()).increment(n);
}
