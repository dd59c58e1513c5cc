//! Session validation (cookie value -> session record) against the embedded SQLite store, the
//! work every authenticated request does.
//!
//! The session is fresh, so `resolve` never renews it here (renewal happens at most once per
//! `idle_timeout / renewal_fraction`, 3 minutes by default): what is measured is the read path,
//! unprotect plus one indexed `SELECT`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use ringfence_accounts::Database;
use ringfence_keyring::{KeyRing, SystemClock};
use ringfence_sessions::{
    ClientInfo, ResolveError, SessionConfig, SessionManager, SqliteSessionStore,
};

/// Other users' sessions in the table, so the lookup is not against a one-row table.
const OTHER_SESSIONS: usize = 1_000;

fn resolve(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());

    let (manager, cookie_value, database) = runtime.block_on(async {
        let database = Database::connect(&url).await.expect("open SQLite");
        let pool = database.sqlite_pool().expect("a SQLite pool").clone();
        let store = SqliteSessionStore::new(pool);
        store.migrate().await.expect("migrate");
        let clock = SystemClock::shared();
        let keyring = KeyRing::in_memory(clock.clone());
        let manager =
            SessionManager::new(Arc::new(store), &keyring, clock, SessionConfig::default());
        let client = ClientInfo {
            ip: Some("203.0.113.7".to_owned()),
            user_agent: Some(
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".to_owned(),
            ),
        };
        for n in 0..OTHER_SESSIONS {
            manager
                .start(&format!("user-{n}@example.com"), &client)
                .await
                .expect("start");
        }
        let started = manager
            .start("bench@example.com", &client)
            .await
            .expect("start");
        (manager, started.cookie_value, database)
    });

    // A real cookie with one character of the ciphertext changed: passes every cheap check and
    // fails only at the AES-GCM tag, the most expensive way to be rejected.
    let mut tampered = cookie_value.clone().into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("base64 is ASCII");
    // Cookie-shaped noise (valid base64url, plausible length) that fails the format check.
    let garbage = "x".repeat(cookie_value.len());

    runtime.block_on(async {
        let session = manager.resolve(&cookie_value).await.expect("resolves");
        assert_eq!(session.user_id, "bench@example.com");
        assert!(matches!(
            manager.resolve(&tampered).await,
            Err(ResolveError::Invalid)
        ));
        assert!(matches!(
            manager.resolve(&garbage).await,
            Err(ResolveError::Invalid)
        ));
    });

    let mut group = c.benchmark_group("session_resolve_sqlite");
    group.bench_function("valid", |b| {
        b.to_async(&runtime)
            .iter(|| async { manager.resolve(black_box(&cookie_value)).await.expect("ok") })
    });
    group.bench_function("tampered", |b| {
        b.to_async(&runtime)
            .iter(|| async { manager.resolve(black_box(&tampered)).await.is_err() })
    });
    group.bench_function("garbage", |b| {
        b.to_async(&runtime)
            .iter(|| async { manager.resolve(black_box(&garbage)).await.is_err() })
    });
    group.finish();

    runtime.block_on(database.close());
}

criterion_group!(benches, resolve);
criterion_main!(benches);
