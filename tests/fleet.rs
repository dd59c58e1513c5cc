//! A fleet: two nodes behind a real HAProxy (round robin), all real processes on loopback, on
//! each way a fleet can share its state: Redis + PostgreSQL, and PostgreSQL alone. What seed 1
//! and seed 2 promise, tested end to end; every scenario takes the fleet, so each runs on both.

mod common;

use std::collections::BTreeSet;

use common::*;
use reqwest::{Client, StatusCode};

impl Fleet {
    /// Deletes every session record behind the nodes' backs, in the store itself.
    fn delete_every_session_in_the_store(&self) {
        match &self.redis {
            Some(redis) => {
                let keys = redis
                    .redis_cli(&["--scan", "--pattern", "ringfence:{u:*"])
                    .unwrap();
                assert!(
                    !keys.trim().is_empty(),
                    "session keys live in Redis under the prefix"
                );
                for key in keys.lines().filter(|l| !l.trim().is_empty()) {
                    redis.redis_cli(&["DEL", key.trim()]).unwrap();
                }
            }
            None => {
                let deleted = self
                    .postgres
                    .psql(
                        "WITH gone AS (DELETE FROM sessions RETURNING 1) SELECT COUNT(*) FROM gone",
                    )
                    .unwrap();
                assert_ne!(deleted, "0", "session rows live in PostgreSQL");
            }
        }
    }
}

/// A [`Fleet`] sharing `shared`, with no extra flags.
fn fleet(shared: Shared) -> Fleet {
    fleet_sharing(shared, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_behind_haproxy_shares_keys_and_sessions() {
    shares_keys_and_sessions(&mut fleet(Shared::RedisAndPostgres)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_on_postgres_alone_shares_keys_and_sessions() {
    let mut fleet = fleet(Shared::PostgresAlone);
    shares_keys_and_sessions(&mut fleet).await;
    // No node kept sessions in its own data dir: both read the one table.
    for dir in &fleet.dirs {
        assert!(
            !dir.path().join("ringfence.db").exists(),
            "a node fell back to an embedded SQLite file"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_sees_the_fleet_state() {
    cli_sees_the_state_of(&fleet(Shared::RedisAndPostgres)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_sees_the_fleet_state_on_postgres_alone() {
    cli_sees_the_state_of(&fleet(Shared::PostgresAlone)).await;
}

/// A node's `/readyz` status and the session gauges of its `/metrics` (active sessions,
/// signed-in users).
async fn ready_and_counted(client: &Client, node: &str) -> (StatusCode, [u64; 2]) {
    let ready = client.get(format!("{node}/readyz")).answer_status().await;
    let metrics = client.get(format!("{node}/metrics")).answer_text().await;
    let gauge = |name: &str| {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{metrics}")) as u64
    };
    (
        ready,
        [
            gauge("ringfence_active_sessions"),
            gauge("ringfence_signed_in_users"),
        ],
    )
}

/// `GET /api/v1/me` of `client` on `node` answers `401` for a session revoked on another node:
/// at once on the very next request when every request reads the store (PostgreSQL alone),
/// within the contract's bound (100 ms, `--session-cache on`) when the node serves the session
/// from memory and hears of the change from Redis, a push that normally arrives before the
/// client's next request (milliseconds; `crates/sessions/examples/revocation_latency.rs`
/// measures it) but, on a machine whose cores are all busy, may be scheduled after it.
async fn refused_after_revocation(
    client: &reqwest::Client,
    node: &str,
    session_cache: bool,
    what: &str,
) {
    let bound = if session_cache {
        std::time::Duration::from_millis(100)
    } else {
        std::time::Duration::ZERO
    };
    let started = std::time::Instant::now();
    loop {
        let status = client
            .get(format!("{node}/api/v1/me"))
            .answer_status()
            .await;
        if status == StatusCode::UNAUTHORIZED {
            return;
        }
        assert_eq!(status, StatusCode::OK, "{what}");
        assert!(
            started.elapsed() < bound,
            "{what}: still 200 after {:?} (bound {bound:?})",
            started.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// The seed's demo and revocation: a form from one node posted to the other, requests
/// alternating through the balancer, a second device revoked on one node and refused by the
/// other at once, "sign out everywhere else", the store as the truth, a node killed.
async fn shares_keys_and_sessions(fleet: &mut Fleet) {
    let (a, b) = (fleet.nodes[0].url(), fleet.nodes[1].url());
    let lb = fleet.haproxy.url();
    let client = browser();

    // The form from node1, posted to node2: the antiforgery token and cookie made on one node
    // are accepted by the other (shared key ring).
    let (node, html) = get_page(&client, &format!("{a}/register")).await;
    assert_eq!(node, "node1");
    let fields = [("email", "fleet@example.com"), ("password", PASSWORD)];
    let response = send_form(client.post(format!("{b}/register")), &fields, &html).await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "POST on the other node succeeds"
    );
    assert_eq!(node_of(&response), "node2");

    // Through the balancer: requests alternate between nodes and every one is signed in.
    let mut seen = BTreeSet::new();
    let mut previous = String::new();
    for i in 0..10 {
        let response = client.get(format!("{lb}/api/v1/me")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "request {i}");
        let node = node_of(&response);
        assert_ne!(node, previous, "round robin alternates (request {i})");
        let me: serde_json::Value = response.json().await.unwrap();
        assert_eq!(me["user"]["email"], "fleet@example.com");
        assert_eq!(me["node"], node.as_str());
        seen.insert(node.clone());
        previous = node;
    }
    assert_eq!(seen.len(), 2);

    // The client address behind HAProxy comes from X-Forwarded-For of the trusted proxy.
    let sessions: serde_json::Value = client
        .get(format!("{lb}/api/v1/sessions"))
        .answer_json()
        .await;
    assert_eq!(sessions["sessions"][0]["ip"], "127.0.0.1");

    // A second device signs in; the first revokes it through node1; node2 refuses it at once.
    let phone = browser();
    login_api(&phone, &lb, "fleet@example.com", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36").await;
    let csrf = api_csrf(&client, &a).await;
    let list: serde_json::Value = client
        .get(format!("{a}/api/v1/sessions"))
        .answer_json()
        .await;
    let other = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .expect("the phone's session")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        phone.get(format!("{b}/api/v1/me")).answer_status().await,
        StatusCode::OK
    );
    let response = client
        .delete(format!("{a}/api/v1/sessions/{other}"))
        .header("x-csrf-token", &csrf)
        .answer_status()
        .await;
    assert_eq!(response, StatusCode::NO_CONTENT);
    let cache = fleet.redis.is_some();
    refused_after_revocation(&phone, &b, cache, "revoked on node1, refused by node2").await;

    // "Sign out everywhere else" on node2: the phone, signed in again, is refused by node1 at
    // once; the current session stays. Both nodes' readiness and gauges see the same store.
    login_api(&phone, &lb, "fleet@example.com", "curl/8").await;
    let (ready, gauges) = ready_and_counted(&client, &a).await;
    assert_eq!(ready, StatusCode::OK);
    assert_eq!(gauges, [2, 1], "active sessions, signed-in users");
    let revoked: serde_json::Value = client
        .post(format!("{b}/api/v1/sessions/revoke-others"))
        .header("x-csrf-token", &csrf)
        .answer_json()
        .await;
    assert_eq!(revoked["revoked"], 1);
    refused_after_revocation(&phone, &a, cache, "revoked on node2, refused by node1").await;
    let (ready, gauges) = ready_and_counted(&client, &b).await;
    assert_eq!(ready, StatusCode::OK);
    assert_eq!(gauges, [1, 1], "active sessions, signed-in users");

    // Deleting the sessions in the store signs the user out (the store is the truth).
    fleet.delete_every_session_in_the_store();
    assert_eq!(
        client.get(format!("{lb}/api/v1/me")).answer_status().await,
        StatusCode::UNAUTHORIZED
    );

    // Sign in again through the balancer, kill one node: still signed in via the other.
    let again = login_page(&client, &lb, "fleet@example.com", PASSWORD).await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    fleet.nodes[0].kill();
    for i in 0..10 {
        let response = client.get(format!("{lb}/api/v1/me")).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "request {i} after killing node1"
        );
        assert_eq!(node_of(&response), "node2");
    }
    assert_signed_in_as(&client, &lb, "fleet@example.com").await;
}

/// The admin commands, run beside the fleet on the same stores, see and change its state.
async fn cli_sees_the_state_of(fleet: &Fleet) {
    let lb = fleet.haproxy.url();
    let client = browser();
    register_api(&client, &lb, "ops@example.com").await;
    login_api(&client, &lb, "ops@example.com", "curl/8").await;
    let stores = fleet.store_args();
    // `ringfence ARGS` on the fleet's stores.
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(stores.iter().map(String::as_str));
        cli(&all, None)
    };
    let (ok, out, err) = run(&["sessions", "count", "--json"]);
    assert!(ok, "{err}");
    let counts: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(counts["active_sessions"], 1);
    assert_eq!(counts["signed_in_users"], 1);
    // One user's count: the only user, so all the active sessions are theirs.
    let per_user = |email: &str| run(&["sessions", "count", "--json", "--user", email]);
    let (ok, out, err) = per_user("ops@example.com");
    assert!(ok, "{err}");
    let mine: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(mine["active_sessions"], counts["active_sessions"]);
    assert_eq!(mine["user"], "ops@example.com");
    let (ok, _, err) = per_user("nobody@example.com");
    assert!(!ok && err.contains("no user"), "{err}");
    let (ok, out, _) = run(&["keys", "list", "--json"]);
    assert!(ok);
    let keys: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        keys.as_array().unwrap().len(),
        1,
        "two nodes started together made one key"
    );
    let (ok, out, _) = run(&["sessions", "list", "--user", "ops@example.com"]);
    assert!(ok && out.contains("curl"), "{out}");
    let (ok, out, _) = run(&["sessions", "revoke", "--user", "ops@example.com"]);
    assert!(ok && out.contains("revoked 1"), "{out}");
    assert_eq!(
        client.get(format!("{lb}/api/v1/me")).answer_status().await,
        StatusCode::UNAUTHORIZED
    );
}
