//! The session record.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::SessionId;

/// One signed-in device of one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Public id: a hash of the secret in the cookie, safe to show and to log.
    pub id: SessionId,
    /// The user this session signs in.
    pub user_id: String,
    /// When the user signed in.
    pub created_at: DateTime<Utc>,
    /// Last request seen (updated only on renewal, see [`crate::SessionConfig::renewal_fraction`]).
    pub last_seen_at: DateTime<Utc>,
    /// `last_seen_at + idle timeout`.
    pub idle_expires_at: DateTime<Utc>,
    /// `created_at + absolute timeout`; never extended.
    pub absolute_expires_at: DateTime<Utc>,
    /// Client address at sign-in.
    pub ip: Option<String>,
    /// User-Agent header at sign-in.
    pub user_agent: Option<String>,
    /// Human label parsed from the User-Agent ("Firefox on Linux").
    pub device: String,
    /// Name of the node that created the session.
    pub node: String,
}

impl Session {
    /// When the session ends if nothing else happens: the earlier of the two timeouts.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.idle_expires_at.min(self.absolute_expires_at)
    }

    /// Whether the session is still valid at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at()
    }
}

/// Counts for the admin page, the stats API and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCounts {
    /// Sessions not yet expired.
    pub active_sessions: u64,
    /// Distinct users with at least one active session.
    pub signed_in_users: u64,
}

/// A time as every store keeps it: unix milliseconds.
#[cfg(any(feature = "redis", feature = "sqlite", feature = "postgres"))]
pub(crate) fn millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

/// A stored time read back; `None` when out of chrono's range.
#[cfg(any(feature = "redis", feature = "sqlite", feature = "postgres"))]
pub(crate) fn from_millis(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}
