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

/// A node named `solo` on the embedded defaults in a fresh data directory; the node, and the
/// directory, which must outlive it.
pub fn solo_node() -> (NodeProcess, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    (start_node("solo", data.path(), &[]), data)
}

/// The compiled example `name` (`examples/NAME.rs`), beside this test binary's directory.
/// `cargo test` builds the examples before it runs the tests; a lone `cargo test --test X`
/// does not, hence the message.
pub fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --examples` (cargo test does it)",
        path.display()
    );
    path
}

/// Starts the example `name` listening on a free loopback port (`LISTEN`), with `envs`.
pub fn start_example(name: &str, envs: &[(&str, String)]) -> NodeProcess {
    let mut all = vec![("LISTEN".to_owned(), "127.0.0.1:0".to_owned())];
    all.extend(envs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    NodeProcess::start(&example(name), &[], &all).unwrap_or_else(|e| panic!("{name}: {e}"))
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

/// What a finished `ringfence` run left behind.
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `ringfence ARGS` with optional stdin and extra environment, killing it after 30 s so a
/// run that should fail fast cannot hang the test. Without `--data-dir` it gets a scratch one
/// (a test never touches ./ringfence-data), and the machine's TLS trust variables are cleared
/// unless `envs` sets them.
pub fn run(args: &[&str], stdin: Option<&str>, envs: &[(&str, &Path)]) -> Run {
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::time::Instant;
    let scratch = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ringfence"));
    command.args(args);
    if !args.contains(&"--data-dir") {
        command.arg("--data-dir").arg(scratch.path());
    }
    let mut child = command
        .env("NO_COLOR", "1")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A run that fails before reading its input closes the pipe: not the test's concern.
        let _ = pipe.write_all(input.as_bytes());
    }
    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "ringfence {args:?} still ran after 30 s; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Run {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `ringfence` with arguments (and optional stdin); returns (success, stdout, stderr).
pub fn cli(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let r = run(args, stdin, &[]);
    (r.success, r.stdout, r.stderr)
}

/// The run failed with exactly one line on stderr, containing `needle` and never `secret`.
pub fn assert_one_line_failure(run: &Run, needle: &str, secret: &str) {
    assert!(!run.success, "expected a failure; stdout: {}", run.stdout);
    let text = run.stderr.trim();
    assert_eq!(text.lines().count(), 1, "one line expected: {text}");
    assert!(!text.contains("panicked"), "{text}");
    assert!(text.contains(needle), "{needle:?} missing from: {text}");
    if !secret.is_empty() {
        assert!(
            !text.contains(secret) && !run.stdout.contains(secret),
            "the password leaked: {text}"
        );
    }
}

/// Where the nodes of a [`Fleet`] keep what they share.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Shared {
    /// Keys, sessions, attempts and mail links in Redis; accounts in PostgreSQL.
    RedisAndPostgres,
    /// Everything in PostgreSQL (`--database` without `--redis`).
    PostgresAlone,
}

/// Two nodes (`node1`, `node2`) sharing their stores behind a real HAProxy (round robin), every
/// one a real process; dropped, all stop.
pub struct Fleet {
    /// The shared Redis (key ring, sessions, ceremonies, throttle), unless PostgreSQL holds all.
    pub redis: Option<ringfence_testkit::RedisServer>,
    /// The shared PostgreSQL (users, factors, passkeys).
    pub postgres: ringfence_testkit::PostgresServer,
    /// The nodes.
    pub nodes: Vec<NodeProcess>,
    /// The balancer in front; its URL is where clients go.
    pub haproxy: ringfence_testkit::HaProxy,
    /// The nodes' data directories.
    pub dirs: Vec<tempfile::TempDir>,
}

impl Fleet {
    /// The shared Redis of a fleet on [`Shared::RedisAndPostgres`].
    pub fn redis(&self) -> &ringfence_testkit::RedisServer {
        self.redis.as_ref().expect("a fleet with Redis")
    }

    /// The store flags every node and every CLI run of this fleet gets.
    pub fn store_args(&self) -> Vec<String> {
        store_args(self.redis.as_ref(), &self.postgres)
    }

    /// `ringfence ARGS` on the fleet's stores, with `stdin` when given.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let stores = self.store_args();
        let mut all = args.to_vec();
        all.extend(stores.iter().map(String::as_str));
        run(&all, stdin, &[])
    }
}

/// `--redis URL` (when there is one) and `--database URL`.
fn store_args(
    redis: Option<&ringfence_testkit::RedisServer>,
    postgres: &ringfence_testkit::PostgresServer,
) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(redis) = redis {
        args.extend(["--redis".to_owned(), redis.url()]);
    }
    args.extend(["--database".to_owned(), postgres.url()]);
    args
}

/// Starts a [`Fleet`] on Redis and PostgreSQL; every node gets `extra` after the store options
/// (and trusts HAProxy's `X-Forwarded-For`).
pub fn fleet(extra: &[&str]) -> Fleet {
    fleet_sharing(Shared::RedisAndPostgres, extra)
}

/// Starts a [`Fleet`] whose nodes share `shared`; every node gets `extra` after the store
/// options (and trusts HAProxy's `X-Forwarded-For`).
pub fn fleet_sharing(shared: Shared, extra: &[&str]) -> Fleet {
    let redis = match shared {
        Shared::RedisAndPostgres => Some(ringfence_testkit::RedisServer::start().expect("redis")),
        Shared::PostgresAlone => None,
    };
    let postgres = ringfence_testkit::PostgresServer::start().expect("postgres");
    let mut args = store_args(redis.as_ref(), &postgres);
    args.extend(["--trusted-proxy".to_owned(), "127.0.0.1/32".to_owned()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let (nodes, dirs) = start_two_nodes(&args);
    let haproxy = balance(&nodes);
    Fleet {
        redis,
        postgres,
        nodes,
        haproxy,
        dirs,
    }
}

/// Sending a request in a test, where a failure to get an answer is the test's failure: the
/// answer's JSON body, or its status, in one step.
#[allow(async_fn_in_trait)]
pub trait Answer {
    /// Sends the request; the answer's body as JSON (a body that is not JSON fails the test).
    async fn answer_json(self) -> serde_json::Value;
    /// Sends the request; the answer's status.
    async fn answer_status(self) -> StatusCode;
    /// Sends the request; the answer's body as text.
    async fn answer_text(self) -> String;
}

impl Answer for reqwest::RequestBuilder {
    async fn answer_json(self) -> serde_json::Value {
        self.send().await.unwrap().json().await.unwrap()
    }

    async fn answer_status(self) -> StatusCode {
        self.send().await.unwrap().status()
    }

    async fn answer_text(self) -> String {
        self.send().await.unwrap().text().await.unwrap()
    }
}

/// Sends `request` and asserts the answer's status is `want` (`what` says which request).
pub async fn assert_answers(request: reqwest::RequestBuilder, want: StatusCode, what: &str) {
    assert_eq!(request.answer_status().await, want, "{what}");
}

/// The CSRF token of the session `client` holds on `base`, as `GET /api/v1/me` gives it.
pub async fn api_csrf(client: &Client, base: &str) -> String {
    let me = client.get(format!("{base}/api/v1/me")).answer_json().await;
    me["csrf_token"].as_str().unwrap().to_owned()
}

/// The `error.code` of a JSON error body (empty when there is none).
pub fn error_code(body: &serde_json::Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// A JSON API request: `method url`, with the CSRF header and a JSON body when given; the status
/// and the JSON body (`Null` when the body is empty or not JSON).
pub async fn api_call(
    client: &Client,
    method: reqwest::Method,
    url: &str,
    csrf: Option<&str>,
    body: Option<&serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let mut request = client.request(method, url);
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_default())
}

/// Asserts a JSON API answer (status and body) is `status` with the error code `code`.
#[track_caller]
pub fn assert_error(answer: &(StatusCode, serde_json::Value), status: StatusCode, code: &str) {
    let (got, body) = answer;
    assert_eq!((*got, error_code(body)), (status, code), "{body}");
}

/// Asserts a JSON API answer (status and body) has `status`, showing the body when not.
#[track_caller]
pub fn assert_status(answer: &(StatusCode, serde_json::Value), status: StatusCode) {
    assert_eq!(answer.0, status, "{}", answer.1);
}

/// Makes `email` an administrator of `fleet` with `ringfence users set-admin EMAIL on`.
pub fn make_fleet_admin(fleet: &Fleet, email: &str) {
    let done = fleet.cli(&["users", "set-admin", email, "on"], None);
    assert!(done.success, "{}", done.stderr);
}

/// A real HAProxy (round robin) in front of `nodes`, named `node1`, `node2`, … in order; it is
/// returned once it sees every one of them up.
pub fn balance(nodes: &[NodeProcess]) -> ringfence_testkit::HaProxy {
    balance_with(nodes, &ringfence_testkit::HaProxyOptions::default())
}

/// [`balance`] with these options.
pub fn balance_with(
    nodes: &[NodeProcess],
    options: &ringfence_testkit::HaProxyOptions,
) -> ringfence_testkit::HaProxy {
    let backends: Vec<(String, std::net::SocketAddr)> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| (format!("node{}", i + 1), node.addr()))
        .collect();
    let haproxy = ringfence_testkit::HaProxy::start_with(&backends, options).expect("haproxy");
    for (name, _) in &backends {
        haproxy
            .wait_for_server_status(name, "UP", Duration::from_secs(10))
            .expect("backend up");
    }
    haproxy
}

/// Sends `request` with the form `fields` and the `_csrf` of the first form on `page`.
pub async fn send_form(
    request: reqwest::RequestBuilder,
    fields: &[(&str, &str)],
    page: &str,
) -> Response {
    let csrf = csrf_of(page);
    let mut all = fields.to_vec();
    all.push(("_csrf", &csrf));
    request.form(&all).send().await.unwrap()
}

/// Registers `email` through the API and signs `client` in as `user_agent`; the CSRF token.
pub async fn registered_and_signed_in(
    client: &Client,
    base: &str,
    email: &str,
    user_agent: &str,
) -> String {
    register_api(client, base, email).await;
    let login = login_api(client, base, email, user_agent).await;
    login["csrf_token"].as_str().unwrap().to_owned()
}

/// Starts `node1` and `node2` with `args`, each on a data directory of its own; the nodes and
/// the directories (which must outlive them).
pub fn start_two_nodes(args: &[String]) -> (Vec<NodeProcess>, Vec<tempfile::TempDir>) {
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = ["node1", "node2"]
        .iter()
        .zip(&dirs)
        .map(|(name, dir)| start_node(name, dir.path(), args))
        .collect();
    (nodes, dirs)
}

/// Asserts the home page on `base` says `client` is signed in as `email`.
pub async fn assert_signed_in_as(client: &Client, base: &str, email: &str) {
    assert_eq!(signed_in_as(client, base).await.as_deref(), Some(email));
}
