//! The one behaviour suite every [`SessionStore`] backend passes.
//!
//! Each check is a public async function taking a *fresh, empty* store and a base `now`; all
//! session times are chosen relative to that base and time moves by passing later `now`s, never
//! by sleeping. [`run_all`] runs every check, each on its own fresh store, and reports every
//! failing check at once. A backend's integration test is then one line:
//!
//! ```no_run
//! # use ringfence_sessions::SqliteSessionStore;
//! # async fn fresh_store() -> SqliteSessionStore { unimplemented!() }
//! #[tokio::test]
//! async fn sqlite_passes_conformance() {
//!     ringfence_sessions::conformance::run_all(|| async { fresh_store().await }).await;
//! }
//! ```
//!
//! The base `now` is the wall clock, because a Redis server expires keys by its own clock:
//! sessions must end in its future. It is truncated to a whole second, the resolution of Redis's
//! counts (see [`SessionStore::counts`]), so that counting exactly at an expiry is well defined;
//! records keep milliseconds, which the round-trip check covers with an odd millisecond. Checks
//! then move `now` forward by minutes or hours, as a `ManualClock` would (the server's clock
//! moves in whole seconds the same way).
//!
//! The checks panic (assert) on failure; they are test code shipped so other backends and
//! downstream crates can prove themselves against the same rules.

use std::future::Future;

use chrono::{DateTime, Duration, Utc};

use crate::{Session, SessionCounts, SessionId, SessionSecret, SessionStore};

/// The default idle timeout used by the checks' sessions.
const IDLE: Duration = Duration::minutes(30);
/// The default absolute timeout used by the checks' sessions.
const ABSOLUTE: Duration = Duration::hours(12);

/// The wall clock truncated to a whole second: the base `now` [`run_all`] passes to each check.
pub fn base_now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
}

/// A distinct user id, so checks never see each other's data even on a shared store.
pub fn unique_user(label: &str) -> String {
    format!("{label}-{}", &SessionSecret::generate().id().as_str()[..10])
}

/// A session of `user_id` created at `created`, last seen then, with the default 30-minute idle
/// and 12-hour absolute timeouts and every optional field set.
pub fn sample_session(user_id: &str, created: DateTime<Utc>) -> Session {
    Session {
        id: SessionSecret::generate().id(),
        user_id: user_id.to_owned(),
        created_at: created,
        last_seen_at: created,
        idle_expires_at: created + IDLE,
        absolute_expires_at: created + ABSOLUTE,
        ip: Some("2001:db8::7".to_owned()),
        user_agent: Some(
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".to_owned(),
        ),
        device: "Firefox on Linux".to_owned(),
        node: "node-a".to_owned(),
    }
}

fn minutes(n: i64) -> Duration {
    Duration::minutes(n)
}

fn ids(sessions: &[Session]) -> Vec<SessionId> {
    sessions.iter().map(|s| s.id.clone()).collect()
}

fn sorted(mut ids: Vec<SessionId>) -> Vec<SessionId> {
    ids.sort();
    ids
}

/// Every field survives insert then get; optional fields may be absent; `ping` answers.
pub async fn insert_get_round_trip<S: SessionStore>(store: &S, now: DateTime<Utc>) {
    store.ping().await.expect("ping");
    let user = unique_user("round-trip");
    let full = sample_session(&user, now);
    assert!(store.insert(&full, None, now).await.unwrap().is_empty());
    let got = store.get(&user, &full.id, now).await.unwrap();
    assert_eq!(got.as_ref(), Some(&full), "full record round trip");

    // Records keep milliseconds.
    let mut bare = sample_session(&user, now - minutes(1) + Duration::milliseconds(123));
    bare.ip = None;
    bare.user_agent = None;
    bare.device = "Unknown device".to_owned();
    // Non-ASCII survives too (device labels and nodes are free text).
    bare.node = "nœud-β".to_owned();
    store.insert(&bare, None, now).await.unwrap();
    assert_eq!(store.get(&user, &bare.id, now).await.unwrap(), Some(bare));
    assert_eq!(store.get(&user, &full.id, now).await.unwrap(), Some(full));
}

/// A session is only reachable under its own user; unknown ids are simply absent.
pub async fn other_users_cannot_reach_a_session<S: SessionStore>(store: &S, now: DateTime<Utc>) {
    let alice = unique_user("alice");
    let mallory = unique_user("mallory");
    let session = sample_session(&alice, now);
    store.insert(&session, None, now).await.unwrap();

    assert_eq!(store.get(&mallory, &session.id, now).await.unwrap(), None);
    assert!(!store.remove(&mallory, &session.id, now).await.unwrap());
    assert!(store
        .remove_for_user(&mallory, None, now)
        .await
        .unwrap()
        .is_empty());
    assert!(store.list_for_user(&mallory, now).await.unwrap().is_empty());
    assert!(store.get(&alice, &session.id, now).await.unwrap().is_some());

    let unknown = SessionSecret::generate().id();
    assert_eq!(store.get(&alice, &unknown, now).await.unwrap(), None);
    assert_eq!(store.find(&unknown, now).await.unwrap(), None);
    assert!(!store.remove(&alice, &unknown, now).await.unwrap());
}

/// A session unused for the idle timeout is gone, exactly at its idle expiry.
pub async fn expires_at_idle_timeout<S: SessionStore>(store: &S, now: DateTime<Utc>) {
    let user = unique_user("idle");
    let session = sample_session(&user, now);
    store.insert(&session, None, now).await.unwrap();

    let just_before = session.idle_expires_at - Duration::milliseconds(1);
    assert!(store
        .get(&user, &session.id, just_before)
        .await
        .unwrap()
        .is_some());
    let at = session.idle_expires_at;
    assert_eq!(store.get(&user, &session.id, at).await.unwrap(), None);
    assert!(store.list_for_user(&user, at).await.unwrap().is_empty());
    assert_eq!(store.find(&session.id, at).await.unwrap(), None);
    assert!(
        !store.touch(&session, at).await.unwrap(),
        "touch after expiry"
    );
    assert_eq!(store.get(&user, &session.id, at).await.unwrap(), None);
}

/// However active a session is, it ends at its absolute expiry.
pub async fn expires_at_absolute_timeout<S: SessionStore>(store: &S, now: DateTime<Utc>) {
    let user = unique_user("absolute");
    let mut session = sample_session(&user, now);
    session.absolute_expires_at = now + minutes(60);
    store.insert(&session, None, now).await.unwrap();

    // Stay active every 20 minutes: the idle expiry keeps moving past the absolute one.
    for step in [20, 40, 55] {
        let at = now + minutes(step);
        let mut current = store.get(&user, &session.id, at).await.unwrap().unwrap();
        current.last_seen_at = at;
        current.idle_expires_at = at + IDLE;
        assert!(store.touch(&current, at).await.unwrap());
        session = current;
    }
    assert!(session.idle_expires_at > session.absolute_expires_at);
    let before = now + minutes(60) - Duration::milliseconds(1);
    assert!(store
        .get(&user, &session.id, before)
        .await
        .unwrap()
        .is_some());
    let at = now + minutes(60);
    assert_eq!(store.get(&user, &session.id, at).await.unwrap(), None);
    assert!(store.list_for_user(&user, at).await.unwrap().is_empty());
    assert_eq!(store.counts(at).await.unwrap(), SessionCounts::default());
}

/// Touch stores exactly the times it is given and never recreates a removed session.
pub async fn touch_extends_idle_but_never_resurrects<S: SessionStore>(
    store: &S,
    now: DateTime<Utc>,
) {
    let user = unique_user("touch");
    let session = sample_session(&user, now);
    let other = sample_session(&user, now);
    store.insert(&session, None, now).await.unwrap();
    store.insert(&other, None, now).await.unwrap();

    // Removed, then a late renewal arrives from another node.
    assert!(store.remove(&user, &other.id, now).await.unwrap());
    let at = now + minutes(1);
    let mut late = other.clone();
    late.last_seen_at = at;
    late.idle_expires_at = at + IDLE;
    assert!(!store.touch(&late, at).await.unwrap());
    assert_eq!(store.get(&user, &other.id, at).await.unwrap(), None);
    assert_eq!(store.find(&other.id, at).await.unwrap(), None);
    assert_eq!(
        ids(&store.list_for_user(&user, at).await.unwrap()),
        vec![session.id.clone()]
    );
    assert_eq!(
        store.counts(at).await.unwrap(),
        SessionCounts {
            active_sessions: 1,
            signed_in_users: 1
        }
    );
    // A session that never existed is not created either.
    let never = sample_session(&user, now);
    assert!(!store.touch(&never, at).await.unwrap());
    assert_eq!(store.get(&user, &never.id, at).await.unwrap(), None);

    let at = now + minutes(10);
    let mut renewed = session.clone();
    renewed.last_seen_at = at;
    renewed.idle_expires_at = at + IDLE;
    assert!(store.touch(&renewed, at).await.unwrap());
    assert_eq!(
        store.get(&user, &session.id, at).await.unwrap().as_ref(),
        Some(&renewed)
    );
    // Alive past the original idle expiry, dead exactly at the one it was told.
    let past_original = session.idle_expires_at + minutes(1);
    assert!(store
        .get(&user, &session.id, past_original)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store.counts(past_original).await.unwrap().active_sessions,
        1
    );
    let at_new = renewed.idle_expires_at;
    assert_eq!(store.get(&user, &session.id, at_new).await.unwrap(), None);
    assert_eq!(
        store.counts(at_new).await.unwrap(),
        SessionCounts::default()
    );
}

/// Removing one session leaves the others of the user alone.
pub async fn remove_one<S: SessionStore>(store: &S, now: DateTime<Utc>) {
    let user = unique_user("remove");
    let a = sample_session(&user, now);
    let b = sample_session(&user, now);
    store.insert(&a, None, now).await.unwrap();
    store.insert(&b, None, now).await.unwrap();

    assert!(store.remove(&user, &a.id, now).await.unwrap());
    assert!(
        !store.remove(&user, &a.id, now).await.unwrap(),
        "second remove"
    );
    assert_eq!(store.get(&user, &a.id, now).await.unwrap(), None);
    assert_eq!(store.find(&a.id, now).await.unwrap(), None);
    assert_eq!(store.get(&user, &b.id, now).await.unwrap(), Some(b.clone()));
    assert_eq!(
        ids(&store.list_for_user(&user, now).await.unwrap()),
        vec![b.id]
    );
}

/// "Sign out everywhere" with and without keeping the current session; other users untouched.
pub async fn remove_for_user_with_and_without_keep<S: SessionStore>(store: &S, now: DateTime<Utc>) {
    let user = unique_user("revoke");
    let bystander = unique_user("bystander");
    let sessions: Vec<Session> = (0..3).map(|_| sample_session(&user, now)).collect();
    for s in &sessions {
        store.insert(s, None, now).await.unwrap();
    }
    let theirs = sample_session(&bystander, now);
    store.insert(&theirs, None, now).await.unwrap();

    let keep = &sessions[1].id;
    let removed = store.remove_for_user(&user, Some(keep), now).await.unwrap();
    assert_eq!(
        sorted(removed),
        sorted(vec![sessions[0].id.clone(), sessions[2].id.clone()])
    );
    assert_eq!(
        ids(&store.list_for_user(&user, now).await.unwrap()),
        vec![keep.clone()]
    );
    assert!(store
        .get(&user, &sessions[0].id, now)
        .await
        .unwrap()
        .is_none());

    let removed = store.remove_for_user(&user, None, now).await.unwrap();
    assert_eq!(removed, vec![keep.clone()]);
    assert!(store.list_for_user(&user, now).await.unwrap().is_empty());
    assert!(store
        .remove_for_user(&user, None, now)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.get(&bystander, &theirs.id, now).await.unwrap(),
        Some(theirs)
    );
    assert_eq!(
        store.counts(now).await.unwrap(),
        SessionCounts {
            active_sessions: 1,
            signed_in_users: 1
        }
    );
}

/// A user's list is most recently seen first and never shows expired sessions.
pub async fn list_for_user_sorted_and_pruned<S: SessionStore>(store: &S, now: DateTime<Utc>) {
    let user = unique_user("list");
    // created at `now`, last seen at now + 0, +5, +2 minutes; the first one idles out first.
    let mut sessions = Vec::new();
    for seen in [0, 5, 2] {
        let mut s = sample_session(&user, now);
        s.last_seen_at = now + minutes(seen);
        s.idle_expires_at = s.last_seen_at + IDLE;
        store.insert(&s, None, now).await.unwrap();
        sessions.push(s);
    }
    let at = now + minutes(5);
    let listed = store.list_for_user(&user, at).await.unwrap();
    assert_eq!(
        ids(&listed),
        vec![
            sessions[1].id.clone(),
            sessions[2].id.clone(),
            sessions[0].id.clone()
        ]
    );
    assert_eq!(listed[0], sessions[1]);

    let later = now + minutes(31); // sessions[0] ended at +30
    assert_eq!(
        ids(&store.list_for_user(&user, later).await.unwrap()),
        vec![sessions[1].id.clone(), sessions[2].id.clone()]
    );
    // Pruned for good: going back in time does not bring it back.
    assert!(store
        .get(&user, &sessions[0].id, at)
        .await
        .unwrap()
        .is_none());
    let end = now + minutes(40);
    assert!(store.list_for_user(&user, end).await.unwrap().is_empty());
}

/// Active sessions and distinct signed-in users, before and after expiry and removal.
pub async fn counts_follow_expiry_and_removal<S: SessionStore>(store: &S, now: DateTime<Utc>) {
    assert_eq!(store.counts(now).await.unwrap(), SessionCounts::default());
    let alice = unique_user("count-a");
    let bob = unique_user("count-b");
    let a1 = sample_session(&alice, now);
    let mut a2 = sample_session(&alice, now);
    a2.idle_expires_at = now + minutes(90);
    let b1 = sample_session(&bob, now); // idles out at +30
    for s in [&a1, &a2, &b1] {
        store.insert(s, None, now).await.unwrap();
    }
    let counts = |sessions, users| SessionCounts {
        active_sessions: sessions,
        signed_in_users: users,
    };
    assert_eq!(store.counts(now).await.unwrap(), counts(3, 2));

    let later = now + minutes(30);
    assert_eq!(store.counts(later).await.unwrap(), counts(1, 1));
    assert!(store.remove(&alice, &a2.id, later).await.unwrap());
    assert_eq!(store.counts(later).await.unwrap(), counts(0, 0));

    let fresh = sample_session(&bob, later);
    store.insert(&fresh, None, later).await.unwrap();
    assert_eq!(store.counts(later).await.unwrap(), counts(1, 1));
    store.remove_for_user(&bob, None, later).await.unwrap();
    assert_eq!(store.counts(later).await.unwrap(), counts(0, 0));
}

/// Per-user counts, and the global counts staying exact while expired sessions are pruned by
/// reads, writes and counting in every order.
pub async fn counts_per_user_and_through_pruning<S: SessionStore>(store: &S, now: DateTime<Utc>) {
    let alice = unique_user("per-user-a");
    let bob = unique_user("per-user-b");
    let mut kept = Vec::new();
    for n in 0..3 {
        let mut s = sample_session(&alice, now);
        if n > 0 {
            s.idle_expires_at = now + minutes(90);
            kept.push(s.id.clone());
        }
        store.insert(&s, None, now).await.unwrap();
    }
    let bob_first = sample_session(&bob, now); // idles out at +30
    store.insert(&bob_first, None, now).await.unwrap();
    let counts = |sessions, users| SessionCounts {
        active_sessions: sessions,
        signed_in_users: users,
    };
    assert_eq!(store.count_for_user(&alice, now).await.unwrap(), 3);
    assert_eq!(store.count_for_user(&bob, now).await.unwrap(), 1);
    assert_eq!(
        store
            .count_for_user(&unique_user("nobody"), now)
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.counts(now).await.unwrap(), counts(4, 2));

    // At +30 one of Alice's and Bob's only session are over, before anything pruned them.
    let later = now + minutes(30);
    assert_eq!(store.count_for_user(&alice, later).await.unwrap(), 2);
    assert_eq!(store.count_for_user(&bob, later).await.unwrap(), 0);
    // Bob signs in again: his dead session goes and he is one signed-in user, not two or none.
    let bob_again = sample_session(&bob, later);
    store.insert(&bob_again, None, later).await.unwrap();
    assert_eq!(store.counts(later).await.unwrap(), counts(3, 2));
    // Counting twice at the same instant (SQLite prunes while it counts) changes nothing.
    assert_eq!(store.counts(later).await.unwrap(), counts(3, 2));
    assert_eq!(store.get(&bob, &bob_first.id, later).await.unwrap(), None);
    assert_eq!(store.counts(later).await.unwrap(), counts(3, 2));

    assert!(store.remove(&alice, &kept[0], later).await.unwrap());
    assert_eq!(store.count_for_user(&alice, later).await.unwrap(), 1);
    assert_eq!(store.counts(later).await.unwrap(), counts(2, 2));
    store.remove_for_user(&alice, None, later).await.unwrap();
    assert_eq!(store.count_for_user(&alice, later).await.unwrap(), 0);
    assert_eq!(store.counts(later).await.unwrap(), counts(1, 1));
    // Bob's new session idles out at +60: nobody is left.
    let end = later + minutes(30);
    assert_eq!(store.count_for_user(&bob, end).await.unwrap(), 0);
    assert_eq!(store.counts(end).await.unwrap(), counts(0, 0));
}

/// With a cap, inserting past it evicts the user's oldest sessions by `created_at`.
pub async fn cap_evicts_oldest<S: SessionStore>(store: &S, now: DateTime<Utc>) {
    let user = unique_user("cap");
    // Inserted in an order different from creation order: eviction must follow created_at.
    let mut by_creation = Vec::new();
    for created in [now - minutes(5), now - minutes(20), now - minutes(10)] {
        let s = sample_session(&user, created);
        assert!(store.insert(&s, Some(3), now).await.unwrap().is_empty());
        by_creation.push(s);
    }
    by_creation.sort_by_key(|s| s.created_at);
    let newest = sample_session(&user, now);
    let evicted = store.insert(&newest, Some(3), now).await.unwrap();
    assert_eq!(evicted, vec![by_creation[0].id.clone()]);
    assert!(store
        .get(&user, &by_creation[0].id, now)
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.find(&by_creation[0].id, now).await.unwrap(), None);
    let listed = store.list_for_user(&user, now).await.unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().any(|s| s.id == newest.id));
    assert_eq!(store.counts(now).await.unwrap().active_sessions, 3);

    // Lowering the cap evicts several at once, never the session being inserted.
    let mut another = sample_session(&user, now - minutes(60));
    another.last_seen_at = now;
    another.idle_expires_at = now + IDLE;
    let evicted = store.insert(&another, Some(1), now).await.unwrap();
    assert_eq!(evicted.len(), 3);
    assert_eq!(
        ids(&store.list_for_user(&user, now).await.unwrap()),
        vec![another.id.clone()]
    );
    assert_eq!(
        store.counts(now).await.unwrap(),
        SessionCounts {
            active_sessions: 1,
            signed_in_users: 1
        }
    );
    // Expired sessions do not count toward the cap.
    let later = another.idle_expires_at;
    let after = sample_session(&user, later);
    assert!(store
        .insert(&after, Some(1), later)
        .await
        .unwrap()
        .is_empty());
}

/// Admin lookups: by id alone, and every user's active sessions most recently seen first.
pub async fn find_and_list_all<S: SessionStore>(store: &S, now: DateTime<Utc>) {
    let mut all = Vec::new();
    for (n, seen) in [3, 1, 4, 0].into_iter().enumerate() {
        let user = unique_user(&format!("admin{n}"));
        let mut s = sample_session(&user, now);
        s.last_seen_at = now + minutes(seen);
        s.idle_expires_at = s.last_seen_at + IDLE;
        store.insert(&s, None, now).await.unwrap();
        all.push(s);
    }
    let at = now + minutes(4);
    for s in &all {
        assert_eq!(store.find(&s.id, at).await.unwrap().as_ref(), Some(s));
    }
    assert_eq!(
        store
            .find(&SessionSecret::generate().id(), at)
            .await
            .unwrap(),
        None
    );

    let everything = store.list_all(100, at).await.unwrap();
    assert_eq!(
        ids(&everything),
        vec![
            all[2].id.clone(),
            all[0].id.clone(),
            all[1].id.clone(),
            all[3].id.clone()
        ]
    );
    assert_eq!(everything[0], all[2]);
    assert_eq!(
        ids(&store.list_all(2, at).await.unwrap()),
        ids(&everything[..2])
    );
    assert!(store.list_all(0, at).await.unwrap().is_empty());

    // all[3] (last seen at +0) idles out at +30, the others later.
    let later = now + minutes(30);
    assert_eq!(store.find(&all[3].id, later).await.unwrap(), None);
    assert_eq!(store.list_all(100, later).await.unwrap().len(), 3);
}

/// Runs every check, each on a fresh store from `fresh`, and panics listing every failed check.
///
/// Must run inside a Tokio runtime (each check runs as a task so one failure does not hide the
/// others).
pub async fn run_all<S, F, Fut>(mut fresh: F)
where
    S: SessionStore,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    let mut failures = Vec::new();
    macro_rules! check {
        ($name:ident) => {{
            let store = fresh().await;
            let now = base_now();
            let outcome = tokio::spawn(async move { $name(&store, now).await }).await;
            if let Err(error) = outcome {
                failures.push(format!("{}: {}", stringify!($name), panic_message(error)));
            }
        }};
    }
    check!(insert_get_round_trip);
    check!(other_users_cannot_reach_a_session);
    check!(expires_at_idle_timeout);
    check!(expires_at_absolute_timeout);
    check!(touch_extends_idle_but_never_resurrects);
    check!(remove_one);
    check!(remove_for_user_with_and_without_keep);
    check!(list_for_user_sorted_and_pruned);
    check!(counts_follow_expiry_and_removal);
    check!(counts_per_user_and_through_pruning);
    check!(cap_evicts_oldest);
    check!(find_and_list_all);
    assert!(
        failures.is_empty(),
        "{} conformance check(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn panic_message(error: tokio::task::JoinError) -> String {
    match error.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panicked".to_owned()),
        Err(error) => error.to_string(),
    }
}
