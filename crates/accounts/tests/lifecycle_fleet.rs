//! The mail flows across two nodes of a fleet: two accounts services on one real PostgreSQL
//! (users) and one real redis-server (sessions, mail-link tokens, attempt counters), sharing a
//! manual clock. A link mailed by one node is redeemed on the other, once.

mod common;

use std::sync::Arc;

use chrono::Duration;
use common::{client, GOOD_PASSWORD, OTHER_PASSWORD};
use ringfence_accounts::{
    AccountError, Accounts, Database, MailFlowSettings, PasswordHasher, PasswordPolicy,
    RedisAttemptStore, RedisMailTokenStore, ThrottlePolicy, User,
};
use ringfence_keyring::{KeyRing, ManualClock};
use ringfence_sessions::{RedisSessionStore, SessionConfig, SessionManager};
use ringfence_testkit::MailCollector;
use ringfence_testkit::{PostgresServer, RedisOptions, RedisServer};

const ALICE: &str = "alice@example.com";

struct Node {
    accounts: Accounts,
    sessions: SessionManager,
    mail: MailCollector,
    db: Database,
}

struct Fleet {
    a: Node,
    b: Node,
    clock: ManualClock,
    _redis: RedisServer,
    _postgres: PostgresServer,
}

async fn fleet() -> Fleet {
    fleet_with(MailFlowSettings::default()).await
}

async fn fleet_with(settings: MailFlowSettings) -> Fleet {
    let postgres = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .unwrap()
        .expect("start PostgreSQL");
    let redis = RedisServer::start_with(RedisOptions {
        appendonly: false,
        extra_args: Vec::new(),
    })
    .unwrap();
    let url = postgres.fresh_database().unwrap();
    // Real time: Redis expires session keys by its own clock too.
    let clock = ManualClock::new(chrono::Utc::now());
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let db = Database::connect(&url).await.unwrap();
        let conn = redis::Client::open(redis.url())
            .unwrap()
            .get_connection_manager()
            .await
            .unwrap();
        let keyring = KeyRing::in_memory(clock.shared());
        let sessions = SessionManager::new(
            Arc::new(RedisSessionStore::new(conn.clone(), "rf:".into())),
            &keyring,
            clock.shared(),
            SessionConfig::default(),
        );
        let mail = MailCollector::default();
        let accounts = Accounts::new(
            db.user_store().await.unwrap(),
            PasswordHasher::default(),
            PasswordPolicy::default(),
            sessions.clone(),
            clock.shared(),
        )
        .with_throttle(
            Arc::new(RedisAttemptStore::new(conn.clone(), "rf:")),
            ThrottlePolicy::default(),
        )
        .with_mail_tokens(Arc::new(RedisMailTokenStore::new(conn, "rf:")))
        .with_mailer(Arc::new(mail.clone()))
        .with_mail_settings(settings);
        nodes.push(Node {
            accounts,
            sessions,
            mail,
            db,
        });
    }
    let b = nodes.pop().unwrap();
    let a = nodes.pop().unwrap();
    Fleet {
        a,
        b,
        clock,
        _redis: redis,
        _postgres: postgres,
    }
}

impl Fleet {
    async fn sessions_of(&self, user: &User) -> (usize, usize) {
        (
            self.a.sessions.list(&user.id).await.unwrap().len(),
            self.b.sessions.list(&user.id).await.unwrap().len(),
        )
    }

    async fn close(self) {
        self.a.db.close().await;
        self.b.db.close().await;
    }
}

fn invalid_token<T: std::fmt::Debug>(result: Result<T, AccountError>) {
    assert!(
        matches!(result, Err(AccountError::InvalidToken)),
        "expected invalid_token, got {result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reset_link_from_one_node_works_once_on_the_other_and_ends_sessions_everywhere() {
    let f = fleet().await;
    let alice = f.a.accounts.register(ALICE, GOOD_PASSWORD).await.unwrap();
    f.a.accounts
        .request_password_reset(ALICE, Some("203.0.113.7"))
        .await
        .unwrap();
    f.a.accounts.wait_for_mail_jobs().await;
    let token = f.a.mail.token(ALICE, "reset_password");

    // Expired on every node once the hour is over; a fresh link works.
    f.clock.advance(Duration::hours(1));
    invalid_token(f.b.accounts.reset_password(&token, OTHER_PASSWORD).await);
    f.b.accounts
        .request_password_reset(ALICE, Some("203.0.113.7"))
        .await
        .unwrap();
    f.b.accounts.wait_for_mail_jobs().await;
    let token = f.b.mail.token(ALICE, "reset_password");
    for node in [&f.a, &f.b] {
        for _ in 0..2 {
            node.sessions.start(&alice.id, &client()).await.unwrap();
        }
    }
    assert_eq!(f.sessions_of(&alice).await, (4, 4));

    // Redeemed on both nodes at once: exactly one redemption wins.
    let attempts: Vec<_> = (0..6)
        .map(|i| {
            let accounts = if i % 2 == 0 {
                f.a.accounts.clone()
            } else {
                f.b.accounts.clone()
            };
            let token = token.clone();
            tokio::spawn(async move { accounts.reset_password(&token, OTHER_PASSWORD).await })
        })
        .collect();
    let mut won = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => won += 1,
            Err(AccountError::InvalidToken) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one redemption wins");
    assert_eq!(f.sessions_of(&alice).await, (0, 0), "every session ended");
    for node in [&f.a, &f.b] {
        assert!(matches!(
            node.accounts.authenticate(ALICE, GOOD_PASSWORD).await,
            Err(AccountError::InvalidCredentials)
        ));
        node.accounts
            .authenticate(ALICE, OTHER_PASSWORD)
            .await
            .unwrap();
        invalid_token(node.accounts.reset_password(&token, GOOD_PASSWORD).await);
    }
    let notices = f.a.mail.kinds_to(ALICE).len() + f.b.mail.kinds_to(ALICE).len();
    assert_eq!(
        notices, 4,
        "verification, two reset links, one password-reset notice (and nothing else)"
    );
    f.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_control_and_address_changes_span_nodes() {
    let f = fleet().await;
    let alice = f.a.accounts.register(ALICE, GOOD_PASSWORD).await.unwrap();
    // Verified through a link mailed by node A, followed on node B.
    let verify = f.a.mail.token(ALICE, "verify_email");
    assert!(
        f.b.accounts
            .verify_email(&verify)
            .await
            .unwrap()
            .email_verified
    );
    invalid_token(f.a.accounts.verify_email(&verify).await);

    // Disabled on B: the sessions started on A end, and A refuses the right password.
    f.a.sessions.start(&alice.id, &client()).await.unwrap();
    assert_eq!(f.b.accounts.disable(&alice.id).await.unwrap(), 1);
    assert_eq!(f.sessions_of(&alice).await, (0, 0));
    assert!(matches!(
        f.a.accounts.authenticate(ALICE, GOOD_PASSWORD).await,
        Err(AccountError::AccountDisabled)
    ));
    f.a.accounts.enable(&alice.id).await.unwrap();
    f.b.accounts
        .authenticate(ALICE, GOOD_PASSWORD)
        .await
        .unwrap();

    // Address change asked on A, confirmed on B; the new address was free then.
    const NEW: &str = "alice@new.example.com";
    f.a.accounts
        .request_email_change(&alice.id, NEW)
        .await
        .unwrap();
    let change = f.a.mail.token(NEW, "confirm_email_change");
    let moved = f.b.accounts.confirm_email_change(&change).await.unwrap();
    assert_eq!(moved.email, NEW);
    assert_eq!(f.b.mail.kinds_to(ALICE), ["email_changed"]);
    f.a.accounts.authenticate(NEW, GOOD_PASSWORD).await.unwrap();

    // An admin link made on A resets on B; deleting on A voids B's pending link.
    let link = f.a.accounts.admin_reset_link(&alice.id).await.unwrap();
    f.b.accounts
        .reset_password(link.token.as_str(), OTHER_PASSWORD)
        .await
        .unwrap();
    let pending = f.b.accounts.admin_reset_link(&alice.id).await.unwrap();
    f.b.sessions.start(&alice.id, &client()).await.unwrap();
    assert_eq!(f.a.accounts.delete(&alice.id).await.unwrap(), 1);
    invalid_token(
        f.b.accounts
            .reset_password(pending.token.as_str(), GOOD_PASSWORD)
            .await,
    );
    assert_eq!(f.b.accounts.user(&alice.id).await.unwrap(), None);
    f.close().await;
}

/// `--require-verified-email` on Redis + PostgreSQL: the right password of an unverified
/// account is refused on both nodes (a fresh link is mailed each time), a wrong one gets the
/// usual answer, and a link mailed by one node verifies the account for the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn required_verification_spans_nodes() {
    let f = fleet_with(MailFlowSettings {
        require_verified_email: true,
        ..MailFlowSettings::default()
    })
    .await;
    f.a.accounts.register(ALICE, GOOD_PASSWORD).await.unwrap();
    for node in [&f.a, &f.b] {
        assert!(matches!(
            node.accounts.authenticate(ALICE, GOOD_PASSWORD).await,
            Err(AccountError::EmailNotVerified)
        ));
        assert!(matches!(
            node.accounts.authenticate(ALICE, OTHER_PASSWORD).await,
            Err(AccountError::InvalidCredentials)
        ));
    }
    assert_eq!(f.a.mail.kinds_to(ALICE), ["verify_email", "verify_email"]);
    assert_eq!(f.b.mail.kinds_to(ALICE), ["verify_email"]);
    let token = f.a.mail.token(ALICE, "verify_email");
    f.b.accounts.verify_email(&token).await.unwrap();
    let user =
        f.a.accounts
            .authenticate(ALICE, GOOD_PASSWORD)
            .await
            .unwrap();
    assert!(user.email_verified);
    f.close().await;
}
