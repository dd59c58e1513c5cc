//! A complete accounts service on a temporary SQLite file, with real sessions and key ring.

#![allow(dead_code)]

pub mod mail;

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use ringfence_accounts::{
    Accounts, Argon2Params, Database, PasswordHasher, PasswordPolicy, ThrottlePolicy, UserStore,
};
use ringfence_keyring::{KeyRing, ManualClock};
use ringfence_sessions::{ClientInfo, SessionConfig, SessionManager, SqliteSessionStore};
use tempfile::TempDir;

pub const GOOD_PASSWORD: &str = "correct horse battery staple";
pub const OTHER_PASSWORD: &str = "violet kettle drums at dawn";

pub struct Fixture {
    pub accounts: Accounts,
    pub sessions: SessionManager,
    pub users: Arc<dyn UserStore>,
    pub clock: ManualClock,
    pub db: Database,
    pub _dir: TempDir,
}

pub fn start_time() -> DateTime<Utc> {
    // Nanoseconds on purpose: the service must store what it returns.
    Utc.with_ymd_and_hms(2025, 3, 4, 5, 6, 7).unwrap() + chrono::Duration::nanoseconds(123_456_789)
}

pub async fn fixture() -> Fixture {
    fixture_with(Argon2Params::OWASP).await
}

pub async fn fixture_with(params: Argon2Params) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ringfence.db").display());
    let db = Database::connect(&url).await.unwrap();
    let users = db.user_store().await.unwrap();
    // Sessions live in the same file, migrated by their own crate's migrator.
    let session_store = SqliteSessionStore::new(db.sqlite_pool().unwrap().clone());
    session_store.migrate().await.unwrap();
    let clock = ManualClock::new(start_time());
    let keyring = KeyRing::in_memory(clock.shared());
    let sessions = SessionManager::new(
        Arc::new(session_store),
        &keyring,
        clock.shared(),
        SessionConfig::default(),
    );
    let accounts = Accounts::new(
        Arc::clone(&users),
        PasswordHasher::new(params).unwrap(),
        PasswordPolicy::default(),
        sessions.clone(),
        clock.shared(),
    );
    Fixture {
        accounts,
        sessions,
        users,
        clock,
        db,
        _dir: dir,
    }
}

pub fn client() -> ClientInfo {
    ClientInfo {
        ip: Some("127.0.0.1".to_owned()),
        user_agent: Some(
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".to_owned(),
        ),
    }
}

impl Fixture {
    /// Registers `email` with [`GOOD_PASSWORD`].
    pub async fn register(&self, email: &str) -> ringfence_accounts::User {
        self.accounts.register(email, GOOD_PASSWORD).await.unwrap()
    }

    /// The accounts service with the sign-in throttle on `policy` (attempts in the SQLite file).
    pub async fn throttled_with(&self, policy: ThrottlePolicy) -> Accounts {
        let attempts = self.db.attempt_store().await.unwrap();
        self.accounts.clone().with_throttle(attempts, policy)
    }

    /// [`Fixture::throttled_with`] the default policy.
    pub async fn throttled(&self) -> Accounts {
        self.throttled_with(ThrottlePolicy::default()).await
    }

    /// Starts a session for the user `id` from [`client`].
    pub async fn start_session(&self, id: &str) -> ringfence_sessions::Session {
        self.sessions.start(id, &client()).await.unwrap().session
    }
}

/// Asserts that `value` matches `pattern`, showing the value when it does not.
#[macro_export]
macro_rules! assert_matches {
    ($value:expr, $pattern:pat) => {{
        let value = &$value;
        assert!(matches!(value, $pattern), "{value:?}");
    }};
}
