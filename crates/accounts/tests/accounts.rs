//! The accounts service end to end: SQLite users, real sessions, real key ring, OWASP argon2.

mod common;

use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, SubsecRound};
use common::{
    client, fixture, fixture_with, start_time, GOOD_PASSWORD, OLD_HASH_PREFIX, OLD_PARAMS,
    OTHER_PASSWORD, OWASP_HASH_PREFIX,
};
use ringfence_accounts::{AccountError, Accounts, Email, PasswordRejection, User};

#[tokio::test]
async fn register_then_authenticate() {
    let f = fixture().await;
    let user = f.register("  Alice@Example.COM ").await;
    assert_eq!(user.email, "alice@example.com");
    assert!(!user.is_admin);
    assert_eq!(user.id.len(), 36);
    assert_eq!(
        uuid::Uuid::parse_str(&user.id).unwrap().get_version_num(),
        4
    );
    assert_eq!(user.created_at, start_time().trunc_subsecs(6));
    assert_eq!(user.password_changed_at, user.created_at);

    // What register returned is exactly what is stored.
    assert_eq!(f.accounts.user(&user.id).await.unwrap(), Some(user.clone()));

    let signed_in = f.sign_in("ALICE@example.com", GOOD_PASSWORD).await;
    assert_eq!(signed_in, user);

    // The stored hash is argon2id at the OWASP parameters, never the password.
    let record = f.users.by_id(&user.id).await.unwrap().unwrap();
    assert!(record.password_hash.starts_with(OWASP_HASH_PREFIX));
    assert!(!record.password_hash.contains(GOOD_PASSWORD));
}

#[tokio::test]
async fn sign_in_failures_are_indistinguishable() {
    let f = fixture().await;
    f.register("alice@example.com").await;

    let wrong = f.sign_in_refused("alice@example.com", OTHER_PASSWORD).await;
    let unknown = f.sign_in_refused("nobody@example.com", GOOD_PASSWORD).await;
    let malformed = f.sign_in_refused("not an e-mail", GOOD_PASSWORD).await;
    let empty = f.sign_in_refused("alice@example.com", "").await;
    for err in [&wrong, &unknown, &malformed, &empty] {
        assert_matches!(err, AccountError::InvalidCredentials);
        assert_eq!(err.to_string(), wrong.to_string());
        assert_eq!(err.code(), "invalid_credentials");
        assert!(!err.to_string().contains("alice"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_email_costs_a_hash_like_a_wrong_password() {
    let f = fixture().await;
    f.register("alice@example.com").await;
    f.accounts.hasher().warm_up().await.unwrap();

    // Minimums over a few runs shrug off scheduling noise from other builds on the machine.
    async fn fastest(accounts: &Accounts, email: &str) -> StdDuration {
        let mut best = StdDuration::MAX;
        for _ in 0..5 {
            let started = Instant::now();
            let err = accounts
                .authenticate(email, OTHER_PASSWORD)
                .await
                .unwrap_err();
            assert!(matches!(err, AccountError::InvalidCredentials));
            best = best.min(started.elapsed());
        }
        best
    }
    let wrong = fastest(&f.accounts, "alice@example.com").await;
    let unknown = fastest(&f.accounts, "nobody@example.com").await;
    // Without the dummy verification an unknown e-mail answers in well under a millisecond.
    assert!(
        unknown * 3 >= wrong,
        "unknown e-mail took {unknown:?}, wrong password {wrong:?}"
    );
}

#[tokio::test]
async fn registration_errors() {
    let f = fixture().await;
    f.register("alice@example.com").await;

    let taken = f
        .register_refused("ALICE@Example.com", OTHER_PASSWORD)
        .await;
    assert_matches!(taken, AccountError::EmailTaken);
    assert_eq!(taken.code(), "email_taken");

    let bad_email = f.register_refused("alice@localhost", GOOD_PASSWORD).await;
    assert_matches!(bad_email, AccountError::InvalidEmail(_));

    for (password, rejection) in [
        ("short", PasswordRejection::TooShort { min: 12 }),
        ("password1234", PasswordRejection::Common),
        ("bob.builder-rocks", PasswordRejection::ContainsEmail),
    ] {
        let err = f
            .register_refused("bob.builder@example.com", password)
            .await;
        match err {
            AccountError::WeakPassword(r) => assert_eq!(r, rejection, "{password}"),
            other => panic!("{password}: {other:?}"),
        }
    }
    assert_eq!(
        f.accounts.count().await.unwrap(),
        1,
        "nothing stored for refused registrations"
    );
}

#[tokio::test]
async fn change_password_signs_out_other_sessions() {
    let f = fixture().await;
    let alice = f.register("alice@example.com").await;
    let bob = f.register("bob@example.com").await;

    let current = f.start_session(&alice.id).await;
    let laptop = f.start_session(&alice.id).await;
    let phone = f.start_session(&alice.id).await;
    let bobs = f.start_session(&bob.id).await;

    f.clock.advance(Duration::minutes(5));
    let ended = f
        .accounts
        .change_password(&alice.id, GOOD_PASSWORD, OTHER_PASSWORD, &current.id, None)
        .await
        .unwrap();
    assert_eq!(ended, 2);

    let left: Vec<_> = f
        .sessions
        .list(&alice.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, vec![current.id.clone()]);
    assert!(!left.contains(&laptop.id) && !left.contains(&phone.id));
    assert_eq!(
        f.sessions.list(&bob.id).await.unwrap().len(),
        1,
        "other users untouched"
    );
    assert_eq!(f.sessions.list(&bob.id).await.unwrap()[0].id, bobs.id);

    let old = f.sign_in_refused("alice@example.com", GOOD_PASSWORD).await;
    assert!(matches!(old, AccountError::InvalidCredentials));
    let user = f.sign_in("alice@example.com", OTHER_PASSWORD).await;
    assert_eq!(
        user.password_changed_at,
        (start_time() + Duration::minutes(5)).trunc_subsecs(6)
    );
    assert_eq!(user.created_at, alice.created_at);
    // Bob's password is untouched.
    f.sign_in("bob@example.com", GOOD_PASSWORD).await;
}

#[tokio::test]
async fn change_password_refusals_change_nothing() {
    let f = fixture().await;
    let alice = f.register("alice@example.com").await;
    let current = f.start_session(&alice.id).await;
    f.sessions.start(&alice.id, &client()).await.unwrap();

    let wrong = f
        .accounts
        .change_password(
            &alice.id,
            OTHER_PASSWORD,
            "a brand new passphrase",
            &current.id,
            None,
        )
        .await
        .unwrap_err();
    assert_matches!(wrong, AccountError::CurrentPasswordIncorrect);

    let weak = f
        .accounts
        .change_password(&alice.id, GOOD_PASSWORD, "qwertyuiop123", &current.id, None)
        .await
        .unwrap_err();
    assert_matches!(weak, AccountError::WeakPassword(PasswordRejection::Common));

    let missing = f
        .accounts
        .change_password(
            &uuid::Uuid::new_v4().to_string(),
            GOOD_PASSWORD,
            OTHER_PASSWORD,
            &current.id,
            None,
        )
        .await
        .unwrap_err();
    assert_matches!(missing, AccountError::UserNotFound);

    assert_eq!(
        f.sessions.list(&alice.id).await.unwrap().len(),
        2,
        "no session ended"
    );
    f.sign_in("alice@example.com", GOOD_PASSWORD).await;
}

#[tokio::test]
async fn an_aspnet_identity_hash_signs_in_once_and_becomes_argon2id() {
    let f = fixture().await;
    let at = start_time();
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        email: "imported@example.com".to_owned(),
        is_admin: false,
        created_at: at,
        password_changed_at: at,
        email_verified: true,
        disabled: false,
    };
    // ASP.NET Core Identity version 3 (HMAC-SHA256, 10,000 iterations) of "my password".
    let stored = ringfence_accounts::aspnet_identity::import_hash(
        "AQAAAAEAACcQAAAAEAABAgMEBQYHCAkKCwwNDg+yWU7rLgUwPZb1Itsmra7cbxw2EFpwpVFIEtP+JIuUEw==",
    )
    .unwrap();
    f.users.insert(&user, &stored).await.unwrap();

    // A wrong password neither signs in nor touches the stored hash.
    let wrong = f
        .sign_in_refused("imported@example.com", "My password")
        .await;
    assert!(
        matches!(wrong, AccountError::InvalidCredentials),
        "{wrong:?}"
    );
    assert_eq!(f.password_hash(&user.id).await, stored);

    let signed_in = f.sign_in("imported@example.com", "my password").await;
    assert_eq!(signed_in.id, user.id);
    let after = f.users.by_id(&user.id).await.unwrap().unwrap();
    assert!(
        after.password_hash.starts_with(OWASP_HASH_PREFIX),
        "{}",
        after.password_hash
    );
    assert_eq!(
        after.user.password_changed_at, at,
        "a rehash is not a password change"
    );
    // The same password against the new hash.
    f.sign_in("imported@example.com", "my password").await;
}

#[tokio::test]
async fn old_parameters_are_upgraded_on_sign_in() {
    let f = fixture_with(OLD_PARAMS).await;
    let alice = f.register("alice@example.com").await;
    let before = f.users.by_id(&alice.id).await.unwrap().unwrap();
    assert!(before.password_hash.starts_with(OLD_HASH_PREFIX));

    // The same store behind a service with the current parameters.
    let upgraded = f.with_owasp_hasher();
    f.clock.advance(Duration::days(30));
    upgraded
        .authenticate("alice@example.com", GOOD_PASSWORD)
        .await
        .unwrap();
    let after = f.users.by_id(&alice.id).await.unwrap().unwrap();
    assert!(
        after.password_hash.starts_with(OWASP_HASH_PREFIX),
        "{}",
        after.password_hash
    );
    assert_eq!(
        after.user.password_changed_at, before.user.password_changed_at,
        "a rehash is not a password change"
    );
    // Still the same password, now verified against the new hash.
    upgraded
        .authenticate("alice@example.com", GOOD_PASSWORD)
        .await
        .unwrap();
    // A wrong password does not trigger an upgrade (nothing to hash it with).
    let hash = after.password_hash.clone();
    upgraded
        .authenticate("alice@example.com", OTHER_PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(f.password_hash(&alice.id).await, hash);
}

#[tokio::test]
async fn corrupt_stored_hash_is_invalid_credentials() {
    let f = fixture().await;
    let now = start_time().trunc_subsecs(6);
    for (i, hash) in [
        "",
        "garbage",
        "$argon2id$v=19$m=19456,t=2,p=1$bad$bad",
        "$2b$12$abcdefghijklmnopqrstuu",
    ]
    .iter()
    .enumerate()
    {
        let user = User {
            id: uuid::Uuid::new_v4().to_string(),
            email: format!("broken{i}@example.com"),
            is_admin: false,
            created_at: now,
            password_changed_at: now,
            email_verified: false,
            disabled: false,
        };
        f.users.insert(&user, hash).await.unwrap();
        let err = f.sign_in_refused(&user.email, GOOD_PASSWORD).await;
        assert!(
            matches!(err, AccountError::InvalidCredentials),
            "{hash:?}: {err:?}"
        );
        let session = f.start_session(&user.id).await;
        let err = f
            .accounts
            .change_password(&user.id, GOOD_PASSWORD, OTHER_PASSWORD, &session.id, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, AccountError::CurrentPasswordIncorrect),
            "{hash:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn admin_operations() {
    let f = fixture().await;
    let root = f
        .accounts
        .add_user("Root@Example.com", GOOD_PASSWORD, true)
        .await
        .unwrap();
    assert!(root.is_admin);
    assert_eq!(root.email, "root@example.com");
    let err = f
        .accounts
        .add_user("carol@example.com", "short", false)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        AccountError::WeakPassword(PasswordRejection::TooShort { .. })
    ));
    let carol = f
        .accounts
        .add_user("carol@example.com", OTHER_PASSWORD, false)
        .await
        .unwrap();
    let bob = f.register("bob@example.com").await;

    assert_eq!(f.accounts.count().await.unwrap(), 3);
    let emails: Vec<String> = f
        .accounts
        .list(10, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.email)
        .collect();
    assert_eq!(
        emails,
        ["bob@example.com", "carol@example.com", "root@example.com"]
    );
    assert_eq!(f.accounts.list(1, 1).await.unwrap()[0].id, carol.id);

    f.accounts.set_admin(&bob.id, true).await.unwrap();
    assert!(f.accounts.user(&bob.id).await.unwrap().unwrap().is_admin);
    assert!(matches!(
        f.accounts.set_admin("no-such-id", true).await,
        Err(AccountError::UserNotFound)
    ));
    assert_eq!(
        f.accounts
            .user_by_email(" BOB@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        bob.id
    );
    assert!(f
        .accounts
        .user_by_email("nobody@example.com")
        .await
        .unwrap()
        .is_none());
    assert!(f.accounts.user_by_email("garbage").await.unwrap().is_none());
    assert!(f.accounts.user("no-such-id").await.unwrap().is_none());
    f.accounts.ping().await.unwrap();
    assert_eq!(Email::parse(&root.email).unwrap().as_str(), root.email);
}

#[tokio::test]
async fn store_outage_is_a_store_error() {
    let f = fixture().await;
    f.register("alice@example.com").await;
    f.db.close().await;
    for err in [
        f.sign_in_refused("alice@example.com", GOOD_PASSWORD).await,
        f.register_refused("bob@example.com", GOOD_PASSWORD).await,
        f.accounts.count().await.unwrap_err(),
        f.accounts.ping().await.unwrap_err(),
    ] {
        assert_matches!(err, AccountError::Store(_));
        assert_eq!(err.code(), "store_unavailable");
        assert!(!err.is_client_error());
    }
}

/// Whether the account behind `session` is an admin, as signed-in requests see it.
async fn admin(accounts: &Accounts, session: &ringfence_sessions::Session) -> bool {
    let user = accounts.session_user(session).await.unwrap();
    user.expect("the account exists").is_admin
}

#[tokio::test]
async fn session_user_reuses_a_fresh_copy_but_never_one_older_than_the_session() {
    let f = fixture().await;
    let bob = f.register("bob@example.com").await;
    let first = f.start_session(&bob.id).await;
    // In a session's first second (the clock-skew allowance) every request reads the store.
    f.clock.advance(Duration::milliseconds(500));
    assert!(!admin(&f.accounts, &first).await);
    assert!(f.users.set_admin(&bob.id, true).await.unwrap());
    assert!(admin(&f.accounts, &first).await, "not cached yet");
    assert!(f.users.set_admin(&bob.id, false).await.unwrap());
    f.clock.advance(Duration::milliseconds(505));
    assert!(!admin(&f.accounts, &first).await);

    // Another node (here: the store directly) grants admin rights: this node's copy is reused
    // until its second is up.
    assert!(f.users.set_admin(&bob.id, true).await.unwrap());
    f.clock.advance(Duration::milliseconds(500));
    assert!(!admin(&f.accounts, &first).await);
    f.clock.advance(Duration::milliseconds(500));
    assert!(admin(&f.accounts, &first).await);

    // A privilege change as `users set-admin` makes it: stored, then every session ended. The
    // next session begins after the change, so this node's copy (read a moment ago, admin)
    // is too old for it, however young.
    assert!(f.users.set_admin(&bob.id, false).await.unwrap());
    f.sessions.end_all(&bob.id).await.unwrap();
    f.clock.advance(Duration::milliseconds(1));
    let second = f.start_session(&bob.id).await;
    assert!(!admin(&f.accounts, &second).await);
    f.clock.advance(Duration::seconds(2));
    assert!(!admin(&f.accounts, &second).await);

    // Changes made through this node's service are seen at once.
    f.accounts.set_admin(&bob.id, true).await.unwrap();
    assert!(admin(&f.accounts, &second).await);

    // With the cache off every call reads the store; an unknown account is no user.
    let uncached = f.accounts.clone().with_user_cache_ttl(Duration::zero());
    assert!(f.users.set_admin(&bob.id, false).await.unwrap());
    assert!(!admin(&uncached, &second).await);
    let mut stranger = second.clone();
    stranger.user_id = "no-such-user".to_owned();
    assert!(f.accounts.session_user(&stranger).await.unwrap().is_none());
}
