//! The one test suite every [`AttemptStore`] backend passes.
//!
//! Each function checks one behaviour with an injected `now` and panics with a message when the
//! store misbehaves. Each uses fresh random keys, so they can run in any order on one store or
//! on a store shared with other checks. [`run_all`] runs every check.
//!
//! The numbers are those of the module docs of [`crate::throttle`]: with the default policy the
//! fifth failure of an account key locks it for 1 s, each further failure doubles the lock up to
//! 15 minutes, and a key is forgotten 15 minutes after its last failure or lock.

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::{AttemptStore, FailureCount, ThrottlePolicy};

/// A fixed time with milliseconds, the precision every backend keeps.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9)
        .single()
        .unwrap_or_default()
        + Duration::milliseconds(123)
}

/// A fresh key of the shape the throttle uses.
pub fn fresh_key(kind: &str) -> String {
    format!("{kind}:{}", uuid::Uuid::new_v4().simple())
}

fn policy() -> ThrottlePolicy {
    ThrottlePolicy::default()
}

async fn fail(store: &dyn AttemptStore, key: &str, free: u32, now: DateTime<Utc>) -> FailureCount {
    store
        .record_failure(key, free, &policy(), now)
        .await
        .unwrap_or_else(|e| panic!("record_failure({key}) failed: {e}"))
}

async fn check(store: &dyn AttemptStore, key: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    store
        .check(key, now)
        .await
        .unwrap_or_else(|e| panic!("check({key}) failed: {e}"))
}

/// An unknown key is not locked; failures are counted one by one.
pub async fn counting(store: &dyn AttemptStore) {
    let key = fresh_key("account");
    let now = t0();
    assert_eq!(check(store, &key, now).await, None, "unknown key unlocked");
    for n in 1..=4 {
        let count = fail(store, &key, 5, now).await;
        assert_eq!(count.failures, n, "failure {n} counted");
        assert_eq!(count.locked_until, None, "failure {n} is free");
        assert_eq!(check(store, &key, now).await, None, "no lock after {n}");
    }
}

/// The `free_attempts`-th failure locks for the base delay; the lock ends exactly then.
pub async fn lock_after_free_attempts(store: &dyn AttemptStore) {
    let now = t0();
    for free in [1, 3, 5, 20] {
        let key = fresh_key("address");
        for _ in 1..free {
            assert_eq!(fail(store, &key, free, now).await.locked_until, None);
        }
        let count = fail(store, &key, free, now).await;
        let until = now + Duration::seconds(1);
        assert_eq!(count.failures, free);
        assert_eq!(
            count.locked_until,
            Some(until),
            "failure {free} of {free} free locks for 1 s"
        );
        assert_eq!(check(store, &key, now).await, Some(until));
        assert_eq!(
            check(store, &key, until - Duration::milliseconds(1)).await,
            Some(until),
            "still locked 1 ms before the end"
        );
        assert_eq!(check(store, &key, until).await, None, "unlocked at the end");
    }
}

/// Each failure after the free ones doubles the lock: 1 s, 2 s, 4 s, ….
pub async fn growing_delay(store: &dyn AttemptStore) {
    let key = fresh_key("account");
    let mut now = t0();
    for _ in 0..4 {
        fail(store, &key, 5, now).await;
    }
    for (n, secs) in (5..=11).zip([1, 2, 4, 8, 16, 32, 64]) {
        let count = fail(store, &key, 5, now).await;
        let until = now + Duration::seconds(secs);
        assert_eq!(count.failures, n);
        assert_eq!(
            count.locked_until,
            Some(until),
            "failure {n} locks for {secs} s"
        );
        assert_eq!(check(store, &key, now).await, Some(until));
        // The next failure comes as soon as the lock allows.
        now = until;
        assert_eq!(check(store, &key, now).await, None);
    }
}

/// The lock never exceeds `max_delay`, and a key kept at the cap keeps its count.
pub async fn delay_is_capped(store: &dyn AttemptStore) {
    let key = fresh_key("account");
    let mut now = t0();
    let cap = policy().max_delay;
    for n in 1..=25u32 {
        let count = fail(store, &key, 1, now).await;
        assert_eq!(count.failures, n, "count kept at the cap");
        let until = count.locked_until.expect("every failure locks with 1 free");
        let expected = policy().delay_after(n, 1);
        assert!(expected <= cap);
        assert_eq!(until - now, expected, "failure {n}");
        if n >= 11 {
            assert_eq!(until - now, cap, "failure {n} is at the cap");
        }
        now = until;
    }
}

/// A key is forgotten `window` after its last failure, or after its lock ends if later.
pub async fn decay_after_window(store: &dyn AttemptStore) {
    let window = policy().window;
    let ms = Duration::milliseconds(1);

    // Unlocked key: remembered until just before last failure + window.
    let key = fresh_key("account");
    let start = t0();
    for _ in 0..3 {
        fail(store, &key, 5, start).await;
    }
    let last = start + window - ms;
    assert_eq!(
        fail(store, &key, 5, last).await.failures,
        4,
        "still counted"
    );
    assert_eq!(
        fail(store, &key, 5, last + window).await.failures,
        1,
        "forgotten a window after the last failure"
    );

    // Locked key: forgotten a window after the lock ends.
    let key = fresh_key("account");
    for _ in 0..4 {
        fail(store, &key, 5, start).await;
    }
    let until = fail(store, &key, 5, start)
        .await
        .locked_until
        .expect("locked");
    assert_eq!(check(store, &key, until + window - ms).await, None);
    assert_eq!(
        fail(store, &key, 5, until + window - ms).await.failures,
        6,
        "remembered until a window after the lock"
    );
    let key2 = fresh_key("account");
    for _ in 0..5 {
        fail(store, &key2, 5, start).await;
    }
    let count = fail(store, &key2, 5, start + Duration::seconds(1) + window).await;
    assert_eq!(count.failures, 1, "forgotten a window after the lock");
    assert_eq!(count.locked_until, None);

    // At the cap: a 15-minute lock, then the count survives another window.
    let key3 = fresh_key("account");
    let mut now = start;
    let mut count = fail(store, &key3, 5, now).await;
    for _ in 1..15 {
        now = count.locked_until.unwrap_or(now);
        count = fail(store, &key3, 5, now).await;
    }
    assert_eq!(count.failures, 15);
    let until = count.locked_until.expect("locked at the cap");
    assert_eq!(until - now, policy().max_delay, "failure 15 is at the cap");
    let later = until + window - ms;
    let count = fail(store, &key3, 5, later).await;
    assert_eq!(count.failures, 16, "the count survives a capped lock");
    assert_eq!(count.locked_until, Some(later + policy().max_delay));
}

/// `reset` forgets the count and the lock; resetting an unknown key is fine.
pub async fn reset(store: &dyn AttemptStore) {
    let key = fresh_key("account");
    let now = t0();
    for _ in 0..7 {
        fail(store, &key, 5, now).await;
    }
    assert!(
        check(store, &key, now).await.is_some(),
        "locked before reset"
    );
    store.reset(&key).await.expect("reset");
    assert_eq!(check(store, &key, now).await, None, "unlocked after reset");
    let count = fail(store, &key, 5, now).await;
    assert_eq!(count.failures, 1, "count starts over");
    assert_eq!(count.locked_until, None);
    store
        .reset(&fresh_key("account"))
        .await
        .expect("reset of an unknown key");
}

/// Counters of different keys do not affect each other.
pub async fn keys_are_independent(store: &dyn AttemptStore) {
    let now = t0();
    let a = fresh_key("account");
    // Same digest, other kind: still another counter.
    let b = a.replacen("account", "address", 1);
    let c = fresh_key("account");
    for _ in 0..5 {
        fail(store, &a, 5, now).await;
    }
    assert!(check(store, &a, now).await.is_some());
    assert_eq!(check(store, &b, now).await, None);
    assert_eq!(check(store, &c, now).await, None);
    assert_eq!(fail(store, &b, 5, now).await.failures, 1);
    assert_eq!(fail(store, &c, 5, now).await.failures, 1);
    store.reset(&b).await.expect("reset");
    assert!(check(store, &a, now).await.is_some(), "reset is per key");
}

/// A failure reported with an earlier clock (another node's) never shortens a lock in force.
pub async fn lock_never_shortens(store: &dyn AttemptStore) {
    let key = fresh_key("address");
    let ahead = t0() + Duration::seconds(100);
    let count = fail(store, &key, 1, ahead).await;
    let until = ahead + Duration::seconds(1);
    assert_eq!(count.locked_until, Some(until));
    let behind = t0();
    let count = fail(store, &key, 1, behind).await;
    assert_eq!(count.failures, 2);
    assert_eq!(count.locked_until, Some(until), "the later lock stays");
    assert_eq!(check(store, &key, behind).await, Some(until));
}

/// Failures recorded concurrently are all counted.
pub async fn concurrent_failures_all_count(store: &dyn AttemptStore) {
    let key = fresh_key("account");
    let now = t0();
    let n = 24u32;
    let p = policy();
    let calls = (0..n).map(|_| store.record_failure(&key, 100, &p, now));
    let results = futures_util::future::join_all(calls).await;
    let mut seen: Vec<u32> = results
        .into_iter()
        .map(|r| r.expect("concurrent record_failure").failures)
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=n).collect::<Vec<_>>(),
        "every failure got its own count"
    );
    assert_eq!(fail(store, &key, 100, now).await.failures, n + 1);
}

/// Policies other than the default (other bases, caps and free attempts) give exactly the locks
/// [`ThrottlePolicy::delay_after`] computes: the schedule has one definition, which every
/// backend follows.
pub async fn schedule_follows_any_policy(store: &dyn AttemptStore) {
    let policies = [
        ThrottlePolicy {
            base_delay: Duration::milliseconds(3),
            max_delay: Duration::milliseconds(1000),
            ..ThrottlePolicy::default()
        },
        ThrottlePolicy {
            base_delay: Duration::seconds(7),
            max_delay: Duration::hours(2),
            window: Duration::minutes(1),
            ..ThrottlePolicy::default()
        },
        ThrottlePolicy {
            base_delay: Duration::milliseconds(1),
            max_delay: Duration::days(1),
            ..ThrottlePolicy::default()
        },
    ];
    for policy in policies {
        for free in [1, 4] {
            let key = fresh_key("account_address");
            let now = t0();
            for n in 1..=free + 32 {
                let count = store
                    .record_failure(&key, free, &policy, now)
                    .await
                    .unwrap_or_else(|e| panic!("record_failure({key}) failed: {e}"));
                let delay = policy.delay_after(n, free);
                let expected = (delay > Duration::zero()).then(|| now + delay);
                // Locks never shorten: at one instant the lock is the largest so far.
                assert_eq!(count.failures, n);
                assert_eq!(
                    count.locked_until, expected,
                    "failure {n}, {free} free, {policy:?}"
                );
            }
        }
    }
}

/// Every check above.
pub async fn run_all(store: &dyn AttemptStore) {
    counting(store).await;
    lock_after_free_attempts(store).await;
    growing_delay(store).await;
    delay_is_capped(store).await;
    decay_after_window(store).await;
    reset(store).await;
    keys_are_independent(store).await;
    lock_never_shortens(store).await;
    concurrent_failures_all_count(store).await;
    schedule_follows_any_policy(store).await;
}
