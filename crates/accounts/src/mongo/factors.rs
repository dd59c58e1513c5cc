//! Second factors on MongoDB.
//!
//! - `ringfence_user_totp`: a user's TOTP state, `{ _id: user id, secret, pending_secret, last_step,
//!   updated_at_ms }`.
//! - `ringfence_totp_steps`: one document per time step taken, `{ _id: "USER:STEP", user_id, step }`.
//! - `ringfence_recovery_codes`: one document per unused code, `{ _id: "USER:HASH", user_id }`.
//!
//! What must happen once (a step taken, a code used) is decided by something every server
//! that speaks the protocol does atomically, FerretDB included: an insert refused by the unique
//! `_id`, and a delete by `_id` that reports whether it deleted. A filtered update is not
//! enough there: FerretDB 1.x evaluates the filter and writes the document in two steps, so
//! two concurrent `last_step < step` updates can both succeed (MongoDB itself would not let
//! them). So a take inserts its step's document first and then refuses itself when a newer
//! step's document exists (see `take_totp_step`). Old step documents are removed as newer
//! steps are taken, never the newest three.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::UpdateOptions;
use mongodb::Collection;

use super::{ensure_index, is_duplicate_key, store_error, MongoDatabase};
use crate::factors::{FactorStore, TotpRecord};
use crate::UserStoreError;

/// The collection of TOTP state, keyed by user id.
const TOTP: &str = "ringfence_user_totp";
/// The collections holding documents with a `user_id` field.
pub(super) const BY_USER: [&str; 2] = ["ringfence_totp_steps", "ringfence_recovery_codes"];

/// [`FactorStore`] on MongoDB.
#[derive(Debug, Clone)]
pub struct MongoFactorStore {
    totp: Collection<Document>,
    steps: Collection<Document>,
    codes: Collection<Document>,
}

impl MongoFactorStore {
    /// The store on `db`; call [`MongoFactorStore::migrate`] before use.
    pub fn new(db: &MongoDatabase) -> Self {
        MongoFactorStore {
            totp: db.database().collection(TOTP),
            steps: db.database().collection(BY_USER[0]),
            codes: db.database().collection(BY_USER[1]),
        }
    }

    /// Creates the indexes on `user_id` (idempotent; every node runs it at start).
    pub async fn migrate(&self) -> Result<(), UserStoreError> {
        ensure_index(
            &self.steps,
            doc! { "user_id": 1, "step": 1 },
            "totp_steps_user",
            false,
        )
        .await?;
        ensure_index(
            &self.codes,
            doc! { "user_id": 1 },
            "recovery_codes_user",
            false,
        )
        .await
    }

    /// Removes everything of the user (the account is being deleted).
    pub(super) async fn forget(db: &MongoDatabase, user_id: &str) -> Result<(), UserStoreError> {
        let db = db.database();
        for collection in BY_USER {
            db.collection::<Document>(collection)
                .delete_many(doc! { "user_id": user_id })
                .await
                .map_err(store_error)?;
        }
        db.collection::<Document>(TOTP)
            .delete_one(doc! { "_id": user_id })
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

/// `update` on the document `_id`, creating it when missing. Two nodes creating one user's
/// document at once: the loser's insert hits the `_id` and its write is applied to the
/// winner's document instead.
async fn upsert(
    collection: &Collection<Document>,
    id: &str,
    update: Document,
) -> Result<(), UserStoreError> {
    let upserting = UpdateOptions::builder().upsert(true).build();
    match collection
        .update_one(doc! { "_id": id }, update.clone())
        .with_options(upserting)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_duplicate_key(&e) => collection
            .update_one(doc! { "_id": id }, update)
            .await
            .map(|_| ())
            .map_err(store_error),
        Err(e) => Err(store_error(e)),
    }
}

fn optional_text(d: &Document, field: &str) -> Result<Option<String>, UserStoreError> {
    match d.get(field) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(UserStoreError::Corrupt(format!("user_totp: {field}"))),
    }
}

fn code_id(user_id: &str, hash: &str) -> String {
    format!("{user_id}:{hash}")
}

#[async_trait]
impl FactorStore for MongoFactorStore {
    async fn totp(&self, user_id: &str) -> Result<Option<TotpRecord>, UserStoreError> {
        let Some(d) = self
            .totp
            .find_one(doc! { "_id": user_id })
            .await
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        Ok(Some(TotpRecord {
            secret: optional_text(&d, "secret")?,
            pending_secret: optional_text(&d, "pending_secret")?,
            last_step: d
                .get_i64("last_step")
                .map_err(|_| UserStoreError::Corrupt("user_totp: last_step".to_owned()))?,
        }))
    }

    async fn put_pending_totp(
        &self,
        user_id: &str,
        sealed: &str,
        now: DateTime<Utc>,
    ) -> Result<(), UserStoreError> {
        upsert(
            &self.totp,
            user_id,
            doc! {
                "$set": { "pending_secret": sealed, "updated_at_ms": now.timestamp_millis() },
                "$setOnInsert": { "secret": Bson::Null, "last_step": -1i64 },
            },
        )
        .await
    }

    async fn confirm_totp(
        &self,
        user_id: &str,
        sealed: &str,
        step: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, UserStoreError> {
        let done = self
            .totp
            .update_one(
                doc! { "_id": user_id, "pending_secret": sealed },
                doc! { "$set": {
                    "secret": sealed, "pending_secret": Bson::Null, "last_step": step,
                    "updated_at_ms": now.timestamp_millis(),
                } },
            )
            .await
            .map_err(store_error)?;
        Ok(done.matched_count > 0)
    }

    async fn take_totp_step(&self, user_id: &str, step: i64) -> Result<bool, UserStoreError> {
        match self.totp(user_id).await? {
            Some(record) if record.secret.is_some() && record.last_step < step => {}
            _ => return Ok(false),
        }
        // Of concurrent takes of one step, exactly one inserts its document.
        let taken = self
            .steps
            .insert_one(
                doc! { "_id": format!("{user_id}:{step}"), "user_id": user_id, "step": step },
            )
            .await;
        match taken {
            Ok(_) => {}
            Err(e) if is_duplicate_key(&e) => return Ok(false),
            Err(e) => return Err(store_error(e)),
        }
        // `last_step` was read before the insert: a newer step taken meanwhile (its document
        // inserted, its `last_step` not yet written) would not have stopped this older one.
        // Every take inserts before it looks, so of an older and a newer step racing, the
        // older sees the newer's document unless it looked first (then it came first: taking
        // an older step before a newer one is allowed, as on the SQL stores).
        let newer = self
            .steps
            .find_one(doc! { "user_id": user_id, "step": { "$gt": step } })
            .await
            .map_err(store_error)?;
        if newer.is_some() {
            return Ok(false);
        }
        self.totp
            .update_one(
                doc! { "_id": user_id, "last_step": { "$lt": step } },
                doc! { "$set": { "last_step": step } },
            )
            .await
            .map_err(store_error)?;
        // Steps two behind are outside every window a code is accepted in: `last_step`
        // refuses them from now on.
        self.steps
            .delete_many(doc! { "user_id": user_id, "step": { "$lt": step - 2 } })
            .await
            .map_err(store_error)?;
        Ok(true)
    }

    async fn remove_totp(&self, user_id: &str) -> Result<bool, UserStoreError> {
        let was_on = self
            .totp(user_id)
            .await?
            .is_some_and(|r| r.secret.is_some());
        self.totp
            .delete_one(doc! { "_id": user_id })
            .await
            .map_err(store_error)?;
        self.steps
            .delete_many(doc! { "user_id": user_id })
            .await
            .map_err(store_error)?;
        Ok(was_on)
    }

    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        hashes: &[String],
    ) -> Result<(), UserStoreError> {
        // Two writes, not one transaction (FerretDB has none, nor has a standalone MongoDB):
        // the old codes go first, so a failure in between leaves the user with no codes (and
        // an error: they ask for a new set again), never with old and new ones.
        self.codes
            .delete_many(doc! { "user_id": user_id })
            .await
            .map_err(store_error)?;
        if hashes.is_empty() {
            return Ok(());
        }
        let documents: Vec<Document> = hashes
            .iter()
            .map(|hash| doc! { "_id": code_id(user_id, hash), "user_id": user_id })
            .collect();
        self.codes
            .insert_many(documents)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn take_recovery_code(&self, user_id: &str, hash: &str) -> Result<bool, UserStoreError> {
        // Of two concurrent uses, one deletes the document and the other deletes nothing.
        let done = self
            .codes
            .delete_one(doc! { "_id": code_id(user_id, hash) })
            .await
            .map_err(store_error)?;
        Ok(done.deleted_count > 0)
    }

    async fn recovery_codes_left(&self, user_id: &str) -> Result<u32, UserStoreError> {
        let n = self
            .codes
            .count_documents(doc! { "user_id": user_id })
            .await
            .map_err(store_error)?;
        u32::try_from(n).map_err(|_| UserStoreError::Corrupt(format!("{n} recovery codes")))
    }
}
