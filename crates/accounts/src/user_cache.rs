//! A short-lived, per-node copy of the accounts that signed-in requests belong to.
//!
//! Every authenticated request needs its [`User`] (e-mail, admin flag). Reading it from the user
//! store each time cost more than the rest of the request together: on SQLite every query is a
//! hand-off to a database thread and back, which on a small machine is mostly futex wake-ups
//! and context switches (see docs/benchmarks.md). So a node keeps each user it read for a short
//! time (default one second).
//!
//! Why a stale copy cannot grant anything: a privilege change (`users set-admin`) ends all of
//! the user's sessions after it is stored, so any session that could still act is created
//! after the change. An entry is used for a session only if it was read at or after that
//! session was created ([`UserCache::get`]'s `fresh_since`), so a session never sees a copy
//! older than itself, on any node. What a copy may lag by, within the time to live, is what
//! changes without ending sessions: the password-changed time shown on pages. Times come from
//! the injected clock, so tests control expiry; compare `fresh_since` across nodes only with
//! clocks in NTP sync (the same assumption as session expiry).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

use crate::User;

/// Entries kept before expired ones are swept (then, if still full, all are dropped): bounds
/// memory whatever the number of users.
const CAPACITY: usize = 10_000;

/// The default time a node reuses a user it read.
pub const DEFAULT_USER_CACHE_TTL: Duration = Duration::seconds(1);

#[derive(Debug)]
struct Entry {
    user: User,
    read_at: DateTime<Utc>,
}

/// Users by id, each with the time it was read from the store.
#[derive(Debug)]
pub(crate) struct UserCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl UserCache {
    /// A cache whose entries live `ttl`; zero (or negative) disables it.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The user if a copy read at or after `fresh_since` and less than the time to live before
    /// `now` is here.
    pub(crate) fn get(
        &self,
        id: &str,
        fresh_since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<User> {
        if self.ttl <= Duration::zero() {
            return None;
        }
        let mut entries = self.lock();
        let entry = entries.get(id)?;
        let age = now - entry.read_at;
        if age < Duration::zero() {
            // Read "in the future": this node's clock stepped back since. Its age cannot be
            // known, so it is not used, and dropped.
            entries.remove(id);
            return None;
        }
        let usable = entry.read_at >= fresh_since && age < self.ttl;
        usable.then(|| entry.user.clone())
    }

    /// Records `user` as read from the store at `read_at`.
    pub(crate) fn put(&self, user: &User, read_at: DateTime<Utc>) {
        if self.ttl <= Duration::zero() {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= CAPACITY && !entries.contains_key(&user.id) {
            let ttl = self.ttl;
            entries.retain(|_, e| read_at - e.read_at < ttl);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(
            user.id.clone(),
            Entry {
                user: user.clone(),
                read_at,
            },
        );
    }

    /// Forgets a user this node just changed.
    pub(crate) fn forget(&self, id: &str) {
        self.lock().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, admin: bool) -> User {
        let t = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        User {
            id: id.to_owned(),
            email: format!("{id}@example.com"),
            is_admin: admin,
            created_at: t,
            password_changed_at: t,
            email_verified: false,
            disabled: false,
        }
    }

    #[test]
    fn entries_expire_and_are_never_older_than_the_session() {
        let cache = UserCache::new(Duration::seconds(1));
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        cache.put(&user("a", true), t0);
        let ms = Duration::milliseconds;
        assert!(cache.get("a", t0, t0 + ms(999)).is_some());
        assert!(cache.get("a", t0, t0 + ms(1000)).is_none(), "expired");
        // A session created after the read (say, after a privilege change ended the others)
        // never sees the older copy.
        assert!(cache.get("a", t0 + ms(1), t0 + ms(2)).is_none());
        assert!(cache.get("b", t0, t0).is_none());
        // The clock stepped back: a copy read "later" than now is never used.
        assert!(cache.get("a", t0, t0 - ms(1)).is_none());
        assert!(cache.get("a", t0, t0).is_none(), "and dropped");
        cache.put(&user("a", true), t0);
        cache.forget("a");
        assert!(cache.get("a", t0, t0).is_none());
    }

    #[test]
    fn zero_ttl_disables_and_capacity_bounds() {
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let off = UserCache::new(Duration::zero());
        off.put(&user("a", false), t0);
        assert!(off.get("a", t0, t0).is_none());

        let cache = UserCache::new(Duration::seconds(1));
        for n in 0..CAPACITY {
            cache.put(&user(&n.to_string(), false), t0);
        }
        // Full of live entries: the next one starts over rather than growing without bound.
        cache.put(&user("new", false), t0);
        assert!(cache.lock().len() <= CAPACITY);
        assert!(cache.get("new", t0, t0).is_some());
        // Full of expired entries: only those are swept.
        let later = t0 + Duration::seconds(5);
        for n in 0..CAPACITY - 1 {
            cache.put(&user(&format!("x{n}"), false), t0);
        }
        cache.put(&user("fresh", false), later);
        assert!(cache.get("fresh", later, later).is_some());
    }
}
