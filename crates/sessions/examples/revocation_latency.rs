//! Measures how long a revocation on node A takes to be refused by node B when B answers the
//! session from its cache (bench/load.sh, step v).
//!
//! ```text
//! revocation_latency REDIS_URL PREFIX TRIALS
//! ```
//!
//! Two nodes in one process: two `SessionManager`s sharing one key ring, each on its own
//! `CachedSessionStore` with its own tracking connection to REDIS_URL, exactly as `ringfence
//! serve` wires them. Each trial signs a new session in on A, has B read it until B answers it
//! from memory, then starts A's revocation and has B resolve the cookie in a loop until B
//! refuses it. The time from the start of the revocation to B's first refusal is the trial's
//! latency (no HTTP: it is the propagation itself, plus one `resolve` on B). Prints
//! `trials=N p50_us=… p99_us=… max_us=… revoke_p50_us=…` (the last: A's own revocation call).
//!
//! Build it with `cargo build --release -p ringfence-sessions --example revocation_latency`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use redis::{IntoConnectionInfo, ProtocolVersion};
use ringfence_keyring::tracking::Tracker;
use ringfence_keyring::{KeyRing, SystemClock};
use ringfence_sessions::cache::{DEFAULT_CAPACITY, DEFAULT_LEASE};
use ringfence_sessions::{
    CachedSessionStore, ClientInfo, RedisSessionStore, ResolveError, SessionCache, SessionConfig,
    SessionManager,
};
use tokio::time::{timeout, Instant};

type Failure = Box<dyn std::error::Error + Send + Sync>;

struct Node {
    manager: SessionManager,
    cache: Arc<SessionCache>,
    _tracker: Tracker,
}

async fn node(url: &str, prefix: &str, keyring: &KeyRing) -> Result<Node, Failure> {
    let conn = redis::Client::open(url)?.get_connection_manager().await?;
    let cache = Arc::new(SessionCache::new(DEFAULT_CAPACITY, DEFAULT_LEASE));
    let store = Arc::new(CachedSessionStore::new(
        RedisSessionStore::new(conn, prefix.to_owned()),
        cache.clone(),
    ));
    let info = url.into_connection_info()?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let tracker = Tracker::spawn(
        redis::Client::open(info.set_redis_settings(settings))?,
        vec![store.listener()],
    );
    let manager = SessionManager::new(
        store,
        keyring,
        SystemClock::shared(),
        SessionConfig::default(),
    );
    let mut changes = cache.changes();
    timeout(Duration::from_secs(5), async {
        while !cache.is_trusted() {
            if changes.changed().await.is_err() {
                return;
            }
        }
    })
    .await
    .map_err(|_| "the tracking connection did not come up within 5 s")?;
    Ok(Node {
        manager,
        cache,
        _tracker: tracker,
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn run(url: &str, prefix: &str, trials: usize) -> Result<String, Failure> {
    let keyring = KeyRing::in_memory(SystemClock::shared());
    let a = node(url, prefix, &keyring).await?;
    let b = node(url, prefix, &keyring).await?;
    let client = ClientInfo {
        ip: Some("192.0.2.1".to_owned()),
        user_agent: Some("revocation-latency".to_owned()),
    };
    let mut latencies = Vec::with_capacity(trials);
    let mut revokes = Vec::with_capacity(trials);
    for trial in 0..trials {
        let user = format!("revocation-{trial}");
        let mut changes = b.cache.changes();
        changes.mark_unchanged();
        let started = a.manager.start(&user, &client).await?;
        // B hears of the sign-in, then reads the session into its cache.
        timeout(Duration::from_secs(1), changes.changed())
            .await
            .map_err(|_| "node B never heard of a sign-in")??;
        let cookie = started.cookie_value;
        let mut cached = false;
        for _ in 0..100 {
            b.manager.resolve(&cookie).await?;
            if !b.cache.is_empty() {
                cached = true;
                break;
            }
        }
        if !cached {
            return Err("node B never cached the session".into());
        }

        let began = Instant::now();
        let revoke = {
            let manager = a.manager.clone();
            let id = started.session.id.clone();
            tokio::spawn(async move {
                let result = manager.end_by_id(&user, &id).await;
                (result, began.elapsed())
            })
        };
        let refused = timeout(Duration::from_secs(2), async {
            loop {
                match b.manager.resolve(&cookie).await {
                    Err(ResolveError::NotFound) => return Ok(began.elapsed()),
                    Ok(_) => tokio::task::yield_now().await,
                    Err(other) => return Err(format!("node B answered {other:?}")),
                }
            }
        })
        .await
        .map_err(|_| "node B still accepted a revoked session after 2 s")??;
        let (result, revoke_took) = revoke.await?;
        result?;
        latencies.push(refused);
        revokes.push(revoke_took);
    }
    latencies.sort();
    revokes.sort();
    let us = |d: Duration| d.as_micros();
    Ok(format!(
        "trials={trials} p50_us={} p99_us={} max_us={} revoke_p50_us={}",
        us(percentile(&latencies, 50.0)),
        us(percentile(&latencies, 99.0)),
        us(percentile(&latencies, 100.0)),
        us(percentile(&revokes, 50.0)),
    ))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, prefix, trials] = args.as_slice() else {
        eprintln!("usage: revocation_latency REDIS_URL PREFIX TRIALS");
        return ExitCode::from(2);
    };
    let Ok(trials) = trials.parse::<usize>() else {
        eprintln!("revocation_latency: TRIALS must be a positive number, not {trials:?}");
        return ExitCode::from(2);
    };
    if trials == 0 {
        eprintln!("revocation_latency: TRIALS must be a positive number");
        return ExitCode::from(2);
    }
    match run(url, prefix, trials).await {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("revocation_latency: {error}");
            ExitCode::FAILURE
        }
    }
}
