//! This node's copy of each signed-in user's second-factor summary (`user.mfa` of
//! `GET /api/v1/me`), kept only while the session store vouches that nothing of the user
//! changed since it was read.
//!
//! `/api/v1/me` shows the summary on every call, and reading it takes two queries of the users
//! database (the passkeys counted; TOTP and the recovery codes summed up): on SQLite each is a
//! hand-off to sqlx's worker thread and back, which cost more than the rest of the request
//! (docs/benchmarks.md). A copy is reused only under a [`UserWatch`] of the session store taken
//! before the read. Every change of a user's second factors, on any node, is announced through
//! the session store ([`SessionManager::announce_user_change`], a write to the user's Redis
//! key that every node's tracking connection hears), and so is every change of the user's
//! sessions; a lost or silent tracking connection ends every watch within its lease. So a
//! node shows an old summary no longer than it would serve a revoked session. Without a
//! session cache (SQL session stores, `--session-cache off`) there is no watch, nothing is
//! kept and every call reads the database. Decisions (the second step of signing in,
//! administrators' required factor) always read the database.

use std::collections::HashMap;
use std::sync::Mutex;

use ringfence_sessions::{SessionManager, UserWatch};

use super::service::MfaStatus;

/// Entries kept before the ones no longer vouched for are swept (then, if still full, all are
/// dropped): bounds memory whatever the number of users.
const CAPACITY: usize = 10_000;

/// Second-factor summaries by user id, each with the watch taken before its read.
#[derive(Debug, Default)]
pub(crate) struct StatusCache {
    entries: Mutex<HashMap<String, (MfaStatus, UserWatch)>>,
}

impl StatusCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (MfaStatus, UserWatch)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The user's summary if a copy is here and `sessions` still vouches for it; a copy it no
    /// longer vouches for is dropped.
    pub(crate) fn get(&self, sessions: &SessionManager, user_id: &str) -> Option<MfaStatus> {
        let mut entries = self.lock();
        let (status, watch) = entries.get(user_id)?;
        if sessions.user_unchanged(user_id, watch) {
            return Some(*status);
        }
        entries.remove(user_id);
        None
    }

    /// Keeps `status`, read after `watch` was taken.
    pub(crate) fn put(
        &self,
        sessions: &SessionManager,
        user_id: &str,
        status: MfaStatus,
        watch: UserWatch,
    ) {
        let mut entries = self.lock();
        if entries.len() >= CAPACITY && !entries.contains_key(user_id) {
            entries.retain(|id, (_, watch)| sessions.user_unchanged(id, watch));
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(user_id.to_owned(), (status, watch));
    }

    /// Forgets a user whose factors this node just changed.
    pub(crate) fn forget(&self, user_id: &str) {
        self.lock().remove(user_id);
    }
}
