//! When to make the next key and writing keys: the generation policy, creation, revocation and
//! the compare-and-set writes that keep nodes from racing.

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::document::KeyDocument;
use crate::key::{Key, KeyId, KeyInfo, KeyMaterial};

/// What the generation policy decides.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Needed {
    Nothing,
    /// No usable key at all: one that activates at once.
    Immediate,
    /// The default key expires within the propagation window: a successor activating when it
    /// expires.
    Successor {
        activates_at: DateTime<Utc>,
    },
}

pub(super) fn needed(state: &RingState, config: &KeyRingConfig, now: DateTime<Utc>) -> Needed {
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

impl KeyRing {
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
    pub(super) async fn write_with_retry(
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
}

pub(super) fn new_key(now: DateTime<Utc>, activates_at: DateTime<Utc>, lifetime: Duration) -> Key {
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
