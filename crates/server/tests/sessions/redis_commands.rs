//! Redis commands per authenticated request, counted by Redis itself (`INFO commandstats`).
//!
//! `INFO commandstats` counts every command Redis executes, including those a Lua script runs,
//! so a renewal shows up as its two `EVALSHA` round trips (the user's touch script, then the
//! script that moves the session and user counts between expiry buckets) and the commands those
//! scripts run. How many commands the counts script runs depends on the buckets involved (a
//! field reaching zero is deleted, old fields are swept once a minute), so a renewal's cost is
//! bounded here rather than fixed.
//!
//! Nothing else talks to this Redis while counting: the key ring's background refresh only runs
//! when `KeyRing::spawn_refresh` is called, which the in-process nodes never do (and the cookie's
//! key is already in memory, so opening it reads nothing), and users live in SQLite.

use std::collections::BTreeMap;

use chrono::Duration;
use reqwest::StatusCode;
use ringfence_testkit::RedisServer;

use crate::harness::*;

/// Commands whose only caller is the measurement itself (`config|resetstat`, `info`).
const MEASUREMENT: [&str; 2] = ["config", "info"];

/// `{command: calls}` since the last reset, without the measuring commands.
fn calls(redis: &RedisServer) -> BTreeMap<String, u64> {
    let info = redis.redis_cli(&["INFO", "commandstats"]).unwrap();
    let mut calls = BTreeMap::new();
    for line in info.lines() {
        let Some(rest) = line.trim().strip_prefix("cmdstat_") else {
            continue;
        };
        let (name, stats) = rest.split_once(':').unwrap();
        let count = stats
            .split(',')
            .find_map(|field| field.strip_prefix("calls="))
            .unwrap()
            .parse::<u64>()
            .unwrap();
        let command = name.split('|').next().unwrap_or(name);
        if !MEASUREMENT.contains(&command) {
            calls.insert(name.to_owned(), count);
        }
    }
    calls
}

fn total(calls: &BTreeMap<String, u64>) -> u64 {
    calls.values().sum()
}

/// Most commands one renewal of a one-session user may cost beyond the request's `HGET`: two
/// `EVALSHA`; the touch script's `HGETALL`, `HSET`, `PEXPIREAT`; the counts script's eight
/// `HINCRBY` (session and user, old and new bucket, minute and second level), up to eight `HDEL`
/// of fields reaching zero, two `PEXPIREAT` of minute keys, the once-a-minute sweep (`HMGET`,
/// `HKEYS`, `HDEL`, `HSET`) and the index's `PEXPIRETIME` and `PEXPIREAT`.
const MAX_RENEWAL_COST: u64 = 29;

/// Script calls: each renewal is two (`touch`, then the counts move).
fn writes(calls: &BTreeMap<String, u64>) -> u64 {
    calls.get("evalsha").copied().unwrap_or(0) + calls.get("eval").copied().unwrap_or(0)
}

fn reset(redis: &RedisServer) {
    assert_eq!(redis.redis_cli(&["CONFIG", "RESETSTAT"]).unwrap(), "OK");
}

#[tokio::test]
async fn redis_commands_per_authenticated_request() {
    let d = Deployment::single(Backend::Redis, None).await;
    let node = d.node(0);
    let redis = d.redis.as_ref().unwrap();
    d.add_user("alice@example.com", false).await;
    let device = Device::new(FIREFOX_LINUX, "198.51.100.60");
    device.login(node, "alice@example.com").await;
    // Warm-up: the first renewal also loads its scripts into Redis (a failed EVALSHA, then
    // SCRIPT LOAD), which a long-running node pays once.
    d.advance(Duration::minutes(4));
    assert_eq!(device.me(node).await, StatusCode::OK);

    // No renewal due: one command (the user hash's HGET) per authenticated request.
    const N: u64 = 200;
    reset(redis);
    for _ in 0..N {
        assert_eq!(device.me(node).await, StatusCode::OK);
    }
    let steady = calls(redis);
    let per_request = total(&steady) as f64 / N as f64;
    assert!(
        per_request <= 1.0,
        "{per_request} commands/request: {steady:?}"
    );
    assert_eq!(writes(&steady), 0, "{steady:?}");
    assert_eq!(steady.get("hget"), Some(&N), "{steady:?}");

    // What one renewal costs on top of the HGET.
    reset(redis);
    d.advance(Duration::minutes(4));
    assert_eq!(device.me(node).await, StatusCode::OK);
    let renewal = calls(redis);
    assert_eq!(writes(&renewal), 2, "{renewal:?}");
    assert_eq!(renewal.get("hget"), Some(&1), "{renewal:?}");
    // commandstats also counts the commands the scripts run: the touch script's three on this
    // one-session user, and the counts script's bucket updates.
    let renewal_cost = total(&renewal) - 1;
    assert!(
        renewal_cost <= MAX_RENEWAL_COST,
        "a renewal is the touch script and one counts script: {renewal:?}"
    );

    // Four minutes of clock time later, N requests: exactly one renewal among them.
    reset(redis);
    d.advance(Duration::minutes(4));
    for _ in 0..N {
        assert_eq!(device.me(node).await, StatusCode::OK);
    }
    let batch = calls(redis);
    assert_eq!(writes(&batch), 2, "{batch:?}");
    assert_eq!(batch.get("hget"), Some(&N), "{batch:?}");
    assert!(total(&batch) <= N + MAX_RENEWAL_COST, "{batch:?}");

    // The renewal interval is idle/10 = 3 minutes: 2:59 after a renewal nothing is written,
    // at 3:00 one renewal is.
    reset(redis);
    d.advance(Duration::minutes(2) + Duration::seconds(59));
    assert_eq!(device.me(node).await, StatusCode::OK);
    assert_eq!(writes(&calls(redis)), 0);
    d.advance(Duration::seconds(1));
    assert_eq!(device.me(node).await, StatusCode::OK);
    assert_eq!(writes(&calls(redis)), 2);

    // Steady traffic: a request every 5 s of clock time for 30 minutes (360 requests) renews
    // once per 3 minutes: 10 writes.
    reset(redis);
    let requests = 360;
    for _ in 0..requests {
        d.advance(Duration::seconds(5));
        assert_eq!(device.me(node).await, StatusCode::OK);
    }
    let traffic = calls(redis);
    let renewals = writes(&traffic) / 2;
    assert_eq!(writes(&traffic), 2 * 10, "{traffic:?}");
    let write_ratio = renewals as f64 / requests as f64;
    assert!(write_ratio <= 0.05, "{write_ratio} renewals/request");
    assert_eq!(traffic.get("hget"), Some(&requests), "{traffic:?}");
    let traffic_cost = total(&traffic) - requests;
    assert!(
        traffic_cost <= renewals * MAX_RENEWAL_COST,
        "{traffic_cost} commands for {renewals} renewals: {traffic:?}"
    );
    println!(
        "redis commands: {per_request:.3}/request without renewal; a renewal adds {renewal_cost} \
         (2 EVALSHA); steady traffic (1 request / 5 s): {write_ratio:.3} renewals/request, \
         {:.3} commands/request, {:.1} per renewal: {traffic:?}",
        total(&traffic) as f64 / requests as f64,
        traffic_cost as f64 / renewals as f64
    );
}
