//! The relay is down when mail is sent: the sender does not wait, the failure is logged and
//! counted, and the mail arrives once the relay is back. Its own test binary, so the global
//! metrics recorder and log capture see only these tests.

mod common;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::{composer, fast_policy, logs, TOKEN};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use ringfence_mail::{ActionToken, Letter, MailError, Mailer, RetryPolicy, SmtpTransport, SmtpUrl};
use ringfence_testkit::SmtpServer;

const WAIT: Duration = Duration::from_secs(20);

fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| PrometheusBuilder::new().install_recorder().unwrap())
}

/// The value of a counter or gauge line of the exposition (`name{labels} value`), 0 if absent.
fn metric(name_and_labels: &str) -> f64 {
    metrics()
        .render()
        .lines()
        .find_map(|l| {
            l.strip_prefix(name_and_labels)?
                .strip_prefix(' ')?
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// A mailer whose relay has been started once (so its port is known) and stopped.
fn mailer_with_relay_down(policy: RetryPolicy) -> (SmtpServer, Mailer) {
    let mut server = SmtpServer::start().unwrap();
    server.stop();
    let url = SmtpUrl::parse(&server.url()).unwrap();
    let transport = SmtpTransport::new(&url, "auth.example.test").unwrap();
    let mailer = Mailer::start(composer(), Arc::new(transport), policy).unwrap();
    (server, mailer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_sent_while_the_relay_is_down_returns_at_once_is_logged_and_counted_and_arrives_when_it_is_back(
) {
    metrics();
    let logs = logs();
    let (mut server, mailer) = mailer_with_relay_down(fast_policy());
    let connect_failures_before = metric("ringfence_mail_failures_total{reason=\"connect\"}");

    let started = Instant::now();
    let letter = Letter::ResetPassword {
        token: ActionToken::new(TOKEN).unwrap(),
        valid_for: Duration::from_secs(3600),
    };
    mailer.send("down@example.org", letter).unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "send waited {:?}",
        started.elapsed()
    );

    // A few attempts fail while the relay is down.
    let deadline = Instant::now() + WAIT;
    while mailer.stats().failed_attempts < 2 {
        assert!(
            Instant::now() < deadline,
            "no failed attempt counted: {:?}",
            mailer.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mailer.stats().queued, 1);
    // (The gauge is per process, shared by the parallel tests here: only its presence is checked.)
    assert!(
        metrics().render().contains("ringfence_mail_queue "),
        "{}",
        metrics().render()
    );
    assert!(
        metric("ringfence_mail_failures_total{reason=\"connect\"}")
            >= connect_failures_before + 2.0,
        "{}",
        metrics().render()
    );
    let log = logs.text();
    assert!(log.contains("mail delivery failed; will retry"), "{log}");
    assert!(log.contains("reset_password"), "{log}");

    let sent_before = metric("ringfence_mail_sent_total");
    server.restart().unwrap();
    let got = server.wait_for_messages(1, WAIT).unwrap();
    assert_eq!(got[0].header("To"), Some("down@example.org"));
    assert!(got[0].text().unwrap().contains(TOKEN));
    assert!(mailer.flush(WAIT).await);
    let stats = mailer.stats();
    assert_eq!(
        (stats.sent, stats.dropped, stats.queued),
        (1, 0, 0),
        "{stats:?}"
    );
    assert!(metric("ringfence_mail_sent_total") >= sent_before + 1.0);

    // Neither the token nor the link ever reached the log.
    let log = logs.text();
    assert!(log.contains("mail delivered"), "{log}");
    assert!(!log.contains(TOKEN), "{log}");
    assert!(!log.contains("reset-password?token"), "{log}");
    mailer.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_still_undelivered_when_its_retry_window_ends_is_dropped_and_logged() {
    metrics();
    let logs = logs();
    let mut policy = fast_policy();
    policy.retry_window = Duration::from_millis(300);
    let (mut server, mailer) = mailer_with_relay_down(policy);
    mailer
        .send("late@example.org", Letter::PasswordReset)
        .unwrap();
    assert!(mailer.flush(WAIT).await);
    let stats = mailer.stats();
    assert_eq!(
        (stats.sent, stats.dropped, stats.queued),
        (0, 1, 0),
        "{stats:?}"
    );
    assert!(stats.failed_attempts >= 2, "{stats:?}");
    assert!(logs.text().contains("retry window over"), "{}", logs.text());

    // Back up later: the dropped mail is not sent after all.
    server.restart().unwrap();
    mailer
        .send("next@example.org", Letter::PasswordReset)
        .unwrap();
    assert!(mailer.flush(WAIT).await);
    let got = server.wait_for_messages(1, WAIT).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("To"), Some("next@example.org"));
    mailer.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_more_mail_with_a_clear_log_and_a_count() {
    metrics();
    let logs = logs();
    let mut policy = fast_policy();
    policy.capacity = 2;
    let (mut server, mailer) = mailer_with_relay_down(policy);
    let full_before = metric("ringfence_mail_failures_total{reason=\"queue_full\"}");
    mailer
        .send("a@example.org", Letter::PasswordChanged)
        .unwrap();
    mailer
        .send("b@example.org", Letter::PasswordChanged)
        .unwrap();
    let third = mailer.send("c@example.org", Letter::PasswordChanged);
    assert!(matches!(third, Err(MailError::QueueFull(2))), "{third:?}");
    assert_eq!(mailer.stats().dropped, 1);
    assert_eq!(
        metric("ringfence_mail_failures_total{reason=\"queue_full\"}"),
        full_before + 1.0
    );
    assert!(logs.text().contains("mail queue full"), "{}", logs.text());

    // Once the relay is back the two queued mails go out, and the queue takes mail again.
    server.restart().unwrap();
    assert!(mailer.flush(WAIT).await);
    mailer
        .send("d@example.org", Letter::PasswordChanged)
        .unwrap();
    assert!(mailer.flush(WAIT).await);
    let mut to: Vec<_> = server
        .wait_for_messages(3, WAIT)
        .unwrap()
        .iter()
        .map(|m| m.header("To").unwrap().to_owned())
        .collect();
    to.sort();
    assert_eq!(to, ["a@example.org", "b@example.org", "d@example.org"]);

    // After shutdown nothing more is taken.
    assert_eq!(mailer.shutdown(WAIT).await, 0);
    assert!(matches!(
        mailer.send("e@example.org", Letter::PasswordChanged),
        Err(MailError::Stopped)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_reports_mail_it_could_not_deliver() {
    let (_server, mailer) = mailer_with_relay_down(fast_policy());
    mailer
        .send("a@example.org", Letter::PasswordChanged)
        .unwrap();
    assert_eq!(mailer.shutdown(Duration::from_millis(200)).await, 1);
    let stats = mailer.stats();
    assert_eq!((stats.queued, stats.dropped), (0, 1));
}
