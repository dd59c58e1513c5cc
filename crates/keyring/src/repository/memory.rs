//! An in-process repository: for tests and single-process tools that need no persistence.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{KeyRepository, RawDocument, RepositoryError, Revision, RingSnapshot};
use crate::document::KeyDocument;

/// Keeps documents in memory; compare-and-set under a mutex.
#[derive(Debug, Default)]
pub struct MemoryKeyRepository {
    inner: Mutex<(Revision, BTreeMap<String, Vec<u8>>)>,
}

impl MemoryKeyRepository {
    /// An empty repository.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets everything, as a store restarted without persistence would.
    pub fn purge(&self) {
        *self.lock() = (0, BTreeMap::new());
    }

    /// Stores raw bytes under a name (tests use it to plant bad documents).
    pub fn put_raw(&self, name: &str, bytes: &[u8]) {
        let mut inner = self.lock();
        inner.1.insert(name.to_owned(), bytes.to_vec());
        inner.0 += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Revision, BTreeMap<String, Vec<u8>>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write_now(&self, documents: &[KeyDocument]) {
        Self::write_locked(&mut self.lock(), documents);
    }

    fn write_locked(inner: &mut (Revision, BTreeMap<String, Vec<u8>>), documents: &[KeyDocument]) {
        for doc in documents {
            inner
                .1
                .insert(doc.id.to_string(), doc.to_json().into_bytes());
        }
        inner.0 += 1;
    }
}

#[async_trait]
impl KeyRepository for MemoryKeyRepository {
    async fn load(&self) -> Result<RingSnapshot, RepositoryError> {
        let inner = self.lock();
        Ok(RingSnapshot {
            revision: inner.0,
            documents: inner
                .1
                .iter()
                .map(|(name, bytes)| RawDocument {
                    name: name.clone(),
                    bytes: bytes.clone(),
                })
                .collect(),
        })
    }

    async fn revision(&self) -> Result<Revision, RepositoryError> {
        Ok(self.lock().0)
    }

    async fn compare_and_write(
        &self,
        expected: Revision,
        documents: &[KeyDocument],
    ) -> Result<bool, RepositoryError> {
        let mut inner = self.lock();
        if inner.0 != expected {
            return Ok(false);
        }
        Self::write_locked(&mut inner, documents);
        Ok(true)
    }

    fn describe(&self) -> String {
        "memory".to_owned()
    }
}
