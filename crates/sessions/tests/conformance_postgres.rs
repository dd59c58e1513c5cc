//! The PostgreSQL store against the shared conformance suite on a real PostgreSQL server, plus
//! what PostgreSQL promises beyond it: exact counts while several nodes write the same users at
//! once, revocation seen at once by another node, bounded sweeps that one node runs at a time,
//! the per-user index, expiry events, corrupt rows and outages as errors.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use ringfence_sessions::conformance::{self, base_now, sample_session, unique_user};
use ringfence_sessions::postgres_store::SWEEP_BATCH;
use ringfence_sessions::{PostgresSessionStore, SessionCounts, SessionStore};
use ringfence_testkit::PostgresServer;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

mod common;
mod sql_stores;

use sql_stores::Behind;

async fn start_server() -> PostgresServer {
    tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .unwrap()
        .expect("start PostgreSQL")
}

async fn pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(8)
        .connect(url)
        .await
        .unwrap()
}

/// A migrated store on a fresh database of `server`.
async fn fresh_store(server: &PostgresServer) -> PostgresSessionStore {
    let url = server.fresh_database().unwrap();
    let store = PostgresSessionStore::new(pool(&url).await);
    store.migrate().await.unwrap();
    store
}

/// What the table really holds at `now`, counted the slow way.
async fn counted_by_scan(pool: &PgPool, now: chrono::DateTime<chrono::Utc>) -> SessionCounts {
    let (sessions, users): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT user_id) FROM sessions WHERE expires_at > $1",
    )
    .bind(now.timestamp_millis())
    .fetch_one(pool)
    .await
    .unwrap();
    SessionCounts {
        active_sessions: sessions as u64,
        signed_in_users: users as u64,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_conformance() {
    let server = start_server().await;
    // Each check counts from an empty store, so each gets its own database.
    conformance::run_all(|| fresh_store(&server)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_stay_exact_while_several_nodes_write_the_same_users() {
    let server = start_server().await;
    let url = server.fresh_database().unwrap();
    // Four "nodes", each with its own pool on the one database.
    let mut nodes = Vec::new();
    for _ in 0..4 {
        let store = PostgresSessionStore::new(pool(&url).await);
        store.migrate().await.unwrap();
        nodes.push(Arc::new(store));
    }
    let now = base_now();
    let users: Vec<String> = (0..3).map(|_| unique_user("race")).collect();
    // Sessions that ended a minute ago, of these users and of others, so that sweeps (after
    // every insert) and per-user pruning run during the race too, locking several users.
    let then = now - Duration::minutes(31);
    let bystanders: Vec<String> = (0..20).map(|_| unique_user("gone")).collect();
    for user in users.iter().chain(&bystanders) {
        for _ in 0..3 {
            nodes[0]
                .insert(&sample_session(user, then), None, then)
                .await
                .unwrap();
        }
    }
    let mut tasks = Vec::new();
    for n in 0..48usize {
        let store = nodes[n % nodes.len()].clone();
        let user = users[n % users.len()].clone();
        tasks.push(tokio::spawn(async move {
            let s = sample_session(&user, now);
            store.insert(&s, Some(3), now).await.unwrap();
            match n % 4 {
                0 => {
                    store.remove(&user, &s.id, now).await.unwrap();
                }
                1 => {
                    store.remove_for_user(&user, None, now).await.unwrap();
                }
                2 => {
                    store.list_for_user(&user, now).await.unwrap();
                }
                // The insert swept already, quietly; this one must not fail either (a
                // deadlock between a sweep and a writer would).
                _ => {
                    store.sweep(now).await.unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let truth = counted_by_scan(nodes[0].pool(), now).await;
    assert_eq!(nodes[1].counts(now).await.unwrap(), truth);
    for user in &users {
        // The cap held under the race.
        assert!(nodes[2].count_for_user(user, now).await.unwrap() <= 3);
    }
    // And once everyone signs out, nothing is left in the totals.
    for user in &users {
        nodes[3].remove_for_user(user, None, now).await.unwrap();
    }
    assert_eq!(
        nodes[0].counts(now).await.unwrap(),
        SessionCounts::default()
    );
    let totals: (i64, i64) =
        sqlx::query_as("SELECT SUM(sessions)::BIGINT, SUM(users)::BIGINT FROM session_totals")
            .fetch_one(nodes[0].pool())
            .await
            .unwrap();
    assert_eq!(totals, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_node_refuses_the_session_on_another_at_once() {
    let server = start_server().await;
    let url = server.fresh_database().unwrap();
    let (one, other) = (
        PostgresSessionStore::new(pool(&url).await),
        PostgresSessionStore::new(pool(&url).await),
    );
    one.migrate().await.unwrap();
    let now = base_now();
    let user = unique_user("revoked");
    let phone = sample_session(&user, now);
    let laptop = sample_session(&user, now);
    one.insert(&phone, None, now).await.unwrap();
    other.insert(&laptop, None, now).await.unwrap();
    assert_eq!(
        other.get(&user, &phone.id, now).await.unwrap(),
        Some(phone.clone())
    );

    assert!(one.remove(&user, &phone.id, now).await.unwrap());
    assert_eq!(other.get(&user, &phone.id, now).await.unwrap(), None);
    // A renewal the other node had in flight does not bring it back.
    let mut late = phone.clone();
    late.last_seen_at = now + Duration::minutes(1);
    late.idle_expires_at = late.last_seen_at + Duration::minutes(30);
    assert!(!other.touch(&late, late.last_seen_at).await.unwrap());
    // "Sign out everywhere" from the other node ends the first node's session too.
    assert_eq!(
        other.remove_for_user(&user, None, now).await.unwrap(),
        vec![laptop.id.clone()]
    );
    assert_eq!(one.get(&user, &laptop.id, now).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_are_bounded_and_one_node_sweeps_at_a_time() {
    let server = start_server().await;
    let store = fresh_store(&server).await;
    let now = base_now();
    let rows = || Behind(store.pool()).session_rows();
    let dead = SWEEP_BATCH + 44;
    for n in 0..dead {
        let s = sample_session(&format!("user-{n}"), now);
        // Without the insert's own sweep: written the way a node long gone left them.
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, last_seen_at, idle_expires_at, \
             absolute_expires_at, expires_at, ip, user_agent, device, node) \
             VALUES ($1, $2, $3, $3, $4, $5, $4, NULL, NULL, 'd', 'n')",
        )
        .bind(s.id.as_str())
        .bind(&s.user_id)
        .bind(s.created_at.timestamp_millis())
        .bind(s.idle_expires_at.timestamp_millis())
        .bind(s.absolute_expires_at.timestamp_millis())
        .execute(store.pool())
        .await
        .unwrap();
    }
    assert_eq!(rows().await, dead);
    let later = now + Duration::days(1);
    // The counts are exact before anything is deleted (the backlog is subtracted).
    assert_eq!(
        counted_by_scan(store.pool(), later).await,
        SessionCounts::default()
    );

    // Another node is sweeping: this one skips instead of waiting.
    let mut holder = store.pool().begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(x'72667377'::INTEGER, 0)")
        .execute(&mut *holder)
        .await
        .unwrap();
    assert_eq!(store.sweep(later).await.unwrap(), 0);
    holder.rollback().await.unwrap();

    // One batch per sweep, oldest expiry first; the next sign-in takes the rest.
    assert_eq!(store.sweep(later).await.unwrap(), SWEEP_BATCH as usize);
    assert_eq!(rows().await, dead - SWEEP_BATCH);
    let fresh = sample_session("someone-else", later);
    store.insert(&fresh, None, later).await.unwrap();
    assert_eq!(rows().await, 1);
    assert_eq!(
        store.counts(later).await.unwrap(),
        SessionCounts {
            active_sessions: 1,
            signed_in_users: 1
        }
    );
    // Live rows are never swept.
    assert_eq!(store.sweep(later).await.unwrap(), 0);
    assert_eq!(rows().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_user_queries_use_the_user_index() {
    let server = start_server().await;
    let store = fresh_store(&server).await;
    let mut conn = store.pool().acquire().await.unwrap();
    // The planner would scan a table this small whatever the indexes; forbid it to see which
    // index it can use instead.
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .unwrap();
    for query in [
        "SELECT id FROM sessions WHERE user_id = 'u' AND expires_at > 0 \
         ORDER BY last_seen_at DESC",
        "SELECT COUNT(*) FROM sessions WHERE user_id = 'u' AND expires_at > 0",
        "DELETE FROM sessions WHERE user_id = 'u' AND expires_at <= 0",
    ] {
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {query}"))
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        assert!(
            plan.iter().any(|line| line.contains("sessions_user_id")),
            "{query}: {plan:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_is_idempotent_concurrent_and_ignores_other_crates_versions() {
    let server = start_server().await;
    let url = server.fresh_database().unwrap();
    let shared = pool(&url).await;
    // Another crate's migrator ran first on the same database (its own version range).
    let other = sql_stores::other_crates_migrator().await;
    other.run(&shared).await.unwrap();

    // Several nodes start at once.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            PostgresSessionStore::new(pool(&url).await).migrate().await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let store = PostgresSessionStore::new(shared.clone());
    store.migrate().await.unwrap();
    other.run(&shared).await.unwrap();
    assert_eq!(Behind(&shared).migration_versions().await, vec![1, 2001]);
    let stripes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM session_totals")
        .fetch_one(&shared)
        .await
        .unwrap();
    assert_eq!(stripes, 16);
    store.ping().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn expired_rows_are_logged_and_counted_once_as_they_go() {
    let server = start_server().await;
    let captured = common::Captured::start();
    let store = fresh_store(&server).await;
    let now = base_now();
    let (a, b) = sql_stores::alice_and_bob_signed_in(&store, &captured, now).await;
    let alice = &a.user_id;

    // Reading a dead session deletes nothing (the request path stays read-only)...
    let later = now + Duration::minutes(30);
    assert_eq!(store.get(alice, &a.id, later).await.unwrap(), None);
    assert_eq!(captured.events("expired"), 0);
    // ...Alice's next listing deletes hers.
    assert!(store.list_for_user(alice, later).await.unwrap().is_empty());
    assert_eq!(captured.events("expired"), 1);
    assert_eq!(captured.event_lines("expired", a.id.as_str()).len(), 1);
    // Nobody asks for Bob's: the sweep after counting deletes it.
    assert_eq!(store.counts(later).await.unwrap().active_sessions, 0);
    assert_eq!(captured.events("expired"), 2);
    assert_eq!(captured.event_lines("expired", b.id.as_str()).len(), 1);
    // Each expiry once; revocations are not expiries.
    assert_eq!(store.counts(later).await.unwrap().signed_in_users, 0);
    sql_stores::a_revocation_is_no_expiry(&store, &captured, alice, later, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rows_and_a_stopped_server_are_errors_not_panics() {
    let mut server = start_server().await;
    // Fail fast once the server is gone (the pool's default waits 30 s for a connection).
    let url = server.fresh_database().unwrap();
    let fast = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(StdDuration::from_secs(2))
        .connect(&url)
        .await
        .unwrap();
    let store = PostgresSessionStore::new(fast);
    store.migrate().await.unwrap();
    let now = base_now();
    let s = Behind(store.pool())
        .unreadable_rows_are_corrupt(
            &store,
            "UPDATE sessions SET created_at = 9223372036854775807",
            now,
        )
        .await;

    tokio::task::block_in_place(|| server.stop());
    sql_stores::an_outage_is_unavailable(&store, &s, now).await;
}
