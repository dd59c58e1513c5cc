//! Redis commands per authenticated request, counted by Redis itself (`INFO commandstats`).
//!
//! `INFO commandstats` counts every command Redis executes, including those a Lua script runs,
//! so a renewal (one `EVALSHA` round trip) shows up as the script's commands too.
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

/// Session-store writes: each renewal is one `touch` script (`EVALSHA`).
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
    // Warm-up: the first renewal also loads its script into Redis (a failed EVALSHA, then
    // SCRIPT LOAD), which a long-running node pays once.
    d.advance(Duration::minutes(4));
    assert_eq!(device.me(node).await, StatusCode::OK);

    // No renewal due: one command (the record's GET) per authenticated request.
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
    assert_eq!(steady.get("get"), Some(&N), "{steady:?}");

    // What one renewal costs on top of the GET.
    reset(redis);
    d.advance(Duration::minutes(4));
    assert_eq!(device.me(node).await, StatusCode::OK);
    let renewal = calls(redis);
    assert_eq!(writes(&renewal), 1, "{renewal:?}");
    assert_eq!(renewal.get("get"), Some(&1), "{renewal:?}");
    // commandstats also counts the commands a script runs: the touch script's handful on this
    // one-session user, plus the two global index updates sent beside it.
    let renewal_cost = total(&renewal) - 1;
    assert!(
        renewal_cost <= 10,
        "a renewal is one script and the global index updates: {renewal:?}"
    );

    // Four minutes of clock time later, N requests: exactly one renewal among them.
    reset(redis);
    d.advance(Duration::minutes(4));
    for _ in 0..N {
        assert_eq!(device.me(node).await, StatusCode::OK);
    }
    let batch = calls(redis);
    assert_eq!(writes(&batch), 1, "{batch:?}");
    assert_eq!(total(&batch), N + renewal_cost, "{batch:?}");

    // The renewal interval is idle/10 = 3 minutes: 2:59 after a renewal nothing is written,
    // at 3:00 one renewal is.
    reset(redis);
    d.advance(Duration::minutes(2) + Duration::seconds(59));
    assert_eq!(device.me(node).await, StatusCode::OK);
    assert_eq!(writes(&calls(redis)), 0);
    d.advance(Duration::seconds(1));
    assert_eq!(device.me(node).await, StatusCode::OK);
    assert_eq!(writes(&calls(redis)), 1);

    // Steady traffic: a request every 5 s of clock time for 30 minutes (360 requests) renews
    // once per 3 minutes: 10 writes.
    reset(redis);
    let requests = 360;
    for _ in 0..requests {
        d.advance(Duration::seconds(5));
        assert_eq!(device.me(node).await, StatusCode::OK);
    }
    let traffic = calls(redis);
    let renewals = writes(&traffic);
    assert_eq!(renewals, 10, "{traffic:?}");
    let write_ratio = renewals as f64 / requests as f64;
    assert!(write_ratio <= 0.05, "{write_ratio} writes/request");
    assert_eq!(total(&traffic), requests + renewals * renewal_cost);
    println!(
        "redis commands: {per_request:.3}/request without renewal; a renewal adds {renewal_cost}; \
         steady traffic (1 request / 5 s): {write_ratio:.3} writes/request, {:.3} commands/request",
        total(&traffic) as f64 / requests as f64
    );
}
