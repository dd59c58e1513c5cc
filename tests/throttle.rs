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
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
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
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Counters live in Redis under the prefix, hashed: no e-mail in any key.
    let keys = redis
        .redis_cli(&["--scan", "--pattern", "ringfence:throttle:*"])
        .unwrap();
    assert!(!keys.trim().is_empty());
    assert!(!keys.contains("example.com"), "{keys}");
}
