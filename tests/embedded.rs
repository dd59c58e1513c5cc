//! One node on the embedded defaults (SQLite + key files in a data dir), driven as a real
//! process: the README's first command, tested.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;

#[tokio::test]
async fn register_restart_still_signed_in_then_sign_out() {
    let (mut node, data) = solo_node();
    let client = browser();
    let base = node.url();

    let response = register_page(&client, &base, "Alice@Example.com").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/");
    assert_eq!(node_of(&response), "solo");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert_signed_in_as(&client, &base, "alice@example.com").await;
    let (_, home) = get_page(&client, &format!("{base}/")).await;
    assert!(home.contains("(solo)"), "page header shows the node name");

    // Restart the process on the same data dir: same keys, same sessions, still signed in.
    node.terminate();
    let status = node
        .wait_exit(Duration::from_secs(10))
        .unwrap()
        .expect("exits on SIGTERM");
    assert!(status.success(), "SIGTERM exits 0: {status:?}");
    let node = start_node("solo", data.path(), &[]);
    let base = node.url();
    assert_signed_in_as(&client, &base, "alice@example.com").await;

    // Sign out: the session is gone on the server, the cookie cleared.
    let (_, home) = get_page(&client, &format!("{base}/")).await;
    let response = client
        .post(format!("{base}/logout"))
        .form(&[("_csrf", csrf_of(&home))])
        .answer_status()
        .await;
    assert_eq!(response, StatusCode::SEE_OTHER);
    assert_eq!(signed_in_as(&client, &base).await, None);

    // Wrong password: the form again, with a message that does not say whether the e-mail exists.
    let wrong = login_page(
        &client,
        &base,
        "alice@example.com",
        "not the password at all",
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let body = wrong.text().await.unwrap();
    assert!(body.contains("incorrect"), "{body}");
    let unknown = login_page(
        &client,
        &base,
        "nobody@example.com",
        "not the password at all",
    )
    .await;
    let unknown_body = unknown.text().await.unwrap();
    assert_eq!(
        body.split("role=\"alert\">")
            .nth(1)
            .map(|s| s.split('<').next()),
        unknown_body
            .split("role=\"alert\">")
            .nth(1)
            .map(|s| s.split('<').next()),
        "same message for unknown e-mail and wrong password"
    );
    assert_eq!(signed_in_as(&client, &base).await, None);
    // The right one signs in.
    let ok = login_page(&client, &base, "ALICE@example.com", PASSWORD).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_signed_in_as(&client, &base, "alice@example.com").await;
}

#[tokio::test]
async fn missing_or_forged_csrf_is_400() {
    let (node, _data) = solo_node();
    let client = browser();
    let base = node.url();
    // Missing token.
    let response = client
        .post(format!("{base}/register"))
        .form(&[("email", "bob@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("security token"));
    // Forged token (well-formed base64 of garbage), and a token from another browser.
    let _ = get_page(&client, &format!("{base}/register")).await;
    for forged in [
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "x",
        "",
    ] {
        let fields = [
            ("email", "bob@example.com"),
            ("password", PASSWORD),
            ("_csrf", forged),
        ];
        let status = client.post(format!("{base}/register")).form(&fields);
        let status = status.answer_status().await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "forged {forged:?}");
    }
    let other = browser();
    let (_, html) = get_page(&other, &format!("{base}/register")).await;
    let fields = [("email", "bob@example.com"), ("password", PASSWORD)];
    let response = send_form(client.post(format!("{base}/register")), &fields, &html).await;
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "a token bound to another browser"
    );
    assert_eq!(signed_in_as(&client, &base).await, None);
    // Signed in, a session-bound token of another session is refused too.
    for (browser, email) in [(&client, "carol@example.com"), (&other, "dave@example.com")] {
        let registered = register_page(browser, &base, email).await;
        assert_eq!(registered.status(), StatusCode::SEE_OTHER);
    }
    let (_, dave_home) = get_page(&other, &format!("{base}/")).await;
    let logout = client.post(format!("{base}/logout"));
    let logout = logout.form(&[("_csrf", csrf_of(&dave_home))]);
    assert_eq!(logout.answer_status().await, StatusCode::BAD_REQUEST);
    assert_signed_in_as(&client, &base, "carol@example.com").await;
}

#[tokio::test]
async fn json_api_round_trip() {
    let (node, _data) = solo_node();
    let base = node.url();
    let client = browser();
    register_api(&client, &base, "erin@example.com").await;
    let login = login_api(
        &client,
        &base,
        "erin@example.com",
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    )
    .await;
    assert_eq!(login["user"]["email"], "erin@example.com");
    let csrf = login["csrf_token"].as_str().unwrap().to_owned();
    let me: serde_json::Value = client.get(format!("{base}/api/v1/me")).answer_json().await;
    assert_eq!(me["node"], "solo");
    assert_eq!(me["session"]["id"], login["session"]["id"]);
    let sessions: serde_json::Value = client
        .get(format!("{base}/api/v1/sessions"))
        .answer_json()
        .await;
    let list = sessions["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    for field in [
        "id",
        "created_at",
        "last_seen_at",
        "expires_at",
        "ip",
        "user_agent",
        "device",
        "node",
        "current",
    ] {
        assert!(list[0].get(field).is_some(), "session field {field}");
    }
    assert_eq!(list[0]["device"], "Firefox on Linux");
    assert_eq!(list[0]["current"], true);

    // A second device, then revoke-others from the first: only the current one is left.
    let phone = browser();
    login_api(&phone, &base, "erin@example.com", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1").await;
    let response = client
        .post(format!("{base}/api/v1/sessions/revoke-others"))
        .answer_status()
        .await;
    assert_eq!(
        response,
        StatusCode::FORBIDDEN,
        "cookie-authenticated write without X-CSRF-Token"
    );
    let response = client
        .post(format!("{base}/api/v1/sessions/revoke-others"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["revoked"],
        1
    );
    let response = phone.get(format!("{base}/api/v1/me")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");

    // Logout needs the CSRF header too, then the session is gone.
    let response = client
        .post(format!("{base}/api/v1/logout"))
        .answer_status()
        .await;
    assert_eq!(response, StatusCode::FORBIDDEN);
    let response = client
        .post(format!("{base}/api/v1/logout"))
        .header("x-csrf-token", &csrf)
        .answer_status()
        .await;
    assert_eq!(response, StatusCode::NO_CONTENT);
    assert_eq!(
        client
            .get(format!("{base}/api/v1/me"))
            .answer_status()
            .await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn bad_input_gets_specific_errors_never_5xx() {
    let (node, _data) = solo_node();
    let base = node.url();
    let client = browser();
    register_api(&client, &base, "frank@example.com").await;
    // Duplicate e-mail in another case.
    let request = client
        .post(format!("{base}/api/v1/register"))
        .json(&serde_json::json!({"email": "FRANK@example.com", "password": PASSWORD}));
    assert_answers(request, StatusCode::CONFLICT, "duplicate e-mail").await;
    for (body, want, what) in [
        (
            r#"{"email":"g@example.com","password":"short"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "short password",
        ),
        (
            r#"{"email":"g@example.com","password":"password1234"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "common password",
        ),
        (
            r#"{"email":"not-an-email","password":"correct horse battery"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad e-mail",
        ),
        (
            r#"{"email":"g@example.com"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing field",
        ),
        (
            r#"{"email":1,"password":2}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong types",
        ),
        (r#"{"email":"#, StatusCode::BAD_REQUEST, "malformed JSON"),
    ] {
        let r = client
            .post(format!("{base}/api/v1/register"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "{what}");
        let json: serde_json::Value = r.json().await.unwrap();
        assert!(
            json["error"]["code"].is_string() && json["error"]["message"].is_string(),
            "{what}: {json}"
        );
    }
    let request = client
        .post(format!("{base}/api/v1/login"))
        .header("content-type", "text/plain")
        .body("x");
    assert_answers(
        request,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "wrong content type",
    )
    .await;
    // A 3 MB body on a raw connection: the server answers 413 before reading the body and
    // closes the connection. A client that keeps writing the whole body races that close (the
    // kernel resets a socket closed with unread data, and the response can be lost under
    // load), so this one sends the head and a first part, then reads the answer.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
        let head = format!(
            "POST /api/v1/login HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            3 * 1024 * 1024
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // Past the 64 KiB limit; the server may close while this is still being written.
        let _ = stream.write_all(&vec![b'x'; 80 * 1024]).await;
        let mut answer = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "3 MB body: {}",
            answer.lines().next().unwrap_or_default()
        );
        assert!(answer.contains("\"error\""), "3 MB body: {answer}");
    }
    let request = client
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'e', b'm', b'a', b'i', b'l', b'=', 0xff, 0xfe]);
    assert_answers(request, StatusCode::BAD_REQUEST, "invalid UTF-8 form").await;
    // Tampered, truncated, garbage and oversized cookies: signed out (401), never an error page.
    let login = login_api(&client, &base, "frank@example.com", "test").await;
    let _ = login;
    let good = client
        .get(format!("{base}/api/v1/me"))
        .answer_status()
        .await;
    assert_eq!(good, StatusCode::OK);
    let fresh = reqwest::Client::new();
    for cookie in [
        "ringfence_session=AAAA".to_owned(),
        "ringfence_session=%%%%".to_owned(),
        format!("ringfence_session={}", "A".repeat(200)),
        format!("ringfence_session={}", "B".repeat(5000)),
        "ringfence_session=".to_owned(),
    ] {
        let r = fresh
            .get(format!("{base}/api/v1/me"))
            .header("cookie", &cookie)
            .answer_status()
            .await;
        assert_eq!(
            r,
            StatusCode::UNAUTHORIZED,
            "cookie {}",
            &cookie[..cookie.len().min(40)]
        );
    }
    let request = fresh.get(format!("{base}/no/such/route"));
    assert_answers(request, StatusCode::NOT_FOUND, "unknown route").await;
    let request = client
        .delete(format!("{base}/api/v1/sessions/..%2F..%2Fetc"))
        .header("x-csrf-token", api_csrf(&client, &base).await);
    assert_answers(request, StatusCode::NOT_FOUND, "malformed session id").await;
    let request = fresh.get(format!("{base}/api/v1/admin/stats"));
    assert_answers(request, StatusCode::UNAUTHORIZED, "admin stats signed out").await;
    let request = client.get(format!("{base}/api/v1/admin/stats"));
    assert_answers(request, StatusCode::FORBIDDEN, "admin stats as non-admin").await;
}

#[tokio::test]
async fn health_readiness_metrics_and_node_header() {
    let (node, _data) = solo_node();
    let base = node.url();
    let client = reqwest::Client::new();
    for path in ["/healthz", "/readyz", "/metrics", "/", "/login", "/nope"] {
        let r = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(node_of(&r), "solo", "{path}");
        assert!(r.status().as_u16() < 500, "{path}");
    }
    let metrics = client.get(format!("{base}/metrics")).answer_text().await;
    assert!(
        metrics.contains("ringfence_http_requests_total"),
        "{metrics}"
    );
    assert!(metrics.contains("ringfence_active_sessions"));
}

/// The value of one sample line of the Prometheus text (`name{labels} value`); `None` if absent.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Asserts each `(series, value)` is what `metrics` says.
fn assert_samples(metrics: &str, expected: &[(&str, Option<f64>)]) {
    for (series, value) in expected {
        assert_eq!(sample(metrics, series), *value, "{series}: {metrics}");
    }
}

#[tokio::test]
async fn metrics_follow_sign_ins_and_sign_outs() {
    let (node, _data) = solo_node();
    let base = node.url();
    let scrape = || async {
        reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let anonymous = reqwest::Client::new();
    register_api(&anonymous, &base, "alice@example.com").await;
    register_api(&anonymous, &base, "bob@example.com").await;
    let (laptop, phone, bob) = (browser(), browser(), browser());
    login_api(
        &laptop,
        &base,
        "alice@example.com",
        "Mozilla/5.0 (X11; Linux x86_64)",
    )
    .await;
    login_api(&phone, &base, "alice@example.com", "Mozilla/5.0 (iPhone)").await;
    let bobs = login_api(&bob, &base, "bob@example.com", "curl/8").await;

    let events = |event: &str| format!("ringfence_session_events_total{{event=\"{event}\"}}");
    let (created, revoked) = (events("created"), events("revoked"));
    assert_samples(
        &scrape().await,
        &[
            ("ringfence_active_sessions", Some(3.0)),
            ("ringfence_signed_in_users", Some(2.0)),
            ("ringfence_users", Some(2.0)),
            ("ringfence_ready", Some(1.0)),
            (&created, Some(3.0)),
            (&revoked, None),
        ],
    );

    let csrf = bobs["csrf_token"].as_str().unwrap();
    let r = bob
        .post(format!("{base}/api/v1/logout"))
        .header("x-csrf-token", csrf)
        .answer_status()
        .await;
    assert_eq!(r, StatusCode::NO_CONTENT);
    assert_samples(
        &scrape().await,
        &[
            ("ringfence_active_sessions", Some(2.0)),
            ("ringfence_signed_in_users", Some(1.0)),
            (&revoked, Some(1.0)),
        ],
    );
}

#[tokio::test]
async fn timeout_flags_set_the_session_expiries() {
    let data = tempfile::tempdir().unwrap();
    let flags = ["--idle-timeout", "90s", "--absolute-timeout", "2h"].map(str::to_owned);
    let node = start_node("timeouts", data.path(), &flags);
    let base = node.url();
    register_api(&reqwest::Client::new(), &base, "clock@example.com").await;
    let login = login_api(&browser(), &base, "clock@example.com", "curl/8").await;
    let time = |field: &str| {
        let text = login["session"][field].as_str().unwrap_or_default();
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap_or_else(|e| panic!("{field} {text:?}: {e}"))
    };
    let created = time("created_at");
    assert_eq!((time("expires_at") - created).num_seconds(), 90, "{login}");
    assert_eq!(
        (time("absolute_expires_at") - created).num_seconds(),
        2 * 3600,
        "{login}"
    );
}

#[test]
fn commands_starting_together_on_a_fresh_data_dir_all_succeed() {
    // sqlx's SQLite migrator takes no lock: processes migrating one new file at the same moment
    // used to fail with a unique violation on `_sqlx_migrations`.
    for _ in 0..3 {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().display().to_string();
        let runs: Vec<_> = (0..8)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || cli(&["users", "list", "--data-dir", &dir], None))
            })
            .collect();
        for run in runs {
            let (ok, out, err) = run.join().unwrap();
            assert!(ok, "stdout {out:?}, stderr {err:?}");
        }
    }
}

#[test]
fn admin_cli_on_the_embedded_store() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().display().to_string();
    let (ok, out, err) = cli(
        &[
            "users",
            "add",
            "root@example.com",
            "--admin",
            "--data-dir",
            &dir,
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("root@example.com") && out.contains("(admin)"));
    let (ok, out, _) = cli(&["users", "list", "--data-dir", &dir], None);
    assert!(ok && out.contains("root@example.com"));
    let (ok, out, err) = cli(
        &[
            "users",
            "set-admin",
            "root@example.com",
            "off",
            "--data-dir",
            &dir,
        ],
        None,
    );
    assert!(ok && out.contains("no longer"), "{out}{err}");
    let (ok, _, _) = cli(
        &[
            "users",
            "set-admin",
            "root@example.com",
            "on",
            "--data-dir",
            &dir,
        ],
        None,
    );
    assert!(ok);
    let (ok, _, err) = cli(
        &[
            "users",
            "set-admin",
            "ghost@example.com",
            "on",
            "--data-dir",
            &dir,
        ],
        None,
    );
    assert!(!ok && err.contains("no user"), "{err}");
    // Admin commands never create keys by themselves: a fresh store has none.
    let (ok, out, _) = cli(&["keys", "list", "--json", "--data-dir", &dir], None);
    assert!(ok);
    assert_eq!(out.trim(), "[]");
    let (ok, out, _) = cli(&["keys", "new", "--data-dir", &dir], None);
    assert!(ok);
    let first_id = out.trim().to_owned();
    let (ok, out, _) = cli(&["keys", "list", "--json", "--data-dir", &dir], None);
    assert!(ok);
    let keys: serde_json::Value = serde_json::from_str(&out).unwrap();
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 1);
    for field in [
        "id",
        "created_at",
        "activates_at",
        "expires_at",
        "revoked",
        "default",
    ] {
        assert!(keys[0].get(field).is_some(), "{field}");
    }
    assert_eq!(keys[0]["id"], first_id.as_str());
    assert_eq!(keys[0]["default"], true);
    let (ok, out, _) = cli(&["keys", "new", "--data-dir", &dir], None);
    assert!(ok);
    let new_id = out.trim().to_owned();
    let (ok, _, _) = cli(&["keys", "revoke", &new_id, "--data-dir", &dir], None);
    assert!(ok);
    let (_, out, _) = cli(&["keys", "list", "--json", "--data-dir", &dir], None);
    let keys: serde_json::Value = serde_json::from_str(&out).unwrap();
    let revoked = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == new_id.as_str())
        .unwrap();
    assert_eq!(revoked["revoked"], true);
    let (ok, out, _) = cli(&["sessions", "count", "--data-dir", &dir], None);
    assert!(ok && out.contains("active sessions: 0"), "{out}");
    // Bad input: one line on stderr, non-zero exit.
    for args in [
        vec!["serve", "--no-such-flag"],
        vec!["keys", "revoke", "not-a-key-id", "--data-dir", &dir],
        vec!["sessions", "revoke", "zzz", "--data-dir", &dir],
        vec!["serve", "--idle-timeout", "soon", "--data-dir", &dir],
        vec!["users", "add", "root@example.com", "--data-dir", &dir],
    ] {
        let (ok, out, err) = cli(&args, Some("short\n"));
        assert!(!ok, "{args:?} should fail: {out}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line on stderr, got {err:?}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let (ok, _, err) = cli(
        &[
            "sessions",
            "count",
            "--redis",
            "redis://127.0.0.1:1/",
            "--data-dir",
            &dir,
        ],
        None,
    );
    assert!(!ok && err.contains("Redis"), "{err}");
}

#[tokio::test]
async fn cookies_are_secure_and_host_prefixed_behind_a_trusted_https_proxy() {
    let data = tempfile::tempdir().unwrap();
    let trusting = start_node(
        "tls",
        data.path(),
        &["--trusted-proxy".to_owned(), "127.0.0.1/32".to_owned()],
    );
    let other = tempfile::tempdir().unwrap();
    let untrusting = start_node("plain", other.path(), &[]);
    for node in [&trusting, &untrusting] {
        register_api(&reqwest::Client::new(), &node.url(), "tls@example.com").await;
    }
    let login = |base: String| async move {
        reqwest::Client::new()
            .post(format!("{base}/api/v1/login"))
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-for", "203.0.113.7")
            .json(&serde_json::json!({"email": "tls@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap()
    };
    let r = login(trusting.url()).await;
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("__Host-ringfence_session=") && cookie.contains("Secure"),
        "{cookie}"
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["session"]["ip"], "203.0.113.7",
        "client address from the trusted proxy"
    );
    // The __Host- cookie is read back.
    let value = cookie.split(';').next().unwrap().to_owned();
    let me = reqwest::Client::new()
        .get(format!("{}/api/v1/me", trusting.url()))
        .header("cookie", &value)
        .header("x-forwarded-proto", "https")
        .answer_status()
        .await;
    assert_eq!(me, StatusCode::OK);
    // The same headers from an untrusted peer are ignored.
    let r = login(untrusting.url()).await;
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("ringfence_session=") && !cookie.contains("Secure"),
        "{cookie}"
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["session"]["ip"], "127.0.0.1");
}
