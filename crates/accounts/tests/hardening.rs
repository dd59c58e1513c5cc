//! Findings 3, 5, 6, 7 and 10 of the outside review (issue 13), on the accounts service over a
//! real SQLite file with OWASP argon2 and a manual clock. Each test fails on the code before the
//! fix.

mod common;

use chrono::Duration;
use common::{fixture, Fixture, GOOD_PASSWORD, OTHER_PASSWORD};
use ringfence_accounts::{AccountError, Accounts, Email, PasswordPolicy, PasswordRejection};

const ALICE: &str = "alice@example.com";
const ATTACKER: Option<&str> = Some("198.51.100.66");
const OWNER: Option<&str> = Some("203.0.113.5");

fn is_throttled<T: std::fmt::Debug>(result: &Result<T, AccountError>) -> bool {
    matches!(result, Err(AccountError::Throttled { .. }))
}

/// Fails to sign in as `email` from `ip` as fast as the throttle allows, `n` times, moving the
/// clock past every lock.
async fn guess(f: &Fixture, accounts: &Accounts, email: &str, ip: Option<&str>, n: usize) {
    let mut done = 0;
    while done < n {
        match accounts.authenticate_from(email, OTHER_PASSWORD, ip).await {
            Err(AccountError::InvalidCredentials) => done += 1,
            Err(AccountError::Throttled { retry_after }) => f.clock.advance(retry_after),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn finding_03_wrong_current_passwords_are_throttled_like_sign_in() {
    let f = fixture().await;
    let alice = f.register(ALICE).await;
    let accounts = f.throttled().await;
    let session = f.start_session(&alice.id).await;
    let change = |current: &'static str| {
        let accounts = accounts.clone();
        let id = alice.id.clone();
        let keep = session.id.clone();
        async move {
            accounts
                .change_password(&id, current, "a brand new passphrase", &keep, ATTACKER)
                .await
        }
    };
    for _ in 0..5 {
        let err = change(OTHER_PASSWORD).await.unwrap_err();
        assert_matches!(err, AccountError::CurrentPasswordIncorrect);
    }
    // Locked: even the right current password is refused, before any hashing.
    let err = change(GOOD_PASSWORD).await.unwrap_err();
    assert_matches!(err, AccountError::Throttled { .. });
    assert_eq!(err.retry_after_secs(), Some(1));
    // The same lock as sign-in: that client cannot sign in either.
    assert!(is_throttled(
        &accounts
            .authenticate_from(ALICE, GOOD_PASSWORD, ATTACKER)
            .await
    ));
    // After the lock the right password works and resets the count.
    f.clock.advance(Duration::seconds(1));
    change(GOOD_PASSWORD).await.unwrap();
}

#[tokio::test]
async fn finding_03_check_user_secret_refuses_a_locked_key_before_checking() {
    let f = fixture().await;
    let alice = f.register(ALICE).await;
    let accounts = f.throttled().await;
    guess(&f, &accounts, ALICE, ATTACKER, 5).await;
    let called = std::sync::atomic::AtomicBool::new(false);
    let result = accounts
        .check_user_secret(&alice, ATTACKER, || async {
            called.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(true)
        })
        .await;
    assert!(is_throttled(&result), "{result:?}");
    assert!(!called.load(std::sync::atomic::Ordering::SeqCst));
}

#[tokio::test]
async fn finding_05_one_address_cannot_lock_the_owner_out() {
    let f = fixture().await;
    let alice = f.register(ALICE).await;
    let accounts = f.throttled().await;
    // Far past the old per-account limit (5), at the pace the throttle allows.
    guess(&f, &accounts, ALICE, ATTACKER, 14).await;
    assert!(is_throttled(
        &accounts
            .authenticate_from(ALICE, GOOD_PASSWORD, ATTACKER)
            .await
    ));
    let user = accounts
        .authenticate_from(ALICE, GOOD_PASSWORD, OWNER)
        .await
        .unwrap();
    assert_eq!(user.id, alice.id);
    // The attacker's own lock stays.
    assert!(is_throttled(
        &accounts
            .authenticate_from(ALICE, OTHER_PASSWORD, ATTACKER)
            .await
    ));
}

#[tokio::test]
async fn failures_from_ten_addresses_lock_the_account_for_everyone() {
    let f = fixture().await;
    f.register(ALICE).await;
    let accounts = f.throttled().await;
    for n in 1..=9 {
        let ip = format!("192.0.2.{n}");
        guess(&f, &accounts, ALICE, Some(&ip), 1).await;
    }
    accounts
        .authenticate_from(ALICE, GOOD_PASSWORD, OWNER)
        .await
        .unwrap();
    // The success reset the account count; ten addresses in a row lock the account.
    for n in 1..=10 {
        let ip = format!("192.0.2.{}", 100 + n);
        guess(&f, &accounts, ALICE, Some(&ip), 1).await;
    }
    assert!(is_throttled(
        &accounts
            .authenticate_from(ALICE, GOOD_PASSWORD, OWNER)
            .await
    ));
}

#[tokio::test]
async fn finding_06_registration_is_throttled_per_client_address() {
    let f = fixture().await;
    let accounts = f.throttled().await;
    accounts
        .register_from("taken@example.com", GOOD_PASSWORD, ATTACKER)
        .await
        .unwrap();
    for n in 1..10 {
        // Probing for existing addresses: 409 after 409.
        let result = accounts
            .register_from("taken@example.com", GOOD_PASSWORD, ATTACKER)
            .await;
        assert!(
            matches!(result, Err(AccountError::EmailTaken)),
            "{n}: {result:?}"
        );
    }
    let result = accounts
        .register_from("new@example.com", GOOD_PASSWORD, ATTACKER)
        .await;
    let Err(err) = result else {
        panic!("the eleventh registration was let through")
    };
    assert_matches!(err, AccountError::Throttled { .. });
    assert_eq!(err.retry_after_secs(), Some(1));
    assert!(
        f.accounts
            .user_by_email("new@example.com")
            .await
            .unwrap()
            .is_none(),
        "nothing was created while throttled"
    );
    // Other clients register as before; the lock ends by itself.
    accounts
        .register_from("other@example.com", GOOD_PASSWORD, OWNER)
        .await
        .unwrap();
    f.clock.advance(Duration::seconds(1));
    accounts
        .register_from("new@example.com", GOOD_PASSWORD, ATTACKER)
        .await
        .unwrap();
}

#[tokio::test]
async fn finding_07_lookalike_addresses_are_one_account() {
    let f = fixture().await;
    let alice = f.register("élodie@exämple.com").await;
    assert_eq!(alice.email, "élodie@exämple.com");
    for twin in [
        "élodie@xn--exmple-cua.com",
        "ÉLODIE@EXÄMPLE.COM",
        // e + COMBINING ACUTE ACCENT, a + COMBINING DIAERESIS.
        "e\u{301}lodie@exa\u{308}mple.com",
    ] {
        let result = f.accounts.register(twin, GOOD_PASSWORD).await;
        assert!(
            matches!(result, Err(AccountError::EmailTaken)),
            "{twin:?}: {result:?}"
        );
        let user = f.accounts.authenticate(twin, GOOD_PASSWORD).await.unwrap();
        assert_eq!(user.id, alice.id, "{twin:?}");
    }
}

#[tokio::test]
async fn finding_07_control_and_bidirectional_characters_are_refused() {
    for bad in [
        "alice\u{2067}x@example.com",
        "alice@exam\u{2066}ple.com",
        "ali\u{061C}ce@example.com",
        "alice\u{202E}moc.elpmaxe@example.com",
        "alice\u{7}@example.com",
    ] {
        assert!(
            matches!(Email::parse(bad), Err(AccountError::InvalidEmail(_))),
            "{bad:?} was accepted"
        );
    }
}

#[test]
fn finding_10_passwords_over_128_characters_are_refused() {
    let email = Email::parse(ALICE).unwrap();
    let policy = PasswordPolicy::default();
    let words = "orbit lantern quiver marble ";
    let long: String = words.repeat(5).chars().take(129).collect();
    assert_eq!(
        policy.validate(&long, &email),
        Err(PasswordRejection::TooLong { max: 128 })
    );
    let fits: String = long.chars().take(128).collect();
    assert_eq!(policy.validate(&fits, &email), Ok(()));
}

#[test]
fn finding_10_guessable_passwords_are_refused_with_the_reason() {
    let email = Email::parse("alice.smith@example.com").unwrap();
    let policy = PasswordPolicy::default();
    for guessable in ["ringfence-2024!", "alicesmith1990", "ringfence.smith"] {
        let rejection = policy.validate(guessable, &email).unwrap_err();
        assert_eq!(
            rejection.code(),
            "guessable",
            "{guessable:?}: {rejection:?}"
        );
        let message = rejection.to_string();
        assert!(message.starts_with("this password is too easy to guess: "));
        assert!(message.len() > "this password is too easy to guess: ".len() + 10);
        assert!(!message.contains(guessable), "{message}");
        let error = AccountError::from(rejection);
        assert_eq!(error.code(), "weak_password");
    }
    // The shared test passwords stay valid.
    for good in [GOOD_PASSWORD, OTHER_PASSWORD] {
        assert_eq!(policy.validate(good, &email), Ok(()), "{good:?}");
    }
}

#[tokio::test]
async fn finding_10_registration_reports_why_a_password_is_weak() {
    let f = fixture().await;
    let err = f
        .accounts
        .register("alice.smith@example.com", "ringfence-2024!")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AccountError::WeakPassword(PasswordRejection::Guessable { .. })
        ),
        "{err:?}"
    );
}
