//! The TLS and Redis Cluster starters against the real programs.

use ringfence_testkit::{ClusterOptions, RedisCluster, RedisOptions, RedisServer, TestPki};

fn acl_args() -> Vec<String> {
    ["--user", "alice", "on", ">secret", "~*", "&*", "+@all"]
        .into_iter()
        .chain(["--user", "default", "off"])
        .map(str::to_owned)
        .collect()
}

#[test]
fn tls_redis_with_an_acl_user_answers_and_restarts() {
    let pki = TestPki::generate().unwrap();
    for file in [pki.ca_file(), pki.cert_file(), pki.key_file()] {
        assert!(file.exists(), "{}", file.display());
    }
    let mut redis = RedisServer::start_tls(
        &pki,
        RedisOptions {
            appendonly: true,
            extra_args: acl_args(),
        },
    )
    .unwrap();
    // The files were copied: the CA directory is not needed any more.
    drop(pki);
    assert!(redis.is_tls());
    assert_eq!(redis.url(), format!("rediss://127.0.0.1:{}/", redis.port()));

    // The default user is off.
    let anonymous = redis.redis_cli(&["PING"]).unwrap_or_default();
    assert!(anonymous.contains("NOAUTH"), "{anonymous}");

    redis.set_cli_user("alice", "secret");
    assert_eq!(redis.redis_cli(&["PING"]).unwrap(), "PONG");
    assert_eq!(redis.redis_cli(&["SET", "k", "v"]).unwrap(), "OK");

    // The port speaks only TLS.
    let plain = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &redis.port().to_string(), "PING"])
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&plain.stdout).trim(), "PONG");

    // Readiness after a restart waits for a new ready line, not the old one in the log.
    redis.restart().unwrap();
    assert_eq!(redis.redis_cli(&["GET", "k"]).unwrap(), "v");
}

#[test]
fn three_master_cluster_splits_slots_and_routes_keys() {
    let cluster = RedisCluster::start(3).unwrap();
    assert_eq!(cluster.nodes().len(), 3);
    let seeds = cluster.seeds();
    assert_eq!(seeds.split(',').count(), 3);
    assert!(seeds
        .split(',')
        .all(|s| s.starts_with("redis://127.0.0.1:")));
    for node in cluster.nodes() {
        let info = node.redis_cli(&["CLUSTER", "INFO"]).unwrap();
        assert!(info.contains("cluster_state:ok"), "{info}");
        assert!(info.contains("cluster_size:3"), "{info}");
    }
    // Keys land on the node that owns their slot, and the others redirect.
    let mut owners = std::collections::HashSet::new();
    // Key names shaped like ringfence's: a user's sessions hash, the counts, the key ring.
    for key in [
        "ringfence:{u:AAAAAAAAAAAAAAAAAAAAAA}",
        "ringfence:{u:.tenant-2}",
        "ringfence:{u:.tenant-3}",
        "ringfence:{c}:n",
        "ringfence:{keyring}:keys",
        "a",
        "b",
        "c",
    ] {
        let slot = cluster.keyslot(key).unwrap();
        let owner = cluster.node_for_slot(slot);
        owners.insert(owner.port());
        assert_eq!(owner.redis_cli(&["SET", key, "v"]).unwrap(), "OK", "{key}");
        for other in cluster.nodes().iter().filter(|n| n.port() != owner.port()) {
            let reply = other.redis_cli(&["GET", key]).unwrap();
            assert!(reply.starts_with("MOVED"), "{key}: {reply}");
        }
    }
    assert!(owners.len() > 1, "every key landed on one master");
}

#[test]
fn tls_cluster_with_an_acl_user() {
    let pki = TestPki::generate().unwrap();
    let cluster = RedisCluster::start_with(
        3,
        ClusterOptions {
            tls: Some(&pki),
            extra_args: acl_args(),
            cli_user: Some(("alice".into(), "secret".into())),
        },
    )
    .unwrap();
    assert!(cluster
        .seeds()
        .split(',')
        .all(|s| s.starts_with("rediss://127.0.0.1:")));
    for node in cluster.nodes() {
        assert!(node.is_tls());
        assert!(node
            .redis_cli(&["CLUSTER", "INFO"])
            .unwrap()
            .contains("cluster_state:ok"));
    }
}

#[test]
fn a_cluster_needs_at_least_one_master() {
    assert!(RedisCluster::start(0).is_err());
}
