//! The key ring: which keys exist, which one protects new payloads, when to make the next one.

use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Instant;

use crate::clock::SharedClock;
use crate::document::{DocumentError, KeyDocument};
use crate::key::{Key, KeyId, KeyInfo};
use crate::repository::{KeyRepository, MemoryKeyRepository};
use crate::Protector;

mod config;
mod entry;
mod generation;
mod refresh;
mod selection;
#[cfg(test)]
mod tests;

pub use config::{KeyRingConfig, KeyRingError, MIN_KEY_LIFETIME};
pub(crate) use entry::{KeyEntry, RandomBytesMap};
use generation::new_key;
pub(crate) use selection::RingState;

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
}
