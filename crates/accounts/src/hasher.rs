//! argon2id password hashing off the async runtime, with bounded concurrency.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::cell::RefCell;

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::rngs::OsRng;
use rand::RngCore;
use tokio::sync::{OnceCell, Semaphore};

use crate::aspnet_identity;
use crate::hash_pool::{HashPool, HashPriority};
use crate::AccountError;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory, in KiB.
    pub m_cost_kib: u32,
    /// Passes over memory.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Argon2Params {
    /// The OWASP Password Storage Cheat Sheet minimum for argon2id: 19 MiB, 2 passes, 1 lane.
    pub const OWASP: Argon2Params = Argon2Params {
        m_cost_kib: 19_456,
        t_cost: 2,
        p_cost: 1,
    };

    fn to_argon2(self) -> Result<Params, AccountError> {
        Params::new(self.m_cost_kib, self.t_cost, self.p_cost, None)
            .map_err(|e| AccountError::InvalidConfig(format!("argon2 parameters: {e}")))
    }
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::OWASP
    }
}

/// The longest a hash waits for a free hashing thread, and then for its result, before the
/// caller gets [`AccountError::Busy`].
pub const HASH_QUEUE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Stored hashes asking for more memory than this are treated as corrupt rather than verified:
/// a damaged or planted row must not make one sign-in allocate gigabytes.
const MAX_STORED_M_COST_KIB: u32 = 1024 * 1024;

/// Outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// The password matches.
    pub valid: bool,
    /// The stored hash was made with other parameters (or another argon2 variant) than the
    /// current ones; the caller should store a fresh hash while it has the plaintext.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords with argon2id.
///
/// Each hash costs tens of milliseconds of CPU and ~19 MiB of memory, so the work runs on a few
/// dedicated threads at a background CPU priority (never on a runtime worker; see
/// [`HashPriority`]: signed-in requests keep their latency during a sign-in storm), and a
/// semaphore caps how many run at once: a burst of sign-ins queues here instead of occupying
/// every core and every megabyte. Cheap to clone; clones share the threads and the semaphore.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    semaphore: Arc<Semaphore>,
    pool: HashPool,
    /// A hash of a random password with the current parameters, for unknown e-mails.
    dummy: OnceCell<String>,
    /// How long an argon2id hash at the current parameters takes here (see [`HashTime`]).
    hash_time: Arc<HashTime>,
}

/// How long one argon2id hash at the current parameters takes on this machine: a moving
/// average of the hashes and verifications done at those parameters (the dummy verification
/// for unknown e-mails among them). Checks of other kinds (imported ASP.NET Core Identity
/// hashes) wait until this much time has passed, so their answers take as long as an unknown
/// e-mail's.
#[derive(Debug, Default)]
struct HashTime {
    /// Nanoseconds; 0 until the first hash was timed.
    nanos: AtomicU64,
}

impl HashTime {
    /// Adds one measurement (weight 1/8: a few slow hashes under load move it, one does not).
    fn record(&self, took: Duration) {
        let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1);
        let _ = self
            .nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 {
                    took
                } else {
                    old - old / 8 + took / 8
                })
            });
    }

    /// The average, once there is one.
    fn get(&self) -> Option<Duration> {
        match self.nanos.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }
}

/// How much longer a check that has `spent` must wait to take `target`; `None` when it
/// already took as long (a check slower than an argon2id hash is not made faster).
fn pad_for(spent: Duration, target: Duration) -> Option<Duration> {
    target.checked_sub(spent).filter(|pad| !pad.is_zero())
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("m_cost_kib", &self.inner.params.m_cost())
            .field("t_cost", &self.inner.params.t_cost())
            .field("p_cost", &self.inner.params.p_cost())
            .finish_non_exhaustive()
    }
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self::build(Params::DEFAULT, default_permits(), HashPriority::default())
    }
}

fn default_permits() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

impl PasswordHasher {
    /// A hasher with `params`, allowing as many concurrent hashes as there are CPUs.
    pub fn new(params: Argon2Params) -> Result<Self, AccountError> {
        Self::with_permits(params, default_permits())
    }

    /// A hasher with `params`, allowing `permits` concurrent hashes (at least 1), on threads of
    /// the default [`HashPriority`].
    pub fn with_permits(params: Argon2Params, permits: usize) -> Result<Self, AccountError> {
        Self::with_priority(params, permits, HashPriority::default())
    }

    /// A hasher with `params`, `permits` hashing threads and their CPU `priority`.
    pub fn with_priority(
        params: Argon2Params,
        permits: usize,
        priority: HashPriority,
    ) -> Result<Self, AccountError> {
        Ok(Self::build(params.to_argon2()?, permits, priority))
    }

    fn build(params: Params, permits: usize, priority: HashPriority) -> Self {
        let permits = permits.max(1);
        Self {
            inner: Arc::new(Inner {
                params,
                semaphore: Arc::new(Semaphore::new(permits)),
                pool: HashPool::new(permits, priority),
                dummy: OnceCell::new(),
                hash_time: Arc::default(),
            }),
        }
    }

    /// The current parameters.
    pub fn params(&self) -> Argon2Params {
        let p = &self.inner.params;
        Argon2Params {
            m_cost_kib: p.m_cost(),
            t_cost: p.t_cost(),
            p_cost: p.p_cost(),
        }
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            self.inner.params.clone(),
        )
    }

    /// Runs `work` on a hashing thread once a permit is free. The permit moves into the
    /// closure, so it is held until the hash is done even if the caller's future is dropped.
    ///
    /// A caller waits at most [`HASH_QUEUE_LIMIT`] for a thread: the hashing threads run at a
    /// background priority, so on a CPU saturated by other work they may make little progress,
    /// and a sign-in should then fail fast with [`AccountError::Busy`] (`503`, `Retry-After`)
    /// rather than hold its connection open indefinitely.
    async fn run<T, F>(&self, work: F) -> Result<T, AccountError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let acquire = Arc::clone(&self.inner.semaphore).acquire_owned();
        let permit = tokio::time::timeout(HASH_QUEUE_LIMIT, acquire)
            .await
            .map_err(|_| {
                tracing::warn!(
                    wait_s = HASH_QUEUE_LIMIT.as_secs(),
                    "every password hashing thread stayed busy; answering busy"
                );
                AccountError::Busy
            })?
            .map_err(|_| AccountError::Internal("password hasher shut down".to_owned()))?;
        let hashing = self.inner.pool.run(move || {
            let out = work();
            drop(permit);
            out
        });
        // The same bound once the hash is handed over: a thread starved of CPU answers busy
        // rather than never (the hash finishes on its own; its permit is held until then).
        tokio::time::timeout(HASH_QUEUE_LIMIT, hashing)
            .await
            .map_err(|_| AccountError::Busy)?
    }

    /// Hashes a password with a fresh random salt; returns the PHC string
    /// (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub async fn hash(&self, password: String) -> Result<String, AccountError> {
        let argon2 = self.argon2();
        let keep = self.inner.params.block_count();
        let hash_time = Arc::clone(&self.inner.hash_time);
        self.run(move || {
            let started = Instant::now();
            let salt = SaltString::generate(&mut OsRng);
            let phc = hash_phc(&argon2, password.as_bytes(), &salt, keep)
                .map_err(|e| AccountError::Internal(format!("password hashing failed: {e}")));
            hash_time.record(started.elapsed());
            phc
        })
        .await?
    }

    /// Checks `password` against the stored PHC string `phc`, using the parameters recorded in
    /// it. A stored value that is not a readable argon2 hash is an [`AccountError::Corrupt`]
    /// (the caller treats it as invalid credentials), never a panic.
    pub async fn verify(
        &self,
        password: String,
        phc: String,
    ) -> Result<Verification, AccountError> {
        let current = self.inner.params.clone();
        let hash_time = Arc::clone(&self.inner.hash_time);
        self.run(move || verify_blocking(&password, &phc, &current, &hash_time))
            .await?
    }

    /// Spends the same time as [`PasswordHasher::verify`] against a hash made with the current
    /// parameters, and always fails. Used when the e-mail is unknown so that the response time
    /// does not tell which e-mails have accounts.
    pub async fn verify_dummy(&self, password: String) {
        let dummy = match self.dummy_hash().await {
            Ok(dummy) => dummy.to_owned(),
            Err(e) => {
                tracing::error!(error = %e, "cannot compute the dummy password hash");
                return;
            }
        };
        if let Err(e) = self.verify(password, dummy).await {
            tracing::error!(error = %e, "dummy password verification failed");
        }
    }

    /// Computes the dummy hash now rather than on the first unknown e-mail, so that first
    /// request is not slower than the rest (call at start-up).
    pub async fn warm_up(&self) -> Result<(), AccountError> {
        self.dummy_hash().await.map(|_| ())
    }

    async fn dummy_hash(&self) -> Result<&str, AccountError> {
        self.inner
            .dummy
            .get_or_try_init(|| {
                let mut random = [0u8; 32];
                OsRng.fill_bytes(&mut random);
                let password: String = random.iter().map(|b| format!("{b:02x}")).collect();
                self.hash(password)
            })
            .await
            .map(String::as_str)
    }
}

thread_local! {
    /// argon2's working memory (19 MiB at the OWASP parameters), kept by each hashing thread
    /// between hashes. Allocating and freeing it per hash takes the process's memory-map lock,
    /// and a background-priority thread preempted while holding that lock would stall every
    /// request thread that faults a page meanwhile; reusing it also saves the page faults.
    static WORKING_MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on `count` blocks of working memory: the thread's kept buffer when `count` is at
/// most `keep` (the current parameters' size), a one-off allocation otherwise, so a stored
/// hash with unusual parameters cannot make a thread hold more memory for good.
fn with_working_memory<T>(count: usize, keep: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    if count > keep {
        return f(&mut vec![Block::default(); count]);
    }
    WORKING_MEMORY.with(|cell| match cell.try_borrow_mut() {
        Ok(mut blocks) => {
            if blocks.len() < count {
                blocks.resize(count, Block::default());
            }
            f(&mut blocks[..count])
        }
        // Not reachable (nothing hashes re-entrantly), but never a panic.
        Err(_) => f(&mut vec![Block::default(); count]),
    })
}

/// argon2's raw hash of `password` with `salt` into an `Output` of the parameters' length.
fn raw_hash(
    argon2: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    keep: usize,
) -> argon2::password_hash::Result<Output> {
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    with_working_memory(params.block_count(), keep, |blocks| {
        Output::init_with(len, |out| {
            argon2
                .hash_password_into_with_memory(password, salt, out, blocks)
                .map_err(argon2::password_hash::Error::from)
        })
    })
}

/// The PHC string of `password` under `argon2` with `salt`, exactly as
/// `argon2::PasswordHasher::hash_password` writes it, but on the thread's kept memory.
fn hash_phc(
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: &SaltString,
    keep: usize,
) -> argon2::password_hash::Result<String> {
    let salt = salt.as_salt();
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
    let params = argon2.params();
    let output = raw_hash(argon2, params, password, salt_bytes, keep)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)?,
        salt: Some(salt),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

fn verify_blocking(
    password: &str,
    phc: &str,
    current: &Params,
    hash_time: &HashTime,
) -> Result<Verification, AccountError> {
    let corrupt = |what: &str| AccountError::Corrupt(format!("stored password hash: {what}"));
    if aspnet_identity::is_aspnet_identity(phc) {
        return verify_aspnet_identity(password, phc, current, hash_time);
    }
    let started = Instant::now();
    let hash = PasswordHash::new(phc).map_err(|e| corrupt(&e.to_string()))?;
    let algorithm = Algorithm::try_from(hash.algorithm).map_err(|e| corrupt(&e.to_string()))?;
    let stored = Params::try_from(&hash).map_err(|e| corrupt(&e.to_string()))?;
    if stored.m_cost() > MAX_STORED_M_COST_KIB {
        return Err(corrupt("memory cost out of range"));
    }
    let version = hash
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| corrupt(&e.to_string()))?
        .unwrap_or_default();
    // The verifier takes algorithm, version and parameters from the stored hash, so old hashes
    // keep verifying after the current parameters change.
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return Err(corrupt("no salt or no hash"));
    };
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let salt_bytes = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| corrupt(&e.to_string()))?;
    // `stored` carries the stored hash's own output length (and any keyid/data); the result
    // is compared in constant time (`Output`'s equality is).
    let verifier = Argon2::new(algorithm, version, stored.clone());
    let computed = raw_hash(
        &verifier,
        &stored,
        password.as_bytes(),
        salt_bytes,
        current.block_count(),
    )
    .map_err(|e| corrupt(&e.to_string()))?;
    let valid = computed == expected;
    if stored.block_count() == current.block_count() && stored.t_cost() == current.t_cost() {
        hash_time.record(started.elapsed());
    }
    let needs_rehash = algorithm != Algorithm::Argon2id
        || version != Version::V0x13
        || stored.m_cost() != current.m_cost()
        || stored.t_cost() != current.t_cost()
        || stored.p_cost() != current.p_cost()
        || hash.hash.map(|h| h.len())
            != Some(current.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN));
    Ok(Verification {
        valid,
        needs_rehash,
    })
}

/// Verifies an imported ASP.NET Core Identity hash (see [`aspnet_identity`]). Always asks for a
/// rehash, so the first successful sign-in leaves an argon2id hash behind.
///
/// An unknown e-mail costs one argon2id verification (the dummy); PBKDF2 at ASP.NET's counts
/// costs something else (a few ms for version 2's 1,000 rounds, tens of ms for .NET 7's
/// 100,000 of SHA-512). So the check waits, after PBKDF2, until as long as an argon2id hash
/// takes here ([`HashTime`]) has passed: an imported account answers as slowly as an unknown
/// address, not faster (a hash computed as a pad) or slower (PBKDF2 plus a whole pad). Before
/// any argon2id hash was timed (a node that has not warmed up), one is computed as the pad
/// and timed. Waiting rather than computing keeps the CPU free; the hashing permit is held
/// either way.
fn verify_aspnet_identity(
    password: &str,
    stored: &str,
    current: &Params,
    hash_time: &HashTime,
) -> Result<Verification, AccountError> {
    let started = Instant::now();
    let valid = aspnet_identity::verify(password, stored).map_err(|e| {
        AccountError::Corrupt(format!("stored ASP.NET Core Identity password hash: {e}"))
    })?;
    match hash_time.get() {
        Some(target) => {
            if let Some(pad) = pad_for(started.elapsed(), target) {
                std::thread::sleep(pad);
            }
        }
        None => {
            let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, current.clone());
            let pad_started = Instant::now();
            let _ = raw_hash(
                &argon2,
                current,
                password.as_bytes(),
                b"ringfence timing pad",
                current.block_count(),
            );
            hash_time.record(pad_started.elapsed());
        }
    }
    Ok(Verification {
        valid,
        needs_rehash: true,
    })
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

    use super::*;

    /// The right password, stored with the current parameters.
    const VALID: Verification = Verification {
        valid: true,
        needs_rehash: false,
    };
    /// The right password, stored with other parameters or another variant.
    const VALID_NEEDS_REHASH: Verification = Verification {
        valid: true,
        needs_rehash: true,
    };

    /// Tests use the production parameters: argon2 is built with opt-level 3 even in debug.
    fn hasher() -> PasswordHasher {
        PasswordHasher::new(Argon2Params::OWASP).unwrap()
    }

    #[tokio::test]
    async fn round_trip() {
        let h = hasher();
        let phc = h.hash("correct horse battery staple".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let ok = h
            .verify("correct horse battery staple".into(), phc.clone())
            .await
            .unwrap();
        assert_eq!(ok, VALID);
        // Fresh salt every time.
        let again = h.hash("correct horse battery staple".into()).await.unwrap();
        assert_ne!(phc, again);
    }

    #[tokio::test]
    async fn strings_are_the_argon2_crates_own_both_ways() {
        let h = hasher();
        let password = "correct horse battery staple";
        // Ours, checked by the argon2 crate's own verifier.
        let ours = h.hash(password.into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .unwrap();
        // The argon2 crate's, with the same salt: the same string; and checked by us.
        let salt = SaltString::from_b64(parsed.salt.unwrap().as_str()).unwrap();
        let theirs = h
            .argon2()
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string();
        assert_eq!(theirs, ours);
        let v = h.verify(password.into(), theirs).await.unwrap();
        assert!(v.valid && !v.needs_rehash);
    }

    #[test]
    fn working_memory_is_kept_only_up_to_the_current_size() {
        with_working_memory(8, 16, |b| assert_eq!(b.len(), 8));
        with_working_memory(16, 16, |b| assert_eq!(b.len(), 16));
        WORKING_MEMORY.with(|m| assert_eq!(m.borrow().len(), 16));
        with_working_memory(64, 16, |b| assert_eq!(b.len(), 64));
        WORKING_MEMORY.with(|m| assert_eq!(m.borrow().len(), 16));
    }

    #[tokio::test(start_paused = true)]
    async fn a_saturated_hasher_answers_busy_instead_of_waiting_forever() {
        let h =
            PasswordHasher::with_priority(Argon2Params::OWASP, 1, HashPriority::Normal).unwrap();
        // The only thread is held by a job that ends when told to.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let holder = h.clone();
        let held = tokio::spawn(async move { holder.run(move || hold.recv().is_ok()).await });
        tokio::task::yield_now().await;
        // With time paused, the runtime skips ahead to the limit as soon as it is idle.
        let result = h.hash("correct horse battery staple".into()).await;
        assert!(matches!(result, Err(AccountError::Busy)), "{result:?}");
        assert_eq!(AccountError::Busy.retry_after_secs(), Some(5));
        release.send(()).unwrap();
        let _ = held.await.unwrap();
    }

    #[tokio::test]
    async fn wrong_password() {
        let h = hasher();
        let phc = h.hash("correct horse battery staple".into()).await.unwrap();
        let v = h
            .verify("Correct horse battery staple".into(), phc)
            .await
            .unwrap();
        assert!(!v.valid);
    }

    #[tokio::test]
    async fn malformed_hash_is_an_error_not_a_panic() {
        let h = hasher();
        for bad in [
            "",
            "not a hash",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$",
            "$argon2id$v=19$m=19456,t=2,p=1$!!!$!!!",
            "$argon2id$v=19$m=4294967295,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
            "$argon2id$v=99$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
            "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        ] {
            let result = h.verify("whatever password".into(), bad.to_owned()).await;
            assert!(matches!(result, Err(AccountError::Corrupt(_))), "{bad:?}: {result:?}");
        }
    }

    #[tokio::test]
    async fn needs_rehash_when_params_change() {
        let weak = PasswordHasher::new(Argon2Params {
            m_cost_kib: 8 * 1024,
            t_cost: 1,
            p_cost: 1,
        })
        .unwrap();
        let phc = weak
            .hash("correct horse battery staple".into())
            .await
            .unwrap();
        let v = weak
            .verify("correct horse battery staple".into(), phc.clone())
            .await
            .unwrap();
        assert_eq!(v, VALID);

        let current = hasher();
        let v = current
            .verify("correct horse battery staple".into(), phc.clone())
            .await
            .unwrap();
        assert_eq!(v, VALID_NEEDS_REHASH);
        let v = current.verify("wrong".into(), phc).await.unwrap();
        assert!(!v.valid);

        let stronger = PasswordHasher::new(Argon2Params {
            t_cost: 3,
            ..Argon2Params::OWASP
        })
        .unwrap();
        let phc = current
            .hash("correct horse battery staple".into())
            .await
            .unwrap();
        let v = stronger
            .verify("correct horse battery staple".into(), phc)
            .await
            .unwrap();
        assert_eq!(v, VALID_NEEDS_REHASH);
    }

    #[tokio::test]
    async fn other_argon2_variant_needs_rehash() {
        let salt = SaltString::generate(&mut OsRng);
        let phc = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::DEFAULT)
            .hash_password(b"correct horse battery staple", &salt)
            .unwrap()
            .to_string();
        let v = hasher()
            .verify("correct horse battery staple".into(), phc)
            .await
            .unwrap();
        assert_eq!(v, VALID_NEEDS_REHASH);
    }

    #[tokio::test]
    async fn aspnet_identity_hashes_verify_and_always_ask_for_a_rehash() {
        let h = hasher();
        // Version 2 and version 3 (HMAC-SHA256, 10,000 iterations) of "my password", salt 00..0f.
        for b64 in [
            "AAABAgMEBQYHCAkKCwwNDg+ukCEMDf0yyQ29NYubggHIVY0sdEUfdyeM+E1LtH1uJg==",
            "AQAAAAEAACcQAAAAEAABAgMEBQYHCAkKCwwNDg+yWU7rLgUwPZb1Itsmra7cbxw2EFpwpVFIEtP+JIuUEw==",
        ] {
            let stored = aspnet_identity::import_hash(b64).unwrap();
            let right = h
                .verify("my password".into(), stored.clone())
                .await
                .unwrap();
            assert_eq!(
                right,
                Verification {
                    valid: true,
                    needs_rehash: true
                }
            );
            let wrong = h.verify("My password".into(), stored).await.unwrap();
            assert!(!wrong.valid);
        }
        let unknown = format!("{}AgAB", aspnet_identity::ASPNET_IDENTITY_PREFIX);
        let result = h.verify("my password".into(), unknown).await;
        assert!(
            matches!(result, Err(AccountError::Corrupt(_))),
            "{result:?}"
        );
    }

    #[test]
    fn hash_time_starts_unknown_and_moves_by_an_eighth() {
        let time = HashTime::default();
        assert_eq!(time.get(), None);
        time.record(Duration::from_millis(80));
        assert_eq!(time.get(), Some(Duration::from_millis(80)));
        time.record(Duration::from_millis(160));
        assert_eq!(time.get(), Some(Duration::from_millis(90)));
    }

    #[test]
    fn the_pad_fills_up_to_the_target_and_never_below_zero() {
        let ms = Duration::from_millis;
        assert_eq!(pad_for(ms(5), ms(50)), Some(ms(45)));
        assert_eq!(pad_for(ms(50), ms(50)), None);
        assert_eq!(pad_for(ms(70), ms(50)), None);
    }

    /// An imported hash (version 2: 1,000 rounds, about a millisecond) answers no sooner than
    /// an argon2id hash takes here, so it looks like an unknown e-mail's dummy verification; a
    /// lower bound only (the wait guarantees it), no upper bound is asserted.
    #[test]
    fn an_imported_hash_takes_as_long_as_an_argon2_hash() {
        let stored = aspnet_identity::import_hash(
            "AAABAgMEBQYHCAkKCwwNDg+ukCEMDf0yyQ29NYubggHIVY0sdEUfdyeM+E1LtH1uJg==",
        )
        .unwrap();
        let current = Params::DEFAULT;
        let time = HashTime::default();
        time.record(Duration::from_millis(150));
        for password in ["my password", "wrong"] {
            let started = Instant::now();
            let v = verify_blocking(password, &stored, &current, &time).unwrap();
            assert_eq!(v.valid, password == "my password");
            assert!(started.elapsed() >= Duration::from_millis(150));
        }
        // Not timed yet: an argon2id hash is the pad, and it is timed.
        let untimed = HashTime::default();
        verify_blocking("my password", &stored, &current, &untimed).unwrap();
        assert!(untimed.get().is_some());
    }

    #[tokio::test]
    async fn hashes_and_verifications_at_the_current_parameters_are_timed() {
        let h = hasher();
        assert_eq!(h.inner.hash_time.get(), None);
        h.warm_up().await.unwrap();
        assert!(h.inner.hash_time.get().is_some());
    }

    #[tokio::test]
    async fn dummy_never_matches() {
        let h = hasher();
        h.warm_up().await.unwrap();
        let dummy = h.dummy_hash().await.unwrap().to_owned();
        assert!(dummy.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        h.verify_dummy("anything".into()).await;
        // Computed once.
        assert_eq!(h.dummy_hash().await.unwrap(), dummy);
    }

    #[test]
    fn invalid_params_are_rejected() {
        let err = PasswordHasher::new(Argon2Params {
            m_cost_kib: 1,
            t_cost: 0,
            p_cost: 0,
        })
        .unwrap_err();
        assert!(matches!(err, AccountError::InvalidConfig(_)), "{err:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrency_is_bounded() {
        let h = PasswordHasher::with_permits(Argon2Params::OWASP, 1).unwrap();
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let h = h.clone();
                tokio::spawn(async move { h.hash(format!("password number {i}")).await })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap().is_ok());
        }
        assert_eq!(h.inner.semaphore.available_permits(), 1);
    }
}
