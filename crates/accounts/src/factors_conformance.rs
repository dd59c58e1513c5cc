//! The one test suite every [`FactorStore`] backend passes.
//!
//! Each function checks one behaviour and panics with a message when the store misbehaves. Each
//! uses a fresh random user id, so they can run in any order on one store or on a store shared
//! with other checks. [`run_all`] runs every check; [`concurrent_uses_one_wins`] takes two
//! handles on one database, as two nodes have.

use chrono::{DateTime, TimeZone, Utc};

use crate::factors::{FactorStore, TotpRecord};

fn user() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9)
        .single()
        .unwrap_or_default()
}

fn ok<T, E: std::fmt::Display>(what: &str, result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| panic!("{what} failed: {e}"))
}

/// Every check on one store.
pub async fn run_all(store: &dyn FactorStore) {
    totp_turns_on_only_when_confirmed(store).await;
    confirm_needs_the_current_pending_secret(store).await;
    a_step_is_taken_once_and_never_an_older_one(store).await;
    removing_totp_removes_the_row(store).await;
    recovery_codes_work_once_and_a_new_set_voids_the_old(store).await;
    users_are_independent(store).await;
    summary_says_what_totp_and_the_codes_say(store).await;
}

/// `summary` agrees with `totp` and `recovery_codes_left`.
pub async fn summary_says_what_totp_and_the_codes_say(store: &dyn FactorStore) {
    let u = user();
    assert_eq!(ok("summary", store.summary(&u).await), (false, 0));
    ok("put_pending", store.put_pending_totp(&u, "s", t0()).await);
    assert_eq!(
        ok("summary", store.summary(&u).await),
        (false, 0),
        "pending is not on"
    );
    assert!(ok("confirm", store.confirm_totp(&u, "s", 1, t0()).await));
    let codes: Vec<String> = (0..3).map(|i| format!("{i:064x}")).collect();
    ok("replace", store.replace_recovery_codes(&u, &codes).await);
    assert_eq!(ok("summary", store.summary(&u).await), (true, 3));
}

/// A pending secret is not on; confirming it turns it on with the confirming step taken.
pub async fn totp_turns_on_only_when_confirmed(store: &dyn FactorStore) {
    let u = user();
    assert_eq!(ok("totp", store.totp(&u).await), None);
    ok(
        "put_pending",
        store.put_pending_totp(&u, "sealed-1", t0()).await,
    );
    let record = ok("totp", store.totp(&u).await);
    assert_eq!(
        record,
        Some(TotpRecord {
            secret: None,
            pending_secret: Some("sealed-1".into()),
            last_step: -1
        })
    );
    assert!(
        !ok("take_totp_step", store.take_totp_step(&u, 5).await),
        "a pending secret must not accept codes"
    );
    assert!(ok(
        "confirm",
        store.confirm_totp(&u, "sealed-1", 7, t0()).await
    ));
    let record = ok("totp", store.totp(&u).await);
    assert_eq!(
        record,
        Some(TotpRecord {
            secret: Some("sealed-1".into()),
            pending_secret: None,
            last_step: 7
        })
    );
    assert!(
        !ok("take_totp_step", store.take_totp_step(&u, 7).await),
        "the confirming step must not sign in again"
    );
}

/// Confirming a pending secret that was replaced (or confirmed) meanwhile does nothing; a new
/// pending secret keeps the confirmed one working until it is confirmed itself.
pub async fn confirm_needs_the_current_pending_secret(store: &dyn FactorStore) {
    let u = user();
    ok("put_pending", store.put_pending_totp(&u, "old", t0()).await);
    ok("put_pending", store.put_pending_totp(&u, "new", t0()).await);
    assert!(!ok("confirm", store.confirm_totp(&u, "old", 1, t0()).await));
    assert!(ok("confirm", store.confirm_totp(&u, "new", 1, t0()).await));
    assert!(
        !ok("confirm", store.confirm_totp(&u, "new", 2, t0()).await),
        "a confirmed secret is no longer pending"
    );
    ok(
        "put_pending",
        store.put_pending_totp(&u, "next", t0()).await,
    );
    let record = ok("totp", store.totp(&u).await).unwrap_or_else(|| panic!("row gone"));
    assert_eq!(record.secret.as_deref(), Some("new"));
    assert_eq!(record.pending_secret.as_deref(), Some("next"));
    assert!(ok("take_totp_step", store.take_totp_step(&u, 2).await));
}

/// `take_totp_step` wins only for a step after every step taken before.
pub async fn a_step_is_taken_once_and_never_an_older_one(store: &dyn FactorStore) {
    let u = user();
    ok("put_pending", store.put_pending_totp(&u, "s", t0()).await);
    assert!(ok("confirm", store.confirm_totp(&u, "s", 100, t0()).await));
    assert!(ok("take", store.take_totp_step(&u, 101).await));
    assert!(!ok("take", store.take_totp_step(&u, 101).await), "replay");
    assert!(
        !ok("take", store.take_totp_step(&u, 99).await),
        "older step"
    );
    assert!(ok("take", store.take_totp_step(&u, 103).await));
    assert!(
        !ok("take", store.take_totp_step(&u, 102).await),
        "older step"
    );
}

/// Removing TOTP deletes the row; it reports whether TOTP was on.
pub async fn removing_totp_removes_the_row(store: &dyn FactorStore) {
    let u = user();
    assert!(!ok("remove", store.remove_totp(&u).await));
    ok("put_pending", store.put_pending_totp(&u, "s", t0()).await);
    assert!(!ok("remove", store.remove_totp(&u).await), "only pending");
    ok("put_pending", store.put_pending_totp(&u, "s", t0()).await);
    assert!(ok("confirm", store.confirm_totp(&u, "s", 1, t0()).await));
    assert!(ok("remove", store.remove_totp(&u).await));
    assert_eq!(ok("totp", store.totp(&u).await), None);
    assert!(!ok("take", store.take_totp_step(&u, 50).await));
}

/// Each code works once; a new set replaces the old one entirely.
pub async fn recovery_codes_work_once_and_a_new_set_voids_the_old(store: &dyn FactorStore) {
    let u = user();
    let first: Vec<String> = (0..10).map(|i| format!("{i:064x}")).collect();
    ok("replace", store.replace_recovery_codes(&u, &first).await);
    assert_eq!(ok("left", store.recovery_codes_left(&u).await), 10);
    assert!(ok("take", store.take_recovery_code(&u, &first[3]).await));
    assert!(
        !ok("take", store.take_recovery_code(&u, &first[3]).await),
        "reuse"
    );
    assert_eq!(ok("left", store.recovery_codes_left(&u).await), 9);
    let second: Vec<String> = (10..20).map(|i| format!("{i:064x}")).collect();
    ok("replace", store.replace_recovery_codes(&u, &second).await);
    assert!(
        !ok("take", store.take_recovery_code(&u, &first[4]).await),
        "old set"
    );
    assert!(ok("take", store.take_recovery_code(&u, &second[0]).await));
    ok("replace", store.replace_recovery_codes(&u, &[]).await);
    assert_eq!(ok("left", store.recovery_codes_left(&u).await), 0);
}

/// One user's factors do nothing for another.
pub async fn users_are_independent(store: &dyn FactorStore) {
    let (a, b) = (user(), user());
    let code = format!("{:064x}", 42);
    ok(
        "replace",
        store
            .replace_recovery_codes(&a, std::slice::from_ref(&code))
            .await,
    );
    assert!(!ok("take", store.take_recovery_code(&b, &code).await));
    ok("put_pending", store.put_pending_totp(&a, "s", t0()).await);
    assert!(!ok("confirm", store.confirm_totp(&b, "s", 1, t0()).await));
    assert!(ok("confirm", store.confirm_totp(&a, "s", 1, t0()).await));
    assert!(!ok("take", store.take_totp_step(&b, 5).await));
    ok("replace", store.replace_recovery_codes(&b, &[]).await);
    assert_eq!(ok("left", store.recovery_codes_left(&a).await), 1);
}

/// Two handles (two nodes) use the same step and the same recovery code at once: exactly one
/// of each pair wins.
pub async fn concurrent_uses_one_wins(a: &dyn FactorStore, b: &dyn FactorStore) {
    for round in 0..10 {
        let u = user();
        ok("put_pending", a.put_pending_totp(&u, "s", t0()).await);
        assert!(ok("confirm", a.confirm_totp(&u, "s", 1, t0()).await));
        let (x, y) = tokio::join!(a.take_totp_step(&u, 2), b.take_totp_step(&u, 2));
        let wins = [ok("take", x), ok("take", y)]
            .iter()
            .filter(|w| **w)
            .count();
        assert_eq!(wins, 1, "round {round}: a TOTP step taken {wins} times");
        let code = format!("{round:064x}");
        ok(
            "replace",
            a.replace_recovery_codes(&u, std::slice::from_ref(&code))
                .await,
        );
        let (x, y) = tokio::join!(
            a.take_recovery_code(&u, &code),
            b.take_recovery_code(&u, &code)
        );
        let wins = [ok("take", x), ok("take", y)]
            .iter()
            .filter(|w| **w)
            .count();
        assert_eq!(wins, 1, "round {round}: a recovery code used {wins} times");
    }
}
