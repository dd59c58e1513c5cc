//! Every key repository backend passes the one conformance suite, against real stores:
//! a directory, SQLite, a PostgreSQL server and a Redis server started for the test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ringfence_keyring::conformance::run_all;
use ringfence_keyring::{
    DirectoryKeyRepository, KeyRepository, KeyRing, KeyRingConfig, PostgresKeyRepository,
    RedisKeyRepository, SqliteKeyRepository, SystemClock, UnprotectError,
};
use ringfence_testkit::{PostgresServer, RedisServer};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(name: &str) -> String {
    format!("{name}{}", COUNTER.fetch_add(1, Ordering::SeqCst))
}

fn redis() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| RedisServer::start().expect("start redis-server"))
}

async fn redis_handles(prefix: &str, n: usize) -> Vec<Arc<dyn KeyRepository>> {
    let client = redis::Client::open(redis().url()).unwrap();
    let mut handles: Vec<Arc<dyn KeyRepository>> = Vec::new();
    for _ in 0..n {
        let conn = redis::aio::ConnectionManager::new(client.clone())
            .await
            .unwrap();
        handles.push(Arc::new(RedisKeyRepository::new(conn, prefix)));
    }
    handles
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn directory_backend() {
    let root = tempfile::tempdir().unwrap();
    let root_path = root.path().to_path_buf();
    run_all(|n| {
        let dir = root_path.join(unique("ring"));
        async move {
            (0..n)
                .map(|_| {
                    Arc::new(DirectoryKeyRepository::new(&dir).unwrap()) as Arc<dyn KeyRepository>
                })
                .collect()
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_backend() {
    let root = tempfile::tempdir().unwrap();
    let root_path = root.path().to_path_buf();
    run_all(|n| {
        let url = format!(
            "sqlite://{}?mode=rwc",
            root_path
                .join(unique("keys"))
                .with_extension("db")
                .display()
        );
        async move {
            let mut handles: Vec<Arc<dyn KeyRepository>> = Vec::new();
            for _ in 0..n {
                let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
                let pool = sqlx::SqlitePool::connect_with(
                    options
                        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                        .busy_timeout(Duration::from_secs(10)),
                )
                .await
                .unwrap();
                let repo = SqliteKeyRepository::new(pool);
                repo.migrate().await.unwrap();
                handles.push(Arc::new(repo));
            }
            handles
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_backend() {
    let server = Arc::new(PostgresServer::start().expect("start postgres"));
    run_all(|n| {
        let server = Arc::clone(&server);
        async move {
            let url = server.fresh_database().unwrap();
            let mut handles: Vec<Arc<dyn KeyRepository>> = Vec::new();
            for _ in 0..n {
                let pool = sqlx::PgPool::connect(&url).await.unwrap();
                let repo = PostgresKeyRepository::new(pool);
                repo.migrate().await.unwrap();
                handles.push(Arc::new(repo));
            }
            handles
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_backend() {
    run_all(|n| async move { redis_handles(&unique("conf"), n).await }).await;
}

fn fast_config() -> KeyRingConfig {
    KeyRingConfig {
        poll_interval: Duration::from_millis(100),
        ..KeyRingConfig::default()
    }
}

/// A revocation on node A is refused by node B within a second, through Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_propagates_within_a_second() {
    let prefix = unique("prop");
    let handles = redis_handles(&prefix, 2).await;
    let a = KeyRing::open(
        handles[0].clone(),
        KeyRingConfig::default(),
        SystemClock::shared(),
    )
    .await
    .unwrap();
    let b = KeyRing::open(
        handles[1].clone(),
        KeyRingConfig::default(),
        SystemClock::shared(),
    )
    .await
    .unwrap();
    let _refresh = b.spawn_refresh();
    let payload = a.protector("p").protect(b"x").unwrap();
    assert!(b.protector("p").unprotect(&payload).await.is_ok());
    let key = a.default_key_id().unwrap();
    let revoked_at = Instant::now();
    a.revoke(key).await.unwrap();
    loop {
        if b.protector("p").unprotect(&payload).await == Err(UnprotectError::Revoked(key)) {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "node B still accepts a revoked key after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And B protects with A's replacement key right away.
    assert_eq!(b.default_key_id(), a.default_key_id());
}

/// Redis loses everything (restart without persistence, FLUSHALL): running nodes write their keys
/// back and keep opening old payloads; a node starting afterwards agrees with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_redis_is_refilled() {
    let prefix = unique("purge");
    let handles = redis_handles(&prefix, 2).await;
    let a = KeyRing::open(handles[0].clone(), fast_config(), SystemClock::shared())
        .await
        .unwrap();
    let _refresh = a.spawn_refresh();
    let payload = a.protector("p").protect(b"kept").unwrap();
    let keys_key = format!("{prefix}{{keyring}}:keys");
    let rev_key = format!("{prefix}{{keyring}}:rev");
    redis().redis_cli(&["DEL", &keys_key, &rev_key]).unwrap();
    let started = Instant::now();
    loop {
        let n = redis().redis_cli(&["HLEN", &keys_key]).unwrap();
        if n.trim() == "1" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "keys not written back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let late = KeyRing::open(handles[1].clone(), fast_config(), SystemClock::shared())
        .await
        .unwrap();
    assert_eq!(late.keys().len(), 1, "no new key after the purge");
    assert_eq!(
        late.protector("p").unprotect(&payload).await.unwrap(),
        b"kept"
    );
}

/// A bad key document in Redis is skipped with an error naming it; the ring still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_document_in_redis_is_skipped() {
    let prefix = unique("bad");
    let keys_key = format!("{prefix}{{keyring}}:keys");
    redis()
        .redis_cli(&["HSET", &keys_key, "garbage", "{not json"])
        .unwrap();
    let handles = redis_handles(&prefix, 1).await;
    let ring = KeyRing::open(
        handles[0].clone(),
        KeyRingConfig::default(),
        SystemClock::shared(),
    )
    .await
    .unwrap();
    assert!(ring.is_ready());
    let bad = ring.bad_documents();
    assert_eq!(bad.len(), 1);
    assert!(bad[0].0.contains("garbage"), "{bad:?}");
}

/// An unreachable Redis at open time is a clear error, not a hang or a panic.
#[tokio::test]
async fn unreachable_store_is_an_error() {
    let port = ringfence_testkit::free_port();
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        redis::aio::ConnectionManager::new(client),
    )
    .await;
    assert!(
        matches!(result, Ok(Err(_))),
        "connecting to a closed port must fail"
    );
}
