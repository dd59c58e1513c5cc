//! The MailTokenStore conformance suite on every backend (SQLite file, real redis-server, a real
//! Redis Cluster, real PostgreSQL), each with two store handles racing as two nodes would,
//! plus backend-specific promises: key layout and expiry in Redis, purging in SQL, outages and
//! garbage as errors.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use ringfence_accounts::tokens_conformance::{self as conformance, record, t0};
use ringfence_accounts::{
    Database, MailToken, MailTokenStore, PostgresMailTokenStore, RedisMailTokenStore,
    SqliteMailTokenStore, TokenPurpose, TokenStoreError,
};
use ringfence_testkit::{PostgresServer, RedisCluster, RedisServer};
use tempfile::TempDir;

#[path = "common/redis.rs"]
mod redis_harness;
use redis_harness::{connect, redis_server};

macro_rules! each_check {
    ($make:expr) => {
        conformance::insert_find_take_once(&$make).await;
        conformance::unknown_token(&$make).await;
        conformance::wrong_purpose_is_refused_and_not_spent(&$make).await;
        conformance::expiry_by_the_callers_clock(&$make).await;
        conformance::tokens_are_independent(&$make).await;
    };
}

/// Two handles on one SQLite file, as two processes sharing it would have.
async fn sqlite_pair() -> (SqliteMailTokenStore, SqliteMailTokenStore, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ringfence.db").display());
    let a = Database::connect(&url).await.unwrap();
    let b = Database::connect(&url).await.unwrap();
    let a = SqliteMailTokenStore::new(a.sqlite_pool().unwrap().clone());
    a.migrate().await.unwrap();
    let b = SqliteMailTokenStore::new(b.sqlite_pool().unwrap().clone());
    b.migrate().await.unwrap();
    (a, b, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_passes_conformance() {
    let (a, b, _dir) = sqlite_pair().await;
    each_check!(a);
    conformance::concurrent_takes_one_wins(&a, &b).await;
    conformance::run_all(&b).await;
}

#[tokio::test]
async fn sqlite_through_database_shares_the_users_file_and_migrator() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ringfence.db").display());
    let db = Database::connect(&url).await.unwrap();
    db.user_store().await.unwrap();
    let tokens = db.mail_token_store().await.unwrap();
    conformance::run_all(tokens.as_ref()).await;
    db.attempt_store().await.unwrap();
    db.mail_token_store().await.unwrap();

    // A token survives a restart of the node.
    let rec = record(TokenPurpose::VerifyEmail);
    let hash = MailToken::generate().hash();
    tokens.insert(&hash, &rec, t0()).await.unwrap();
    db.close().await;
    let db = Database::connect(&url).await.unwrap();
    let tokens = db.mail_token_store().await.unwrap();
    assert_eq!(
        tokens.take(&hash, rec.purpose, t0()).await.unwrap(),
        Some(rec)
    );
    db.close().await;
}

/// Inserts `n` verification tokens that expired a minute before [`t0`].
async fn insert_expired(store: &impl MailTokenStore, n: usize) {
    for _ in 0..n {
        let mut old = record(TokenPurpose::VerifyEmail);
        old.expires_at = t0() - Duration::minutes(1);
        store
            .insert(&MailToken::generate().hash(), &old, t0())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn sqlite_purges_expired_tokens() {
    let (store, _b, _dir) = sqlite_pair().await;
    let live = record(TokenPurpose::ResetPassword);
    let live_hash = MailToken::generate().hash();
    store.insert(&live_hash, &live, t0()).await.unwrap();
    insert_expired(&store, 10).await;
    assert_eq!(store.purge(t0() - Duration::hours(1)).await.unwrap(), 0);
    assert_eq!(store.purge(t0()).await.unwrap(), 10);
    assert!(store
        .find(&live_hash, live.purpose, t0())
        .await
        .unwrap()
        .is_some());

    // Purging also happens by itself now and then while tokens are issued.
    insert_expired(&store, 200).await;
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mail_tokens")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(left < 100, "expired tokens were purged, {left} rows left");
}

#[tokio::test]
async fn sqlite_closed_pool_is_unavailable() {
    let (store, _b, _dir) = sqlite_pair().await;
    store.pool().close().await;
    let hash = MailToken::generate().hash();
    let rec = record(TokenPurpose::ResetPassword);
    for err in [
        store.insert(&hash, &rec, t0()).await.unwrap_err(),
        store.find(&hash, rec.purpose, t0()).await.unwrap_err(),
        store.take(&hash, rec.purpose, t0()).await.unwrap_err(),
    ] {
        assert!(matches!(err, TokenStoreError::Unavailable(_)), "{err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_passes_conformance() {
    let server = redis_server(Vec::new());
    // Two connections, as two nodes have.
    let a = RedisMailTokenStore::new(connect(&server).await, "conf:");
    let b = RedisMailTokenStore::new(connect(&server).await, "conf:");
    each_check!(a);
    conformance::concurrent_takes_one_wins(&a, &b).await;
    conformance::run_all(&b).await;
}

#[tokio::test]
async fn redis_key_layout_and_expiry() {
    let server = redis_server(Vec::new());
    let store = RedisMailTokenStore::new(connect(&server).await, "rf:");
    let token = MailToken::generate();
    let hash = token.hash();
    let rec = record(TokenPurpose::ChangeEmail);
    // Real time, so Redis's own expiry is checked against the same clock.
    let now = chrono::Utc::now();
    let rec = ringfence_accounts::MailTokenRecord {
        expires_at: now + Duration::hours(24),
        ..rec
    };
    store.insert(&hash, &rec, now).await.unwrap();
    let key = store.redis_key(&hash, TokenPurpose::ChangeEmail);
    assert_eq!(key, format!("rf:mailtoken:change_email:{}", hash.to_hex()));
    let cli = |args: &[&str]| server.redis_cli(args).unwrap();
    let keys = cli(&["KEYS", "*"]);
    assert_eq!(keys.trim(), key, "exactly one key");
    assert!(
        !keys.contains(token.as_str()),
        "the token itself is nowhere"
    );
    let value = cli(&["GET", &key]);
    assert!(!value.contains(token.as_str()));
    assert!(value.contains(&rec.user_id));
    let ttl: i64 = cli(&["PTTL", &key]).trim().parse().unwrap();
    assert!(
        ttl > 86_390_000 && ttl <= 86_400_000,
        "expires with the token: {ttl}"
    );
    // Taken: the key is gone.
    assert!(store.take(&hash, rec.purpose, now).await.unwrap().is_some());
    assert_eq!(cli(&["EXISTS", &key]).trim(), "0");
    // A take by the caller's clock after the expiry removes the key and refuses.
    let hash = MailToken::generate().hash();
    store.insert(&hash, &rec, now).await.unwrap();
    assert_eq!(
        store
            .take(&hash, rec.purpose, rec.expires_at)
            .await
            .unwrap(),
        None
    );
    assert_eq!(cli(&["DBSIZE"]).trim(), "0");
    // Expired by Redis: simply absent.
    let hash = MailToken::generate().hash();
    store.insert(&hash, &rec, now).await.unwrap();
    cli(&["PEXPIRE", &store.redis_key(&hash, rec.purpose), "1"]);
    tokio::time::sleep(StdDuration::from_millis(20)).await;
    assert_eq!(store.find(&hash, rec.purpose, now).await.unwrap(), None);
}

#[tokio::test]
async fn redis_garbage_is_an_error_not_a_panic() {
    let server = redis_server(Vec::new());
    let store = RedisMailTokenStore::new(connect(&server).await, "rf:");
    let hash = MailToken::generate().hash();
    let key = store.redis_key(&hash, TokenPurpose::ResetPassword);
    server.redis_cli(&["SET", &key, "{not json"]).unwrap();
    let err = store
        .find(&hash, TokenPurpose::ResetPassword, t0())
        .await
        .unwrap_err();
    assert!(matches!(err, TokenStoreError::Corrupt(_)), "{err:?}");
    // A key of the wrong type.
    let other = MailToken::generate().hash();
    server
        .redis_cli(&[
            "HSET",
            &store.redis_key(&other, TokenPurpose::VerifyEmail),
            "f",
            "v",
        ])
        .unwrap();
    assert!(store
        .take(&other, TokenPurpose::VerifyEmail, t0())
        .await
        .is_err());
}

#[tokio::test]
async fn redis_outage_is_unavailable() {
    let mut server = redis_server(Vec::new());
    let store = RedisMailTokenStore::new(connect(&server).await, "rf:");
    server.stop();
    let hash = MailToken::generate().hash();
    let rec = record(TokenPurpose::ResetPassword);
    let err = tokio::time::timeout(StdDuration::from_secs(10), store.insert(&hash, &rec, t0()))
        .await
        .expect("answers promptly")
        .unwrap_err();
    assert!(matches!(err, TokenStoreError::Unavailable(_)), "{err:?}");
    let err = tokio::time::timeout(
        StdDuration::from_secs(10),
        store.take(&hash, rec.purpose, t0()),
    )
    .await
    .expect("answers promptly")
    .unwrap_err();
    assert!(matches!(err, TokenStoreError::Unavailable(_)), "{err:?}");
}

/// A real three-master cluster: tokens land in slots on different masters, two cluster
/// connections race as two nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_connection_passes_conformance() {
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3))
        .await
        .unwrap()
        .expect("start a Redis Cluster");
    let seeds: Vec<String> = cluster.nodes().iter().map(RedisServer::url).collect();
    let connect = || async {
        redis::cluster::ClusterClient::new(seeds.clone())
            .unwrap()
            .get_async_connection()
            .await
            .unwrap()
    };
    let a = RedisMailTokenStore::new(connect().await, "cl:");
    let b = RedisMailTokenStore::new(connect().await, "cl:");
    conformance::run_all(&a).await;
    conformance::concurrent_takes_one_wins(&a, &b).await;
}

async fn start_postgres() -> PostgresServer {
    tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .unwrap()
        .expect("start PostgreSQL")
}

/// One server for the whole check (starting one takes seconds); two pools as two nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_conformance() {
    let server = start_postgres().await;
    let url = server.fresh_database().unwrap();
    let mut nodes: Vec<(Database, Arc<dyn MailTokenStore>)> = Vec::new();
    for _ in 0..2 {
        let db = Database::connect(&url).await.unwrap();
        // Users first on one node, tokens first on the other: one migrator either way.
        if nodes.is_empty() {
            db.user_store().await.unwrap();
        }
        let tokens = db.mail_token_store().await.unwrap();
        nodes.push((db, tokens));
    }
    let (a, b) = (nodes[0].1.as_ref(), nodes[1].1.as_ref());
    conformance::run_all(a).await;
    conformance::concurrent_takes_one_wins(a, b).await;

    let store = PostgresMailTokenStore::new(nodes[0].0.postgres_pool().unwrap().clone());
    store.migrate().await.unwrap();
    each_check!(store);
    let mut old = record(TokenPurpose::VerifyEmail);
    old.expires_at = t0() - Duration::minutes(1);
    store
        .insert(&MailToken::generate().hash(), &old, t0())
        .await
        .unwrap();
    assert!(store.purge(t0()).await.unwrap() >= 1);
    for (db, _) in &nodes {
        db.close().await;
    }
}
