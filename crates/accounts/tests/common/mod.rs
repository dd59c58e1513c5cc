//! A complete accounts service on a temporary SQLite file, with real sessions and key ring.

#![allow(dead_code)]

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use ringfence_accounts::{
    AccountError, Accounts, Argon2Params, Database, PasswordHasher, PasswordPolicy, ThrottlePolicy,
    User, UserStore,
};
use ringfence_keyring::{KeyRing, ManualClock};
use ringfence_sessions::{ClientInfo, SessionConfig, SessionManager, SqliteSessionStore};
use tempfile::TempDir;

pub const GOOD_PASSWORD: &str = "correct horse battery staple";
pub const OTHER_PASSWORD: &str = "violet kettle drums at dawn";

/// Argon2 parameters cheaper than today's ([`Argon2Params::OWASP`]): a hash made with them is
/// upgraded at the next sign-in on a service that hashes with today's.
pub const OLD_PARAMS: Argon2Params = Argon2Params {
    m_cost_kib: 8 * 1024,
    t_cost: 1,
    p_cost: 1,
};
/// How a hash made with [`OLD_PARAMS`] starts.
pub const OLD_HASH_PREFIX: &str = "$argon2id$v=19$m=8192,t=1,p=1$";
/// How a hash made with today's parameters ([`Argon2Params::OWASP`]) starts.
pub const OWASP_HASH_PREFIX: &str = "$argon2id$v=19$m=19456,t=2,p=1$";

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

    /// Signs `email` in with `password`, which must work; the user.
    pub async fn sign_in(&self, email: &str, password: &str) -> User {
        self.accounts.authenticate(email, password).await.unwrap()
    }

    /// Signs `email` in with `password`, which must be refused; the error.
    pub async fn sign_in_refused(&self, email: &str, password: &str) -> AccountError {
        self.accounts
            .authenticate(email, password)
            .await
            .unwrap_err()
    }

    /// Registers `email` with `password`, which must be refused; the error.
    pub async fn register_refused(&self, email: &str, password: &str) -> AccountError {
        self.accounts.register(email, password).await.unwrap_err()
    }

    /// The password hash stored for the user `id`.
    pub async fn password_hash(&self, id: &str) -> String {
        self.users.by_id(id).await.unwrap().unwrap().password_hash
    }

    /// A second accounts service on the same stores and clock that hashes with today's
    /// parameters ([`Argon2Params::OWASP`]), as after an upgrade of the server.
    pub fn with_owasp_hasher(&self) -> Accounts {
        Accounts::new(
            Arc::clone(&self.users),
            PasswordHasher::new(Argon2Params::OWASP).unwrap(),
            PasswordPolicy::default(),
            self.sessions.clone(),
            self.clock.shared(),
        )
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
