//! Session policy on top of a [`SessionStore`]: cookie protection, idle and absolute timeouts,
//! sliding renewal without a write per request, the per-user cap, logging and metrics.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use ringfence_keyring::{add_saturating, KeyRing, Protector, SharedClock};
use zeroize::Zeroizing;

use crate::device::device_label;
use crate::events::{self, Event};
use crate::id::SECRET_LEN;
use crate::{
    ClientInfo, Session, SessionCounts, SessionId, SessionSecret, SessionStore, StoreError,
    UserWatch,
};

/// Key-ring purpose of session cookies; a payload made for any other purpose never opens here.
pub const SESSION_PURPOSE: &str = "ringfence.session.v1";

/// Longest cookie value [`SessionManager::resolve`] looks at. A real one is about 100 bytes;
/// anything larger is refused before any decoding or cryptography.
pub const MAX_COOKIE_VALUE_LEN: usize = 4096;

/// Session policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// A session unused this long is over.
    pub idle_timeout: Duration,
    /// A session this old is over, however active.
    pub absolute_timeout: Duration,
    /// Renew (write `last_seen_at` and a new idle expiry) only when at least
    /// `idle_timeout / renewal_fraction` has passed since `last_seen_at`, so an active user costs
    /// one store write per that interval instead of one per request. The price: the idle
    /// timeout is honoured to within that interval. 0 is treated as 1.
    pub renewal_fraction: u32,
    /// Most active sessions a user may have; signing in beyond it ends the oldest ones. `None`
    /// (the default) still stops at [`SESSION_CEILING`].
    pub max_sessions_per_user: Option<u32>,
    /// Recorded in each session this node creates ("which node signed me in").
    pub node_name: String,
}

impl Default for SessionConfig {
    /// 30 minutes idle, 12 hours absolute, renewal after a tenth of the idle timeout, no cap,
    /// node "localhost".
    fn default() -> Self {
        Self {
            idle_timeout: Duration::minutes(30),
            absolute_timeout: Duration::hours(12),
            renewal_fraction: 10,
            max_sessions_per_user: None,
            node_name: "localhost".to_owned(),
        }
    }
}

/// The most sessions one user can hold whatever the configuration: beyond it, signing in ends
/// the oldest. No person has a thousand devices; without a ceiling one account signing in in a
/// loop could grow its per-user data without bound, and every write for that user (a Lua script
/// over the user's hash on Redis) would cost time proportional to it, for every node.
pub const SESSION_CEILING: u32 = 1000;

impl SessionConfig {
    /// The cap actually applied: the configured one, at most [`SESSION_CEILING`].
    pub fn effective_cap(&self) -> u32 {
        self.max_sessions_per_user
            .map_or(SESSION_CEILING, |cap| cap.min(SESSION_CEILING))
    }

    /// The least time between two renewals of one session.
    pub fn renewal_interval(&self) -> Duration {
        let fraction = i32::try_from(self.renewal_fraction.max(1)).unwrap_or(i32::MAX);
        self.idle_timeout / fraction
    }
}

/// A session just created, with the value to put in the browser's cookie.
#[derive(Clone)]
pub struct StartedSession {
    /// The stored record.
    pub session: Session,
    /// The protected session reference (secret and user id, sealed by the key ring). A bearer
    /// credential: goes into the cookie and nowhere else.
    pub cookie_value: String,
}

impl fmt::Debug for StartedSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartedSession")
            .field("session", &self.session)
            .field("cookie_value", &"..")
            .finish()
    }
}

/// Why a cookie did not resolve to a session.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Tampered, malformed, oversized, under an unknown or revoked key, or made for another
    /// purpose: treat the request as signed out.
    #[error("session cookie is invalid")]
    Invalid,
    /// The session was revoked or never existed.
    #[error("session not found")]
    NotFound,
    /// The record still exists but the current policy ends it (for example a timeout shortened
    /// since it was created). Stores never return sessions past their stored expiry, so one that
    /// simply ran out reads as [`ResolveError::NotFound`].
    #[error("session expired")]
    Expired,
    /// The store failed; answer `503`, do not sign the user out.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates, resolves, renews and ends sessions. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct SessionManager {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn SessionStore>,
    protector: Protector,
    clock: SharedClock,
    config: SessionConfig,
}

impl fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManager")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl SessionManager {
    /// A manager storing sessions in `store` and sealing cookies with `keyring` under
    /// [`SESSION_PURPOSE`].
    pub fn new(
        store: Arc<dyn SessionStore>,
        keyring: &KeyRing,
        clock: SharedClock,
        config: SessionConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                protector: keyring.protector(SESSION_PURPOSE),
                clock,
                config,
            }),
        }
    }

    /// The policy.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// The clock every decision is made against.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.inner.store
    }

    /// Now, at the stores' millisecond precision, so a session held in memory equals the one
    /// read back.
    fn now(&self) -> DateTime<Utc> {
        let now = self.inner.clock.now();
        DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
    }

    /// Signs `user_id` in: a new session with a fresh secret (never reused, so a session id
    /// fixed before sign-in means nothing) and the cookie value that carries it.
    ///
    /// A key ring with no usable key is reported as [`StoreError::Unavailable`]: like a store
    /// outage, it is the server's problem and worth a retry.
    pub async fn start(
        &self,
        user_id: &str,
        client: &ClientInfo,
    ) -> Result<StartedSession, StoreError> {
        let config = &self.inner.config;
        let now = self.now();
        let secret = SessionSecret::generate();
        let user_agent = client.stored_user_agent();
        let session = Session {
            id: secret.id(),
            user_id: user_id.to_owned(),
            created_at: now,
            last_seen_at: now,
            idle_expires_at: add_saturating(now, config.idle_timeout),
            absolute_expires_at: add_saturating(now, config.absolute_timeout),
            ip: client.stored_ip(),
            device: device_label(user_agent.as_deref()),
            user_agent,
            node: config.node_name.clone(),
        };

        // Seal before storing, so a key-ring failure leaves no orphan record behind.
        let mut plaintext = Zeroizing::new(Vec::with_capacity(SECRET_LEN + user_id.len()));
        plaintext.extend_from_slice(secret.as_bytes());
        plaintext.extend_from_slice(user_id.as_bytes());
        let cookie_value = self
            .inner
            .protector
            .protect(&plaintext)
            .map_err(|e| StoreError::Unavailable(format!("key ring: {e}")))?;

        let evicted = self
            .inner
            .store
            .insert(&session, Some(config.effective_cap()), now)
            .await?;
        events::session(Event::Created, &session.id, user_id);
        for id in &evicted {
            events::session_because(Event::Revoked, "cap", id, user_id);
        }
        Ok(StartedSession {
            session,
            cookie_value,
        })
    }

    /// The session a cookie value stands for, renewing it when the renewal interval has passed.
    pub async fn resolve(&self, cookie_value: &str) -> Result<Session, ResolveError> {
        if cookie_value.is_empty() || cookie_value.len() > MAX_COOKIE_VALUE_LEN {
            return Err(ResolveError::Invalid);
        }
        let plaintext = Zeroizing::new(
            self.inner
                .protector
                .unprotect(cookie_value)
                .await
                .map_err(|_| ResolveError::Invalid)?,
        );
        if plaintext.len() <= SECRET_LEN {
            return Err(ResolveError::Invalid);
        }
        let (secret, user_id) = plaintext.split_at(SECRET_LEN);
        let secret = SessionSecret::from_bytes(secret).ok_or(ResolveError::Invalid)?;
        let user_id = std::str::from_utf8(user_id).map_err(|_| ResolveError::Invalid)?;
        let id = secret.id();

        let store = &self.inner.store;
        let config = &self.inner.config;
        let now = self.now();
        let found = match store.get(user_id, &id, now).await {
            Err(StoreError::Corrupt(detail)) => {
                // The record cannot be read, so the session cannot be checked: it ends here
                // (the client is asked to sign in again) rather than answering 503 on every
                // request until the damaged record expires.
                tracing::error!(session = %id, user_id, %detail, "unreadable session record; ending the session");
                if let Err(error) = store.remove(user_id, &id, now).await {
                    tracing::warn!(%error, session = %id, "could not delete an unreadable session record");
                }
                events::session_because(Event::Revoked, "unreadable", &id, user_id);
                return Err(ResolveError::NotFound);
            }
            other => other?,
        };
        let mut session = found.ok_or(ResolveError::NotFound)?;
        if session.user_id != user_id || session.id != id || !session.is_active(now) {
            // A store handing back another session, or an expired one, breaks its contract;
            // never let that sign anyone in.
            return Err(ResolveError::NotFound);
        }

        let idle_over = now - session.last_seen_at >= config.idle_timeout;
        let absolute_over = now - session.created_at >= config.absolute_timeout;
        if idle_over || absolute_over {
            if let Err(error) = store.remove(user_id, &id, now).await {
                tracing::warn!(%error, session = %id, "could not delete a session past its timeout");
            }
            let reason = if absolute_over { "absolute" } else { "idle" };
            events::session_because(Event::Expired, reason, &id, user_id);
            return Err(ResolveError::Expired);
        }

        if now - session.last_seen_at >= config.renewal_interval() {
            session.last_seen_at = now;
            session.idle_expires_at = add_saturating(now, config.idle_timeout);
            if !store.touch(&session, now).await? {
                // Revoked between our read and our write: it stays revoked.
                return Err(ResolveError::NotFound);
            }
            events::session(Event::Renewed, &id, user_id);
        }
        Ok(session)
    }

    /// Tells every node that something of `user_id` kept outside the session store changed
    /// (their second factors), so that what nodes keep under [`SessionManager::user_watch`]
    /// is dropped (see [`SessionStore::announce_user_change`]).
    pub async fn announce_user_change(&self, user_id: &str) -> Result<(), StoreError> {
        self.inner
            .store
            .announce_user_change(user_id, self.now())
            .await
    }

    /// A watch on `user_id`'s data, to keep something derived from it only while
    /// [`SessionManager::user_unchanged`]; `None` when this node hears no changes (see
    /// [`SessionStore::user_watch`]).
    pub fn user_watch(&self, user_id: &str) -> Option<UserWatch> {
        self.inner.store.user_watch(user_id)
    }

    /// Whether nothing of `user_id` changed since `watch` was taken, on any node.
    pub fn user_unchanged(&self, user_id: &str, watch: &UserWatch) -> bool {
        self.inner.store.user_unchanged(user_id, watch)
    }

    /// Ends this session (sign out); `true` when it still existed.
    pub async fn end(&self, session: &Session) -> Result<bool, StoreError> {
        self.end_by_id(&session.user_id, &session.id).await
    }

    /// Ends one session of a user ("sign out that device"); `true` when it existed. Only that
    /// user's sessions can be reached this way.
    pub async fn end_by_id(&self, user_id: &str, id: &SessionId) -> Result<bool, StoreError> {
        let removed = self.inner.store.remove(user_id, id, self.now()).await?;
        if removed {
            events::session(Event::Revoked, id, user_id);
        }
        Ok(removed)
    }

    /// Ends every session of a user except `keep` ("sign out everywhere else"); returns how
    /// many ended.
    pub async fn end_others(&self, user_id: &str, keep: &SessionId) -> Result<u64, StoreError> {
        self.end_many(user_id, Some(keep)).await
    }

    /// Ends every session of a user (password reset, account disabled); returns how many ended.
    pub async fn end_all(&self, user_id: &str) -> Result<u64, StoreError> {
        self.end_many(user_id, None).await
    }

    async fn end_many(&self, user_id: &str, keep: Option<&SessionId>) -> Result<u64, StoreError> {
        let removed = self
            .inner
            .store
            .remove_for_user(user_id, keep, self.now())
            .await?;
        for id in &removed {
            events::session(Event::Revoked, id, user_id);
        }
        Ok(u64::try_from(removed.len()).unwrap_or(u64::MAX))
    }

    /// A user's active sessions, most recently seen first.
    pub async fn list(&self, user_id: &str) -> Result<Vec<Session>, StoreError> {
        self.inner.store.list_for_user(user_id, self.now()).await
    }

    /// How many active sessions a user has (admin tools).
    pub async fn count_for_user(&self, user_id: &str) -> Result<u64, StoreError> {
        self.inner.store.count_for_user(user_id, self.now()).await
    }

    /// Any user's active session by id (admin tools).
    pub async fn find(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        self.inner.store.find(id, self.now()).await
    }

    /// Up to `limit` active sessions of all users, most recently seen first (admin tools).
    pub async fn list_all(&self, limit: usize) -> Result<Vec<Session>, StoreError> {
        self.inner.store.list_all(limit, self.now()).await
    }

    /// Active sessions and signed-in users.
    pub async fn counts(&self) -> Result<SessionCounts, StoreError> {
        self.inner.store.counts(self.now()).await
    }

    /// Checks that the store answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.inner.store.ping().await
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use ringfence_keyring::ManualClock;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    use super::*;
    use crate::SqliteSessionStore;

    /// Counts writes reaching the real store underneath.
    struct CountingStore {
        inner: SqliteSessionStore,
        touches: AtomicUsize,
        /// Plays a sign-out from another node landing between a request's read and its renewal.
        revoke_before_touch: std::sync::atomic::AtomicBool,
        /// The cap the last insert was given.
        last_cap: std::sync::Mutex<Option<u32>>,
        /// Plays a damaged record: `get` answers `Corrupt`.
        corrupt_get: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl SessionStore for CountingStore {
        async fn insert(
            &self,
            session: &Session,
            cap: Option<u32>,
            now: DateTime<Utc>,
        ) -> Result<Vec<SessionId>, StoreError> {
            *self.last_cap.lock().unwrap_or_else(|p| p.into_inner()) = cap;
            self.inner.insert(session, cap, now).await
        }
        async fn get(
            &self,
            user_id: &str,
            id: &SessionId,
            now: DateTime<Utc>,
        ) -> Result<Option<Session>, StoreError> {
            if self.corrupt_get.load(Ordering::SeqCst) {
                return Err(StoreError::Corrupt("test".to_owned()));
            }
            self.inner.get(user_id, id, now).await
        }
        async fn touch(&self, session: &Session, now: DateTime<Utc>) -> Result<bool, StoreError> {
            self.touches.fetch_add(1, Ordering::SeqCst);
            if self.revoke_before_touch.load(Ordering::SeqCst) {
                self.inner
                    .remove(&session.user_id, &session.id, now)
                    .await?;
            }
            self.inner.touch(session, now).await
        }
        async fn remove(
            &self,
            user_id: &str,
            id: &SessionId,
            now: DateTime<Utc>,
        ) -> Result<bool, StoreError> {
            self.inner.remove(user_id, id, now).await
        }
        async fn remove_for_user(
            &self,
            user_id: &str,
            keep: Option<&SessionId>,
            now: DateTime<Utc>,
        ) -> Result<Vec<SessionId>, StoreError> {
            self.inner.remove_for_user(user_id, keep, now).await
        }
        async fn list_for_user(
            &self,
            user_id: &str,
            now: DateTime<Utc>,
        ) -> Result<Vec<Session>, StoreError> {
            self.inner.list_for_user(user_id, now).await
        }
        async fn find(
            &self,
            id: &SessionId,
            now: DateTime<Utc>,
        ) -> Result<Option<Session>, StoreError> {
            self.inner.find(id, now).await
        }
        async fn list_all(
            &self,
            limit: usize,
            now: DateTime<Utc>,
        ) -> Result<Vec<Session>, StoreError> {
            self.inner.list_all(limit, now).await
        }
        async fn counts(&self, now: DateTime<Utc>) -> Result<SessionCounts, StoreError> {
            self.inner.counts(now).await
        }
        async fn ping(&self) -> Result<(), StoreError> {
            self.inner.ping().await
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        clock: ManualClock,
        keyring: KeyRing,
        store: Arc<CountingStore>,
        manager: SessionManager,
    }

    impl Fixture {
        fn touches(&self) -> usize {
            self.store.touches.load(Ordering::SeqCst)
        }
    }

    async fn fixture(config: SessionConfig) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("sessions.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .unwrap();
        let inner = SqliteSessionStore::new(pool);
        inner.migrate().await.unwrap();
        let store = Arc::new(CountingStore {
            inner,
            touches: AtomicUsize::new(0),
            revoke_before_touch: Default::default(),
            last_cap: Default::default(),
            corrupt_get: Default::default(),
        });
        // An odd sub-millisecond start proves times are normalised to the stores' precision.
        let start = DateTime::parse_from_rfc3339("2025-03-01T08:00:00.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = ManualClock::new(start);
        let keyring = KeyRing::in_memory(clock.shared());
        let manager = SessionManager::new(store.clone(), &keyring, clock.shared(), config);
        Fixture {
            _dir: dir,
            clock,
            keyring,
            store,
            manager,
        }
    }

    fn firefox() -> ClientInfo {
        ClientInfo {
            ip: Some("198.51.100.7".into()),
            user_agent: Some(
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".into(),
            ),
        }
    }

    #[tokio::test]
    async fn start_then_resolve() {
        let f = fixture(SessionConfig {
            node_name: "node-7".into(),
            ..SessionConfig::default()
        })
        .await;
        let started = f.manager.start("user-1", &firefox()).await.unwrap();
        let s = &started.session;
        assert_eq!(s.user_id, "user-1");
        assert_eq!(s.device, "Firefox on Linux");
        assert_eq!(s.ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(s.node, "node-7");
        assert_eq!(s.idle_expires_at - s.created_at, Duration::minutes(30));
        assert_eq!(s.absolute_expires_at - s.created_at, Duration::hours(12));
        assert!(!started.cookie_value.contains(s.id.as_str()));
        assert!(!format!("{started:?}").contains(&started.cookie_value));

        let resolved = f.manager.resolve(&started.cookie_value).await.unwrap();
        assert_eq!(&resolved, s);

        // A second sign-in is a different session with a different cookie.
        let again = f.manager.start("user-1", &firefox()).await.unwrap();
        assert_ne!(again.session.id, s.id);
        assert_ne!(again.cookie_value, started.cookie_value);
        assert_eq!(f.manager.list("user-1").await.unwrap().len(), 2);
        assert_eq!(
            f.manager.counts().await.unwrap(),
            SessionCounts {
                active_sessions: 2,
                signed_in_users: 1
            }
        );
        assert_eq!(f.manager.find(&s.id).await.unwrap().as_ref(), Some(s));
        assert_eq!(f.manager.list_all(10).await.unwrap().len(), 2);
        f.manager.ping().await.unwrap();
    }

    #[tokio::test]
    async fn finding_09_huge_timeouts_do_not_panic() {
        let f = fixture(SessionConfig {
            idle_timeout: Duration::MAX,
            absolute_timeout: Duration::MAX,
            renewal_fraction: 1,
            ..SessionConfig::default()
        })
        .await;
        let started = f.manager.start("u", &firefox()).await.unwrap();
        f.clock.advance(Duration::days(400));
        f.manager.resolve(&started.cookie_value).await.unwrap();
    }

    #[tokio::test]
    async fn idle_timeout_refuses() {
        let f = fixture(SessionConfig::default()).await;
        let started = f.manager.start("u", &firefox()).await.unwrap();
        f.clock.advance(Duration::minutes(29));
        f.manager.resolve(&started.cookie_value).await.unwrap();

        let other = f.manager.start("u", &firefox()).await.unwrap();
        f.clock.advance(Duration::minutes(30));
        assert!(matches!(
            f.manager.resolve(&other.cookie_value).await,
            Err(ResolveError::NotFound)
        ));
    }

    #[tokio::test]
    async fn activity_keeps_session_alive_past_original_idle_expiry() {
        let f = fixture(SessionConfig::default()).await;
        let started = f.manager.start("u", &firefox()).await.unwrap();
        let original_idle_expiry = started.session.idle_expires_at;
        // A request every 20 minutes for two hours.
        for _ in 0..6 {
            f.clock.advance(Duration::minutes(20));
            let s = f.manager.resolve(&started.cookie_value).await.unwrap();
            assert_eq!(s.last_seen_at, f.manager.now());
        }
        assert!(f.manager.now() > original_idle_expiry + Duration::minutes(60));
        assert_eq!(f.touches(), 6);
        // Then silence beyond the idle timeout ends it.
        f.clock.advance(Duration::minutes(30));
        assert!(matches!(
            f.manager.resolve(&started.cookie_value).await,
            Err(ResolveError::NotFound)
        ));
    }

    #[tokio::test]
    async fn absolute_timeout_refuses_even_an_active_session() {
        let f = fixture(SessionConfig {
            absolute_timeout: Duration::hours(2),
            ..SessionConfig::default()
        })
        .await;
        let started = f.manager.start("u", &firefox()).await.unwrap();
        for _ in 0..11 {
            f.clock.advance(Duration::minutes(10));
            f.manager.resolve(&started.cookie_value).await.unwrap();
        }
        // 1h50 in, active every 10 minutes; at 2h it ends regardless.
        f.clock.advance(Duration::minutes(10));
        assert!(matches!(
            f.manager.resolve(&started.cookie_value).await,
            Err(ResolveError::NotFound)
        ));
        assert!(f.manager.list("u").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn renewal_writes_only_after_the_fraction_has_passed() {
        // 30 min idle / 10 = a write at most every 3 minutes.
        let f = fixture(SessionConfig::default()).await;
        let started = f.manager.start("u", &firefox()).await.unwrap();
        let created = started.session.created_at;
        for _ in 0..17 {
            f.clock.advance(Duration::seconds(10));
            let s = f.manager.resolve(&started.cookie_value).await.unwrap();
            assert_eq!(s.last_seen_at, created, "no renewal before 3 minutes");
        }
        assert_eq!(f.touches(), 0);
        f.clock.advance(Duration::seconds(10)); // exactly 3 minutes
        let s = f.manager.resolve(&started.cookie_value).await.unwrap();
        assert_eq!(f.touches(), 1);
        assert_eq!(s.last_seen_at, created + Duration::minutes(3));
        assert_eq!(s.idle_expires_at, s.last_seen_at + Duration::minutes(30));
        // The renewal is what the next request reads: no second write right after.
        f.clock.advance(Duration::seconds(1));
        let again = f.manager.resolve(&started.cookie_value).await.unwrap();
        assert_eq!(again.last_seen_at, s.last_seen_at);
        assert_eq!(f.touches(), 1);

        // renewal_fraction 0 is treated as 1: renew once a whole idle timeout... never reached.
        assert_eq!(
            SessionConfig {
                renewal_fraction: 0,
                ..SessionConfig::default()
            }
            .renewal_interval(),
            Duration::minutes(30)
        );
    }

    #[tokio::test]
    async fn shortened_timeout_reports_expired() {
        let f = fixture(SessionConfig::default()).await;
        let started = f.manager.start("u", &firefox()).await.unwrap();
        f.clock.advance(Duration::minutes(10));
        // Same store and key ring, stricter policy (an operator lowered the idle timeout).
        let strict = SessionManager::new(
            f.store.clone(),
            &f.keyring,
            f.clock.shared(),
            SessionConfig {
                idle_timeout: Duration::minutes(5),
                ..SessionConfig::default()
            },
        );
        assert!(matches!(
            strict.resolve(&started.cookie_value).await,
            Err(ResolveError::Expired)
        ));
        assert!(matches!(
            f.manager.resolve(&started.cookie_value).await,
            Err(ResolveError::NotFound)
        ));
    }

    #[tokio::test]
    async fn bad_cookies_are_invalid() {
        let f = fixture(SessionConfig::default()).await;
        let started = f.manager.start("u", &firefox()).await.unwrap();
        let good = started.cookie_value.clone();

        let mut tampered = URL_SAFE_NO_PAD.decode(&good).unwrap();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(tampered);
        let truncated = &good[..good.len() / 2];
        let oversized = format!("{good}{}", "A".repeat(MAX_COOKIE_VALUE_LEN));
        let other_purpose = f.keyring.protector("csrf").protect(b"whatever").unwrap();
        // Right purpose, wrong shape: too short to hold a secret and a user id.
        let short = f
            .keyring
            .protector(SESSION_PURPOSE)
            .protect(&[7u8; SECRET_LEN])
            .unwrap();
        // Right purpose, user id not UTF-8.
        let mut bad_utf8 = vec![7u8; SECRET_LEN];
        bad_utf8.extend_from_slice(&[0xff, 0xfe]);
        let bad_utf8 = f
            .keyring
            .protector(SESSION_PURPOSE)
            .protect(&bad_utf8)
            .unwrap();
        // A ring that never held this key.
        let stranger = KeyRing::in_memory(f.clock.shared())
            .protector(SESSION_PURPOSE)
            .protect(b"0123456789abcdef0123456789abcdefu")
            .unwrap();
        for cookie in [
            "",
            "garbage",
            "!!!not base64!!!",
            "\u{0}\u{1}",
            tampered.as_str(),
            truncated,
            oversized.as_str(),
            other_purpose.as_str(),
            short.as_str(),
            bad_utf8.as_str(),
            stranger.as_str(),
        ] {
            assert!(
                matches!(f.manager.resolve(cookie).await, Err(ResolveError::Invalid)),
                "{cookie:.40}"
            );
        }
        // The genuine cookie still works.
        f.manager.resolve(&good).await.unwrap();
    }

    #[tokio::test]
    async fn revoked_sessions_are_not_found() {
        let f = fixture(SessionConfig::default()).await;
        let a = f.manager.start("u", &firefox()).await.unwrap();
        let b = f.manager.start("u", &firefox()).await.unwrap();
        let c = f.manager.start("u", &firefox()).await.unwrap();
        let bystander = f.manager.start("v", &firefox()).await.unwrap();

        assert!(f.manager.end(&a.session).await.unwrap());
        assert!(!f.manager.end(&a.session).await.unwrap());
        assert!(matches!(
            f.manager.resolve(&a.cookie_value).await,
            Err(ResolveError::NotFound)
        ));
        // Another user cannot end this user's session by id.
        assert!(!f.manager.end_by_id("v", &b.session.id).await.unwrap());
        assert_eq!(f.manager.end_others("u", &c.session.id).await.unwrap(), 1);
        assert!(matches!(
            f.manager.resolve(&b.cookie_value).await,
            Err(ResolveError::NotFound)
        ));
        f.manager.resolve(&c.cookie_value).await.unwrap();
        assert_eq!(f.manager.end_all("u").await.unwrap(), 1);
        assert!(matches!(
            f.manager.resolve(&c.cookie_value).await,
            Err(ResolveError::NotFound)
        ));
        f.manager.resolve(&bystander.cookie_value).await.unwrap();
        assert!(f
            .manager
            .end_by_id("v", &bystander.session.id)
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn revoked_during_renewal_stays_revoked() {
        let f = fixture(SessionConfig::default()).await;
        let started = f.manager.start("u", &firefox()).await.unwrap();
        f.clock.advance(Duration::minutes(5));
        f.store.revoke_before_touch.store(true, Ordering::SeqCst);
        assert!(matches!(
            f.manager.resolve(&started.cookie_value).await,
            Err(ResolveError::NotFound)
        ));
        assert_eq!(f.touches(), 1);
        f.store.revoke_before_touch.store(false, Ordering::SeqCst);
        assert!(f.manager.list("u").await.unwrap().is_empty());
        assert!(matches!(
            f.manager.resolve(&started.cookie_value).await,
            Err(ResolveError::NotFound)
        ));
    }

    #[tokio::test]
    async fn cap_ends_the_oldest_sessions() {
        let f = fixture(SessionConfig {
            max_sessions_per_user: Some(2),
            ..SessionConfig::default()
        })
        .await;
        let first = f.manager.start("u", &firefox()).await.unwrap();
        f.clock.advance(Duration::seconds(1));
        let second = f.manager.start("u", &firefox()).await.unwrap();
        f.clock.advance(Duration::seconds(1));
        let third = f.manager.start("u", &firefox()).await.unwrap();
        assert!(matches!(
            f.manager.resolve(&first.cookie_value).await,
            Err(ResolveError::NotFound)
        ));
        f.manager.resolve(&second.cookie_value).await.unwrap();
        f.manager.resolve(&third.cookie_value).await.unwrap();
    }

    #[tokio::test]
    async fn an_unreadable_record_ends_the_session_instead_of_failing_every_request() {
        let f = fixture(SessionConfig::default()).await;
        let started = f.manager.start("u", &firefox()).await.unwrap();
        f.store.corrupt_get.store(true, Ordering::SeqCst);
        assert!(matches!(
            f.manager.resolve(&started.cookie_value).await,
            Err(ResolveError::NotFound)
        ));
        f.store.corrupt_get.store(false, Ordering::SeqCst);
        // Deleted, not just refused once.
        assert!(f.manager.list("u").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn every_insert_is_capped_at_most_at_the_ceiling() {
        for (configured, applied) in [
            (None, SESSION_CEILING),
            (Some(3), 3),
            (Some(SESSION_CEILING + 5), SESSION_CEILING),
        ] {
            let f = fixture(SessionConfig {
                max_sessions_per_user: configured,
                ..SessionConfig::default()
            })
            .await;
            f.manager.start("u", &firefox()).await.unwrap();
            let cap = *f.store.last_cap.lock().unwrap();
            assert_eq!(cap, Some(applied), "{configured:?}");
        }
    }

    #[tokio::test]
    async fn oversized_client_details_are_capped() {
        let f = fixture(SessionConfig::default()).await;
        let client = ClientInfo {
            ip: Some("9".repeat(1000)),
            user_agent: Some(format!("curl/8.0 {}", "x".repeat(10_000))),
        };
        let started = f.manager.start("u", &client).await.unwrap();
        let s = f.manager.resolve(&started.cookie_value).await.unwrap();
        assert_eq!(
            s.user_agent.unwrap().len(),
            crate::device::MAX_USER_AGENT_LEN
        );
        assert_eq!(s.ip.unwrap().len(), crate::device::MAX_IP_LEN);
        assert_eq!(s.device, "curl");
    }
}
