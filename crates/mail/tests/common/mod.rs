//! Shared by the mail tests: the letters, a fast retry policy, and a log capture.
#![allow(dead_code)] // each test binary uses part of it

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ringfence_mail::{ActionToken, Composer, Letter, PublicUrl, RetryPolicy};

pub const PUBLIC_URL: &str = "https://auth.example.test";
pub const TOKEN: &str = "Zq8_tokenValue-0123456789abcdefghijklmnopq";

pub fn composer() -> Composer {
    Composer::new("Acme Login", PublicUrl::parse(PUBLIC_URL).unwrap(), None).unwrap()
}

pub fn token() -> ActionToken {
    ActionToken::new(TOKEN).unwrap()
}

/// Every letter the product sends, each with the link path it must carry (None: a notice).
pub fn all_letters() -> Vec<(Letter, Option<&'static str>)> {
    let day = Duration::from_secs(24 * 3600);
    vec![
        (
            Letter::VerifyEmail {
                token: token(),
                valid_for: day,
            },
            Some("/verify-email"),
        ),
        (
            Letter::ResetPassword {
                token: token(),
                valid_for: Duration::from_secs(3600),
            },
            Some("/reset-password"),
        ),
        (
            Letter::ConfirmEmailChange {
                token: token(),
                valid_for: day,
            },
            Some("/confirm-email"),
        ),
        (Letter::PasswordChanged, None),
        (Letter::PasswordReset, None),
        (
            Letter::EmailChanged {
                new_email: "ada.new@example.org".into(),
            },
            None,
        ),
        (Letter::SecondFactorAdded, None),
        (Letter::SecondFactorRemoved, None),
        (
            Letter::PasskeyAdded {
                name: "YubiKey <5C>".into(),
            },
            None,
        ),
        (
            Letter::PasskeyRemoved {
                name: "Phone".into(),
            },
            None,
        ),
        (Letter::RecoveryCodeUsed { codes_left: 7 }, None),
        (Letter::SecondFactorsResetByAdmin, None),
    ]
}

/// Short waits so the retry tests take a second, not minutes.
pub fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        first_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        retry_window: Duration::from_secs(60),
        capacity: 100,
        attempt_timeout: Duration::from_secs(10),
    }
}

/// Every `http://` or `https://` URL in `body`.
pub fn links(body: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find("http") {
        let tail = &rest[i..];
        if tail.starts_with("http://") || tail.starts_with("https://") {
            let end = tail
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '<' | '>' | '\''))
                .unwrap_or(tail.len());
            found.push(tail[..end].to_owned());
            rest = &tail[end..];
        } else {
            rest = &tail[4..];
        }
    }
    found
}

/// Everything logged by this test binary (a global subscriber at DEBUG, installed once).
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn logs() -> Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        logs
    })
    .clone()
}
