//! The key ring: which keys exist, which one protects new payloads, when to make the next one.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard, Weak};
use std::time::{Duration as StdDuration, Instant};

use aes_gcm::Aes256Gcm;
use chrono::{DateTime, Duration, Utc};
use tokio::task::JoinHandle;

use crate::clock::SharedClock;
use crate::document::{DocumentError, KeyDocument, MasterKey};
use crate::key::{Key, KeyId, KeyInfo, KeyMaterial};
use crate::payload::derive_purpose_cipher;
use crate::repository::{KeyRepository, MemoryKeyRepository, RepositoryError, Revision};
use crate::Protector;

/// The shortest key lifetime accepted: shorter lifetimes leave too little room to propagate.
pub const MIN_KEY_LIFETIME: Duration = Duration::days(7);

/// How a key ring behaves. [`Default`] gives the documented defaults.
#[derive(Debug, Clone)]
pub struct KeyRingConfig {
    /// How long a key protects new payloads (default 90 days, at least 7 days).
    pub key_lifetime: Duration,
    /// How long before the default key expires its successor is created, so every node knows
    /// the successor long before anyone protects with it (default 72 hours).
    pub propagation_window: Duration,
    /// Tolerated clock difference between nodes (default 5 minutes): a key activating within
    /// this much in the future is already used.
    pub clock_skew: Duration,
    /// Whether this node may create keys (`--no-key-generation` turns it off).
    pub generate_keys: bool,
    /// How often the store's revision is polled for changes (default 500 ms).
    pub poll_interval: StdDuration,
    /// How often the whole ring is re-read regardless of the revision (default 60 s).
    pub reload_interval: StdDuration,
    /// Minimum time between re-reads caused by payloads naming unknown keys (default 1 s), so
    /// a flood of random key ids cannot turn into a flood of store reads.
    pub unknown_key_reload_interval: StdDuration,
    /// Key-encryption key for material at rest; `None` stores material in clear (with a warning).
    pub master_key: Option<MasterKey>,
    /// Former master keys, accepted for reading only while a master-key rotation is under way
    /// (see [`KeyRing::rewrap`]); everything written is wrapped under `master_key`.
    pub previous_master_keys: Vec<MasterKey>,
}

impl Default for KeyRingConfig {
    fn default() -> Self {
        Self {
            key_lifetime: Duration::days(90),
            propagation_window: Duration::hours(72),
            clock_skew: Duration::minutes(5),
            generate_keys: true,
            poll_interval: StdDuration::from_millis(500),
            reload_interval: StdDuration::from_secs(60),
            unknown_key_reload_interval: StdDuration::from_secs(1),
            master_key: None,
            previous_master_keys: Vec::new(),
        }
    }
}

/// Why the key ring could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    /// The store failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    /// A key document cannot be opened in a way that makes the node unsafe to run (wrong or
    /// missing master key).
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// The configuration is not acceptable.
    #[error("invalid key ring configuration: {0}")]
    Config(String),
    /// No such key.
    #[error("no key with id {0}")]
    NoSuchKey(KeyId),
    /// Another writer kept moving the ring while this node tried to write.
    #[error("the key ring kept changing while writing; try again")]
    Contended,
}

/// Hasher for maps keyed by bytes that are already uniformly random: key ids from the OS
/// CSPRNG and SHA-256 purpose hashes. Their first eight bytes are as good a hash as any, and
/// SipHash cost more on the hot path than a payload's framing. Flooding is no concern: only
/// trusted values are inserted (keys from the store, purposes named in code), so a hostile key id
/// can only probe a table of a few entries.
#[derive(Default)]
pub(crate) struct RandomBytesHasher(u64);

impl Hasher for RandomBytesHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        // The rotation keeps an earlier write (the slice's length prefix) from cancelling
        // a later one; the random bytes land unchanged in the bits the table uses.
        self.0 = self.0.rotate_left(17) ^ u64::from_le_bytes(word);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by uniformly random bytes (see [`RandomBytesHasher`]).
pub(crate) type RandomBytesMap<K, V> = HashMap<K, V, BuildHasherDefault<RandomBytesHasher>>;

/// Purposes per key served without a lock; an application uses a handful.
const CIPHER_SLOTS: usize = 8;

/// A key held in memory with the sub-key ciphers derived from it, one per purpose, computed
/// once and reused (derivation costs far more than a payload).
pub(crate) struct KeyEntry {
    pub(crate) info: KeyInfo,
    material: KeyMaterial,
    /// The first purposes used with this key, in order of first use. Reading a filled slot is
    /// one acquire load: no lock, no shared reference count on the hot path.
    slots: [OnceLock<([u8; 32], Aes256Gcm)>; CIPHER_SLOTS],
    /// Purposes beyond the slots.
    overflow: RwLock<RandomBytesMap<[u8; 32], Arc<Aes256Gcm>>>,
}

impl KeyEntry {
    fn new(key: Key) -> Self {
        Self {
            info: key.info,
            material: key.material,
            slots: Default::default(),
            overflow: RwLock::new(RandomBytesMap::default()),
        }
    }

    /// Runs `f` with the cipher of `purpose`, deriving it on first use.
    pub(crate) fn with_cipher<R>(&self, purpose: &[u8; 32], f: impl FnOnce(&Aes256Gcm) -> R) -> R {
        for slot in &self.slots {
            let (slot_purpose, cipher) = match slot.get() {
                Some(filled) => filled,
                // Claim the first empty slot. Every thread scans in the same order, so a
                // purpose is placed once: a thread that loses the race to another purpose
                // moves on, one racing with the same purpose waits and finds it.
                None => slot.get_or_init(|| (*purpose, self.derive(purpose))),
            };
            if slot_purpose == purpose {
                return f(cipher);
            }
        }
        f(&self.overflow_cipher(purpose))
    }

    fn overflow_cipher(&self, purpose: &[u8; 32]) -> Arc<Aes256Gcm> {
        if let Some(cipher) = self
            .overflow
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(purpose)
        {
            return Arc::clone(cipher);
        }
        let cipher = Arc::new(self.derive(purpose));
        self.overflow
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(*purpose)
            .or_insert(cipher)
            .clone()
    }

    fn derive(&self, purpose: &[u8; 32]) -> Aes256Gcm {
        derive_purpose_cipher(&self.material, &self.info.id, purpose)
    }

    fn key(&self) -> Key {
        Key {
            info: self.info.clone(),
            material: self.material.clone(),
        }
    }
}

/// What the ring knows at one revision.
#[derive(Default)]
pub(crate) struct RingState {
    pub(crate) keys: RandomBytesMap<KeyId, Arc<KeyEntry>>,
    revision: Revision,
    bad_documents: Vec<(String, String)>,
    /// The default key over all time, built on first use (the keys of a state never change;
    /// a reload installs a new state).
    timeline: OnceLock<Timeline>,
}

impl RingState {
    /// The key that protects new payloads at `now`: among keys not revoked, not expired and
    /// active (allowing for clock skew), the most recently activated.
    pub(crate) fn default_key(&self, now: DateTime<Utc>, skew: Duration) -> Option<&Arc<KeyEntry>> {
        match self.default_key_at_nanos(crate::clock::nanos(now), skew) {
            Some(found) => found,
            None => self.scan_default_key(now, skew),
        }
    }

    /// [`Self::default_key`] at `now_ns` (Unix nanoseconds, as from
    /// [`Clock::now_nanos`](crate::Clock::now_nanos)): usually two atomic loads (the built
    /// timeline, its hint) and two comparisons. `None` when `now_ns` is saturated (outside 1677-2262), where nanoseconds
    /// cannot tell instants apart: ask [`Self::default_key`] with the date instead.
    pub(crate) fn default_key_at_nanos(
        &self,
        now_ns: i64,
        skew: Duration,
    ) -> Option<Option<&Arc<KeyEntry>>> {
        if now_ns == i64::MIN || now_ns == i64::MAX {
            return None;
        }
        let timeline = self.timeline.get_or_init(|| Timeline::build(self, skew));
        // Every ring passes its one configured skew; a different one is answered by a scan.
        if timeline.skew != skew {
            return None;
        }
        Some(timeline.at(now_ns))
    }

    /// The default key as of the most recent lookup on this state (a protect, the refresh
    /// task's poll, any [`Self::default_key`]), without reading the clock: `None` before the
    /// first lookup. Reading the clock costs far more than the rest of the lookup (about 35 ns
    /// on a virtual machine), too much for a metric on every unprotect.
    pub(crate) fn recent_default_key(&self, skew: Duration) -> Option<Option<&Arc<KeyEntry>>> {
        let timeline = self.timeline.get().filter(|t| t.skew == skew)?;
        Some(timeline.recent())
    }

    fn scan_default_key(&self, now: DateTime<Utc>, skew: Duration) -> Option<&Arc<KeyEntry>> {
        let horizon = now
            .checked_add_signed(skew)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.keys
            .values()
            .filter(|k| {
                !k.info.is_revoked() && k.info.activates_at <= horizon && k.info.expires_at > now
            })
            .max_by_key(|k| (k.info.activates_at, k.info.created_at, k.info.id))
    }
}

/// The default key of one state as a function of time. A key is eligible from
/// `activates_at - skew` until `expires_at`, so the default can only change at those instants:
/// between two consecutive ones it is constant. The spans are computed once per state, and a
/// hint remembers the span last asked about, so the hot path is a relaxed load and two
/// comparisons; when the clock leaves that span the next lookup finds the new one (a binary
/// search over a few entries) and moves the hint. The default is therefore exact at every
/// instant, never lagging behind the clock.
struct Timeline {
    skew: Duration,
    /// Consecutive spans covering every `i64` nanosecond, sorted by `from_ns`.
    spans: Vec<Span>,
    /// Index of the span last looked up; only ever a valid index.
    hint: AtomicUsize,
}

/// `[from_ns, until_ns)` in Unix nanoseconds, and the default key throughout it.
struct Span {
    from_ns: i64,
    until_ns: i64,
    key: Option<Arc<KeyEntry>>,
}

impl Timeline {
    fn build(state: &RingState, skew: Duration) -> Self {
        // Every instant at which a key becomes or stops being eligible. Instants outside the
        // nanosecond range saturate; several may collapse onto `i64::MIN`/`i64::MAX`, which is
        // why saturated lookups never reach the timeline.
        let mut edges: Vec<DateTime<Utc>> = state
            .keys
            .values()
            .filter(|k| !k.info.is_revoked())
            .flat_map(|k| {
                let eligible = k.info.activates_at.checked_sub_signed(skew);
                eligible.into_iter().chain([k.info.expires_at])
            })
            .collect();
        edges.sort();
        edges.dedup();
        let mut spans: Vec<Span> = Vec::with_capacity(edges.len() + 1);
        let mut from = (i64::MIN, DateTime::<Utc>::MIN_UTC);
        for edge in edges.into_iter().map(|e| (crate::clock::nanos(e), e)) {
            if edge.0 > from.0 {
                spans.push(Span {
                    from_ns: from.0,
                    until_ns: edge.0,
                    key: state.scan_default_key(from.1, skew).cloned(),
                });
                from = edge;
            } else {
                // Same nanosecond after saturation: the later instant starts the span.
                from.1 = edge.1;
            }
        }
        spans.push(Span {
            from_ns: from.0,
            until_ns: i64::MAX,
            key: state.scan_default_key(from.1, skew).cloned(),
        });
        Self {
            skew,
            spans,
            hint: AtomicUsize::new(0),
        }
    }

    /// The default key of the span last looked up.
    fn recent(&self) -> Option<&Arc<KeyEntry>> {
        self.spans
            .get(self.hint.load(Ordering::Relaxed))
            .and_then(|s| s.key.as_ref())
    }

    /// The default key at `now_ns`, for `i64::MIN < now_ns < i64::MAX`.
    fn at(&self, now_ns: i64) -> Option<&Arc<KeyEntry>> {
        // Relaxed is enough: the spans are immutable, the hint only saves a search, and any
        // index it holds is valid.
        let hint = self.hint.load(Ordering::Relaxed);
        if let Some(span) = self.spans.get(hint) {
            if span.from_ns <= now_ns && now_ns < span.until_ns {
                return span.key.as_ref();
            }
        }
        let index = self
            .spans
            .partition_point(|s| s.from_ns <= now_ns)
            .saturating_sub(1);
        self.hint.store(index, Ordering::Relaxed);
        self.spans.get(index).and_then(|s| s.key.as_ref())
    }
}

/// What the generation policy decides.
#[derive(Debug, PartialEq, Eq)]
enum Needed {
    Nothing,
    /// No usable key at all: one that activates at once.
    Immediate,
    /// The default key expires within the propagation window: a successor activating when it
    /// expires.
    Successor {
        activates_at: DateTime<Utc>,
    },
}

fn needed(state: &RingState, config: &KeyRingConfig, now: DateTime<Utc>) -> Needed {
    let Some(default) = state.default_key(now, config.clock_skew) else {
        return Needed::Immediate;
    };
    if default.info.expires_at - now > config.propagation_window {
        return Needed::Nothing;
    }
    let has_successor = state.keys.values().any(|k| {
        !k.info.is_revoked()
            && k.info.activates_at > default.info.activates_at
            && k.info.expires_at > default.info.expires_at
    });
    if has_successor {
        Needed::Nothing
    } else {
        Needed::Successor {
            activates_at: default.info.expires_at,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) repository: Arc<dyn KeyRepository>,
    pub(crate) config: KeyRingConfig,
    pub(crate) clock: SharedClock,
    pub(crate) state: RwLock<Arc<RingState>>,
    /// Serializes reloads so concurrent callers share one store read.
    reload_lock: tokio::sync::Mutex<()>,
    last_miss_reload: Mutex<Option<Instant>>,
    store_healthy: std::sync::atomic::AtomicBool,
    /// Pushed changes wake the refresh task through this (see `push.rs`).
    pub(crate) changes: crate::push::Changes,
}

/// The data-protection key ring. Cheap to clone; every clone shares one state.
///
/// Create one with [`KeyRing::open`], hand out [`Protector`]s with [`KeyRing::protector`], and
/// keep it current with [`KeyRing::spawn_refresh`].
#[derive(Clone)]
pub struct KeyRing {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("repository", &self.inner.repository.describe())
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Opens the ring on a repository: loads it, creates the first key if none is usable and
    /// this node may generate, and checks every key opens with the configured master key.
    ///
    /// Fails when a key cannot be opened because the master key is wrong or missing: running
    /// with half a ring would reject valid payloads, so the node refuses to start instead.
    /// A node that may not generate keys opens fine on an empty store and reports itself not
    /// ready ([`KeyRing::is_ready`]) until a key appears.
    pub async fn open(
        repository: Arc<dyn KeyRepository>,
        config: KeyRingConfig,
        clock: SharedClock,
    ) -> Result<Self, KeyRingError> {
        if config.key_lifetime < MIN_KEY_LIFETIME {
            return Err(KeyRingError::Config(format!(
                "key lifetime must be at least {} days",
                MIN_KEY_LIFETIME.num_days()
            )));
        }
        if config.propagation_window >= config.key_lifetime {
            return Err(KeyRingError::Config(
                "propagation window must be shorter than the key lifetime".to_owned(),
            ));
        }
        if config.master_key.is_none() {
            tracing::warn!(
                store = %repository.describe(),
                "no master key configured: key material is stored unencrypted; pass --master-key-file to encrypt it at rest"
            );
        }
        let ring = Self::with_state(repository, config, clock, RingState::default());
        let snapshot = ring.inner.repository.load().await?;
        // Refuse to start if any key needs a master key we do not have or was wrapped under
        // another one: the operator must hear about it now, not as failed sign-ins later.
        for raw in &snapshot.documents {
            if let Ok(doc) = KeyDocument::from_json(&raw.bytes) {
                if let Err(
                    e @ (DocumentError::WrongMasterKey { .. }
                    | DocumentError::MasterKeyRequired { .. }
                    | DocumentError::UnwrapFailed(_)),
                ) = ring.open_document(&doc)
                {
                    return Err(e.into());
                }
            }
        }
        ring.reload().await?;
        ring.ensure_keys().await?;
        if !ring.is_ready() {
            tracing::warn!(
                "key ring has no usable key and this node may not generate keys (--no-key-generation): not ready until a key appears in {}",
                ring.inner.repository.describe()
            );
        }
        Ok(ring)
    }

    /// A ring with one fresh key and no persistent store: for tests and examples.
    pub fn in_memory(clock: SharedClock) -> Self {
        let repository = Arc::new(MemoryKeyRepository::new());
        let config = KeyRingConfig::default();
        let now = clock.now();
        let key = new_key(now, now, config.key_lifetime);
        repository.write_now(&[KeyDocument::seal(&key, None)]);
        let mut state = RingState {
            revision: 1,
            ..RingState::default()
        };
        state.keys.insert(key.info.id, Arc::new(KeyEntry::new(key)));
        Self::with_state(repository, config, clock, state)
    }

    fn with_state(
        repository: Arc<dyn KeyRepository>,
        config: KeyRingConfig,
        clock: SharedClock,
        state: RingState,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                repository,
                config,
                clock,
                state: RwLock::new(Arc::new(state)),
                reload_lock: tokio::sync::Mutex::new(()),
                last_miss_reload: Mutex::new(None),
                store_healthy: std::sync::atomic::AtomicBool::new(true),
                changes: crate::push::Changes::default(),
            }),
        }
    }

    /// A protector for `purpose`. Payloads it makes open only with a protector of the same
    /// purpose chain, on any node sharing the ring.
    pub fn protector(&self, purpose: &str) -> Protector {
        Protector::new(self.clone(), vec![purpose.to_owned()])
    }

    /// The current state, borrowed for the length of one payload: two uncontended atomic
    /// operations, where cloning the `Arc` costs four. Never hold it across an await (the
    /// guard is not `Send`, so the compiler refuses) or while taking the lock again: a reload
    /// waiting to install a new state blocks new readers.
    pub(crate) fn state_ref(&self) -> RwLockReadGuard<'_, Arc<RingState>> {
        self.inner.state.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn state(&self) -> Arc<RingState> {
        Arc::clone(&self.inner.state.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The configuration.
    pub fn config(&self) -> &KeyRingConfig {
        &self.inner.config
    }

    /// The clock the ring decides with.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// A description of the store ("redis ringfence:{keyring}:keys").
    pub fn describe_store(&self) -> String {
        self.inner.repository.describe()
    }

    /// Every key known, oldest first.
    pub fn keys(&self) -> Vec<KeyInfo> {
        let mut keys: Vec<KeyInfo> = self.state().keys.values().map(|k| k.info.clone()).collect();
        keys.sort_by_key(|k| (k.created_at, k.id));
        keys
    }

    /// The id of the key that protects new payloads now, if any.
    pub fn default_key_id(&self) -> Option<KeyId> {
        let now = self.inner.clock.now();
        self.state()
            .default_key(now, self.inner.config.clock_skew)
            .map(|k| k.info.id)
    }

    /// Documents that could not be read at the last load, as (where, why).
    pub fn bad_documents(&self) -> Vec<(String, String)> {
        self.state().bad_documents.clone()
    }

    /// Whether the ring can protect new payloads (a default key exists).
    pub fn is_ready(&self) -> bool {
        self.default_key_id().is_some()
    }

    /// Whether the last contact with the store succeeded.
    pub fn store_healthy(&self) -> bool {
        self.inner
            .store_healthy
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn set_store_healthy(&self, healthy: bool) {
        let was = self
            .inner
            .store_healthy
            .swap(healthy, std::sync::atomic::Ordering::Relaxed);
        if was != healthy {
            if healthy {
                tracing::info!(store = %self.describe_store(), "key store reachable again");
            } else {
                tracing::error!(store = %self.describe_store(), "key store unreachable: serving from the keys in memory");
            }
        }
    }

    /// Opens a document with the master key it was wrapped under: the current one, or one of
    /// the previous ones during a rotation.
    fn open_document(&self, doc: &KeyDocument) -> Result<Key, DocumentError> {
        let config = &self.inner.config;
        if let crate::document::MaterialDocument::Aes256Gcm { master_key, .. } = &doc.material {
            if let Some(previous) = config
                .previous_master_keys
                .iter()
                .find(|k| k.fingerprint() == master_key)
            {
                return doc.open(Some(previous));
            }
        }
        doc.open(config.master_key.as_ref())
    }

    /// Re-seals every key under the current master key (or in clear without one) and writes
    /// them back: the second step of a master-key rotation, after every node runs with the new
    /// master key and the old one as a previous key. Returns how many keys were written.
    pub async fn rewrap(&self) -> Result<usize, KeyRingError> {
        let master = self.inner.config.master_key.clone();
        let written = self
            .write_with_retry(|state| {
                Ok(state
                    .keys
                    .values()
                    .map(|k| KeyDocument::seal(&k.key(), master.as_ref()))
                    .collect())
            })
            .await?;
        Ok(written.len())
    }

    /// Re-reads the ring from the store and installs it. Keys this node holds that the store
    /// lost (a purged Redis, a deleted directory) are written back, and revocations this node
    /// knows are kept: the ring in memory and the store only ever grow together.
    pub async fn reload(&self) -> Result<(), KeyRingError> {
        let _guard = self.inner.reload_lock.lock().await;
        self.reload_locked().await
    }

    async fn reload_locked(&self) -> Result<(), KeyRingError> {
        let result = self.reload_inner().await;
        metrics::counter!("ringfence_keyring_refresh_total", "result" => if result.is_ok() { "ok" } else { "error" })
            .increment(1);
        self.set_store_healthy(!matches!(result, Err(KeyRingError::Repository(_))));
        result
    }

    async fn reload_inner(&self) -> Result<(), KeyRingError> {
        let master = self.inner.config.master_key.as_ref();
        let snapshot = self.inner.repository.load().await?;
        let previous = self.state();
        let mut state = RingState {
            revision: snapshot.revision,
            ..RingState::default()
        };
        // Ids the store holds, readable or not: a key this node cannot open (wrapped under a
        // newer master key during a rotation) is still there and must not be written back.
        let mut present = std::collections::HashSet::new();
        for raw in &snapshot.documents {
            let parsed = KeyDocument::from_json(&raw.bytes);
            if let Ok(doc) = &parsed {
                present.insert(doc.id);
            }
            match parsed.and_then(|doc| self.open_document(&doc)) {
                Ok(key) => {
                    // Keep the entry (and its derived ciphers) when nothing changed.
                    let entry = match previous.keys.get(&key.info.id) {
                        Some(old) if old.info == key.info => Arc::clone(old),
                        _ => Arc::new(KeyEntry::new(key)),
                    };
                    state.keys.insert(entry.info.id, entry);
                }
                Err(error) => {
                    tracing::error!(document = %raw.name, %error, "skipping unreadable key document");
                    state
                        .bad_documents
                        .push((raw.name.clone(), error.to_string()));
                }
            }
        }
        // Write back what the store lost or forgot: keys only this node still holds, and
        // revocations the store does not show. Never a new key: that would be a key other
        // nodes cannot know yet.
        let mut write_back = Vec::new();
        let mut unreadable = Vec::new();
        for (id, old) in &previous.keys {
            match state.keys.get(id) {
                None if !present.contains(id) => write_back.push(old.key()),
                // Still stored but no longer readable here (rotated master key): keep serving
                // it from memory, leave the store alone.
                None => unreadable.push(Arc::clone(old)),
                Some(now_entry) if old.info.is_revoked() && !now_entry.info.is_revoked() => {
                    write_back.push(old.key())
                }
                _ => {}
            }
        }
        for entry in unreadable {
            state.keys.insert(entry.info.id, entry);
        }
        if !write_back.is_empty() {
            tracing::warn!(
                keys = write_back.len(),
                store = %self.describe_store(),
                "key store is missing keys this node holds (store purged?): writing them back"
            );
            let docs: Vec<KeyDocument> = write_back
                .iter()
                .map(|k| KeyDocument::seal(k, master))
                .collect();
            let written = self
                .inner
                .repository
                .compare_and_write(snapshot.revision, &docs)
                .await?;
            for key in write_back {
                state.keys.insert(key.info.id, Arc::new(KeyEntry::new(key)));
            }
            if written {
                state.revision = snapshot.revision + 1;
            }
        }
        self.record_gauges(&state);
        *self.inner.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(state);
        self.inner.changes.reloaded();
        Ok(())
    }

    fn record_gauges(&self, state: &RingState) {
        let now = self.inner.clock.now();
        metrics::gauge!("ringfence_keyring_keys").set(state.keys.len() as f64);
        if let Some(default) = state.default_key(now, self.inner.config.clock_skew) {
            let age = (now - default.info.created_at).num_seconds().max(0);
            metrics::gauge!("ringfence_keyring_default_key_age_seconds").set(age as f64);
            let left = (default.info.expires_at - now).num_seconds().max(0);
            metrics::gauge!("ringfence_keyring_default_key_expires_in_seconds").set(left as f64);
        }
    }

    /// Creates the first key or the default key's successor when the policy says one is due
    /// and this node may generate. Safe to call from every node at once: writes are a
    /// compare-and-set on the revision, so exactly one node's key lands and the others adopt it.
    pub async fn ensure_keys(&self) -> Result<(), KeyRingError> {
        if !self.inner.config.generate_keys {
            return Ok(());
        }
        let _guard = self.inner.reload_lock.lock().await;
        for _ in 0..8 {
            let now = self.inner.clock.now();
            let state = self.state();
            let activates_at = match needed(&state, &self.inner.config, now) {
                Needed::Nothing => return Ok(()),
                Needed::Immediate => now,
                Needed::Successor { activates_at } => activates_at,
            };
            let key = new_key(now, activates_at, self.inner.config.key_lifetime);
            let doc = KeyDocument::seal(&key, self.inner.config.master_key.as_ref());
            if self
                .inner
                .repository
                .compare_and_write(state.revision, &[doc])
                .await?
            {
                tracing::info!(key = %key.info.id, activates_at = %activates_at, "created key");
            }
            // Either way, read what the store now holds: our key, or the one that beat us.
            self.reload_locked().await?;
        }
        Err(KeyRingError::Contended)
    }

    /// Creates a key that activates now (the `keys new` command). Nodes learn it within a
    /// second, and any node that sees a payload under it before then re-reads the store.
    pub async fn create_key(&self) -> Result<KeyInfo, KeyRingError> {
        let now = self.inner.clock.now();
        let key = new_key(now, now, self.inner.config.key_lifetime);
        let info = key.info.clone();
        let doc = KeyDocument::seal(&key, self.inner.config.master_key.as_ref());
        self.write_with_retry(|_| Ok(vec![doc.clone()])).await?;
        Ok(info)
    }

    /// Revokes one key: payloads under it never open again, on any node. If it was the default
    /// key, a node that may generate creates a new one at once.
    pub async fn revoke(&self, id: KeyId) -> Result<(), KeyRingError> {
        self.revoke_where(|k| k.id == id, Some(id))
            .await
            .map(|_| ())
    }

    /// Revokes every key created before `before` (all keys with `before = now`); returns how
    /// many were revoked.
    pub async fn revoke_created_before(
        &self,
        before: DateTime<Utc>,
    ) -> Result<usize, KeyRingError> {
        self.revoke_where(|k| k.created_at < before, None).await
    }

    async fn revoke_where(
        &self,
        select: impl Fn(&KeyInfo) -> bool,
        required: Option<KeyId>,
    ) -> Result<usize, KeyRingError> {
        let now = self.inner.clock.now();
        let master = self.inner.config.master_key.clone();
        let count = self
            .write_with_retry(|state| {
                if let Some(id) = required {
                    if !state.keys.contains_key(&id) {
                        return Err(KeyRingError::NoSuchKey(id));
                    }
                }
                Ok(state
                    .keys
                    .values()
                    .filter(|k| !k.info.is_revoked() && select(&k.info))
                    .map(|k| {
                        let mut key = k.key();
                        key.info.revoked_at = Some(now);
                        KeyDocument::seal(&key, master.as_ref())
                    })
                    .collect())
            })
            .await?;
        for id in &count {
            tracing::warn!(key = %id, "revoked key");
        }
        self.ensure_keys().await?;
        Ok(count.len())
    }

    /// Reloads, builds documents from the fresh state, and compare-and-writes them, retrying
    /// when another writer moved the ring meanwhile. Returns the ids written.
    async fn write_with_retry(
        &self,
        build: impl Fn(&RingState) -> Result<Vec<KeyDocument>, KeyRingError>,
    ) -> Result<Vec<KeyId>, KeyRingError> {
        let _guard = self.inner.reload_lock.lock().await;
        for _ in 0..8 {
            self.reload_locked().await?;
            let state = self.state();
            let docs = build(&state)?;
            if docs.is_empty() {
                return Ok(Vec::new());
            }
            if self
                .inner
                .repository
                .compare_and_write(state.revision, &docs)
                .await?
            {
                self.reload_locked().await?;
                return Ok(docs.iter().map(|d| d.id).collect());
            }
        }
        Err(KeyRingError::Contended)
    }

    /// Re-reads the store because a payload named a key this node does not know, at most once
    /// per [`KeyRingConfig::unknown_key_reload_interval`] whatever the number of callers.
    pub(crate) async fn reload_for_unknown_key(&self) -> bool {
        metrics::counter!("ringfence_keyring_unknown_key_total").increment(1);
        {
            let mut last = self
                .inner
                .last_miss_reload
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(at) = *last {
                if at.elapsed() < self.inner.config.unknown_key_reload_interval {
                    return false;
                }
            }
            *last = Some(Instant::now());
        }
        match self.reload().await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "re-reading the key ring for an unknown key failed");
                false
            }
        }
    }

    /// One maintenance pass: poll the revision, reload when it moved (or when the full
    /// re-read is due), then make keys the policy asks for.
    pub async fn tick(&self, full: bool) -> Result<(), KeyRingError> {
        // A lookup moves the default-key hint along with the clock, so on a node that protects
        // nothing the non-default-key metric still follows a switch by time within one poll.
        let _ = self.default_key_id();
        let known = self.state().revision;
        let revision = match self.inner.repository.revision().await {
            Ok(revision) => revision,
            Err(error) => {
                self.set_store_healthy(false);
                return Err(error.into());
            }
        };
        self.set_store_healthy(true);
        if full || revision != known {
            let was_ready = self.is_ready();
            self.reload().await?;
            if !was_ready && self.is_ready() {
                tracing::info!("key ring has a usable key: ready");
            }
        }
        self.ensure_keys().await
    }

    /// Keeps the ring current in the background: polls the revision every
    /// [`KeyRingConfig::poll_interval`] and re-reads fully every
    /// [`KeyRingConfig::reload_interval`], and at once when [`KeyRing::refresh_soon`] is called
    /// (a pushed change, see `push.rs`). The task ends by itself when the last clone of the
    /// ring is dropped.
    pub fn spawn_refresh(&self) -> JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let poll = self.inner.config.poll_interval;
        let reload_every = self.inner.config.reload_interval;
        let wake = self.inner.changes.wake.clone();
        tokio::spawn(async move {
            let mut last_full = Instant::now();
            loop {
                tokio::select! {
                    () = tokio::time::sleep(poll) => {}
                    () = wake.notified() => {}
                }
                let Some(inner) = weak.upgrade() else { return };
                let ring = KeyRing { inner };
                let full = last_full.elapsed() >= reload_every;
                if full {
                    last_full = Instant::now();
                }
                if let Err(error) = ring.tick(full).await {
                    tracing::debug!(%error, "key ring refresh failed");
                }
            }
        })
    }
}

fn new_key(now: DateTime<Utc>, activates_at: DateTime<Utc>, lifetime: Duration) -> Key {
    Key {
        info: KeyInfo {
            id: KeyId::generate(),
            created_at: now,
            activates_at,
            expires_at: crate::clock::add_saturating(activates_at, lifetime),
            revoked_at: None,
        },
        material: KeyMaterial::generate(),
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use proptest::prelude::*;

    use super::*;
    use crate::payload::purpose_hash;

    fn at(ns: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(ns)
    }

    fn entry(created: DateTime<Utc>, activates: DateTime<Utc>, expires: DateTime<Utc>) -> Key {
        Key {
            info: KeyInfo {
                id: KeyId::generate(),
                created_at: created,
                activates_at: activates,
                expires_at: expires,
                revoked_at: None,
            },
            material: KeyMaterial::generate(),
        }
    }

    fn state_of(keys: Vec<Key>) -> RingState {
        let mut state = RingState::default();
        for key in keys {
            state.keys.insert(key.info.id, Arc::new(KeyEntry::new(key)));
        }
        state
    }

    fn id_of(key: Option<&Arc<KeyEntry>>) -> Option<KeyId> {
        key.map(|k| k.info.id)
    }

    /// Every instant where the answer may change, and its neighbours.
    fn probes(state: &RingState, skew: Duration) -> Vec<DateTime<Utc>> {
        let one = Duration::nanoseconds(1);
        let mut probes = Vec::new();
        for k in state.keys.values() {
            for edge in [k.info.activates_at - skew, k.info.expires_at] {
                probes.extend([edge - one, edge, edge + one]);
            }
        }
        probes
    }

    prop_compose! {
        /// Keys with edges a few seconds apart, often equal, some revoked.
        fn keys()(specs in proptest::collection::vec(
            (0i64..40, 0i64..40, 1i64..40, any::<bool>(), 0i64..3), 0..7,
        )) -> Vec<Key> {
            let base = 1_900_000_000_000_000_000i64;
            let s = 1_000_000_000i64;
            specs.into_iter().map(|(created, activates, life, revoked, tie)| {
                let mut key = entry(
                    at(base + created * s + tie),
                    at(base + activates * s),
                    at(base + (activates + life) * s),
                );
                if revoked {
                    key.info.revoked_at = Some(at(base));
                }
                key
            }).collect()
        }
    }

    proptest! {
        /// The timeline gives what a scan gives, at every edge and either side of it, in any
        /// order of lookups (the hint moves forward and back).
        #[test]
        fn timeline_matches_a_scan(keys in keys(), skew_s in 0i64..5, order in any::<u64>()) {
            let skew = Duration::seconds(skew_s);
            let state = state_of(keys);
            let mut probes = probes(&state, skew);
            probes.push(at(0));
            probes.push(at(i64::MAX - 1));
            probes.push(at(i64::MIN + 1));
            // A cheap shuffle, reproducible from `order`.
            let n = probes.len();
            for i in 0..n {
                probes.swap(i, (order.rotate_left(i as u32) as usize ^ i) % n);
            }
            for now in probes {
                let fast = state.default_key_at_nanos(crate::clock::nanos(now), skew);
                prop_assert_eq!(
                    fast.map(id_of),
                    Some(id_of(state.scan_default_key(now, skew))),
                    "at {}", now
                );
                prop_assert_eq!(
                    id_of(state.default_key(now, skew)),
                    id_of(state.scan_default_key(now, skew))
                );
            }
        }
    }

    #[test]
    fn dates_beyond_nanoseconds_are_answered_by_a_scan() {
        let year = |y: i32| {
            DateTime::parse_from_rfc3339(&format!("{y:04}-01-01T00:00:00Z"))
                .unwrap()
                .with_timezone(&Utc)
        };
        let skew = Duration::minutes(5);
        // Two keys whose edges all saturate to i64::MAX, one whose edges saturate to MIN.
        let late = entry(year(2020), year(2500), year(2600));
        let later = entry(year(2020), year(2550), year(2700));
        let early = entry(year(1000), year(1100), year(1200));
        let ids = (late.info.id, later.info.id, early.info.id);
        let state = state_of(vec![late, later, early]);
        for (now, expected) in [
            (year(1150), Some(ids.2)),
            (year(1600), None),
            (year(2000), None),
            (year(2520), Some(ids.0)),
            (year(2560), Some(ids.1)),
            (year(2650), Some(ids.1)),
            (year(2800), None),
        ] {
            assert_eq!(id_of(state.default_key(now, skew)), expected, "at {now}");
        }
        assert_eq!(state.default_key_at_nanos(i64::MAX, skew).map(id_of), None);
        assert_eq!(state.default_key_at_nanos(i64::MIN, skew).map(id_of), None);
        // An instant near the extremes of chrono's range does not overflow the skew arithmetic.
        assert_eq!(
            id_of(state.default_key(DateTime::<Utc>::MAX_UTC, skew)),
            None
        );
        assert_eq!(
            id_of(state.default_key(DateTime::<Utc>::MIN_UTC, skew)),
            None
        );
    }

    #[test]
    fn a_state_without_keys_has_no_default() {
        let state = RingState::default();
        assert_eq!(
            state.default_key_at_nanos(0, Duration::zero()).map(id_of),
            Some(None)
        );
    }

    #[test]
    fn purposes_beyond_the_slots_use_the_map_and_every_cipher_is_the_derived_one() {
        let now = Utc::now();
        let key = KeyEntry::new(entry(now, now, now + Duration::days(1)));
        let purposes: Vec<[u8; 32]> = (0..CIPHER_SLOTS + 4)
            .map(|i| purpose_hash(&[format!("p{i}")]))
            .collect();
        let id = key.info.id;
        for _ in 0..2 {
            for purpose in &purposes {
                let sealed = key.with_cipher(purpose, |c| crate::payload::seal(c, &id, b"x"));
                let fresh = key.derive(purpose);
                assert_eq!(crate::payload::open(&fresh, &sealed).unwrap(), b"x");
            }
        }
        assert!(key.slots.iter().all(|s| s.get().is_some()));
        assert_eq!(key.overflow.read().unwrap().len(), 4);
    }

    #[test]
    fn the_hasher_takes_the_random_bytes_as_they_are() {
        let build = BuildHasherDefault::<RandomBytesHasher>::default();
        let a = KeyId([1; 16]);
        let b = KeyId([2; 16]);
        assert_ne!(build.hash_one(a), build.hash_one(b));
        assert_eq!(build.hash_one(a), build.hash_one(KeyId([1; 16])));
        // The table's bits come straight from the bytes.
        assert_eq!(build.hash_one(a) >> 56, 1);
    }
}
