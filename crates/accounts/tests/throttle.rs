//! Sign-in throttling end to end: the accounts service on SQLite with real sessions, OWASP
//! argon2 and a manual clock, counters in SQLite or in a real redis-server shared by two
//! service instances ("two nodes").

mod common;

use std::sync::Arc;

use chrono::Duration;
use common::{
    fixture, fixture_with, GOOD_PASSWORD, OLD_HASH_PREFIX, OLD_PARAMS, OTHER_PASSWORD,
    OWASP_HASH_PREFIX,
};
use redis::aio::ConnectionManager;
use ringfence_accounts::{
    AccountError, Accounts, AttemptStore, RedisAttemptStore, ThrottlePolicy, User,
};
use ringfence_keyring::ManualClock;
use ringfence_testkit::{RedisOptions, RedisServer};

const ALICE: &str = "alice@example.com";

/// Signs in from `ip`.
async fn sign_in(
    accounts: &Accounts,
    email: &str,
    password: &str,
    ip: Option<&str>,
) -> Result<User, AccountError> {
    accounts.authenticate_from(email, password, ip).await
}

fn assert_invalid(result: Result<User, AccountError>) {
    match result {
        Err(AccountError::InvalidCredentials) => {}
        other => panic!("expected invalid credentials, got {other:?}"),
    }
}

/// After a success reset the account count: four wrong passwords from `ip` are refused as
/// invalid (not throttled), and the right one then signs `alice` in.
async fn four_failures_are_free_again(accounts: &Accounts, alice: &User, ip: Option<&str>) {
    for _ in 0..4 {
        assert_invalid(sign_in(accounts, ALICE, OTHER_PASSWORD, ip).await);
    }
    assert_eq!(
        &sign_in(accounts, ALICE, GOOD_PASSWORD, ip).await.unwrap(),
        alice
    );
}

/// A second later (the first lock lasts one): the right password from `ip` signs `alice` in on
/// `signing`, and that success resets the account count `counting` sees (the same service, or
/// another node on the same attempt store): see [`four_failures_are_free_again`].
async fn the_lock_ends_and_a_success_resets_the_count(
    clock: &ManualClock,
    signing: &Accounts,
    counting: &Accounts,
    alice: &User,
    ip: Option<&str>,
) {
    clock.advance(Duration::seconds(1));
    assert_eq!(
        &sign_in(signing, ALICE, GOOD_PASSWORD, ip).await.unwrap(),
        alice
    );
    four_failures_are_free_again(counting, alice, ip).await;
}

/// The wait of a `Throttled` error.
fn retry_after(result: Result<User, AccountError>) -> Duration {
    match result {
        Err(AccountError::Throttled { retry_after }) => retry_after,
        other => panic!("expected throttled, got {other:?}"),
    }
}

/// Within a millisecond of `expected` (stores keep milliseconds; the clock has nanoseconds).
fn assert_about(actual: Duration, expected: Duration) {
    assert!(
        actual <= expected && actual > expected - Duration::milliseconds(1),
        "waited {actual:?}, expected about {expected:?}"
    );
}

#[tokio::test]
async fn right_password_is_refused_while_throttled_then_works_and_resets() {
    let f = fixture().await;
    let alice = f.register(ALICE).await;
    let accounts = f.throttled().await;
    let ip = Some("192.0.2.10");

    for _ in 0..5 {
        assert_invalid(sign_in(&accounts, ALICE, OTHER_PASSWORD, ip).await);
    }
    let err = sign_in(&accounts, ALICE, GOOD_PASSWORD, ip)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "too_many_attempts");
    assert!(err.is_client_error());
    assert_eq!(err.retry_after_secs(), Some(1));
    let message = err.to_string();
    assert!(message.contains("wait"), "{message}");
    assert!(
        !message.contains("alice") && !message.contains("account"),
        "{message}"
    );
    assert_about(retry_after(Err(err)), Duration::seconds(1));

    // Other spellings of the e-mail see the same lock (other client addresses do not: see
    // finding_05_one_address_cannot_lock_the_owner_out in hardening.rs).
    assert_about(
        retry_after(sign_in(&accounts, " ALICE@example.com", GOOD_PASSWORD, ip).await),
        Duration::seconds(1),
    );
    // Attempts refused while locked are not counted: the lock does not grow.
    for _ in 0..10 {
        retry_after(sign_in(&accounts, ALICE, OTHER_PASSWORD, ip).await);
    }

    the_lock_ends_and_a_success_resets_the_count(&f.clock, &accounts, &accounts, &alice, ip).await;
}

#[tokio::test]
async fn delay_grows_with_each_failure_and_the_count_decays() {
    let f = fixture().await;
    f.register(ALICE).await;
    let accounts = f.throttled().await;

    for _ in 0..5 {
        assert_invalid(accounts.authenticate(ALICE, OTHER_PASSWORD).await);
    }
    for secs in [1, 2, 4, 8] {
        assert_about(
            retry_after(accounts.authenticate(ALICE, GOOD_PASSWORD).await),
            Duration::seconds(secs),
        );
        f.clock.advance(Duration::seconds(secs));
        assert_invalid(accounts.authenticate(ALICE, OTHER_PASSWORD).await);
    }
    assert_about(
        retry_after(accounts.authenticate(ALICE, GOOD_PASSWORD).await),
        Duration::seconds(16),
    );
    // Forgotten 15 minutes after the lock ends: five free failures again.
    f.clock
        .advance(Duration::seconds(16) + Duration::minutes(15));
    for _ in 0..4 {
        assert_invalid(accounts.authenticate(ALICE, OTHER_PASSWORD).await);
    }
    accounts.authenticate(ALICE, GOOD_PASSWORD).await.unwrap();
}

#[tokio::test]
async fn password_is_not_verified_while_throttled() {
    // Alice's hash has old parameters: verifying her right password would upgrade it.
    let f = fixture_with(OLD_PARAMS).await;
    let alice = f.register(ALICE).await;
    let attempts = f.db.attempt_store().await.unwrap();
    let current = f
        .with_owasp_hasher()
        .with_throttle(attempts, ThrottlePolicy::default());
    for _ in 0..5 {
        assert_invalid(current.authenticate(ALICE, OTHER_PASSWORD).await);
    }
    retry_after(current.authenticate(ALICE, GOOD_PASSWORD).await);
    let hash = f.password_hash(&alice.id).await;
    assert!(hash.starts_with(OLD_HASH_PREFIX), "{hash}");

    f.clock.advance(Duration::seconds(1));
    current.authenticate(ALICE, GOOD_PASSWORD).await.unwrap();
    let hash = f.password_hash(&alice.id).await;
    assert!(hash.starts_with(OWASP_HASH_PREFIX), "{hash}");
}

#[tokio::test]
async fn unknown_emails_are_throttled_exactly_like_known_ones() {
    let f = fixture().await;
    f.register(ALICE).await;
    let accounts = f.throttled().await;

    let mut errors = Vec::new();
    for email in [ALICE, "nobody@example.com"] {
        for _ in 0..5 {
            assert_invalid(sign_in(&accounts, email, OTHER_PASSWORD, None).await);
        }
        errors.push(
            sign_in(&accounts, email, OTHER_PASSWORD, None)
                .await
                .unwrap_err(),
        );
    }
    let (known, unknown) = (&errors[0], &errors[1]);
    assert_eq!(known.code(), unknown.code());
    assert_eq!(known.to_string(), unknown.to_string());
    assert_eq!(known.retry_after_secs(), unknown.retry_after_secs());
    assert!(matches!(unknown, AccountError::Throttled { .. }));
}

#[tokio::test]
async fn address_lock_spans_accounts() {
    let f = fixture().await;
    let alice = f.register(ALICE).await;
    let accounts = f.throttled().await;
    let attacker = Some("198.51.100.7");

    // One failure each on 20 e-mails (none locked on its own), malformed ones included.
    for i in 0..18 {
        assert_invalid(
            sign_in(
                &accounts,
                &format!("victim{i}@example.com"),
                OTHER_PASSWORD,
                attacker,
            )
            .await,
        );
    }
    assert_invalid(sign_in(&accounts, "not an e-mail", OTHER_PASSWORD, attacker).await);
    assert_invalid(sign_in(&accounts, "", OTHER_PASSWORD, attacker).await);

    // The address is locked, for any account and any password.
    assert_about(
        retry_after(sign_in(&accounts, ALICE, GOOD_PASSWORD, attacker).await),
        Duration::seconds(1),
    );
    // The same address written as a socket address or IPv4-mapped IPv6 is the same client.
    retry_after(sign_in(&accounts, ALICE, GOOD_PASSWORD, Some("198.51.100.7:40000")).await);
    retry_after(sign_in(&accounts, ALICE, GOOD_PASSWORD, Some("::ffff:198.51.100.7")).await);
    // Alice elsewhere is fine, and her success does not clear the attacker's address.
    assert_eq!(
        sign_in(&accounts, ALICE, GOOD_PASSWORD, Some("198.51.100.8"))
            .await
            .unwrap(),
        alice
    );
    assert_eq!(
        accounts.authenticate(ALICE, GOOD_PASSWORD).await.unwrap(),
        alice
    );
    retry_after(sign_in(&accounts, ALICE, GOOD_PASSWORD, attacker).await);
}

#[tokio::test]
async fn ipv6_clients_are_counted_per_64() {
    let f = fixture().await;
    f.register(ALICE).await;
    let policy = ThrottlePolicy {
        address_free_attempts: 3,
        ..ThrottlePolicy::default()
    };
    let accounts = f.throttled_with(policy).await;
    // Three addresses of one /64, each on another e-mail.
    for (i, ip) in ["2001:db8:7:8::1", "2001:db8:7:8::2", "2001:db8:7:8:ffff::9"]
        .iter()
        .enumerate()
    {
        assert_invalid(
            sign_in(
                &accounts,
                &format!("v{i}@example.com"),
                OTHER_PASSWORD,
                Some(ip),
            )
            .await,
        );
    }
    retry_after(sign_in(&accounts, ALICE, GOOD_PASSWORD, Some("2001:db8:7:8::abcd")).await);
    sign_in(&accounts, ALICE, GOOD_PASSWORD, Some("2001:db8:7:9::1"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_parallel_guesses_learns_no_more_than_the_schedule_allows() {
    let f = fixture().await;
    let alice = f.register(ALICE).await;
    let accounts = f.throttled().await;
    accounts.hasher().warm_up().await.unwrap();

    // 30 guesses at once, the right one last; all pass the first check before any finishes.
    let guesses = (0..30).map(|i| {
        let accounts = accounts.clone();
        let password = if i == 29 {
            GOOD_PASSWORD
        } else {
            OTHER_PASSWORD
        };
        tokio::spawn(async move { accounts.authenticate(ALICE, password).await })
    });
    let mut invalid = 0;
    let mut throttled = 0;
    let mut signed_in = 0;
    for guess in guesses.collect::<Vec<_>>() {
        match guess.await.unwrap() {
            Err(AccountError::InvalidCredentials) => invalid += 1,
            Err(AccountError::Throttled { .. }) => throttled += 1,
            Ok(user) => {
                assert_eq!(user, alice);
                signed_in += 1;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    // Five failures lock the account; only guesses finishing within a store round trip of the
    // fifth can still get their answer.
    assert!(
        (5..=9).contains(&invalid),
        "{invalid} wrong guesses answered, {throttled} throttled"
    );
    println!("burst: {invalid} invalid, {throttled} throttled, {signed_in} signed in");
    assert_eq!(invalid + throttled + signed_in, 30);
}

fn redis() -> RedisServer {
    RedisServer::start_with(RedisOptions {
        appendonly: false,
        ..RedisOptions::default()
    })
    .unwrap()
}

async fn redis_attempts(server: &RedisServer) -> Arc<dyn AttemptStore> {
    let conn: ConnectionManager = redis::Client::open(server.url())
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    Arc::new(RedisAttemptStore::new(conn, "ringfence:"))
}

#[tokio::test]
async fn two_nodes_sharing_redis_see_the_same_count() {
    let server = redis();
    let f = fixture().await;
    let alice = f.register(ALICE).await;
    // Two services with their own connections, as two processes would have.
    let node_a = f
        .accounts
        .clone()
        .with_throttle(redis_attempts(&server).await, ThrottlePolicy::default());
    let node_b = f
        .accounts
        .clone()
        .with_throttle(redis_attempts(&server).await, ThrottlePolicy::default());
    let ip = Some("203.0.113.50");

    for _ in 0..3 {
        assert_invalid(sign_in(&node_a, ALICE, OTHER_PASSWORD, ip).await);
    }
    for _ in 0..2 {
        assert_invalid(sign_in(&node_b, ALICE, OTHER_PASSWORD, ip).await);
    }
    // Five failures between them: both nodes refuse even the right password.
    for node in [&node_a, &node_b] {
        assert_about(
            retry_after(sign_in(node, ALICE, GOOD_PASSWORD, ip).await),
            Duration::seconds(1),
        );
    }
    let keys = server.redis_cli(&["KEYS", "*"]).unwrap();
    assert!(
        !keys.contains("alice") && !keys.contains("203.0.113"),
        "{keys}"
    );
    assert_eq!(
        keys.lines().count(),
        3,
        "one (account, address), one account and one address key: {keys}"
    );

    // A success on node B resets the account count for node A too.
    the_lock_ends_and_a_success_resets_the_count(&f.clock, &node_b, &node_a, &alice, ip).await;
}

#[tokio::test]
async fn sign_in_fails_closed_when_the_attempt_store_is_down() {
    let mut server = redis();
    let f = fixture().await;
    f.register(ALICE).await;
    let accounts = f
        .accounts
        .clone()
        .with_throttle(redis_attempts(&server).await, ThrottlePolicy::default());
    accounts.authenticate(ALICE, GOOD_PASSWORD).await.unwrap();
    server.stop();
    for password in [GOOD_PASSWORD, OTHER_PASSWORD] {
        let err = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            accounts.authenticate(ALICE, password),
        )
        .await
        .expect("answers promptly")
        .unwrap_err();
        assert_matches!(err, AccountError::Store(_));
        assert_eq!(err.code(), "store_unavailable");
        assert!(!err.is_client_error());
    }
    // Without a throttle nothing changes.
    f.sign_in(ALICE, GOOD_PASSWORD).await;
    assert!(f.accounts.throttle().is_none());
    assert_eq!(
        accounts.throttle().unwrap().policy(),
        &ThrottlePolicy::default()
    );
}
