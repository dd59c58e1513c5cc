//! Hearing Redis tell of changes: a dedicated RESP3 connection with `CLIENT TRACKING … BCAST`.
//!
//! A [`Tracker`] keeps one connection to a single Redis server (never a cluster: tracking there
//! would have to be correct per shard) on which it sends `HELLO 3` (the client's RESP3 setting)
//! and `CLIENT TRACKING ON BCAST PREFIX p …` for the prefixes its [`TrackingListener`]s name.
//! Redis then pushes an `invalidate` message naming every key under those prefixes that any
//! client changes (or that expires or is evicted), and a null one on `FLUSHALL` / `FLUSHDB`.
//! Broadcasting mode keeps no per-key table in Redis, so there is no table to overflow and no
//! server memory per key.
//!
//! **Why a heartbeat proves the memory current.** Redis writes invalidation pushes and replies
//! to one connection in the order it produced them, and the client hands every push to the
//! listeners synchronously, in stream order, before it completes the reply that followed it. So
//! when a `PING` sent at instant `t` is answered, every change Redis applied before `t` has
//! already been handed over. [`TrackingListener::confirmed`] passes `t`; a listener trusts what
//! it holds only while the last such `t` is younger than its lease. The tracker pings every
//! [`HEARTBEAT`]; a ping unanswered within [`PING_TIMEOUT`] ends the connection. A stalled
//! connection therefore stops being trusted one lease after the last ping it answered was sent,
//! whatever the network does.
//!
//! On every connect, disconnect, failed ping, `FLUSHALL`/`FLUSHDB` push, or a push this code
//! does not understand, the listeners are [`TrackingListener::reset`]: whatever they hold may
//! have changed unheard.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushInfo, PushKind, Value};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often the tracking connection is pinged.
pub const HEARTBEAT: Duration = Duration::from_millis(200);

/// A ping unanswered for this long ends the tracking connection (the listeners are reset and
/// it reconnects). Shorter than the cache lease, so a stall is noticed before the lease ends.
pub const PING_TIMEOUT: Duration = Duration::from_millis(500);

/// The pause after a lost connection before the next attempt; it doubles while attempts keep
/// failing, up to [`MAX_RECONNECT_DELAY`].
const RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// The longest pause between failing attempts (an ACL that refuses `CLIENT TRACKING` must not
/// turn into a connection storm or a log line every 100 ms).
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// Something that holds copies of Redis data and must hear when it changes.
pub trait TrackingListener: Send + Sync + 'static {
    /// The key prefixes this listener needs to hear about.
    fn prefixes(&self) -> Vec<String>;

    /// A key under one of the tracked prefixes changed (written, deleted, expired, evicted).
    /// Called on the connection's reading task: keep it short and never block.
    fn invalidated(&self, key: &[u8]);

    /// Anything may have changed unheard (connect, disconnect, flush, an unknown push): forget
    /// everything and trust nothing until [`TrackingListener::confirmed`] with a later instant.
    fn reset(&self);

    /// Every change Redis applied before `sent` has been passed to
    /// [`TrackingListener::invalidated`].
    fn confirmed(&self, sent: Instant);
}

/// The task keeping the tracking connection; stops when dropped.
#[derive(Debug)]
pub struct Tracker {
    task: JoinHandle<()>,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Tracker {
    /// Starts tracking with `client` (a single server, RESP3: set
    /// `redis::ProtocolVersion::RESP3` in its connection info) for `listeners`. Connection
    /// failures are retried for as long as the tracker lives; until it is connected the
    /// listeners trust nothing.
    pub fn spawn(client: redis::Client, listeners: Vec<Arc<dyn TrackingListener>>) -> Self {
        let listeners: Arc<[Arc<dyn TrackingListener>]> = listeners.into();
        let task = tokio::spawn(async move {
            let mut delay = RECONNECT_DELAY;
            loop {
                reset(&listeners);
                let mut tracked = false;
                let error = track(&client, &listeners, &mut tracked).await;
                reset(&listeners);
                if tracked || delay == RECONNECT_DELAY {
                    // The first failure of a streak is worth a warning; its repeats are not.
                    tracing::warn!(%error, "redis tracking connection lost or refused; this node reads Redis on every request until it is back");
                } else {
                    tracing::debug!(%error, "redis tracking connection still down");
                }
                if tracked {
                    delay = RECONNECT_DELAY;
                }
                tokio::time::sleep(delay).await;
                if !tracked {
                    delay = (delay * 2).min(MAX_RECONNECT_DELAY);
                }
            }
        });
        Self { task }
    }
}

fn reset(listeners: &[Arc<dyn TrackingListener>]) {
    for listener in listeners {
        listener.reset();
    }
}

/// One connection's life: connect, turn tracking on (then `tracked` is set), ping until a ping
/// fails. Returns why it ended.
async fn track(
    client: &redis::Client,
    listeners: &Arc<[Arc<dyn TrackingListener>]>,
    tracked: &mut bool,
) -> redis::RedisError {
    match track_inner(client, listeners, tracked).await {
        Ok(never) => match never {},
        Err(error) => error,
    }
}

async fn track_inner(
    client: &redis::Client,
    listeners: &Arc<[Arc<dyn TrackingListener>]>,
    tracked: &mut bool,
) -> redis::RedisResult<std::convert::Infallible> {
    let pushes = listeners.clone();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(PING_TIMEOUT * 2))
        .set_response_timeout(Some(PING_TIMEOUT))
        .set_push_sender(move |push: PushInfo| {
            dispatch(&pushes, push);
            Ok::<(), std::convert::Infallible>(())
        });
    let mut conn: MultiplexedConnection = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let mut tracking = redis::cmd("CLIENT");
    tracking.arg("TRACKING").arg("ON").arg("BCAST");
    for listener in listeners.iter() {
        for prefix in listener.prefixes() {
            tracking.arg("PREFIX").arg(prefix);
        }
    }
    let () = tracking.query_async(&mut conn).await?;
    // Whatever a listener filled before tracking was on may already be stale.
    reset(listeners);
    *tracked = true;
    tracing::info!("redis tracking connection up");
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        beat.tick().await;
        let sent = Instant::now();
        let () = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map(|_: Value| ())?;
        for listener in listeners.iter() {
            listener.confirmed(sent);
        }
    }
}

/// Hands one push to the listeners.
fn dispatch(listeners: &[Arc<dyn TrackingListener>], push: PushInfo) {
    match push.kind {
        PushKind::Invalidate => match push.data.first() {
            Some(Value::Array(keys)) => {
                for key in keys {
                    match key {
                        Value::BulkString(key) => {
                            for listener in listeners {
                                listener.invalidated(key);
                            }
                        }
                        _ => reset(listeners),
                    }
                }
            }
            // A null key list: FLUSHALL / FLUSHDB (or anything else this code cannot read).
            _ => reset(listeners),
        },
        // Pub/sub confirmations would be the only other pushes, and this connection never
        // subscribes; anything else (a disconnect in particular) may hide a change.
        _ => reset(listeners),
    }
}
