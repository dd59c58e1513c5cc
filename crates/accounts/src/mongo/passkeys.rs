//! Passkeys on MongoDB: one document per credential in `ringfence_passkeys`.
//!
//! `{ _id: id, user_id, credential_id, name, credential, created_at_ms, last_used_at_ms }`, with
//! a unique index on `credential_id` (a credential is registered once, to one account) and an
//! index on `(user_id, created_at_ms)` for a user's list, oldest first.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::Collection;

use super::{ensure_index, is_duplicate_key, store_error, MongoDatabase};
use crate::passkeys::{PasskeyStore, PasskeyStoreError, StoredPasskey};
use crate::UserStoreError;

/// The collection.
pub(super) const COLLECTION: &str = "ringfence_passkeys";

/// [`PasskeyStore`] on MongoDB.
#[derive(Debug, Clone)]
pub struct MongoPasskeyStore {
    passkeys: Collection<Document>,
}

impl MongoPasskeyStore {
    /// The store on `db`; call [`MongoPasskeyStore::migrate`] before use.
    pub fn new(db: &MongoDatabase) -> Self {
        MongoPasskeyStore {
            passkeys: db.database().collection(COLLECTION),
        }
    }

    /// Creates the indexes (idempotent; every node runs it at start).
    pub async fn migrate(&self) -> Result<(), PasskeyStoreError> {
        ensure_index(
            &self.passkeys,
            doc! { "credential_id": 1 },
            "passkeys_credential_id",
            true,
        )
        .await
        .map_err(from_user_store)?;
        ensure_index(
            &self.passkeys,
            doc! { "user_id": 1, "created_at_ms": 1 },
            "passkeys_user",
            false,
        )
        .await
        .map_err(from_user_store)
    }
}

fn from_user_store(e: UserStoreError) -> PasskeyStoreError {
    match e {
        UserStoreError::Corrupt(detail) => PasskeyStoreError::Corrupt(detail),
        other => PasskeyStoreError::Unavailable(other.to_string()),
    }
}

fn error(e: mongodb::error::Error) -> PasskeyStoreError {
    if is_duplicate_key(&e) {
        PasskeyStoreError::Duplicate
    } else {
        from_user_store(store_error(e))
    }
}

fn time(ms: i64) -> Result<DateTime<Utc>, PasskeyStoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| PasskeyStoreError::Corrupt(format!("passkey time {ms} out of range")))
}

fn passkey_from(d: &Document) -> Result<StoredPasskey, PasskeyStoreError> {
    let corrupt = |field: &str| PasskeyStoreError::Corrupt(format!("passkey document: {field}"));
    let text = |field: &str| {
        d.get_str(field)
            .map(str::to_owned)
            .map_err(|_| corrupt(field))
    };
    Ok(StoredPasskey {
        id: text("_id")?,
        user_id: text("user_id")?,
        name: text("name")?,
        credential_id: text("credential_id")?,
        credential: text("credential")?,
        created_at: time(
            d.get_i64("created_at_ms")
                .map_err(|_| corrupt("created_at_ms"))?,
        )?,
        last_used_at: match d.get("last_used_at_ms") {
            None | Some(Bson::Null) => None,
            Some(Bson::Int64(ms)) => Some(time(*ms)?),
            Some(_) => return Err(corrupt("last_used_at_ms")),
        },
    })
}

#[async_trait]
impl PasskeyStore for MongoPasskeyStore {
    async fn insert(&self, passkey: &StoredPasskey) -> Result<(), PasskeyStoreError> {
        self.passkeys
            .insert_one(doc! {
                "_id": &passkey.id,
                "user_id": &passkey.user_id,
                "credential_id": &passkey.credential_id,
                "name": &passkey.name,
                "credential": &passkey.credential,
                "created_at_ms": passkey.created_at.timestamp_millis(),
                "last_used_at_ms": passkey.last_used_at.map(|t| t.timestamp_millis()),
            })
            .await
            .map_err(error)?;
        Ok(())
    }

    async fn list(&self, user_id: &str) -> Result<Vec<StoredPasskey>, PasskeyStoreError> {
        let docs: Vec<Document> = self
            .passkeys
            .find(doc! { "user_id": user_id })
            .sort(doc! { "created_at_ms": 1, "_id": 1 })
            .await
            .map_err(error)?
            .try_collect()
            .await
            .map_err(error)?;
        docs.iter().map(passkey_from).collect()
    }

    async fn count(&self, user_id: &str) -> Result<u64, PasskeyStoreError> {
        self.passkeys
            .count_documents(doc! { "user_id": user_id })
            .await
            .map_err(error)
    }

    async fn by_credential_id(
        &self,
        credential_id: &str,
    ) -> Result<Option<StoredPasskey>, PasskeyStoreError> {
        self.passkeys
            .find_one(doc! { "credential_id": credential_id })
            .await
            .map_err(error)?
            .as_ref()
            .map(passkey_from)
            .transpose()
    }

    async fn record_use(
        &self,
        id: &str,
        credential: &str,
        used_at: DateTime<Utc>,
    ) -> Result<bool, PasskeyStoreError> {
        let done = self
            .passkeys
            .update_one(
                doc! { "_id": id },
                doc! { "$set": { "credential": credential, "last_used_at_ms": used_at.timestamp_millis() } },
            )
            .await
            .map_err(error)?;
        Ok(done.matched_count > 0)
    }

    async fn rename(&self, user_id: &str, id: &str, name: &str) -> Result<bool, PasskeyStoreError> {
        let done = self
            .passkeys
            .update_one(
                doc! { "_id": id, "user_id": user_id },
                doc! { "$set": { "name": name } },
            )
            .await
            .map_err(error)?;
        Ok(done.matched_count > 0)
    }

    async fn delete(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<Option<StoredPasskey>, PasskeyStoreError> {
        self.passkeys
            .find_one_and_delete(doc! { "_id": id, "user_id": user_id })
            .await
            .map_err(error)?
            .as_ref()
            .map(passkey_from)
            .transpose()
    }

    async fn delete_all(&self, user_id: &str) -> Result<u64, PasskeyStoreError> {
        let done = self
            .passkeys
            .delete_many(doc! { "user_id": user_id })
            .await
            .map_err(error)?;
        Ok(done.deleted_count)
    }
}
