//! Redis goes away under a signed-in user and comes back: the node stays up, says 503 (never
//! 500, never a sign-out), and recovers by itself.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use ringfence_testkit::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_is_503_then_recovers_without_signing_anyone_out() {
    let mut redis = RedisServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("users.db").display());
    let mut node = start_node(
        "n",
        dir.path(),
        &[
            "--redis".to_owned(),
            redis.url(),
            "--database".to_owned(),
            database,
        ],
    );
    let base = node.url();
    let client = browser();
    register_api(&client, &base, "outage@example.com").await;
    login_api(&client, &base, "outage@example.com", "curl/8").await;
    assert_eq!(
        client
            .get(format!("{base}/api/v1/me"))
            .answer_status()
            .await,
        StatusCode::OK
    );

    redis.stop();
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert_eq!(
        plain.get(format!("{base}/healthz")).answer_status().await,
        StatusCode::OK
    );
    let ready = plain.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let asked = Instant::now();
    let me = client
        .get(format!("{base}/api/v1/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "a session request during the outage"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "store calls time out instead of hanging"
    );
    let body: serde_json::Value = me.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    let set_cookie = client
        .get(format!("{base}/api/v1/me"))
        .send()
        .await
        .unwrap();
    assert!(
        set_cookie.headers().get("set-cookie").is_none(),
        "the cookie is kept during an outage"
    );
    // Pages too: 503, not a sign-in form.
    let home = client.get(format!("{base}/")).answer_status().await;
    assert_eq!(home, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        node.is_running(),
        "the node never exits because Redis is gone"
    );

    redis.restart().unwrap();
    let back = Instant::now();
    loop {
        let status = client
            .get(format!("{base}/api/v1/me"))
            .answer_status()
            .await;
        if status == StatusCode::OK {
            break;
        }
        assert_ne!(
            status,
            StatusCode::UNAUTHORIZED,
            "the session survived the outage (AOF)"
        );
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "same session works again within 5 s of Redis returning"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    while plain.get(format!("{base}/readyz")).answer_status().await != StatusCode::OK {
        assert!(started.elapsed() < Duration::from_secs(5), "ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let output = node.output();
    assert!(!output.contains("panicked"), "{output}");
}
