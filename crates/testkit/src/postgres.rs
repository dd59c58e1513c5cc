//! A real PostgreSQL server (initdb + postgres) on a free loopback port.

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{self, LaunchError};

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_GRACE: Duration = Duration::from_secs(5);
const PORT_ATTEMPTS: usize = 5;
/// The superuser initdb creates, and the database every server gets.
const USER: &str = "ringfence";
const INSTALL_HINT: &str = "install PostgreSQL (Debian/Ubuntu: apt-get install postgresql, or run scripts/test.sh as root) or point RINGFENCE_PG_BIN at the directory holding initdb and postgres";

/// A PostgreSQL server on `127.0.0.1` with its data directory in a temporary directory.
///
/// Authentication is `trust` for the superuser `ringfence`; the database `ringfence` exists.
/// Dropping it shuts the server down (fast shutdown, SIGKILL after 5 s) and removes the
/// directory. The postmaster is also killed when the test process exits, so one server kept in
/// a `static` can be shared by many tests through [`PostgresServer::create_database`].
#[derive(Debug)]
pub struct PostgresServer {
    child: Option<Child>,
    port: u16,
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    run_as: Option<(u32, u32)>,
    next_db: AtomicU64,
    // Declared last: dropped after the process is gone.
    dir: TempDir,
}

impl PostgresServer {
    /// Runs initdb in a fresh temporary directory, starts `postgres` on a free port, waits until
    /// it accepts connections (at most 20 s) and creates the database `ringfence`.
    ///
    /// As root the server runs as the `postgres` system user, because PostgreSQL refuses root.
    pub fn start() -> io::Result<PostgresServer> {
        let bin = find_bin_dir()?;
        let run_as = if process::is_root() {
            Some(postgres_user()?)
        } else {
            None
        };
        // $TMPDIR may sit below a directory the postgres user cannot enter.
        let dir = process::temp_dir("pg", run_as.is_some())?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))?;
        }
        let data = dir.path().join("data");
        let log = dir.path().join("postgres.log");

        let (log_out, log_err) = process::log_outputs(&log)?;
        let mut initdb = pg_command(&bin.join("initdb"), dir.path(), run_as);
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-A",
                "trust",
                "-U",
                USER,
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .stdin(Stdio::null())
            .stdout(log_out)
            .stderr(log_err);
        let mut child = process::spawn(initdb)?;
        match process::wait_timeout(&mut child, INITDB_TIMEOUT)? {
            Some(status) if status.success() => {}
            other => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other(format!(
                    "initdb failed ({}); log {}:\n{}",
                    other.map_or_else(|| "timed out".to_string(), |s| s.to_string()),
                    log.display(),
                    process::tail(&log, 30)
                )));
            }
        }

        let mut server = PostgresServer {
            child: None,
            port: 0,
            bin,
            data,
            log,
            run_as,
            next_db: AtomicU64::new(1),
            dir,
        };
        let (port, child) =
            process::launch_on_free_port(PORT_ATTEMPTS, "postgres", |port| server.launch(port))?;
        server.child = Some(child);
        server.port = port;
        server.psql_in("postgres", &format!("CREATE DATABASE \"{USER}\""))?;
        Ok(server)
    }

    /// `postgres://ringfence@127.0.0.1:PORT/ringfence`
    pub fn url(&self) -> String {
        self.database_url(USER)
    }

    /// The URL of database `name` on this server (which need not exist).
    pub fn database_url(&self, name: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temporary directory (data directory `data/`, Unix socket, `postgres.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server log (initdb and every start).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Creates database `name` (letters, digits and `_`, at most 63 bytes) and returns its URL.
    pub fn create_database(&self, name: &str) -> io::Result<String> {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("database name {name:?} must be 1-63 letters, digits or underscores"),
            ));
        }
        self.psql_in("postgres", &format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.database_url(name))
    }

    /// Creates a database with a name unique on this server (`t_1`, `t_2`, ...) and returns its URL.
    pub fn fresh_database(&self) -> io::Result<String> {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        self.create_database(&format!("t_{n}"))
    }

    /// Runs SQL in database `ringfence` with psql and returns the unaligned, tuples-only output
    /// without the final newline (`select 1` gives `1`). An SQL error is an `Err` with psql's message.
    pub fn psql(&self, sql: &str) -> io::Result<String> {
        self.psql_in(USER, sql)
    }

    /// Like [`PostgresServer::psql`], in database `db`.
    pub fn psql_in(&self, db: &str, sql: &str) -> io::Result<String> {
        let mut cmd = clean_env(Command::new(self.bin.join("psql")));
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
            .args(["-d", db, "-c", sql]);
        process::output_text(&mut cmd, &format!("psql -d {db} -c {sql:?}"))
    }

    /// Shuts the server down (fast shutdown: open connections are closed) and waits, SIGKILL
    /// after 5 s. The data directory stays for [`PostgresServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::stop_child(&mut child, libc::SIGINT, STOP_GRACE);
        }
    }

    /// Stops the server if it runs and starts it again on the same port and data directory.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        let child =
            process::relaunch_on_port(self.port, Duration::from_secs(2), |port| self.launch(port))?;
        self.child = Some(child);
        Ok(())
    }

    /// Whether the postmaster process is alive.
    pub fn is_running(&mut self) -> bool {
        process::is_alive(self.child.as_mut())
    }

    fn launch(&self, port: u16) -> Result<Child, LaunchError> {
        let fatal = LaunchError::Fatal;
        let (out, err) = process::log_outputs(&self.log).map_err(fatal)?;
        let mut cmd = pg_command(&self.bin.join("postgres"), self.dir.path(), self.run_as);
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-p", &port.to_string()])
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            // Many tests share one server, each with its own pool.
            .args(["-c", "max_connections=300"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = process::spawn(cmd).map_err(fatal)?;
        let starting = process::Starting {
            what: "postgres",
            port,
            log: &self.log,
            ready_means: "accept connections",
            timeout: READY_TIMEOUT,
            // Each look runs pg_isready.
            poll: Duration::from_millis(50),
        };
        starting.wait(child, || self.is_ready(port))
    }

    fn is_ready(&self, port: u16) -> bool {
        clean_env(Command::new(self.bin.join("pg_isready")))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-U", USER, "-d", "postgres", "-t", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A command for a PostgreSQL server program, as the postgres user when we are root.
fn pg_command(program: &Path, dir: &Path, run_as: Option<(u32, u32)>) -> Command {
    let mut cmd = clean_env(Command::new(program));
    cmd.current_dir(dir).env("LC_ALL", "C");
    if let Some((uid, gid)) = run_as {
        // std drops the supplementary groups too when it changes uid as root.
        cmd.uid(uid).gid(gid).env("HOME", dir);
    }
    cmd
}

/// Keeps libpq's environment variables of the developer's shell out of the way.
fn clean_env(mut cmd: Command) -> Command {
    for var in [
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGDATA",
        "PGPASSWORD",
        "PGPASSFILE",
        "PGSERVICE",
        "PGSERVICEFILE",
        "PGOPTIONS",
        "PGSSLMODE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("PGCONNECT_TIMEOUT", "5");
    cmd
}

/// The directory holding `initdb` and `postgres`: `$RINGFENCE_PG_BIN`, then the directory a
/// `PATH` entry's `initdb` really lives in, then the newest `/usr/lib/postgresql/*/bin`.
fn find_bin_dir() -> io::Result<PathBuf> {
    let complete = |dir: &Path| {
        ["initdb", "postgres", "psql", "pg_isready"]
            .iter()
            .all(|p| dir.join(p).is_file())
    };
    if let Some(dir) = std::env::var_os("RINGFENCE_PG_BIN") {
        let dir = PathBuf::from(dir);
        if complete(&dir) {
            return Ok(dir);
        }
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "RINGFENCE_PG_BIN={} lacks initdb, postgres, psql or pg_isready",
                dir.display()
            ),
        ));
    }
    if let Some(initdb) = process::which("initdb") {
        // Debian links initdb into PATH but keeps postgres in /usr/lib/postgresql/N/bin.
        if let Some(dir) = fs::canonicalize(&initdb)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            if complete(&dir) {
                return Ok(dir);
            }
        }
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version: Option<Vec<u32>> = name.split('.').map(|p| p.parse().ok()).collect();
            Some((version?, entry.path().join("bin")))
        })
        .filter(|(_, dir)| complete(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("PostgreSQL server binaries (initdb, postgres) not found on PATH or in /usr/lib/postgresql/*/bin; {INSTALL_HINT}"),
        )
    })
}

/// uid and gid of the `postgres` system user, from /etc/passwd.
fn postgres_user() -> io::Result<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .find_map(|line| {
            let mut f = line.split(':');
            if f.next()? != "postgres" {
                return None;
            }
            let _password = f.next()?;
            let uid = f.next()?.parse().ok()?;
            let gid = f.next()?.parse().ok()?;
            Some((uid, gid))
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("running as root, and PostgreSQL refuses to run as root, but there is no `postgres` user in /etc/passwd; {INSTALL_HINT} (the package creates the user) or run the tests as a normal user"),
            )
        })
}
