//! Shared helpers for the process-level tests: start `ringfence` nodes, drive them like a browser.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use reqwest::{Client, Response, StatusCode};
use ringfence_testkit::NodeProcess;

pub const PASSWORD: &str = "correct horse battery staple";

/// Starts `ringfence serve` on a free loopback port with these extra arguments.
pub fn start_node(name: &str, data_dir: &Path, extra: &[String]) -> NodeProcess {
    let mut args = vec![
        "serve".to_owned(),
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--node-name".to_owned(),
        name.to_owned(),
        "--data-dir".to_owned(),
        data_dir.display().to_string(),
    ];
    args.extend_from_slice(extra);
    NodeProcess::start(
        Path::new(env!("CARGO_BIN_EXE_ringfence")),
        &args,
        &[("RUST_LOG".to_owned(), "info".to_owned())],
    )
    .unwrap_or_else(|e| panic!("start node {name}: {e}"))
}

/// A browser-like client: cookie jar, no automatic redirects.
pub fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The `_csrf` value of the first form on a page.
pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"_csrf\" value=\"";
    let start = html.find(marker).expect("page has a _csrf field") + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

pub fn node_of(response: &Response) -> String {
    response
        .headers()
        .get("x-ringfence-node")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// GET a page and return (node, body).
pub async fn get_page(client: &Client, url: &str) -> (String, String) {
    let response = client.get(url).send().await.unwrap();
    let node = node_of(&response);
    (node, response.text().await.unwrap())
}

/// Registers through the pages: GET the form, POST it. Returns the POST response.
pub async fn register_page(client: &Client, base: &str, email: &str) -> Response {
    let (_, html) = get_page(client, &format!("{base}/register")).await;
    client
        .post(format!("{base}/register"))
        .form(&[
            ("email", email),
            ("password", PASSWORD),
            ("_csrf", &csrf_of(&html)),
        ])
        .send()
        .await
        .unwrap()
}

pub async fn login_page(client: &Client, base: &str, email: &str, password: &str) -> Response {
    let (_, html) = get_page(client, &format!("{base}/login")).await;
    client
        .post(format!("{base}/login"))
        .form(&[
            ("email", email),
            ("password", password),
            ("_csrf", &csrf_of(&html)),
        ])
        .send()
        .await
        .unwrap()
}

/// The e-mail the home page says is signed in, if any.
pub async fn signed_in_as(client: &Client, base: &str) -> Option<String> {
    let (_, html) = get_page(client, &format!("{base}/")).await;
    let marker = "Signed in as ";
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('<')? + start;
    Some(html[start..end].trim().to_owned())
}

/// API sign-in; returns the JSON body.
pub async fn login_api(
    client: &Client,
    base: &str,
    email: &str,
    user_agent: &str,
) -> serde_json::Value {
    let response = client
        .post(format!("{base}/api/v1/login"))
        .header("user-agent", user_agent)
        .json(&serde_json::json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "login");
    response.json().await.unwrap()
}

pub async fn register_api(client: &Client, base: &str, email: &str) {
    let response = client
        .post(format!("{base}/api/v1/register"))
        .json(&serde_json::json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "register {email}");
}

/// Runs `ringfence` with arguments (and optional stdin); returns (success, stdout, stderr).
pub fn cli(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    // Never let a test touch ./ringfence-data in the checkout.
    let scratch = std::env::temp_dir().join(format!("ringfence-cli-test-{}", std::process::id()));
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    if !args.contains(&"--data-dir") {
        all.push("--data-dir".to_owned());
        all.push(scratch.display().to_string());
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args(&all)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
