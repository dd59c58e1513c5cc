//! The Redis store against the shared conformance suite on a real `redis-server`, plus the
//! Redis-specific promises: self-pruning per-user index, one command per `get`, memory per
//! session, cluster slots, outages as errors.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use chrono::Duration;
use redis::aio::ConnectionManager;
use ringfence_sessions::conformance::{self, base_now, sample_session, unique_user};
use ringfence_sessions::{RedisSessionStore, SessionCounts, SessionStore, StoreError};
use ringfence_testkit::{RedisOptions, RedisServer};

fn server() -> RedisServer {
    RedisServer::start_with(RedisOptions {
        appendonly: false,
        ..RedisOptions::default()
    })
    .unwrap()
}

async fn connect(server: &RedisServer) -> ConnectionManager {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap()
}

async fn store(server: &RedisServer, prefix: &str) -> RedisSessionStore {
    RedisSessionStore::new(connect(server).await, prefix.to_owned())
}

fn cli(server: &RedisServer, args: &[&str]) -> String {
    server.redis_cli(args).unwrap()
}

#[tokio::test]
async fn redis_store_passes_conformance() {
    let server = server();
    let conn = connect(&server).await;
    let mut n = 0;
    conformance::run_all(|| {
        n += 1;
        let store = RedisSessionStore::new(conn.clone(), format!("conf{n}:"));
        async move { store }
    })
    .await;
}

#[tokio::test]
async fn per_user_index_prunes_records_that_expired_while_no_node_ran() {
    let server = server();
    let store = store(&server, "rf:").await;
    let user = unique_user("offline");
    let wall = base_now();
    // Written half an hour ago: the short session ended a minute ago by Redis's own clock, so
    // Redis already dropped its record; the index still lists it.
    let then = wall - Duration::minutes(31);
    let dead = sample_session(&user, then);
    let mut alive = sample_session(&user, then);
    alive.idle_expires_at = wall + Duration::minutes(60);
    store.insert(&alive, None, then).await.unwrap();
    store.insert(&dead, None, then).await.unwrap();

    let idx = format!("rf:{{u:{user}}}:idx");
    assert_eq!(
        cli(
            &server,
            &["EXISTS", &format!("rf:{{u:{user}}}:s:{}", dead.id)]
        ),
        "0"
    );
    assert_eq!(cli(&server, &["ZCARD", &idx]), "2");
    assert_eq!(cli(&server, &["ZCARD", "rf:sessions"]), "2");

    // A node starts again now.
    let listed = store.list_for_user(&user, wall).await.unwrap();
    assert_eq!(listed, vec![alive.clone()]);
    assert_eq!(cli(&server, &["ZCARD", &idx]), "1");
    assert_eq!(
        store.counts(wall).await.unwrap(),
        SessionCounts {
            active_sessions: 1,
            signed_in_users: 1
        }
    );
    assert_eq!(cli(&server, &["ZCARD", "rf:sessions"]), "1");
    // The index expires with its last member.
    let pexpiretime: i64 = cli(&server, &["PEXPIRETIME", &idx]).parse().unwrap();
    assert_eq!(pexpiretime, alive.idle_expires_at.timestamp_millis());

    // Later, with no node running in between, everything is gone from the counts too.
    let later = wall + Duration::minutes(61);
    assert_eq!(store.counts(later).await.unwrap(), SessionCounts::default());
    assert!(store.list_for_user(&user, later).await.unwrap().is_empty());
    assert_eq!(cli(&server, &["EXISTS", &idx]), "0");
}

fn command_stats(server: &RedisServer) -> BTreeMap<String, u64> {
    cli(server, &["INFO", "commandstats"])
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

#[tokio::test]
async fn get_is_exactly_one_command() {
    let server = server();
    let store = store(&server, "rf:").await;
    let user = unique_user("hot");
    let now = base_now();
    let session = sample_session(&user, now);
    store.insert(&session, None, now).await.unwrap();
    // Warm up the connection so nothing but the request is left to send.
    store.ping().await.unwrap();

    for (expected, at) in [(true, now), (false, now + Duration::hours(1))] {
        assert_eq!(cli(&server, &["CONFIG", "RESETSTAT"]), "OK");
        let got = store.get(&user, &session.id, at).await.unwrap();
        assert_eq!(got.is_some(), expected);
        let mut stats = command_stats(&server);
        // Our own redis-cli calls are counted too.
        stats.remove("info");
        stats.remove("config|resetstat");
        assert_eq!(stats, BTreeMap::from([("get".to_owned(), 1)]), "{stats:?}");
    }
}

/// Sums `MEMORY USAGE` over every key the store writes, per session, by key kind.
async fn memory_per_session_with(
    users: usize,
    per_user: usize,
) -> (u64, BTreeMap<&'static str, u64>) {
    let server = server();
    let mut conn = connect(&server).await;
    let store = RedisSessionStore::new(conn.clone(), "ringfence:".to_owned());
    let now = base_now();
    for u in 0..users {
        // Typical values: a UUID user id, a real browser User-Agent, an IPv4 address.
        let user = format!("{:08x}-1c2d-4e5f-8a9b-{:012x}", u, u * 7919);
        for _ in 0..per_user {
            let mut s = sample_session(&user, now);
            s.ip = Some("203.0.113.195".into());
            s.node = "node-1".into();
            store.insert(&s, None, now).await.unwrap();
        }
    }
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("ringfence:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut by_kind = BTreeMap::new();
    for key in &keys {
        let bytes: u64 = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(0)
            .query_async(&mut conn)
            .await
            .unwrap();
        let kind = if key.contains(":s:") {
            "record"
        } else if key.ends_with(":idx") {
            "user index"
        } else if key == "ringfence:sessions" {
            "global sessions"
        } else {
            "global users"
        };
        *by_kind.entry(kind).or_insert(0) += bytes;
    }
    let sessions = (users * per_user) as u64;
    by_kind.values_mut().for_each(|bytes| *bytes /= sessions);
    (by_kind.values().sum(), by_kind)
}

#[tokio::test]
async fn memory_per_session() {
    for per_user in [1, 2, 5] {
        let (total, by_kind) = memory_per_session_with(1000 / per_user, per_user).await;
        println!("{per_user} session(s) per user: {total} bytes per session {by_kind:?}");
        // A regression guard, not the goal: see the key layout docs for the breakdown.
        assert!(total <= 800, "{total} bytes per session");
    }
}

#[tokio::test]
async fn outage_is_unavailable_and_recovers() {
    let mut server = server();
    // Fail fast: the defaults retry with exponential backoff for several seconds before a
    // request errors, which would hold every request during an outage instead of a quick 503.
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_connection_timeout(Some(StdDuration::from_millis(500)))
        .set_response_timeout(Some(StdDuration::from_secs(1)));
    let conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection_manager_with_config(config)
        .await
        .unwrap();
    let store = RedisSessionStore::new(conn, "rf:".to_owned());
    let user = unique_user("outage");
    let now = base_now();
    let session = sample_session(&user, now);
    store.insert(&session, None, now).await.unwrap();

    server.stop();
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(
        StdDuration::from_secs(20),
        store.get(&user, &session.id, now),
    )
    .await
    .expect("a dead server must fail fast, not hang");
    assert!(
        started.elapsed() < StdDuration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{outcome:?}"
    );
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));

    server.restart().unwrap();
    // The connection manager reconnects on its own; bounded wait.
    let mut recovered = false;
    for _ in 0..100 {
        if store.ping().await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    assert!(recovered, "store did not reconnect after restart");
    // Appendonly was off, so the data is gone: a plain miss, not an error.
    assert_eq!(store.get(&user, &session.id, now).await.unwrap(), None);
}

#[tokio::test]
async fn works_on_a_redis_cluster_connection() {
    let server = RedisServer::start_with(RedisOptions {
        appendonly: false,
        extra_args: vec![
            "--cluster-enabled".into(),
            "yes".into(),
            "--cluster-announce-ip".into(),
            "127.0.0.1".into(),
        ],
    })
    .unwrap();
    assert_eq!(
        cli(&server, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]),
        "OK"
    );
    let mut ok = false;
    for _ in 0..100 {
        if cli(&server, &["CLUSTER", "INFO"]).contains("cluster_state:ok") {
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
    // A single node owning every slot still refuses cross-slot scripts and multi-key commands,
    // so this proves the layout keeps each request in one slot.
    let mut n = 0;
    conformance::run_all(|| {
        n += 1;
        let store = RedisSessionStore::with_connection(conn.clone(), format!("cl{n}:"));
        async move { store }
    })
    .await;
}
