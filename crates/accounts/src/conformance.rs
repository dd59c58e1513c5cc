//! The one test suite every [`UserStore`] backend passes.
//!
//! Each function checks one behaviour and panics with a message when the store misbehaves.
//! They only assume the store is migrated, and each uses fresh random e-mail addresses, so they
//! can run in any order, on a fresh store or on one shared by the others. [`run_all`] runs
//! every check.

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::{Email, User, UserStore, UserStoreError};

/// A fixed time with microseconds, the finest precision every backend keeps.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9)
        .single()
        .unwrap_or_default()
        + Duration::microseconds(123_456)
}

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn user(email: &Email, admin: bool, at: DateTime<Utc>) -> User {
    User {
        id: uuid::Uuid::new_v4().to_string(),
        email: email.as_str().to_owned(),
        is_admin: admin,
        created_at: at,
        password_changed_at: at,
        email_verified: false,
        disabled: false,
    }
}

fn email(text: &str) -> Email {
    Email::parse(text).unwrap_or_else(|e| panic!("test e-mail {text:?} rejected: {e}"))
}

/// Inserts an account and finds it again by e-mail and by id, with every field intact.
pub async fn insert_and_find(store: &dyn UserStore) {
    let e = email(&format!("find-{}@example.com", unique()));
    let u = user(&e, false, t0());
    store.insert(&u, "$argon2id$hash-1").await.expect("insert");

    let by_email = store
        .by_email(&e)
        .await
        .expect("by_email")
        .expect("found by e-mail");
    assert_eq!(by_email.user, u, "by_email returns the stored user");
    assert_eq!(by_email.password_hash, "$argon2id$hash-1");

    let by_id = store
        .by_id(&u.id)
        .await
        .expect("by_id")
        .expect("found by id");
    assert_eq!(by_id.user, u, "by_id returns the stored user");
    assert_eq!(by_id.password_hash, "$argon2id$hash-1");

    let admin_email = email(&format!("admin-{}@example.com", unique()));
    let admin = user(&admin_email, true, t0() + Duration::days(1));
    store
        .insert(&admin, "$argon2id$hash-2")
        .await
        .expect("insert admin");
    let found = store
        .by_id(&admin.id)
        .await
        .expect("by_id")
        .expect("admin found");
    assert!(found.user.is_admin, "is_admin survives the round trip");
    assert_eq!(found.user.created_at, admin.created_at);
}

/// Unknown e-mails and ids are `None`; updates of unknown ids report `false`.
pub async fn missing_rows(store: &dyn UserStore) {
    let e = email(&format!("nobody-{}@example.com", unique()));
    assert!(store.by_email(&e).await.expect("by_email").is_none());
    let id = uuid::Uuid::new_v4().to_string();
    assert!(store.by_id(&id).await.expect("by_id").is_none());
    assert!(store.by_id("").await.expect("by_id empty").is_none());
    assert!(store
        .by_id("'; DROP TABLE users; --")
        .await
        .expect("by_id injection")
        .is_none());
    assert!(!store
        .set_password_hash(&id, "$argon2id$x", t0())
        .await
        .expect("set_password_hash"));
    assert!(!store.set_admin(&id, true).await.expect("set_admin"));
    assert!(!store
        .set_email_verified(&id, true)
        .await
        .expect("set_email_verified"));
    assert!(!store.set_disabled(&id, true).await.expect("set_disabled"));
    assert!(!store.delete(&id).await.expect("delete"));
    let to = email(&format!("nobody-new-{}@example.com", unique()));
    assert!(!store
        .change_email(&id, &e, &to, true)
        .await
        .expect("change_email"));
}

/// A second account with the same e-mail, typed in another case, is refused with `EmailTaken`
/// (the [`Email`] type normalizes it first; the store's unique constraint does the rest).
pub async fn duplicate_email(store: &dyn UserStore) {
    let tag = unique();
    let first = email(&format!("Dup-{tag}@Example.com"));
    let u = user(&first, false, t0());
    store.insert(&u, "$argon2id$a").await.expect("first insert");

    let second = email(&format!("  DUP-{}@EXAMPLE.COM ", tag.to_uppercase()));
    assert_eq!(first, second, "Email normalizes case and whitespace");
    let other = user(&second, false, t0());
    match store.insert(&other, "$argon2id$b").await {
        Err(UserStoreError::EmailTaken) => {}
        other => panic!("duplicate e-mail must be EmailTaken, got {other:?}"),
    }
    // The first account is untouched and the second was not created.
    let found = store
        .by_email(&first)
        .await
        .expect("by_email")
        .expect("still there");
    assert_eq!(found.user.id, u.id);
    assert_eq!(found.password_hash, "$argon2id$a");
    assert!(store.by_id(&other.id).await.expect("by_id").is_none());
}

/// `set_password_hash` replaces the hash and `password_changed_at`, and nothing else.
pub async fn set_password_hash(store: &dyn UserStore) {
    let e = email(&format!("pw-{}@example.com", unique()));
    let u = user(&e, false, t0());
    store.insert(&u, "$argon2id$old").await.expect("insert");

    let later = t0() + Duration::hours(5) + Duration::microseconds(7);
    assert!(store
        .set_password_hash(&u.id, "$argon2id$new", later)
        .await
        .expect("set"));
    let found = store.by_id(&u.id).await.expect("by_id").expect("found");
    assert_eq!(found.password_hash, "$argon2id$new");
    assert_eq!(found.user.password_changed_at, later);
    assert_eq!(found.user.created_at, u.created_at, "created_at unchanged");
    assert_eq!(found.user.email, u.email);
    assert!(!found.user.is_admin);
}

/// `set_admin` grants and revokes, and nothing else changes.
pub async fn set_admin(store: &dyn UserStore) {
    let e = email(&format!("adm-{}@example.com", unique()));
    let u = user(&e, false, t0());
    store.insert(&u, "$argon2id$h").await.expect("insert");

    assert!(store.set_admin(&u.id, true).await.expect("grant"));
    let found = store.by_id(&u.id).await.expect("by_id").expect("found");
    assert!(found.user.is_admin);
    assert_eq!(found.password_hash, "$argon2id$h");
    assert_eq!(found.user.password_changed_at, u.password_changed_at);

    assert!(
        store.set_admin(&u.id, true).await.expect("grant again"),
        "idempotent grant still finds the row"
    );
    assert!(store.set_admin(&u.id, false).await.expect("revoke"));
    assert!(
        !store
            .by_id(&u.id)
            .await
            .expect("by_id")
            .expect("found")
            .user
            .is_admin
    );
}

/// `list` orders by e-mail (byte order of the normalized address) and pages with limit/offset.
pub async fn list_order(store: &dyn UserStore) {
    let tag = unique();
    // Inserted out of order. The whole address is compared byte-wise, so "b0@" sorts before
    // "b@" ('0' < '@' < 'a'): a locale-aware collation would get this wrong.
    let locals = ["m", "ba", "z", "a", "b0", "b"];
    let mut inserted = Vec::new();
    for (i, local) in locals.iter().enumerate() {
        let e = email(&format!("list-{tag}-{local}@example.com"));
        let u = user(&e, i % 2 == 0, t0() + Duration::minutes(i as i64));
        store.insert(&u, "$argon2id$h").await.expect("insert");
        inserted.push(u);
    }

    let all = store.list(100_000, 0).await.expect("list all");
    let emails: Vec<&str> = all.iter().map(|u| u.email.as_str()).collect();
    let mut sorted = emails.clone();
    sorted.sort_unstable();
    assert_eq!(emails, sorted, "list is ordered by e-mail");

    let ours: Vec<&User> = all
        .iter()
        .filter(|u| u.email.starts_with(&format!("list-{tag}-")))
        .collect();
    let ours_locals: Vec<String> = ours
        .iter()
        .map(|u| {
            u.email
                .trim_start_matches(&format!("list-{tag}-"))
                .trim_end_matches("@example.com")
                .to_owned()
        })
        .collect();
    assert_eq!(ours_locals, ["a", "b0", "b", "ba", "m", "z"]);
    for u in &ours {
        let original = inserted
            .iter()
            .find(|i| i.id == u.id)
            .expect("listed user was inserted");
        assert_eq!(*u, original, "list returns complete users");
    }

    // Paging walks the same order without gaps or repeats.
    let mut paged = Vec::new();
    let mut offset = 0u32;
    loop {
        let page = store.list(2, offset).await.expect("page");
        assert!(page.len() <= 2, "limit respected");
        if page.is_empty() {
            break;
        }
        offset += page.len() as u32;
        paged.extend(page);
        assert!(paged.len() <= all.len() + 2, "paging terminates");
    }
    assert_eq!(paged, all, "pages concatenate to the full list");
    assert!(store.list(0, 0).await.expect("limit 0").is_empty());
    assert!(store
        .list(10, u32::MAX)
        .await
        .expect("offset past end")
        .is_empty());
}

/// `email_verified` and `disabled` are stored as inserted and changed one at a time, and
/// nothing else changes with them.
pub async fn status_flags(store: &dyn UserStore) {
    let e = email(&format!("flags-{}@example.com", unique()));
    let u = user(&e, false, t0());
    store.insert(&u, "$argon2id$h").await.expect("insert");
    let read =
        |id: String| async move { store.by_id(&id).await.expect("by_id").expect("found").user };
    let found = read(u.id.clone()).await;
    assert!(
        !found.email_verified && !found.disabled,
        "new accounts: unverified, enabled"
    );

    assert!(store.set_email_verified(&u.id, true).await.expect("verify"));
    let found = read(u.id.clone()).await;
    assert!(found.email_verified);
    assert!(!found.disabled);
    assert!(store.set_disabled(&u.id, true).await.expect("disable"));
    let found = read(u.id.clone()).await;
    assert_eq!(
        found,
        User {
            email_verified: true,
            disabled: true,
            ..u.clone()
        },
        "only the two flags changed"
    );
    let by_email = store.by_email(&e).await.expect("by_email").expect("found");
    assert!(by_email.user.disabled, "by_email reads the flags too");
    assert_eq!(by_email.password_hash, "$argon2id$h");
    assert!(store.set_disabled(&u.id, false).await.expect("enable"));
    assert!(store
        .set_email_verified(&u.id, false)
        .await
        .expect("unverify"));
    assert_eq!(read(u.id.clone()).await, u);

    // Inserted with the flags set, they survive the round trip.
    let e2 = email(&format!("flags-set-{}@example.com", unique()));
    let v = User {
        email_verified: true,
        disabled: true,
        ..user(&e2, true, t0())
    };
    store.insert(&v, "$argon2id$h").await.expect("insert");
    assert_eq!(read(v.id.clone()).await, v);
}

/// `delete` removes the account (and frees its address); a second delete finds nothing.
pub async fn delete(store: &dyn UserStore) {
    let e = email(&format!("delete-{}@example.com", unique()));
    let u = user(&e, false, t0());
    let other = user(
        &email(&format!("keep-{}@example.com", unique())),
        false,
        t0(),
    );
    store.insert(&u, "$argon2id$h").await.expect("insert");
    store.insert(&other, "$argon2id$h").await.expect("insert");
    let before = store.count().await.expect("count");
    assert!(store.delete(&u.id).await.expect("delete"));
    assert!(store.by_id(&u.id).await.expect("by_id").is_none());
    assert!(store.by_email(&e).await.expect("by_email").is_none());
    assert!(
        !store.delete(&u.id).await.expect("delete again"),
        "already gone"
    );
    assert_eq!(store.count().await.expect("count"), before - 1);
    assert!(
        store.by_id(&other.id).await.expect("by_id").is_some(),
        "other accounts stay"
    );
    // The address can be registered again, by a new account.
    store
        .insert(&user(&e, false, t0()), "$argon2id$h")
        .await
        .expect("the address is free again");
}

/// `change_email` moves an account from its present address to a free one and sets the
/// verified flag; a stale `from` changes nothing; an address in use is `EmailTaken`.
pub async fn change_email(store: &dyn UserStore) {
    let tag = unique();
    let old = email(&format!("old-{tag}@example.com"));
    let new = email(&format!("new-{tag}@example.com"));
    let taken = email(&format!("taken-{tag}@example.com"));
    let u = user(&old, false, t0());
    let holder = user(&taken, false, t0());
    store.insert(&u, "$argon2id$h").await.expect("insert");
    store.insert(&holder, "$argon2id$h").await.expect("insert");

    match store.change_email(&u.id, &old, &taken, true).await {
        Err(UserStoreError::EmailTaken) => {}
        other => panic!("an address in use must be EmailTaken, got {other:?}"),
    }
    let found = store.by_id(&u.id).await.expect("by_id").expect("found");
    assert_eq!(found.user, u, "a refused change changes nothing");

    assert!(store
        .change_email(&u.id, &old, &new, true)
        .await
        .expect("change"));
    let found = store
        .by_email(&new)
        .await
        .expect("by_email")
        .expect("found");
    assert_eq!(
        found.user,
        User {
            email: new.as_str().to_owned(),
            email_verified: true,
            ..u.clone()
        }
    );
    assert_eq!(found.password_hash, "$argon2id$h");
    assert!(store.by_email(&old).await.expect("by_email").is_none());
    assert!(
        !store
            .change_email(&u.id, &old, &taken, true)
            .await
            .expect("stale change"),
        "a change from an address the account no longer has does nothing"
    );
    // The old address is free for someone else.
    store
        .insert(&user(&old, false, t0()), "$argon2id$h")
        .await
        .expect("old address free");
    // Back again, unverified this time.
    let back = email(&format!("back-{tag}@example.com"));
    assert!(store
        .change_email(&u.id, &new, &back, false)
        .await
        .expect("change"));
    assert!(
        !store
            .by_id(&u.id)
            .await
            .expect("by_id")
            .expect("found")
            .user
            .email_verified
    );
}

/// Two accounts racing for one free address: exactly one gets it, the other is `EmailTaken`.
pub async fn concurrent_email_change(store: &dyn UserStore) {
    for round in 0..5 {
        let tag = unique();
        let target = email(&format!("race-{tag}@example.com"));
        let mut racers = Vec::new();
        for i in 0..4 {
            let e = email(&format!("racer-{i}-{tag}@example.com"));
            let u = user(&e, false, t0());
            store.insert(&u, "$argon2id$h").await.expect("insert");
            racers.push((u, e));
        }
        let changes = racers
            .iter()
            .map(|(u, e)| store.change_email(&u.id, e, &target, true));
        let results = futures_util::future::join_all(changes).await;
        let mut won = 0;
        for result in results {
            match result {
                Ok(true) => won += 1,
                Err(UserStoreError::EmailTaken) => {}
                other => panic!("round {round}: unexpected {other:?}"),
            }
        }
        assert_eq!(
            won, 1,
            "round {round}: exactly one account gets the address"
        );
        let holder = store
            .by_email(&target)
            .await
            .expect("by_email")
            .expect("someone has it");
        assert!(racers.iter().any(|(u, _)| u.id == holder.user.id));
    }
}

/// `list_after` pages through every account in byte order of the id, without gaps or
/// repeats, from any starting id.
pub async fn list_by_id(store: &dyn UserStore) {
    let tag = unique();
    for i in 0..7 {
        let e = email(&format!("byid-{tag}-{i}@example.com"));
        store
            .insert(&user(&e, i % 3 == 0, t0()), "$argon2id$h")
            .await
            .expect("insert");
    }
    let all = store.list_after(None, 100_000).await.expect("list all");
    assert_eq!(all.len() as u64, store.count().await.expect("count"));
    let ids: Vec<&str> = all.iter().map(|u| u.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "ordered by id, byte-wise");
    for u in &all {
        let found = store.by_id(&u.id).await.expect("by_id").expect("found");
        assert_eq!(*u, found.user, "listed users are complete");
    }

    let mut paged: Vec<User> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_after(after.as_deref(), 3).await.expect("page");
        assert!(page.len() <= 3, "limit respected");
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        paged.extend(page);
        assert!(paged.len() <= all.len(), "paging terminates");
    }
    assert_eq!(paged, all, "pages concatenate to the full list");
    assert!(store.list_after(None, 0).await.expect("limit 0").is_empty());
    let last = all.last().expect("not empty").id.clone();
    assert!(store
        .list_after(Some(&last), 10)
        .await
        .expect("after the last")
        .is_empty());
    // An id that is no account's still marks a place in the order.
    let from_middle = store
        .list_after(Some(&all[2].id[..4]), 100_000)
        .await
        .expect("from a prefix");
    assert!(from_middle.iter().all(|u| u.id.as_str() > &all[2].id[..4]));
    assert!(store
        .list_after(Some("~"), 10)
        .await
        .expect("after everything")
        .is_empty());
}

/// `count` follows inserts (and is not fooled by a refused duplicate).
pub async fn count(store: &dyn UserStore) {
    let before = store.count().await.expect("count");
    let tag = unique();
    for i in 0..3 {
        let e = email(&format!("count-{tag}-{i}@example.com"));
        store
            .insert(&user(&e, false, t0()), "$argon2id$h")
            .await
            .expect("insert");
    }
    let dup = email(&format!("count-{tag}-0@example.com"));
    assert!(matches!(
        store.insert(&user(&dup, false, t0()), "$argon2id$h").await,
        Err(UserStoreError::EmailTaken)
    ));
    let after = store.count().await.expect("count");
    assert_eq!(after, before + 3);
}

/// An empty store counts zero and lists nothing. Only meaningful on a fresh store, so
/// [`run_all`] runs it first.
pub async fn empty(store: &dyn UserStore) {
    assert_eq!(store.count().await.expect("count"), 0);
    assert!(store.list(10, 0).await.expect("list").is_empty());
    assert!(store
        .list_after(None, 10)
        .await
        .expect("list_after")
        .is_empty());
}

/// The store answers a ping.
pub async fn ping(store: &dyn UserStore) {
    store.ping().await.expect("ping");
}

/// The e-mail of an account is replaced; an e-mail another account has is refused.
pub async fn set_email(store: &dyn UserStore) {
    let first = user(
        &email(&format!("first-{}@example.com", unique())),
        false,
        t0(),
    );
    let second = user(
        &email(&format!("second-{}@example.com", unique())),
        false,
        t0(),
    );
    store.insert(&first, "$argon2id$a").await.expect("insert");
    store.insert(&second, "$argon2id$b").await.expect("insert");
    let renamed = email(&format!("renamed-{}@example.com", unique()));
    assert!(store
        .set_email(&first.id, &renamed)
        .await
        .expect("set_email"));
    let found = store.by_email(&renamed).await.expect("by_email");
    assert_eq!(found.map(|r| r.user.id), Some(first.id.clone()));
    assert!(matches!(
        store.set_email(&second.id, &renamed).await,
        Err(UserStoreError::EmailTaken)
    ));
    assert!(!store
        .set_email(
            &unique(),
            &email(&format!("nobody-{}@example.com", unique()))
        )
        .await
        .expect("set_email of a missing account"));
}

/// Finding 7 of issue 13: rows stored before e-mails were normalized with IDNA and NFC are
/// rewritten to the normal form when that is safe, and reported (not merged) when two accounts
/// would get the same address.
pub async fn finding_07_stored_lookalike_emails_are_rewritten_or_reported(store: &dyn UserStore) {
    let u = unique();
    // Written as an older version stored them, not through Email::parse.
    let stored = |text: String| User {
        email: text,
        ..user(&email("placeholder@example.com"), false, t0())
    };
    let punycode = stored(format!("bob-{u}@xn--exmple-cua.com"));
    let upper = stored(format!("Dave-{u}@EXAMPLE.com"));
    let decomposed = stored(format!("e\u{301}ve-{u}@example.com"));
    let twin_old = stored(format!("carol-{u}@xn--exmple-cua.com"));
    let twin_new = stored(format!("carol-{u}@exämple.com"));
    // Full-width letters map (UTS #46) onto an address another account already has.
    let wide = stored(format!(
        "frank-{u}@\u{ff25}\u{ff38}\u{ff21}\u{ff2d}\u{ff30}\u{ff2c}\u{ff25}.com"
    ));
    let plain = stored(format!("frank-{u}@example.com"));
    let broken = stored(format!("not-an-address-{u}"));
    for row in [
        &punycode,
        &upper,
        &decomposed,
        &twin_old,
        &twin_new,
        &wide,
        &plain,
        &broken,
    ] {
        store.insert(row, "$argon2id$old").await.expect("insert");
    }
    let report = crate::normalize_stored_emails(store)
        .await
        .expect("normalize stored e-mails");
    for row in [&punycode, &upper, &decomposed] {
        assert!(
            report.rewritten.contains(&row.id),
            "{} rewritten",
            row.email
        );
        let normal = email(&row.email);
        let found = store.by_email(&normal).await.expect("by_email");
        assert_eq!(
            found.map(|r| r.user.id),
            Some(row.id.clone()),
            "{} found as {normal}",
            row.email
        );
    }
    assert_eq!(
        email(&punycode.email).as_str(),
        format!("bob-{u}@exämple.com")
    );
    assert_eq!(
        email(&decomposed.email).as_str(),
        format!("\u{e9}ve-{u}@example.com")
    );
    for pair in [[&twin_old, &twin_new], [&plain, &wide]] {
        let mut twins = vec![pair[0].id.clone(), pair[1].id.clone()];
        twins.sort();
        assert!(
            report.collisions.iter().any(|group| {
                let mut group = group.clone();
                group.sort();
                group == twins
            }),
            "the look-alike pair {} is reported: {:?}",
            pair[1].email,
            report.collisions
        );
    }
    for twin in [&twin_old, &twin_new, &wide, &plain] {
        let row = store.by_id(&twin.id).await.expect("by_id").expect("kept");
        assert_eq!(
            row.user.email, twin.email,
            "a colliding row is left as it is"
        );
    }
    assert!(report.invalid.contains(&broken.id));
    assert!(!report.is_clean());

    // A second run finds the rewritten rows done.
    let again = crate::normalize_stored_emails(store)
        .await
        .expect("normalize again");
    for row in [&punycode, &upper, &decomposed] {
        assert!(!again.rewritten.contains(&row.id));
    }
}

/// Every check, on one fresh (migrated, empty) store.
pub async fn run_all(store: &dyn UserStore) {
    empty(store).await;
    run_all_on_populated(store).await;
}

/// Every check but [`empty`], on a migrated store that may hold accounts already.
pub async fn run_all_on_populated(store: &dyn UserStore) {
    ping(store).await;
    insert_and_find(store).await;
    missing_rows(store).await;
    duplicate_email(store).await;
    set_password_hash(store).await;
    set_admin(store).await;
    list_order(store).await;
    count(store).await;
    status_flags(store).await;
    delete(store).await;
    change_email(store).await;
    concurrent_email_change(store).await;
    list_by_id(store).await;
    set_email(store).await;
    finding_07_stored_lookalike_emails_are_rewritten_or_reported(store).await;
}

/// Every check, each on a fresh store that `fresh` makes (an empty database of its own), so
/// one check's rows cannot hide another's mistake; then [`run_all`] on one more fresh store.
pub async fn each_on_fresh<S, F, Fut>(mut fresh: F)
where
    S: UserStore,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = S>,
{
    empty(&fresh().await).await;
    ping(&fresh().await).await;
    insert_and_find(&fresh().await).await;
    missing_rows(&fresh().await).await;
    duplicate_email(&fresh().await).await;
    set_password_hash(&fresh().await).await;
    set_admin(&fresh().await).await;
    list_order(&fresh().await).await;
    count(&fresh().await).await;
    status_flags(&fresh().await).await;
    delete(&fresh().await).await;
    change_email(&fresh().await).await;
    concurrent_email_change(&fresh().await).await;
    list_by_id(&fresh().await).await;
    set_email(&fresh().await).await;
    finding_07_stored_lookalike_emails_are_rewritten_or_reported(&fresh().await).await;
    run_all(&fresh().await).await;
}

/// Stores a plain account with `email` (unverified, enabled, not an admin) and returns its id:
/// the owner other stores' suites (passkeys, factors) need.
pub async fn new_account(store: &dyn UserStore, email: &str) -> String {
    let u = user(&self::email(email), false, Utc::now());
    store.insert(&u, "$argon2id$unused").await.expect("insert");
    u.id
}
