//! A real HAProxy load balancer in front of test backends.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::{self, LaunchError, POLL};

const READY_TIMEOUT: Duration = Duration::from_secs(10);
const PORT_ATTEMPTS: usize = 5;

/// How the test balancer is configured. [`Default`] is the shipped configuration's behaviour
/// with faster checks: retries with `retry-on`, checks every 500 ms, down after 2 failures, up
/// after 1 success.
#[derive(Debug, Clone)]
pub struct HaProxyOptions {
    /// `retry-on conn-failure empty-response response-timeout`: a request that failed before any
    /// response byte is resent. Off gives the plain configuration most balancers run (round
    /// robin, health checks, `option redispatch`, nothing resent once sent).
    pub retry_on: bool,
    /// Health-check interval (`inter`).
    pub check_interval: Duration,
    /// Failed checks before a server is down (`fall`).
    pub fall: u32,
    /// Passed checks before a server is up again (`rise`).
    pub rise: u32,
}

impl Default for HaProxyOptions {
    fn default() -> Self {
        Self {
            retry_on: true,
            check_interval: Duration::from_millis(500),
            fall: 2,
            rise: 1,
        }
    }
}

impl HaProxyOptions {
    /// A plain balancer: round robin, health checks, `option redispatch`, no `retry-on`.
    pub fn plain() -> Self {
        Self {
            retry_on: false,
            ..Self::default()
        }
    }
}

/// An `haproxy` process balancing HTTP round-robin over the given backends, with health checks
/// on `GET /readyz` (by default every 500 ms; down after 2 failures, up after 1 success; see
/// [`HaProxyOptions`]).
///
/// A stats page on a second port is read by [`HaProxy::stats`]. Dropping the handle kills it.
#[derive(Debug)]
pub struct HaProxy {
    child: Option<Child>,
    port: u16,
    stats_port: u16,
    config: PathBuf,
    log: PathBuf,
    // Declared last: dropped after the process is gone.
    dir: TempDir,
}

impl HaProxy {
    /// Writes the configuration, starts haproxy on a free port and waits until its frontend
    /// accepts TCP connections. `backends` are `(server name, address)`; names must be unique
    /// and made of letters, digits, `-`, `_` or `.`.
    pub fn start(backends: &[(String, SocketAddr)]) -> io::Result<HaProxy> {
        Self::start_with(backends, &HaProxyOptions::default())
    }

    /// [`HaProxy::start`] with these options.
    pub fn start_with(
        backends: &[(String, SocketAddr)],
        options: &HaProxyOptions,
    ) -> io::Result<HaProxy> {
        let bin = process::require("haproxy", "haproxy")?;
        if backends.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "haproxy needs at least one backend",
            ));
        }
        for (i, (name, _)) in backends.iter().enumerate() {
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !valid {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("backend name {name:?} must be letters, digits, '-', '_' or '.'"),
                ));
            }
            if backends[..i].iter().any(|(other, _)| other == name) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("backend name {name:?} appears twice"),
                ));
            }
        }
        let dir = process::temp_dir("haproxy", false)?;
        let config = dir.path().join("haproxy.cfg");
        let log = dir.path().join("haproxy.log");
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = process::try_free_port()?;
            let stats_port = process::try_free_port()?;
            fs::write(&config, render_config(port, stats_port, backends, options))?;
            match launch(&bin, &config, &log, port, stats_port) {
                Ok(child) => {
                    return Ok(HaProxy {
                        child: Some(child),
                        port,
                        stats_port,
                        config,
                        log,
                        dir,
                    })
                }
                Err(LaunchError::PortTaken(e)) => last = Some(e),
                Err(LaunchError::Fatal(e)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("haproxy did not start")))
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The frontend's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The frontend's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The temporary directory holding the configuration and the log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The generated configuration file.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// haproxy's output (configuration warnings, health-check transitions).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The statistics in HAProxy's CSV format (the `;csv` stats page): one header line starting
    /// with `# pxname,svname,`, then one line per frontend, server and backend.
    pub fn stats(&self) -> io::Result<String> {
        http_get(self.stats_port, "/;csv")
    }

    /// The health status of server `name` (`UP`, `DOWN`, `MAINT`, `UP 1/2`, `no check`, ...),
    /// or `None` when there is no such server.
    pub fn server_status(&self, name: &str) -> io::Result<Option<String>> {
        let csv = self.stats()?;
        let mut lines = csv.lines();
        let header = lines
            .next()
            .ok_or_else(|| io::Error::other("empty haproxy stats"))?;
        let columns: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
        let status_col = columns
            .iter()
            .position(|c| *c == "status")
            .ok_or_else(|| io::Error::other("haproxy stats have no status column"))?;
        Ok(lines.find_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (fields.first() == Some(&"ringfence") && fields.get(1) == Some(&name))
                .then(|| fields.get(status_col).map(|s| s.to_string()))
                .flatten()
        }))
    }

    /// Waits (polling every 20 ms, at most `timeout`) until server `name` reports a status that
    /// starts with `status` (`"UP"` or `"DOWN"`).
    pub fn wait_for_server_status(
        &self,
        name: &str,
        status: &str,
        timeout: Duration,
    ) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let current = self.server_status(name)?;
            if current.as_deref().is_some_and(|s| s.starts_with(status)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "haproxy server {name} is {current:?}, not {status}, after {timeout:?}"
                    ),
                ));
            }
            thread::sleep(POLL);
        }
    }

    /// Whether the haproxy process is alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn render_config(
    port: u16,
    stats_port: u16,
    backends: &[(String, SocketAddr)],
    options: &HaProxyOptions,
) -> String {
    let HaProxyOptions {
        retry_on,
        check_interval,
        fall,
        rise,
    } = options;
    let retry_on = if *retry_on {
        "    retry-on conn-failure empty-response response-timeout\n"
    } else {
        ""
    };
    let inter = check_interval.as_millis().max(1);
    // The scheme is set here, as in deploy/haproxy.cfg: a client's X-Forwarded-Proto never
    // reaches the nodes.
    let mut cfg = format!(
        "# Generated by ringfence-testkit.\n\
         global\n    log stdout format raw local0 info\n    nbthread 1\n    hard-stop-after 2s\n\n\
         defaults\n    mode http\n    log global\n    option httplog\n    option dontlognull\n    \
         option forwardfor\n    option redispatch 1\n    retries 3\n{retry_on}    \
         timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    \
         timeout check 2s\n\n\
         frontend web\n    bind 127.0.0.1:{port}\n    \
         http-request set-header X-Forwarded-Proto http\n    default_backend ringfence\n\n\
         listen stats\n    bind 127.0.0.1:{stats_port}\n    stats enable\n    stats uri /\n\n\
         backend ringfence\n    balance roundrobin\n    option httpchk GET /readyz\n    \
         http-check expect status 200\n    default-server inter {inter}ms fall {fall} rise {rise}\n"
    );
    for (name, addr) in backends {
        let _ = writeln!(cfg, "    server {name} {addr} check");
    }
    cfg
}

fn launch(
    bin: &Path,
    config: &Path,
    log: &Path,
    port: u16,
    stats_port: u16,
) -> Result<Child, LaunchError> {
    let fatal = LaunchError::Fatal;
    let (out, err) = process::log_outputs(log).map_err(fatal)?;
    let mut cmd = Command::new(bin);
    cmd.arg("-db")
        .arg("-f")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let child = process::spawn(cmd).map_err(fatal)?;
    let accepts = |p: u16| {
        TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], p)), POLL * 10).is_ok()
    };
    let starting = process::Starting {
        what: "haproxy",
        port,
        log,
        ready_means: "accept connections",
        timeout: READY_TIMEOUT,
        poll: POLL,
    };
    starting
        .wait(child, || accepts(port) && accepts(stats_port))
        .map_err(|e| e.with_hint(&format!("config {}", config.display())))
}

/// A minimal HTTP/1.0 GET on 127.0.0.1 returning the body of a 200 response.
fn http_get(port: u16, path: &str) -> io::Result<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other("malformed HTTP response from haproxy stats"))?;
    let status_ok = head
        .lines()
        .next()
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("200"));
    if !status_ok {
        return Err(io::Error::other(format!(
            "haproxy stats answered {}",
            head.lines().next().unwrap_or("")
        )));
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        dechunk(body)
    } else {
        Ok(body.to_string())
    }
}

/// Decodes a `Transfer-Encoding: chunked` body (haproxy's stats page uses it even for HTTP/1.0).
fn dechunk(mut rest: &str) -> io::Result<String> {
    let bad = || io::Error::other("malformed chunked body from haproxy stats");
    let mut out = String::new();
    loop {
        let (size_line, after) = rest.split_once("\r\n").ok_or_else(bad)?;
        let size_hex = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| bad())?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = after.get(..size).ok_or_else(bad)?;
        out.push_str(chunk);
        rest = after
            .get(size..)
            .ok_or_else(bad)?
            .trim_start_matches("\r\n");
    }
}
