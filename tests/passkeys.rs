//! Passkeys through the JSON API, without a browser: a software authenticator
//! (`common/authenticator.rs`) answers the server's options. Two nodes share PostgreSQL (users,
//! passkeys) and Redis (ceremony state), so every ceremony starts on one node and finishes on
//! the other. Each forged or repeated answer is refused with its own code.

#[path = "common/authenticator.rs"]
mod authenticator;
mod common;

use authenticator::SoftPasskey;
use common::*;
use reqwest::{Client, StatusCode};
use ringfence_testkit::{NodeProcess, PostgresServer, RedisServer};
use serde_json::{json, Value};

/// Where users "reach" the fleet: the RP id is `localhost`, the origin this URL.
const PUBLIC_URL: &str = "http://localhost:8080";

struct Pair {
    _redis: RedisServer,
    _postgres: PostgresServer,
    nodes: Vec<NodeProcess>,
    _dirs: Vec<tempfile::TempDir>,
}

fn pair() -> Pair {
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
            "--public-url".to_owned(),
            PUBLIC_URL.to_owned(),
        ];
        nodes.push(start_node(name, dir.path(), &args));
        dirs.push(dir);
    }
    Pair {
        _redis: redis,
        _postgres: postgres,
        nodes,
        _dirs: dirs,
    }
}

/// Registers `email` on `base` and signs in; returns the client and its CSRF token.
async fn signed_in(base: &str, email: &str) -> (Client, String) {
    let client = browser();
    let response = client
        .post(format!("{base}/api/v1/register"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let login: Value = client
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let csrf = login["csrf_token"].as_str().unwrap().to_owned();
    (client, csrf)
}

async fn post(
    client: &Client,
    url: String,
    csrf: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut request = client.post(url).json(&body);
    if let Some(csrf) = csrf {
        request = request.header("X-CSRF-Token", csrf);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// Starts a sign-in on `start` (anonymous client).
async fn login_start(client: &Client, start: &str, body: Value) -> (String, Value) {
    let (status, ceremony) = post(
        client,
        format!("{start}/api/v1/passkeys/login/start"),
        None,
        body,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ceremony}");
    (
        ceremony["challenge_id"].as_str().unwrap().to_owned(),
        ceremony["publicKey"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn passkeys_register_on_one_node_sign_in_on_the_other_and_refuse_forgeries() {
    let pair = pair();
    let (a, b) = (pair.nodes[0].url(), pair.nodes[1].url());
    let email = "ada@example.com";
    let (client, csrf) = signed_in(&a, email).await;

    // Registration: start on node 1, finish on node 2.
    let (status, ceremony) = post(
        &client,
        format!("{a}/api/v1/passkeys/register/start"),
        Some(&csrf),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ceremony}");
    let options = &ceremony["publicKey"];
    assert_eq!(options["rp"]["id"], "localhost");
    assert_eq!(
        options["authenticatorSelection"]["userVerification"],
        "required"
    );
    assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
    let mut passkey = SoftPasskey::new(PUBLIC_URL);
    let credential = passkey.register(options);
    let finish = json!({"challenge_id": ceremony["challenge_id"], "name": "Laptop", "credential": credential});
    let (status, created) = post(
        &client,
        format!("{b}/api/v1/passkeys/register/finish"),
        Some(&csrf),
        finish.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "Laptop");
    let passkey_id = created["id"].as_str().unwrap().to_owned();

    // The same registration finished again: the ceremony is spent.
    let (status, body) = post(
        &client,
        format!("{a}/api/v1/passkeys/register/finish"),
        Some(&csrf),
        finish,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_challenge"),
        "{body}"
    );

    // Registration answered from the wrong origin.
    let (_, ceremony) = post(
        &client,
        format!("{a}/api/v1/passkeys/register/start"),
        Some(&csrf),
        Value::Null,
    )
    .await;
    let mut phished = SoftPasskey::new("http://localhost.evil.example:8080");
    let finish = json!({"challenge_id": ceremony["challenge_id"], "name": "Phished", "credential": phished.register(&ceremony["publicKey"])});
    let (status, body) = post(
        &client,
        format!("{b}/api/v1/passkeys/register/finish"),
        Some(&csrf),
        finish,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "passkey_rejected"),
        "{body}"
    );

    let list: Value = client
        .get(format!("{b}/api/v1/passkeys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["passkeys"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["passkeys"][0]["name"], "Laptop");
    assert!(list["passkeys"][0]["last_used_at"].is_null());

    // Sign-in with the passkey alone (no e-mail: discoverable), start on 2, finish on 1.
    let anonymous = browser();
    let (challenge_id, options) = login_start(&anonymous, &b, json!({})).await;
    assert_eq!(options["userVerification"], "required");
    assert!(
        options
            .get("allowCredentials")
            .is_none_or(|c| c.as_array().is_some_and(|c| c.is_empty())),
        "{options}"
    );
    let assertion = passkey.assert(&options);
    let finish = json!({"challenge_id": challenge_id, "credential": assertion});
    let (status, login) = post(
        &anonymous,
        format!("{a}/api/v1/passkeys/login/finish"),
        None,
        finish.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["user"]["email"], email);
    assert!(login["csrf_token"].is_string());
    let me = anonymous
        .get(format!("{b}/api/v1/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);

    // The same assertion replayed: to the spent ceremony, and to a fresh one.
    let (status, body) = post(
        &browser(),
        format!("{b}/api/v1/passkeys/login/finish"),
        None,
        finish,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_challenge"),
        "{body}"
    );
    let (challenge_id, _) = login_start(&anonymous, &a, json!({})).await;
    let replay = json!({"challenge_id": challenge_id, "credential": assertion});
    let (status, body) = post(
        &browser(),
        format!("{b}/api/v1/passkeys/login/finish"),
        None,
        replay,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "passkey_rejected"),
        "{body}"
    );

    // A wrong origin, then a wrong RP id.
    let (challenge_id, options) = login_start(&anonymous, &a, json!({})).await;
    passkey.origin = "http://evil.example:8080".to_owned();
    let finish = json!({"challenge_id": challenge_id, "credential": passkey.assert(&options)});
    let (status, body) = post(
        &browser(),
        format!("{b}/api/v1/passkeys/login/finish"),
        None,
        finish,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "passkey_rejected"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("origin"),
        "{body}"
    );
    passkey.origin = PUBLIC_URL.to_owned();
    let (challenge_id, options) = login_start(&anonymous, &a, json!({})).await;
    passkey.rp_id_override = Some("evil.example".to_owned());
    let finish = json!({"challenge_id": challenge_id, "credential": passkey.assert(&options)});
    let (status, body) = post(
        &browser(),
        format!("{b}/api/v1/passkeys/login/finish"),
        None,
        finish,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "passkey_rejected"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("relying party"),
        "{body}"
    );
    passkey.rp_id_override = None;

    // The sign counter is kept: a clone that signs with an older counter is refused.
    let (challenge_id, options) = login_start(&anonymous, &a, json!({})).await;
    passkey.counter = 1;
    let finish = json!({"challenge_id": challenge_id, "credential": passkey.assert(&options)});
    let (status, body) = post(
        &browser(),
        format!("{b}/api/v1/passkeys/login/finish"),
        None,
        finish,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "passkey_rejected"),
        "{body}"
    );
    passkey.counter = 100;

    // With an e-mail: only that account's passkey will do.
    let (_other, _) = signed_in(&a, "bob@example.com").await;
    let (challenge_id, options) =
        login_start(&anonymous, &a, json!({"email": "bob@example.com"})).await;
    let finish = json!({"challenge_id": challenge_id, "credential": passkey.assert(&options)});
    let (status, body) = post(
        &browser(),
        format!("{b}/api/v1/passkeys/login/finish"),
        None,
        finish,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "passkey_rejected"),
        "{body}"
    );
    let (challenge_id, options) =
        login_start(&anonymous, &a, json!({"email": "ADA@example.com"})).await;
    let finish = json!({"challenge_id": challenge_id, "credential": passkey.assert(&options)});
    let (status, body) = post(
        &browser(),
        format!("{b}/api/v1/passkeys/login/finish"),
        None,
        finish,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let list: Value = client
        .get(format!("{a}/api/v1/passkeys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list["passkeys"][0]["last_used_at"].is_string(), "{list}");

    // Malformed input: 4xx, never 500.
    for body in [
        json!({"challenge_id": "x", "credential": {}}),
        json!({"challenge_id": 5, "credential": []}),
        json!({"challenge_id": "x".repeat(43), "credential": {"id": 1}}),
    ] {
        let (status, answer) = post(
            &browser(),
            format!("{a}/api/v1/passkeys/login/finish"),
            None,
            body,
        )
        .await;
        assert!(status.is_client_error(), "{status} {answer}");
    }
    let (_, ceremony) = post(
        &client,
        format!("{a}/api/v1/passkeys/register/start"),
        Some(&csrf),
        Value::Null,
    )
    .await;
    let finish = json!({"challenge_id": ceremony["challenge_id"], "name": " ", "credential": {}});
    let (status, body) = post(
        &client,
        format!("{a}/api/v1/passkeys/register/finish"),
        Some(&csrf),
        finish,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_name"),
        "{body}"
    );

    // Removal, on the other node; the passkey signs nobody in afterwards.
    let response = client
        .delete(format!("{b}/api/v1/passkeys/{passkey_id}"))
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = client
        .delete(format!("{a}/api/v1/passkeys/{passkey_id}"))
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let (challenge_id, options) = login_start(&anonymous, &a, json!({})).await;
    let finish = json!({"challenge_id": challenge_id, "credential": passkey.assert(&options)});
    let (status, body) = post(
        &browser(),
        format!("{b}/api/v1/passkeys/login/finish"),
        None,
        finish,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "passkey_rejected"),
        "{body}"
    );
}
