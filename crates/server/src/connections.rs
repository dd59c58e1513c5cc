//! Accepting and serving connections: timeouts, a cap on open connections, and the drain on
//! shutdown.
//!
//! Our own accept loop rather than `axum::serve`, which has neither a header-read timeout nor a
//! connection cap: a few hundred clients trickling header bytes held a file descriptor each
//! until the process ran out, and then the stores' own connections failed (finding 2).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use futures_util::{Stream, StreamExt};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::state::Readiness;

/// How connections are treated. [`Default`] gives the documented defaults of `ringfence serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// A request's head must arrive in full within this, counted from when the server starts
    /// waiting for it: on a kept-alive connection from the end of the previous response, so this
    /// also ends idle keep-alive connections (default 10 s).
    pub header_read_timeout: Duration,
    /// A connection on which no byte moves either way for this long is closed: a client that
    /// stalls in the middle of a body, or stops reading the response (default 60 s, above any
    /// handler's own limits).
    pub idle_connection_timeout: Duration,
    /// Most connections open at once (default 10,000); beyond it new ones wait in the kernel's
    /// listen backlog until one closes. Keep it below the open-files limit, so the stores' own
    /// connections always find a descriptor.
    pub max_connections: usize,
    /// After the first stop signal, how long the server keeps accepting and serving with
    /// readiness at `503`, so a balancer's health check takes the node out before it stops
    /// accepting (default 3 s). A second signal cuts it short.
    pub drain_delay: Duration,
    /// Once it stopped accepting, how long it waits for requests in flight before closing what
    /// is left (default 30 s).
    pub stop_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_connection_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            drain_delay: Duration::from_secs(3),
            stop_grace: Duration::from_secs(30),
        }
    }
}

/// At most one log line per this interval for each repeating connection problem.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// Pause after an accept failure for lack of descriptors, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `app` on the main listener (and `metrics_app` on the metrics listener, if any) until
/// `stops` yields (or ends), then drains: readiness turns `503` at once, the listeners keep
/// accepting for [`ServeOptions::drain_delay`] (cut short by a second item of `stops`), then
/// close; requests in flight finish and idle keep-alive connections are closed.
pub(crate) async fn run(
    main: (TcpListener, Router),
    metrics: Option<(TcpListener, Router)>,
    readiness: Readiness,
    options: ServeOptions,
    mut stops: impl Stream<Item = ()> + Send + Unpin,
) -> io::Result<()> {
    let (stop_accepting, accepting) = watch::channel(false);
    let options = Arc::new(options);
    let mut loops = vec![tokio::spawn(accept_loop(
        main.0,
        main.1,
        Arc::clone(&options),
        accepting.clone(),
    ))];
    if let Some((listener, app)) = metrics {
        loops.push(tokio::spawn(accept_loop(
            listener,
            app,
            Arc::clone(&options),
            accepting,
        )));
    }

    let _ = stops.next().await;
    readiness.start_draining();
    if options.drain_delay.is_zero() {
        tracing::info!("draining: readiness is 503; no drain delay");
    } else {
        tracing::info!(
            delay = ?options.drain_delay,
            "draining: readiness is 503; still serving for the drain delay so the balancer takes this node out (a second signal skips it)"
        );
        tokio::select! {
            () = tokio::time::sleep(options.drain_delay) => {}
            Some(()) = stops.next() => tracing::info!("second stop signal: skipping the drain delay"),
        }
    }
    let _ = stop_accepting.send(true);
    let mut open = Vec::with_capacity(loops.len());
    for accept in loops {
        open.push(accept.await.map_err(io::Error::other)?);
    }
    tracing::info!("stopped accepting; finishing requests in flight and closing idle connections");
    let finished = futures_util::future::join_all(open.into_iter().map(GracefulShutdown::shutdown));
    if tokio::time::timeout(options.stop_grace, finished)
        .await
        .is_err()
    {
        tracing::warn!(grace = ?options.stop_grace, "connections still busy after the stop grace; closing them");
    }
    Ok(())
}

/// Accepts until `accepting` turns true; returns the tracker of the connections still open.
async fn accept_loop(
    listener: TcpListener,
    app: Router,
    options: Arc<ServeOptions>,
    mut accepting: watch::Receiver<bool>,
) -> GracefulShutdown {
    let graceful = GracefulShutdown::new();
    // Clamped: a library user's 0 would never accept, and more than the semaphore holds panics.
    let cap = options.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(cap));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true);
    let mut last_cap_log: Option<Instant> = None;
    let mut last_accept_log: Option<Instant> = None;
    loop {
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if due(&mut last_cap_log) {
                    tracing::warn!(
                        max_connections = cap,
                        "connection limit reached: new connections wait in the listen backlog until one closes (raise --max-connections if this is real traffic)"
                    );
                }
                tokio::select! {
                    permit = Arc::clone(&permits).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    _ = accepting.wait_for(|stop| *stop) => break,
                }
            }
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = accepting.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                if is_out_of_descriptors(&error) {
                    if due(&mut last_accept_log) {
                        tracing::error!(
                            %error,
                            open = cap - permits.available_permits(),
                            "cannot accept connections: the process ran out of file descriptors; lower --max-connections or raise the open-files limit"
                        );
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                } else {
                    // A client that gave up before we accepted (ECONNABORTED and the like).
                    tracing::debug!(%error, "accept failed");
                }
                continue;
            }
        };
        serve_connection(stream, peer, &app, &builder, &graceful, &options, permit);
    }
    graceful
}

/// Whether `*last` is at least [`LOG_EVERY`] ago (or never); if so, it becomes now.
fn due(last: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    if last.is_some_and(|at| now.duration_since(at) < LOG_EVERY) {
        return false;
    }
    *last = Some(now);
    true
}

fn is_out_of_descriptors(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: &Router,
    builder: &hyper::server::conn::http1::Builder,
    graceful: &GracefulShutdown,
    options: &ServeOptions,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: Arc::clone(&activity),
    });
    let app = app.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request.map(axum::body::Body::new))
    });
    let connection = graceful.watch(builder.serve_connection(io, service));
    let idle_limit = options.idle_connection_timeout;
    tokio::spawn(async move {
        // Held for the connection's life: its slot under the cap.
        let _permit = permit;
        tokio::select! {
            result = connection => {
                if let Err(error) = result {
                    // Header timeouts, resets, malformed requests: the client's problem.
                    tracing::debug!(%error, %peer, "connection ended with an error");
                }
            }
            () = activity.idle_for(idle_limit) => {
                tracing::debug!(%peer, "closing a connection idle for the idle connection timeout");
            }
        }
    });
}

/// When a byte last moved on a connection, in milliseconds since `start`.
struct Activity {
    start: Instant,
    last: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }

    /// Resolves once nothing moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last.load(Ordering::Relaxed));
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A stream that records in [`Activity`] every read or write that moved bytes.
struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
