//! A real SMTP server: Debian's `aiosmtpd` (package `python3-aiosmtpd`) with its `Mailbox`
//! handler, which writes every message it accepts into a maildir the test reads.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use tempfile::TempDir;

use crate::process::{self, LaunchError, POLL};
use crate::tls::TestPki;

/// Debian's interpreter: the one `python3-aiosmtpd` installs into (another `python3` may come
/// first on `PATH`).
const PYTHON: &str = "/usr/bin/python3";
const READY_TIMEOUT: Duration = Duration::from_secs(15);
const PORT_ATTEMPTS: usize = 5;

/// How the server protects connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    /// STARTTLS offered and required before MAIL FROM.
    StartTls,
    /// TLS from the first byte (SMTPS).
    Implicit,
    /// STARTTLS, then AUTH (PLAIN or LOGIN) with the server's one account, both required.
    StartTlsAuth,
}

/// The one account of an authenticating server; `Debug` leaves the password out.
#[derive(Clone)]
struct Account {
    user: String,
    password: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// aiosmtpd's command line cannot take an authenticator: this starts its SMTP class directly,
/// with the same Mailbox handler, STARTTLS and AUTH required. The account comes in through the
/// environment, not argv (which `ps` shows).
const AUTH_SERVER: &str = r#"
import asyncio, os, ssl, sys
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
port, maildir, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
user = os.environ["TESTKIT_SMTP_USER"].encode()
password = os.environ["TESTKIT_SMTP_PASSWORD"].encode()
def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == user and auth_data.password == password
    print("AUTH", mechanism, "accepted" if ok else "refused", flush=True)
    return AuthResult(success=ok, handled=False)
tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
tls.load_cert_chain(cert, key)
handler = Mailbox(maildir)
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
factory = lambda: SMTP(handler, tls_context=tls, require_starttls=True, authenticator=authenticator, auth_required=True, auth_require_tls=True)
loop.run_until_complete(loop.create_server(factory, "127.0.0.1", port))
loop.run_forever()
"#;

/// An `aiosmtpd` process on `127.0.0.1` that accepts every message and stores it in a maildir.
///
/// Dropping it kills the server and removes its directory (the maildir too). It can be stopped
/// and started again on the same port, to test a relay that goes away and comes back.
#[derive(Debug)]
pub struct SmtpServer {
    child: Option<Child>,
    port: u16,
    mode: Mode,
    account: Option<Account>,
    log: PathBuf,
    maildir: PathBuf,
    // Declared last: dropped after the process is gone.
    dir: TempDir,
}

impl SmtpServer {
    /// A plain-text server (`smtp://127.0.0.1:PORT`), ready to accept when this returns.
    pub fn start() -> io::Result<SmtpServer> {
        Self::start_inner(Mode::Plain, None, None)
    }

    /// A server that requires STARTTLS (`smtp://127.0.0.1:PORT?tls=required`) with the
    /// certificate of `pki` (for `127.0.0.1` and `localhost`; clients must trust its CA).
    pub fn start_starttls(pki: &TestPki) -> io::Result<SmtpServer> {
        Self::start_inner(Mode::StartTls, Some(pki), None)
    }

    /// A server speaking TLS from the first byte (`smtps://127.0.0.1:PORT`) with the certificate
    /// of `pki`.
    pub fn start_smtps(pki: &TestPki) -> io::Result<SmtpServer> {
        Self::start_inner(Mode::Implicit, Some(pki), None)
    }

    /// A server that requires STARTTLS and then AUTH (PLAIN or LOGIN) as `user` with `password`
    /// before it takes a message; [`SmtpServer::url`] carries the credentials, percent-encoded.
    /// Each AUTH attempt is a line `AUTH <mechanism> accepted|refused` in the log.
    pub fn start_with_auth(pki: &TestPki, user: &str, password: &str) -> io::Result<SmtpServer> {
        let account = Account {
            user: user.to_owned(),
            password: password.to_owned(),
        };
        Self::start_inner(Mode::StartTlsAuth, Some(pki), Some(account))
    }

    fn start_inner(
        mode: Mode,
        pki: Option<&TestPki>,
        account: Option<Account>,
    ) -> io::Result<SmtpServer> {
        if !Path::new(PYTHON).is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{PYTHON} not found; install python3-aiosmtpd (Debian/Ubuntu: apt-get install python3-aiosmtpd, or run scripts/test.sh as root)"),
            ));
        }
        let dir = process::temp_dir("smtp", false)?;
        let log = dir.path().join("aiosmtpd.log");
        let maildir = dir.path().join("maildir");
        if let Some(pki) = pki {
            std::fs::copy(pki.cert_file(), dir.path().join("tls-server.pem"))?;
            std::fs::copy(pki.key_file(), dir.path().join("tls-server.key"))?;
        }
        let (port, child) = process::launch_on_free_port(PORT_ATTEMPTS, "aiosmtpd", |port| {
            launch(dir.path(), &log, &maildir, port, mode, account.as_ref())
        })?;
        Ok(SmtpServer {
            child: Some(child),
            port,
            mode,
            account,
            log,
            maildir,
            dir,
        })
    }

    /// The URL for ringfence's `--smtp-url`: `smtp://127.0.0.1:PORT`,
    /// `smtp://127.0.0.1:PORT?tls=required` (STARTTLS), `smtps://127.0.0.1:PORT`, or
    /// `smtp://USER:PASSWORD@127.0.0.1:PORT?tls=required` for [`SmtpServer::start_with_auth`].
    pub fn url(&self) -> String {
        let userinfo = self.account.as_ref().map_or(String::new(), |a| {
            format!(
                "{}:{}@",
                percent_encode(&a.user),
                percent_encode(&a.password)
            )
        });
        match self.mode {
            Mode::Plain => format!("smtp://127.0.0.1:{}", self.port),
            Mode::StartTls | Mode::StartTlsAuth => {
                format!("smtp://{userinfo}127.0.0.1:{}?tls=required", self.port)
            }
            Mode::Implicit => format!("smtps://127.0.0.1:{}", self.port),
        }
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The server's directory (log, maildir, certificate copies).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The maildir messages are delivered to (`new/` holds them).
    pub fn maildir(&self) -> &Path {
        &self.maildir
    }

    /// The server's log (stdout and stderr of every start).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Whether the server process is alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops the server (SIGTERM, then SIGKILL after 5 s). Delivered messages stay.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::stop_child(&mut child, libc::SIGTERM, Duration::from_secs(5));
        }
    }

    /// Stops the server if it runs and starts it again on the same port and maildir, waiting
    /// until it accepts connections.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        let child = process::relaunch_on_port(self.port, Duration::from_secs(5), |port| {
            launch(
                self.dir.path(),
                &self.log,
                &self.maildir,
                port,
                self.mode,
                self.account.as_ref(),
            )
        })?;
        self.child = Some(child);
        Ok(())
    }

    /// Every message delivered so far, oldest first (by file modification time, then name).
    pub fn messages(&self) -> io::Result<Vec<ReceivedMail>> {
        let mut files = Vec::new();
        for sub in ["new", "cur"] {
            let d = self.maildir.join(sub);
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for entry in entries {
                let entry = entry?;
                let modified = entry.metadata()?.modified()?;
                files.push((modified, entry.path()));
            }
        }
        files.sort();
        files
            .into_iter()
            .map(|(_, path)| ReceivedMail::parse(&std::fs::read(&path)?))
            .collect()
    }

    /// Waits up to `timeout` until at least `count` messages were delivered; returns them all.
    pub fn wait_for_messages(
        &self,
        count: usize,
        timeout: Duration,
    ) -> io::Result<Vec<ReceivedMail>> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.messages()?;
            if got.len() >= count {
                return Ok(got);
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} of {count} messages arrived at the SMTP server within {timeout:?}; log {}:\n{}",
                        got.len(),
                        self.log.display(),
                        process::tail(&self.log, 20)
                    ),
                ));
            }
            thread::sleep(POLL);
        }
    }
}

impl Drop for SmtpServer {
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
    maildir: &Path,
    port: u16,
    mode: Mode,
    account: Option<&Account>,
) -> Result<Child, LaunchError> {
    let fatal = LaunchError::Fatal;
    let (out, err) = process::log_outputs(log).map_err(fatal)?;
    let mut cmd = Command::new(PYTHON);
    cmd.current_dir(dir);
    if let (Mode::StartTlsAuth, Some(account)) = (mode, account) {
        cmd.args(["-c", AUTH_SERVER, &port.to_string()])
            .arg(maildir)
            .args(["tls-server.pem", "tls-server.key"])
            .env("TESTKIT_SMTP_USER", &account.user)
            .env("TESTKIT_SMTP_PASSWORD", &account.password);
    } else {
        cmd.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")]);
        match mode {
            Mode::Plain | Mode::StartTlsAuth => {}
            Mode::StartTls => {
                cmd.args(["--tlscert", "tls-server.pem", "--tlskey", "tls-server.key"]);
            }
            Mode::Implicit => {
                cmd.args([
                    "--smtpscert",
                    "tls-server.pem",
                    "--smtpskey",
                    "tls-server.key",
                ]);
            }
        }
        cmd.args(["-c", "aiosmtpd.handlers.Mailbox"]).arg(maildir);
    }
    cmd
        // Python buffers stderr lines anyway; unbuffered keeps the log complete at a kill.
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let child = process::spawn(cmd).map_err(fatal)?;
    let starting = process::Starting {
        what: "aiosmtpd",
        port,
        log,
        ready_means: "accept",
        timeout: READY_TIMEOUT,
        poll: POLL,
    };
    starting.wait(child, || accepts(port, mode)).map_err(|e| {
        if process::tail(log, 20).contains("No module named aiosmtpd") {
            e.with_hint("install python3-aiosmtpd (apt-get install python3-aiosmtpd)")
        } else {
            e
        }
    })
}

/// True when the port takes a connection; for plain and STARTTLS also when it greets with `220`.
fn accepts(port: u16, mode: Mode) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    if mode == Mode::Implicit {
        // The greeting comes only after a TLS handshake; a listening socket is enough.
        return true;
    }
    let _ = s.set_read_timeout(Some(Duration::from_millis(1000)));
    let mut buf = [0u8; 4];
    let mut n = 0;
    while n < 4 {
        match s.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    buf[..n].starts_with(b"220")
}

/// One message as the server stored it, with its MIME parts decoded.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The whole message as stored (line ends normalized to `\n`).
    pub raw: String,
    /// The top-level headers in order, names as written, folded lines joined.
    pub headers: Vec<(String, String)>,
    /// The leaf parts (a single-part message has one), bodies decoded from quoted-printable or
    /// base64.
    pub parts: Vec<MailPart>,
}

/// One leaf MIME part.
#[derive(Debug, Clone)]
pub struct MailPart {
    /// The part's `Content-Type` (`text/plain; charset=utf-8`), `text/plain` when absent.
    pub content_type: String,
    /// The decoded body.
    pub body: String,
}

impl ReceivedMail {
    /// Parses an RFC 5322 message (as a maildir file or an `.eml` holds it).
    pub fn parse(bytes: &[u8]) -> io::Result<ReceivedMail> {
        let raw = String::from_utf8_lossy(bytes).replace("\r\n", "\n");
        let (headers, body) = split_entity(&raw)?;
        let mut parts = Vec::new();
        collect_parts(&headers, body, &mut parts)?;
        Ok(ReceivedMail {
            raw,
            headers,
            parts,
        })
    }

    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    /// Every header named `name` (any case).
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body of the first `text/plain` part.
    pub fn text(&self) -> Option<&str> {
        self.part("text/plain")
    }

    /// The body of the first `text/html` part.
    pub fn html(&self) -> Option<&str> {
        self.part("text/html")
    }

    fn part(&self, mime: &str) -> Option<&str> {
        self.parts
            .iter()
            .find(|p| {
                p.content_type
                    .split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case(mime))
            })
            .map(|p| p.body.as_str())
    }
}

fn header_in<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Splits headers (unfolded) from the body at the first empty line.
fn split_entity(text: &str) -> io::Result<(Vec<(String, String)>, &str)> {
    let (head, body) = match text.find("\n\n") {
        Some(i) => (&text[..i], &text[i + 2..]),
        None => (text, ""),
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            match headers.last_mut() {
                Some((_, v)) => {
                    v.push(' ');
                    v.push_str(line.trim_start());
                }
                None => return Err(bad("a folded line before the first header")),
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        } else if !line.is_empty() {
            return Err(bad(&format!("not a header line: {line:?}")));
        }
    }
    Ok((headers, body))
}

fn collect_parts(
    headers: &[(String, String)],
    body: &str,
    out: &mut Vec<MailPart>,
) -> io::Result<()> {
    let content_type = header_in(headers, "Content-Type")
        .unwrap_or("text/plain")
        .to_owned();
    if content_type.to_ascii_lowercase().starts_with("multipart/") {
        let boundary = param(&content_type, "boundary")
            .ok_or_else(|| bad("a multipart without a boundary"))?;
        let delimiter = format!("--{boundary}");
        let mut current: Option<String> = None;
        for line in body.split('\n') {
            if line.trim_end() == delimiter || line.trim_end() == format!("{delimiter}--") {
                if let Some(part) = current.take() {
                    let (h, b) = split_entity(part.strip_suffix('\n').unwrap_or(&part))?;
                    collect_parts(&h, b, out)?;
                }
                if line.trim_end() == delimiter {
                    current = Some(String::new());
                } else {
                    break;
                }
            } else if let Some(part) = current.as_mut() {
                part.push_str(line);
                part.push('\n');
            }
        }
        return Ok(());
    }
    let encoding = header_in(headers, "Content-Transfer-Encoding")
        .unwrap_or("7bit")
        .to_ascii_lowercase();
    let body = match encoding.as_str() {
        "quoted-printable" => decode_qp(body),
        "base64" => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map_err(|e| bad(&format!("bad base64 body: {e}")))?;
            String::from_utf8_lossy(&bytes).into_owned()
        }
        _ => body.to_owned(),
    };
    out.push(MailPart { content_type, body });
    Ok(())
}

/// A parameter of a header value (`boundary="x"`), unquoted.
fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// Quoted-printable (RFC 2045 6.7): `=XX` bytes, `=` at a line end joins the lines.
fn decode_qp(body: &str) -> String {
    let mut out = Vec::with_capacity(body.len());
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            if bytes.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but RFC 3986's unreserved characters (for URL user info).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn bad(why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unparseable mail: {why}"),
    )
}
