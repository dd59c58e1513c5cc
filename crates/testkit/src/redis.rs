//! A real `redis-server` on a free loopback port.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{self, LaunchError, POLL};
use crate::tls::TestPki;

const READY_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_GRACE: Duration = Duration::from_secs(10);
const PORT_ATTEMPTS: usize = 5;

/// How to start a [`RedisServer`].
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Append-only file with `appendfsync always`, so a restart keeps every acknowledged write.
    /// On by default; RDB snapshots are always off (`--save ""`).
    pub appendonly: bool,
    /// Passed to `redis-server` after the harness's own arguments, so they win
    /// (e.g. `--cluster-enabled yes`, `--requirepass x`, TLS settings).
    ///
    /// With `--port 0` (TLS only) readiness is taken from the log line
    /// `Ready to accept connections` instead of a plain-text PING, and [`RedisServer::port`]
    /// still reports the harness's port, which then is not listening.
    pub extra_args: Vec<String>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            appendonly: true,
            extra_args: Vec::new(),
        }
    }
}

/// A `redis-server` process on `127.0.0.1` with its own temporary directory.
///
/// Dropping it kills the server and removes the directory. The process is also killed when the
/// test process exits, so keeping one in a `static` is fine.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    options: RedisOptions,
    tls: Option<TlsFiles>,
    cli_user: Option<CliUser>,
    log: PathBuf,
    // Declared last: dropped after the process is gone.
    dir: TempDir,
}

/// The server's own copies of its certificate, key and CA, inside its directory.
#[derive(Debug, Clone)]
struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

/// The ACL user for the harness's own `redis-cli` calls; `Debug` leaves the password out.
#[derive(Clone)]
struct CliUser {
    user: String,
    password: String,
}

impl std::fmt::Debug for CliUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CliUser")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl RedisServer {
    /// Starts a server with [`RedisOptions::default`] and waits until it answers PING.
    pub fn start() -> io::Result<RedisServer> {
        Self::start_with(RedisOptions::default())
    }

    /// Starts a server with the given options and waits until it answers PING.
    pub fn start_with(options: RedisOptions) -> io::Result<RedisServer> {
        Self::start_inner(options, None)
    }

    /// Starts a server that speaks only TLS (`--port 0 --tls-port PORT`), with the certificate
    /// and key of `pki` and its CA for client certificates, which are not required
    /// (`--tls-auth-clients no`). `--tls-cluster yes` and `--tls-replication yes` are set too, so
    /// `--cluster-enabled yes` in `options.extra_args` gives a TLS cluster node.
    ///
    /// The files are copied into the server's directory, so `pki` may be dropped. Readiness is
    /// taken from the log (a plain-text PING cannot reach a TLS port); [`RedisServer::url`] is
    /// then `rediss://127.0.0.1:PORT/` and [`RedisServer::redis_cli`] adds `--tls --cacert`.
    pub fn start_tls(pki: &TestPki, options: RedisOptions) -> io::Result<RedisServer> {
        Self::start_inner(options, Some(pki))
    }

    fn start_inner(options: RedisOptions, pki: Option<&TestPki>) -> io::Result<RedisServer> {
        process::require("redis-server", "redis-server")?;
        let dir = process::temp_dir("redis", false)?;
        let log = dir.path().join("redis.log");
        let tls = match pki {
            Some(pki) => {
                let files = TlsFiles {
                    cert: dir.path().join("tls-server.pem"),
                    key: dir.path().join("tls-server.key"),
                    ca: dir.path().join("tls-ca.pem"),
                };
                std::fs::copy(pki.cert_file(), &files.cert)?;
                std::fs::copy(pki.key_file(), &files.key)?;
                std::fs::copy(pki.ca_file(), &files.ca)?;
                Some(files)
            }
            None => None,
        };
        let (port, child) = process::launch_on_free_port(PORT_ATTEMPTS, "redis-server", |port| {
            launch(dir.path(), &log, port, &options, tls.as_ref())
        })?;
        Ok(RedisServer {
            child: Some(child),
            port,
            options,
            tls,
            cli_user: None,
            log,
            dir,
        })
    }

    /// `redis://127.0.0.1:PORT/`, or `rediss://127.0.0.1:PORT/` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// Whether the server was started with [`RedisServer::start_tls`].
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Makes every later [`RedisServer::redis_cli`] call authenticate as this ACL user (for a
    /// server started with `--user ...` and `--user default off`).
    pub fn set_cli_user(&mut self, user: &str, password: &str) {
        self.cli_user = Some(CliUser {
            user: user.to_owned(),
            password: password.to_owned(),
        });
    }

    /// The TCP port the server listens on (the TLS port for a TLS server).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The server's working directory (AOF, cluster `nodes.conf`, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log file (stdout and stderr of every start).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Stops the server with SIGTERM (it flushes the AOF and exits), waits up to 10 s, then
    /// SIGKILLs it. Data stays in [`RedisServer::dir`] for [`RedisServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::stop_child(&mut child, libc::SIGTERM, STOP_GRACE);
        }
    }

    /// Stops the server if it runs and starts it again on the same port with the same
    /// directory, waiting until it answers PING.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        // redis sets SO_REUSEADDR, but the old socket may still linger briefly.
        let child = process::relaunch_on_port(self.port, Duration::from_secs(2), |port| {
            launch(
                self.dir.path(),
                &self.log,
                port,
                &self.options,
                self.tls.as_ref(),
            )
        })?;
        self.child = Some(child);
        Ok(())
    }

    /// Whether the server process is alive.
    pub fn is_running(&mut self) -> bool {
        process::is_alive(self.child.as_mut())
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Runs `redis-cli -h 127.0.0.1 -p PORT ARGS...` and returns its stdout without the final
    /// newline. Error replies come back as text (`ERR ...`), not as `Err`; `Err` means
    /// redis-cli could not run or exited non-zero. A TLS server gets `--tls --cacert CA`, and
    /// the user of [`RedisServer::set_cli_user`] is passed on.
    pub fn redis_cli(&self, args: &[&str]) -> io::Result<String> {
        let cli = process::require("redis-cli", "redis-tools")?;
        let port = self.port.to_string();
        let mut cmd = Command::new(cli);
        cmd.args(["-h", "127.0.0.1", "-p", &port]);
        if let Some(tls) = &self.tls {
            cmd.arg("--tls").arg("--cacert").arg(&tls.ca);
        }
        if let Some(CliUser { user, password }) = &self.cli_user {
            // The environment keeps the password out of `ps`.
            cmd.args(["--user", user]).env("REDISCLI_AUTH", password);
        }
        cmd.args(args);
        process::output_text(&mut cmd, &format!("redis-cli {}", args.join(" ")))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn launch(
    dir: &Path,
    log: &Path,
    port: u16,
    options: &RedisOptions,
    tls: Option<&TlsFiles>,
) -> Result<Child, LaunchError> {
    let fatal = LaunchError::Fatal;
    let bin = process::require("redis-server", "redis-server").map_err(fatal)?;
    let (out, err) = process::log_outputs(log).map_err(fatal)?;
    // The log is appended to across restarts: only a ready line written after this count is ours.
    let ready_before = ready_lines(log);
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir);
    match tls {
        Some(tls) => {
            cmd.args(["--port", "0", "--tls-port", &port.to_string()])
                .arg("--tls-cert-file")
                .arg(&tls.cert)
                .arg("--tls-key-file")
                .arg(&tls.key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca)
                .args(["--tls-auth-clients", "no"])
                .args(["--tls-cluster", "yes", "--tls-replication", "yes"]);
        }
        None => {
            cmd.args(["--port", &port.to_string()]);
        }
    }
    cmd.args(["--bind", "127.0.0.1", "--protected-mode", "no"])
        .args(["--save", ""])
        .args(["--daemonize", "no"])
        .arg("--dir")
        .arg(dir);
    if options.appendonly {
        cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
    } else {
        cmd.args(["--appendonly", "no"]);
    }
    cmd.args(&options.extra_args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let child = process::spawn(cmd).map_err(fatal)?;

    let plain_port_off = tls.is_some()
        || options
            .extra_args
            .windows(2)
            .rev()
            .find(|w| w[0] == "--port")
            .is_some_and(|w| w[1] == "0");
    let starting = process::Starting {
        what: "redis-server",
        port,
        log,
        ready_means: "answer PING",
        timeout: READY_TIMEOUT,
        poll: POLL,
    };
    starting.wait(child, || {
        if plain_port_off {
            ready_lines(log) > ready_before
        } else {
            ping(port)
        }
    })
}

/// How many times the log says the server became ready.
fn ready_lines(log: &Path) -> usize {
    std::fs::read(log).map_or(0, |bytes| {
        String::from_utf8_lossy(&bytes)
            .matches("Ready to accept connections")
            .count()
    })
}

/// True when a plain RESP PING on 127.0.0.1:port is answered with +PONG (not -LOADING etc.).
fn ping(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < 7 {
        match s.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    buf[..n].starts_with(b"+PONG")
}
