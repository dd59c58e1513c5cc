//! One counter as every backend keeps it, whatever the store: times in unix milliseconds, the
//! lock and forget time after a failure, and how often expired counters are swept.
//!
//! The Redis script computes the lock itself from [`ThrottlePolicy::schedule_ms`]; the SQL and
//! MongoDB stores call [`next_lock`], so the rule is written here once for them.

use chrono::{DateTime, Utc};

use super::AttemptStoreError;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mongodb"))]
use super::ThrottlePolicy;

/// Expired counters are purged once per this many failures recorded through one store value
/// (the stores without an expiry of their own: SQL and MongoDB).
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mongodb"))]
pub(crate) const PURGE_EVERY: u64 = 256;

/// Milliseconds since the epoch, as every store keeps time.
pub(crate) fn millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> Result<DateTime<Utc>, AttemptStoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| AttemptStoreError::Corrupt(format!("timestamp {ms} ms out of range")))
}

/// The lock at `now_ms` from a stored `locked_until_ms` (0 or past = none).
pub(crate) fn lock_from_millis(
    locked_until_ms: i64,
    now_ms: i64,
) -> Result<Option<DateTime<Utc>>, AttemptStoreError> {
    if locked_until_ms > now_ms {
        from_millis(locked_until_ms).map(Some)
    } else {
        Ok(None)
    }
}

pub(crate) fn failures_from(n: i64) -> Result<u32, AttemptStoreError> {
    if n < 1 {
        return Err(AttemptStoreError::Corrupt(format!(
            "failure count {n} after a failure"
        )));
    }
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// The lock and forget time after the `failures`-th failure at `now_ms`, given the lock the
/// row already had (0 when none or forgotten).
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mongodb"))]
pub(crate) fn next_lock(
    failures: u32,
    previous_lock_ms: i64,
    free_attempts: u32,
    policy: &ThrottlePolicy,
    now_ms: i64,
) -> (i64, i64) {
    let delay = policy.delay_ms(failures, free_attempts);
    let lock = if delay > 0 {
        previous_lock_ms.max(now_ms.saturating_add(delay))
    } else {
        previous_lock_ms
    };
    let window = policy.clamped().window.num_milliseconds();
    let forget = lock.max(now_ms).saturating_add(window);
    (lock, forget)
}

#[cfg(all(
    test,
    any(feature = "sqlite", feature = "postgres", feature = "mongodb")
))]
mod tests {
    use super::*;

    #[test]
    fn locks_never_shrink_and_forget_after_the_lock() {
        let p = ThrottlePolicy::default();
        // Below the free attempts: no lock, forgotten a window after now.
        assert_eq!(next_lock(4, 0, 5, &p, 1_000), (0, 1_000 + 900_000));
        // The fifth failure locks for a second.
        assert_eq!(next_lock(5, 0, 5, &p, 1_000), (2_000, 2_000 + 900_000));
        // A lock in force that ends later than the new one stays.
        assert_eq!(
            next_lock(5, 50_000, 5, &p, 1_000),
            (50_000, 50_000 + 900_000)
        );
    }
}
