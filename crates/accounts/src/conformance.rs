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
    ping(store).await;
    insert_and_find(store).await;
    missing_rows(store).await;
    duplicate_email(store).await;
    set_password_hash(store).await;
    set_admin(store).await;
    list_order(store).await;
    count(store).await;
    set_email(store).await;
    finding_07_stored_lookalike_emails_are_rewritten_or_reported(store).await;
}
