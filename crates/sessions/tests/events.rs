//! Every session event reaches the log (with the hashed session id, never the secret) and the
//! counter, through the manager on the embedded store and a clock the test moves.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use ringfence_keyring::{KeyRing, ManualClock};
use ringfence_sessions::{
    ClientInfo, ResolveError, SessionConfig, SessionManager, SqliteSessionStore,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

mod common;

async fn manager(dir: &std::path::Path, clock: &ManualClock) -> SessionManager {
    let options = SqliteConnectOptions::new()
        .filename(dir.join("sessions.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(StdDuration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();
    let store = SqliteSessionStore::new(pool);
    store.migrate().await.unwrap();
    let keyring = KeyRing::in_memory(clock.shared());
    let config = SessionConfig {
        max_sessions_per_user: Some(2),
        ..SessionConfig::default()
    };
    SessionManager::new(Arc::new(store), &keyring, clock.shared(), config)
}

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-06-01T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn created_renewed_revoked_and_expired_are_logged_and_counted() {
    let captured = common::Captured::start();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start());
    let sessions = manager(dir.path(), &clock).await;
    let client = ClientInfo {
        ip: Some("198.51.100.7".into()),
        user_agent: Some(
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".into(),
        ),
    };

    let first = sessions.start("user-1", &client).await.unwrap();
    assert_eq!(captured.events("created"), 1);
    let created = captured.event_lines("created", first.session.id.as_str());
    assert_eq!(created.len(), 1, "{:?}", captured.log_lines());
    assert!(created[0].contains("user-1"), "{created:?}");

    // Renewed once per renewal interval (3 minutes of a 30-minute idle timeout), not per request.
    sessions.resolve(&first.cookie_value).await.unwrap();
    clock.advance(Duration::minutes(3));
    sessions.resolve(&first.cookie_value).await.unwrap();
    sessions.resolve(&first.cookie_value).await.unwrap();
    assert_eq!(captured.events("renewed"), 1);
    assert_eq!(
        captured
            .event_lines("renewed", first.session.id.as_str())
            .len(),
        1
    );

    // The cap (2 here) revokes the oldest, with the reason.
    let second = sessions.start("user-1", &client).await.unwrap();
    let third = sessions.start("user-1", &client).await.unwrap();
    assert_eq!(captured.events("created"), 3);
    assert_eq!(captured.events("revoked"), 1);
    let capped = captured.event_lines("revoked", first.session.id.as_str());
    assert!(capped.len() == 1 && capped[0].contains("cap"), "{capped:?}");

    // Sign-out.
    assert!(sessions.end(&second.session).await.unwrap());
    assert_eq!(captured.events("revoked"), 2);
    assert_eq!(
        captured
            .event_lines("revoked", second.session.id.as_str())
            .len(),
        1
    );

    // Idle past the timeout: the next request finds it over, once.
    clock.advance(Duration::minutes(31));
    assert!(matches!(
        sessions.resolve(&third.cookie_value).await,
        Err(ResolveError::NotFound)
    ));
    assert_eq!(captured.events("expired"), 1);
    assert_eq!(
        captured
            .event_lines("expired", third.session.id.as_str())
            .len(),
        1
    );
    assert!(sessions.resolve(&third.cookie_value).await.is_err());
    assert_eq!(captured.events("expired"), 1);

    // No line carries a cookie value (the sealed secret).
    for started in [&first, &second, &third] {
        assert!(captured
            .log_lines()
            .iter()
            .all(|line| !line.contains(&started.cookie_value)));
    }
}
