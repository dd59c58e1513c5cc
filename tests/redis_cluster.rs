//! Two nodes on a real three-master Redis Cluster: keys and sessions shared, per-user requests
//! each in one hash slot; and the same over TLS with an ACL user.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use reqwest::{Client, StatusCode};
use ringfence_testkit::{ClusterOptions, RedisCluster, RedisServer, TestPki};

fn run(args: &[&str]) -> Run {
    common::run(args, None, &[])
}

fn assert_one_line_failure(run: &Run, needle: &str) {
    common::assert_one_line_failure(run, needle, "");
}

fn shared_database(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("accounts.db").display())
}

async fn status(client: &Client, url: String) -> StatusCode {
    client.get(url).answer_status().await
}

/// Every key on every master, with the port of the master that holds it.
fn keys_by_master(cluster: &RedisCluster) -> BTreeMap<String, u16> {
    let mut all = BTreeMap::new();
    for node in cluster.nodes() {
        let keys = node
            .redis_cli(&["--scan", "--pattern", "ringfence:*"])
            .unwrap();
        for key in keys.lines().filter(|k| !k.is_empty()) {
            all.insert(key.to_owned(), node.port());
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_keys_and_sessions_on_a_three_master_cluster() {
    let cluster = RedisCluster::start(3).expect("three-master Redis Cluster");
    let seeds = cluster.seeds();
    let shared = tempfile::tempdir().unwrap();
    let database = shared_database(shared.path());
    let mut dirs = Vec::new();
    let mut nodes = Vec::new();
    for name in ["cluster-1", "cluster-2"] {
        let dir = tempfile::tempdir().unwrap();
        nodes.push(start_node(
            name,
            dir.path(),
            &[
                "--redis-cluster".to_owned(),
                seeds.clone(),
                "--database".to_owned(),
                database.clone(),
            ],
        ));
        dirs.push(dir);
    }
    let (one, two) = (nodes[0].url(), nodes[1].url());
    let laptop = browser();
    let phone = browser();
    for base in [&one, &two] {
        assert_eq!(
            status(&laptop, format!("{base}/readyz")).await,
            StatusCode::OK
        );
    }

    // Sign up and in on node 1; node 2 sees the session.
    let csrf = registered_and_signed_in(&laptop, &one, "cluster@example.com", "Laptop/1.0").await;
    let listed: serde_json::Value = laptop
        .get(format!("{two}/api/v1/sessions"))
        .answer_json()
        .await;
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{listed}");
    assert_eq!(sessions[0]["current"], true);
    assert_eq!(sessions[0]["node"], "cluster-1");

    // A second device on node 2.
    login_api(&phone, &two, "cluster@example.com", "Phone/1.0").await;
    for base in [&one, &two] {
        let listed: serde_json::Value = laptop
            .get(format!("{base}/api/v1/sessions"))
            .answer_json()
            .await;
        assert_eq!(listed["sessions"].as_array().unwrap().len(), 2, "{listed}");
    }
    let counted = run(&["sessions", "count", "--redis-cluster", &seeds]);
    assert!(counted.success, "{}", counted.stderr);
    assert!(
        counted.stdout.contains("active sessions: 2"),
        "{}",
        counted.stdout
    );

    // Sign out every other device from node 1: the phone is out on both nodes.
    let revoked = laptop
        .post(format!("{one}/api/v1/sessions/revoke-others"))
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    let revoked: serde_json::Value = revoked.json().await.unwrap();
    assert_eq!(revoked["revoked"], 1, "{revoked}");
    for base in [&one, &two] {
        assert_eq!(
            status(&phone, format!("{base}/api/v1/me")).await,
            StatusCode::UNAUTHORIZED,
            "phone on {base}"
        );
        assert_eq!(
            status(&laptop, format!("{base}/api/v1/me")).await,
            StatusCode::OK,
            "laptop on {base}"
        );
    }

    // The admin tools reach the same cluster.
    let keys = run(&["keys", "list", "--json", "--redis-cluster", &seeds]);
    assert!(keys.success, "{}", keys.stderr);
    let keys: serde_json::Value = serde_json::from_str(&keys.stdout).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
    let counted = run(&["sessions", "count", "--redis-cluster", &seeds]);
    assert!(counted.success, "{}", counted.stderr);
    assert!(
        counted.stdout.contains("active sessions: 1"),
        "{}",
        counted.stdout
    );

    // More users, so their keys spread over the masters.
    for i in 0..4 {
        let client = browser();
        let email = format!("spread{i}@example.com");
        register_api(&client, &two, &email).await;
        login_api(&client, &two, &email, "Spread/1.0").await;
    }
    // Every key sits on the master that owns its slot (the client routed it there); a user's
    // sessions are one key, `ringfence:{u:U'}`, the counts share the `{c}` tag.
    let placed = keys_by_master(&cluster);
    let mut users_per_master: BTreeMap<u16, BTreeSet<String>> = BTreeMap::new();
    for (key, port) in &placed {
        let slot = cluster.keyslot(key).unwrap();
        assert_eq!(cluster.node_for_slot(slot).port(), *port, "{key}");
        if let Some(tag) = key
            .split_once("{u:")
            .and_then(|(_, rest)| rest.split_once('}'))
        {
            users_per_master
                .entry(*port)
                .or_default()
                .insert(tag.0.to_owned());
        }
    }
    let users: BTreeSet<&String> = users_per_master.values().flatten().collect();
    assert_eq!(users.len(), 5, "{placed:?}");
    assert_eq!(
        users_per_master.values().map(BTreeSet::len).sum::<usize>(),
        5,
        "a user's keys are split over masters: {users_per_master:?}"
    );
    eprintln!(
        "users per master: {:?}",
        users_per_master
            .iter()
            .map(|(port, users)| (port, users.len()))
            .collect::<Vec<_>>()
    );
    assert!(placed.keys().any(|k| k.contains("{keyring}")));
    assert!(placed.keys().any(|k| k.starts_with("ringfence:{c}:n")));
    // The key ring's slot and the counts' slot are fixed by the prefix; on three masters they
    // land on different ones, so the data is not all on one master.
    let masters: BTreeSet<u16> = placed.values().copied().collect();
    assert!(masters.len() >= 2, "{placed:#?}");

    // The admin listing has no global index: it SCANs every master, so it finds all five
    // users' sessions wherever their keys landed.
    let listed = run(&["sessions", "list", "--redis-cluster", &seeds]);
    assert!(listed.success, "{}", listed.stderr);
    let rows: Vec<&str> = listed.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 5, "{}", listed.stdout);
    // Revoking by id alone finds the session the same way; the counts follow.
    let id = rows[0].split_whitespace().next().unwrap();
    let revoked = run(&["sessions", "revoke", id, "--redis-cluster", &seeds]);
    assert!(revoked.success, "{}", revoked.stderr);
    let counted = run(&["sessions", "count", "--redis-cluster", &seeds]);
    assert!(
        counted.stdout.contains("active sessions: 4"),
        "{}",
        counted.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_through_a_tls_cluster_with_an_acl_user() {
    let pki = TestPki::generate().unwrap();
    let secret = "clu5ter-Pa55";
    let acl = format!(">{secret}");
    let cluster = RedisCluster::start_with(
        3,
        ClusterOptions {
            tls: Some(&pki),
            extra_args: [
                "--user", "alice", "on", &acl, "~*", "&*", "+@all", "--user", "default", "off",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
            cli_user: Some(("alice".to_owned(), secret.to_owned())),
        },
    )
    .expect("three-master TLS Redis Cluster");
    let seeds = cluster
        .nodes()
        .iter()
        .map(|n| format!("rediss://alice:{secret}@127.0.0.1:{}/", n.port()))
        .collect::<Vec<_>>()
        .join(",");
    let ca = pki.ca_file().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(
        "tls-cluster",
        dir.path(),
        &[
            "--redis-cluster".to_owned(),
            seeds.clone(),
            "--redis-ca-file".to_owned(),
            ca.clone(),
            "--database".to_owned(),
            shared_database(dir.path()),
        ],
    );
    assert!(!node.output().contains(secret), "{}", node.output());
    let base = node.url();
    let client = browser();
    assert_eq!(
        status(&client, format!("{base}/readyz")).await,
        StatusCode::OK
    );
    register_api(&client, &base, "tls-cluster@example.com").await;
    login_api(&client, &base, "tls-cluster@example.com", "Laptop/1.0").await;
    assert_eq!(
        status(&client, format!("{base}/api/v1/me")).await,
        StatusCode::OK
    );
    assert!(keys_by_master(&cluster)
        .keys()
        .any(|k| k.starts_with("ringfence:{u:")));

    // Another CA, or the wrong password: one line, no password.
    let other = TestPki::generate().unwrap();
    let r = run(&[
        "keys",
        "list",
        "--redis-cluster",
        &seeds,
        "--redis-ca-file",
        other.ca_file().to_str().unwrap(),
    ]);
    assert_one_line_failure(&r, "TLS to Redis");
    assert!(!r.stderr.contains(secret));
    let wrong = seeds.replace(secret, "wrong-Pa55");
    let r = run(&[
        "keys",
        "list",
        "--redis-cluster",
        &wrong,
        "--redis-ca-file",
        &ca,
    ]);
    assert_one_line_failure(&r, "refused the user name or password");
    assert!(!r.stderr.contains("wrong-Pa55"), "{}", r.stderr);
}

#[test]
fn cluster_flag_mistakes_are_one_line_errors() {
    let plain = RedisServer::start().unwrap();
    let r = run(&[
        "keys",
        "list",
        "--redis",
        &plain.url(),
        "--redis-cluster",
        &plain.url(),
    ]);
    assert_one_line_failure(&r, "--redis-cluster");

    let r = run(&["keys", "list", "--redis-cluster", " , "]);
    assert_one_line_failure(&r, "seed");

    let r = run(&["keys", "list", "--redis-cluster", "http://127.0.0.1:1/"]);
    assert_one_line_failure(&r, "--redis-cluster");

    let r = run(&[
        "keys",
        "list",
        "--redis-cluster",
        "redis://127.0.0.1:1/,rediss://127.0.0.1:2/",
    ]);
    assert_one_line_failure(&r, "rediss://");

    // Nothing listens there.
    let dead = format!("redis://127.0.0.1:{}/", ringfence_testkit::free_port());
    let started = Instant::now();
    let r = run(&["keys", "list", "--redis-cluster", &dead]);
    assert_one_line_failure(&r, "Redis");
    assert!(started.elapsed() < Duration::from_secs(10));

    // A server that is not a cluster.
    let r = run(&["keys", "list", "--redis-cluster", &plain.url()]);
    assert_one_line_failure(&r, "not a Redis Cluster node");

    // Seeds must agree on the credentials.
    let r = run(&[
        "keys",
        "list",
        "--redis-cluster",
        "redis://a:one@127.0.0.1:1/,redis://a:two@127.0.0.1:2/",
    ]);
    assert_one_line_failure(&r, "--redis-cluster");
    assert!(
        !r.stderr.contains("one@") && !r.stderr.contains("two@"),
        "{}",
        r.stderr
    );
}
