//! The accounts service: registration, sign-in and password changes.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use rand::rngs::OsRng;
use rand::RngCore;
use ringfence_keyring::SharedClock;
use ringfence_sessions::{Session, SessionId, SessionManager};

use crate::factors::{FactorService, StatusCache};
use crate::lifecycle::MailFlows;
use crate::notify::AccountMail;
use crate::user_cache::{UserCache, DEFAULT_USER_CACHE_TTL};
use crate::{
    AccountError, AttemptStore, Email, PasskeyStore, PasswordHasher, PasswordPolicy, Throttle,
    ThrottleKey, ThrottleKeys, ThrottlePolicy, User, UserRecord, UserStore,
};

/// How far apart two nodes' clocks may be for [`Accounts::session_user`]'s freshness rule.
pub const CLOCK_SKEW_ALLOWANCE: chrono::Duration = chrono::Duration::seconds(1);

/// Counter of sign-in attempts, labelled `result="ok"`, `result="invalid"` or
/// `result="throttled"`.
pub const SIGN_IN_METRIC: &str = "ringfence_sign_in_total";
/// Counter of self-service registrations.
pub const REGISTRATIONS_METRIC: &str = "ringfence_registrations_total";

/// User accounts: the policy around a [`UserStore`]. Cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    inner: Arc<Inner>,
}

struct Inner {
    users: Arc<dyn UserStore>,
    hasher: PasswordHasher,
    policy: PasswordPolicy,
    sessions: SessionManager,
    clock: SharedClock,
    throttle: Option<Throttle>,
    cache: UserCache,
    /// Second-factor summaries for `/api/v1/me` (see `factors::status_cache`).
    mfa_cache: StatusCache,
    mail: MailFlows,
    factors: Option<FactorService>,
    /// The user's passkeys, removed with the account's other factors (see
    /// [`Accounts::with_passkey_store`]).
    passkeys: Option<Arc<dyn PasskeyStore>>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("hasher", &self.inner.hasher)
            .field("policy", &self.inner.policy)
            .field("throttle", &self.inner.throttle)
            .finish_non_exhaustive()
    }
}

impl Accounts {
    /// Assembles the service. `users` must already be migrated.
    pub fn new(
        users: Arc<dyn UserStore>,
        hasher: PasswordHasher,
        policy: PasswordPolicy,
        sessions: SessionManager,
        clock: SharedClock,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                users,
                hasher,
                policy,
                sessions,
                clock,
                throttle: None,
                cache: UserCache::new(DEFAULT_USER_CACHE_TTL),
                mfa_cache: StatusCache::default(),
                mail: MailFlows::default(),
                factors: None,
                passkeys: None,
            }),
        }
    }

    /// The same service with throttling (see [`crate::throttle`]): failed secret checks are
    /// counted in `store` per (e-mail, client address), per e-mail and per client address, and
    /// registrations per client address; `policy` is clamped into its valid range
    /// ([`ThrottlePolicy::validate`] reports bad settings). Without it nothing is throttled.
    pub fn with_throttle(self, store: Arc<dyn AttemptStore>, policy: ThrottlePolicy) -> Self {
        let cache_ttl = self.inner.cache.ttl();
        self.rebuilt(Some(Throttle::new(store, policy)), cache_ttl)
    }

    /// The same service reusing each user it reads for signed-in requests for `ttl` (default
    /// one second; zero reads the store on every request). See [`Accounts::session_user`] for
    /// why a cached copy never outlives a privilege change.
    pub fn with_user_cache_ttl(self, ttl: chrono::Duration) -> Self {
        let throttle = self.inner.throttle.clone();
        self.rebuilt(throttle, ttl)
    }

    fn rebuilt(&self, throttle: Option<Throttle>, cache_ttl: chrono::Duration) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                users: Arc::clone(&inner.users),
                hasher: inner.hasher.clone(),
                policy: inner.policy,
                sessions: inner.sessions.clone(),
                clock: Arc::clone(&inner.clock),
                throttle,
                cache: UserCache::new(cache_ttl),
                mfa_cache: StatusCache::default(),
                mail: inner.mail.clone(),
                factors: inner.factors.clone(),
                passkeys: inner.passkeys.clone(),
            }),
        }
    }

    /// The same service with other mail flows (see [`crate::lifecycle`]).
    pub(crate) fn with_mail_flows(self, mail: MailFlows) -> Self {
        let mut next = self.rebuilt(self.inner.throttle.clone(), self.inner.cache.ttl());
        // `next` was made just now, so nobody else holds it: the update always happens.
        if let Some(inner) = Arc::get_mut(&mut next.inner) {
            inner.mail = mail;
        }
        next
    }

    /// The same service with second factors (see [`crate::factors`]).
    pub(crate) fn with_factor_service(self, factors: FactorService) -> Self {
        let mut next = self.rebuilt(self.inner.throttle.clone(), self.inner.cache.ttl());
        // `next` was made just now, so nobody else holds it: the update always happens.
        if let Some(inner) = Arc::get_mut(&mut next.inner) {
            inner.factors = Some(factors);
        }
        next
    }

    /// The same service knowing where passkeys live, so that disabling an account removes
    /// them (deleting one removes them through the database) and [`Accounts::passkey_count`]
    /// can count them.
    pub fn with_passkey_store(self, store: Arc<dyn PasskeyStore>) -> Self {
        let mut next = self.rebuilt(self.inner.throttle.clone(), self.inner.cache.ttl());
        // `next` was made just now, so nobody else holds it: the update always happens.
        if let Some(inner) = Arc::get_mut(&mut next.inner) {
            inner.passkeys = Some(store);
        }
        next
    }

    /// The second-factor store and sealing, when configured.
    pub(crate) fn factor_service(&self) -> Option<&FactorService> {
        self.inner.factors.as_ref()
    }

    /// The passkey store, when one is configured.
    pub fn passkey_store(&self) -> Option<&Arc<dyn PasskeyStore>> {
        self.inner.passkeys.as_ref()
    }

    /// How many passkeys the user has (`user.mfa.passkeys` of `/api/v1/me`); 0 without a
    /// passkey store.
    pub async fn passkey_count(&self, user_id: &str) -> Result<u64, AccountError> {
        match &self.inner.passkeys {
            Some(store) => store.count(user_id).await.map_err(passkey_store_error),
            None => Ok(0),
        }
    }

    /// Removes every passkey of the user (account deleted, second factors reset); returns
    /// how many.
    pub async fn remove_passkeys(&self, user_id: &str) -> Result<u64, AccountError> {
        match &self.inner.passkeys {
            Some(store) => store.delete_all(user_id).await.map_err(passkey_store_error),
            None => Ok(0),
        }
    }

    /// The mail flows' stores, mailer and settings.
    pub(crate) fn mail(&self) -> &MailFlows {
        &self.inner.mail
    }

    /// The session manager (to end a user's sessions).
    pub(crate) fn sessions(&self) -> &SessionManager {
        &self.inner.sessions
    }

    /// This node's second-factor summaries (`user.mfa` of `/api/v1/me`).
    pub(crate) fn mfa_cache(&self) -> &StatusCache {
        &self.inner.mfa_cache
    }

    /// How long a copy read without a session-store watch is reused (the user cache's).
    pub(crate) fn user_cache_ttl(&self) -> chrono::Duration {
        self.inner.cache.ttl()
    }

    /// The injected clock's time, unrounded (the caches' times).
    pub(crate) fn clock_now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Drops this node's cached copy of a user it just changed.
    pub(crate) fn forget_cached(&self, user_id: &str) {
        self.inner.cache.forget(user_id);
    }

    /// The throttle, when one is configured.
    pub fn throttle(&self) -> Option<&Throttle> {
        self.inner.throttle.as_ref()
    }

    /// The underlying store (admin statistics, readiness).
    pub fn users(&self) -> &Arc<dyn UserStore> {
        &self.inner.users
    }

    /// The password hasher (to [`PasswordHasher::warm_up`] at start-up).
    pub fn hasher(&self) -> &PasswordHasher {
        &self.inner.hasher
    }

    /// The policy new passwords must meet (to describe it on forms).
    pub fn policy(&self) -> &PasswordPolicy {
        &self.inner.policy
    }

    /// Timestamps are stored with microsecond precision (PostgreSQL's), so a returned [`User`]
    /// equals the one read back later on every backend.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now().trunc_subsecs(6)
    }

    /// Self-service registration; [`Accounts::register_from`] without a client address (not
    /// throttled).
    pub async fn register(&self, email: &str, password: &str) -> Result<User, AccountError> {
        self.register_from(email, password, None).await
    }

    /// Self-service registration from a client at `client_ip`. Returns the new account; the
    /// caller signs it in.
    ///
    /// With a throttle and a known address, registrations that reach the user store (created,
    /// or refused with [`AccountError::EmailTaken`]) are counted per client address: a locked
    /// address gets [`AccountError::Throttled`] before anything is checked or hashed. This
    /// slows down mass account creation and the use of `EmailTaken` (kept: the contract's
    /// `409`) to find out which addresses have accounts. Input refused by the policy is not
    /// counted: it reveals nothing.
    pub async fn register_from(
        &self,
        email: &str,
        password: &str,
        client_ip: Option<&str>,
    ) -> Result<User, AccountError> {
        let throttle = self.inner.throttle.as_ref();
        let key = client_ip.map(ThrottleKey::registration);
        if let (Some(throttle), Some(key)) = (throttle, &key) {
            let now = self.inner.clock.now();
            if let Some(until) = throttle.check(Some(key), now).await? {
                return Err(throttled(until, now));
            }
        }
        let result = self.create(email, password, false).await;
        if let (Some(throttle), Some(key), Ok(_) | Err(AccountError::EmailTaken)) =
            (throttle, &key, &result)
        {
            throttle.record(Some(key), self.inner.clock.now()).await?;
        }
        let user = result?;
        metrics::counter!(REGISTRATIONS_METRIC).increment(1);
        tracing::info!(user_id = %user.id, "account registered");
        self.send_verification_after_registration(&user).await;
        Ok(user)
    }

    /// Creates an account from the admin CLI, optionally an admin; same policy as
    /// [`Accounts::register`].
    pub async fn add_user(
        &self,
        email: &str,
        password: &str,
        admin: bool,
    ) -> Result<User, AccountError> {
        let user = self.create(email, password, admin).await?;
        tracing::info!(user_id = %user.id, admin, "account added by an administrator");
        Ok(user)
    }

    async fn create(&self, email: &str, password: &str, admin: bool) -> Result<User, AccountError> {
        let email = Email::parse(email)?;
        self.inner.policy.validate(password, &email)?;
        let hash = self.inner.hasher.hash(password.to_owned()).await?;
        let now = self.now();
        let user = User {
            id: new_user_id(),
            email: email.into_string(),
            is_admin: admin,
            created_at: now,
            password_changed_at: now,
            email_verified: false,
            disabled: false,
        };
        self.inner.users.insert(&user, &hash).await?;
        Ok(user)
    }

    /// Checks an e-mail and password; [`Accounts::authenticate_from`] without a client address
    /// (every such caller counts as one unknown address: no address counter applies).
    pub async fn authenticate(&self, email: &str, password: &str) -> Result<User, AccountError> {
        self.authenticate_from(email, password, None).await
    }

    /// Checks an e-mail and password for a client at `client_ip` (the peer or the trusted
    /// proxy's `X-Forwarded-For` address, when known).
    ///
    /// Unknown e-mail, malformed e-mail and wrong password all give
    /// [`AccountError::InvalidCredentials`]; an unknown e-mail costs one full hash
    /// verification like a wrong password, so timing does not tell them apart either.
    /// A hash made with old parameters is replaced while the plaintext is at hand.
    /// The right password of a disabled account, or of an unverified address under
    /// `require_verified_email`, is refused after all checks (see `Accounts::admit`).
    ///
    /// With a throttle ([`Accounts::with_throttle`]):
    /// - a locked e-mail or address gets [`AccountError::Throttled`] before the password is
    ///   looked at, so even the right password is refused and no hash is computed;
    /// - after verifying, the keys are checked again: if failures running in parallel locked
    ///   them meanwhile, the answer is `Throttled` whatever the password was, so a burst of
    ///   parallel guesses cannot learn more than the schedule allows;
    /// - a wrong password (or unknown e-mail) is counted per (e-mail, address), per address and,
    ///   when it starts a new run for that address, per e-mail; the right one resets the
    ///   e-mail's counts (see [`crate::throttle`] for why one address cannot lock out another).
    ///
    /// When the attempt store cannot be reached, sign-in fails closed with
    /// [`AccountError::Store`] (`503`): failing open would hand an attacker unlimited guesses
    /// whenever they can make the store slow or unreachable, while a legitimate user only waits
    /// for the store to come back, as they would for the user store itself. A failed reset after
    /// a successful sign-in is only logged (the count decays by itself).
    pub async fn authenticate_from(
        &self,
        email: &str,
        password: &str,
        client_ip: Option<&str>,
    ) -> Result<User, AccountError> {
        let result = match self.sign_in(email, password, client_ip).await {
            Ok(user) => self.admit(user).await,
            failed => failed,
        };
        match &result {
            Ok(_) => metrics::counter!(SIGN_IN_METRIC, "result" => "ok").increment(1),
            Err(AccountError::InvalidCredentials) => {
                metrics::counter!(SIGN_IN_METRIC, "result" => "invalid").increment(1)
            }
            Err(AccountError::Throttled { .. }) => {
                metrics::counter!(SIGN_IN_METRIC, "result" => "throttled").increment(1)
            }
            Err(_) => {}
        }
        result
    }

    async fn sign_in(
        &self,
        email: &str,
        password: &str,
        client_ip: Option<&str>,
    ) -> Result<User, AccountError> {
        // A malformed address cannot have an account: nothing to hide, nothing to count per
        // account (the client address still counts).
        let email = Email::parse(email).ok();
        let keys = ThrottleKeys::new(email.as_ref(), client_ip);
        self.throttled(&keys, || self.check_credentials(email.as_ref(), password))
            .await
    }

    /// Checks a secret of the signed-in `user` (the current password now; second-factor codes
    /// and re-authentication reuse it) for a client at `client_ip`, under the same throttle and
    /// lockout as sign-in: the same keys, so failures here and at sign-in add up.
    ///
    /// `check` answers whether the secret is right; it is only called when no key is locked,
    /// so a locked key answers [`AccountError::Throttled`] before any hashing. `Ok(false)`
    /// (a wrong secret) is counted; `Ok(true)` resets the user's counters. Errors of `check`
    /// are passed on and not counted (the store failed, not the client).
    pub async fn check_user_secret<F, Fut>(
        &self,
        user: &User,
        client_ip: Option<&str>,
        check: F,
    ) -> Result<bool, AccountError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<bool, AccountError>>,
    {
        let email = Email::parse(&user.email).map_err(|_| {
            AccountError::Corrupt(format!("stored e-mail of user {} is malformed", user.id))
        })?;
        let keys = ThrottleKeys::new(Some(&email), client_ip);
        let result = self
            .throttled(&keys, || async {
                match check().await? {
                    true => Ok(()),
                    false => Err(AccountError::CurrentPasswordIncorrect),
                }
            })
            .await;
        match result {
            Ok(()) => Ok(true),
            Err(AccountError::CurrentPasswordIncorrect) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether `password` is the current password of the signed-in `user`, checked through
    /// [`Accounts::check_user_secret`] (throttled like sign-in).
    pub async fn check_current_password(
        &self,
        user: &UserRecord,
        password: &str,
        client_ip: Option<&str>,
    ) -> Result<bool, AccountError> {
        self.check_user_secret(&user.user, client_ip, || {
            self.password_matches(user, password)
        })
        .await
    }

    /// The one throttled path of every secret check: refuse while a key is locked, run
    /// `attempt`, check again (parallel failures may have locked a key meanwhile), then count a
    /// wrong secret ([`AccountError::InvalidCredentials`] or
    /// [`AccountError::CurrentPasswordIncorrect`]) or reset after a right one.
    async fn throttled<T, F, Fut>(&self, keys: &ThrottleKeys, attempt: F) -> Result<T, AccountError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, AccountError>>,
    {
        let Some(throttle) = &self.inner.throttle else {
            return attempt().await;
        };
        let now = self.inner.clock.now();
        if let Some(until) = throttle.locked_until(keys, now).await? {
            return Err(throttled(until, now));
        }
        let result = attempt().await;
        let wrong = matches!(
            result,
            Err(AccountError::InvalidCredentials | AccountError::CurrentPasswordIncorrect)
        );
        if !(result.is_ok() || wrong) {
            // The store failed, not the client: nothing to count.
            return result;
        }
        // Hashing took a while (longer when queued behind a burst of checks).
        let now = self.inner.clock.now();
        if let Some(until) = throttle.locked_until(keys, now).await? {
            return Err(throttled(until, now));
        }
        if wrong {
            throttle.record_failure(keys, now).await?;
        } else if let Err(e) = throttle.reset_account(keys).await {
            tracing::warn!(error = %e, "resetting the failure count after a right secret failed");
        }
        result
    }

    async fn check_credentials(
        &self,
        email: Option<&Email>,
        password: &str,
    ) -> Result<User, AccountError> {
        let Some(email) = email else {
            return Err(AccountError::InvalidCredentials);
        };
        let Some(record) = self.inner.users.by_email(email).await? else {
            self.inner.hasher.verify_dummy(password.to_owned()).await;
            return Err(AccountError::InvalidCredentials);
        };
        if !self.password_matches(&record, password).await? {
            return Err(AccountError::InvalidCredentials);
        }
        Ok(record.user)
    }

    /// Verifies `password` against the record, rehashing when the parameters changed.
    /// `Ok(false)` for a wrong password and for an unreadable stored hash (logged).
    async fn password_matches(
        &self,
        record: &UserRecord,
        password: &str,
    ) -> Result<bool, AccountError> {
        let verification = match self
            .inner
            .hasher
            .verify(password.to_owned(), record.password_hash.clone())
            .await
        {
            Ok(v) => v,
            Err(AccountError::Corrupt(detail)) => {
                tracing::error!(user_id = %record.user.id, %detail, "unreadable password hash; refusing sign-in");
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        if verification.valid && verification.needs_rehash {
            self.rehash(record, password).await;
        }
        Ok(verification.valid)
    }

    /// Best effort: the sign-in succeeds even if the upgrade cannot be stored now; it is
    /// retried on the next sign-in.
    async fn rehash(&self, record: &UserRecord, password: &str) {
        let hash = match self.inner.hasher.hash(password.to_owned()).await {
            Ok(hash) => hash,
            Err(e) => {
                tracing::warn!(user_id = %record.user.id, error = %e, "password rehash failed");
                return;
            }
        };
        // A rehash is not a password change: keep password_changed_at.
        match self
            .inner
            .users
            .set_password_hash(&record.user.id, &hash, record.user.password_changed_at)
            .await
        {
            Ok(_) => {
                tracing::info!(user_id = %record.user.id, "password hash upgraded to current parameters")
            }
            Err(e) => {
                tracing::warn!(user_id = %record.user.id, error = %e, "storing upgraded password hash failed")
            }
        }
    }

    /// Changes a signed-in user's password and signs out every other session of the user
    /// (keeping `keep`, the session making the request). Returns how many were signed out.
    ///
    /// The current password is checked through [`Accounts::check_current_password`] for the
    /// client at `client_ip`: throttled and locked out like sign-in, so a stolen session cookie
    /// cannot be used to guess the password at hashing speed.
    pub async fn change_password(
        &self,
        user_id: &str,
        current: &str,
        new: &str,
        keep: &SessionId,
        client_ip: Option<&str>,
    ) -> Result<u64, AccountError> {
        let record = self
            .inner
            .users
            .by_id(user_id)
            .await?
            .ok_or(AccountError::UserNotFound)?;
        if !self
            .check_current_password(&record, current, client_ip)
            .await?
        {
            return Err(AccountError::CurrentPasswordIncorrect);
        }
        let email = Email::parse(&record.user.email).map_err(|_| {
            AccountError::Corrupt(format!("stored e-mail of user {user_id} is malformed"))
        })?;
        self.inner.policy.validate(new, &email)?;
        let hash = self.inner.hasher.hash(new.to_owned()).await?;
        if !self
            .inner
            .users
            .set_password_hash(user_id, &hash, self.now())
            .await?
        {
            return Err(AccountError::UserNotFound);
        }
        self.inner.cache.forget(user_id);
        tracing::info!(user_id, "password changed");
        self.notify(&record.user, AccountMail::PasswordChanged);
        // The password is changed at this point; if the sessions cannot be ended the caller
        // still has to learn it, since a stolen session would survive the change.
        let ended = self
            .inner
            .sessions
            .end_others(user_id, keep)
            .await
            .map_err(|e| {
                AccountError::Store(format!(
                    "the password was changed, but other sessions could not be signed out: {e}"
                ))
            })?;
        tracing::info!(
            user_id,
            ended,
            "other sessions signed out after password change"
        );
        Ok(ended)
    }

    /// Grants or revokes admin rights (admin CLI).
    pub async fn set_admin(&self, user_id: &str, admin: bool) -> Result<(), AccountError> {
        let changed = self.inner.users.set_admin(user_id, admin).await?;
        self.inner.cache.forget(user_id);
        if changed {
            tracing::info!(user_id, admin, "admin flag changed");
            Ok(())
        } else {
            Err(AccountError::UserNotFound)
        }
    }

    /// One account by id, read from the store.
    pub async fn user(&self, id: &str) -> Result<Option<User>, AccountError> {
        Ok(self.inner.users.by_id(id).await?.map(|r| r.user))
    }

    /// The account a signed-in request acts for: the hot path of every authenticated request.
    /// `None` when it no longer exists or is disabled.
    ///
    /// A copy this node read within the cache's time to live ([`Accounts::with_user_cache_ttl`])
    /// is reused, but only one read at least [`CLOCK_SKEW_ALLOWANCE`] after `session.created_at`:
    /// privilege changes end the user's sessions once stored, so every session still alive
    /// began after the last change, and a copy read after it began is current in everything
    /// that matters (the first second of a session always reads the store). What it does not
    /// cover: a change stored without ending the sessions (say `users set-admin` stored the
    /// flag but could not reach the session store, and said so) reaches a node's requests
    /// within the time to live; node clocks more than the allowance apart. Keep nodes in NTP
    /// sync, as session expiry also requires.
    pub async fn session_user(&self, session: &Session) -> Result<Option<User>, AccountError> {
        let cache = &self.inner.cache;
        let now = self.inner.clock.now();
        // `created_at` comes from the clock of the node that started the session, `read_at`
        // from this one: the margin absorbs clocks up to that far apart.
        let fresh_since = session.created_at + CLOCK_SKEW_ALLOWANCE;
        if let Some(user) = cache.get(&session.user_id, fresh_since, now) {
            return Ok(admitted_to_session(user));
        }
        // Stamped before the read: the copy is at least this fresh.
        let read_at = now;
        let user = self.user(&session.user_id).await?;
        match &user {
            Some(user) => cache.put(user, read_at),
            None => cache.forget(&session.user_id),
        }
        Ok(user.and_then(admitted_to_session))
    }

    /// One account by e-mail (admin tools: `sessions list --user EMAIL`). `None` also for a
    /// malformed address.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, AccountError> {
        let Ok(email) = Email::parse(email) else {
            return Ok(None);
        };
        Ok(self.inner.users.by_email(&email).await?.map(|r| r.user))
    }

    /// One page of accounts, ordered by e-mail.
    pub async fn list(&self, limit: u32, offset: u32) -> Result<Vec<User>, AccountError> {
        Ok(self.inner.users.list(limit, offset).await?)
    }

    /// Number of accounts.
    pub async fn count(&self) -> Result<u64, AccountError> {
        Ok(self.inner.users.count().await?)
    }

    /// Checks that the user store answers (readiness).
    pub async fn ping(&self) -> Result<(), AccountError> {
        Ok(self.inner.users.ping().await?)
    }
}

/// A disabled account has no sessions: disabling ends them, and one a sign-in racing the
/// disabling started is refused here.
fn admitted_to_session(user: User) -> Option<User> {
    (!user.disabled).then_some(user)
}

/// The error for a lock ending at `until`; the wait is at least 1 ms.
pub(crate) fn throttled(until: DateTime<Utc>, now: DateTime<Utc>) -> AccountError {
    AccountError::Throttled {
        retry_after: (until - now).max(chrono::Duration::milliseconds(1)),
    }
}

/// A UUID v4 from the OS CSPRNG.
fn new_user_id() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

fn passkey_store_error(e: crate::PasskeyStoreError) -> AccountError {
    match e {
        crate::PasskeyStoreError::Unavailable(msg) => AccountError::Store(msg),
        other => AccountError::Corrupt(other.to_string()),
    }
}
