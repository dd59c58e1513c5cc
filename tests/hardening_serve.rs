//! Findings 1, 2, 8, 9 and 14 of the outside review (issue #13), against real `ringfence serve`
//! processes: metrics that cannot grow with what clients send and are not served to the world,
//! slow clients that cannot hold the node, the scheme taken only from the connection or a
//! trusted proxy, duration flags with ranges, and the drain on SIGTERM.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use ringfence_testkit::{free_port, NodeProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn metrics_body(client: &reqwest::Client, url: &str) -> String {
    let response = client.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET {url}/metrics");
    response.text().await.unwrap()
}

/// A random token of `len` upper-case letters (a valid, made-up HTTP method).
fn random_token(rng: &mut impl Rng, len: usize) -> String {
    (0..len)
        .map(|_| rng.gen_range(b'A'..=b'Z') as char)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finding_01_metrics_labels_are_closed_sets() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node("metrics", dir.path(), &[]);
    let base = node.url();
    let client = plain_client();
    // Warm up: every kind of answer the flood below can get has been counted once.
    for path in ["/nowhere", "/api/v1/x/1", "/account/sessions/x/revoke"] {
        let method = Method::from_bytes(b"FOOBAR").unwrap();
        let _ = client
            .request(method, format!("{base}{path}"))
            .send()
            .await
            .unwrap();
    }
    let before = metrics_body(&client, &base).await;

    let mut tasks = Vec::new();
    for worker in 0..16u64 {
        let (client, base) = (client.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(worker);
            for _ in 0..625 {
                let method = random_token(&mut rng, 12);
                let path = match rng.gen_range(0..3) {
                    0 => format!("/{}", random_token(&mut rng, 20)),
                    1 => format!("/api/v1/{}/{}", random_token(&mut rng, 8), rng.gen::<u64>()),
                    _ => format!("/account/sessions/{}/revoke", random_token(&mut rng, 16)),
                };
                let method = Method::from_bytes(method.as_bytes()).unwrap();
                let response = client
                    .request(method, format!("{base}{path}"))
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().as_u16() < 500, "{path}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let after = metrics_body(&client, &base).await;
    let growth = after.len().saturating_sub(before.len());
    assert!(
        growth < 4096,
        "10,000 requests with made-up methods and paths grew /metrics by {growth} bytes"
    );
    assert!(
        !after.contains("FOOBAR"),
        "a client's method became a label"
    );
}

/// The `/metrics` address a node printed for `--metrics-listen`.
fn metrics_address(node: &NodeProcess) -> String {
    let output = node.output();
    let marker = "serves /metrics on http://";
    let start = output.find(marker).expect("metrics address printed") + marker.len();
    let end = output[start..].find("/metrics").unwrap() + start;
    format!("http://{}", &output[start..end])
}

#[tokio::test]
async fn finding_01_metrics_listen_serves_metrics_and_the_main_listener_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(
        "metrics-listen",
        dir.path(),
        &args(&["--metrics-listen", "127.0.0.1:0"]),
    );
    let client = plain_client();
    let separate = metrics_address(&node);
    let body = metrics_body(&client, &separate).await;
    assert!(body.contains("ringfence_"), "{body}");
    let main = client
        .get(format!("{}/metrics", node.url()))
        .answer_status()
        .await;
    assert_eq!(main, StatusCode::NOT_FOUND);
    // Only /metrics there: the app is not reachable through the metrics port.
    let other = client
        .get(format!("{separate}/login"))
        .answer_status()
        .await;
    assert_eq!(other, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn finding_01_forwarded_metrics_request_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(
        "metrics-proxy",
        dir.path(),
        &args(&["--trusted-proxy", "127.0.0.1/32"]),
    );
    let client = plain_client();
    // A scraper on this machine, talking to the node directly: served.
    metrics_body(&client, &node.url()).await;
    // The same loopback peer forwarding someone else's request: refused.
    for (name, value) in [
        ("x-forwarded-for", "203.0.113.5"),
        ("forwarded", "for=203.0.113.5"),
    ] {
        let refused = client
            .get(format!("{}/metrics", node.url()))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{name}");
        let text = refused.text().await.unwrap();
        assert!(!text.contains("ringfence_users"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finding_02_slow_clients_do_not_hold_the_node() {
    const SLOW: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(
        "slowloris",
        dir.path(),
        &args(&["--header-read-timeout", "2s"]),
    );
    let addr = node.addr();
    let opened = Instant::now();
    let mut slow = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .unwrap();
        slow.push(stream);
    }
    // Trickle a header byte every 200 ms on every connection, until the node closes it.
    let tricklers: Vec<_> = slow
        .into_iter()
        .map(|stream| {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.into_split();
                let trickle = async {
                    loop {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        if write.write_all(b"X").await.is_err() {
                            return;
                        }
                    }
                };
                let closed = async {
                    let mut buf = [0u8; 1024];
                    loop {
                        match read.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {} // a 408 or 400 answer before the close
                        }
                    }
                };
                tokio::select! {
                    () = trickle => {}
                    () = closed => {}
                }
                Instant::now()
            })
        })
        .collect();

    // With all of them open, a normal request is answered at once.
    let started = Instant::now();
    let response = plain_client()
        .get(format!("{}/healthz", node.url()))
        .answer_status()
        .await;
    assert_eq!(response, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a normal request took {:?} with {SLOW} slow clients",
        started.elapsed()
    );

    // And the slow ones are closed within the 2 s timeout (plus scheduling slack).
    let limit = Duration::from_secs(6);
    let all_closed = tokio::time::timeout(limit, futures_util::future::join_all(tricklers)).await;
    let closed_at = all_closed
        .unwrap_or_else(|_| panic!("slow connections still open {limit:?} after the first"));
    let last = closed_at
        .into_iter()
        .map(|t| t.unwrap().duration_since(opened))
        .max()
        .unwrap();
    assert!(
        last >= Duration::from_millis(1500),
        "closed too early: {last:?}"
    );
}

#[tokio::test]
async fn finding_02_idle_keep_alive_connections_are_closed_after_the_header_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(
        "keep-alive",
        dir.path(),
        &args(&["--header-read-timeout", "2s"]),
    );
    let mut stream = tokio::net::TcpStream::connect(node.addr()).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // Kept alive, then nothing: closed once the wait for the next head exceeds the timeout.
    let idle_since = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(6), stream.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "an idle keep-alive connection stayed open"
    );
    assert!(idle_since.elapsed() >= Duration::from_millis(1500));
}

#[tokio::test]
async fn finding_02_reaching_the_connection_cap_is_logged_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(
        "capped",
        dir.path(),
        &args(&["--max-connections", "10", "--header-read-timeout", "2s"]),
    );
    // Ten connections that never send a byte take every slot.
    let mut idle = Vec::new();
    for _ in 0..10 {
        idle.push(tokio::net::TcpStream::connect(node.addr()).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The next request waits in the backlog until the header timeout frees slots, then is served.
    let response = plain_client()
        .get(format!("{}/readyz", node.url()))
        .answer_status()
        .await;
    assert_eq!(response, StatusCode::OK);
    let output = node.output();
    assert!(output.contains("connection limit reached"), "{output}");
    assert!(!output.contains("unreachable"), "{output}");
}

#[tokio::test]
async fn finding_02_a_stalled_body_is_closed_after_the_idle_connection_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(
        "stalled-body",
        dir.path(),
        &args(&["--idle-connection-timeout", "2s"]),
    );
    let mut stream = tokio::net::TcpStream::connect(node.addr()).await.unwrap();
    stream
        .write_all(
            b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"email\":",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(6), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a stalled body kept its connection for 6 s");
    assert!(started.elapsed() >= Duration::from_millis(1500));
}

/// The `Set-Cookie` lines of a raw HTTP/1.1 exchange.
fn raw_exchange(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw).into_owned()
}

fn set_cookies(response: &str) -> Vec<String> {
    response
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .map(str::to_owned)
        .collect()
}

fn assert_plain_cookies(cookies: &[String], context: &str) {
    assert!(
        !cookies.is_empty(),
        "{context}: the sign-in form sets a cookie"
    );
    for cookie in cookies {
        assert!(
            !cookie.contains("Secure") && !cookie.contains("__Host-"),
            "{context}: {cookie}"
        );
    }
}

#[test]
fn finding_08_absolute_form_https_request_line_gets_no_secure_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node("absolute-form", dir.path(), &[]);
    let addr = node.addr();
    let response = raw_exchange(
        addr,
        &format!("GET https://{addr}/login HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    );
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_plain_cookies(&set_cookies(&response), "absolute-form https request line");
}

#[test]
fn finding_08_forwarded_proto_from_an_untrusted_peer_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    // Trusts a network the test is not in.
    let node = start_node(
        "untrusted-proto",
        dir.path(),
        &args(&["--trusted-proxy", "10.0.0.0/8"]),
    );
    let addr = node.addr();
    let response = raw_exchange(
        addr,
        &format!("GET /login HTTP/1.1\r\nHost: {addr}\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"),
    );
    assert_plain_cookies(&set_cookies(&response), "untrusted X-Forwarded-Proto");
}

#[test]
fn finding_08_shipped_haproxy_config_replaces_a_clients_forwarded_proto() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(
        "behind-haproxy",
        dir.path(),
        &args(&["--trusted-proxy", "127.0.0.1/32"]),
    );
    // deploy/haproxy.cfg itself, with this test's ports (as deploy/local-fleet.sh does).
    let front = free_port();
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/haproxy.cfg"))
            .unwrap();
    let config = shipped
        .replace("bind 127.0.0.1:8080", &format!("bind 127.0.0.1:{front}"))
        .replace("127.0.0.1:8081", &node.addr().to_string())
        .replace("127.0.0.1:8082", &node.addr().to_string());
    let config_path = dir.path().join("haproxy.cfg");
    std::fs::write(&config_path, config).unwrap();
    let mut haproxy = std::process::Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&config_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("haproxy is installed by scripts/test.sh");
    let front_addr = SocketAddr::from(([127, 0, 0, 1], front));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut response = String::new();
    while Instant::now() < deadline {
        if TcpStream::connect(front_addr).is_ok() {
            response = raw_exchange(
                front_addr,
                "GET /login HTTP/1.1\r\nHost: example.test\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n",
            );
            if response.starts_with("HTTP/1.1 200") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = haproxy.kill();
    let _ = haproxy.wait();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_plain_cookies(
        &set_cookies(&response),
        "a client's X-Forwarded-Proto through the shipped HAProxy config",
    );
}

#[tokio::test]
async fn finding_08_https_public_url_makes_cookies_secure_and_sends_hsts() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(
        "https-public",
        dir.path(),
        &args(&["--public-url", "https://auth.example.test"]),
    );
    assert!(
        node.output().contains("https://auth.example.test"),
        "the public URL is said at start"
    );
    let client = plain_client();
    let login = client
        .get(format!("{}/login", node.url()))
        .send()
        .await
        .unwrap();
    assert!(login
        .headers()
        .get("strict-transport-security")
        .is_some_and(|v| v.to_str().unwrap().contains("max-age=")));
    let cookies: Vec<_> = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(!cookies.is_empty());
    for cookie in &cookies {
        assert!(
            cookie.starts_with("__Host-") && cookie.contains("Secure"),
            "{cookie}"
        );
    }
    let health = client
        .get(format!("{}/healthz", node.url()))
        .send()
        .await
        .unwrap();
    assert!(health.headers().contains_key("strict-transport-security"));
}

#[test]
fn finding_08_default_public_url_is_said_and_a_bad_one_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node("default-public", dir.path(), &[]);
    let expected = format!("http://localhost:{}", node.addr().port());
    // The log line may follow the "listening on" line the start waited for (stdout and stderr
    // are read by two threads): wait for it a little rather than race it.
    let said = Instant::now();
    while !node.output().contains(&expected) && said.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(node.output().contains(&expected), "{}", node.output());
    drop(node);
    for bad in [
        "ftp://example.test",
        "example.test",
        "https://example.test/?a=b",
        "https://example.test/#x",
    ] {
        let run = run(
            &["serve", "--listen", "127.0.0.1:0", "--public-url", bad],
            None,
            &[],
        );
        assert_one_line_failure(&run, "--public-url", "");
    }
}

#[test]
fn finding_09_huge_durations_are_one_line_errors() {
    for flag in [
        "--idle-timeout",
        "--absolute-timeout",
        "--key-lifetime",
        "--drain-delay",
        "--header-read-timeout",
        "--idle-connection-timeout",
        "--reauth-window",
        "--reset-token-lifetime",
        "--email-token-lifetime",
    ] {
        for value in ["100000000y", "-1s"] {
            let setting = format!("{flag}={value}");
            let run = run(&["serve", "--listen", "127.0.0.1:0", &setting], None, &[]);
            assert_one_line_failure(&run, flag, "");
            assert!(!run.stdout.contains("listening"), "{flag} {value} started");
        }
    }
    // The range is named in the error.
    let run = run(&["serve", "--idle-timeout", "400d"], None, &[]);
    assert_one_line_failure(&run, "366d", "");
}

async fn status_of(url: &str) -> Option<StatusCode> {
    plain_client()
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()
        .map(|r| r.status())
}

#[tokio::test]
async fn finding_14_drain_keeps_serving_with_readyz_503_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start_node("drain", dir.path(), &args(&["--drain-delay", "2s"]));
    let url = node.url();
    assert_eq!(
        status_of(&format!("{url}/readyz")).await,
        Some(StatusCode::OK)
    );
    let signalled = Instant::now();
    node.terminate();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Readiness is 503 at once, and new connections are still accepted and served.
    assert_eq!(
        status_of(&format!("{url}/readyz")).await,
        Some(StatusCode::SERVICE_UNAVAILABLE)
    );
    assert_eq!(
        status_of(&format!("{url}/healthz")).await,
        Some(StatusCode::OK)
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        status_of(&format!("{url}/healthz")).await,
        Some(StatusCode::OK)
    );
    let status = node
        .wait_exit(Duration::from_secs(10))
        .unwrap()
        .expect("exits after the drain delay");
    assert!(status.success(), "{status:?}\n{}", node.output());
    assert!(
        signalled.elapsed() >= Duration::from_millis(1800),
        "left before the drain delay: {:?}",
        signalled.elapsed()
    );
    assert_eq!(status_of(&format!("{url}/healthz")).await, None);
}

#[tokio::test]
async fn finding_14_a_second_signal_skips_the_drain_delay() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start_node("impatient", dir.path(), &args(&["--drain-delay", "5m"]));
    let url = node.url();
    node.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        status_of(&format!("{url}/readyz")).await,
        Some(StatusCode::SERVICE_UNAVAILABLE)
    );
    let second = Instant::now();
    node.interrupt();
    let status = node
        .wait_exit(Duration::from_secs(10))
        .unwrap()
        .expect("a second signal skips the drain delay");
    assert!(status.success(), "{status:?}");
    assert!(second.elapsed() < Duration::from_secs(5));
}
