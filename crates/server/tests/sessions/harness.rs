//! A deployment of one or more in-process nodes (`ringfence_server::serve` on `127.0.0.1:0`)
//! wired like `src/wiring.rs` wires production, but on a [`ManualClock`] shared by every node,
//! and browser-like devices that talk to any node with their own cookie jar.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use redis::aio::ConnectionManager;
use reqwest::header::{HeaderMap, COOKIE, SET_COOKIE, USER_AGENT};
use reqwest::{Client, Method, StatusCode};
use ringfence_accounts::{
    Accounts, Argon2Params, Database, MailFlowSettings, PasswordHasher, PasswordPolicy,
    ThrottlePolicy, User,
};
use ringfence_axum::{Ringfence, TrustedProxies};
use ringfence_keyring::{
    DirectoryKeyRepository, KeyRepository, KeyRing, KeyRingConfig, ManualClock, RedisKeyRepository,
};
use ringfence_server::AppState;
use ringfence_sessions::{
    RedisSessionStore, SessionConfig, SessionManager, SessionStore, SqliteSessionStore,
};
use ringfence_testkit::{MailCollector, RedisOptions, RedisServer};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Two tests of one scenario, `async fn SCENARIO(backend: Backend)`: the first named test runs it
/// on [`Backend::Sqlite`], the second on [`Backend::Redis`].
macro_rules! on_each_backend {
    ($scenario:ident: $sqlite:ident, $redis:ident) => {
        #[tokio::test]
        async fn $sqlite() {
            $scenario(Backend::Sqlite).await;
        }

        #[tokio::test]
        async fn $redis() {
            $scenario(Backend::Redis).await;
        }
    };
}

pub const PASSWORD: &str = "correct horse battery staple";
pub const NEW_PASSWORD: &str = "violet kettle drums at dawn";
pub const PREFIX: &str = "ringfence:";

pub const FIREFOX_LINUX: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
pub const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) \
    AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
pub const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) \
    AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
pub const CHROME_ANDROID: &str = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 \
    (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36";

/// Where sessions (and, with several nodes, the key ring) live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Sessions in the SQLite file that also holds the users; keys in a directory (the
    /// embedded defaults of `ringfence serve`).
    Sqlite,
    /// Sessions and the key ring in one real Redis; users in a SQLite file.
    Redis,
}

/// The session policy every scenario uses: 30 minutes idle, 12 hours absolute, renewal after
/// a tenth of the idle window (3 minutes).
pub fn session_config(node_name: &str, cap: Option<u32>) -> SessionConfig {
    SessionConfig {
        idle_timeout: Duration::minutes(30),
        absolute_timeout: Duration::hours(12),
        renewal_fraction: 10,
        max_sessions_per_user: cap,
        node_name: node_name.to_owned(),
    }
}

/// Cheap argon2id so sign-ins do not dominate the run (the parameters are not under test).
fn test_hasher() -> PasswordHasher {
    PasswordHasher::new(Argon2Params {
        m_cost_kib: 1024,
        t_cost: 1,
        p_cost: 1,
    })
    .unwrap()
}

/// One node: the server task and the services behind it.
pub struct Node {
    pub name: String,
    pub base: String,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Node {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn accounts(&self) -> &Accounts {
        self.state.ringfence.accounts()
    }

    pub fn sessions(&self) -> &SessionManager {
        self.state.ringfence.sessions()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// How the nodes' accounts are set up beyond the defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct Setup {
    /// Sign-in and mail requests throttled (attempts in the SQLite file).
    pub throttle: bool,
    /// `--require-verified-email`.
    pub require_verified_email: bool,
}

/// Nodes sharing stores and one manual clock.
pub struct Deployment {
    pub clock: ManualClock,
    /// The mails every node queued, caught at the accounts crate's mail seam: these tests are
    /// about the pages; delivery through the real mailer and a real SMTP server is the process
    /// tests' part (`tests/mail*.rs`, `tests/browser.rs`).
    pub mail: MailCollector,
    pub nodes: Vec<Node>,
    pub redis: Option<RedisServer>,
    _dir: TempDir,
}

impl Deployment {
    /// One node named `solo`.
    pub async fn single(backend: Backend, cap: Option<u32>) -> Deployment {
        Self::start(backend, &["solo"], cap).await
    }

    /// Nodes with these names on shared stores.
    pub async fn start(backend: Backend, names: &[&str], cap: Option<u32>) -> Deployment {
        Self::start_with(backend, names, cap, Setup::default()).await
    }

    /// Nodes with these names on shared stores, set up as `setup` says.
    pub async fn start_with(
        backend: Backend,
        names: &[&str],
        cap: Option<u32>,
        setup: Setup,
    ) -> Deployment {
        let mail = MailCollector::default();
        let dir = tempfile::tempdir().unwrap();
        // Redis expires records by its own (real) clock at the `PXAT` the stores compute from
        // the manual clock, so the manual clock starts at the real time: records written at any
        // later manual time then expire in Redis no earlier than the nodes think they do.
        let clock = ManualClock::new(Utc::now().trunc_subsecs(0));
        let redis = match backend {
            Backend::Redis => Some(
                RedisServer::start_with(RedisOptions {
                    appendonly: false,
                    ..RedisOptions::default()
                })
                .unwrap(),
            ),
            Backend::Sqlite => None,
        };
        let db_url = format!("sqlite://{}", dir.path().join("ringfence.db").display());
        let mut nodes = Vec::new();
        for name in names {
            let database = Database::connect(&db_url).await.unwrap();
            let users = database.user_store().await.unwrap();
            let (keyring, store): (KeyRing, Arc<dyn SessionStore>) = match &redis {
                Some(server) => {
                    let conn = connect_redis(server).await;
                    let repository: Arc<dyn KeyRepository> =
                        Arc::new(RedisKeyRepository::new(conn.clone(), PREFIX));
                    let keyring =
                        KeyRing::open(repository, KeyRingConfig::default(), clock.shared())
                            .await
                            .unwrap();
                    (
                        keyring,
                        Arc::new(RedisSessionStore::new(conn, PREFIX.to_owned())),
                    )
                }
                None => {
                    let repository: Arc<dyn KeyRepository> =
                        Arc::new(DirectoryKeyRepository::new(dir.path().join("keys")).unwrap());
                    let keyring =
                        KeyRing::open(repository, KeyRingConfig::default(), clock.shared())
                            .await
                            .unwrap();
                    let store = SqliteSessionStore::new(database.sqlite_pool().unwrap().clone());
                    store.migrate().await.unwrap();
                    (keyring, Arc::new(store))
                }
            };
            // No `keyring.spawn_refresh()`: in-process nodes share the ring through the store
            // already loaded at open, and no background task adds store traffic to the counts.
            let sessions =
                SessionManager::new(store, &keyring, clock.shared(), session_config(name, cap));
            let accounts = Accounts::new(
                users,
                test_hasher(),
                PasswordPolicy::default(),
                sessions.clone(),
                clock.shared(),
            )
            .with_mail_tokens(database.mail_token_store().await.unwrap())
            .with_mailer(Arc::new(mail.clone()))
            .with_mail_settings(MailFlowSettings {
                require_verified_email: setup.require_verified_email,
                ..MailFlowSettings::default()
            });
            let accounts = if setup.throttle {
                accounts.with_throttle(
                    database.attempt_store().await.unwrap(),
                    ThrottlePolicy::default(),
                )
            } else {
                accounts
            };
            // Devices tell their address in X-Forwarded-For; the loopback peer is the "proxy".
            let proxies = TrustedProxies::parse(&["127.0.0.1"]).unwrap();
            let ringfence = Ringfence::with_trusted_proxies(keyring, sessions, accounts, proxies);
            let state = AppState::new(ringfence, name, None);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let (tx, rx) = oneshot::channel::<()>();
            let task = tokio::spawn(ringfence_server::serve(listener, state.clone(), async {
                let _ = rx.await;
            }));
            nodes.push(Node {
                name: (*name).to_owned(),
                base,
                state,
                shutdown: Some(tx),
                task: Some(task),
            });
        }
        Deployment {
            clock,
            mail,
            nodes,
            redis,
            _dir: dir,
        }
    }

    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    pub fn now(&self) -> DateTime<Utc> {
        use ringfence_keyring::Clock;
        self.clock.now()
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Creates an account directly (as `ringfence users add` does).
    pub async fn add_user(&self, email: &str, admin: bool) -> User {
        self.nodes[0]
            .accounts()
            .add_user(email, PASSWORD, admin)
            .await
            .unwrap()
    }
}

pub async fn connect_redis(server: &RedisServer) -> ConnectionManager {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap()
}

/// A response, read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// Asserts the reply has `status` (the body in the message).
    #[track_caller]
    pub fn assert_status(&self, status: StatusCode) {
        assert_eq!(self.status, status, "{}", self.body);
    }

    /// Asserts the reply has `status` and its body shows `text` (the body in either message).
    #[track_caller]
    pub fn assert_shows(&self, status: StatusCode, text: &str) {
        self.assert_status(status);
        assert!(self.body.contains(text), "{}", self.body);
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    pub fn node(&self) -> &str {
        self.headers
            .get("x-ringfence-node")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The `_csrf` value of the first form on a page.
    pub fn form_csrf(&self) -> String {
        let marker = "name=\"_csrf\" value=\"";
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no _csrf field in: {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_owned()
    }
}

/// A browser on one device: its own User-Agent, address and cookie jar. Cookies are kept per
/// deployment, not per node (every node sits behind one host name in production).
pub struct Device {
    client: Client,
    pub user_agent: String,
    pub ip: String,
    jar: Mutex<BTreeMap<String, String>>,
    csrf: Mutex<Option<String>>,
    pub session_id: Mutex<Option<String>>,
}

impl Device {
    pub fn new(user_agent: &str, ip: &str) -> Device {
        Device {
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(StdDuration::from_secs(30))
                .build()
                .unwrap(),
            user_agent: user_agent.to_owned(),
            ip: ip.to_owned(),
            jar: Mutex::new(BTreeMap::new()),
            csrf: Mutex::new(None),
            session_id: Mutex::new(None),
        }
    }

    /// The session cookie the device holds, if any.
    pub fn session_cookie(&self) -> Option<String> {
        self.jar.lock().unwrap().get("ringfence_session").cloned()
    }

    pub fn set_session_cookie(&self, value: &str) {
        self.jar
            .lock()
            .unwrap()
            .insert("ringfence_session".to_owned(), value.to_owned());
    }

    pub fn csrf(&self) -> Option<String> {
        self.csrf.lock().unwrap().clone()
    }

    pub fn id(&self) -> String {
        self.session_id
            .lock()
            .unwrap()
            .clone()
            .expect("device signed in")
    }

    fn cookie_header(&self) -> Option<String> {
        let jar = self.jar.lock().unwrap();
        (!jar.is_empty()).then(|| {
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn store_cookies(&self, headers: &HeaderMap) {
        let mut jar = self.jar.lock().unwrap();
        for value in headers.get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let mut parts = text.split(';');
            let (name, value) = parts.next().unwrap().trim().split_once('=').unwrap();
            let deleted =
                value.is_empty() || parts.any(|attr| attr.trim().eq_ignore_ascii_case("max-age=0"));
            if deleted {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    async fn send(
        &self,
        node: &Node,
        method: Method,
        path: &str,
        body: Body,
        csrf: bool,
        keep_jar: bool,
    ) -> Reply {
        let mut request = self
            .client
            .request(method, node.url(path))
            .header(USER_AGENT, &self.user_agent)
            .header("x-forwarded-for", &self.ip);
        if let Some(cookies) = self.cookie_header() {
            request = request.header(COOKIE, cookies);
        }
        if csrf {
            if let Some(token) = self.csrf() {
                request = request.header("x-csrf-token", token);
            }
        }
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(&value),
            Body::Form(fields) => request.form(&fields),
            Body::Raw(content_type, bytes) => request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes),
        };
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        if !keep_jar {
            self.store_cookies(&headers);
        }
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, node: &Node, path: &str) -> Reply {
        self.send(node, Method::GET, path, Body::None, false, false)
            .await
    }

    /// `GET /api/v1/me` without letting the answer change the jar (a `401` clears the
    /// cookie, and the same cookie is to be tried on another node too).
    pub async fn probe(&self, node: &Node) -> StatusCode {
        self.send(node, Method::GET, "/api/v1/me", Body::None, false, true)
            .await
            .status
    }

    /// A cookie-authenticated API write with the `X-CSRF-Token` header.
    pub async fn api(&self, node: &Node, method: Method, path: &str, body: Option<Value>) -> Reply {
        let body = body.map_or(Body::None, Body::Json);
        self.send(node, method, path, body, true, false).await
    }

    /// The same write without the CSRF header.
    pub async fn api_without_csrf(
        &self,
        node: &Node,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let body = body.map_or(Body::None, Body::Json);
        self.send(node, method, path, body, false, false).await
    }

    /// An unauthenticated JSON post (registration).
    pub async fn send_json(&self, node: &Node, path: &str, body: Value) -> Reply {
        self.send(node, Method::POST, path, Body::Json(body), false, false)
            .await
    }

    /// A post of `bytes` as they are, under `content_type`, with the `X-CSRF-Token` header when
    /// the device has a token (what a client sends when it gets the body wrong).
    pub async fn post_raw(
        &self,
        node: &Node,
        path: &str,
        content_type: &'static str,
        bytes: &'static str,
    ) -> Reply {
        let body = Body::Raw(content_type, bytes);
        self.send(node, Method::POST, path, body, true, false).await
    }

    /// A form post (fields as given; add `_csrf` yourself).
    pub async fn form(&self, node: &Node, path: &str, fields: &[(&str, &str)]) -> Reply {
        let fields = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.send(node, Method::POST, path, Body::Form(fields), false, false)
            .await
    }

    /// `POST /api/v1/login`; on success remembers the CSRF token and session id.
    pub async fn login_with(&self, node: &Node, email: &str, password: &str) -> Reply {
        let reply = self
            .send(
                node,
                Method::POST,
                "/api/v1/login",
                Body::Json(json!({"email": email, "password": password})),
                false,
                false,
            )
            .await;
        if reply.status == StatusCode::OK {
            let body = reply.json();
            *self.csrf.lock().unwrap() = Some(body["csrf_token"].as_str().unwrap().to_owned());
            *self.session_id.lock().unwrap() =
                Some(body["session"]["id"].as_str().unwrap().to_owned());
        }
        reply
    }

    /// Signs in with [`PASSWORD`] and asserts it worked; returns the login body.
    pub async fn login(&self, node: &Node, email: &str) -> Value {
        let reply = self.login_with(node, email, PASSWORD).await;
        assert_eq!(reply.status, StatusCode::OK, "login: {}", reply.body);
        assert!(self.session_cookie().is_some(), "login sets the cookie");
        reply.json()
    }

    /// `GET /api/v1/me`'s status (updating the jar like a browser would).
    pub async fn me(&self, node: &Node) -> StatusCode {
        self.get(node, "/api/v1/me").await.status
    }

    /// `GET /api/v1/sessions`, asserted `200`; the `sessions` array.
    pub async fn sessions(&self, node: &Node) -> Vec<Value> {
        let reply = self.get(node, "/api/v1/sessions").await;
        assert_eq!(reply.status, StatusCode::OK, "sessions: {}", reply.body);
        reply.json()["sessions"].as_array().unwrap().clone()
    }
}

enum Body {
    None,
    Json(Value),
    Form(Vec<(String, String)>),
    /// Bytes sent as they are, under this `Content-Type`.
    Raw(&'static str, &'static str),
}

/// Parses an RFC 3339 timestamp from the API.
pub fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap_or_else(|| panic!("{value}")))
        .unwrap()
        .with_timezone(&Utc)
}

/// `(session ids)` of a `sessions` array, sorted.
pub fn ids(sessions: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = sessions
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Alice signed in on three devices (a Firefox laptop on node 0, an iPhone on node 1, a Chrome
/// desktop on node 0) and Bob on an Android phone on node 1, both added first; the devices'
/// addresses are `198.51.100.FIRST_IP` and the three after it. Returns (laptop, phone, desktop,
/// bob).
pub async fn alice_and_bob_signed_in(d: &Deployment, first_ip: u8) -> [Device; 4] {
    let (a, b) = (d.node(0), d.node(1));
    d.add_user("alice@example.com", false).await;
    d.add_user("bob@example.com", false).await;
    let device = |agent: &str, n: u8| Device::new(agent, &format!("198.51.100.{}", first_ip + n));
    let laptop = device(FIREFOX_LINUX, 0);
    let phone = device(SAFARI_IPHONE, 1);
    let desktop = device(CHROME_WINDOWS, 2);
    let bob = device(CHROME_ANDROID, 3);
    laptop.login(a, "alice@example.com").await;
    phone.login(b, "alice@example.com").await;
    desktop.login(a, "alice@example.com").await;
    bob.login(b, "bob@example.com").await;
    [laptop, phone, desktop, bob]
}

/// Asserts that every node answers `device`'s cookie with `expected`. The cookie is replayed
/// unchanged on each node (a browser behind a load balancer may hit any of them first).
pub async fn answered_everywhere(
    d: &Deployment,
    device: &Device,
    expected: StatusCode,
    what: &str,
) {
    for node in &d.nodes {
        let got = device.probe(node).await;
        assert_eq!(got, expected, "{what}: {got} from {}", node.name);
    }
}

/// Asserts that `device`'s cookie is refused by every node.
pub async fn refused_everywhere(d: &Deployment, device: &Device, what: &str) {
    answered_everywhere(d, device, StatusCode::UNAUTHORIZED, what).await;
}

/// Asserts that every node accepts `device`'s cookie.
pub async fn accepted_everywhere(d: &Deployment, device: &Device, what: &str) {
    answered_everywhere(d, device, StatusCode::OK, what).await;
}
