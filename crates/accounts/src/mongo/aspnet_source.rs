//! Reading the users `AspNetCore.Identity.MongoDB` keeps, for [`crate::import`].
//!
//! The provider writes one document per user (collection `users` by default):
//! `{ _id: ObjectId, UserName, NormalizedUserName, Email: { Value, NormalizedValue,
//! ConfirmationRecord: { Instant } | null }, PasswordHash, SecurityStamp, IsTwoFactorEnabled,
//! IsLockoutEnabled, AccessFailedCount, LockoutEndDate: { Instant } | null,
//! CreatedOn: { Instant }, DeletedOn: { Instant } | null, Claims, Logins, … }`.
//! The flat shape other providers and EF Core use (`Email` a string, `EmailConfirmed`,
//! `TwoFactorEnabled`, `LockoutEnd`) is read too.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};

use super::{error_text, MongoDatabase};
use crate::import::{SourceRow, SourceUser};
use crate::UserStoreError;

/// The collection the provider writes by default.
pub const DEFAULT_COLLECTION: &str = "users";

/// Every document of `collection`, in `_id` order, each read into a [`SourceRow`] (one that
/// cannot be read is a [`SourceRow::Malformed`]). The store not answering is an error.
pub async fn read_users(
    db: &MongoDatabase,
    collection: &str,
) -> Result<Vec<SourceRow>, UserStoreError> {
    let unavailable = |e: mongodb::error::Error| UserStoreError::Unavailable(error_text(&e));
    let documents: Vec<Document> = db
        .database()
        .collection::<Document>(collection)
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .await
        .map_err(unavailable)?
        .try_collect()
        .await
        .map_err(unavailable)?;
    Ok(documents
        .iter()
        .enumerate()
        .map(|(i, d)| row(i, d))
        .collect())
}

/// One provider document as a [`SourceRow`].
pub fn row(position: usize, d: &Document) -> SourceRow {
    let id = d.get("_id").and_then(id_text);
    match user(d, id.clone()) {
        Ok(user) => SourceRow::User(user),
        Err(why) => SourceRow::Malformed {
            which: match id {
                Some(id) => format!("document {id}"),
                None => format!("document {} of the collection", position + 1),
            },
            why: why.to_owned(),
        },
    }
}

fn id_text(v: &Bson) -> Option<String> {
    match v {
        Bson::ObjectId(id) => Some(id.to_hex()),
        Bson::String(s) => Some(s.clone()),
        Bson::Binary(b) if b.bytes.len() == 16 => {
            uuid::Uuid::from_slice(&b.bytes).ok().map(|u| u.to_string())
        }
        _ => None,
    }
}

fn user(d: &Document, id: Option<String>) -> Result<SourceUser, &'static str> {
    let id = id.ok_or("no usable _id")?;
    let (email, email_confirmed) = match d.get("Email") {
        None | Some(Bson::Null) => (None, flag(d, "EmailConfirmed")?),
        Some(Bson::String(s)) => (Some(s.clone()), flag(d, "EmailConfirmed")?),
        Some(Bson::Document(e)) => {
            let value = match e.get("Value") {
                None | Some(Bson::Null) => None,
                Some(Bson::String(s)) => Some(s.clone()),
                Some(_) => return Err("Email.Value is not a string"),
            };
            let confirmed = match e.get("ConfirmationRecord") {
                None | Some(Bson::Null) => false,
                Some(Bson::Document(_)) => true,
                Some(_) => return Err("Email.ConfirmationRecord is not a document"),
            };
            (value, confirmed)
        }
        Some(_) => return Err("Email is neither a string nor a document"),
    };
    let password_hash = match d.get("PasswordHash") {
        None | Some(Bson::Null) => None,
        Some(Bson::String(s)) => Some(s.clone()),
        Some(_) => return Err("PasswordHash is not a string"),
    };
    Ok(SourceUser {
        id,
        email,
        email_confirmed,
        password_hash,
        two_factor_enabled: flag(d, "IsTwoFactorEnabled")? || flag(d, "TwoFactorEnabled")?,
        lockout_end: match occurrence(d, "LockoutEndDate")? {
            Some(t) => Some(t),
            None => occurrence(d, "LockoutEnd")?,
        },
        deleted: occurrence(d, "DeletedOn")?.is_some() || has_value(d, "DeletedOn"),
        created_at: occurrence(d, "CreatedOn")?,
    })
}

fn has_value(d: &Document, key: &str) -> bool {
    !matches!(d.get(key), None | Some(Bson::Null))
}

fn flag(d: &Document, key: &str) -> Result<bool, &'static str> {
    match d.get(key) {
        None | Some(Bson::Null) => Ok(false),
        Some(Bson::Boolean(b)) => Ok(*b),
        Some(_) => Err("a yes/no field (EmailConfirmed, IsTwoFactorEnabled) is not a boolean"),
    }
}

/// The provider's `Occurrence` (`{ Instant: date }`), or a plain date; `null`/absent is `None`.
fn occurrence(d: &Document, key: &str) -> Result<Option<DateTime<Utc>>, &'static str> {
    let value = match d.get(key) {
        None | Some(Bson::Null) => return Ok(None),
        Some(Bson::Document(o)) => match o.get("Instant") {
            None | Some(Bson::Null) => return Ok(None),
            Some(v) => v,
        },
        Some(v) => v,
    };
    match value {
        // BSON dates reach further than chrono's; beyond, the far past or future is meant
        // (a lockout "forever").
        Bson::DateTime(t) => Ok(Some(
            DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(
                if t.timestamp_millis() > 0 {
                    DateTime::<Utc>::MAX_UTC
                } else {
                    DateTime::<Utc>::MIN_UTC
                },
            ),
        )),
        Bson::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| "a date field (LockoutEndDate, CreatedOn, DeletedOn) is not a date"),
        _ => Err("a date field (LockoutEndDate, CreatedOn, DeletedOn) is not a date"),
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::oid::ObjectId;

    use super::*;

    #[test]
    fn reads_the_providers_document_shape() {
        let oid = ObjectId::new();
        let created = mongodb::bson::DateTime::from_millis(1_700_000_000_000);
        let d = doc! {
            "_id": oid, "UserName": "ann", "NormalizedUserName": "ANN",
            "Email": { "Value": "Ann@Example.com", "NormalizedValue": "ANN@EXAMPLE.COM",
                       "ConfirmationRecord": { "Instant": created } },
            "PasswordHash": "AQAA", "SecurityStamp": "S", "IsTwoFactorEnabled": true,
            "LockoutEndDate": Bson::Null, "CreatedOn": { "Instant": created }, "DeletedOn": Bson::Null,
            "Claims": [], "Logins": [],
        };
        let SourceRow::User(u) = row(0, &d) else {
            panic!()
        };
        assert_eq!(u.id, oid.to_hex());
        assert_eq!(u.email.as_deref(), Some("Ann@Example.com"));
        assert!(u.email_confirmed && u.two_factor_enabled && !u.deleted);
        assert_eq!(u.created_at.unwrap().timestamp_millis(), 1_700_000_000_000);
        assert_eq!(u.lockout_end, None);

        let unconfirmed = doc! { "_id": "x", "Email": { "Value": "b@example.com", "ConfirmationRecord": Bson::Null },
        "DeletedOn": { "Instant": created } };
        let SourceRow::User(u) = row(1, &unconfirmed) else {
            panic!()
        };
        assert!(!u.email_confirmed && u.deleted && u.password_hash.is_none());

        let broken = doc! { "_id": "y", "Email": { "Value": 5 } };
        assert_eq!(
            row(2, &broken),
            SourceRow::Malformed {
                which: "document y".into(),
                why: "Email.Value is not a string".into()
            }
        );
        let no_id = doc! { "_id": 3.5, "Email": "c@example.com" };
        assert!(
            matches!(row(3, &no_id), SourceRow::Malformed { which, .. } if which == "document 4 of the collection")
        );
    }
}
