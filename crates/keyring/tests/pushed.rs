//! Key-ring changes pushed by Redis: with a tracker, a key created, revoked or rotated in on
//! node A reaches node B within 100 ms, although B polls only once a minute.

use std::sync::Arc;
use std::time::Duration;

use redis::{IntoConnectionInfo, ProtocolVersion};
use ringfence_keyring::tracking::{Tracker, TrackingListener};
use ringfence_keyring::{KeyRing, KeyRingConfig, RedisKeyRepository, SystemClock, UnprotectError};
use ringfence_testkit::RedisServer;
use tokio::sync::watch;
use tokio::time::{timeout, Instant};

/// The bound on a change reaching every node.
const PROPAGATION: Duration = Duration::from_millis(100);

async fn ring(server: &RedisServer, prefix: &str, config: KeyRingConfig) -> KeyRing {
    let conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    KeyRing::open(
        Arc::new(RedisKeyRepository::new(conn, prefix)),
        config,
        SystemClock::shared(),
    )
    .await
    .unwrap()
}

fn tracking_client(server: &RedisServer) -> redis::Client {
    let info = server.url().into_connection_info().unwrap();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    redis::Client::open(info.set_redis_settings(settings)).unwrap()
}

/// Tells the test when the tracking connection answered a heartbeat (it is then tracking).
struct Heartbeats(watch::Sender<bool>);

impl TrackingListener for Heartbeats {
    fn prefixes(&self) -> Vec<String> {
        Vec::new()
    }
    fn invalidated(&self, _key: &[u8]) {}
    fn reset(&self) {}
    fn confirmed(&self, _sent: Instant) {
        self.0.send_replace(true);
    }
}

/// Waits until `b` satisfies `done`, re-checking after each of its reloads; fails after
/// [`PROPAGATION`] from `began`.
async fn within_propagation(b: &KeyRing, began: Instant, done: impl Fn(&KeyRing) -> bool) {
    let mut reloads = b.reloads();
    let reached = timeout(PROPAGATION.saturating_sub(began.elapsed()), async {
        while !done(b) {
            reloads.changed().await.unwrap();
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "node B had not heard of the change {:?} after it",
        began.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_revoked_or_rotated_key_reaches_the_other_node_within_100ms_without_polling() {
    let server = RedisServer::start().unwrap();
    let prefix = "push:";
    let a = ring(&server, prefix, KeyRingConfig::default()).await;
    let slow_poll = KeyRingConfig {
        poll_interval: Duration::from_secs(60),
        ..KeyRingConfig::default()
    };
    let b = ring(&server, prefix, slow_poll).await;
    let _refresh = b.spawn_refresh();
    let (up, mut heard) = watch::channel(false);
    let _tracker = Tracker::spawn(
        tracking_client(&server),
        vec![b.tracking_listener(prefix), Arc::new(Heartbeats(up))],
    );
    timeout(Duration::from_secs(5), heard.wait_for(|up| *up))
        .await
        .expect("node B's tracker never connected")
        .unwrap();

    // A new key.
    let began = Instant::now();
    let created = a.create_key().await.unwrap();
    within_propagation(&b, began, |b| b.keys().iter().any(|k| k.id == created.id)).await;

    // A revocation: B refuses payloads under the key.
    let payload = a.protector("p").protect(b"x").unwrap();
    let old = a.default_key_id().unwrap();
    assert!(b.protector("p").unprotect(&payload).await.is_ok());
    let began = Instant::now();
    a.revoke(old).await.unwrap();
    within_propagation(&b, began, |b| {
        b.keys()
            .iter()
            .any(|k| k.id == old && k.revoked_at.is_some())
    })
    .await;
    assert_eq!(
        b.protector("p").unprotect(&payload).await,
        Err(UnprotectError::Revoked(old))
    );

    // Rotated: B protects with A's replacement default key.
    assert_eq!(b.default_key_id(), a.default_key_id());
}
