//! Brute force across a fleet: failed sign-ins counted in Redis, so every node sees the same
//! count; while throttled even the right password gets 429 with Retry-After.

mod common;

use common::*;
use reqwest::StatusCode;
use ringfence_testkit::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_are_throttled_on_every_node() {
    let redis = RedisServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("users.db").display());
    let args = vec![
        "--redis".to_owned(),
        redis.url(),
        "--database".to_owned(),
        database,
    ];
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_node("a", da.path(), &args);
    let b = start_node("b", db.path(), &args);
    let client = browser();
    register_api(&client, &a.url(), "target@example.com").await;
    // Five wrong passwords, alternating nodes.
    for i in 0..5 {
        let node = if i % 2 == 0 { a.url() } else { b.url() };
        let r = client
            .post(format!("{node}/api/v1/login"))
            .json(&serde_json::json!({"email": "target@example.com", "password": "wrong password number x"}))
            .answer_status()
            .await;
        assert_eq!(r, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    // The right password, on either node: 429 with Retry-After, and no cookie.
    for node in [a.url(), b.url()] {
        let r = client
            .post(format!("{node}/api/v1/login"))
            .json(&serde_json::json!({"email": "target@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=900).contains(&retry), "{retry}");
        assert!(r.headers().get("set-cookie").is_none());
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "too_many_attempts");
    }
    // The sign-in page says so too, with the same status.
    let r = login_page(&client, &b.url(), "target@example.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("retry-after").is_some());
    // An unknown e-mail is throttled the same way (no hint whether an account exists).
    for _ in 0..5 {
        client
            .post(format!("{}/api/v1/login", a.url()))
            .json(&serde_json::json!({"email": "ghost@example.com", "password": "wrong password number x"}))
            .send()
            .await
            .unwrap();
    }
    let r = client
        .post(format!("{}/api/v1/login", b.url()))
        .json(&serde_json::json!({"email": "ghost@example.com", "password": "wrong password number x"}))
        .answer_status()
        .await;
    assert_eq!(r, StatusCode::TOO_MANY_REQUESTS);
    // Counters live in Redis under the prefix, hashed: no e-mail in any key.
    let keys = redis
        .redis_cli(&["--scan", "--pattern", "ringfence:throttle:*"])
        .unwrap();
    assert!(!keys.trim().is_empty());
    assert!(!keys.contains("example.com"), "{keys}");
}

/// One node on its own SQLite file, believing `X-Forwarded-For` from loopback so a test can
/// speak for several client addresses.
fn node_behind_proxy(dir: &std::path::Path) -> ringfence_testkit::NodeProcess {
    start_node(
        "a",
        dir,
        &["--trusted-proxy".to_owned(), "127.0.0.1/32".to_owned()],
    )
}

async fn login_from(client: &reqwest::Client, base: &str, ip: &str, password: &str) -> StatusCode {
    client
        .post(format!("{base}/api/v1/login"))
        .header("x-forwarded-for", ip)
        .json(&serde_json::json!({"email": "target@example.com", "password": password}))
        .answer_status()
        .await
}

fn retry_after_of(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_03_password_change_is_throttled_like_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_behind_proxy(dir.path());
    let client = browser();
    register_api(&client, &node.url(), "target@example.com").await;
    let body = login_api(&client, &node.url(), "target@example.com", "test").await;
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    let change = |current: &'static str| {
        client
            .post(format!("{}/api/v1/password", node.url()))
            .header("x-csrf-token", &csrf)
            .header("x-forwarded-for", "198.51.100.66")
            .json(&serde_json::json!({
                "current_password": current,
                "new_password": "a brand new passphrase for later",
            }))
            .send()
    };
    for i in 0..5 {
        let r = change("wrong password number x").await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "guess {i}");
    }
    // The stolen cookie's sixth guess, even the right password: 429 before any hashing.
    let r = change(PASSWORD).await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!((1..=900).contains(&retry_after_of(&r)));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_attempts");
    // The same lock as sign-in from that address.
    assert_eq!(
        login_from(&client, &node.url(), "198.51.100.66", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_05_one_address_cannot_lock_the_owner_out() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_behind_proxy(dir.path());
    let client = browser();
    register_api(&client, &node.url(), "target@example.com").await;
    for i in 0..5 {
        let status = login_from(&client, &node.url(), "198.51.100.66", "wrong password x").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "guess {i}");
    }
    assert_eq!(
        login_from(&client, &node.url(), "198.51.100.66", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The owner, from another address, signs in at once.
    assert_eq!(
        login_from(&browser(), &node.url(), "203.0.113.5", PASSWORD).await,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_06_registration_is_throttled_per_client_address() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_behind_proxy(dir.path());
    let client = browser();
    let register = |email: String, ip: &'static str| {
        client
            .post(format!("{}/api/v1/register", node.url()))
            .header("x-forwarded-for", ip)
            .json(&serde_json::json!({"email": email, "password": PASSWORD}))
            .send()
    };
    for i in 0..10 {
        // Probing which addresses have accounts: 201 once, then 409 after 409.
        let r = register("probe@example.com".to_owned(), "198.51.100.66")
            .await
            .unwrap();
        let expected = if i == 0 {
            StatusCode::CREATED
        } else {
            StatusCode::CONFLICT
        };
        assert_eq!(r.status(), expected, "attempt {i}");
    }
    let r = register("fresh@example.com".to_owned(), "198.51.100.66")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!((1..=900).contains(&retry_after_of(&r)));
    // The registration page says so too.
    let (_, html) = get_page(&client, &format!("{}/register", node.url())).await;
    let request = client
        .post(format!("{}/register", node.url()))
        .header("x-forwarded-for", "198.51.100.66");
    let fields = [("email", "fresh@example.com"), ("password", PASSWORD)];
    let r = send_form(request, &fields, &html).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("retry-after").is_some());
    // Another client registers as before.
    let r = register("fresh@example.com".to_owned(), "203.0.113.5")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}
