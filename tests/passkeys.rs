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
    let args = vec![
        "--redis".to_owned(),
        redis.url(),
        "--database".to_owned(),
        postgres.url(),
        "--public-url".to_owned(),
        PUBLIC_URL.to_owned(),
    ];
    let (nodes, dirs) = start_two_nodes(&args);
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
        .answer_status()
        .await;
    assert_eq!(response, StatusCode::CREATED);
    let login: Value = client
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .answer_json()
        .await;
    let csrf = login["csrf_token"].as_str().unwrap().to_owned();
    (client, csrf)
}

/// A JSON POST, with the CSRF header when given.
async fn post(
    client: &Client,
    url: String,
    csrf: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    api_call(client, reqwest::Method::POST, &url, csrf, Some(&body)).await
}

/// `POST /api/v1/passkeys/register/start` on `base` for the signed-in `client`.
async fn register_start(client: &Client, base: &str, csrf: &str) -> (StatusCode, Value) {
    let url = format!("{base}/api/v1/passkeys/register/start");
    post(client, url, Some(csrf), Value::Null).await
}

/// `POST /api/v1/passkeys/register/finish` on `base` with the answer `finish`.
async fn register_finish(
    client: &Client,
    base: &str,
    csrf: &str,
    finish: Value,
) -> (StatusCode, Value) {
    let url = format!("{base}/api/v1/passkeys/register/finish");
    post(client, url, Some(csrf), finish).await
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
    let (status, ceremony) = register_start(&client, &a, &csrf).await;
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
    let (status, created) = register_finish(&client, &b, &csrf, finish.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "Laptop");
    let passkey_id = created["id"].as_str().unwrap().to_owned();

    // The same registration finished again: the ceremony is spent.
    let answer = register_finish(&client, &a, &csrf, finish).await;
    assert_error(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_challenge",
    );

    // Registration answered from the wrong origin.
    let (_, ceremony) = register_start(&client, &a, &csrf).await;
    let mut phished = SoftPasskey::new("http://localhost.evil.example:8080");
    let finish = json!({"challenge_id": ceremony["challenge_id"], "name": "Phished", "credential": phished.register(&ceremony["publicKey"])});
    let answer = register_finish(&client, &b, &csrf, finish).await;
    assert_error(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "passkey_rejected",
    );

    let list: Value = client
        .get(format!("{b}/api/v1/passkeys"))
        .answer_json()
        .await;
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
        .answer_status()
        .await;
    assert_eq!(me, StatusCode::OK);

    // The same assertion replayed: to the spent ceremony, and to a fresh one. (From here on
    // the ceremonies start without cookies: started signed in, a ceremony re-authenticates.)
    let answer = post(
        &browser(),
        format!("{b}/api/v1/passkeys/login/finish"),
        None,
        finish,
    )
    .await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_challenge");
    let (challenge_id, _) = login_start(&browser(), &a, json!({})).await;
    let replay = json!({"challenge_id": challenge_id, "credential": assertion});
    let answer = post(
        &browser(),
        format!("{b}/api/v1/passkeys/login/finish"),
        None,
        replay,
    )
    .await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "passkey_rejected");

    // A wrong origin, then a wrong RP id.
    passkey.origin = "http://evil.example:8080".to_owned();
    let answer = passkey_sign_in(&mut passkey, &a, json!({}), &b).await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "passkey_rejected");
    assert!(message(&answer).contains("origin"), "{}", answer.1);
    passkey.origin = PUBLIC_URL.to_owned();
    passkey.rp_id_override = Some("evil.example".to_owned());
    let answer = passkey_sign_in(&mut passkey, &a, json!({}), &b).await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "passkey_rejected");
    assert!(message(&answer).contains("relying party"), "{}", answer.1);
    passkey.rp_id_override = None;

    // The sign counter is kept: a clone that signs with an older counter is refused.
    passkey.counter = 1;
    let answer = passkey_sign_in(&mut passkey, &a, json!({}), &b).await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "passkey_rejected");
    passkey.counter = 100;

    // With an e-mail: only that account's passkey will do.
    let (_other, _) = signed_in(&a, "bob@example.com").await;
    let bob = json!({"email": "bob@example.com"});
    let answer = passkey_sign_in(&mut passkey, &a, bob, &b).await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "passkey_rejected");
    let ada = json!({"email": "ADA@example.com"});
    let (status, body) = passkey_sign_in(&mut passkey, &a, ada, &b).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let list: Value = client
        .get(format!("{a}/api/v1/passkeys"))
        .answer_json()
        .await;
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
    let (_, ceremony) = register_start(&client, &a, &csrf).await;
    let finish = json!({"challenge_id": ceremony["challenge_id"], "name": " ", "credential": {}});
    let answer = register_finish(&client, &a, &csrf, finish).await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_name");

    // Removal, on the other node; the passkey signs nobody in afterwards.
    let response = client
        .delete(format!("{b}/api/v1/passkeys/{passkey_id}"))
        .header("X-CSRF-Token", &csrf)
        .answer_status()
        .await;
    assert_eq!(response, StatusCode::NO_CONTENT);
    let response = client
        .delete(format!("{a}/api/v1/passkeys/{passkey_id}"))
        .header("X-CSRF-Token", &csrf)
        .answer_status()
        .await;
    assert_eq!(response, StatusCode::NOT_FOUND);
    let answer = passkey_sign_in(&mut passkey, &a, json!({}), &b).await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "passkey_rejected");
}

/// Registers a new software passkey for the signed-in `client`; returns it.
async fn add_passkey(client: &Client, base: &str, csrf: &str, name: &str) -> SoftPasskey {
    let (status, ceremony) = register_start(client, base, csrf).await;
    assert_eq!(status, StatusCode::OK, "{ceremony}");
    let mut passkey = SoftPasskey::new(PUBLIC_URL);
    let credential = passkey.register(&ceremony["publicKey"]);
    let finish =
        json!({"challenge_id": ceremony["challenge_id"], "name": name, "credential": credential});
    let (status, created) = register_finish(client, base, csrf, finish).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    passkey
}

/// Runs the passkey sign-in ceremony with `client`'s cookies, `passkey` answering; returns
/// the finish's status and body, and the start's options.
async fn ceremony(client: &Client, base: &str, passkey: &mut SoftPasskey) -> (StatusCode, Value) {
    let (challenge_id, options) = login_start(client, base, json!({})).await;
    let finish = json!({"challenge_id": challenge_id, "credential": passkey.assert(&options)});
    post(
        client,
        format!("{base}/api/v1/passkeys/login/finish"),
        None,
        finish,
    )
    .await
}

/// A passkey sign-in by new clients without cookies: started on `start` with `body`, answered
/// by `passkey`, finished on `finish`; the finish's status and body.
async fn passkey_sign_in(
    passkey: &mut SoftPasskey,
    start: &str,
    body: Value,
    finish: &str,
) -> (StatusCode, Value) {
    let (challenge_id, options) = login_start(&browser(), start, body).await;
    let answer = json!({"challenge_id": challenge_id, "credential": passkey.assert(&options)});
    post(
        &browser(),
        format!("{finish}/api/v1/passkeys/login/finish"),
        None,
        answer,
    )
    .await
}

/// The `error.message` of an answer's body.
fn message(answer: &(StatusCode, Value)) -> &str {
    answer.1["error"]["message"].as_str().unwrap()
}

async fn me(client: &Client, base: &str) -> (StatusCode, Value) {
    let response = client
        .get(format!("{base}/api/v1/me"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The URL-safe base64 credential ids `allowCredentials` lists.
fn allowed(options: &Value) -> Vec<String> {
    options["allowCredentials"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|c| c["id"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Issue 15's passkey as a second factor, on two nodes behind HAProxy (round robin, so starts
/// and finishes land on either node): after the right password, a user with a passkey (Ada:
/// TOTP and a passkey; Bob: a passkey only) is not signed in until a passkey of theirs, and
/// only theirs, answers a ceremony limited to their credentials; the step issues a new session
/// and clears the pending sign-in. Signed in, the same ceremony re-authenticates the session
/// (sudo mode) and never switches it to another account. Failed steps are throttled like
/// wrong passwords. The admin list reports each user's factors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_is_the_second_step_and_reauthenticates_without_switching_accounts() {
    use ringfence_accounts::factors::totp::TotpSecret;

    let fleet = fleet(&["--public-url", PUBLIC_URL, "--reauth-window", "3s"]);
    let base = fleet.haproxy.url();
    let (ada, ada_csrf) = signed_in(&base, "ada@example.com").await;
    let mut ada_key = add_passkey(&ada, &base, &ada_csrf, "Laptop").await;
    let (status, setup) = post(
        &ada,
        format!("{base}/api/v1/mfa/totp/setup"),
        Some(&ada_csrf),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{setup}");
    let secret = TotpSecret::from_base32(setup["secret"].as_str().unwrap()).unwrap();
    let totp_code = secret.code_at(chrono::Utc::now() - chrono::Duration::seconds(30));
    let (status, body) = post(
        &ada,
        format!("{base}/api/v1/mfa/totp/confirm"),
        Some(&ada_csrf),
        json!({"code": totp_code}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (bob, bob_csrf) = signed_in(&base, "bob@example.com").await;
    let (_, bob_me) = me(&bob, &base).await;
    let bob_first_session = bob_me["session"]["id"].clone();
    let mut bob_key = add_passkey(&bob, &base, &bob_csrf, "Key").await;

    // The security page embeds both sections (not links to them).
    let (_, html) = get_page(&ada, &format!("{base}/account/security")).await;
    assert!(html.contains("id=\"two-factor\""), "{html}");
    assert!(html.contains("id=\"passkey-register\""), "{html}");
    assert!(html.contains("<strong>Laptop</strong>"), "{html}");
    assert!(html.contains("Authenticator app: on"), "{html}");
    let (_, html) = get_page(&browser(), &format!("{base}/login")).await;
    assert!(html.contains("id=\"passkey-login\""), "{html}");
    assert!(html.contains("src=\"/static/passkeys.js\""), "{html}");

    // The password step: both are asked for a second step, with passkey among the methods.
    let phone = browser();
    let (status, pending) = post(
        &phone,
        format!("{base}/api/v1/login"),
        None,
        json!({"email": "ada@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pending["mfa_required"], true, "{pending}");
    assert_eq!(
        pending["methods"],
        json!(["totp", "passkey", "recovery_code"])
    );
    let (_, html) = get_page(&phone, &format!("{base}/login/mfa")).await;
    assert!(
        html.contains("id=\"passkey-login\"") && html.contains("action=\"/login/mfa\""),
        "{html}"
    );
    let tablet = browser();
    let (status, pending) = post(
        &tablet,
        format!("{base}/api/v1/login"),
        None,
        json!({"email": "bob@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pending["mfa_required"], true, "passkey-only: {pending}");
    assert_eq!(pending["methods"], json!(["passkey"]));
    let (_, html) = get_page(&tablet, &format!("{base}/login/mfa")).await;
    assert!(html.contains("id=\"passkey-login\""), "{html}");
    assert!(
        !html.contains("action=\"/login/mfa\""),
        "no code to type: {html}"
    );
    assert_eq!(me(&tablet, &base).await.0, StatusCode::UNAUTHORIZED);

    // The pending step's ceremony lists Bob's passkey only; Ada's passkey is refused and
    // signs nobody in.
    let (_, options) = login_start(&tablet, &base, json!({})).await;
    assert_eq!(allowed(&options), vec![b64(&bob_key.credential_id)]);
    assert_eq!(options["userVerification"], "required");
    let answer = ceremony(&tablet, &base, &mut ada_key).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "passkey_other_account");
    assert_eq!(me(&tablet, &base).await.0, StatusCode::UNAUTHORIZED);
    // Bob's passkey completes the sign-in: a new session, the pending cookie cleared.
    let (challenge_id, options) = login_start(&tablet, &base, json!({})).await;
    let response = tablet
        .post(format!("{base}/api/v1/passkeys/login/finish"))
        .json(&json!({"challenge_id": challenge_id, "credential": bob_key.assert(&options)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cleared = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("ringfence_mfa=;"));
    assert!(cleared, "{:?}", response.headers());
    let login: Value = response.json().await.unwrap();
    assert_eq!(login["user"]["email"], "bob@example.com");
    let session = login["session"]["id"].clone();
    assert_ne!(session, bob_first_session);
    for _ in 0..2 {
        let (status, body) = me(&tablet, &base).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["session"]["id"], session, "either node knows it");
    }
    // Done: the pending sign-in is over, so a code step has nothing to complete.
    let csrf = login["csrf_token"].as_str().unwrap();
    let (status, _) = post(
        &tablet,
        format!("{base}/api/v1/login/mfa"),
        Some(csrf),
        json!({"code": "123456"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Ada's own pending step with her passkey (she has TOTP too): signed in.
    let (status, login) = ceremony(&phone, &base, &mut ada_key).await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["user"]["email"], "ada@example.com");

    // Re-authentication: past the window, Ada's first session may not add a passkey.
    tokio::time::sleep(std::time::Duration::from_millis(3_500)).await;
    let (_, before) = me(&ada, &base).await;
    let answer = register_start(&ada, &base, &ada_csrf).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "reauth_required");
    // Signed in, the ceremony is for Ada's passkeys; Bob's is refused, the session stays Ada's
    // and no more recent than before.
    let (_, options) = login_start(&ada, &base, json!({})).await;
    assert_eq!(allowed(&options), vec![b64(&ada_key.credential_id)]);
    let answer = ceremony(&ada, &base, &mut bob_key).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "passkey_other_account");
    let (_, after) = me(&ada, &base).await;
    assert_eq!(after["user"]["email"], "ada@example.com");
    assert_eq!(after["session"]["id"], before["session"]["id"]);
    let (status, _) = register_start(&ada, &base, &ada_csrf).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "still not recently authenticated"
    );
    // Ada's passkey: 200 with the login response of the same session, now recently
    // authenticated.
    let (status, body) = ceremony(&ada, &base, &mut ada_key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["session"]["id"], before["session"]["id"]);
    let (_, after) = me(&ada, &base).await;
    assert_eq!(after["session"]["id"], before["session"]["id"]);
    let (status, body) = register_start(&ada, &base, &ada_csrf).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A ceremony started without any cookie (any account's passkey) is a complete sign-in, as a
    // right password is: finished with Bob's passkey in Ada's browser, it signs Bob in there on
    // a new session and Ada's session there ends.
    let (challenge_id, options) = login_start(&browser(), &base, json!({})).await;
    let finish = json!({"challenge_id": challenge_id, "credential": bob_key.assert(&options)});
    let (status, login) = post(
        &ada,
        format!("{base}/api/v1/passkeys/login/finish"),
        None,
        finish,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["user"]["email"], "bob@example.com");
    assert_ne!(login["session"]["id"], before["session"]["id"]);
    let (_, now_bob) = me(&ada, &base).await;
    assert_eq!(now_bob["user"]["email"], "bob@example.com");

    // The admin list reports each user's factors; an admin without passkeys cannot run a
    // ceremony for their own account.
    let admin = "root@example.com";
    let (root, _) = signed_in(&base, admin).await;
    make_fleet_admin(&fleet, admin);
    // The role change ended root's sessions: sign in again.
    let (status, _) = post(
        &root,
        format!("{base}/api/v1/login"),
        None,
        json!({"email": admin, "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for (email, mfa) in [
        (
            "ada%40example.com",
            json!({"totp": true, "passkeys": 1, "recovery_codes_left": 10}),
        ),
        (
            "bob%40example.com",
            json!({"totp": false, "passkeys": 1, "recovery_codes_left": 0}),
        ),
    ] {
        let list: Value = root
            .get(format!("{base}/api/v1/admin/users?email={email}"))
            .answer_json()
            .await;
        assert_eq!(list["users"][0]["mfa"], mfa, "{list}");
    }
    let answer = post(
        &root,
        format!("{base}/api/v1/passkeys/login/start"),
        None,
        json!({}),
    )
    .await;
    assert_error(&answer, StatusCode::CONFLICT, "no_passkeys");

    // Refused passkey steps count toward Bob's sign-in throttle, like wrong passwords.
    let laptop = browser();
    let (status, _) = post(
        &laptop,
        format!("{base}/api/v1/login"),
        None,
        json!({"email": "bob@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    bob_key.origin = "http://evil.example:8080".to_owned();
    let mut last = StatusCode::OK;
    for _ in 0..12 {
        let (status, body) = ceremony(&laptop, &base, &mut bob_key).await;
        last = status;
        if status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::UNAUTHORIZED, "passkey_rejected"),
            "{body}"
        );
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    bob_key.origin = PUBLIC_URL.to_owned();
    let (status, _) = ceremony(&laptop, &base, &mut bob_key).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "locked: even the right one"
    );
    assert_eq!(me(&laptop, &base).await.0, StatusCode::UNAUTHORIZED);
}
