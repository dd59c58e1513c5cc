//! This node's copy of each signed-in user's second-factor summary (`user.mfa` of
//! `GET /api/v1/me`).
//!
//! `/api/v1/me` shows the summary on every call, and reading it takes two queries of the users
//! database (the passkeys counted; TOTP and the recovery codes summed up): on SQLite each is a
//! hand-off to sqlx's worker thread and back, which cost more than the rest of the request
//! (docs/benchmarks.md). A copy is reused while one of these holds:
//!
//! - **A watch of the session store** ([`UserWatch`], when the node has a session cache fed by
//!   Redis tracking) taken before the read still holds. Every change of a user's second
//!   factors, on any node, is announced through the session store
//!   ([`SessionManager::announce_user_change`], a write to the user's Redis key that every
//!   node's tracking connection hears), and so is every change of the user's sessions; a lost
//!   or silent tracking connection ends every watch within its lease. A node shows an old
//!   summary no longer than it would serve a revoked session.
//! - **Otherwise (no session cache: `--session-cache off`, SQL session stores) the user
//!   cache's rule**: a copy read within its time to live (one second by default) and after the
//!   session began (see [`crate::Accounts::session_user`]). Another node's change shows within
//!   that second; this node's own changes drop the copy at once.
//!
//! Decisions (the second step of signing in, administrators' required factor) always read the
//! database. A read in flight when this node changes the user is not kept (a generation
//! counter, as the session cache's fills).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use ringfence_sessions::{SessionManager, UserWatch};

use super::service::MfaStatus;

/// Entries kept before the stale ones are swept (then, unless that freed a quarter of them, all
/// are dropped): bounds memory whatever the number of users, and sweeps to at most one per
/// `CAPACITY / 4` new users.
const CAPACITY: usize = 10_000;
/// The most entries a sweep may leave and still count as having freed enough.
const SWEPT_ENOUGH: usize = CAPACITY - CAPACITY / 4;

/// Why a copy may be shown.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Vouched {
    /// The session store's watch, taken before the read.
    Watch(UserWatch),
    /// Read from the store at this time (no watch available).
    ReadAt(DateTime<Utc>),
}

#[derive(Debug, Default)]
struct Entries {
    /// Bumped by every [`StatusCache::forget`]: a read that began before it is not kept.
    generation: u64,
    by_user: HashMap<String, (MfaStatus, Vouched)>,
}

/// Taken before reading a summary from the store; [`StatusCache::put`] keeps the read only if
/// this node changed no user's factors meanwhile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadTicket(u64);

/// Second-factor summaries by user id.
#[derive(Debug, Default)]
pub(crate) struct StatusCache {
    entries: Mutex<Entries>,
}

/// What decides whether a copy still holds: the session store (watches), and for copies
/// without a watch the session's start (`fresh_since`), the time now and the time to live.
pub(crate) struct Freshness<'a> {
    pub(crate) sessions: &'a SessionManager,
    pub(crate) fresh_since: DateTime<Utc>,
    pub(crate) now: DateTime<Utc>,
    pub(crate) ttl: Duration,
}

impl Freshness<'_> {
    fn holds(&self, user_id: &str, vouched: &Vouched) -> bool {
        match vouched {
            Vouched::Watch(watch) => self.sessions.user_unchanged(user_id, watch),
            Vouched::ReadAt(read_at) => {
                let age = self.now - *read_at;
                *read_at >= self.fresh_since && age >= Duration::zero() && age < self.ttl
            }
        }
    }
}

impl StatusCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The user's summary if a copy is here and still holds; one that does not is dropped.
    pub(crate) fn get(&self, user_id: &str, freshness: &Freshness<'_>) -> Option<MfaStatus> {
        let mut entries = self.lock();
        let (status, vouched) = entries.by_user.get(user_id)?;
        if freshness.holds(user_id, vouched) {
            return Some(*status);
        }
        entries.by_user.remove(user_id);
        None
    }

    /// Taken before the store is read.
    pub(crate) fn ticket(&self) -> ReadTicket {
        ReadTicket(self.lock().generation)
    }

    /// Keeps `status`, read after `ticket` was taken, unless this node changed some user's
    /// factors since.
    pub(crate) fn put(
        &self,
        ticket: ReadTicket,
        user_id: &str,
        status: MfaStatus,
        vouched: Vouched,
        freshness: &Freshness<'_>,
    ) {
        let mut entries = self.lock();
        if entries.generation != ticket.0 {
            return;
        }
        if entries.by_user.len() >= CAPACITY && !entries.by_user.contains_key(user_id) {
            sweep(&mut entries.by_user, |id, vouched| {
                freshness.holds(id, vouched)
            });
        }
        entries
            .by_user
            .insert(user_id.to_owned(), (status, vouched));
    }

    /// Forgets a user whose factors this node just changed, and turns away reads in flight.
    pub(crate) fn forget(&self, user_id: &str) {
        let mut entries = self.lock();
        entries.generation = entries.generation.wrapping_add(1);
        entries.by_user.remove(user_id);
    }
}

/// Drops the copies that no longer hold. A sweep that freed little would run again at the next
/// new user, a pass over every entry per request: unless it freed a quarter, all go.
fn sweep(
    by_user: &mut HashMap<String, (MfaStatus, Vouched)>,
    holds: impl Fn(&str, &Vouched) -> bool,
) {
    by_user.retain(|id, (_, vouched)| holds(id, vouched));
    if by_user.len() > SWEPT_ENOUGH {
        by_user.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> HashMap<String, (MfaStatus, Vouched)> {
        let read_at = Vouched::ReadAt(DateTime::<Utc>::UNIX_EPOCH);
        (0..CAPACITY)
            .map(|n| (n.to_string(), (MfaStatus::default(), read_at)))
            .collect()
    }

    fn number(id: &str) -> usize {
        id.parse().unwrap_or(0)
    }

    #[test]
    fn a_sweep_that_frees_little_drops_everything() {
        let mut by_user = full();
        sweep(&mut by_user, |id, _| number(id) >= 10);
        assert!(by_user.is_empty(), "{}", by_user.len());
    }

    #[test]
    fn a_sweep_that_frees_a_quarter_keeps_what_holds() {
        let mut by_user = full();
        sweep(&mut by_user, |id, _| number(id) >= CAPACITY / 4);
        assert_eq!(by_user.len(), SWEPT_ENOUGH);
        assert!(by_user.contains_key(&(CAPACITY - 1).to_string()));
    }
}
