//! The account lifecycle over mail, end to end in the accounts service: a SQLite file with real
//! sessions, key ring, OWASP argon2, the sign-in throttle's store, mail-link tokens in SQLite,
//! and a manual clock. Mails are caught by an in-memory [`AccountMailer`] (the crate's own seam;
//! the server's tests deliver through a real SMTP server).

mod common;

use std::sync::Arc;

use chrono::{Duration, DurationRound};
use common::{client, fixture, Fixture, GOOD_PASSWORD, OTHER_PASSWORD};
use ringfence_accounts::{
    AccountError, AccountMail, Accounts, MailFlowSettings, MailToken, MailTokenRecord,
    MailTokenStore, TokenHash, TokenPurpose, TokenStoreError, User,
};
use ringfence_testkit::MailCollector;

const ALICE: &str = "alice@example.com";
const THIRD_PASSWORD: &str = "orange submarine under a quiet moon";

struct MailFixture {
    f: Fixture,
    accounts: Accounts,
    mail: MailCollector,
}

async fn mail_fixture() -> MailFixture {
    mail_fixture_with(MailFlowSettings::default()).await
}

async fn mail_fixture_with(settings: MailFlowSettings) -> MailFixture {
    let f = fixture().await;
    let mail = MailCollector::default();
    let accounts = f
        .throttled()
        .await
        .with_mail_tokens(f.db.mail_token_store().await.unwrap())
        .with_mailer(Arc::new(mail.clone()))
        .with_mail_settings(settings);
    MailFixture { f, accounts, mail }
}

impl MailFixture {
    async fn register(&self, email: &str) -> User {
        self.accounts.register(email, GOOD_PASSWORD).await.unwrap()
    }

    async fn sessions_of(&self, user: &User) -> usize {
        self.f.sessions.list(&user.id).await.unwrap().len()
    }

    async fn start_sessions(&self, user: &User, n: usize) {
        for _ in 0..n {
            self.f.sessions.start(&user.id, &client()).await.unwrap();
        }
    }

    async fn forgot(&self, email: &str) -> String {
        self.accounts
            .request_password_reset(email, Some("203.0.113.7"))
            .await
            .unwrap();
        self.accounts.wait_for_mail_jobs().await;
        self.mail.token(email, "reset_password")
    }
}

fn assert_invalid_token<T: std::fmt::Debug>(result: Result<T, AccountError>) {
    match result {
        Err(e @ AccountError::InvalidToken) => assert_eq!(e.code(), "invalid_token"),
        other => panic!("expected invalid_token, got {other:?}"),
    }
}

#[tokio::test]
async fn registration_mails_a_verification_link_that_works_once() {
    let m = mail_fixture().await;
    let user = m.register(ALICE).await;
    assert!(!user.email_verified);
    assert_eq!(m.mail.kinds_to(ALICE), ["verify_email"]);
    let (_, mail) = &m.mail.all()[0];
    let path = mail.link_path().unwrap();
    let token = m.mail.token(ALICE, "verify_email");
    assert_eq!(path, format!("/verify-email?token={token}"));
    assert_eq!(
        mail.expires_at(),
        Some(
            (common::start_time() + Duration::hours(24))
                .duration_trunc(Duration::milliseconds(1))
                .unwrap()
        ),
        "verification links work 24 hours"
    );
    assert_eq!(mail.valid_for(), Some(Duration::hours(24)));

    let verified = m.accounts.verify_email(&token).await.unwrap();
    assert_eq!(verified.id, user.id);
    assert!(verified.email_verified);
    assert!(
        m.accounts
            .user(&user.id)
            .await
            .unwrap()
            .unwrap()
            .email_verified
    );
    assert_invalid_token(m.accounts.verify_email(&token).await);
}

#[tokio::test]
async fn verification_link_expires_after_its_lifetime() {
    let m = mail_fixture().await;
    m.register(ALICE).await;
    let late = m.mail.token(ALICE, "verify_email");
    m.register("bob@example.com").await;
    let in_time = m.mail.token("bob@example.com", "verify_email");
    m.f.clock
        .advance(Duration::hours(24) - Duration::seconds(1));
    m.accounts.verify_email(&in_time).await.unwrap();
    m.f.clock.advance(Duration::seconds(1));
    assert_invalid_token(m.accounts.verify_email(&late).await);
}

#[tokio::test]
async fn verification_mail_again_is_throttled_per_user_and_skipped_once_verified() {
    let m = mail_fixture().await;
    let alice = m.register(ALICE).await;
    let bob = m.register("bob@example.com").await;
    for _ in 0..3 {
        m.accounts.resend_verification(&alice.id).await.unwrap();
    }
    assert!(matches!(
        m.accounts.resend_verification(&alice.id).await,
        Err(AccountError::Throttled { .. })
    ));
    assert_eq!(m.mail.kinds_to(ALICE).len(), 4, "registration + 3");
    // Another user is not affected.
    m.accounts.resend_verification(&bob.id).await.unwrap();
    // After the lock (1 minute for the third request) Alice may ask again.
    m.f.clock.advance(Duration::minutes(1));
    m.accounts.resend_verification(&alice.id).await.unwrap();
    assert_eq!(m.mail.kinds_to(ALICE).len(), 5);
    // Any of the links verifies; then nothing more is sent.
    let token = m.mail.token(ALICE, "verify_email");
    m.accounts.verify_email(&token).await.unwrap();
    m.f.clock.advance(Duration::hours(2));
    m.accounts.resend_verification(&alice.id).await.unwrap();
    assert_eq!(m.mail.kinds_to(ALICE).len(), 5, "verified: no mail");
    assert!(matches!(
        m.accounts.resend_verification("no-such-user").await,
        Err(AccountError::UserNotFound)
    ));
}

#[tokio::test]
async fn forgot_password_answers_the_same_for_unknown_addresses_and_mails_nothing() {
    let m = mail_fixture().await;
    m.register(ALICE).await;
    let before = m.mail.all().len();
    let known = m
        .accounts
        .request_password_reset(ALICE, Some("203.0.113.7"))
        .await;
    let unknown = m
        .accounts
        .request_password_reset("nobody@example.com", Some("203.0.113.7"))
        .await;
    assert_eq!(format!("{known:?}"), format!("{unknown:?}"));
    assert!(known.is_ok());
    m.accounts.wait_for_mail_jobs().await;
    let mails = m.mail.all();
    assert_eq!(mails.len(), before + 1, "one mail, to the known address");
    assert_eq!(mails[before].0, ALICE);
    assert_eq!(mails[before].1.kind(), "reset_password");
    assert!(m.mail.kinds_to("nobody@example.com").is_empty());
    assert!(matches!(
        m.accounts
            .request_password_reset("not an address", None)
            .await,
        Err(AccountError::InvalidEmail(_))
    ));
}

#[tokio::test]
async fn reset_sets_the_password_ends_every_session_and_sends_a_notice() {
    let m = mail_fixture().await;
    let alice = m.register(ALICE).await;
    m.start_sessions(&alice, 3).await;
    let token = m.forgot(ALICE).await;
    let mail = m.mail.all().into_iter().last().unwrap().1;
    assert_eq!(
        mail.link_path().unwrap(),
        format!("/reset-password?token={token}")
    );

    let user = m
        .accounts
        .reset_password(&token, OTHER_PASSWORD)
        .await
        .unwrap();
    assert_eq!(user.id, alice.id);
    assert!(user.email_verified, "the link reached the address");
    assert_eq!(m.sessions_of(&alice).await, 0, "every session ended");
    assert!(matches!(
        m.accounts.authenticate(ALICE, GOOD_PASSWORD).await,
        Err(AccountError::InvalidCredentials)
    ));
    m.accounts
        .authenticate(ALICE, OTHER_PASSWORD)
        .await
        .unwrap();
    assert_eq!(
        m.mail.kinds_to(ALICE),
        ["verify_email", "reset_password", "password_reset"]
    );
    assert_invalid_token(m.accounts.reset_password(&token, THIRD_PASSWORD).await);
    // The registration's verification link was bound to the old password.
    let verify = m.mail.token(ALICE, "verify_email");
    assert_invalid_token(m.accounts.verify_email(&verify).await);
}

#[tokio::test]
async fn reset_link_expires_after_an_hour_or_the_configured_lifetime() {
    let m = mail_fixture().await;
    m.register(ALICE).await;
    let token = m.forgot(ALICE).await;
    m.f.clock.advance(Duration::hours(1));
    assert_invalid_token(m.accounts.reset_password(&token, OTHER_PASSWORD).await);

    let m = mail_fixture_with(MailFlowSettings {
        reset_token_lifetime: Duration::minutes(10),
        ..MailFlowSettings::default()
    })
    .await;
    m.register(ALICE).await;
    let token = m.forgot(ALICE).await;
    m.f.clock.advance(Duration::minutes(10));
    assert_invalid_token(m.accounts.reset_password(&token, OTHER_PASSWORD).await);
    let token = m.forgot(ALICE).await;
    m.f.clock.advance(Duration::minutes(9));
    m.accounts
        .reset_password(&token, OTHER_PASSWORD)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_weak_new_password_does_not_spend_the_reset_link() {
    let m = mail_fixture().await;
    m.register(ALICE).await;
    let token = m.forgot(ALICE).await;
    assert!(matches!(
        m.accounts.reset_password(&token, "password").await,
        Err(AccountError::WeakPassword(_))
    ));
    m.accounts
        .reset_password(&token, OTHER_PASSWORD)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_verification_token_cannot_reset_and_still_verifies() {
    let m = mail_fixture().await;
    m.register(ALICE).await;
    let verify = m.mail.token(ALICE, "verify_email");
    assert_invalid_token(m.accounts.reset_password(&verify, OTHER_PASSWORD).await);
    assert_invalid_token(m.accounts.confirm_email_change(&verify).await);
    m.accounts.authenticate(ALICE, GOOD_PASSWORD).await.unwrap();
    m.accounts.verify_email(&verify).await.unwrap();
    // And the other way round.
    let reset = m.forgot(ALICE).await;
    assert_invalid_token(m.accounts.verify_email(&reset).await);
    m.accounts
        .reset_password(&reset, OTHER_PASSWORD)
        .await
        .unwrap();
}

#[tokio::test]
async fn malformed_tampered_and_unknown_tokens_are_invalid() {
    let m = mail_fixture().await;
    m.register(ALICE).await;
    let token = m.forgot(ALICE).await;
    let mut tampered = token.clone().into_bytes();
    tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let huge = "A".repeat(1 << 20);
    for bad in [
        "",
        "   ",
        "abc",
        &tampered,
        &token[1..],
        &format!("{token}x"),
        &format!("{token}="),
        &huge,
        "../../etc/passwd",
        "' OR 1=1 --",
        MailToken::generate().as_str(),
    ] {
        assert_invalid_token(m.accounts.reset_password(bad, OTHER_PASSWORD).await);
        assert_invalid_token(m.accounts.verify_email(bad).await);
        assert_invalid_token(m.accounts.confirm_email_change(bad).await);
    }
    m.accounts
        .reset_password(&token, OTHER_PASSWORD)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_reset_voids_every_other_outstanding_link() {
    let m = mail_fixture().await;
    m.register(ALICE).await;
    let first = m.forgot(ALICE).await;
    let second = m.forgot(ALICE).await;
    assert_ne!(first, second);
    let alice = m.accounts.user_by_email(ALICE).await.unwrap().unwrap();
    m.accounts
        .request_email_change(&alice.id, "alice@new.example.com")
        .await
        .unwrap();
    let change = m
        .mail
        .token("alice@new.example.com", "confirm_email_change");
    m.accounts
        .reset_password(&first, OTHER_PASSWORD)
        .await
        .unwrap();
    assert_invalid_token(m.accounts.reset_password(&second, THIRD_PASSWORD).await);
    assert_invalid_token(m.accounts.confirm_email_change(&change).await);
    m.accounts
        .authenticate(ALICE, OTHER_PASSWORD)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_password_change_voids_reset_links_and_sends_a_notice() {
    let m = mail_fixture().await;
    let alice = m.register(ALICE).await;
    let token = m.forgot(ALICE).await;
    let session = m.f.start_session(&alice.id).await;
    m.accounts
        .change_password(&alice.id, GOOD_PASSWORD, OTHER_PASSWORD, &session.id, None)
        .await
        .unwrap();
    assert_eq!(
        m.mail.kinds_to(ALICE),
        ["verify_email", "reset_password", "password_changed"]
    );
    assert_invalid_token(m.accounts.reset_password(&token, THIRD_PASSWORD).await);
    m.accounts
        .authenticate(ALICE, OTHER_PASSWORD)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_redemptions_of_one_reset_link_exactly_one_wins() {
    let m = mail_fixture().await;
    m.register(ALICE).await;
    let token = m.forgot(ALICE).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let accounts = m.accounts.clone();
            let token = token.clone();
            tokio::spawn(async move { accounts.reset_password(&token, OTHER_PASSWORD).await })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(AccountError::InvalidToken) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(
        m.mail
            .kinds_to(ALICE)
            .iter()
            .filter(|k| **k == "password_reset")
            .count(),
        1,
        "one notice"
    );
}

#[tokio::test]
async fn forgot_password_is_throttled_per_address_and_per_client_address() {
    let m = mail_fixture().await;
    m.register(ALICE).await;
    // Per address: 3 requests, from any client addresses, then a lock; the same for an
    // address without an account.
    for target in [ALICE, "nobody@example.com"] {
        for i in 0..3 {
            m.accounts
                .request_password_reset(target, Some(&format!("198.51.100.{i}")))
                .await
                .unwrap();
        }
        assert!(matches!(
            m.accounts
                .request_password_reset(target, Some("198.51.100.99"))
                .await,
            Err(AccountError::Throttled { .. })
        ));
    }
    m.accounts.wait_for_mail_jobs().await;
    assert_eq!(
        m.mail.kinds_to(ALICE),
        [
            "verify_email",
            "reset_password",
            "reset_password",
            "reset_password"
        ]
    );

    // Per client address: 10 requests for different addresses, then a lock.
    for i in 0..10 {
        m.accounts
            .request_password_reset(&format!("user{i}@example.com"), Some("192.0.2.1"))
            .await
            .unwrap();
    }
    let locked = m
        .accounts
        .request_password_reset("user10@example.com", Some("192.0.2.1"))
        .await;
    match locked {
        Err(e @ AccountError::Throttled { .. }) => {
            assert_eq!(e.code(), "too_many_attempts");
            assert!(e.retry_after_secs().unwrap() >= 1);
        }
        other => panic!("expected throttled, got {other:?}"),
    }
    // Another client is not affected; the lock ends.
    m.accounts
        .request_password_reset("user10@example.com", Some("192.0.2.2"))
        .await
        .unwrap();
    m.f.clock.advance(Duration::minutes(1));
    m.accounts
        .request_password_reset("user11@example.com", Some("192.0.2.1"))
        .await
        .unwrap();
}

#[tokio::test]
async fn email_change_confirms_at_the_new_address_and_notifies_the_old() {
    let m = mail_fixture().await;
    let alice = m.register(ALICE).await;
    m.start_sessions(&alice, 1).await;
    const NEW: &str = "alice@new.example.com";
    m.accounts
        .request_email_change(&alice.id, " Alice@New.Example.com ")
        .await
        .unwrap();
    assert_eq!(m.mail.kinds_to(NEW), ["confirm_email_change"]);
    assert_eq!(
        m.mail.kinds_to(ALICE),
        ["verify_email"],
        "nothing to the old address yet"
    );
    let mail = m.mail.all().into_iter().last().unwrap().1;
    assert!(mail
        .link_path()
        .unwrap()
        .starts_with("/confirm-email?token="));
    assert_eq!(
        m.accounts.user(&alice.id).await.unwrap().unwrap().email,
        ALICE
    );

    let token = m.mail.token(NEW, "confirm_email_change");
    let user = m.accounts.confirm_email_change(&token).await.unwrap();
    assert_eq!(user.email, NEW);
    assert!(user.email_verified);
    assert_eq!(m.accounts.user(&alice.id).await.unwrap().unwrap(), user);
    assert_eq!(m.mail.kinds_to(ALICE), ["verify_email", "email_changed"]);
    match &m.mail.all().last().unwrap().1 {
        AccountMail::EmailChanged { new_email } => assert_eq!(new_email, NEW),
        other => panic!("{other:?}"),
    }
    m.accounts.authenticate(NEW, GOOD_PASSWORD).await.unwrap();
    assert!(matches!(
        m.accounts.authenticate(ALICE, GOOD_PASSWORD).await,
        Err(AccountError::InvalidCredentials)
    ));
    assert_eq!(m.sessions_of(&alice).await, 1, "sessions stay");
    assert_invalid_token(m.accounts.confirm_email_change(&token).await);
    // The old address is free again.
    m.register(ALICE).await;
}

#[tokio::test]
async fn email_change_refused_when_the_new_address_was_taken_meanwhile() {
    let m = mail_fixture().await;
    let alice = m.register(ALICE).await;
    const NEW: &str = "contested@example.com";
    m.accounts
        .request_email_change(&alice.id, NEW)
        .await
        .unwrap();
    let token = m.mail.token(NEW, "confirm_email_change");
    m.register(NEW).await;
    match m.accounts.confirm_email_change(&token).await {
        Err(e @ AccountError::EmailTaken) => assert_eq!(e.code(), "email_taken"),
        other => panic!("expected email_taken, got {other:?}"),
    }
    assert_eq!(
        m.accounts.user(&alice.id).await.unwrap().unwrap().email,
        ALICE
    );
    assert!(!m.mail.kinds_to(ALICE).contains(&"email_changed"));
}

#[tokio::test]
async fn email_change_requests_are_checked_and_throttled() {
    let m = mail_fixture().await;
    let alice = m.register(ALICE).await;
    m.register("bob@example.com").await;
    assert!(matches!(
        m.accounts
            .request_email_change(&alice.id, "bob@example.com")
            .await,
        Err(AccountError::EmailTaken)
    ));
    assert!(matches!(
        m.accounts.request_email_change(&alice.id, ALICE).await,
        Err(AccountError::InvalidEmail(_))
    ));
    assert!(matches!(
        m.accounts
            .request_email_change(&alice.id, "no at sign")
            .await,
        Err(AccountError::InvalidEmail(_))
    ));
    assert!(matches!(
        m.accounts
            .request_email_change("no-such-user", "x@example.com")
            .await,
        Err(AccountError::UserNotFound)
    ));
    for i in 0..3 {
        m.accounts
            .request_email_change(&alice.id, &format!("new{i}@example.com"))
            .await
            .unwrap();
    }
    assert!(matches!(
        m.accounts
            .request_email_change(&alice.id, "new4@example.com")
            .await,
        Err(AccountError::Throttled { .. })
    ));
}

#[tokio::test]
async fn an_email_change_voids_links_bound_to_the_old_address() {
    let m = mail_fixture().await;
    let alice = m.register(ALICE).await;
    let reset = m.forgot(ALICE).await;
    m.accounts
        .request_email_change(&alice.id, "a2@example.com")
        .await
        .unwrap();
    let first = m.mail.token("a2@example.com", "confirm_email_change");
    m.accounts
        .request_email_change(&alice.id, "a3@example.com")
        .await
        .unwrap();
    let second = m.mail.token("a3@example.com", "confirm_email_change");
    m.accounts.confirm_email_change(&first).await.unwrap();
    assert_invalid_token(m.accounts.reset_password(&reset, OTHER_PASSWORD).await);
    assert_invalid_token(m.accounts.confirm_email_change(&second).await);
    assert_eq!(
        m.accounts.user(&alice.id).await.unwrap().unwrap().email,
        "a2@example.com"
    );
}

#[tokio::test]
async fn disabling_ends_every_session_and_refuses_only_the_right_password() {
    let m = mail_fixture().await;
    let alice = m.register(ALICE).await;
    m.start_sessions(&alice, 2).await;
    assert_eq!(m.accounts.disable(&alice.id).await.unwrap(), 2);
    assert_eq!(m.sessions_of(&alice).await, 0);
    match m.accounts.authenticate(ALICE, GOOD_PASSWORD).await {
        Err(e @ AccountError::AccountDisabled) => {
            assert_eq!(e.code(), "account_disabled");
            assert!(e.is_client_error());
        }
        other => panic!("expected account_disabled, got {other:?}"),
    }
    assert!(matches!(
        m.accounts.authenticate(ALICE, OTHER_PASSWORD).await,
        Err(AccountError::InvalidCredentials)
    ));
    // A session a racing sign-in started is refused anyway.
    let late = m.f.start_session(&alice.id).await;
    assert_eq!(m.accounts.session_user(&late).await.unwrap(), None);
    // No reset mail for a disabled account, and no admin link either.
    m.accounts
        .request_password_reset(ALICE, None)
        .await
        .unwrap();
    m.accounts.wait_for_mail_jobs().await;
    assert_eq!(m.mail.kinds_to(ALICE), ["verify_email"]);
    assert!(matches!(
        m.accounts.admin_reset_link(&alice.id).await,
        Err(AccountError::AccountDisabled)
    ));

    m.accounts.enable(&alice.id).await.unwrap();
    let user = m.accounts.authenticate(ALICE, GOOD_PASSWORD).await.unwrap();
    assert!(!user.disabled);
    m.f.clock.advance(Duration::seconds(5));
    let session = m.f.start_session(&alice.id).await;
    m.f.clock.advance(Duration::seconds(2));
    assert!(m.accounts.session_user(&session).await.unwrap().is_some());
    for missing in [
        m.accounts.disable("no-such-user").await.err(),
        m.accounts.enable("no-such-user").await.err(),
    ] {
        assert_matches!(missing, Some(AccountError::UserNotFound));
    }
}

#[tokio::test]
async fn a_verification_link_of_a_disabled_account_is_invalid() {
    let m = mail_fixture().await;
    let alice = m.register(ALICE).await;
    let verify = m.mail.token(ALICE, "verify_email");
    m.accounts.disable(&alice.id).await.unwrap();
    assert_invalid_token(m.accounts.verify_email(&verify).await);
}

#[tokio::test]
async fn deleting_removes_the_account_its_sessions_and_its_links() {
    let m = mail_fixture().await;
    let alice = m.register(ALICE).await;
    m.start_sessions(&alice, 2).await;
    let reset = m.forgot(ALICE).await;
    assert_eq!(m.accounts.delete(&alice.id).await.unwrap(), 2);
    assert_eq!(m.accounts.user(&alice.id).await.unwrap(), None);
    assert_eq!(m.sessions_of(&alice).await, 0);
    assert_invalid_token(m.accounts.reset_password(&reset, OTHER_PASSWORD).await);
    assert!(matches!(
        m.accounts.delete(&alice.id).await,
        Err(AccountError::UserNotFound)
    ));
    // The address can be registered again; the old link does not reach the new account.
    m.register(ALICE).await;
    assert_invalid_token(m.accounts.reset_password(&reset, OTHER_PASSWORD).await);
}

#[tokio::test]
async fn an_admin_setting_a_password_ends_other_sessions_and_notifies() {
    let m = mail_fixture().await;
    let alice = m.register(ALICE).await;
    let keep = m.f.start_session(&alice.id).await;
    m.start_sessions(&alice, 2).await;
    let reset = m.forgot(ALICE).await;
    assert!(matches!(
        m.accounts.set_password(&alice.id, "password", None).await,
        Err(AccountError::WeakPassword(_))
    ));
    assert_eq!(
        m.accounts
            .set_password(&alice.id, OTHER_PASSWORD, Some(&keep.id))
            .await
            .unwrap(),
        2
    );
    let left = m.f.sessions.list(&alice.id).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, keep.id);
    assert_eq!(m.mail.kinds_to(ALICE).last(), Some(&"password_changed"));
    m.accounts
        .authenticate(ALICE, OTHER_PASSWORD)
        .await
        .unwrap();
    assert_invalid_token(m.accounts.reset_password(&reset, THIRD_PASSWORD).await);
    // Without a session to keep, every session ends.
    assert_eq!(
        m.accounts
            .set_password(&alice.id, THIRD_PASSWORD, None)
            .await
            .unwrap(),
        1
    );
    assert_eq!(m.sessions_of(&alice).await, 0);
    assert!(matches!(
        m.accounts
            .set_password("no-such-user", THIRD_PASSWORD, None)
            .await,
        Err(AccountError::UserNotFound)
    ));
}

#[tokio::test]
async fn an_admin_reset_link_works_without_mail_and_the_mailed_one_too() {
    let m = mail_fixture().await;
    let alice = m.register(ALICE).await;
    let mails = m.mail.all().len();
    let issued = m.accounts.admin_reset_link(&alice.id).await.unwrap();
    assert_eq!(m.mail.all().len(), mails, "printed, not mailed");
    assert_eq!(
        issued.expires_at,
        (common::start_time() + Duration::hours(1))
            .duration_trunc(Duration::milliseconds(1))
            .unwrap()
    );
    assert_eq!(issued.valid_for, Duration::hours(1));
    m.accounts
        .reset_password(issued.token.as_str(), OTHER_PASSWORD)
        .await
        .unwrap();

    m.accounts.send_password_reset(&alice.id).await.unwrap();
    let mailed = m.mail.token(ALICE, "reset_password");
    m.accounts
        .reset_password(&mailed, THIRD_PASSWORD)
        .await
        .unwrap();
    m.accounts
        .authenticate(ALICE, THIRD_PASSWORD)
        .await
        .unwrap();
    assert!(matches!(
        m.accounts.admin_reset_link("no-such-user").await,
        Err(AccountError::UserNotFound)
    ));
}

#[tokio::test]
async fn required_verification_refuses_the_right_password_and_mails_a_link() {
    let m = mail_fixture_with(MailFlowSettings {
        require_verified_email: true,
        ..MailFlowSettings::default()
    })
    .await;
    m.register(ALICE).await;
    match m.accounts.authenticate(ALICE, GOOD_PASSWORD).await {
        Err(e @ AccountError::EmailNotVerified) => {
            assert_eq!(e.code(), "email_not_verified");
            assert!(e.is_client_error());
        }
        other => panic!("expected email_not_verified, got {other:?}"),
    }
    assert!(matches!(
        m.accounts.authenticate(ALICE, OTHER_PASSWORD).await,
        Err(AccountError::InvalidCredentials)
    ));
    assert_eq!(
        m.mail.kinds_to(ALICE),
        ["verify_email", "verify_email"],
        "a fresh link with the refusal"
    );
    let token = m.mail.token(ALICE, "verify_email");
    m.accounts.verify_email(&token).await.unwrap();
    let user = m.accounts.authenticate(ALICE, GOOD_PASSWORD).await.unwrap();
    assert!(user.email_verified);
}

#[tokio::test]
async fn without_a_token_store_registration_works_and_mail_flows_say_why_not() {
    let f = fixture().await;
    let mail = MailCollector::default();
    let accounts = f.accounts.clone().with_mailer(Arc::new(mail.clone()));
    let alice = accounts.register(ALICE, GOOD_PASSWORD).await.unwrap();
    assert!(mail.all().is_empty());
    for result in [
        accounts.request_password_reset(ALICE, None).await.err(),
        accounts.resend_verification(&alice.id).await.err(),
        accounts.admin_reset_link(&alice.id).await.err(),
        accounts
            .verify_email(MailToken::generate().as_str())
            .await
            .err(),
    ] {
        match result {
            Some(e @ AccountError::InvalidConfig(_)) => assert!(!e.is_client_error()),
            other => panic!("expected invalid_config, got {other:?}"),
        }
    }
    // Notices need no token store.
    let session = f.start_session(&alice.id).await;
    accounts
        .change_password(&alice.id, GOOD_PASSWORD, OTHER_PASSWORD, &session.id, None)
        .await
        .unwrap();
    assert_eq!(mail.kinds_to(ALICE), ["password_changed"]);
}

#[tokio::test]
async fn the_store_keeps_only_token_hashes() {
    let m = mail_fixture().await;
    m.register(ALICE).await;
    let token = m.forgot(ALICE).await;
    let pool = m.f.db.sqlite_pool().unwrap();
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT token_hash, purpose, binding FROM mail_tokens")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2, "verification and reset");
    let expected = MailToken::parse(&token).unwrap().hash().to_hex();
    assert!(rows
        .iter()
        .any(|(h, p, _)| *h == expected && p == "reset_password"));
    for (hash, _, binding) in &rows {
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&token) && !binding.contains(&token));
        assert!(!binding.contains("alice"));
    }
}

/// A real token store whose writes take `delay`: stands for a slow database.
struct SlowTokens {
    inner: Arc<dyn MailTokenStore>,
    delay: std::time::Duration,
}

#[async_trait::async_trait]
impl MailTokenStore for SlowTokens {
    async fn insert(
        &self,
        token: &TokenHash,
        record: &MailTokenRecord,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), TokenStoreError> {
        tokio::time::sleep(self.delay).await;
        self.inner.insert(token, record, now).await
    }

    async fn find(
        &self,
        token: &TokenHash,
        purpose: TokenPurpose,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<MailTokenRecord>, TokenStoreError> {
        self.inner.find(token, purpose, now).await
    }

    async fn take(
        &self,
        token: &TokenHash,
        purpose: TokenPurpose,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<MailTokenRecord>, TokenStoreError> {
        self.inner.take(token, purpose, now).await
    }
}

#[tokio::test]
async fn forgot_password_answers_before_the_lookup_and_the_mail() {
    let m = mail_fixture().await;
    m.register(ALICE).await;
    let delay = std::time::Duration::from_secs(2);
    let accounts = m.accounts.clone().with_mail_tokens(Arc::new(SlowTokens {
        inner: m.f.db.mail_token_store().await.unwrap(),
        delay,
    }));
    for email in [ALICE, "nobody@example.com"] {
        let started = std::time::Instant::now();
        accounts
            .request_password_reset(email, Some("203.0.113.7"))
            .await
            .unwrap();
        assert!(
            started.elapsed() < delay / 2,
            "{email}: answered after {:?}, before the token was stored",
            started.elapsed()
        );
    }
    assert_eq!(m.mail.kinds_to(ALICE), ["verify_email"], "not mailed yet");
    accounts.wait_for_mail_jobs().await;
    assert_eq!(m.mail.kinds_to(ALICE), ["verify_email", "reset_password"]);
}
