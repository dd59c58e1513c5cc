//! The queue between a request and the relay: `send` returns at once, a background task delivers
//! with retries and exponential backoff.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::compose::Composer;
use crate::letter::Letter;
use crate::transport::{Email, FailureReason, Transport};
use crate::MailError;

/// How the queue retries and how much it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failed attempt; it doubles after each further failure.
    pub first_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// How long after it was handed in a mail is still tried; then it is dropped and logged.
    pub retry_window: Duration,
    /// The most undelivered mails (waiting or retrying) the queue holds; a mail handed in beyond
    /// that is dropped, logged and counted.
    pub capacity: usize,
    /// The longest one delivery attempt may take.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    /// 1 s doubling to 5 min, for 24 h, up to 10 000 mails, 60 s per attempt.
    fn default() -> Self {
        RetryPolicy {
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            retry_window: Duration::from_secs(24 * 3600),
            capacity: 10_000,
            attempt_timeout: Duration::from_secs(60),
        }
    }
}

/// What the queue has done since it started (the same numbers as the metrics, per mailer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MailStats {
    /// Mails delivered.
    pub sent: u64,
    /// Failed delivery attempts (a mail retried three times counts three), and mails refused
    /// because the queue was full.
    pub failed_attempts: u64,
    /// Mails given up: refused for good by the relay, out of retry window, queue full, or still
    /// undelivered at shutdown.
    pub dropped: u64,
    /// Mails handed in and not yet delivered or dropped.
    pub queued: usize,
}

/// The handle the app sends mail through; cheap to clone, all clones share one queue.
///
/// ```no_run
/// # async fn demo() -> Result<(), ringfence_mail::MailError> {
/// use std::sync::Arc;
/// use ringfence_mail::{ActionToken, Composer, Letter, Mailer, Outbox, PublicUrl, RetryPolicy};
///
/// let composer = Composer::new("ringfence", PublicUrl::parse("https://auth.example.com")?, None)?;
/// let outbox = Outbox::in_data_dir("ringfence-data".as_ref())?;
/// let mailer = Mailer::start(composer, Arc::new(outbox), RetryPolicy::default())?;
/// mailer.send("ada@example.com", Letter::PasswordChanged)?;
/// mailer.shutdown(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Mailer {
    shared: Arc<Shared>,
}

struct Shared {
    composer: Composer,
    transport_description: String,
    jobs: mpsc::UnboundedSender<Job>,
    stopped: AtomicBool,
    worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
    counters: Arc<Counters>,
}

/// What the worker shares with the handles. The worker holds this and not [`Shared`], so that
/// dropping the last [`Mailer`] closes the job channel and ends the worker.
struct Counters {
    policy: RetryPolicy,
    /// Undelivered mails; `flush` watches it.
    queued: watch::Sender<usize>,
    sent: AtomicU64,
    failed_attempts: AtomicU64,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("transport", &self.shared.transport_description)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

struct Job {
    email: Email,
    attempts: u32,
    handed_in: Instant,
    next_attempt: Instant,
    backoff: Duration,
}

impl Mailer {
    /// Starts the background task on the current Tokio runtime and logs where mail goes.
    /// A zero `first_backoff` or `capacity` in `policy` counts as 1 ms or 1 mail.
    pub fn start(
        composer: Composer,
        transport: Arc<dyn Transport>,
        policy: RetryPolicy,
    ) -> Result<Mailer, MailError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| MailError::NoRuntime)?;
        // A zero backoff would retry in a tight loop, a zero capacity refuse every mail.
        let mut policy = policy;
        policy.first_backoff = policy.first_backoff.max(Duration::from_millis(1));
        policy.max_backoff = policy.max_backoff.max(policy.first_backoff);
        policy.capacity = policy.capacity.max(1);
        let (jobs, rx) = mpsc::unbounded_channel();
        let description = transport.describe();
        let counters = Arc::new(Counters {
            policy,
            queued: watch::Sender::new(0),
            sent: AtomicU64::new(0),
            failed_attempts: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        let shared = Arc::new(Shared {
            composer,
            transport_description: description.clone(),
            jobs,
            stopped: AtomicBool::new(false),
            worker: Mutex::new(None),
            counters: Arc::clone(&counters),
        });
        let handle = runtime.spawn(worker(counters, transport, rx));
        *shared.worker.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        tracing::info!(transport = %description, "mail delivery ready");
        // Registered at zero, so a dashboard or alert sees the series before the first mail.
        metrics::gauge!("ringfence_mail_queue").set(0.0);
        metrics::counter!("ringfence_mail_sent_total").increment(0);
        metrics::counter!("ringfence_mail_dropped_total").increment(0);
        Ok(Mailer { shared })
    }

    /// Composes `letter` for `to` and queues it; returns at once, whatever the relay does.
    ///
    /// An `Err` means the mail was not queued: the address or letter is invalid, the queue is
    /// full ([`MailError::QueueFull`], already logged and counted) or the mailer was shut down.
    /// None of these should fail the user's action: log it if you must, and answer as usual.
    ///
    /// Composing takes some microseconds. Where the answer must not tell whether an account
    /// exists (forgot password), look the account up and send from a spawned task, off the
    /// request path, so known and unknown addresses take the same time.
    pub fn send(&self, to: &str, letter: Letter) -> Result<(), MailError> {
        let s = &self.shared;
        if s.stopped.load(Ordering::Acquire) {
            return Err(MailError::Stopped);
        }
        let email = s.composer.compose(to, &letter)?;
        let c = &*s.counters;
        let mut admitted = false;
        c.queued.send_modify(|n| {
            if *n < c.policy.capacity {
                *n += 1;
                admitted = true;
            }
        });
        if !admitted {
            c.failed_attempts.fetch_add(1, Ordering::Relaxed);
            c.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("ringfence_mail_failures_total", "reason" => FailureReason::QueueFull.as_str())
                .increment(1);
            metrics::counter!("ringfence_mail_dropped_total").increment(1);
            tracing::error!(
                kind = email.kind(),
                message_id = email.message_id(),
                capacity = c.policy.capacity,
                "mail queue full: the mail was dropped (is the SMTP relay down?)"
            );
            return Err(MailError::QueueFull(c.policy.capacity));
        }
        set_gauge(&c.queued);
        let now = Instant::now();
        let job = Job {
            email,
            attempts: 0,
            handed_in: now,
            next_attempt: now,
            backoff: c.policy.first_backoff,
        };
        if s.jobs.send(job).is_err() {
            // The worker is gone (shutdown raced with this send).
            done(c);
            return Err(MailError::Stopped);
        }
        Ok(())
    }

    /// The composer (app name, public URL, sender): for building a link without sending it
    /// (`users reset-password --print-link`).
    pub fn composer(&self) -> &Composer {
        &self.shared.composer
    }

    /// Counters since start, and the current queue length.
    pub fn stats(&self) -> MailStats {
        let s = &*self.shared.counters;
        MailStats {
            sent: s.sent.load(Ordering::Relaxed),
            failed_attempts: s.failed_attempts.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            queued: *s.queued.borrow(),
        }
    }

    /// Waits until every queued mail is delivered or dropped, for at most `timeout`; true when the
    /// queue is empty. Mails waiting for a retry are waited for, not hurried.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let mut rx = self.shared.counters.queued.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Graceful stop: takes no more mail, waits up to `timeout` for the queue to empty, then
    /// stops the background task. Returns how many mails were left undelivered (logged as an
    /// error, counted as dropped).
    pub async fn shutdown(&self, timeout: Duration) -> usize {
        let s = &self.shared;
        s.stopped.store(true, Ordering::Release);
        self.flush(timeout).await;
        let handle = s.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            handle.abort();
            let _ = handle.await;
        }
        let c = &*s.counters;
        let left = *c.queued.borrow();
        if left > 0 {
            c.dropped.fetch_add(left as u64, Ordering::Relaxed);
            metrics::counter!("ringfence_mail_dropped_total").increment(left as u64);
            tracing::error!(
                undelivered = left,
                "mail delivery stopped with mails still queued"
            );
            c.queued.send_replace(0);
            set_gauge(&c.queued);
        }
        left
    }
}

fn set_gauge(queued: &watch::Sender<usize>) {
    metrics::gauge!("ringfence_mail_queue").set(*queued.borrow() as f64);
}

/// Delivers new mails at once and retries failed ones when their backoff ends. One attempt at a
/// time: mail volume is small, and one slow relay should not get a burst of parallel connections.
async fn worker(
    shared: Arc<Counters>,
    transport: Arc<dyn Transport>,
    mut rx: mpsc::UnboundedReceiver<Job>,
) {
    let mut retrying: VecDeque<Job> = VecDeque::new();
    loop {
        let next_due = retrying.iter().map(|j| j.next_attempt).min();
        let job = tokio::select! {
            received = rx.recv() => match received {
                Some(job) => job,
                None => {
                    // Every Mailer handle is gone without a shutdown.
                    if !retrying.is_empty() {
                        tracing::error!(
                            undelivered = retrying.len(),
                            "mail delivery stopped with mails still waiting for a retry"
                        );
                    }
                    return;
                }
            },
            () = sleep_until(next_due), if next_due.is_some() => {
                let now = Instant::now();
                let Some(i) = retrying.iter().position(|j| j.next_attempt <= now) else {
                    continue;
                };
                match retrying.remove(i) {
                    Some(job) => job,
                    None => continue,
                }
            }
        };
        match attempt(&shared, transport.as_ref(), job).await {
            Ok(()) => {
                // The relay is back: whatever waits for a retry goes now, not after its backoff.
                let now = Instant::now();
                for j in &mut retrying {
                    j.next_attempt = now;
                }
            }
            Err(Some(job)) => retrying.push_back(job),
            Err(None) => {}
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// One delivery attempt. `Err(Some(job))`: try again later; `Err(None)`: given up.
async fn attempt(
    shared: &Counters,
    transport: &dyn Transport,
    mut job: Job,
) -> Result<(), Option<Job>> {
    let policy = &shared.policy;
    job.attempts += 1;
    let result =
        match tokio::time::timeout(policy.attempt_timeout, transport.deliver(&job.email)).await {
            Ok(r) => r,
            Err(_) => Err(crate::TransportError {
                reason: FailureReason::Timeout,
                permanent: false,
                detail: format!("no answer within {:?}", policy.attempt_timeout),
            }),
        };
    let email = &job.email;
    match result {
        Ok(()) => {
            shared.sent.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("ringfence_mail_sent_total").increment(1);
            tracing::info!(
                kind = email.kind(),
                message_id = email.message_id(),
                attempts = job.attempts,
                "mail delivered"
            );
            done(shared);
            Ok(())
        }
        Err(e) => {
            shared.failed_attempts.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("ringfence_mail_failures_total", "reason" => e.reason.as_str())
                .increment(1);
            let now = Instant::now();
            let retry_at = now + job.backoff;
            let window_ends = job.handed_in + policy.retry_window;
            if e.permanent || retry_at > window_ends {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("ringfence_mail_dropped_total").increment(1);
                tracing::error!(
                    kind = email.kind(),
                    message_id = email.message_id(),
                    attempts = job.attempts,
                    reason = e.reason.as_str(),
                    error = %e.detail,
                    "mail delivery failed; giving up on this mail{}",
                    if e.permanent { " (refused for good)" } else { " (retry window over)" }
                );
                done(shared);
                return Err(None);
            }
            tracing::warn!(
                kind = email.kind(),
                message_id = email.message_id(),
                attempts = job.attempts,
                reason = e.reason.as_str(),
                error = %e.detail,
                retry_in = ?job.backoff,
                "mail delivery failed; will retry"
            );
            job.next_attempt = retry_at;
            job.backoff = (job.backoff * 2).min(policy.max_backoff);
            Err(Some(job))
        }
    }
}

fn done(shared: &Counters) {
    shared.queued.send_modify(|n| *n = n.saturating_sub(1));
    set_gauge(&shared.queued);
}
