//! The user store on MongoDB: one document per account in the collection `ringfence_users`.
//!
//! `{ _id: id, email, password_hash, is_admin, created_at_us, password_changed_at_us,
//! email_verified, disabled }`, with a unique index `users_email` on the normalized e-mail: the
//! index, not a read before the write, decides who gets an address. Every change is one
//! single-document update, atomic on its own.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::Collection;

use super::{ensure_index, instant, is_duplicate_key, micros, store_error, MongoDatabase};
use crate::{Email, User, UserRecord, UserStore, UserStoreError};

const COLLECTION: &str = "ringfence_users";

/// [`UserStore`] on MongoDB.
#[derive(Debug, Clone)]
pub struct MongoUserStore {
    users: Collection<Document>,
    db: MongoDatabase,
}

impl MongoUserStore {
    /// The store on `db`; call [`MongoUserStore::migrate`] before use.
    pub fn new(db: &MongoDatabase) -> Self {
        MongoUserStore {
            users: db.database().collection(COLLECTION),
            db: db.clone(),
        }
    }

    /// Creates the unique index on the e-mail (idempotent; every node runs it at start).
    pub async fn migrate(&self) -> Result<(), UserStoreError> {
        ensure_index(&self.users, doc! { "email": 1 }, "users_email", true).await
    }

    /// Sets fields of the account `id`; `false` when there is none.
    async fn update(&self, id: &str, set: Document) -> Result<bool, UserStoreError> {
        let done = self
            .users
            .update_one(doc! { "_id": id }, doc! { "$set": set })
            .await
            .map_err(write_error)?;
        Ok(done.matched_count > 0)
    }

    async fn find_users(
        &self,
        filter: Document,
        sort: Document,
        skip: u64,
        limit: u32,
    ) -> Result<Vec<User>, UserStoreError> {
        // A limit of 0 means "no limit" to MongoDB.
        if limit == 0 {
            return Ok(Vec::new());
        }
        let docs: Vec<Document> = self
            .users
            .find(filter)
            .sort(sort)
            .skip(skip)
            .limit(i64::from(limit))
            .await
            .map_err(store_error)?
            .try_collect()
            .await
            .map_err(store_error)?;
        docs.iter().map(user_from).collect()
    }
}

/// A write error: `EmailTaken` when the unique index refused it (the e-mail is the only unique
/// field besides the random UUID, whose collision is not a case worth distinguishing).
fn write_error(e: mongodb::error::Error) -> UserStoreError {
    if is_duplicate_key(&e) {
        UserStoreError::EmailTaken
    } else {
        store_error(e)
    }
}

fn user_from(d: &Document) -> Result<User, UserStoreError> {
    let corrupt = |field: &str| UserStoreError::Corrupt(format!("user document: {field}"));
    let text = |field: &str| {
        d.get_str(field)
            .map(str::to_owned)
            .map_err(|_| corrupt(field))
    };
    let time = |field: &str| {
        d.get_i64(field)
            .map_err(|_| corrupt(field))
            .and_then(instant)
    };
    // Flags added after the first release read as `false` when absent.
    let flag = |field: &str| match d.get(field) {
        None => Ok(false),
        Some(v) => v.as_bool().ok_or_else(|| corrupt(field)),
    };
    Ok(User {
        id: text("_id")?,
        email: text("email")?,
        is_admin: flag("is_admin")?,
        created_at: time("created_at_us")?,
        password_changed_at: time("password_changed_at_us")?,
        email_verified: flag("email_verified")?,
        disabled: flag("disabled")?,
    })
}

fn record_from(d: &Document) -> Result<UserRecord, UserStoreError> {
    Ok(UserRecord {
        user: user_from(d)?,
        password_hash: d
            .get_str("password_hash")
            .map_err(|_| UserStoreError::Corrupt("user document: password_hash".to_owned()))?
            .to_owned(),
    })
}

#[async_trait]
impl UserStore for MongoUserStore {
    async fn insert(&self, user: &User, password_hash: &str) -> Result<(), UserStoreError> {
        let document = doc! {
            "_id": &user.id,
            "email": &user.email,
            "password_hash": password_hash,
            "is_admin": user.is_admin,
            "created_at_us": micros(user.created_at),
            "password_changed_at_us": micros(user.password_changed_at),
            "email_verified": user.email_verified,
            "disabled": user.disabled,
        };
        self.users.insert_one(document).await.map_err(write_error)?;
        Ok(())
    }

    async fn by_email(&self, email: &Email) -> Result<Option<UserRecord>, UserStoreError> {
        let found = self
            .users
            .find_one(doc! { "email": email.as_str() })
            .await
            .map_err(store_error)?;
        found.as_ref().map(record_from).transpose()
    }

    async fn by_id(&self, id: &str) -> Result<Option<UserRecord>, UserStoreError> {
        let found = self
            .users
            .find_one(doc! { "_id": id })
            .await
            .map_err(store_error)?;
        found.as_ref().map(record_from).transpose()
    }

    async fn set_password_hash(
        &self,
        id: &str,
        hash: &str,
        changed_at: DateTime<Utc>,
    ) -> Result<bool, UserStoreError> {
        self.update(
            id,
            doc! { "password_hash": hash, "password_changed_at_us": micros(changed_at) },
        )
        .await
    }

    async fn set_admin(&self, id: &str, admin: bool) -> Result<bool, UserStoreError> {
        self.update(id, doc! { "is_admin": admin }).await
    }

    async fn set_email(&self, id: &str, email: &Email) -> Result<bool, UserStoreError> {
        self.update(id, doc! { "email": email.as_str() }).await
    }

    async fn list(&self, limit: u32, offset: u32) -> Result<Vec<User>, UserStoreError> {
        // `_id` breaks ties only in theory (e-mails are unique) but keeps paging deterministic.
        self.find_users(
            doc! {},
            doc! { "email": 1, "_id": 1 },
            u64::from(offset),
            limit,
        )
        .await
    }

    async fn set_email_verified(&self, id: &str, verified: bool) -> Result<bool, UserStoreError> {
        self.update(id, doc! { "email_verified": verified }).await
    }

    async fn set_disabled(&self, id: &str, disabled: bool) -> Result<bool, UserStoreError> {
        self.update(id, doc! { "disabled": disabled }).await
    }

    async fn delete(&self, id: &str) -> Result<bool, UserStoreError> {
        // What the SQL stores' foreign keys cascade: the account's passkeys and second
        // factors go too. First, so that a failure half-way leaves an account without its
        // credentials (deleting again finishes), never credentials without an account.
        let db = self.db.database();
        db.collection::<Document>(super::passkeys::COLLECTION)
            .delete_many(doc! { "user_id": id })
            .await
            .map_err(store_error)?;
        super::MongoFactorStore::forget(&self.db, id).await?;
        let done = self
            .users
            .delete_one(doc! { "_id": id })
            .await
            .map_err(store_error)?;
        Ok(done.deleted_count > 0)
    }

    async fn change_email(
        &self,
        id: &str,
        from: &Email,
        to: &Email,
        verified: bool,
    ) -> Result<bool, UserStoreError> {
        // Conditional on the old address, so a change confirmed twice (or racing another
        // change) applies once; the unique index refuses an address another account holds.
        let done = self
            .users
            .update_one(
                doc! { "_id": id, "email": from.as_str() },
                doc! { "$set": { "email": to.as_str(), "email_verified": verified } },
            )
            .await
            .map_err(write_error)?;
        Ok(done.matched_count > 0)
    }

    async fn list_after(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<User>, UserStoreError> {
        // Strings compare byte-wise (UTF-8 order) in MongoDB when no collation is set.
        let filter = match after {
            Some(after) => doc! { "_id": { "$gt": after } },
            None => doc! {},
        };
        self.find_users(filter, doc! { "_id": 1 }, 0, limit).await
    }

    async fn count(&self) -> Result<u64, UserStoreError> {
        self.users
            .count_documents(doc! {})
            .await
            .map_err(store_error)
    }

    async fn ping(&self) -> Result<(), UserStoreError> {
        self.db.ping().await
    }
}
