//! The session cache against a real `redis-server`, with two nodes (two `SessionManager`s
//! sharing one key ring): every way a session ends on one node is refused on the other within
//! 100 ms while that node serves the session from memory; a node whose tracking connection
//! stalls stops trusting its memory within the lease and caches again once it heals; Redis
//! restarts, `FLUSHALL` and `CLIENT KILL` of the tracking connection leave nothing stale; an
//! invalidation arriving while the filling read is in flight leaves no entry.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use redis::{IntoConnectionInfo, ProtocolVersion};
use ringfence_keyring::tracking::Tracker;
use ringfence_keyring::{KeyRing, ManualClock};
use ringfence_sessions::{
    CachedSessionStore, ClientInfo, RedisSessionStore, ResolveError, SessionCache, SessionConfig,
    SessionManager, SessionStore,
};
use ringfence_testkit::{RedisOptions, RedisServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{timeout, Instant};

/// The contract's bound on revocation reaching every node.
const PROPAGATION: StdDuration = StdDuration::from_millis(100);

/// Now, to the second: Redis expires the user's key by its own clock, so the nodes' manual
/// clocks start at the real time.
fn start_time() -> DateTime<Utc> {
    ringfence_sessions::conformance::base_now()
}

fn server() -> RedisServer {
    RedisServer::start_with(RedisOptions::default()).unwrap()
}

async fn connect(url: &str) -> ConnectionManager {
    redis::Client::open(url)
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap()
}

/// A RESP3 client for a tracker, to `addr` (Redis itself or a proxy in front of it).
fn tracking_client(addr: SocketAddr) -> redis::Client {
    let info = format!("redis://{addr}/").into_connection_info().unwrap();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    redis::Client::open(info.set_redis_settings(settings)).unwrap()
}

/// One node: a manager on a cached store whose tracker reaches Redis at `tracking_addr`.
struct Node {
    manager: SessionManager,
    cache: Arc<SessionCache>,
    store: Arc<CachedSessionStore>,
    _tracker: Tracker,
}

impl Node {
    async fn start(
        server: &RedisServer,
        tracking_addr: SocketAddr,
        prefix: &str,
        keyring: &KeyRing,
        clock: &ManualClock,
    ) -> Node {
        let cache = Arc::new(SessionCache::new(
            1000,
            ringfence_sessions::cache::DEFAULT_LEASE,
        ));
        let store = Arc::new(CachedSessionStore::new(
            RedisSessionStore::new(connect(&server.url()).await, prefix.to_owned()),
            cache.clone(),
        ));
        let tracker = Tracker::spawn(tracking_client(tracking_addr), vec![store.listener()]);
        let manager = SessionManager::new(
            store.clone(),
            keyring,
            clock.shared(),
            SessionConfig::default(),
        );
        let node = Node {
            manager,
            cache,
            store,
            _tracker: tracker,
        };
        node.until_trusted().await;
        node
    }

    /// Waits (at most 5 s) until the tracker has confirmed a heartbeat.
    async fn until_trusted(&self) {
        let mut changes = self.cache.changes();
        timeout(StdDuration::from_secs(5), async {
            while !self.cache.is_trusted() {
                changes.changed().await.unwrap();
            }
        })
        .await
        .expect("the tracking connection never came up");
    }
}

struct Fleet {
    server: RedisServer,
    /// The nodes' (manual, unmoving) clock.
    now: DateTime<Utc>,
    a: Node,
    b: Node,
}

async fn fleet(prefix: &str) -> Fleet {
    let server = server();
    fleet_on(server, None, prefix).await
}

/// Two nodes on `server`; node B's tracker goes through `b_tracking` when given.
async fn fleet_on(server: RedisServer, b_tracking: Option<SocketAddr>, prefix: &str) -> Fleet {
    let now = start_time();
    let clock = ManualClock::new(now);
    let keyring = KeyRing::in_memory(clock.shared());
    let a = Node::start(&server, server.addr(), prefix, &keyring, &clock).await;
    let b = Node::start(
        &server,
        b_tracking.unwrap_or(server.addr()),
        prefix,
        &keyring,
        &clock,
    )
    .await;
    Fleet { server, now, a, b }
}

fn browser() -> ClientInfo {
    ClientInfo {
        ip: Some("192.0.2.7".to_owned()),
        user_agent: Some(
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".to_owned(),
        ),
    }
}

/// How many `HGET`s Redis has run (the read of `get`; nothing else sends one).
fn hgets(server: &RedisServer) -> u64 {
    let stats = server.redis_cli(&["INFO", "commandstats"]).unwrap();
    stats
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_hget:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0)
}

/// Signs `user` in on node A and has node B read the session, so B holds it; checks that B's
/// next request is answered from memory (no `HGET` reaches Redis).
async fn signed_in_and_cached_on_b(fleet: &Fleet, user: &str) -> String {
    let mut changes = fleet.b.cache.changes();
    changes.mark_unchanged();
    let started = fleet.a.manager.start(user, &browser()).await.unwrap();
    let cookie = started.cookie_value;
    // A read that B starts before hearing of the sign-in is not kept (its shard moved on
    // meanwhile): wait for the push first.
    timeout(StdDuration::from_secs(1), changes.changed())
        .await
        .expect("node B never heard of the sign-in")
        .unwrap();
    fleet.b.manager.resolve(&cookie).await.unwrap();
    let before = hgets(&fleet.server);
    let session = fleet.b.manager.resolve(&cookie).await.unwrap();
    assert_eq!(session.user_id, user);
    assert_eq!(
        hgets(&fleet.server),
        before,
        "node B read Redis instead of its memory"
    );
    cookie
}

/// After `end` ends the session somewhere, node B must refuse it within [`PROPAGATION`]:
/// waits for B to hear a change (the push), then asks B.
async fn refused_on_b_within_propagation(
    fleet: &Fleet,
    cookie: &str,
    end: impl std::future::Future<Output = ()>,
) {
    let mut changes = fleet.b.cache.changes();
    changes.mark_unchanged();
    let began = Instant::now();
    end.await;
    let refused = timeout(PROPAGATION, async {
        loop {
            match fleet.b.manager.resolve(cookie).await {
                Err(ResolveError::NotFound) => return,
                Ok(_) => changes.changed().await.unwrap(),
                Err(other) => panic!("unexpected answer: {other:?}"),
            }
        }
    })
    .await;
    assert!(
        refused.is_ok(),
        "node B still accepted the session {:?} after it ended",
        began.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_on_one_node_is_refused_on_the_other_within_100ms() {
    let fleet = fleet("so:").await;
    let cookie = signed_in_and_cached_on_b(&fleet, "alice").await;
    let session = fleet.a.manager.resolve(&cookie).await.unwrap();
    refused_on_b_within_propagation(&fleet, &cookie, async {
        assert!(fleet.a.manager.end(&session).await.unwrap());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_by_id_on_one_node_is_refused_on_the_other_within_100ms() {
    let fleet = fleet("rv:").await;
    let cookie = signed_in_and_cached_on_b(&fleet, "bob").await;
    let session = fleet.a.manager.resolve(&cookie).await.unwrap();
    refused_on_b_within_propagation(&fleet, &cookie, async {
        assert!(fleet.a.manager.end_by_id("bob", &session.id).await.unwrap());
    })
    .await;
}

/// A password change ends every other session of the user (and an admin disable all of them):
/// both are `remove_for_user`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_users_other_sessions_is_refused_on_the_other_node_within_100ms() {
    let fleet = fleet("pw:").await;
    let cookie = signed_in_and_cached_on_b(&fleet, "carol").await;
    let kept = fleet.a.manager.start("carol", &browser()).await.unwrap();
    refused_on_b_within_propagation(&fleet, &cookie, async {
        assert_eq!(
            fleet
                .a
                .manager
                .end_others("carol", &kept.session.id)
                .await
                .unwrap(),
            1
        );
    })
    .await;
    // The session kept is still served on B.
    fleet.b.manager.resolve(&kept.cookie_value).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_all_of_a_users_sessions_is_refused_on_the_other_node_within_100ms() {
    let fleet = fleet("da:").await;
    let cookie = signed_in_and_cached_on_b(&fleet, "dave").await;
    refused_on_b_within_propagation(&fleet, &cookie, async {
        assert_eq!(fleet.a.manager.end_all("dave").await.unwrap(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_users_key_by_hand_is_refused_within_100ms() {
    let fleet = fleet("hd:").await;
    let cookie = signed_in_and_cached_on_b(&fleet, "erin").await;
    let key = fleet.b.store.store().user_key("erin");
    let server = &fleet.server;
    refused_on_b_within_propagation(&fleet, &cookie, async {
        assert_eq!(server.redis_cli(&["DEL", &key]).unwrap(), "1");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_own_sign_out_is_refused_by_it_at_once() {
    let fleet = fleet("own:").await;
    let cookie = signed_in_and_cached_on_b(&fleet, "frank").await;
    let session = fleet.b.manager.resolve(&cookie).await.unwrap();
    assert!(fleet.b.manager.end(&session).await.unwrap());
    // No waiting for the push: the node's own write dropped the entry.
    assert!(matches!(
        fleet.b.manager.resolve(&cookie).await,
        Err(ResolveError::NotFound)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_leaves_no_stale_session() {
    let fleet = fleet("fa:").await;
    let cookie = signed_in_and_cached_on_b(&fleet, "gina").await;
    let server = &fleet.server;
    refused_on_b_within_propagation(&fleet, &cookie, async {
        assert_eq!(server.redis_cli(&["FLUSHALL"]).unwrap(), "OK");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_tracking_connection_leaves_no_stale_session() {
    let fleet = fleet("ck:").await;
    let cookie = signed_in_and_cached_on_b(&fleet, "hank").await;
    let session = fleet.a.manager.resolve(&cookie).await.unwrap();
    // Kill every tracking connection (both nodes'), then revoke at once: the revocation's push
    // reaches no one, so only the disconnect keeps B from serving its memory.
    let clients = fleet.server.redis_cli(&["CLIENT", "LIST"]).unwrap();
    let tracking: Vec<&str> = clients
        .lines()
        .filter(|line| {
            line.split(' ')
                .any(|field| field.starts_with("flags=") && field.contains('t'))
        })
        .filter_map(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
        .collect();
    assert_eq!(tracking.len(), 2, "{clients}");
    let server = &fleet.server;
    refused_on_b_within_propagation(&fleet, &cookie, async {
        for id in &tracking {
            assert_eq!(
                server.redis_cli(&["CLIENT", "KILL", "ID", id]).unwrap(),
                "1"
            );
        }
        assert!(fleet.a.manager.end(&session).await.unwrap());
    })
    .await;
    // It reconnects and caches again.
    fleet.b.until_trusted().await;
    let cookie = signed_in_and_cached_on_b(&fleet, "hank").await;
    assert!(fleet.b.manager.resolve(&cookie).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_leaves_no_stale_session() {
    let mut fleet = fleet("rs:").await;
    let cookie = signed_in_and_cached_on_b(&fleet, "iris").await;
    let session = fleet.a.manager.resolve(&cookie).await.unwrap();
    let mut changes = fleet.b.cache.changes();
    changes.mark_unchanged();
    tokio::task::block_in_place(|| fleet.server.restart().unwrap());
    // The session survived the restart (append-only file): it is revoked now, and B, whose
    // tracking connection died with the old server, must not answer from memory.
    timeout(StdDuration::from_secs(1), changes.changed())
        .await
        .expect("node B never heard its tracking connection drop")
        .unwrap();
    assert!(!fleet.b.cache.is_trusted());
    // Each node's data connection notices the restart on its first command and reconnects.
    let _ = fleet.a.manager.ping().await;
    let _ = fleet.b.manager.ping().await;
    assert!(fleet.a.manager.end(&session).await.unwrap());
    assert!(matches!(
        fleet.b.manager.resolve(&cookie).await,
        Err(ResolveError::NotFound)
    ));
    fleet.b.until_trusted().await;
    let cookie = signed_in_and_cached_on_b(&fleet, "iris").await;
    assert!(fleet.b.manager.resolve(&cookie).await.is_ok());
}

/// The race the generation counters guard: node B takes its ticket and reads the record, the
/// session is revoked and B hears of it, and only then does B try to keep what it read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_during_the_filling_read_leaves_no_stale_entry() {
    let fleet = fleet("race:").await;
    let started = fleet.a.manager.start("jill", &browser()).await.unwrap();
    let id = started.session.id.clone();
    let key = fleet.b.store.store().user_key("jill");
    let now = fleet.now;

    // B's read, in flight: ticket taken, the record read from Redis.
    let ticket = fleet.b.cache.ticket(key.as_bytes());
    let read = fleet
        .b
        .store
        .store()
        .get("jill", &id, now)
        .await
        .unwrap()
        .unwrap();

    // Meanwhile A revokes it, and the push reaches B.
    let mut changes = fleet.b.cache.changes();
    changes.mark_unchanged();
    assert!(fleet.a.manager.end_by_id("jill", &id).await.unwrap());
    timeout(PROPAGATION, changes.changed())
        .await
        .unwrap()
        .unwrap();

    // The read finishes: what it read must not be kept, nor served.
    assert!(!fleet.b.cache.fill(ticket, key.as_bytes(), read.clone()));
    assert!(fleet.b.cache.lookup(key.as_bytes(), &id, now).is_none());
    assert!(matches!(
        fleet.b.manager.resolve(&started.cookie_value).await,
        Err(ResolveError::NotFound)
    ));

    // Without an invalidation in between, the same steps keep the entry.
    let again = fleet.a.manager.start("jill", &browser()).await.unwrap();
    let ticket = fleet.b.cache.ticket(key.as_bytes());
    let read = fleet
        .b
        .store
        .store()
        .get("jill", &again.session.id, now)
        .await
        .unwrap()
        .unwrap();
    assert!(fleet.b.cache.fill(ticket, key.as_bytes(), read));
    assert!(fleet
        .b
        .cache
        .lookup(key.as_bytes(), &again.session.id, now)
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_served_from_memory_before_the_tracking_connection_is_up() {
    let server = server();
    let cache = Arc::new(SessionCache::new(
        10,
        ringfence_sessions::cache::DEFAULT_LEASE,
    ));
    let store = CachedSessionStore::new(
        RedisSessionStore::new(connect(&server.url()).await, "nt:".to_owned()),
        cache.clone(),
    );
    let now = start_time();
    let session = ringfence_sessions::conformance::sample_session("kim", now);
    store.insert(&session, None, now).await.unwrap();
    let before = hgets(&server);
    for _ in 0..3 {
        assert!(store.get("kim", &session.id, now).await.unwrap().is_some());
    }
    assert!(!cache.is_trusted());
    assert_eq!(hgets(&server), before + 3);
}

/// A TCP proxy that forwards both ways until stalled, then holds every byte until un-stalled.
struct StallProxy {
    addr: SocketAddr,
    stalled: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StallProxy {
    async fn start(upstream: SocketAddr) -> StallProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stalled, _) = watch::channel(false);
        let gate = stalled.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, gate.subscribe()));
                tokio::spawn(pump(server_read, client_write, gate.subscribe()));
            }
        });
        StallProxy {
            addr,
            stalled,
            task,
        }
    }

    fn stall(&self, on: bool) {
        self.stalled.send_replace(on);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if stalled.wait_for(|s| !s).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Bytes read just before a stall are held too.
        if stalled.wait_for(|s| !s).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tracking_connection_stops_memory_within_the_lease_and_heals() {
    let server = server();
    let proxy = StallProxy::start(server.addr()).await;
    let fleet = fleet_on(server, Some(proxy.addr), "pt:").await;
    let cookie = signed_in_and_cached_on_b(&fleet, "liam").await;
    let session = fleet.a.manager.resolve(&cookie).await.unwrap();

    proxy.stall(true);
    let stalled_at = Instant::now();
    // The revocation's push is held in the proxy: B cannot hear it.
    assert!(fleet.a.manager.end(&session).await.unwrap());
    let lease = fleet.b.cache.lease();
    assert!(lease <= StdDuration::from_secs(1));
    tokio::time::sleep_until(stalled_at + lease).await;
    assert!(!fleet.b.cache.is_trusted());
    assert!(matches!(
        fleet.b.manager.resolve(&cookie).await,
        Err(ResolveError::NotFound)
    ));

    // Healed: B reconnects through the proxy, trusts its memory again and caches.
    proxy.stall(false);
    fleet.b.until_trusted().await;
    let cookie = signed_in_and_cached_on_b(&fleet, "liam").await;
    assert!(fleet.b.manager.resolve(&cookie).await.is_ok());
}

/// What a node derives from a user's data outside the session store (the second-factor summary
/// of `/api/v1/me`) is kept under a watch: an announced change on node A ends node B's watch
/// within 100 ms, and A's own at once, while the user's sessions and their expiry stay as
/// they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_user_change_ends_the_watches_of_every_node() {
    let fleet = fleet("watch:").await;
    let cookie = signed_in_and_cached_on_b(&fleet, "kim").await;
    let key = fleet.a.store.store().user_key("kim");
    let expiry_before = fleet
        .server
        .redis_cli(&["PEXPIRETIME", key.as_str()])
        .unwrap();

    let on_a = fleet.a.manager.user_watch("kim").expect("A hears changes");
    let on_b = fleet.b.manager.user_watch("kim").expect("B hears changes");
    assert!(fleet.a.manager.user_unchanged("kim", &on_a));
    assert!(fleet.b.manager.user_unchanged("kim", &on_b));

    let mut changes = fleet.b.cache.changes();
    changes.mark_unchanged();
    fleet.a.manager.announce_user_change("kim").await.unwrap();
    assert!(
        !fleet.a.manager.user_unchanged("kim", &on_a),
        "the announcing node's own watch must end at once"
    );
    timeout(PROPAGATION, async {
        while fleet.b.manager.user_unchanged("kim", &on_b) {
            changes.changed().await.unwrap();
        }
    })
    .await
    .expect("node B's watch outlived the announced change by 100 ms");

    // Nothing of the sessions changed: the same expiry, the session still valid on both.
    assert_eq!(
        fleet
            .server
            .redis_cli(&["PEXPIRETIME", key.as_str()])
            .unwrap(),
        expiry_before
    );
    fleet.a.manager.resolve(&cookie).await.unwrap();
    fleet.b.manager.resolve(&cookie).await.unwrap();

    // A watch taken after the change holds until the next one.
    let again = fleet.b.manager.user_watch("kim").unwrap();
    assert!(fleet.b.manager.user_unchanged("kim", &again));
}

/// A node whose memory is not trusted (no heartbeat confirmed yet) gives no watch, and a
/// store without a cache never does: nothing derived is kept then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_watch_without_a_trusted_cache() {
    let server = server();
    let clock = ManualClock::new(start_time());
    let keyring = KeyRing::in_memory(clock.shared());
    let cache = Arc::new(SessionCache::new(
        1000,
        ringfence_sessions::cache::DEFAULT_LEASE,
    ));
    let untracked = SessionManager::new(
        Arc::new(CachedSessionStore::new(
            RedisSessionStore::new(connect(&server.url()).await, "nw:".to_owned()),
            cache,
        )),
        &keyring,
        clock.shared(),
        SessionConfig::default(),
    );
    assert!(untracked.user_watch("lee").is_none());
    let plain = SessionManager::new(
        Arc::new(RedisSessionStore::new(
            connect(&server.url()).await,
            "nw:".to_owned(),
        )),
        &keyring,
        clock.shared(),
        SessionConfig::default(),
    );
    assert!(plain.user_watch("lee").is_none());
    // Announcing still writes (nodes with a cache on the same Redis hear it) and never fails
    // for a user without sessions.
    plain.announce_user_change("lee").await.unwrap();
}
