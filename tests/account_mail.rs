//! Issue 14 end to end, with real processes: the account lifecycle over mail through the JSON
//! API and the admin commands, on a fleet (two nodes behind HAProxy on Redis + PostgreSQL,
//! mail through a real SMTP server) and on the embedded default (SQLite, mail as `.eml` files
//! in `DATA_DIR/outbox/`).
//!
//! Expired tokens are not tested here: a process test cannot move the nodes' clock, and waiting
//! out even the shortest lifetime (1 minute) would be slow; the accounts crate tests expiry with
//! a `ManualClock` (tests/lifecycle.rs there).

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use reqwest::{Client, StatusCode};
use ringfence_testkit::{ReceivedMail, SmtpServer};
use serde_json::{json, Value};

const PUBLIC_URL: &str = "http://app.example.test";
const NEW_PASSWORD: &str = "a brand new passphrase for the test";

/// A JSON POST (with the CSRF header when given); status and body (`Null` when empty).
async fn post(client: &Client, url: &str, body: Value, csrf: Option<&str>) -> (StatusCode, Value) {
    api_call(client, reqwest::Method::POST, url, csrf, Some(&body)).await
}

/// An authenticated JSON request without a body.
async fn call(
    client: &Client,
    method: reqwest::Method,
    url: &str,
    csrf: Option<&str>,
) -> (StatusCode, Value) {
    api_call(client, method, url, csrf, None).await
}

/// `POST /api/v1/password/forgot` on `base` for `email`.
async fn forgot_password(client: &Client, base: &str, email: &str) -> (StatusCode, Value) {
    let url = format!("{base}/api/v1/password/forgot");
    post(client, &url, json!({"email": email}), None).await
}

/// `POST /api/v1/password/reset` on `base`: `token` and [`NEW_PASSWORD`].
async fn reset_password(client: &Client, base: &str, token: &str) -> (StatusCode, Value) {
    let body = json!({"token": token, "new_password": NEW_PASSWORD});
    post(client, &format!("{base}/api/v1/password/reset"), body, None).await
}

/// `POST /api/v1/email/verify` on `base` with `token`.
async fn verify_email(client: &Client, base: &str, token: &str) -> (StatusCode, Value) {
    let url = format!("{base}/api/v1/email/verify");
    post(client, &url, json!({"token": token}), None).await
}

/// `POST /api/v1/email/confirm` on `base` with `token`.
async fn confirm_email(client: &Client, base: &str, token: &str) -> (StatusCode, Value) {
    let url = format!("{base}/api/v1/email/confirm");
    post(client, &url, json!({"token": token}), None).await
}

/// `POST /api/v1/email/change` on `base` to `new_email`, for the signed-in `client`.
async fn change_email(
    client: &Client,
    base: &str,
    csrf: &str,
    new_email: &str,
) -> (StatusCode, Value) {
    let url = format!("{base}/api/v1/email/change");
    post(client, &url, json!({"new_email": new_email}), Some(csrf)).await
}

/// `GET /api/v1/me` on `base`.
async fn me_on(client: &Client, base: &str) -> (StatusCode, Value) {
    call(
        client,
        reqwest::Method::GET,
        &format!("{base}/api/v1/me"),
        None,
    )
    .await
}

/// Signs in through the API: the status, and the CSRF token on success.
async fn sign_in(client: &Client, base: &str, email: &str, password: &str) -> (StatusCode, Value) {
    post(
        client,
        &format!("{base}/api/v1/login"),
        json!({"email": email, "password": password}),
        None,
    )
    .await
}

/// Asserts that a fresh client signing in on `base` as `email` with `password` is answered
/// `status`.
async fn assert_sign_in(base: &str, email: &str, password: &str, status: StatusCode) {
    let (got, body) = sign_in(&browser(), base, email, password).await;
    assert_eq!(got, status, "{email} on {base}: {body}");
}

/// The CSRF token in the body of a successful sign-in.
fn csrf_token(login: &Value) -> String {
    login["csrf_token"].as_str().unwrap().to_owned()
}

/// `POST /api/v1/email/verification` on `base` for the signed-in `client` (a new verification
/// mail); the status.
async fn resend_verification(client: &Client, base: &str, csrf: &str) -> StatusCode {
    let url = format!("{base}/api/v1/email/verification");
    post(client, &url, json!({}), Some(csrf)).await.0
}

/// Asks, for the signed-in `client`, to move its address to `new_email` (asserted `202`); the
/// confirmation mail that arrives there.
async fn request_email_change(
    client: &Client,
    base: &str,
    csrf: &str,
    new_email: &str,
    smtp: &SmtpServer,
) -> ReceivedMail {
    let (status, body) = change_email(client, base, csrf, new_email).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    smtp_mail(smtp, new_email, "Confirm your new e-mail")
}

/// An administrator signed in on one node, using `/api/v1/admin/users`.
struct Admin {
    client: Client,
    base: String,
    csrf: String,
}

impl Admin {
    /// Signs `email` in on `base` with `password` (asserted to succeed).
    async fn sign_in(base: &str, email: &str, password: &str) -> Admin {
        let client = browser();
        let (status, login) = sign_in(&client, base, email, password).await;
        assert_eq!(status, StatusCode::OK, "{login}");
        let csrf = csrf_token(&login);
        Admin {
            client,
            base: base.to_owned(),
            csrf,
        }
    }

    /// The users a search by `email` finds (the search asserted `200`).
    async fn find(&self, email: &str) -> Value {
        let query = email.replace('@', "%40");
        let url = format!("{}/api/v1/admin/users?email={query}", self.base);
        let (status, found) = call(&self.client, reqwest::Method::GET, &url, None).await;
        assert_eq!(status, StatusCode::OK, "{found}");
        found
    }

    /// `METHOD /api/v1/admin/users/{id}{action}` with the CSRF header; the status.
    async fn act(&self, method: reqwest::Method, id: &str, action: &str) -> StatusCode {
        let url = format!("{}/api/v1/admin/users/{id}{action}", self.base);
        call(&self.client, method, &url, Some(&self.csrf)).await.0
    }
}

/// The token of the one action link in a mail, checking the link's form on the way.
fn link_token(mail: &ReceivedMail, page: &str) -> String {
    let text = mail.text().expect("a text part");
    let prefix = format!("{PUBLIC_URL}{page}?token=");
    let start = text
        .find(&prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in:\n{text}"))
        + prefix.len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert!(token.len() >= 22, "{token}");
    assert_eq!(text.matches("token=").count(), 1, "one link only:\n{text}");
    token
}

/// The mails to `to` whose subject contains `subject`.
fn matching(mails: &[ReceivedMail], to: &str, subject: &str) -> Vec<ReceivedMail> {
    mails
        .iter()
        .filter(|m| m.header("To").is_some_and(|t| t.contains(to)))
        .filter(|m| m.header("Subject").is_some_and(|s| s.contains(subject)))
        .cloned()
        .collect()
}

/// Waits until a mail to `to` about `subject` has arrived at the SMTP server; returns the
/// newest.
fn smtp_mail(smtp: &SmtpServer, to: &str, subject: &str) -> ReceivedMail {
    wait_mail(|| smtp.messages().unwrap(), to, subject)
}

/// Every `.eml` in an outbox directory, oldest first.
fn outbox(data_dir: &Path) -> Vec<ReceivedMail> {
    let mut files: Vec<_> = std::fs::read_dir(data_dir.join("outbox"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .map(|p| ReceivedMail::parse(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

fn outbox_mail(data_dir: &Path, to: &str, subject: &str) -> ReceivedMail {
    wait_mail(|| outbox(data_dir), to, subject)
}

fn wait_mail(read: impl Fn() -> Vec<ReceivedMail>, to: &str, subject: &str) -> ReceivedMail {
    let mut mails = wait_mails(read, to, subject, 1);
    mails.pop().expect("one mail at least")
}

/// Waits until `count` mails to `to` about `subject` are there; returns them, oldest first.
fn wait_mails(
    read: impl Fn() -> Vec<ReceivedMail>,
    to: &str,
    subject: &str,
    count: usize,
) -> Vec<ReceivedMail> {
    // Long enough for the mail queue's retry backoff after a relay comes back.
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let mails = matching(&read(), to, subject);
        if mails.len() >= count {
            return mails;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {count} mails to {to} about {subject:?}",
            mails.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The mail flags every node of a test gets.
fn mail_args(smtp: Option<&SmtpServer>) -> Vec<String> {
    let mut args = vec!["--public-url".to_owned(), PUBLIC_URL.to_owned()];
    if let Some(smtp) = smtp {
        args.extend(["--smtp-url".to_owned(), smtp.url()]);
    }
    args
}

/// Two nodes on Redis and PostgreSQL behind HAProxy, mailing through `smtp`.
fn fleet(smtp: &SmtpServer) -> Fleet {
    let args = mail_args(Some(smtp));
    common::fleet(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `ringfence users disable` (by `cli`) on an account signed in on `node` with [`NEW_PASSWORD`]:
/// its session ends there, and signing in on `other` is refused as `account_disabled`.
async fn disabling_ends_the_sessions(
    cli: &impl Fn(&[&str], Option<&str>) -> Run,
    email: &str,
    node: &str,
    other: &str,
) {
    let client = browser();
    assert_eq!(
        sign_in(&client, node, email, NEW_PASSWORD).await.0,
        StatusCode::OK
    );
    let disabled = cli(&["users", "disable", email], None);
    assert!(disabled.success, "{}", disabled.stderr);
    let me = me_on(&client, node).await;
    assert_eq!(me.0, StatusCode::UNAUTHORIZED);
    let answer = sign_in(&browser(), other, email, NEW_PASSWORD).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "account_disabled");
}

/// `ringfence users enable`, then `users set-password` with [`PASSWORD`] (by `cli`): the
/// account signs in with it on `node`.
async fn enabling_and_setting_the_password(
    cli: &impl Fn(&[&str], Option<&str>) -> Run,
    email: &str,
    node: &str,
) {
    let enabled = cli(&["users", "enable", email], None);
    assert!(enabled.success, "{}", enabled.stderr);
    let set = cli(
        &["users", "set-password", email],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(set.success, "{}", set.stderr);
    assert_sign_in(node, email, PASSWORD, StatusCode::OK).await;
}

/// `ringfence users add EMAIL --admin` with [`PASSWORD`] (by `cli`), asserted to succeed.
fn add_admin(cli: &impl Fn(&[&str], Option<&str>) -> Run, email: &str) {
    let added = cli(
        &["users", "add", email, "--admin"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(added.success, "{}", added.stderr);
}

/// The token of the link `ringfence users reset-password --print-link` printed (by `cli`),
/// asserted to have succeeded with one link to the reset page.
fn printed_reset_token(cli: &impl Fn(&[&str], Option<&str>) -> Run, email: &str) -> String {
    let printed = cli(&["users", "reset-password", email, "--print-link"], None);
    assert!(printed.success, "{}", printed.stderr);
    let link = printed.stdout.trim();
    link.strip_prefix(&format!("{PUBLIC_URL}/reset-password?token="))
        .unwrap_or_else(|| panic!("{link}"))
        .to_owned()
}

/// The whole reset flow across a fleet, then verification, an e-mail change and the admin
/// controls, through the API and the CLI: requests on one node, links redeemed on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_mail_flows_work_across_a_fleet_on_redis_and_postgres_with_smtp() {
    let smtp = SmtpServer::start().expect("aiosmtpd");
    let fleet = fleet(&smtp);
    let (n1, n2) = (fleet.nodes[0].url(), fleet.nodes[1].url());
    let lb = fleet.haproxy.url();
    let email = "reset@example.com";

    // Registration sends the verification mail (kept for later).
    register_api(&browser(), &lb, email).await;
    let verification = smtp_mail(&smtp, email, "Confirm your e-mail");
    let on1 = browser();
    let on2 = browser();
    assert_eq!(sign_in(&on1, &n1, email, PASSWORD).await.0, StatusCode::OK);
    assert_eq!(sign_in(&on2, &n2, email, PASSWORD).await.0, StatusCode::OK);

    // Forgot: an unknown address gets the same status and body, and no mail.
    let anyone = browser();
    let (unknown_status, unknown_body) = forgot_password(&anyone, &n1, "nobody@example.com").await;
    let (known_status, known_body) = forgot_password(&anyone, &n1, email).await;
    assert_eq!(unknown_status, StatusCode::ACCEPTED);
    assert_eq!((known_status, &known_body), (unknown_status, &unknown_body));
    let reset_mail = smtp_mail(&smtp, email, "Reset your");
    assert!(matching(&smtp.messages().unwrap(), "nobody@example.com", "").is_empty());
    let token = link_token(&reset_mail, "/reset-password");
    // The fleet keeps the token in Redis, under the prefix, hashed: the token itself is nowhere.
    let keys = fleet
        .redis()
        .redis_cli(&[
            "--scan",
            "--pattern",
            "ringfence:mailtoken:reset_password:*",
        ])
        .unwrap();
    assert_eq!(keys.lines().count(), 1, "{keys}");
    assert!(!keys.contains(&token));
    let value = fleet.redis().redis_cli(&["GET", keys.trim()]).unwrap();
    assert!(!value.contains(&token), "{value}");

    // Tampered and wrong-purpose tokens are refused and spend nothing.
    let mut tampered = token.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for bad in [
        tampered.as_str(),
        "",
        "not a token!",
        "é",
        "../../etc/passwd",
        &"A".repeat(5000),
    ] {
        let answer = reset_password(&anyone, &n2, bad).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_token");
    }
    let (status, body) = verify_email(&anyone, &n2, &token).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_token"),
        "a reset token is no verification token"
    );
    let twelve = json!({"token": 12, "new_password": NEW_PASSWORD});
    let answer = post(
        &anyone,
        &format!("{n2}/api/v1/password/reset"),
        twelve,
        None,
    )
    .await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
    let huge = "x".repeat(100 * 1024);
    let answer = reset_password(&anyone, &n2, &huge).await;
    assert_status(&answer, StatusCode::PAYLOAD_TOO_LARGE);

    // Two redemptions at once, one per node: exactly one succeeds.
    let (url1, url2, other) = (
        format!("{n1}/api/v1/password/reset"),
        format!("{n2}/api/v1/password/reset"),
        browser(),
    );
    let redeem = json!({"token": token, "new_password": NEW_PASSWORD});
    let (a, b) = tokio::join!(
        post(&anyone, &url1, redeem.clone(), None),
        post(&other, &url2, redeem.clone(), None),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::NO_CONTENT, StatusCode::BAD_REQUEST],
        "{a:?} {b:?}"
    );
    // Second use: 400 invalid_token.
    let answer = reset_password(&anyone, &n1, &token).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_token");
    // Earlier sessions ended on both nodes; the old password is refused, the new one works.
    assert_eq!(me_on(&on1, &n1).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(me_on(&on2, &n2).await.0, StatusCode::UNAUTHORIZED);
    assert_sign_in(&lb, email, PASSWORD, StatusCode::UNAUTHORIZED).await;
    // The reset verified the address (the link reached it).
    let user = browser();
    let (status, login) = sign_in(&user, &n2, email, NEW_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["user"]["email_verified"], true, "{login}");
    smtp_mail(&smtp, email, "password was reset");
    // The verification link sent before the reset is void: the password changed since.
    let answer = verify_email(&anyone, &n1, &link_token(&verification, "/verify-email")).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_token");

    // Verification on a fresh account: the mail from registration, redeemed on the other node;
    // a resend after that sends nothing.
    let fresh = "verify@example.com";
    register_api(&browser(), &n1, fresh).await;
    let mail = smtp_mail(&smtp, fresh, "Confirm your e-mail");
    let answer = verify_email(&anyone, &n2, &link_token(&mail, "/verify-email")).await;
    assert_status(&answer, StatusCode::NO_CONTENT);
    let fresh_client = browser();
    let (_, login) = sign_in(&fresh_client, &n1, fresh, PASSWORD).await;
    let csrf = csrf_token(&login);
    let (_, me) = me_on(&fresh_client, &n1).await;
    assert_eq!(me["user"]["email_verified"], true, "{me}");
    let status = resend_verification(&fresh_client, &n1, &csrf).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // E-mail change: the new address taken meanwhile refuses the confirmation (409); a change
    // to a free address completes on the other node, and the old address gets the notice.
    let taken = "taken@example.com";
    let confirm = request_email_change(&fresh_client, &n1, &csrf, taken, &smtp).await;
    register_api(&browser(), &n2, taken).await;
    let answer = confirm_email(&anyone, &n2, &link_token(&confirm, "/confirm-email")).await;
    assert_error(&answer, StatusCode::CONFLICT, "email_taken");
    let answer = change_email(&fresh_client, &n1, &csrf, taken).await;
    assert_error(&answer, StatusCode::CONFLICT, "email_taken");
    let moved = "moved@example.com";
    let confirm = request_email_change(&fresh_client, &n1, &csrf, moved, &smtp).await;
    let answer = confirm_email(&anyone, &n2, &link_token(&confirm, "/confirm-email")).await;
    assert_status(&answer, StatusCode::NO_CONTENT);
    let notice = smtp_mail(&smtp, fresh, "e-mail address was changed");
    assert!(!notice.text().unwrap().contains("token="));
    let (_, me) = me_on(&fresh_client, &n2).await;
    assert_eq!(me["user"]["email"], moved, "{me}");

    // Resend for an unverified account: a second verification mail; either link works.
    let unverified = "resend@example.com";
    register_api(&browser(), &n2, unverified).await;
    smtp_mail(&smtp, unverified, "Confirm your e-mail");
    let resender = browser();
    let (_, login) = sign_in(&resender, &n2, unverified, PASSWORD).await;
    assert_eq!(login["user"]["email_verified"], false, "{login}");
    let status = resend_verification(&resender, &n1, &csrf_token(&login)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let second = wait_mails(
        || smtp.messages().unwrap(),
        unverified,
        "Confirm your e-mail",
        2,
    )
    .pop()
    .unwrap();
    let answer = verify_email(&anyone, &n2, &link_token(&second, "/verify-email")).await;
    assert_status(&answer, StatusCode::NO_CONTENT);

    // Administrators, through the API (on one node) and the CLI (on the stores).
    // `ringfence ARGS` on the fleet's stores, with its mail settings.
    let mail = mail_args(Some(&smtp));
    let fleet_cli = |args: &[&str], stdin: Option<&str>| {
        let mut all = args.to_vec();
        all.extend(mail.iter().map(String::as_str));
        fleet.cli(&all, stdin)
    };
    add_admin(&fleet_cli, "admin@example.com");
    let admin = Admin::sign_in(&n1, "admin@example.com", PASSWORD).await;
    let found = admin.find(moved).await;
    let target = &found["users"][0];
    assert_eq!(target["email_verified"], true, "{found}");
    assert_eq!(target["disabled"], false);
    let id = target["id"].as_str().unwrap().to_owned();
    let status = admin.act(reqwest::Method::POST, &id, "/disable").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(me_on(&fresh_client, &n2).await.0, StatusCode::UNAUTHORIZED);
    let answer = sign_in(&browser(), &n2, moved, PASSWORD).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "account_disabled");
    let (status, _) = forgot_password(&anyone, &n2, moved).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "same answer for a disabled account"
    );
    let status = admin.act(reqwest::Method::POST, &id, "/enable").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_sign_in(&n2, moved, PASSWORD, StatusCode::OK).await;
    let status = admin
        .act(reqwest::Method::POST, &id, "/password-reset")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let admin_reset = smtp_mail(&smtp, moved, "Reset your");
    let answer = reset_password(&anyone, &n2, &link_token(&admin_reset, "/reset-password")).await;
    assert_status(&answer, StatusCode::NO_CONTENT);

    // The CLI on the fleet's stores: disable ends the sessions on every node, set-password,
    // reset-password mails (and --print-link prints) a working link, delete.
    disabling_ends_the_sessions(&fleet_cli, email, &n1, &n2).await;
    let refused = fleet_cli(&["users", "reset-password", email, "--print-link"], None);
    assert_one_line_failure(&refused, "disabled", "");
    enabling_and_setting_the_password(&fleet_cli, email, &lb).await;
    smtp_mail(&smtp, email, "password was changed");
    let printed_token = printed_reset_token(&fleet_cli, email);
    let answer = reset_password(&anyone, &n2, &printed_token).await;
    assert_status(&answer, StatusCode::NO_CONTENT);
    let before = matching(&smtp.messages().unwrap(), email, "Reset your").len();
    let mailed = fleet_cli(&["users", "reset-password", email], None);
    assert!(mailed.success, "{}", mailed.stderr);
    assert_eq!(
        matching(&smtp.messages().unwrap(), email, "Reset your").len(),
        before + 1,
        "the CLI waits for delivery"
    );
    let deleted = fleet_cli(&["users", "delete", email], None);
    assert!(deleted.success, "{}", deleted.stderr);
    assert_sign_in(&lb, email, NEW_PASSWORD, StatusCode::UNAUTHORIZED).await;
    let gone = fleet_cli(&["users", "delete", email], None);
    assert_one_line_failure(&gone, "no user", "");
    let status = admin.act(reqwest::Method::DELETE, &id, "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let status = admin.act(reqwest::Method::DELETE, &id, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    for node in &fleet.nodes {
        let log = node.output();
        assert!(!log.contains("panicked"), "{log}");
        assert!(!log.contains(&token), "a token reached the log");
    }
}

/// The embedded default: no SMTP, every mail an `.eml` in `DATA_DIR/outbox/`, and the flows
/// work from those files; with `--require-verified-email` an unverified account cannot sign in
/// until it follows the link. The admin commands on the same data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_node_writes_mail_to_the_outbox_and_the_flows_work_from_it() {
    let data = tempfile::tempdir().unwrap();
    let mut args = mail_args(None);
    args.extend([
        "--require-verified-email".to_owned(),
        "--drain-delay".to_owned(),
        "0s".to_owned(),
    ]);
    let mut node = start_node("solo", data.path(), &args);
    let base = node.url();
    let email = "solo@example.com";
    register_api(&browser(), &base, email).await;
    let answer = sign_in(&browser(), &base, email, PASSWORD).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "email_not_verified");
    // The refused sign-in sent the verification mail again; the first one still works.
    let mail = wait_mails(|| outbox(data.path()), email, "Confirm your e-mail", 2).remove(0);
    let answer = verify_email(&browser(), &base, &link_token(&mail, "/verify-email")).await;
    assert_status(&answer, StatusCode::NO_CONTENT);
    assert_sign_in(&base, email, PASSWORD, StatusCode::OK).await;
    let log = node.output();
    assert!(log.contains(".eml"), "the log names the file: {log}");
    assert!(!log.contains("token="), "never the link: {log}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for entry in std::fs::read_dir(data.path().join("outbox")).unwrap() {
            let mode = entry.unwrap().metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    // Forgot password from the outbox, redeemed.
    let (status, _) = forgot_password(&browser(), &base, email).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let reset = outbox_mail(data.path(), email, "Reset your");
    let answer = reset_password(&browser(), &base, &link_token(&reset, "/reset-password")).await;
    assert_status(&answer, StatusCode::NO_CONTENT);
    assert_sign_in(&base, email, NEW_PASSWORD, StatusCode::OK).await;

    // The admin commands on the embedded stores, while the node runs.
    let dir = data.path().display().to_string();
    let with_dir = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--data-dir", &dir, "--public-url", PUBLIC_URL]);
        all.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let cli_run = |args: &[&str], stdin: Option<&str>| {
        let all = with_dir(args);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        run(&refs, stdin, &[])
    };
    disabling_ends_the_sessions(&cli_run, email, &base, &base).await;
    enabling_and_setting_the_password(&cli_run, email, &base).await;
    let weak = cli_run(&["users", "set-password", email], Some("short\n"));
    assert_one_line_failure(&weak, "password", "short");
    let mailed = cli_run(&["users", "reset-password", email], None);
    assert!(mailed.success, "{}", mailed.stderr);
    assert_eq!(matching(&outbox(data.path()), email, "Reset your").len(), 2);
    printed_reset_token(&cli_run, email);
    let deleted = cli_run(&["users", "delete", email], None);
    assert!(deleted.success, "{}", deleted.stderr);
    assert_sign_in(&base, email, PASSWORD, StatusCode::UNAUTHORIZED).await;
    let unknown = cli_run(&["users", "disable", "nobody@example.com"], None);
    assert_one_line_failure(&unknown, "no user with e-mail nobody@example.com", "");
    let bad_flag = cli_run(
        &[
            "users",
            "reset-password",
            email,
            "--reset-token-lifetime",
            "90d",
        ],
        None,
    );
    assert_one_line_failure(&bad_flag, "must be between 1m and 30d", "");

    // The admin API on the embedded stores. The administrator verifies the address with a
    // reset link the CLI prints (a reset proves the mailbox).
    let boss = "boss@example.com";
    add_admin(&cli_run, boss);
    let boss_token = printed_reset_token(&cli_run, boss);
    let answer = reset_password(&browser(), &base, &boss_token).await;
    assert_status(&answer, StatusCode::NO_CONTENT);
    let admin = Admin::sign_in(&base, boss, NEW_PASSWORD).await;
    let victim = "victim@example.com";
    register_api(&browser(), &base, victim).await;
    let found = admin.find(victim).await;
    let id = found["users"][0]["id"].as_str().unwrap().to_owned();
    let status = admin.act(reqwest::Method::POST, &id, "/disable").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let answer = sign_in(&browser(), &base, victim, PASSWORD).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "account_disabled");
    let status = admin.act(reqwest::Method::DELETE, &id, "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(admin.find(victim).await["users"], json!([]));

    // A reset asked for just before SIGTERM still reaches the outbox: the node waits for its
    // mail jobs and the queue before it exits.
    let before = matching(&outbox(data.path()), boss, "Reset your").len();
    let (status, _) = forgot_password(&browser(), &base, boss).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    node.terminate();
    let exit = node.wait_exit(Duration::from_secs(20)).unwrap();
    assert!(exit.is_some_and(|e| e.success()), "{}", node.output());
    assert_eq!(
        matching(&outbox(data.path()), boss, "Reset your").len(),
        before + 1
    );
}

/// The SMTP relay is down: the answer is unchanged, the failure is logged and counted in
/// `/metrics`, and the mail goes out once the relay is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_waits_for_a_relay_that_is_down_without_changing_the_answer() {
    let mut smtp = SmtpServer::start().expect("aiosmtpd");
    let data = tempfile::tempdir().unwrap();
    let node = start_node("relay", data.path(), &mail_args(Some(&smtp)));
    let base = node.url();
    let email = "patient@example.com";
    register_api(&browser(), &base, email).await;
    smtp_mail(&smtp, email, "Confirm your e-mail");
    smtp.stop();
    let (status, body) = forgot_password(&browser(), &base, email).await;
    let (unknown_status, unknown_body) =
        forgot_password(&browser(), &base, "nobody@example.com").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!((status, body), (unknown_status, unknown_body));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let metrics = reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics
            .lines()
            .any(|l| l.starts_with("ringfence_mail_failures_total") && !l.ends_with(" 0"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no failure counted:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        node.output().contains("mail delivery failed; will retry"),
        "the failure is logged"
    );
    smtp.restart().expect("aiosmtpd again");
    let mail = wait_mail(|| smtp.messages().unwrap(), email, "Reset your");
    link_token(&mail, "/reset-password");
}
