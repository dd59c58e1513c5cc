//! Mail-link tokens (and passkey ceremonies) on MongoDB: one document per token in
//! `ringfence_mail_tokens`, `{ _id: SHA-256 of the token (hex), purpose, user_id,
//! expires_at_ms, binding, payload }`.
//!
//! A take reads the live record, then deletes it by `_id` and purpose: the delete's count says
//! who got it, so of concurrent takes from any number of nodes exactly one returns the record.
//! (`findOneAndDelete` would do on MongoDB, but FerretDB 1.x answers it with the document to
//! every concurrent caller.) Expired documents are deleted every few inserts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::bson::{doc, Bson, Document};
use mongodb::Collection;

use super::{ensure_index, store_error, MongoDatabase};
use crate::tokens::{
    from_millis, millis, MailTokenRecord, MailTokenStore, TokenHash, TokenPurpose, TokenStoreError,
    PURGE_EVERY,
};
use crate::UserStoreError;

/// [`MailTokenStore`] on MongoDB.
#[derive(Debug, Clone)]
pub struct MongoMailTokenStore {
    tokens: Collection<Document>,
    inserted: Arc<AtomicU64>,
}

impl MongoMailTokenStore {
    /// The store on `db`; call [`MongoMailTokenStore::migrate`] before use.
    pub fn new(db: &MongoDatabase) -> Self {
        MongoMailTokenStore {
            tokens: db.database().collection("ringfence_mail_tokens"),
            inserted: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Creates the index the purge uses (idempotent; every node runs it at start).
    pub async fn migrate(&self) -> Result<(), TokenStoreError> {
        ensure_index(
            &self.tokens,
            doc! { "expires_at_ms": 1 },
            "mail_tokens_expiry",
            false,
        )
        .await
        .map_err(from_user_store)
    }

    /// Deletes every token expired at `now`; returns how many.
    pub async fn purge(&self, now: DateTime<Utc>) -> Result<u64, TokenStoreError> {
        let done = self
            .tokens
            .delete_many(doc! { "expires_at_ms": { "$lte": millis(now) } })
            .await
            .map_err(error)?;
        Ok(done.deleted_count)
    }

    async fn live(
        &self,
        token: &TokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<MailTokenRecord>, TokenStoreError> {
        let found = self
            .tokens
            .find_one(doc! {
                "_id": token.to_hex(),
                "purpose": purpose.as_str(),
                "expires_at_ms": { "$gt": millis(now) },
            })
            .await
            .map_err(error)?;
        found.map(|d| record_from(&d, purpose)).transpose()
    }
}

fn from_user_store(e: UserStoreError) -> TokenStoreError {
    match e {
        UserStoreError::Corrupt(detail) => TokenStoreError::Corrupt(detail),
        UserStoreError::Migration(detail) => TokenStoreError::Migration(detail),
        other => TokenStoreError::Unavailable(other.to_string()),
    }
}

fn error(e: mongodb::error::Error) -> TokenStoreError {
    from_user_store(store_error(e))
}

fn record_from(d: &Document, purpose: TokenPurpose) -> Result<MailTokenRecord, TokenStoreError> {
    let corrupt = |field: &str| TokenStoreError::Corrupt(format!("mail token document: {field}"));
    Ok(MailTokenRecord {
        purpose,
        user_id: d
            .get_str("user_id")
            .map_err(|_| corrupt("user_id"))?
            .to_owned(),
        expires_at: from_millis(
            d.get_i64("expires_at_ms")
                .map_err(|_| corrupt("expires_at_ms"))?,
        )?,
        binding: d
            .get_str("binding")
            .map_err(|_| corrupt("binding"))?
            .to_owned(),
        payload: match d.get("payload") {
            None | Some(Bson::Null) => None,
            Some(Bson::String(s)) => Some(s.clone()),
            Some(_) => return Err(corrupt("payload")),
        },
    })
}

#[async_trait]
impl MailTokenStore for MongoMailTokenStore {
    async fn insert(
        &self,
        token: &TokenHash,
        record: &MailTokenRecord,
        now: DateTime<Utc>,
    ) -> Result<(), TokenStoreError> {
        self.tokens
            .insert_one(doc! {
                "_id": token.to_hex(),
                "purpose": record.purpose.as_str(),
                "user_id": &record.user_id,
                "expires_at_ms": millis(record.expires_at),
                "binding": &record.binding,
                "payload": record.payload.as_deref(),
            })
            .await
            .map_err(error)?;
        if self.inserted.fetch_add(1, Ordering::Relaxed) % PURGE_EVERY == PURGE_EVERY - 1 {
            match self.purge(now).await {
                Ok(n) => tracing::debug!(purged = n, "expired mail tokens purged"),
                Err(e) => tracing::warn!(error = %e, "purging mail tokens failed"),
            }
        }
        Ok(())
    }

    async fn find(
        &self,
        token: &TokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<MailTokenRecord>, TokenStoreError> {
        self.live(token, purpose, now).await
    }

    async fn take(
        &self,
        token: &TokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<MailTokenRecord>, TokenStoreError> {
        let Some(record) = self.live(token, purpose, now).await? else {
            return Ok(None);
        };
        // The purpose again: a record of another purpose is never removed.
        let done = self
            .tokens
            .delete_one(doc! { "_id": token.to_hex(), "purpose": purpose.as_str() })
            .await
            .map_err(error)?;
        Ok((done.deleted_count > 0).then_some(record))
    }
}
