//! Injected time. Key lifetimes and session timeouts are decided against a [`Clock`] so tests
//! can move time by days without sleeping.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Duration, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// The current time in nanoseconds since the Unix epoch, saturating at `i64::MIN` and
    /// `i64::MAX` outside 1677-2262. The hot path compares this against precomputed bounds
    /// instead of building a calendar date; the default derives it from [`Clock::now`], so a
    /// clock only needs to override it to be faster, and both must tell the same time.
    fn now_nanos(&self) -> i64 {
        nanos(self.now())
    }
}

/// `time` in nanoseconds since the Unix epoch, saturating outside the `i64` range.
pub(crate) fn nanos(time: DateTime<Utc>) -> i64 {
    time.timestamp_nanos_opt()
        .unwrap_or(if time.timestamp() < 0 {
            i64::MIN
        } else {
            i64::MAX
        })
}

/// `time + duration`, saturating at the ends of the calendar instead of panicking.
///
/// Every place a configured duration (a key lifetime, a session timeout) is added to a time goes
/// through this: a library user handing in `Duration::MAX` gets a time that never comes, not a
/// panic at every sign-in. (`ringfence serve` also bounds every duration flag at start.)
pub fn add_saturating(time: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    time.checked_add_signed(duration)
        .unwrap_or(if duration < Duration::zero() {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
}

/// A shareable clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// The wall clock as a [`SharedClock`].
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn now_nanos(&self) -> i64 {
        // The same clock `Utc::now` reads (CLOCK_REALTIME), without the calendar arithmetic.
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_nanos()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |n| -n),
        }
    }
}

/// A clock that moves only when told to; clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: DateTime<Utc>) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = to;
    }

    /// This clock as a [`SharedClock`].
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanos_agree_with_now() {
        let system = SystemClock;
        let before = nanos(system.now());
        let fast = system.now_nanos();
        let after = nanos(system.now());
        assert!(before <= fast && fast <= after);

        let at = DateTime::parse_from_rfc3339("2030-05-06T07:08:09.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        let manual = ManualClock::new(at);
        assert_eq!(manual.now_nanos(), 1_904_281_689_123_456_789);
        manual.set(DateTime::<Utc>::MAX_UTC);
        assert_eq!(manual.now_nanos(), i64::MAX);
        manual.set(DateTime::<Utc>::MIN_UTC);
        assert_eq!(manual.now_nanos(), i64::MIN);
    }
}

#[cfg(test)]
mod saturating_tests {
    use super::*;

    #[test]
    fn finding_09_adding_a_huge_duration_saturates() {
        let now = Utc::now();
        assert_eq!(add_saturating(now, Duration::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(add_saturating(now, Duration::MIN), DateTime::<Utc>::MIN_UTC);
        assert_eq!(
            add_saturating(now, Duration::days(1)),
            now + Duration::days(1)
        );
    }
}
