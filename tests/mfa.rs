//! Second factors and recent authentication end to end: Redis + PostgreSQL + two nodes behind a
//! real HAProxy (round robin), all real processes. TOTP codes are computed here from the secret
//! the node hands out; the test cannot move a node's clock, so drift is tested with the codes of
//! the steps around the current one.

mod common;

use std::time::Duration;

use common::*;
use reqwest::{Client, StatusCode};
use ringfence_accounts::factors::totp::TotpSecret;
use serde_json::{json, Value};

const ALICE: &str = "alice@example.com";
/// Short, so the test sees it pass without waiting long.
const REAUTH_WINDOW_SECS: u64 = 3;

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn at(offset_steps: i64) -> chrono::DateTime<chrono::Utc> {
    now() + chrono::Duration::seconds(30 * offset_steps)
}

/// A request with the CSRF header and a JSON body when given; (status, body).
async fn send(
    client: &Client,
    method: reqwest::Method,
    url: String,
    csrf: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    api_call(client, method, &url, csrf, body.as_ref()).await
}

/// A JSON POST with the CSRF header; (status, body).
async fn post(client: &Client, url: String, csrf: &str, body: Value) -> (StatusCode, Value) {
    send(client, reqwest::Method::POST, url, Some(csrf), Some(body)).await
}

/// A JSON POST without the CSRF header; the status.
async fn post_without_csrf(client: &Client, url: String, body: Value) -> StatusCode {
    send(client, reqwest::Method::POST, url, None, Some(body))
        .await
        .0
}

/// A DELETE with the CSRF header; the status.
async fn delete(client: &Client, url: String, csrf: &str) -> StatusCode {
    send(client, reqwest::Method::DELETE, url, Some(csrf), None)
        .await
        .0
}

/// [`post`], and the node that answered.
async fn post_on(
    client: &Client,
    url: String,
    csrf: &str,
    body: Value,
) -> (StatusCode, String, Value) {
    let response = client
        .post(url)
        .header("x-csrf-token", csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let node = node_of(&response);
    (status, node, response.json().await.unwrap_or(Value::Null))
}

/// Registers alice on `client`, signs her in and turns TOTP on (confirmed with the previous
/// step's code): her secret and the confirm answer (with the recovery codes).
async fn register_with_totp(client: &Client, base: &str) -> (TotpSecret, Value) {
    let url = |path: &str| format!("{base}/api/v1/{path}");
    register_api(client, base, ALICE).await;
    let csrf = password_step(client, base).await["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, setup) = post(client, url("mfa/totp/setup"), &csrf, json!({})).await;
    let secret = TotpSecret::from_base32(setup["secret"].as_str().unwrap()).unwrap();
    let (status, answer) = post(
        client,
        url("mfa/totp/confirm"),
        &csrf,
        json!({"code": secret.code_at(at(-1))}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    (secret, answer)
}

/// Signs in with the password: (csrf token, body).
async fn password_step(client: &Client, base: &str) -> Value {
    let response = client
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"email": ALICE, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "password step");
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_on_two_nodes_behind_haproxy() {
    let fleet = fleet(&["--reauth-window", &format!("{REAUTH_WINDOW_SECS}s")]);
    let base = fleet.haproxy.url();
    let url = |path: &str| format!("{base}/api/v1/{path}");
    let alice = browser();
    register_api(&alice, &base, ALICE).await;
    let login = password_step(&alice, &base).await;
    assert!(
        login.get("mfa_required").is_none(),
        "no factor yet: signed in"
    );
    let csrf = login["csrf_token"].as_str().unwrap().to_owned();
    let me: Value = alice.get(url("me")).answer_json().await;
    assert_eq!(
        me["user"]["mfa"],
        json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0})
    );

    // Setup (right after signing in: recent).
    let (status, setup) = post(&alice, url("mfa/totp/setup"), &csrf, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{setup}");
    let secret = TotpSecret::from_base32(setup["secret"].as_str().unwrap()).unwrap();
    assert!(setup["otpauth_uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/ringfence%3Aalice%40example.com?secret="));

    // Bad input to confirm: 4xx, never counted as on.
    let confirm = url("mfa/totp/confirm");
    for (body, expected) in [
        (json!({"code": 123456}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"code": "12ab56"}), StatusCode::UNAUTHORIZED),
    ] {
        let (status, answer) = post(&alice, confirm.clone(), &csrf, body.clone()).await;
        assert_eq!(status, expected, "{body} → {answer}");
    }
    let huge = json!({"code": "1".repeat(100_000)});
    let (status, _) = post(&alice, confirm.clone(), &csrf, huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let status = post_without_csrf(
        &alice,
        confirm.clone(),
        json!({"code": secret.code_at(now())}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF header");
    // A wrong code is refused; TOTP stays off.
    let wrong = secret.code_at(at(5));
    let answer = post(&alice, confirm.clone(), &csrf, json!({"code": wrong})).await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_code");
    let me: Value = alice.get(url("me")).answer_json().await;
    assert_eq!(me["user"]["mfa"]["totp"], json!(false));

    // Confirm with the code of the previous step (drift -1 accepted).
    let (status, answer) = post(
        &alice,
        confirm.clone(),
        &csrf,
        json!({"code": secret.code_at(at(-1))}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let recovery: Vec<String> = answer["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    let me: Value = alice.get(url("me")).answer_json().await;
    assert_eq!(
        me["user"]["mfa"],
        json!({"totp": true, "passkeys": 0, "recovery_codes_left": 10})
    );

    // Signing in now needs the code: the password alone gives a pending sign-in.
    let phone = browser();
    let pending = password_step(&phone, &base).await;
    assert_eq!(pending["mfa_required"], json!(true));
    assert!(pending["methods"]
        .as_array()
        .unwrap()
        .contains(&json!("totp")));
    let pending_csrf = pending["csrf_token"].as_str().unwrap().to_owned();
    // The pending sign-in is not signed in anywhere, on either node.
    for _ in 0..2 {
        let me = phone.get(url("me")).send().await.unwrap();
        assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
        let list = phone.get(url("sessions")).answer_status().await;
        assert_eq!(list, StatusCode::UNAUTHORIZED);
        let (status, _) = post(
            &phone,
            url("password"),
            &pending_csrf,
            json!({"current_password": PASSWORD, "new_password": "another long passphrase here"}),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = post(&phone, url("mfa/totp/setup"), &pending_csrf, json!({})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let status = delete(&phone, url("mfa/totp"), &pending_csrf).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let second = url("login/mfa");
    let status = post_without_csrf(
        &phone,
        second.clone(),
        json!({"code": secret.code_at(now())}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF header");
    for bad in [
        json!({"code": 5}),
        json!({}),
        json!({"code": "1", "recovery_code": "2"}),
    ] {
        let (status, _) = post(&phone, second.clone(), &pending_csrf, bad.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let answer = post(
        &phone,
        second.clone(),
        &pending_csrf,
        json!({"code": secret.code_at(at(7))}),
    )
    .await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_code");
    let code = secret.code_at(now());
    let (status, first_node, signed_in) =
        post_on(&phone, second.clone(), &pending_csrf, json!({"code": code})).await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    assert_eq!(signed_in["user"]["email"], json!(ALICE));
    let me = phone.get(url("me")).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(
        me["session"]["id"], signed_in["session"]["id"],
        "a new session"
    );

    // The same code again, from another pending sign-in, on either node: refused.
    let mut nodes_seen = std::collections::BTreeSet::from([first_node]);
    for _ in 0..2 {
        let other = browser();
        let pending = password_step(&other, &base).await;
        let csrf = pending["csrf_token"].as_str().unwrap();
        let (status, node, answer) =
            post_on(&other, second.clone(), csrf, json!({"code": code})).await;
        assert_eq!(
            (status, error_code(&answer)),
            (StatusCode::UNAUTHORIZED, "invalid_code"),
            "replay on {node}"
        );
        nodes_seen.insert(node);
    }
    assert_eq!(
        nodes_seen.len(),
        2,
        "both nodes refused or took codes: {nodes_seen:?}"
    );

    // Drift: two steps either way refused, one step ahead accepted.
    let other = browser();
    let pending = password_step(&other, &base).await;
    let csrf = pending["csrf_token"].as_str().unwrap().to_owned();
    for offset in [2, -2] {
        let (status, _) = post(
            &other,
            second.clone(),
            &csrf,
            json!({"code": secret.code_at(at(offset))}),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "drift {offset}");
    }
    let (status, answer) = post(
        &other,
        second.clone(),
        &csrf,
        json!({"code": secret.code_at(at(1))}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "drift +1: {answer}");

    // A recovery code works once.
    for expected in [StatusCode::OK, StatusCode::UNAUTHORIZED] {
        let other = browser();
        let pending = password_step(&other, &base).await;
        let csrf = pending["csrf_token"].as_str().unwrap();
        let (status, answer) = post(
            &other,
            second.clone(),
            csrf,
            json!({"recovery_code": recovery[0].to_lowercase()}),
        )
        .await;
        assert_eq!(status, expected, "{answer}");
    }
    let me: Value = alice.get(url("me")).answer_json().await;
    assert_eq!(me["user"]["mfa"]["recovery_codes_left"], json!(9));

    // Recent authentication: after the window, sensitive operations need /api/v1/reauth.
    tokio::time::sleep(Duration::from_millis(REAUTH_WINDOW_SECS * 1000 + 500)).await;
    let answer = post(
        &alice,
        url("mfa/recovery-codes"),
        &api_csrf(&alice, &base).await,
        json!({}),
    )
    .await;
    assert_error(&answer, StatusCode::FORBIDDEN, "reauth_required");
    let csrf = api_csrf(&alice, &base).await;
    let answer = send(
        &alice,
        reqwest::Method::DELETE,
        url("mfa/totp"),
        Some(&csrf),
        None,
    )
    .await;
    assert_error(&answer, StatusCode::FORBIDDEN, "reauth_required");
    let answer = post(
        &alice,
        url("reauth"),
        &csrf,
        json!({"password": "not the password at all"}),
    )
    .await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let (status, _) = post(
        &alice,
        url("reauth"),
        &csrf,
        json!({"password": PASSWORD, "code": "123456"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, answer) = post(&alice, url("reauth"), &csrf, json!({"password": PASSWORD})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    // Accepted on both nodes (the proof is a key-ring payload).
    let mut fresh_codes = Vec::new();
    for _ in 0..2 {
        let (status, answer) = post(&alice, url("mfa/recovery-codes"), &csrf, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        fresh_codes = answer["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
    }
    // The old set is void.
    let other = browser();
    let pending = password_step(&other, &base).await;
    let (status, _) = post(
        &other,
        second.clone(),
        pending["csrf_token"].as_str().unwrap(),
        json!({"recovery_code": recovery[1]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a code of the old set");
    // Reauth by code (here a recovery code) works as well, after the window again.
    tokio::time::sleep(Duration::from_millis(REAUTH_WINDOW_SECS * 1000 + 500)).await;
    let answer = post(&alice, url("reauth"), &csrf, json!({"code": "000000"})).await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_code");
    let (status, answer) = post(
        &alice,
        url("reauth"),
        &csrf,
        json!({"code": fresh_codes[0]}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    let status = delete(&alice, url("mfa/totp"), &csrf).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let fresh = browser();
    let login = password_step(&fresh, &base).await;
    assert!(
        login.get("mfa_required").is_none(),
        "TOTP off: the password signs in"
    );
    drop(fleet.nodes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_second_factor_codes_are_throttled_and_admins_need_a_factor() {
    let fleet = fleet(&["--require-mfa-for-admins"]);
    let base = fleet.haproxy.url();
    let url = |path: &str| format!("{base}/api/v1/{path}");
    let alice = browser();
    register_with_totp(&alice, &base).await;
    let phone = browser();
    let pending = password_step(&phone, &base).await;
    let pending_csrf = pending["csrf_token"].as_str().unwrap().to_owned();
    let mut last = StatusCode::OK;
    for _ in 0..12 {
        let (status, _) = post(
            &phone,
            url("login/mfa"),
            &pending_csrf,
            json!({"code": "000000"}),
        )
        .await;
        last = status;
        if status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        last,
        StatusCode::TOO_MANY_REQUESTS,
        "wrong codes lock like wrong passwords"
    );
    // Locked: the password step is refused too (the same throttle).
    let response = phone
        .post(url("login"))
        .json(&json!({"email": ALICE, "password": PASSWORD}))
        .answer_status()
        .await;
    assert_eq!(response, StatusCode::TOO_MANY_REQUESTS);

    // An administrator without a second factor: 403 mfa_setup_required on admin routes.
    let admin = "root@example.com";
    let root = browser();
    register_api(&root, &base, admin).await;
    make_fleet_admin(&fleet, admin);
    let response = root
        .post(url("login"))
        .json(&json!({"email": admin, "password": PASSWORD}))
        .answer_status()
        .await;
    assert_eq!(response, StatusCode::OK);
    let stats = root.get(url("admin/stats")).send().await.unwrap();
    assert_eq!(stats.status(), StatusCode::FORBIDDEN);
    let body: Value = stats.json().await.unwrap();
    assert_eq!(error_code(&body), "mfa_setup_required");
    let page = root.get(format!("{base}/admin")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        page.headers()["location"],
        "/account/security#second-factors"
    );
    // `users reset-mfa` removes Alice's factors: the password signs in again.
    let done = fleet.cli(&["users", "reset-mfa", ALICE], None);
    assert!(done.success, "{}", done.stderr);
    assert!(done.stdout.contains("removed"), "{}", done.stdout);
}

/// The value of `<code>` right after `Secret: ` on the security page.
fn secret_on(html: &str) -> TotpSecret {
    let marker = "Secret: <code>";
    let start = html.find(marker).expect("the page shows the secret") + marker.len();
    let end = html[start..].find('<').unwrap() + start;
    TotpSecret::from_base32(&html[start..end]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_set_up_totp_with_a_qr_code_and_sign_in_in_two_steps() {
    let data = tempfile::tempdir().unwrap();
    let node = start_node(
        "solo",
        data.path(),
        &[
            "--reauth-window".to_owned(),
            format!("{REAUTH_WINDOW_SECS}s"),
        ],
    );
    let base = node.url();
    let alice = browser();
    assert_eq!(
        register_page(&alice, &base, ALICE).await.status(),
        StatusCode::SEE_OTHER
    );
    let (_, html) = get_page(&alice, &format!("{base}/account/security/mfa")).await;
    assert!(html.contains("Authenticator app: off"), "{html}");
    let response = alice
        .post(format!("{base}/account/security/totp/setup"))
        .form(&[("_csrf", csrf_of(&html))])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains("<svg"), "the QR code is drawn on the page");
    let secret = secret_on(&html);
    // A wrong code shows the same setup again.
    let response = alice
        .post(format!("{base}/account/security/totp/confirm"))
        .form(&[("_csrf", csrf_of(&html)), ("code", secret.code_at(at(4)))])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let html = response.text().await.unwrap();
    assert_eq!(secret_on(&html), secret);
    let response = alice
        .post(format!("{base}/account/security/totp/confirm"))
        .form(&[("_csrf", csrf_of(&html)), ("code", secret.code_at(at(-1)))])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("Authenticator app") && html.matches("<li><code>").count() == 10,
        "{html}"
    );

    // Signing in through the pages now takes two steps.
    let phone = browser();
    let response = phone.get(format!("{base}/login/mfa")).send().await.unwrap();
    assert_eq!(
        response.headers()["location"],
        "/login",
        "no pending sign-in"
    );
    let response = login_page(&phone, &base, ALICE, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/login/mfa");
    assert_eq!(signed_in_as(&phone, &base).await, None, "not signed in yet");
    let (_, html) = get_page(&phone, &format!("{base}/login/mfa")).await;
    let response = phone
        .post(format!("{base}/login/mfa"))
        .form(&[("_csrf", csrf_of(&html)), ("code", "000000".to_owned())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let html = response.text().await.unwrap();
    let response = phone
        .post(format!("{base}/login/mfa"))
        .form(&[("_csrf", csrf_of(&html)), ("code", secret.code_at(now()))])
        .answer_status()
        .await;
    assert_eq!(response, StatusCode::SEE_OTHER);
    assert_eq!(signed_in_as(&phone, &base).await.as_deref(), Some(ALICE));

    // Past the window the section asks to confirm it is you before changing anything.
    tokio::time::sleep(Duration::from_millis(REAUTH_WINDOW_SECS * 1000 + 500)).await;
    let (_, html) = get_page(&alice, &format!("{base}/account/security/mfa")).await;
    assert!(html.contains("confirm it is you first"), "{html}");
    let response = alice
        .post(format!("{base}/account/security/totp/disable"))
        .form(&[("_csrf", csrf_of(&html))])
        .answer_status()
        .await;
    assert_eq!(response, StatusCode::FORBIDDEN);
    let response = alice
        .post(format!("{base}/account/security/reauth"))
        .form(&[("_csrf", csrf_of(&html)), ("password", PASSWORD.to_owned())])
        .answer_status()
        .await;
    assert_eq!(response, StatusCode::SEE_OTHER);
    let response = alice
        .post(format!("{base}/account/security/totp/disable"))
        .form(&[("_csrf", csrf_of(&html))])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("Authenticator app: off"));
}

/// `user.mfa` of `/api/v1/me` is kept in each node's memory between calls; a change of second
/// factors made through one node must show on the other at once (the change is announced
/// through the session store's Redis key, which every node's tracking connection hears), never
/// an old summary kept indefinitely.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_shows_a_second_factor_change_made_through_the_other_node() {
    let fleet = fleet(&[]);
    let base = fleet.haproxy.url();
    let alice = browser();
    register_api(&alice, &base, ALICE).await;
    let login = password_step(&alice, &base).await;
    let csrf = login["csrf_token"].as_str().unwrap().to_owned();
    let node: Vec<String> = fleet
        .nodes
        .iter()
        .map(|n| format!("http://{}", n.addr()))
        .collect();
    let mfa_on_node2 = || async {
        alice
            .get(format!("{}/api/v1/me", node[1]))
            .answer_json()
            .await["user"]["mfa"]
            .clone()
    };
    // Twice: the second answer comes from node 2's memory.
    for _ in 0..2 {
        assert_eq!(
            mfa_on_node2().await,
            json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0})
        );
    }

    let (status, setup) = post(
        &alice,
        format!("{}/api/v1/mfa/totp/setup", node[0]),
        &csrf,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{setup}");
    let secret = TotpSecret::from_base32(setup["secret"].as_str().unwrap()).unwrap();
    let (status, answer) = post(
        &alice,
        format!("{}/api/v1/mfa/totp/confirm", node[0]),
        &csrf,
        json!({"code": secret.code_at(now())}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let changed = json!({"totp": true, "passkeys": 0, "recovery_codes_left": 10});
    let began = std::time::Instant::now();
    loop {
        let shown = mfa_on_node2().await;
        if shown == changed {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_millis(500),
            "node 2 still shows {shown} {:?} after the change on node 1",
            began.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The `Set-Cookie` headers of `response` that clear the pending sign-in cookie.
fn clears_pending(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("ringfence_mfa=;") && v.contains("Max-Age=0"))
}

/// A pending two-step sign-in ends when the browser signs in another way or signs out: the
/// pending cookie is cleared, so the right second step afterwards finds nothing to finish
/// (it used to finish the stale sign-in, switching the browser to that account, for up to
/// five minutes, and scoped passkey ceremonies to it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_another_way_or_signing_out_ends_a_pending_sign_in() {
    const BOB: &str = "bob@example.com";
    let data = tempfile::tempdir().unwrap();
    let node = start_node("solo", data.path(), &[]);
    let base = node.url();
    let url = |path: &str| format!("{base}/api/v1/{path}");
    register_api(&browser(), &base, BOB).await;
    let (_, answer) = register_with_totp(&browser(), &base).await;
    let mut recovery = answer["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned());

    // Without a pending sign-in, signing in or out says nothing of its cookie: the session
    // cookie stays the only one a plain sign-in sets.
    let bob_signs_in = |client: Client| {
        let url = url("login");
        async move {
            let response = client
                .post(url)
                .json(&json!({"email": BOB, "password": PASSWORD}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response
        }
    };
    let plain = browser();
    let response = bob_signs_in(plain.clone()).await;
    let names_pending = |response: &reqwest::Response| {
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .any(|v| v.to_str().unwrap_or("").contains("ringfence_mfa"))
    };
    assert!(!names_pending(&response), "{:?}", response.headers());
    let csrf: Value = response.json().await.unwrap();
    let response = plain
        .post(url("logout"))
        .header("x-csrf-token", csrf["csrf_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(!names_pending(&response), "{:?}", response.headers());

    // A shared computer: alice's password step, then bob signs in with his password.
    let shared = browser();
    let pending = password_step(&shared, &base).await;
    assert_eq!(pending["mfa_required"], json!(true));
    let pending_csrf = pending["csrf_token"].as_str().unwrap().to_owned();
    let response = bob_signs_in(shared.clone()).await;
    assert!(clears_pending(&response), "{:?}", response.headers());
    let code = json!({"code": recovery.next().unwrap()});
    let (status, answer) = post(&shared, url("login/mfa"), &pending_csrf, code).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let me: Value = shared.get(url("me")).answer_json().await;
    assert_eq!(me["user"]["email"], BOB, "still bob");

    // Signing out ends it too.
    let bob_csrf = me["csrf_token"].as_str().unwrap().to_owned();
    let pending = password_step(&shared, &base).await;
    assert_eq!(pending["mfa_required"], json!(true));
    let pending_csrf = pending["csrf_token"].as_str().unwrap().to_owned();
    let response = shared
        .post(url("logout"))
        .header("x-csrf-token", &bob_csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(clears_pending(&response), "{:?}", response.headers());
    let code = json!({"code": recovery.next().unwrap()});
    let (status, answer) = post(&shared, url("login/mfa"), &pending_csrf, code).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
}
