//! Key-ring changes pushed by Redis instead of waited for.
//!
//! A node hears of a key another node created, revoked or rotated in by the next poll of the
//! ring's revision ([`KeyRingConfig::poll_interval`](crate::KeyRingConfig::poll_interval)).
//! With Redis, a [`Tracker`](crate::tracking::Tracker) given [`KeyRing::tracking_listener`]
//! tracks the ring's keys (`P{keyring}:`), and every change Redis reports wakes the refresh
//! task at once: the new ring is read within a round trip or two of the write. The listener
//! also wakes it whenever the tracking connection comes or goes (a change may have been missed
//! while it was down), so the poll is only the safety net and can run far less often.

use std::sync::Arc;
#[cfg(feature = "redis")]
use std::sync::Weak;

use tokio::sync::{watch, Notify};

#[cfg(feature = "redis")]
use crate::ring::Inner;
#[cfg(feature = "redis")]
use crate::tracking::TrackingListener;
use crate::KeyRing;

/// What the refresh task waits on besides its poll, and what it tells when it reloaded.
#[derive(Debug)]
pub(crate) struct Changes {
    /// Woken by a push: the refresh task ticks now.
    pub(crate) wake: Arc<Notify>,
    /// Counts reloads of the ring from its store.
    reloads: watch::Sender<u64>,
}

impl Default for Changes {
    fn default() -> Self {
        Self {
            wake: Arc::new(Notify::new()),
            reloads: watch::Sender::new(0),
        }
    }
}

impl Changes {
    /// Called after every reload.
    pub(crate) fn reloaded(&self) {
        self.reloads.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl KeyRing {
    /// Asks the refresh task ([`KeyRing::spawn_refresh`]) to check the store now rather than at
    /// its next poll: another node changed the ring.
    pub fn refresh_soon(&self) {
        self.inner.changes.wake.notify_one();
    }

    /// A receiver that changes each time the ring is re-read from its store (tests await a
    /// pushed change with it).
    pub fn reloads(&self) -> watch::Receiver<u64> {
        self.inner.changes.reloads.subscribe()
    }

    #[cfg(feature = "redis")]
    /// The listener to give a [`Tracker`](crate::tracking::Tracker) on the Redis holding this
    /// ring under `prefix` (as given to [`RedisKeyRepository::new`](crate::RedisKeyRepository::new)).
    /// It holds the ring weakly: a dropped ring is not kept alive by its tracker.
    pub fn tracking_listener(&self, prefix: &str) -> Arc<dyn TrackingListener> {
        Arc::new(RingListener {
            ring: Arc::downgrade(&self.inner),
            prefix: format!("{prefix}{{keyring}}:"),
        })
    }
}

#[cfg(feature = "redis")]
struct RingListener {
    ring: Weak<Inner>,
    prefix: String,
}

#[cfg(feature = "redis")]
impl RingListener {
    fn wake(&self) {
        if let Some(inner) = self.ring.upgrade() {
            inner.changes.wake.notify_one();
        }
    }
}

#[cfg(feature = "redis")]
impl TrackingListener for RingListener {
    fn prefixes(&self) -> Vec<String> {
        vec![self.prefix.clone()]
    }

    fn invalidated(&self, key: &[u8]) {
        if key.starts_with(self.prefix.as_bytes()) {
            self.wake();
        }
    }

    fn reset(&self) {
        self.wake();
    }

    fn confirmed(&self, _sent: tokio::time::Instant) {}
}
