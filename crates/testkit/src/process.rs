//! Process plumbing shared by every server type: spawning children that die with the test
//! process, signals, bounded waits, log tails and free ports.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// How often readiness probes and bounded waits look again.
pub(crate) const POLL: Duration = Duration::from_millis(20);

type SpawnJob = (Command, mpsc::Sender<io::Result<Child>>);

/// Linux delivers the parent-death signal when the *thread* that forked the child ends, not the
/// process. Test harnesses run every test on its own short-lived thread, so children are forked
/// from one thread that lives as long as the test process: a server shared through a `static`
/// (whose `Drop` never runs) or left behind by an aborted test binary still dies with it.
fn spawner() -> Option<&'static mpsc::Sender<SpawnJob>> {
    static SPAWNER: OnceLock<Option<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    SPAWNER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<SpawnJob>();
            thread::Builder::new()
                .name("ringfence-testkit-spawner".into())
                .spawn(move || {
                    for (mut cmd, reply) in rx {
                        let _ = reply.send(spawn_here(&mut cmd));
                    }
                })
                .ok()
                .map(|_| tx)
        })
        .as_ref()
}

fn spawn_here(cmd: &mut Command) -> io::Result<Child> {
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
        // system calls (prctl, getppid) without allocating.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl; then nobody would kill us.
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
    cmd.spawn()
}

/// Spawns `cmd` so that the child is killed when the test process exits, however it exits.
pub(crate) fn spawn(mut cmd: Command) -> io::Result<Child> {
    if let Some(tx) = spawner() {
        let (reply_tx, reply_rx) = mpsc::channel();
        if tx.send((cmd, reply_tx)).is_ok() {
            return reply_rx
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("testkit spawner thread is gone")));
        }
        return Err(io::Error::other("testkit spawner thread is gone"));
    }
    spawn_here(&mut cmd)
}

/// Sends `sig` to a child that has not been reaped yet (so its pid cannot have been reused).
pub(crate) fn signal(child: &mut Child, sig: libc::c_int) -> io::Result<()> {
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    let pid = libc::pid_t::try_from(child.id())
        .map_err(|_| io::Error::other(format!("pid {} out of range", child.id())))?;
    // SAFETY: plain system call on a pid we own and have not reaped.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc == 0 {
        Ok(())
    } else {
        let err = io::Error::last_os_error();
        // ESRCH: it exited between try_wait and kill, which is what we wanted anyway.
        if err.raw_os_error() == Some(libc::ESRCH) {
            Ok(())
        } else {
            Err(err)
        }
    }
}

/// Waits for the child to exit for at most `timeout`.
pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(POLL);
    }
}

/// Asks the child to stop with `sig`, waits up to `grace`, then SIGKILLs it and reaps it.
pub(crate) fn stop_child(child: &mut Child, sig: libc::c_int, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if signal(child, sig).is_ok() && matches!(wait_timeout(child, grace), Ok(Some(_))) {
        return;
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Whether this process runs with effective uid 0.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The last `lines` lines of a log file, for error messages.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// How starting a server on a given port failed.
pub(crate) enum LaunchError {
    /// The server exited because the port was taken: worth another port (or another try later).
    PortTaken(io::Error),
    /// Anything else: reported as it is.
    Fatal(io::Error),
}

impl LaunchError {
    /// The same error, its message followed by `hint` (what to install, say).
    pub(crate) fn with_hint(self, hint: &str) -> LaunchError {
        let add = |e: io::Error| io::Error::new(e.kind(), format!("{e}\n{hint}"));
        match self {
            LaunchError::PortTaken(e) => LaunchError::PortTaken(add(e)),
            LaunchError::Fatal(e) => LaunchError::Fatal(add(e)),
        }
    }
}

/// Runs `launch` on fresh free ports until a server does not find its port taken, at most
/// `attempts` times; returns the port and what `launch` gave. `what` names the server in the
/// error when every port was taken.
pub(crate) fn launch_on_free_port<T>(
    attempts: usize,
    what: &str,
    mut launch: impl FnMut(u16) -> Result<T, LaunchError>,
) -> io::Result<(u16, T)> {
    let mut last = None;
    for _ in 0..attempts {
        let port = try_free_port()?;
        match launch(port) {
            Ok(started) => return Ok((port, started)),
            Err(LaunchError::PortTaken(e)) => last = Some(e),
            Err(LaunchError::Fatal(e)) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other(format!("{what} did not start"))))
}

/// Runs `launch` on `port` again (a restart), retrying for up to `patience` while the port is
/// still taken: the old socket may linger briefly, or another process may have grabbed the port
/// in between, which is then reported, not retried elsewhere.
pub(crate) fn relaunch_on_port<T>(
    port: u16,
    patience: Duration,
    mut launch: impl FnMut(u16) -> Result<T, LaunchError>,
) -> io::Result<T> {
    let deadline = Instant::now() + patience;
    loop {
        match launch(port) {
            Ok(started) => return Ok(started),
            Err(LaunchError::PortTaken(e)) if Instant::now() >= deadline => return Err(e),
            Err(LaunchError::PortTaken(_)) => thread::sleep(Duration::from_millis(100)),
            Err(LaunchError::Fatal(e)) => return Err(e),
        }
    }
}

/// Opens `log` for appending, twice: a server's standard output and its standard error.
pub(crate) fn log_outputs(log: &Path) -> io::Result<(fs::File, fs::File)> {
    let out = fs::OpenOptions::new().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    Ok((out, err))
}

/// A server just spawned, as [`Starting::wait`] waits for it to serve.
pub(crate) struct Starting<'a> {
    /// Names the server in errors (`redis-server`, `postgres`, ...).
    pub what: &'a str,
    /// The port it is to serve on.
    pub port: u16,
    /// Its log: quoted in errors, and read for a port that was taken.
    pub log: &'a Path,
    /// What it does once ready, for the error when it does not in time (`answer PING`).
    pub ready_means: &'a str,
    /// How long it may take.
    pub timeout: Duration,
    /// How often to ask again whether it is ready.
    pub poll: Duration,
}

impl Starting<'_> {
    /// Waits until `ready` says `child` serves. A child that exits first is an error quoting its
    /// log ([`LaunchError::PortTaken`] when the log says so); one not ready in time is killed.
    pub(crate) fn wait(
        &self,
        mut child: Child,
        mut ready: impl FnMut() -> bool,
    ) -> Result<Child, LaunchError> {
        let Starting {
            what, port, log, ..
        } = *self;
        let deadline = Instant::now() + self.timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    let e = io::Error::other(format!(
                        "{what} on port {port} exited during startup ({status}); log {}:\n{}",
                        log.display(),
                        tail(log, 20)
                    ));
                    return Err(if log_says_port_taken(log) {
                        LaunchError::PortTaken(e)
                    } else {
                        LaunchError::Fatal(e)
                    });
                }
                Ok(None) => {}
                Err(e) => return Err(LaunchError::Fatal(e)),
            }
            if ready() {
                return Ok(child);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LaunchError::Fatal(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{what} on port {port} did not {} within {:?}; log {}:\n{}",
                        self.ready_means,
                        self.timeout,
                        log.display(),
                        tail(log, 20)
                    ),
                )));
            }
            thread::sleep(self.poll);
        }
    }
}

/// Whether a server's log says it died because its port was taken, the one failure a new port fixes.
pub(crate) fn log_says_port_taken(path: &Path) -> bool {
    let t = tail(path, 40).to_ascii_lowercase();
    t.contains("address already in use")
        || t.contains("cannot bind")
        || t.contains("could not bind")
}

/// A port on 127.0.0.1 that was free a moment ago, or the error that prevented finding one.
///
/// Ports already handed out by this process are skipped, so parallel tests in one binary do not
/// receive the same port twice; other processes can still race for it, which is why the starters
/// retry with a fresh port when a server fails to bind.
pub fn try_free_port() -> io::Result<u16> {
    static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let handed = HANDED_OUT.get_or_init(|| Mutex::new(HashSet::new()));
    for _ in 0..100 {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        drop(listener);
        let mut set = handed.lock().unwrap_or_else(|p| p.into_inner());
        if set.insert(port) {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        "no unused loopback port after 100 tries",
    ))
}

/// A port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close).
///
/// # Panics
///
/// When the loopback interface cannot be bound at all; use [`try_free_port`] to get the error instead.
pub fn free_port() -> u16 {
    try_free_port().unwrap_or_else(|e| panic!("cannot find a free port on 127.0.0.1: {e}"))
}

/// Finds `name` in a directory of `PATH`.
pub(crate) fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Finds a program on `PATH` or explains which package provides it.
pub(crate) fn require(name: &str, package: &str) -> io::Result<std::path::PathBuf> {
    which(name).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("`{name}` not found on PATH; install it (Debian/Ubuntu: apt-get install {package}, or run scripts/test.sh as root)"),
        )
    })
}

/// A fresh temporary directory named `ringfence-testkit-KIND-PID-XXXXXX`, under `/tmp` when
/// `world_reachable` (a server running as another user must be able to enter its parent).
///
/// The first call in a process also removes such directories left by test processes that no
/// longer run: servers kept in a `static` are killed at exit, but their directories stay.
pub(crate) fn temp_dir(kind: &str, world_reachable: bool) -> io::Result<tempfile::TempDir> {
    let base = if world_reachable {
        std::path::PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    };
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| {
        sweep_stale(&base);
        if base != Path::new("/tmp") {
            sweep_stale(Path::new("/tmp"));
        }
    });
    tempfile::Builder::new()
        .prefix(&format!("ringfence-testkit-{kind}-{}-", std::process::id()))
        .tempdir_in(base)
}

fn sweep_stale(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    let me = std::process::id();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix("ringfence-testkit-"))
        else {
            continue;
        };
        // KIND-PID-RANDOM
        let mut parts = rest.splitn(3, '-');
        let (Some(_kind), Some(pid), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid != me && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Runs `cmd` with stdin closed and returns its stdout without the final newline; a run that
/// exits non-zero is an `Err` naming `what` and quoting its stderr.
pub(crate) fn output_text(cmd: &mut Command, what: &str) -> io::Result<String> {
    let out = cmd.stdin(std::process::Stdio::null()).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    if s.ends_with('\n') {
        s.pop();
    }
    Ok(s)
}

/// Whether the process in `child`, if any, is still alive.
pub(crate) fn is_alive(child: Option<&mut Child>) -> bool {
    child.is_some_and(|child| matches!(child.try_wait(), Ok(None)))
}
