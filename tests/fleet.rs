//! A fleet: Redis + PostgreSQL + two nodes behind a real HAProxy (round robin), all real
//! processes on loopback. What seed 1 and seed 2 promise, tested end to end.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use ringfence_testkit::{HaProxy, NodeProcess, PostgresServer, RedisServer};

struct Fleet {
    redis: RedisServer,
    _postgres: PostgresServer,
    nodes: Vec<NodeProcess>,
    haproxy: HaProxy,
    _dirs: Vec<tempfile::TempDir>,
}

fn fleet() -> Fleet {
    let redis = RedisServer::start().expect("redis");
    let postgres = PostgresServer::start().expect("postgres");
    let mut dirs = Vec::new();
    let mut nodes = Vec::new();
    for name in ["node1", "node2"] {
        let dir = tempfile::tempdir().unwrap();
        let args = vec![
            "--redis".to_owned(),
            redis.url(),
            "--database".to_owned(),
            postgres.url(),
            "--trusted-proxy".to_owned(),
            "127.0.0.1/32".to_owned(),
        ];
        nodes.push(start_node(name, dir.path(), &args));
        dirs.push(dir);
    }
    let backends: Vec<(String, std::net::SocketAddr)> = nodes
        .iter()
        .zip(["node1", "node2"])
        .map(|(n, name)| (name.to_owned(), n.addr()))
        .collect();
    let haproxy = HaProxy::start(&backends).expect("haproxy");
    for name in ["node1", "node2"] {
        haproxy
            .wait_for_server_status(name, "UP", Duration::from_secs(10))
            .expect("backend up");
    }
    Fleet {
        redis,
        _postgres: postgres,
        nodes,
        haproxy,
        _dirs: dirs,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_behind_haproxy_shares_keys_and_sessions() {
    let mut fleet = fleet();
    let (a, b) = (fleet.nodes[0].url(), fleet.nodes[1].url());
    let lb = fleet.haproxy.url();
    let client = browser();

    // The form from node1, posted to node2: the antiforgery token and cookie made on one node
    // are accepted by the other (shared key ring).
    let (node, html) = get_page(&client, &format!("{a}/register")).await;
    assert_eq!(node, "node1");
    let response = client
        .post(format!("{b}/register"))
        .form(&[
            ("email", "fleet@example.com"),
            ("password", PASSWORD),
            ("_csrf", &csrf_of(&html)),
        ])
        .send()
        .await
        .unwrap();
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
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sessions["sessions"][0]["ip"], "127.0.0.1");

    // A second device signs in; the first revokes it through node1; node2 refuses it at once.
    let phone = browser();
    login_api(&phone, &lb, "fleet@example.com", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36").await;
    let me: serde_json::Value = client
        .get(format!("{a}/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let csrf = me["csrf_token"].as_str().unwrap().to_owned();
    let list: serde_json::Value = client
        .get(format!("{a}/api/v1/sessions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
        phone
            .get(format!("{b}/api/v1/me"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let response = client
        .delete(format!("{a}/api/v1/sessions/{other}"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        phone
            .get(format!("{b}/api/v1/me"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED,
        "revoked on node1, refused by node2 on the next request"
    );

    // Deleting the user's sessions hash in Redis signs the user out (the store is the truth).
    let keys = fleet
        .redis
        .redis_cli(&["--scan", "--pattern", "ringfence:{u:*"])
        .unwrap();
    assert!(
        !keys.trim().is_empty(),
        "session keys live in Redis under the prefix"
    );
    for key in keys.lines().filter(|l| !l.trim().is_empty()) {
        fleet.redis.redis_cli(&["DEL", key.trim()]).unwrap();
    }
    assert_eq!(
        client
            .get(format!("{lb}/api/v1/me"))
            .send()
            .await
            .unwrap()
            .status(),
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
    assert_eq!(
        signed_in_as(&client, &lb).await.as_deref(),
        Some("fleet@example.com")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_sees_the_fleet_state() {
    let fleet = fleet();
    let lb = fleet.haproxy.url();
    let client = browser();
    register_api(&client, &lb, "ops@example.com").await;
    login_api(&client, &lb, "ops@example.com", "curl/8").await;
    let redis = fleet.redis.url();
    let (ok, out, err) = cli(
        &[
            "sessions",
            "count",
            "--json",
            "--redis",
            &redis,
            "--database",
            &fleet._postgres.url(),
        ],
        None,
    );
    assert!(ok, "{err}");
    let counts: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(counts["active_sessions"], 1);
    assert_eq!(counts["signed_in_users"], 1);
    // One user's count: the only user, so all the active sessions are theirs.
    let store = [
        "--redis",
        redis.as_str(),
        "--database",
        &fleet._postgres.url(),
    ];
    let per_user = |email: &str| {
        let mut args = vec!["sessions", "count", "--json", "--user", email];
        args.extend_from_slice(&store);
        cli(&args, None)
    };
    let (ok, out, err) = per_user("ops@example.com");
    assert!(ok, "{err}");
    let mine: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(mine["active_sessions"], counts["active_sessions"]);
    assert_eq!(mine["user"], "ops@example.com");
    let (ok, _, err) = per_user("nobody@example.com");
    assert!(!ok && err.contains("no user"), "{err}");
    let (ok, out, _) = cli(
        &[
            "keys",
            "list",
            "--json",
            "--redis",
            &redis,
            "--database",
            &fleet._postgres.url(),
        ],
        None,
    );
    assert!(ok);
    let keys: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        keys.as_array().unwrap().len(),
        1,
        "two nodes started together made one key"
    );
    let (ok, out, _) = cli(
        &[
            "sessions",
            "list",
            "--user",
            "ops@example.com",
            "--redis",
            &redis,
            "--database",
            &fleet._postgres.url(),
        ],
        None,
    );
    assert!(ok && out.contains("curl"), "{out}");
    let (ok, out, _) = cli(
        &[
            "sessions",
            "revoke",
            "--user",
            "ops@example.com",
            "--redis",
            &redis,
            "--database",
            &fleet._postgres.url(),
        ],
        None,
    );
    assert!(ok && out.contains("revoked 1"), "{out}");
    assert_eq!(
        client
            .get(format!("{lb}/api/v1/me"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}
