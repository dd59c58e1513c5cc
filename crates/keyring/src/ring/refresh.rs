//! Keeping the ring current: reloads from the store, the reload for a payload under an unknown
//! key, and the background refresh task.

use std::sync::{Arc, Weak};
use std::time::Instant;

use tokio::task::JoinHandle;

use super::*;
use crate::document::KeyDocument;

impl KeyRing {
    /// Re-reads the ring from the store and installs it. Keys this node holds that the store
    /// lost (a purged Redis, a deleted directory) are written back, and revocations this node
    /// knows are kept: the ring in memory and the store only ever grow together.
    pub async fn reload(&self) -> Result<(), KeyRingError> {
        let _guard = self.inner.reload_lock.lock().await;
        self.reload_locked().await
    }

    pub(super) async fn reload_locked(&self) -> Result<(), KeyRingError> {
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
