//! The Redis store against the shared conformance suite on a real `redis-server`, plus the
//! Redis-specific promises: one self-pruning hash per user, count buckets, one command per
//! `get`, memory per session, cluster slots, corrupt records and outages as errors.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use chrono::Duration;
use redis::aio::ConnectionManager;
use ringfence_sessions::conformance::{self, base_now, sample_session, unique_user};
use ringfence_sessions::{RedisSessionStore, SessionCounts, SessionStore, StoreError};
use ringfence_testkit::{RedisOptions, RedisServer};

mod common;

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
async fn user_hash_prunes_sessions_that_expired_while_no_node_ran() {
    let server = server();
    let store = store(&server, "rf:").await;
    let user = unique_user("offline");
    let wall = base_now();
    // Written half an hour ago: the short session ended a minute ago. Redis 7.0 has no
    // per-field expiry, so its field stays until a script of this user prunes it.
    let then = wall - Duration::minutes(31);
    let dead = sample_session(&user, then);
    let mut alive = sample_session(&user, then);
    alive.idle_expires_at = wall + Duration::minutes(60);
    store.insert(&alive, None, then).await.unwrap();
    store.insert(&dead, None, then).await.unwrap();

    let key = store.user_key(&user);
    assert_eq!(key, format!("rf:{{u:.{user}}}"));
    assert_eq!(cli(&server, &["HLEN", &key]), "2");
    // The dead field is not served, even before pruning.
    assert_eq!(store.get(&user, &dead.id, wall).await.unwrap(), None);

    // A node starts again now.
    let listed = store.list_for_user(&user, wall).await.unwrap();
    assert_eq!(listed, vec![alive.clone()]);
    assert_eq!(cli(&server, &["HLEN", &key]), "1");
    assert_eq!(
        store.counts(wall).await.unwrap(),
        SessionCounts {
            active_sessions: 1,
            signed_in_users: 1
        }
    );
    // The hash expires with its latest record.
    let pexpiretime: i64 = cli(&server, &["PEXPIRETIME", &key]).parse().unwrap();
    assert_eq!(pexpiretime, alive.idle_expires_at.timestamp_millis());

    // Later, with no node running in between, everything is gone from the counts too.
    let later = wall + Duration::minutes(61);
    assert_eq!(store.counts(later).await.unwrap(), SessionCounts::default());
    assert!(store.list_for_user(&user, later).await.unwrap().is_empty());
    assert_eq!(cli(&server, &["EXISTS", &key]), "0");
}

#[tokio::test]
async fn keys_are_one_hash_per_user_and_count_buckets() {
    let server = server();
    let mut conn = connect(&server).await;
    let store = RedisSessionStore::new(conn.clone(), "rf:".to_owned());
    let now = base_now();
    // A canonical UUID is stored as 22 characters; other spellings keep their text.
    let uuid = "0b6f3c1e-1c2d-4e5f-8a9b-00000000beef";
    let upper = uuid.to_uppercase();
    let a = sample_session(uuid, now);
    let b = sample_session(&upper, now);
    let c = sample_session("tenant:7}x{", now);
    for s in [&a, &b, &c] {
        store.insert(s, None, now).await.unwrap();
    }
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("rf:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    let minute = |ms: i64| (ms - 1).div_euclid(1000).div_euclid(60);
    let expires = a.expires_at().timestamp_millis();
    assert_eq!(
        keys,
        vec![
            format!("rf:{{c}}:n"),
            format!("rf:{{c}}:n:{}", minute(expires)),
            "rf:{u:.0B6F3C1E-1C2D-4E5F-8A9B-00000000BEEF}".to_owned(),
            "rf:{u:.tenant:7}x{}".to_owned(),
            "rf:{u:C288HhwtTl-KmwAAAAC-7w}".to_owned(),
        ]
    );
    assert_eq!(store.user_key(uuid), "rf:{u:C288HhwtTl-KmwAAAAC-7w}");
    // Fields are the ids' 16 bytes.
    let fields: Vec<Vec<u8>> = redis::cmd("HKEYS")
        .arg(store.user_key(uuid))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(fields, vec![a.id.to_bytes().unwrap().to_vec()]);
    // Every user is reachable from the admin listings (the key names its user); keys layout v1
    // left behind (a record string and an index zset) match the SCAN pattern but are skipped.
    let old_user = "0b6f3c1e-1c2d-4e5f-8a9b-00000000cafe";
    let _: () = redis::pipe()
        .cmd("SET")
        .arg(format!("rf:{{u:{old_user}}}:s:{}", c.id))
        .arg("{}")
        .cmd("ZADD")
        .arg(format!("rf:{{u:{old_user}}}:idx"))
        .arg(1)
        .arg(c.id.as_str())
        .query_async(&mut conn)
        .await
        .unwrap();
    let all = store.list_all(10, now).await.unwrap();
    let mut users: Vec<&str> = all.iter().map(|s| s.user_id.as_str()).collect();
    users.sort();
    assert_eq!(users, vec![upper.as_str(), uuid, "tenant:7}x{"]);
    assert_eq!(store.find(&c.id, now).await.unwrap(), Some(c.clone()));
    assert_eq!(
        store.counts(now).await.unwrap(),
        SessionCounts {
            active_sessions: 3,
            signed_in_users: 3
        }
    );
}

#[tokio::test]
async fn the_count_sweep_reports_expired_sessions_once() {
    let captured = common::Captured::start();
    let server = server();
    let mut conn = connect(&server).await;
    let store = RedisSessionStore::new(conn.clone(), "sweep:".to_owned());
    let now = base_now();
    let minute = now.timestamp().div_euclid(60);
    // What the counts hold after sessions expired while nobody wrote: three sessions (of two
    // users) left in minutes that have passed, and one that was signed out in that time (its
    // -1 met its +1, so its field is gone). Redis's own clock bounds the sweep, so the planted
    // minutes are minutes of the real past.
    let _: () = redis::cmd("HSET")
        .arg(store.counts_key())
        .arg(format!("s{}", minute - 5))
        .arg(2)
        .arg(format!("u{}", minute - 5))
        .arg(1)
        .arg(format!("s{}", minute - 3))
        .arg(1)
        .arg(format!("u{}", minute - 3))
        .arg(1)
        .arg("t")
        .arg(minute - 6)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(captured.events("expired"), 0);

    // The next write anywhere sweeps them, once.
    store
        .insert(&sample_session(&unique_user("sweep"), now), None, now)
        .await
        .unwrap();
    assert_eq!(captured.events("expired"), 3);
    let lines = captured.event_lines("expired", "sessions=3");
    assert_eq!(lines.len(), 1, "{:?}", captured.log_lines());
    store
        .insert(&sample_session(&unique_user("sweep"), now), None, now)
        .await
        .unwrap();
    assert_eq!(captured.events("expired"), 3);
    assert_eq!(
        store.counts(now).await.unwrap(),
        SessionCounts {
            active_sessions: 2,
            signed_in_users: 2
        }
    );
    let left: Vec<String> = redis::cmd("HKEYS")
        .arg(store.counts_key())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        left.iter().all(|f| !f.ends_with(&(minute - 5).to_string())),
        "{left:?}"
    );
}

#[tokio::test]
async fn counts_move_between_buckets_and_heal_after_a_lost_update() {
    let server = server();
    let mut conn = connect(&server).await;
    let store = RedisSessionStore::new(conn.clone(), "rf:".to_owned());
    let now = base_now();
    let user = unique_user("counts");
    let mut s = sample_session(&user, now);
    store.insert(&s, None, now).await.unwrap();
    let one = SessionCounts {
        active_sessions: 1,
        signed_in_users: 1,
    };
    // Renewed every 10 minutes for an hour: the count follows its bucket, second by second.
    for step in 1..=6 {
        let at = now + Duration::minutes(10 * step);
        s.last_seen_at = at;
        s.idle_expires_at = at + Duration::minutes(30);
        assert!(store.touch(&s, at).await.unwrap());
        assert_eq!(store.counts(at).await.unwrap(), one, "step {step}");
    }
    let end = s.idle_expires_at;
    assert_eq!(store.counts(end - Duration::seconds(1)).await.unwrap(), one);
    assert_eq!(store.counts(end).await.unwrap(), SessionCounts::default());

    // A lost update (here: the counts wiped after a sign-in) is wrong only until its bucket
    // passes.
    let store = RedisSessionStore::new(conn.clone(), "lost:".to_owned());
    let lost = sample_session(&unique_user("lost"), now);
    store.insert(&lost, None, now).await.unwrap();
    let counts_keys: Vec<String> = redis::cmd("KEYS")
        .arg("lost:{c}:n*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(counts_keys.len(), 2, "{counts_keys:?}");
    let _: () = redis::cmd("DEL")
        .arg(&counts_keys)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(store.counts(now).await.unwrap(), SessionCounts::default());
    // Its sign-out now takes away a count it never added: another session in the same bucket
    // goes uncounted (never below zero)…
    assert!(store.remove(&lost.user_id, &lost.id, now).await.unwrap());
    let same_bucket = sample_session(&unique_user("same"), now);
    store.insert(&same_bucket, None, now).await.unwrap();
    assert_eq!(store.counts(now).await.unwrap(), SessionCounts::default());
    // …until that bucket has passed; later sessions count exactly.
    let later = same_bucket.expires_at();
    let next = sample_session(&unique_user("next"), later);
    store.insert(&next, None, later).await.unwrap();
    assert_eq!(store.counts(later).await.unwrap(), one);
}

#[tokio::test]
async fn list_all_keeps_the_most_recent_of_many() {
    let server = server();
    let store = store(&server, "rf:").await;
    let now = base_now();
    // Enough sessions that the listing trims and passes over records below its cut; last
    // seen times repeat, so ties must still be broken by id.
    let mut all = Vec::new();
    for n in 0..700 {
        let mut s = sample_session(&unique_user("many"), now - Duration::minutes(5));
        s.last_seen_at = now - Duration::seconds(n % 97);
        s.idle_expires_at = s.last_seen_at + Duration::minutes(30);
        store.insert(&s, None, now).await.unwrap();
        all.push(s);
    }
    all.sort_by(|a, b| {
        b.last_seen_at
            .cmp(&a.last_seen_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    for limit in [1, 3, 10, 700, 1000] {
        let listed = store.list_all(limit, now).await.unwrap();
        assert_eq!(listed, all[..limit.min(all.len())], "limit {limit}");
    }
}

/// Writes `value` into field `field` of the hash `key`, behind the store's back.
async fn plant(conn: &mut ConnectionManager, key: &str, field: &[u8], value: &[u8]) {
    let _: () = redis::cmd("HSET")
        .arg(key)
        .arg(field)
        .arg(value)
        .query_async(conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn corrupt_records_are_errors_or_left_out_never_panics() {
    let server = server();
    let mut conn = connect(&server).await;
    let store = RedisSessionStore::new(conn.clone(), "rf:".to_owned());
    let now = base_now();
    let user = unique_user("corrupt");
    let s = sample_session(&user, now);
    store.insert(&s, None, now).await.unwrap();
    let field = s.id.to_bytes().unwrap();
    // A record whose header claims a far expiry but whose body is garbage.
    let mut garbage = vec![2u8, 0x0f, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0];
    garbage.extend_from_slice(b"\xff\xff\xff");
    plant(&mut conn, &store.user_key(&user), &field, &garbage).await;
    assert!(matches!(
        store.get(&user, &s.id, now).await,
        Err(StoreError::Corrupt(_))
    ));
    // The listings log a damaged record and go on: one bad record hides nothing else.
    let mine = sample_session(&user, now);
    store.insert(&mine, None, now).await.unwrap();
    assert_eq!(
        store.list_for_user(&user, now).await.unwrap(),
        vec![mine.clone()]
    );
    // "Sign out everywhere else" still ends it.
    assert_eq!(
        store
            .remove_for_user(&user, Some(&mine.id), now)
            .await
            .unwrap(),
        vec![s.id.clone()]
    );
    plant(&mut conn, &store.user_key(&user), &field, &garbage).await;
    store.remove(&user, &mine.id, now).await.unwrap();
    let other_user = unique_user("intact");
    let intact = sample_session(&other_user, now);
    store.insert(&intact, None, now).await.unwrap();
    assert_eq!(store.list_all(10, now).await.unwrap(), vec![intact.clone()]);
    assert_eq!(store.find(&s.id, now).await.unwrap(), None);
    assert_eq!(store.find(&intact.id, now).await.unwrap(), Some(intact));
    // Too short to hold an expiry: the scripts prune it as expired.
    plant(&mut conn, &store.user_key(&user), &field, b"x").await;
    assert!(store.list_for_user(&user, now).await.unwrap().is_empty());
    assert_eq!(cli(&server, &["EXISTS", &store.user_key(&user)]), "0");
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
        assert_eq!(stats, BTreeMap::from([("hget".to_owned(), 1)]), "{stats:?}");
    }
}

/// Sums `MEMORY USAGE` over every key the store writes and divides by the sessions: the total
/// and the share of each kind of key, in bytes per session.
async fn memory_per_session_with(
    users: usize,
    per_user: usize,
    redis_args: &[&str],
    user_agent: &str,
) -> (f64, BTreeMap<&'static str, f64>) {
    let server = RedisServer::start_with(RedisOptions {
        appendonly: false,
        extra_args: redis_args.iter().map(|a| (*a).to_owned()).collect(),
    })
    .unwrap();
    let mut conn = connect(&server).await;
    let store = RedisSessionStore::new(conn.clone(), "ringfence:".to_owned());
    let now = base_now();
    for u in 0..users {
        // Typical values: a UUID user id, a real browser User-Agent, an IPv4 address.
        let user = format!("{:08x}-1c2d-4e5f-8a9b-{:012x}", u, u * 7919);
        for _ in 0..per_user {
            let mut s = sample_session(&user, now);
            s.ip = Some("203.0.113.195".into());
            s.user_agent = Some(user_agent.to_owned());
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
        let kind = if key.starts_with("ringfence:{u:") {
            "user hash"
        } else if key.starts_with(store.counts_key()) {
            "count keys"
        } else {
            "other"
        };
        *by_kind.entry(kind).or_insert(0.0) += bytes as f64;
    }
    assert!(!by_kind.contains_key("other"), "{keys:?}");
    let sessions = (users * per_user) as f64;
    by_kind.values_mut().for_each(|bytes| *bytes /= sessions);
    (by_kind.values().sum(), by_kind)
}

/// The 70-byte User-Agent the memory figures are quoted for (Firefox on Linux).
const FIREFOX_UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
/// A longer, very common one (111 bytes): Chrome on Windows.
const CHROME_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
    (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

#[tokio::test]
async fn memory_per_session() {
    for per_user in [1, 2, 5] {
        let (total, by_kind) =
            memory_per_session_with(1000 / per_user, per_user, &[], FIREFOX_UA).await;
        println!("{per_user} session(s) per user: {total:.1} bytes per session {by_kind:.1?}");
        // The goal of layout v2: at most 400 bytes at one session per user (v1: 749).
        assert!(total <= 400.0, "{total} bytes per session");
    }
    // With the hashes kept as listpacks (the record is longer than the default 64 bytes):
    // printed for the operations guide, not a promise.
    for per_user in [1, 2, 5] {
        let args = ["--hash-max-listpack-value", "256"];
        let (total, by_kind) =
            memory_per_session_with(1000 / per_user, per_user, &args, FIREFOX_UA).await;
        println!(
            "hash-max-listpack-value 256, {per_user} session(s) per user: {total:.1} bytes per \
             session {by_kind:.1?}"
        );
        assert!(total <= 400.0, "{total} bytes per session");
    }
    // Chrome's longer User-Agent makes a 160-byte record, one allocator size class up (192
    // instead of 128 bytes with the string header): printed for the docs; the bound is that
    // size class, not the 400-byte goal, which is quoted for the 70-byte one.
    for (per_user, args) in [
        (1, &[][..]),
        (5, &[][..]),
        (1, &["--hash-max-listpack-value", "256"][..]),
    ] {
        let (total, by_kind) =
            memory_per_session_with(1000 / per_user, per_user, args, CHROME_UA).await;
        println!(
            "Chrome User-Agent, {per_user} session(s) per user {args:?}: {total:.1} bytes per \
             session {by_kind:.1?}"
        );
        assert!(total <= 440.0, "{total} bytes per session");
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
