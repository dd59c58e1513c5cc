//! A rolling restart of every node behind a real HAProxy under steady traffic loses no request
//! and signs nobody out, behind the shipped configuration (with `retry-on`) and behind a plain
//! one (no retries: the drain delay alone must keep requests from failing); a node killed
//! outright (SIGKILL) leaves users signed in via the other.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use ringfence_testkit::{free_port, HaProxy, HaProxyOptions, NodeProcess, RedisServer};

/// What the nodes share: Redis (keys, sessions) and a SQLite file of users in a temporary
/// directory.
struct Shared {
    redis: RedisServer,
    dir: tempfile::TempDir,
    database: String,
}

impl Shared {
    fn start() -> Self {
        let redis = RedisServer::start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let database = format!("sqlite://{}", dir.path().join("users.db").display());
        Self {
            redis,
            dir,
            database,
        }
    }

    /// Starts node `name` on a fixed port (a restart must come back where the balancer expects
    /// it), with `extra` flags.
    fn node(&self, name: &str, port: u16, extra: &[&str]) -> NodeProcess {
        node_with(
            name,
            port,
            self.dir.path(),
            &self.redis,
            &self.database,
            extra,
        )
    }

    /// [`NAMES`] started on free ports with `extra` flags; the nodes and their ports (where each
    /// must come back after a restart).
    fn two_nodes(&self, extra: &[&str]) -> (Vec<NodeProcess>, [u16; 2]) {
        let ports = [free_port(), free_port()];
        let nodes = NAMES
            .iter()
            .zip(ports)
            .map(|(name, port)| self.node(name, port, extra))
            .collect();
        (nodes, ports)
    }
}

/// The nodes of a rolling restart, as the balancer names them.
const NAMES: [&str; 2] = ["node1", "node2"];

fn node_with(
    name: &str,
    port: u16,
    dir: &Path,
    redis: &RedisServer,
    database: &str,
    extra: &[&str],
) -> NodeProcess {
    let mut args: Vec<String> = [
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--node-name",
        name,
        "--data-dir",
        &dir.display().to_string(),
        "--redis",
        &redis.url(),
        "--database",
        database,
        "--trusted-proxy",
        "127.0.0.1/32",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    NodeProcess::start(Path::new(env!("CARGO_BIN_EXE_ringfence")), &args, &[]).expect("start node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_restart_under_traffic_loses_nothing() {
    let shared = Shared::start();
    let (mut nodes, ports) = shared.two_nodes(&[]);
    let haproxy = balance(&nodes);
    let lb = haproxy.url();
    let client = browser();
    let csrf = registered_and_signed_in(&client, &lb, "steady@example.com", "curl/8").await;

    // Steady traffic: reads and cookie-authenticated writes, counting every failure.
    let load = Load::start(&client, &lb, &csrf, 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (i, name) in NAMES.iter().enumerate() {
        let start = || shared.node(name, ports[i], &[]);
        restart(&mut nodes[i], name, start, &haproxy, "");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (ok, failures) = load.finish().await;
    assert!(ok > 200, "steady traffic ran: {ok} requests");
    assert_eq!(
        failures.len(),
        0,
        "failed requests during the rolling restart: {failures:?}"
    );
    // Nobody was signed out.
    assert_eq!(
        client.get(format!("{lb}/api/v1/me")).answer_status().await,
        StatusCode::OK
    );

    // SIGKILL one node: users stay signed in through the other.
    nodes[0].kill();
    for i in 0..20 {
        let r = match client.get(format!("{lb}/api/v1/me")).send().await {
            Ok(r) => r,
            Err(e) => panic!(
                "request {i} after SIGKILL: {e}\n{}",
                std::fs::read_to_string(haproxy.log_path()).unwrap_or_default()
            ),
        };
        assert_eq!(r.status(), StatusCode::OK, "request {i} after SIGKILL");
    }
}

/// Stops `node` (`name` behind `haproxy`) with SIGTERM, which it must answer by exiting 0
/// after draining, starts it again with `start`, and waits until the balancer has it up;
/// `context` ends the messages.
fn restart(
    node: &mut NodeProcess,
    name: &str,
    start: impl FnOnce() -> NodeProcess,
    haproxy: &HaProxy,
    context: &str,
) {
    node.terminate();
    let status = node
        .wait_exit(Duration::from_secs(20))
        .unwrap()
        .unwrap_or_else(|| panic!("{name} exits on SIGTERM{context}"));
    assert!(
        status.success(),
        "{name} exits 0 after draining{context}: {status:?}"
    );
    *node = start();
    haproxy
        .wait_for_server_status(name, "UP", Duration::from_secs(15))
        .unwrap();
}

/// Steady traffic through the balancer until stopped: (succeeded, failures).
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(client: &reqwest::Client, lb: &str, csrf: &str, workers: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let workers = (0..workers)
            .map(|worker| {
                let (client, lb, csrf) = (client.clone(), lb.to_owned(), csrf.to_owned());
                let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let request = if (i + worker).is_multiple_of(5) {
                            client.get(format!("{lb}/api/v1/sessions"))
                        } else {
                            client
                                .get(format!("{lb}/api/v1/me"))
                                .header("x-csrf-token", &csrf)
                        };
                        match request.send().await {
                            Ok(r) if r.status() == StatusCode::OK => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => failures
                                .lock()
                                .unwrap()
                                .push(format!("status {}", r.status())),
                            Err(e) => failures.lock().unwrap().push(format!("error {e}")),
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            })
            .collect();
        Self {
            stop,
            ok,
            failures,
            workers,
        }
    }

    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            worker.await.unwrap();
        }
        let failures = self.failures.lock().unwrap().clone();
        (self.ok.load(Ordering::Relaxed), failures)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finding_14_rolling_restarts_behind_a_plain_balancer_lose_nothing() {
    // Checks every 200 ms, down after 2 failures: the balancer takes a draining node out within
    // about 400 ms plus a check's round trip, well inside the nodes' 1 s drain delay.
    let options = HaProxyOptions {
        check_interval: Duration::from_millis(200),
        fall: 2,
        rise: 1,
        ..HaProxyOptions::plain()
    };
    let drain = ["--drain-delay", "1s"];
    let shared = Shared::start();
    let (mut nodes, ports) = shared.two_nodes(&drain);
    let haproxy = balance_with(&nodes, &options);
    let config = std::fs::read_to_string(haproxy.config_path()).unwrap();
    assert!(!config.contains("retry-on"), "a plain config: {config}");
    let lb = haproxy.url();
    let client = browser();
    let csrf = registered_and_signed_in(&client, &lb, "plain@example.com", "curl/8").await;

    let load = Load::start(&client, &lb, &csrf, 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for round in 0..5 {
        for (i, name) in NAMES.iter().enumerate() {
            let start = || shared.node(name, ports[i], &drain);
            restart(
                &mut nodes[i],
                name,
                start,
                &haproxy,
                &format!(" (round {round})"),
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, failures) = load.finish().await;
    assert!(ok > 200, "steady traffic ran: {ok} requests");
    if !failures.is_empty() {
        let log = std::fs::read_to_string(haproxy.log_path()).unwrap_or_default();
        let tail: String = log.lines().rev().take(60).collect::<Vec<_>>().join("\n");
        panic!(
            "{} failed requests (of {}) during 5 rolling restarts behind a plain balancer: {failures:?}\nhaproxy log, newest first:\n{tail}",
            failures.len(),
            ok + failures.len(),
        );
    }
}
