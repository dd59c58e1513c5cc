//! Writes synthetic sessions into Redis through the real [`RedisSessionStore`] (so the layout is
//! exactly what a node writes), and reports what the scale benchmark measures (bench/load.sh).
//!
//! ```text
//! fill_redis fill   REDIS_URL PREFIX COUNT PER_USER CONCURRENCY
//! fill_redis count  REDIS_URL PREFIX
//! fill_redis memory REDIS_URL PREFIX USER_ID
//! ```
//!
//! - `fill` writes COUNT sessions, PER_USER per new random UUID user (the last user may get
//!   fewer), with CONCURRENCY inserts in flight over a few multiplexed connections, and prints
//!   `added=N seconds=S`. Every session is alive for the next half hour at least: last seen in
//!   the past two minutes, idle timeout 30 minutes, absolute 12 hours, created up to 6 hours
//!   ago; a 70-byte Firefox User-Agent, an IPv4 address, node `node-1` (the values of the
//!   sessions crate's memory test).
//! - `count` prints the store's active sessions (one number).
//! - `memory` prints `user_key=B user_sessions=K counts=B count_keys=N`: `MEMORY USAGE … SAMPLES
//!   0` of USER_ID's hash and its session count, and the same summed over the count keys.
//!
//! Build it with `cargo build --release -p ringfence-sessions --example fill_redis`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use redis::aio::ConnectionManager;
use ringfence_sessions::{RedisSessionStore, Session, SessionSecret, SessionStore};

const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
/// Connections the inserts are spread over: each multiplexes many requests, a few keep one
/// client task from being the bottleneck.
const MAX_CONNECTIONS: usize = 4;

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["fill", url, prefix, count, per_user, concurrency] => {
            fill(url, prefix, count, per_user, concurrency).await
        }
        ["count", url, prefix] => count(url, prefix).await,
        ["memory", url, prefix, user_id] => memory(url, prefix, user_id).await,
        _ => Err(
            "usage: fill_redis fill REDIS_URL PREFIX COUNT PER_USER CONCURRENCY \
                  | count REDIS_URL PREFIX | memory REDIS_URL PREFIX USER_ID"
                .into(),
        ),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fill_redis: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn connect(url: &str) -> Result<ConnectionManager, Failure> {
    Ok(redis::Client::open(url)?.get_connection_manager().await?)
}

fn positive(name: &str, text: &str) -> Result<u64, Failure> {
    match text.parse::<u64>() {
        Ok(n) if n > 0 || name == "COUNT" => Ok(n),
        _ => Err(format!("{name} must be a positive integer, not {text:?}").into()),
    }
}

async fn fill(
    url: &str,
    prefix: &str,
    count: &str,
    per_user: &str,
    concurrency: &str,
) -> Result<(), Failure> {
    let count = positive("COUNT", count)?;
    let per_user = positive("PER_USER", per_user)?;
    let concurrency = positive("CONCURRENCY", concurrency)?;
    let mut stores = Vec::new();
    for _ in 0..concurrency.min(MAX_CONNECTIONS as u64) {
        stores.push(RedisSessionStore::new(
            connect(url).await?,
            prefix.to_owned(),
        ));
    }
    let users = count.div_ceil(per_user);
    let next_user = Arc::new(AtomicU64::new(0));
    let written = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let now = whole_millis(Utc::now());
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let store = stores[worker as usize % stores.len()].clone();
        let (next_user, written) = (next_user.clone(), written.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let user = next_user.fetch_add(1, Ordering::Relaxed);
                if user >= users {
                    return Ok::<(), Failure>(());
                }
                let sessions = per_user.min(count - user * per_user);
                let user_id = uuid::Uuid::new_v4().hyphenated().to_string();
                for _ in 0..sessions {
                    store.insert(&synthetic(&user_id, now), None, now).await?;
                }
                let total = written.fetch_add(sessions, Ordering::Relaxed) + sessions;
                if total / 100_000 != (total - sessions) / 100_000 {
                    eprintln!(
                        "fill_redis: {total} sessions, {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    println!(
        "added={} seconds={:.1}",
        written.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn whole_millis(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(time.timestamp_millis()).unwrap_or(time)
}

/// A session as a node would have written it some time ago, alive for at least 28 minutes.
fn synthetic(user_id: &str, now: DateTime<Utc>) -> Session {
    let mut rng = rand::thread_rng();
    let created = now - Duration::milliseconds(rng.gen_range(10 * 60_000..6 * 3_600_000));
    let last_seen = now - Duration::milliseconds(rng.gen_range(0..2 * 60_000));
    Session {
        id: SessionSecret::generate().id(),
        user_id: user_id.to_owned(),
        created_at: created,
        last_seen_at: last_seen,
        idle_expires_at: last_seen + Duration::minutes(30),
        absolute_expires_at: created + Duration::hours(12),
        ip: Some(format!(
            "203.0.{}.{}",
            rng.gen_range(0..=255),
            rng.gen_range(1..=254)
        )),
        user_agent: Some(USER_AGENT.to_owned()),
        device: "Firefox on Linux".to_owned(),
        node: "node-1".to_owned(),
    }
}

async fn count(url: &str, prefix: &str) -> Result<(), Failure> {
    let store = RedisSessionStore::new(connect(url).await?, prefix.to_owned());
    println!("{}", store.counts(Utc::now()).await?.active_sessions);
    Ok(())
}

async fn memory(url: &str, prefix: &str, user_id: &str) -> Result<(), Failure> {
    let mut conn = connect(url).await?;
    let store = RedisSessionStore::new(conn.clone(), prefix.to_owned());
    let usage_conn = conn.clone();
    let usage = |key: String| {
        let mut conn = usage_conn.clone();
        async move {
            let bytes: Option<u64> = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(key)
                .arg("SAMPLES")
                .arg(0)
                .query_async(&mut conn)
                .await?;
            Ok::<u64, Failure>(bytes.unwrap_or(0))
        }
    };
    let user_key = store.user_key(user_id);
    let sessions: u64 = redis::cmd("HLEN")
        .arg(&user_key)
        .query_async(&mut conn)
        .await?;
    let user_bytes = usage(user_key).await?;
    // Prefixes here are plain (the benchmark's `ringfence:`): no glob characters to escape.
    let count_keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", store.counts_key()))
        .query_async(&mut conn)
        .await?;
    let mut count_bytes = 0;
    for key in &count_keys {
        count_bytes += usage(key.clone()).await?;
    }
    println!(
        "user_key={user_bytes} user_sessions={sessions} counts={count_bytes} count_keys={}",
        count_keys.len()
    );
    Ok(())
}
