//! The AttemptStore conformance suite on every backend (SQLite file, real redis-server, Redis
//! Cluster connection, real PostgreSQL), plus backend-specific promises: key layout and expiry
//! in Redis, purging in SQL, outages as errors.

use std::time::Duration as StdDuration;

use chrono::Duration;
use ringfence_accounts::throttle_conformance::{self as conformance, fresh_key, t0};
use ringfence_accounts::{
    AttemptStore, AttemptStoreError, Database, PostgresAttemptStore, RedisAttemptStore,
    SqliteAttemptStore, ThrottleKey, ThrottlePolicy,
};
use ringfence_testkit::PostgresServer;
use tempfile::TempDir;

#[path = "common/redis.rs"]
mod redis_harness;
use redis_harness::{connect, redis_server};

/// Calls the macro `$each!` with the name of every check of the suite but `run_all` (which runs
/// them all on one store).
macro_rules! attempt_store_checks {
    ($each:ident) => {
        $each!(
            counting,
            lock_after_free_attempts,
            growing_delay,
            delay_is_capped,
            decay_after_window,
            reset,
            keys_are_independent,
            lock_never_shortens,
            concurrent_failures_all_count,
            schedule_follows_any_policy,
        );
    };
}

async fn sqlite_store() -> (SqliteAttemptStore, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ringfence.db").display());
    let db = Database::connect(&url).await.unwrap();
    let store = SqliteAttemptStore::new(db.sqlite_pool().unwrap().clone());
    store.migrate().await.unwrap();
    (store, dir)
}

macro_rules! sqlite_conformance {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let (store, _dir) = sqlite_store().await;
            conformance::$name(&store).await;
        }
    )*};
}

mod sqlite {
    use super::*;

    attempt_store_checks!(sqlite_conformance);
    sqlite_conformance!(run_all);
}

#[tokio::test]
async fn sqlite_through_database_shares_the_users_file_and_migrator() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ringfence.db").display());
    let db = Database::connect(&url).await.unwrap();
    // Users first, then attempts (and the other way round on a second node): one migrator.
    db.user_store().await.unwrap();
    let attempts = db.attempt_store().await.unwrap();
    conformance::run_all(attempts.as_ref()).await;
    db.user_store().await.unwrap();
    db.attempt_store().await.unwrap();
    db.close().await;

    // The counters survive a restart of the node.
    let key = fresh_key("account");
    let db = Database::connect(&url).await.unwrap();
    let attempts = db.attempt_store().await.unwrap();
    let p = ThrottlePolicy::default();
    for _ in 0..5 {
        attempts.record_failure(&key, 5, &p, t0()).await.unwrap();
    }
    db.close().await;
    let db = Database::connect(&url).await.unwrap();
    let attempts = db.attempt_store().await.unwrap();
    assert!(attempts.check(&key, t0()).await.unwrap().is_some());
    db.close().await;
}

#[tokio::test]
async fn sqlite_purges_forgotten_counters_and_keeps_no_plain_text() {
    let (store, _dir) = sqlite_store().await;
    let p = ThrottlePolicy::default();
    let email = ringfence_accounts::Email::parse("alice@example.com").unwrap();
    let live = ThrottleKey::account(&email);
    let address = ThrottleKey::address("203.0.113.7");
    store
        .record_failure(live.as_str(), 5, &p, t0() + Duration::hours(1))
        .await
        .unwrap();
    store
        .record_failure(address.as_str(), 20, &p, t0() + Duration::hours(1))
        .await
        .unwrap();
    for _ in 0..10 {
        store
            .record_failure(&fresh_key("account"), 5, &p, t0())
            .await
            .unwrap();
    }
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM login_attempts")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(keys.len(), 12);
    for key in &keys {
        assert!(!key.contains("alice") && !key.contains("203."), "{key}");
    }
    // Nothing forgotten yet at t0 + 10 min.
    assert_eq!(store.purge(t0() + Duration::minutes(10)).await.unwrap(), 0);
    // The ten old counters are forgotten 15 minutes after their failure.
    assert_eq!(store.purge(t0() + Duration::minutes(15)).await.unwrap(), 10);
    assert!(store.check(live.as_str(), t0()).await.unwrap().is_none());
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM login_attempts")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(left, 2);

    // Purging also happens by itself every PURGE_EVERY failures.
    for _ in 0..300 {
        store
            .record_failure(&fresh_key("address"), 20, &p, t0())
            .await
            .unwrap();
    }
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM login_attempts")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(left, 302, "nothing is forgotten at t0 yet");
    for _ in 0..300 {
        store
            .record_failure(&fresh_key("address"), 20, &p, t0() + Duration::hours(2))
            .await
            .unwrap();
    }
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM login_attempts")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(
        left <= 300,
        "the counters of t0 and t0 + 1 h were purged, {left} rows left"
    );
}

#[tokio::test]
async fn sqlite_closed_pool_is_unavailable() {
    let (store, _dir) = sqlite_store().await;
    store.pool().close().await;
    let p = ThrottlePolicy::default();
    let key = fresh_key("account");
    for err in [
        store.check(&key, t0()).await.unwrap_err(),
        store.record_failure(&key, 5, &p, t0()).await.unwrap_err(),
        store.reset(&key).await.unwrap_err(),
    ] {
        assert!(matches!(err, AttemptStoreError::Unavailable(_)), "{err:?}");
    }
}

#[tokio::test]
async fn redis_store_passes_conformance() {
    let server = redis_server(Vec::new());
    let conn = connect(&server).await;
    let store = RedisAttemptStore::new(conn.clone(), "conf:");
    conformance::run_all(&store).await;
    // Each check separately on a fresh prefix, too.
    macro_rules! each {
        ($($name:ident),* $(,)?) => {$(
            let store = RedisAttemptStore::new(conn.clone(), concat!(stringify!($name), ":"));
            conformance::$name(&store).await;
        )*};
    }
    attempt_store_checks!(each);
}

#[tokio::test]
async fn redis_key_layout_and_expiry() {
    let server = redis_server(Vec::new());
    let store = RedisAttemptStore::new(connect(&server).await, "rf:");
    let email = ringfence_accounts::Email::parse("Alice@Example.com").unwrap();
    let key = ThrottleKey::account(&email);
    let p = ThrottlePolicy::default();
    // Real time here, so Redis's own expiry is checked against the same clock.
    let now = chrono::Utc::now();
    for _ in 0..4 {
        store
            .record_failure(key.as_str(), 5, &p, now)
            .await
            .unwrap();
    }
    let redis_key = store.redis_key(key.as_str());
    assert!(redis_key.starts_with("rf:throttle:account:"), "{redis_key}");
    let cli = |args: &[&str]| server.redis_cli(args).unwrap();
    let keys = cli(&["KEYS", "*"]);
    assert_eq!(keys.trim(), redis_key, "exactly one key, no e-mail in it");
    assert!(!keys.contains("alice"));
    assert_eq!(cli(&["TYPE", &redis_key]).trim(), "hash");
    assert_eq!(cli(&["HGET", &redis_key, "failures"]).trim(), "4");
    assert_eq!(cli(&["HGET", &redis_key, "locked_until"]).trim(), "0");
    // Unlocked: expires a window (15 min) after the failure.
    let ttl: i64 = cli(&["PTTL", &redis_key]).trim().parse().unwrap();
    assert!(ttl > 890_000 && ttl <= 900_000, "{ttl}");

    // Locked for 1 s: expires a window after the lock ends.
    let count = store
        .record_failure(key.as_str(), 5, &p, now)
        .await
        .unwrap();
    let until = count.locked_until.unwrap();
    assert_eq!(until, now + Duration::seconds(1) - sub_ms(now));
    assert_eq!(
        cli(&["HGET", &redis_key, "locked_until"]).trim(),
        until.timestamp_millis().to_string()
    );
    let ttl: i64 = cli(&["PTTL", &redis_key]).trim().parse().unwrap();
    assert!(ttl > 891_000 && ttl <= 901_000, "{ttl}");

    // Expired by Redis: simply absent.
    cli(&["PEXPIRE", &redis_key, "1"]);
    tokio::time::sleep(StdDuration::from_millis(20)).await;
    assert_eq!(store.check(key.as_str(), now).await.unwrap(), None);
    let count = store
        .record_failure(key.as_str(), 5, &p, now)
        .await
        .unwrap();
    assert_eq!(count.failures, 1);

    // Reset deletes the key.
    store.reset(key.as_str()).await.unwrap();
    assert_eq!(cli(&["EXISTS", &redis_key]).trim(), "0");
}

/// The part of `t` below a millisecond (stores keep milliseconds).
fn sub_ms(t: chrono::DateTime<chrono::Utc>) -> Duration {
    Duration::nanoseconds(i64::from(t.timestamp_subsec_nanos() % 1_000_000))
}

#[tokio::test]
async fn redis_garbage_in_a_counter_is_an_error_not_a_panic() {
    let server = redis_server(Vec::new());
    let store = RedisAttemptStore::new(connect(&server).await, "rf:");
    let key = fresh_key("account");
    let redis_key = store.redis_key(&key);
    server
        .redis_cli(&["HSET", &redis_key, "locked_until", "soon", "forget_at", "1"])
        .unwrap();
    let err = store.check(&key, t0()).await.unwrap_err();
    assert!(matches!(err, AttemptStoreError::Corrupt(_)), "{err:?}");
    // A key of the wrong type: the script fails, the store reports it.
    let other = fresh_key("account");
    server
        .redis_cli(&["SET", &store.redis_key(&other), "x"])
        .unwrap();
    let p = ThrottlePolicy::default();
    assert!(store.record_failure(&other, 5, &p, t0()).await.is_err());
    assert!(store.check(&other, t0()).await.is_err());
}

#[tokio::test]
async fn redis_outage_is_unavailable() {
    let mut server = redis_server(Vec::new());
    let store = RedisAttemptStore::new(connect(&server).await, "rf:");
    let key = fresh_key("account");
    let p = ThrottlePolicy::default();
    store.record_failure(&key, 5, &p, t0()).await.unwrap();
    server.stop();
    let err = tokio::time::timeout(StdDuration::from_secs(10), store.check(&key, t0()))
        .await
        .expect("answers promptly")
        .unwrap_err();
    assert!(matches!(err, AttemptStoreError::Unavailable(_)), "{err:?}");
    let err = tokio::time::timeout(
        StdDuration::from_secs(10),
        store.record_failure(&key, 5, &p, t0()),
    )
    .await
    .expect("answers promptly")
    .unwrap_err();
    assert!(matches!(err, AttemptStoreError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn redis_cluster_connection_passes_conformance() {
    let server = redis_server(vec![
        "--cluster-enabled".into(),
        "yes".into(),
        "--cluster-announce-ip".into(),
        "127.0.0.1".into(),
    ]);
    let cli = |args: &[&str]| server.redis_cli(args).unwrap();
    assert_eq!(
        cli(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]).trim(),
        "OK"
    );
    let mut ok = false;
    for _ in 0..100 {
        if cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok") {
            ok = true;
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    assert!(ok, "single-node cluster did not become ready");
    let conn = redis::cluster::ClusterClient::new(vec![server.url()])
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    // A cluster node refuses scripts whose keys span slots; every request here has one key.
    let store = RedisAttemptStore::new(conn, "cl:");
    conformance::run_all(&store).await;
}

async fn start_postgres() -> PostgresServer {
    tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .unwrap()
        .expect("start PostgreSQL")
}

/// One server for the whole check (starting one takes seconds); fresh databases per part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_conformance() {
    let server = start_postgres().await;

    macro_rules! each {
        ($($name:ident),* $(,)?) => {$(
            let url = server.fresh_database().unwrap();
            let db = Database::connect(&url).await.unwrap();
            let store = PostgresAttemptStore::new(db.postgres_pool().unwrap().clone());
            store.migrate().await.unwrap();
            conformance::$name(&store).await;
            db.close().await;
        )*};
    }
    attempt_store_checks!(each);
    each!(run_all);

    // Through Database, as the server opens it; several nodes racing on one key.
    let url = server.fresh_database().unwrap();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let db = Database::connect(&url).await.unwrap();
        db.user_store().await.unwrap();
        let attempts = db.attempt_store().await.unwrap();
        nodes.push((db, attempts));
    }
    conformance::run_all(nodes[0].1.as_ref()).await;
    let key = fresh_key("account");
    let p = ThrottlePolicy::default();
    let mut calls = Vec::new();
    for (_, store) in &nodes {
        for _ in 0..8 {
            let store = store.clone();
            let key = key.clone();
            calls.push(tokio::spawn(async move {
                store.record_failure(&key, 100, &p, t0()).await
            }));
        }
    }
    let mut counts = Vec::new();
    for call in calls {
        counts.push(call.await.unwrap().unwrap().failures);
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=24).collect::<Vec<_>>());

    // Purging.
    let store = PostgresAttemptStore::new(nodes[0].0.postgres_pool().unwrap().clone());
    assert!(store.purge(t0() + Duration::days(2)).await.unwrap() > 0);
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM login_attempts")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
    for (db, _) in &nodes {
        db.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_is_unavailable() {
    let mut server = start_postgres().await;
    let url = server.fresh_database().unwrap();
    let db = Database::connect(&url).await.unwrap();
    let store = db.attempt_store().await.unwrap();
    let key = fresh_key("account");
    let p = ThrottlePolicy::default();
    store.record_failure(&key, 5, &p, t0()).await.unwrap();
    tokio::task::block_in_place(|| server.stop());
    let err = store.record_failure(&key, 5, &p, t0()).await.unwrap_err();
    assert!(matches!(err, AttemptStoreError::Unavailable(_)), "{err:?}");
    let err = store.check(&key, t0()).await.unwrap_err();
    assert!(matches!(err, AttemptStoreError::Unavailable(_)), "{err:?}");
    db.close().await;
}
