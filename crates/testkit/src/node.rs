//! A `ringfence` node process, ready once it printed the address it listens on.

use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::process;

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const READY_MARKER: &str = "listening on http://";
/// Captured output beyond this is trimmed from the front, so load tests cannot exhaust memory.
const MAX_OUTPUT: usize = 8 << 20;

/// A running `ringfence` binary (or anything that prints `listening on http://ADDR`).
///
/// Its stdout and stderr are captured (see [`NodeProcess::output`]). Dropping the handle
/// SIGKILLs the process; use [`NodeProcess::terminate`] and [`NodeProcess::wait_exit`] to test a
/// graceful shutdown.
#[derive(Debug)]
pub struct NodeProcess {
    child: Child,
    addr: SocketAddr,
    output: Arc<Mutex<String>>,
}

impl NodeProcess {
    /// Starts `binary` with `args` and extra environment `envs` (`NO_COLOR=1` is set unless
    /// `envs` says otherwise) and waits up to 30 s for a line on stdout or stderr containing
    /// `listening on http://ADDR`. On timeout or early exit the error quotes the captured output.
    pub fn start(
        binary: &Path,
        args: &[String],
        envs: &[(String, String)],
    ) -> io::Result<NodeProcess> {
        let mut cmd = Command::new(binary);
        cmd.args(args)
            .env("NO_COLOR", "1")
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = process::spawn(cmd).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot start {}: {e}", binary.display()))
        })?;
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            capture(stdout, Arc::clone(&output), tx.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            capture(stderr, Arc::clone(&output), tx.clone());
        }
        drop(tx);

        let failure = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(addr) => {
                return Ok(NodeProcess {
                    child,
                    addr,
                    output,
                })
            }
            // Both streams closed: the process is gone (or closed them) without the line.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = process::wait_timeout(&mut child, Duration::from_secs(5))?;
                format!(
                    "exited ({}) before printing `{READY_MARKER}ADDR`",
                    status.map_or_else(|| "still running".into(), |s| s.to_string())
                )
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                format!("did not print `{READY_MARKER}ADDR` within {READY_TIMEOUT:?}")
            }
        };
        let _ = child.kill();
        let _ = child.wait();
        let captured = lock(&output).clone();
        Err(io::Error::other(format!(
            "{} {}; its output:\n{}",
            binary.display(),
            failure,
            tail_chars(&captured, 8000)
        )))
    }

    /// The address the node reported.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote to stdout and stderr so far (interleaved by line).
    pub fn output(&self) -> String {
        lock(&self.output).clone()
    }

    /// Sends SIGTERM (graceful shutdown); does not wait.
    pub fn terminate(&mut self) {
        let _ = process::signal(&mut self.child, libc::SIGTERM);
    }

    /// Sends SIGINT; does not wait.
    pub fn interrupt(&mut self) {
        let _ = process::signal(&mut self.child, libc::SIGINT);
    }

    /// Sends SIGKILL (a crash); does not wait.
    pub fn kill(&mut self) {
        let _ = process::signal(&mut self.child, libc::SIGKILL);
    }

    /// Waits up to `timeout` for the process to exit; `Ok(None)` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        process::wait_timeout(&mut self.child, timeout)
    }

    /// Whether the process is alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lock(output: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    // A capture thread cannot panic while holding the lock, but never let poison hide output.
    output.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads `stream` line by line into `output` and reports the first ready line's address.
fn capture(
    stream: impl Read + Send + 'static,
    output: Arc<Mutex<String>>,
    ready: mpsc::Sender<SocketAddr>,
) {
    let spawned = thread::Builder::new()
        .name("ringfence-testkit-node-output".into())
        .spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            let mut ready = Some(ready);
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let line = strip_ansi(&String::from_utf8_lossy(&buf));
                if let Some(addr) = ready.as_ref().and_then(|_| ready_addr(&line)) {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(addr);
                    }
                }
                let mut out = lock(&output);
                out.push_str(&line);
                if !line.ends_with('\n') {
                    out.push('\n');
                }
                if out.len() > MAX_OUTPUT {
                    let mut cut = out.len() - MAX_OUTPUT / 2;
                    while !out.is_char_boundary(cut) {
                        cut += 1;
                    }
                    out.drain(..cut);
                }
            }
        });
    // Without the thread the pipe would fill up and block the node; nothing sensible to do
    // but let start() time out with whatever the other stream shows.
    let _ = spawned;
}

/// The address in a line containing `listening on http://ADDR`.
fn ready_addr(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(READY_MARKER)? + READY_MARKER.len()..];
    let token: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | ',' | ')' | '/'))
        .collect();
    token.parse().ok()
}

/// Removes ANSI escape sequences (colored log output).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // CSI: parameters until a final byte in @..~
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

fn tail_chars(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut cut = s.len() - max;
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    &s[cut..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_in_plain_and_decorated_lines() {
        let want: SocketAddr = "127.0.0.1:8081".parse().unwrap();
        assert_eq!(
            ready_addr("ringfence listening on http://127.0.0.1:8081\n"),
            Some(want)
        );
        assert_eq!(
            ready_addr("INFO node=a listening on http://127.0.0.1:8081/ ready"),
            Some(want)
        );
        assert_eq!(
            ready_addr(&strip_ansi(
                "\u{1b}[32m INFO\u{1b}[0m listening on http://127.0.0.1:8081"
            )),
            Some(want)
        );
        assert_eq!(
            ready_addr("listening on http://[::1]:9000"),
            Some("[::1]:9000".parse().unwrap())
        );
        assert_eq!(ready_addr("listening on http://nonsense"), None);
        assert_eq!(ready_addr("starting"), None);
    }
}
