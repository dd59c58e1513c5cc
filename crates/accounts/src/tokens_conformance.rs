//! The one test suite every [`MailTokenStore`] backend passes.
//!
//! Each function checks one behaviour with an injected `now` and panics with a message when the
//! store misbehaves. Each uses fresh random tokens, so they can run in any order on one store or
//! on a store shared with other checks. [`run_all`] runs every check.

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures_util::future::join_all;

use crate::tokens::{MailToken, MailTokenRecord, MailTokenStore, TokenHash, TokenPurpose};

/// A fixed time with milliseconds, the precision every backend keeps.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9)
        .single()
        .unwrap_or_default()
        + Duration::milliseconds(123)
}

/// A record of `purpose` for a fresh user, expiring an hour after [`t0`].
pub fn record(purpose: TokenPurpose) -> MailTokenRecord {
    MailTokenRecord {
        purpose,
        user_id: uuid::Uuid::new_v4().to_string(),
        expires_at: t0() + Duration::hours(1),
        binding: format!("{:0>64}", uuid::Uuid::new_v4().simple()),
        payload: (purpose == TokenPurpose::ChangeEmail)
            .then(|| format!("new-{}@example.com", uuid::Uuid::new_v4().simple())),
    }
}

async fn insert(store: &dyn MailTokenStore, record: &MailTokenRecord) -> TokenHash {
    let hash = MailToken::generate().hash();
    store
        .insert(&hash, record, t0())
        .await
        .unwrap_or_else(|e| panic!("insert failed: {e}"));
    hash
}

async fn find(
    store: &dyn MailTokenStore,
    hash: &TokenHash,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> Option<MailTokenRecord> {
    lookup(store, hash, purpose, now, false).await
}

async fn take(
    store: &dyn MailTokenStore,
    hash: &TokenHash,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> Option<MailTokenRecord> {
    lookup(store, hash, purpose, now, true).await
}

async fn lookup(
    store: &dyn MailTokenStore,
    hash: &TokenHash,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
    spend: bool,
) -> Option<MailTokenRecord> {
    let result = if spend {
        store.take(hash, purpose, now).await
    } else {
        store.find(hash, purpose, now).await
    };
    result.unwrap_or_else(|e| panic!("{} failed: {e}", if spend { "take" } else { "find" }))
}

/// A stored token is found with every field intact (any number of times), then taken once;
/// afterwards it is gone for both.
pub async fn insert_find_take_once(store: &dyn MailTokenStore) {
    for purpose in TokenPurpose::ALL {
        let rec = record(purpose);
        let hash = insert(store, &rec).await;
        assert_eq!(
            find(store, &hash, purpose, t0()).await,
            Some(rec.clone()),
            "{purpose:?}: found"
        );
        assert_eq!(
            find(store, &hash, purpose, t0()).await,
            Some(rec.clone()),
            "{purpose:?}: finding does not spend"
        );
        assert_eq!(
            take(store, &hash, purpose, t0()).await,
            Some(rec),
            "{purpose:?}: taken"
        );
        assert_eq!(
            take(store, &hash, purpose, t0()).await,
            None,
            "{purpose:?}: single use"
        );
        assert_eq!(
            find(store, &hash, purpose, t0()).await,
            None,
            "{purpose:?}: gone"
        );
    }
}

/// A token nobody stored is neither found nor taken.
pub async fn unknown_token(store: &dyn MailTokenStore) {
    let hash = MailToken::generate().hash();
    for purpose in TokenPurpose::ALL {
        assert_eq!(find(store, &hash, purpose, t0()).await, None);
        assert_eq!(take(store, &hash, purpose, t0()).await, None);
    }
}

/// A token offered for another purpose (a verification token on the reset form) is refused
/// and not spent: it still works for its own purpose.
pub async fn wrong_purpose_is_refused_and_not_spent(store: &dyn MailTokenStore) {
    for purpose in TokenPurpose::ALL {
        let rec = record(purpose);
        let hash = insert(store, &rec).await;
        for other in TokenPurpose::ALL.into_iter().filter(|p| *p != purpose) {
            assert_eq!(
                find(store, &hash, other, t0()).await,
                None,
                "{purpose:?} as {other:?}"
            );
            assert_eq!(
                take(store, &hash, other, t0()).await,
                None,
                "{purpose:?} as {other:?}"
            );
        }
        assert_eq!(
            take(store, &hash, purpose, t0()).await,
            Some(rec),
            "{purpose:?} still works after being offered for other purposes"
        );
    }
}

/// A token works until 1 ms before its expiry and never from the expiry on, by the caller's
/// clock.
pub async fn expiry_by_the_callers_clock(store: &dyn MailTokenStore) {
    let rec = record(TokenPurpose::ResetPassword);
    let end = rec.expires_at;
    let hash = insert(store, &rec).await;
    let last_ms = end - Duration::milliseconds(1);
    assert!(
        find(store, &hash, rec.purpose, last_ms).await.is_some(),
        "live 1 ms before"
    );
    assert_eq!(
        find(store, &hash, rec.purpose, end).await,
        None,
        "dead at the expiry"
    );
    assert_eq!(
        take(store, &hash, rec.purpose, end).await,
        None,
        "not taken at the expiry"
    );
    assert_eq!(
        take(store, &hash, rec.purpose, end + Duration::days(3)).await,
        None,
        "not taken later"
    );

    let rec = record(TokenPurpose::VerifyEmail);
    let hash = insert(store, &rec).await;
    assert_eq!(
        take(store, &hash, rec.purpose, last_ms).await,
        Some(rec),
        "taken 1 ms before the expiry"
    );

    // Stored already expired: never redeemable.
    let mut dead = record(TokenPurpose::ChangeEmail);
    dead.expires_at = t0() - Duration::seconds(1);
    let hash = insert(store, &dead).await;
    assert_eq!(find(store, &hash, dead.purpose, t0()).await, None);
    assert_eq!(take(store, &hash, dead.purpose, t0()).await, None);
}

/// Tokens are independent: taking one leaves the others of the same user and purpose.
pub async fn tokens_are_independent(store: &dyn MailTokenStore) {
    let first = record(TokenPurpose::ResetPassword);
    let second = MailTokenRecord {
        binding: "another binding".into(),
        ..first.clone()
    };
    let a = insert(store, &first).await;
    let b = insert(store, &second).await;
    assert_eq!(take(store, &a, first.purpose, t0()).await, Some(first));
    assert_eq!(take(store, &b, second.purpose, t0()).await, Some(second));
}

/// Many takes of one token at once, through two store handles (two nodes): exactly one gets
/// the record. Repeated over several tokens.
pub async fn concurrent_takes_one_wins(a: &dyn MailTokenStore, b: &dyn MailTokenStore) {
    for round in 0..5 {
        let rec = record(TokenPurpose::ResetPassword);
        let hash = insert(a, &rec).await;
        let takes = (0..32).map(|i| {
            let store = if i % 2 == 0 { a } else { b };
            store.take(&hash, rec.purpose, t0())
        });
        let results = join_all(takes).await;
        let mut winners = 0;
        for result in results {
            match result {
                Ok(Some(got)) => {
                    assert_eq!(got, rec, "round {round}: the winner gets the record");
                    winners += 1;
                }
                Ok(None) => {}
                Err(e) => panic!("round {round}: concurrent take failed: {e}"),
            }
        }
        assert_eq!(winners, 1, "round {round}: exactly one take wins");
        assert_eq!(find(b, &hash, rec.purpose, t0()).await, None);
    }
}

/// Every check, on one store (used as both handles of the concurrency check).
pub async fn run_all(store: &dyn MailTokenStore) {
    insert_find_take_once(store).await;
    unknown_token(store).await;
    wrong_purpose_is_refused_and_not_spent(store).await;
    expiry_by_the_callers_clock(store).await;
    tokens_are_independent(store).await;
    concurrent_takes_one_wins(store, store).await;
}
