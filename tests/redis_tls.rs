//! TLS and ACL authentication to Redis, against a real `redis-server` that speaks only TLS with a
//! certificate from a CA made in the test.

mod common;

use std::path::Path;

use common::*;
use reqwest::StatusCode;
use ringfence_testkit::{RedisOptions, RedisServer, TestPki};

const USER: &str = "alice";
const SECRET: &str = "s3cret-Pa55";

/// A TLS-only Redis whose only user is `alice` (the default user is off).
fn tls_redis(pki: &TestPki) -> RedisServer {
    let acl = format!(">{SECRET}");
    let mut redis = RedisServer::start_tls(
        pki,
        RedisOptions {
            appendonly: false,
            extra_args: [
                "--user", USER, "on", &acl, "~*", "&*", "+@all", "--user", "default", "off",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        },
    )
    .expect("TLS redis-server (Debian's redis-server is built with TLS)");
    redis.set_cli_user(USER, SECRET);
    redis
}

fn url_with(redis: &RedisServer, user: &str, password: &str) -> String {
    format!("rediss://{user}:{password}@127.0.0.1:{}/", redis.port())
}

fn run(args: &[&str], envs: &[(&str, &Path)]) -> Run {
    common::run(args, None, envs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_through_tls_redis_with_an_acl_user() {
    let pki = TestPki::generate().unwrap();
    let redis = tls_redis(&pki);
    let url = url_with(&redis, USER, SECRET);
    let ca = pki.ca_file().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("accounts.db").display());
    let node = start_node(
        "tls-node",
        dir.path(),
        &[
            "--redis".to_owned(),
            url.clone(),
            "--redis-ca-file".to_owned(),
            ca.clone(),
            "--database".to_owned(),
            database,
        ],
    );
    assert!(
        !node.output().contains(SECRET),
        "the password leaked: {}",
        node.output()
    );
    let base = node.url();
    let client = browser();
    let readyz = client.get(format!("{base}/readyz")).answer_status().await;
    assert_eq!(readyz, StatusCode::OK);

    register_api(&client, &base, "tls@example.com").await;
    let login = login_api(&client, &base, "tls@example.com", "tls-test").await;
    assert_eq!(login["user"]["email"], "tls@example.com");
    let me = client
        .get(format!("{base}/api/v1/me"))
        .answer_status()
        .await;
    assert_eq!(me, StatusCode::OK);
    let sessions: serde_json::Value = client
        .get(format!("{base}/api/v1/sessions"))
        .answer_json()
        .await;
    assert_eq!(sessions["sessions"].as_array().unwrap().len(), 1);

    // The key ring and the session really are in that Redis (read back over TLS as alice).
    let keys = redis
        .redis_cli(&["--scan", "--pattern", "ringfence:*"])
        .unwrap();
    assert!(keys.contains("{keyring}"), "{keys}");
    assert!(keys.contains("ringfence:{u:"), "{keys}");

    // The admin tools take the same flags.
    let listed = run(
        &[
            "keys",
            "list",
            "--json",
            "--redis",
            &url,
            "--redis-ca-file",
            &ca,
        ],
        &[],
    );
    assert!(listed.success, "{}", listed.stderr);
    let keys: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
    let count = run(
        &["sessions", "count", "--redis", &url, "--redis-ca-file", &ca],
        &[],
    );
    assert!(count.success, "{}", count.stderr);
    assert!(
        count.stdout.contains("active sessions: 1"),
        "{}",
        count.stdout
    );
    assert!(!node.output().contains(SECRET));
}

/// `ringfence serve` on the Redis at `url` trusting the CA in `ca`, users in `dir`: a run that
/// is expected to fail at start.
fn serve_on(url: &str, ca: &Path, dir: &Path) -> Run {
    let database = format!("sqlite://{}", dir.join("a.db").display());
    let ca = ca.to_str().unwrap();
    let listen = ["--listen", "127.0.0.1:0"];
    let stores = [
        "--redis",
        url,
        "--redis-ca-file",
        ca,
        "--database",
        &database,
    ];
    run(&[&["serve"][..], &listen, &stores].concat(), &[])
}

#[test]
fn a_wrong_password_is_refused_in_one_line_without_the_password() {
    let pki = TestPki::generate().unwrap();
    let redis = tls_redis(&pki);
    let ca = pki.ca_file();
    let wrong = "not-the-Pa55word";
    let url = url_with(&redis, USER, wrong);
    let dir = tempfile::tempdir().unwrap();
    let serve = serve_on(&url, &ca, dir.path());
    assert_one_line_failure(&serve, "Redis", wrong);
    assert!(serve.stderr.contains("password"), "{}", serve.stderr);

    // An unknown user is the same refusal.
    let ghost = run(
        &[
            "keys",
            "list",
            "--redis",
            &url_with(&redis, "mallory", SECRET),
            "--redis-ca-file",
            ca.to_str().unwrap(),
        ],
        &[],
    );
    assert_one_line_failure(&ghost, "Redis", SECRET);

    // No credentials at all: the default user is off.
    let anonymous = run(
        &[
            "keys",
            "list",
            "--redis",
            &redis.url(),
            "--redis-ca-file",
            ca.to_str().unwrap(),
        ],
        &[],
    );
    assert_one_line_failure(&anonymous, "Redis", SECRET);
}

#[test]
fn a_server_the_ca_did_not_sign_is_refused() {
    let pki = TestPki::generate().unwrap();
    let other = TestPki::generate().unwrap();
    let redis = tls_redis(&pki);
    let url = url_with(&redis, USER, SECRET);
    let dir = tempfile::tempdir().unwrap();
    let serve = serve_on(&url, &other.ca_file(), dir.path());
    assert_one_line_failure(&serve, "TLS", SECRET);
    assert!(serve.stderr.contains("certificate"), "{}", serve.stderr);

    // Without --redis-ca-file the system trust store decides: it does not know the test CA...
    let system = run(&["keys", "list", "--redis", &url], &[]);
    assert_one_line_failure(&system, "TLS", SECRET);
    // ...unless the system store is pointed at it (SSL_CERT_FILE, as OpenSSL honours it).
    let ca = pki.ca_file();
    let trusted = run(
        &["keys", "list", "--redis", &url],
        &[("SSL_CERT_FILE", ca.as_path())],
    );
    assert!(trusted.success, "{}", trusted.stderr);
}

#[test]
fn bad_ca_files_and_flag_mixups_are_one_line_errors() {
    let pki = TestPki::generate().unwrap();
    let redis = tls_redis(&pki);
    let url = url_with(&redis, USER, SECRET);
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("missing.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "this is not a certificate\n").unwrap();
    let broken = dir.path().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\n!!!notbase64!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for (ca, needle) in [
        (&missing, "cannot read --redis-ca-file"),
        (&garbage, "no PEM certificate"),
        (&broken, "--redis-ca-file"),
    ] {
        let ca = ca.to_str().unwrap();
        let r = run(
            &["keys", "list", "--redis", &url, "--redis-ca-file", ca],
            &[],
        );
        assert_one_line_failure(&r, needle, SECRET);
    }

    // A CA file with a plain-text URL, or with no Redis at all, is a mistake worth saying.
    let ca = pki.ca_file();
    let r = run(
        &[
            "keys",
            "list",
            "--redis",
            "redis://127.0.0.1:1/",
            "--redis-ca-file",
            ca.to_str().unwrap(),
        ],
        &[],
    );
    assert_one_line_failure(&r, "rediss://", SECRET);
    let r = run(
        &["keys", "list", "--redis-ca-file", ca.to_str().unwrap()],
        &[],
    );
    assert_one_line_failure(&r, "--redis-ca-file", SECRET);
}
