//! HAProxy in front of tiny std HTTP responders, and NodeProcess against shell stand-ins.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use ringfence_testkit::{HaProxy, HaProxyOptions, NodeProcess};

/// Answers every request with `200` and a body `NAME xff=<X-Forwarded-For or ->`.
struct Responder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Responder {
    fn start(name: &'static str) -> Responder {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let req = String::from_utf8_lossy(&req).to_ascii_lowercase();
                    let xff = req
                        .lines()
                        .find_map(|l| l.strip_prefix("x-forwarded-for:"))
                        .map_or("-".to_string(), |v| v.trim().to_string());
                    let body = format!("{name} xff={xff}");
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.shutdown(Shutdown::Both);
                });
            }
        });
        Responder {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and drops the listener.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

#[test]
fn haproxy_alternates_between_backends_and_skips_a_dead_one() {
    let one = Responder::start("one");
    let two = Responder::start("two");
    let lb = HaProxy::start(&[("one".into(), one.addr), ("two".into(), two.addr)]).unwrap();
    assert_eq!(lb.url(), format!("http://127.0.0.1:{}", lb.port()));
    lb.wait_for_server_status("one", "UP", Duration::from_secs(5))
        .unwrap();
    lb.wait_for_server_status("two", "UP", Duration::from_secs(5))
        .unwrap();
    assert_eq!(lb.server_status("nobody").unwrap(), None);

    let bodies: Vec<String> = (0..4).map(|_| get(lb.addr(), "/")).collect();
    let names: Vec<&str> = bodies
        .iter()
        .map(|b| b.split(' ').next().unwrap())
        .collect();
    assert_ne!(names[0], names[1], "{bodies:?}");
    assert_eq!(names[0], names[2], "{bodies:?}");
    assert_eq!(names[1], names[3], "{bodies:?}");
    assert!(
        bodies.iter().all(|b| b.ends_with("xff=127.0.0.1")),
        "{bodies:?}"
    );

    drop(one);
    lb.wait_for_server_status("one", "DOWN", Duration::from_secs(5))
        .unwrap();
    for _ in 0..4 {
        assert!(get(lb.addr(), "/").starts_with("two "));
    }
    assert!(lb.stats().unwrap().starts_with("# pxname,svname,"));
}

#[test]
fn haproxy_plain_options_render_a_config_without_retries() {
    let one = Responder::start("one");
    let backends = [("one".to_string(), one.addr)];
    let shipped = HaProxy::start(&backends).unwrap();
    let shipped_config = std::fs::read_to_string(shipped.config_path()).unwrap();
    assert!(shipped_config.contains("retry-on"), "{shipped_config}");
    let options = HaProxyOptions {
        check_interval: Duration::from_millis(200),
        fall: 3,
        ..HaProxyOptions::plain()
    };
    let plain = HaProxy::start_with(&backends, &options).unwrap();
    let config = std::fs::read_to_string(plain.config_path()).unwrap();
    assert!(!config.contains("retry-on"), "{config}");
    assert!(config.contains("option redispatch"), "{config}");
    assert!(config.contains("inter 200ms fall 3 rise 1"), "{config}");
    assert!(
        config.contains("http-request set-header X-Forwarded-Proto http"),
        "{config}"
    );
    plain
        .wait_for_server_status("one", "UP", Duration::from_secs(5))
        .unwrap();
    assert!(get(plain.addr(), "/").starts_with("one "));
}

#[test]
fn haproxy_rejects_bad_backend_lists() {
    let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
    assert!(HaProxy::start(&[]).is_err());
    assert!(HaProxy::start(&[("bad name".into(), addr)]).is_err());
    assert!(HaProxy::start(&[("a".into(), addr), ("a".into(), addr)]).is_err());
}

fn sh(script: &str) -> std::io::Result<NodeProcess> {
    NodeProcess::start(
        Path::new("/bin/sh"),
        &["-c".to_string(), script.to_string()],
        &[("GREETING".to_string(), "hello".to_string())],
    )
}

#[test]
fn node_process_reports_its_address_and_shuts_down_gracefully() {
    let mut node = sh(
        "trap 'echo draining; exit 0' TERM; echo \"$GREETING\" >&2; \
         echo 'INFO ringfence listening on http://127.0.0.1:18081'; \
         while :; do sleep 0.05; done",
    )
    .unwrap();
    assert_eq!(node.addr(), "127.0.0.1:18081".parse().unwrap());
    assert_eq!(node.url(), "http://127.0.0.1:18081");
    assert!(node.pid() > 0);
    assert!(node.is_running());
    assert_eq!(node.wait_exit(Duration::from_millis(100)).unwrap(), None);
    node.terminate();
    let status = node.wait_exit(Duration::from_secs(10)).unwrap().unwrap();
    assert!(status.success(), "{status}");
    assert!(!node.is_running());
    // The capture threads may still be appending the last lines.
    for _ in 0..100 {
        if node.output().contains("draining") {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let out = node.output();
    assert!(out.contains("hello") && out.contains("draining"), "{out}");
}

#[test]
fn node_process_kill_is_a_crash() {
    let mut node = sh("echo 'listening on http://127.0.0.1:18082'; exec sleep 30").unwrap();
    node.kill();
    let status = node.wait_exit(Duration::from_secs(5)).unwrap().unwrap();
    assert!(!status.success());
}

#[test]
fn node_process_that_dies_early_reports_its_output() {
    let err = sh("echo 'error: cannot reach redis' >&2; exit 3").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("cannot reach redis") && msg.contains("exit"),
        "{msg}"
    );
}

#[test]
fn node_process_with_a_missing_binary_says_so() {
    let err = NodeProcess::start(Path::new("/nonexistent/ringfence"), &[], &[]).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ringfence"), "{err}");
}
