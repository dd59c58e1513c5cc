//! The key ring as operators meet it, with real processes: cold starts racing on one store,
//! primaries and secondaries, master keys, purges.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use ringfence_testkit::{NodeProcess, RedisServer};

/// Nodes of one deployment: keys and sessions in Redis, accounts in one shared database (a
/// SQLite file next to the Redis data, which every node of this machine reaches).
fn redis_args(redis: &RedisServer) -> Vec<String> {
    vec![
        "--redis".to_owned(),
        redis.url(),
        "--database".to_owned(),
        format!("sqlite://{}", redis.dir().join("users.db").display()),
    ]
}

async fn wait_ready(url: &str, within: Duration) -> bool {
    let client = reqwest::Client::new();
    let started = Instant::now();
    while started.elapsed() < within {
        if let Ok(r) = client.get(format!("{url}/readyz")).send().await {
            if r.status() == StatusCode::OK {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn keys_json(args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["keys", "list", "--json"];
    all.extend_from_slice(args);
    let (ok, out, err) = cli(&all, None);
    assert!(ok, "{err}");
    serde_json::from_str::<serde_json::Value>(out.trim())
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn eight_processes_cold_starting_on_one_empty_store_make_one_key() {
    let redis = RedisServer::start().unwrap();
    let dirs: Vec<_> = (0..8).map(|_| tempfile::tempdir().unwrap()).collect();
    let threads: Vec<_> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let path = dir.path().to_path_buf();
            // Only the key ring is shared here; each process keeps its own embedded accounts
            // file (SQLite is the single-node store; a fleet shares PostgreSQL).
            let args = vec!["--redis".to_owned(), redis.url()];
            std::thread::spawn(move || start_node(&format!("n{i}"), &path, &args))
        })
        .collect();
    let nodes: Vec<NodeProcess> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let keys = keys_json(&["--redis", &redis.url()]);
    assert_eq!(
        keys.len(),
        1,
        "eight nodes racing on an empty store made {} keys",
        keys.len()
    );
    drop(nodes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secondary_waits_for_a_key_then_serves_without_restart() {
    let redis = RedisServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut args = redis_args(&redis);
    args.push("--no-key-generation".to_owned());
    let secondary = start_node("secondary", dir.path(), &args);
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{}/readyz", secondary.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "no key yet: not ready"
    );
    assert!(r.text().await.unwrap().contains("no usable key"));
    assert!(
        secondary.output().contains("--no-key-generation"),
        "a clear log line says why"
    );
    assert!(
        keys_json(&["--redis", &redis.url()]).is_empty(),
        "a secondary never writes keys"
    );
    // Pages that need a token answer 503, not 500.
    let r = client
        .get(format!("{}/login", secondary.url()))
        .answer_status()
        .await;
    assert_eq!(r, StatusCode::SERVICE_UNAVAILABLE);

    let primary_dir = tempfile::tempdir().unwrap();
    let primary = start_node("primary", primary_dir.path(), &redis_args(&redis));
    assert!(
        wait_ready(&secondary.url(), Duration::from_secs(5)).await,
        "secondary became ready"
    );
    // It serves: a user registered on the primary signs in on the secondary.
    let browser = browser();
    register_api(&browser, &primary.url(), "second@example.com").await;
    login_api(&browser, &secondary.url(), "second@example.com", "curl/8").await;
    assert_eq!(
        browser
            .get(format!("{}/api/v1/me", primary.url()))
            .answer_status()
            .await,
        StatusCode::OK
    );
}

fn write_master_key(dir: &std::path::Path, name: &str, byte: u8) -> String {
    use base64::Engine;
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "{}\n",
            base64::engine::general_purpose::STANDARD.encode([byte; 32])
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn master_keys_encrypt_at_rest_refuse_wrong_keys_and_rotate() {
    let data = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let old = write_master_key(secrets.path(), "old.key", 1);
    let new = write_master_key(secrets.path(), "new.key", 2);
    let mut node = start_node(
        "n",
        data.path(),
        &["--master-key-file".to_owned(), old.clone()],
    );
    assert!(
        !node.output().contains("stored unencrypted"),
        "no warning with a master key"
    );
    let browser = browser();
    register_page(&browser, &node.url(), "vault@example.com").await;
    node.terminate();
    node.wait_exit(Duration::from_secs(10)).unwrap();
    // Key material is stored only wrapped.
    for entry in std::fs::read_dir(data.path().join("keys")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.contains("\"encryption\":\"aes256gcm\""), "{text}");
        }
    }
    let dir = data.path().display().to_string();
    // The wrong master key, or none: the node refuses to start and says why.
    let (ok, _, err) = cli(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &dir,
            "--master-key-file",
            &new,
        ],
        None,
    );
    assert!(!ok && err.contains("wrong master key"), "{err}");
    let (ok, _, err) = cli(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", &dir],
        None,
    );
    assert!(!ok && err.contains("--master-key-file"), "{err}");
    let garbage = secrets.path().join("garbage.key");
    std::fs::write(&garbage, "not base64!").unwrap();
    let (ok, _, err) = cli(
        &[
            "keys",
            "list",
            "--data-dir",
            &dir,
            "--master-key-file",
            &garbage.display().to_string(),
        ],
        None,
    );
    assert!(!ok && err.contains("32 random bytes"), "{err}");
    // Rotation: re-seal under the new key while the old one is accepted, then drop the old one.
    let (ok, out, err) = cli(
        &[
            "keys",
            "rewrap",
            "--data-dir",
            &dir,
            "--master-key-file",
            &new,
            "--previous-master-key-file",
            &old,
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.contains("re-sealed 1"), "{out}");
    let node = start_node("n", data.path(), &["--master-key-file".to_owned(), new]);
    assert_eq!(
        signed_in_as(&browser, &node.url()).await.as_deref(),
        Some("vault@example.com"),
        "still signed in after the rotation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_key_store_is_refilled_and_users_stay_signed_in() {
    let redis = RedisServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = start_node("a", dir.path(), &redis_args(&redis));
    let browser = browser();
    register_page(&browser, &node.url(), "purge@example.com").await;
    let before = keys_json(&["--redis", &redis.url()]);
    redis
        .redis_cli(&["DEL", "ringfence:{keyring}:keys", "ringfence:{keyring}:rev"])
        .unwrap();
    let started = Instant::now();
    loop {
        if redis
            .redis_cli(&["HLEN", "ringfence:{keyring}:keys"])
            .unwrap()
            .trim()
            == "1"
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the node wrote its key back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        keys_json(&["--redis", &redis.url()])[0]["id"],
        before[0]["id"],
        "the same key, not a new one"
    );
    // A node started after the purge reads the user's cookie.
    let dir2 = tempfile::tempdir().unwrap();
    let late = start_node("b", dir2.path(), &redis_args(&redis));
    assert_eq!(
        signed_in_as(&browser, &late.url()).await.as_deref(),
        Some("purge@example.com")
    );
    assert_eq!(
        signed_in_as(&browser, &node.url()).await.as_deref(),
        Some("purge@example.com")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_every_key_signs_everyone_out_and_a_new_key_takes_over() {
    let redis = RedisServer::start().unwrap();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_node("a", d1.path(), &redis_args(&redis));
    let b = start_node("b", d2.path(), &redis_args(&redis));
    let browser = browser();
    register_api(&browser, &a.url(), "rev@example.com").await;
    login_api(&browser, &a.url(), "rev@example.com", "curl/8").await;
    assert_eq!(
        browser
            .get(format!("{}/api/v1/me", b.url()))
            .answer_status()
            .await,
        StatusCode::OK
    );
    let (ok, out, err) = cli(&["keys", "revoke", "--all", "--redis", &redis.url()], None);
    assert!(ok, "{err}");
    assert!(out.contains("revoked 1 keys"), "{out}");
    let started = Instant::now();
    loop {
        let status = browser
            .get(format!("{}/api/v1/me", b.url()))
            .answer_status()
            .await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "node b still accepts a cookie under a revoked key after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Both nodes work on with the new key: sign in on one, use the session on the other.
    login_api(&browser, &b.url(), "rev@example.com", "curl/8").await;
    assert_eq!(
        browser
            .get(format!("{}/api/v1/me", a.url()))
            .answer_status()
            .await,
        StatusCode::OK
    );
    assert_eq!(keys_json(&["--redis", &redis.url()]).len(), 2);
}
