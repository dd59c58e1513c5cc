//! Every example in `examples/` runs as a real process against real servers and does what its
//! doc comment says, so the README's way in cannot rot. `cargo test` builds the examples
//! before it runs this (a lone `cargo test --test examples` needs `cargo build --examples`).

mod common;

use common::{api_call, browser, csrf_of, start_example as start, Answer, PASSWORD};
use reqwest::{Client, StatusCode};
use ringfence_testkit::{PostgresServer, RedisServer};
use serde_json::{json, Value};

async fn post_json(client: &Client, url: &str, body: Value) -> (StatusCode, Value) {
    api_call(client, reqwest::Method::POST, url, None, Some(&body)).await
}

/// The minimal example on the data directory `data`.
fn start_minimal(data: &tempfile::TempDir) -> ringfence_testkit::NodeProcess {
    start(
        "minimal",
        &[("DATA_DIR", data.path().display().to_string())],
    )
}

#[tokio::test]
async fn minimal_example_registers_greets_and_refuses_a_wrong_password_with_401() {
    let data = tempfile::tempdir().unwrap();
    let app = start_minimal(&data);
    let base = app.url();
    let client = browser();

    let anonymous = client.get(format!("{base}/")).answer_status().await;
    assert_eq!(anonymous, StatusCode::UNAUTHORIZED);

    let credentials = json!({"email": "Ann@Example.com", "password": PASSWORD});
    let (status, body) = post_json(&client, &format!("{base}/register"), credentials).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["user"]["email"], "ann@example.com");
    let hello = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(hello.text().await.unwrap(), "hello ann@example.com\n");

    let stranger = browser();
    let wrong = json!({"email": "ann@example.com", "password": "not the password at all"});
    let (status, body) = post_json(&stranger, &format!("{base}/login"), wrong).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "invalid_credentials");
    let (status, body) = post_json(&stranger, &format!("{base}/login"), json!({"email": 1})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let right = json!({"email": "ann@example.com", "password": PASSWORD});
    let (status, body) = post_json(&stranger, &format!("{base}/login"), right).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Signing out needs the antiforgery header; then the session is over.
    let token = body["csrf_token"].as_str().unwrap().to_owned();
    let logout = || stranger.post(format!("{base}/logout"));
    assert_eq!(logout().answer_status().await, StatusCode::FORBIDDEN);
    let out = logout().header("x-csrf-token", token).answer_status().await;
    assert_eq!(out, StatusCode::NO_CONTENT);
    let me = stranger.get(format!("{base}/me")).answer_status().await;
    assert_eq!(me, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn minimal_example_throttles_password_guessing() {
    let data = tempfile::tempdir().unwrap();
    let app = start_minimal(&data);
    let base = app.url();
    let client = browser();
    let credentials = json!({"email": "guess@example.com", "password": PASSWORD});
    post_json(&client, &format!("{base}/register"), credentials).await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let wrong = json!({"email": "guess@example.com", "password": "wrong guess number n"});
        statuses.push(
            post_json(&browser(), &format!("{base}/login"), wrong)
                .await
                .0,
        );
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "the builder always wires the throttle: {statuses:?}"
    );
}

/// Two copies of `examples/fleet.rs` on `envs`: a sign-in on one is a sign-in on the other, and
/// a sign-out on the other is refused by the first at once.
async fn copies_share_sessions_and_revocation(envs: &[(&str, String)]) {
    let one = start("fleet", envs);
    let two = start("fleet", envs);
    let client = browser();

    let credentials = json!({"email": "fleet@example.com", "password": PASSWORD});
    let (status, body) = post_json(&client, &format!("{}/register", one.url()), credentials).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let on_two = client.get(format!("{}/", two.url())).send().await.unwrap();
    assert_eq!(on_two.status(), StatusCode::OK);
    assert!(on_two
        .text()
        .await
        .unwrap()
        .starts_with("hello fleet@example.com"));

    let token = body["csrf_token"].as_str().unwrap().to_owned();
    let out = client.post(format!("{}/logout", two.url()));
    let out = out.header("x-csrf-token", token).answer_status().await;
    assert_eq!(out, StatusCode::NO_CONTENT);
    let on_one = client.get(format!("{}/", one.url())).answer_status().await;
    assert_eq!(on_one, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn fleet_example_copies_share_sessions_and_revocation_on_redis_and_postgres() {
    let redis = RedisServer::start().unwrap();
    let postgres = PostgresServer::start().unwrap();
    let database = postgres.fresh_database().unwrap();
    copies_share_sessions_and_revocation(&[("REDIS_URL", redis.url()), ("DATABASE_URL", database)])
        .await;
}

#[tokio::test]
async fn fleet_example_copies_share_sessions_and_revocation_on_postgres_alone() {
    let postgres = PostgresServer::start().unwrap();
    let database = postgres.fresh_database().unwrap();
    copies_share_sessions_and_revocation(&[("DATABASE_URL", database)]).await;
}

#[tokio::test]
async fn protected_example_checks_sign_in_admin_role_and_the_form_token() {
    let data = tempfile::tempdir().unwrap();
    let app = start(
        "protected",
        &[
            ("DATA_DIR", data.path().display().to_string()),
            ("ADMIN_EMAIL", "boss@example.com".to_owned()),
            ("ADMIN_PASSWORD", PASSWORD.to_owned()),
        ],
    );
    let base = app.url();

    let visitor = browser();
    let page = visitor.get(format!("{base}/notes")).answer_status().await;
    assert_eq!(page, StatusCode::UNAUTHORIZED);

    let user = browser();
    let credentials = json!({"email": "user@example.com", "password": PASSWORD});
    post_json(&user, &format!("{base}/register"), credentials).await;
    let page = user.get(format!("{base}/notes")).send().await.unwrap();
    let html = page.text().await.unwrap();
    let token = csrf_of(&html);
    let saved = user
        .post(format!("{base}/notes"))
        .form(&[("_csrf", token.as_str()), ("note", "hello")])
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), StatusCode::OK);
    assert_eq!(
        saved.text().await.unwrap(),
        "saved 5 characters for user@example.com\n"
    );
    let note = || user.post(format!("{base}/notes"));
    let forged = note().form(&[("_csrf", "forged"), ("note", "hello")]);
    assert_eq!(forged.answer_status().await, StatusCode::BAD_REQUEST);
    let no_token = note().form(&[("note", "hello")]);
    assert_eq!(no_token.answer_status().await, StatusCode::BAD_REQUEST);
    let not_admin = user.get(format!("{base}/admin")).answer_status().await;
    assert_eq!(not_admin, StatusCode::FORBIDDEN);

    let boss = browser();
    let credentials = json!({"email": "boss@example.com", "password": PASSWORD});
    let (status, _) = post_json(&boss, &format!("{base}/login"), credentials).await;
    assert_eq!(status, StatusCode::OK);
    let admin = boss.get(format!("{base}/admin")).send().await.unwrap();
    assert_eq!(admin.status(), StatusCode::OK);
    assert_eq!(
        admin.text().await.unwrap(),
        "admin area: welcome boss@example.com\n"
    );
}
