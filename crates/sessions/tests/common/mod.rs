//! What the event tests read: the counters and log lines the sessions crate emits while a test
//! runs, recorded on the test's own thread (a current-thread runtime keeps every task there), so
//! tests running at the same time in other threads never show up.

use std::io::Write;
use std::sync::{Arc, Mutex};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use ringfence_sessions::EVENTS_METRIC;

/// Records metrics and `info` log lines of this thread until dropped.
pub struct Captured {
    handle: PrometheusHandle,
    logs: Arc<Mutex<Vec<u8>>>,
    _metrics: metrics::LocalRecorderGuard<'static>,
    _logs: tracing::subscriber::DefaultGuard,
}

impl Captured {
    /// Starts recording.
    pub fn start() -> Self {
        // Leaked: the guard needs a recorder that outlives it; one small recorder per test.
        let recorder = Box::leak(Box::new(PrometheusBuilder::new().build_recorder()));
        let handle = recorder.handle();
        let metrics = metrics::set_default_local_recorder(recorder);
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        Self {
            handle,
            logs,
            _metrics: metrics,
            _logs: tracing::subscriber::set_default(subscriber),
        }
    }

    /// The value of `ringfence_session_events_total{event="…"}` (0 when never incremented).
    pub fn events(&self, event: &str) -> u64 {
        let wanted = format!("{EVENTS_METRIC}{{event=\"{event}\"}} ");
        self.handle
            .render()
            .lines()
            .find_map(|line| line.strip_prefix(&wanted))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Every log line so far.
    pub fn log_lines(&self) -> Vec<String> {
        let bytes = self.logs.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The log lines of `event` that name `needle` (a session id, say).
    pub fn event_lines(&self, event: &str, needle: &str) -> Vec<String> {
        let tag = format!("event=\"{event}\"");
        self.log_lines()
            .into_iter()
            .filter(|line| line.contains(&tag) && line.contains(needle))
            .collect()
    }
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut logs) = self.0.lock() {
            logs.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
