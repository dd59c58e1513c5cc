//! A real MongoDB wire-protocol server, FerretDB on its SQLite backend, on a free loopback port.
//!
//! No MongoDB server package is obtainable for the machines this project runs on; FerretDB
//! (Apache-2.0, Go) is, through the Go module proxy, and it speaks the protocol the official
//! drivers speak. `scripts/test.sh` builds it once from the module
//! `github.com/FerretDB/FerretDB@v1.24.2` into `~/.cache/ringfence/ferretdb/` and exports its path
//! as `RINGFENCE_FERRETDB`.

use std::io;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{self, LaunchError};

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_GRACE: Duration = Duration::from_secs(5);
const PORT_ATTEMPTS: usize = 5;
/// The FerretDB release the tests are written against (the one scripts/test.sh builds).
pub const FERRETDB_VERSION: &str = "v1.24.2";
const INSTALL_HINT: &str = "scripts/test.sh builds it with Go into ~/.cache/ringfence/ferretdb (FerretDB v1.24.2 from the Go module proxy); or point RINGFENCE_FERRETDB at a ferretdb binary";

/// A FerretDB process on `127.0.0.1` with its SQLite files in a temporary directory.
///
/// No authentication. Dropping it stops the server and removes the directory; the process is
/// also killed when the test process exits. Tests share one server through
/// [`MongoServer::fresh_database`], each on a database of its own.
#[derive(Debug)]
pub struct MongoServer {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    next_db: AtomicU64,
    // Declared last: dropped after the process is gone.
    dir: TempDir,
}

impl MongoServer {
    /// Starts FerretDB and waits until it accepts connections (at most 20 s); an error of kind
    /// [`io::ErrorKind::NotFound`] when no `ferretdb` binary is found (see
    /// [`MongoServer::start_or_skip`]).
    pub fn start() -> io::Result<MongoServer> {
        let bin = ferretdb_binary()?;
        let dir = process::temp_dir("mongo", false)?;
        let log = dir.path().join("ferretdb.log");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        let (port, child) = process::launch_on_free_port(PORT_ATTEMPTS, "ferretdb", |port| {
            launch(&bin, dir.path(), &data, &log, port)
        })?;
        Ok(MongoServer {
            child: Some(child),
            port,
            log,
            next_db: AtomicU64::new(1),
            dir,
        })
    }

    /// [`MongoServer::start`], or `None` after printing why when FerretDB is not built on this
    /// machine: the MongoDB tests are then skipped, not failed (any other error still panics).
    pub fn start_or_skip() -> Option<MongoServer> {
        match Self::start() {
            Ok(server) => Some(server),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                eprintln!("skipping a MongoDB test: {e}");
                None
            }
            Err(e) => panic!("start FerretDB: {e}"),
        }
    }

    /// `mongodb://127.0.0.1:PORT/` (no default database).
    pub fn url(&self) -> String {
        format!("mongodb://127.0.0.1:{}/", self.port)
    }

    /// The URL of a database no one has used yet on this server (MongoDB creates it on first
    /// write): `mongodb://127.0.0.1:PORT/ringfence_N`.
    pub fn fresh_database(&self) -> String {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        format!("mongodb://127.0.0.1:{}/ringfence_{n}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Stops the server (SIGTERM, SIGKILL after 5 s); the data stays until the handle drops.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::stop_child(&mut child, libc::SIGTERM, STOP_GRACE);
        }
    }
}

impl Drop for MongoServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `RINGFENCE_FERRETDB`, else the cache place scripts/test.sh builds into, else `ferretdb` on
/// `PATH`.
fn ferretdb_binary() -> io::Result<PathBuf> {
    if let Some(path) = std::env::var_os("RINGFENCE_FERRETDB") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "RINGFENCE_FERRETDB names {}, which does not exist; {INSTALL_HINT}",
                path.display()
            ),
        ));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")));
    if let Some(cached) = cache.map(|c| c.join("ringfence/ferretdb/ferretdb")) {
        if cached.is_file() {
            return Ok(cached);
        }
    }
    process::which("ferretdb").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("FerretDB {FERRETDB_VERSION} (the MongoDB-compatible server of the MongoDB tests) is not built; {INSTALL_HINT}"),
        )
    })
}

fn launch(
    bin: &Path,
    dir: &Path,
    data: &Path,
    log: &Path,
    port: u16,
) -> Result<Child, LaunchError> {
    let fatal = LaunchError::Fatal;
    let (out, err) = process::log_outputs(log).map_err(fatal)?;
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir)
        .arg(format!("--listen-addr=127.0.0.1:{port}"))
        .arg("--handler=sqlite")
        .arg(format!("--sqlite-url=file:{}/", data.display()))
        .arg(format!("--state-dir={}", dir.display()))
        // No debug listener (its fixed default port would clash between servers), no
        // telemetry (loopback only here; and never report from a test run).
        .arg("--debug-addr=-")
        .arg("--telemetry=disable")
        .arg("--log-level=warn")
        .env("DO_NOT_TRACK", "1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let child = process::spawn(cmd).map_err(fatal)?;
    // FerretDB opens its listener once its backend is ready.
    let starting = process::Starting {
        what: "ferretdb",
        port,
        log,
        ready_means: "accept connections",
        timeout: READY_TIMEOUT,
        poll: process::POLL,
    };
    starting.wait(child, || {
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).is_ok()
    })
}
