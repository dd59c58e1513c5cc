//! Account stores on MongoDB (`--database mongodb://…`, the official driver), for teams whose
//! users already live there (issue 19). Behind the cargo feature `mongodb`.
//!
//! What the stores rely on, so any server that speaks the protocol and does these works (the
//! tests run FerretDB on SQLite; docs/mongodb.md): unique indexes (the normalized e-mail),
//! single-document atomic updates with a filter (`updateOne` on `{_id, email: old}` is the
//! compare-and-set of an address change), `findOneAndDelete` (single-use tokens taken once),
//! `findOneAndUpdate` with upsert (counters), binary string order for sorting and ranges (no
//! collation is ever set), and `buildInfo` to refuse servers older than [`MIN_SERVER_VERSION`].
//!
//! Every collection's name starts with `ringfence_`, so the stores may share a database with
//! an application's own collections (the ASP.NET Core Identity provider's `users` among them).
//!
//! Times are stored as whole microseconds since the Unix epoch (BSON `Int64`), not BSON dates:
//! those keep milliseconds, and the stores must give back the instants they were given.

pub mod aspnet_source;
mod attempts;
mod factors;
mod passkeys;
mod tokens;
mod users;

use std::time::Duration;

use chrono::{DateTime, Utc};
use mongodb::bson::{doc, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, IndexModel};

pub use attempts::MongoAttemptStore;
pub use factors::MongoFactorStore;
pub use passkeys::MongoPasskeyStore;
pub use tokens::MongoMailTokenStore;
pub use users::MongoUserStore;

use crate::UserStoreError;

/// How long the first contact, and then each operation's wait for a usable server, may take.
pub const MONGO_TIMEOUT: Duration = Duration::from_secs(5);

/// The oldest server release accepted, as (major, minor): 4.2, the oldest the official Rust
/// driver 3.x still talks to whose `findOneAndDelete`/`findOneAndUpdate`, unique indexes and
/// update operators behave as the stores expect (4.0 and older are past their end of life).
pub const MIN_SERVER_VERSION: (u32, u32) = (4, 2);

/// The database used when the URL names none.
const DEFAULT_DATABASE: &str = "ringfence";

/// MongoDB's code for a write refused by a unique index.
const DUPLICATE_KEY: i32 = 11000;

/// A connected MongoDB database: the stores' collections live in it.
#[derive(Debug, Clone)]
pub struct MongoDatabase {
    client: Client,
    database: mongodb::Database,
}

impl MongoDatabase {
    /// Connects to `url` (`mongodb://…`; the database is the URL's path, `ringfence` when it has
    /// none), waiting at most [`MONGO_TIMEOUT`] for the server, and checks its version.
    ///
    /// Error messages never repeat the URL's password.
    pub async fn connect(url: &str) -> Result<MongoDatabase, UserStoreError> {
        let mut options = ClientOptions::parse(url).await.map_err(|e| {
            UserStoreError::InvalidUrl(format!("MongoDB URL: {}", scrub(&e.to_string(), url)))
        })?;
        options.server_selection_timeout = Some(MONGO_TIMEOUT);
        options.connect_timeout = Some(MONGO_TIMEOUT);
        options.app_name = Some("ringfence".to_owned());
        let name = options
            .default_database
            .clone()
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        let client = Client::with_options(options).map_err(|e| {
            UserStoreError::InvalidUrl(format!("MongoDB URL: {}", scrub(&e.to_string(), url)))
        })?;
        let database = client.database(&name);
        let this = MongoDatabase { client, database };
        // The driver connects lazily: ask now, so an unreachable or old server stops the start.
        let info = this
            .database
            .run_command(doc! { "buildInfo": 1 })
            .await
            .map_err(|e| match e.kind.as_ref() {
                ErrorKind::ServerSelection { .. } => UserStoreError::Unavailable(format!(
                    "MongoDB did not answer within {} s: {}",
                    MONGO_TIMEOUT.as_secs(),
                    scrub(&e.to_string(), url)
                )),
                ErrorKind::IncompatibleServer { message, .. } => UserStoreError::Unavailable(format!(
                    "the MongoDB server is too old for this driver (ringfence needs {}.{} or later): {}",
                    MIN_SERVER_VERSION.0, MIN_SERVER_VERSION.1, scrub(message, url)
                )),
                _ => UserStoreError::Unavailable(scrub(&error_text(&e), url)),
            })?;
        check_version(&info)?;
        Ok(this)
    }

    /// The database the stores use.
    pub fn database(&self) -> &mongodb::Database {
        &self.database
    }

    /// Checks that the server answers (readiness).
    pub async fn ping(&self) -> Result<(), UserStoreError> {
        self.database
            .run_command(doc! { "ping": 1 })
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    /// Closes the client's connections (graceful shutdown).
    pub async fn close(&self) {
        self.client.clone().shutdown().await;
    }
}

/// Refuses servers older than [`MIN_SERVER_VERSION`], from `buildInfo`'s `version`.
fn check_version(info: &Document) -> Result<(), UserStoreError> {
    let version = info.get_str("version").unwrap_or("");
    let mut parts = version.split('.').map(|p| p.parse::<u32>());
    let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) else {
        return Err(UserStoreError::Unavailable(format!(
            "the MongoDB server reports no readable version ({version:?})"
        )));
    };
    if (major, minor) < MIN_SERVER_VERSION {
        return Err(UserStoreError::Unavailable(format!(
            "MongoDB {version} is too old: ringfence needs {}.{} or later",
            MIN_SERVER_VERSION.0, MIN_SERVER_VERSION.1
        )));
    }
    Ok(())
}

/// Replaces the URL's user-info (which may hold a password) wherever a driver message repeats it.
fn scrub(message: &str, url: &str) -> String {
    let userinfo = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|authority| authority.rsplit_once('@'))
        .map(|(userinfo, _)| userinfo)
        .filter(|u| !u.is_empty());
    match userinfo {
        Some(userinfo) => {
            let mut out = message.replace(userinfo, "…");
            if let Some((_, password)) = userinfo.split_once(':') {
                if !password.is_empty() {
                    out = out.replace(password, "…");
                }
            }
            out
        }
        None => message.to_owned(),
    }
}

/// The driver's description of an error.
fn error_text(e: &mongodb::error::Error) -> String {
    format!("MongoDB: {e}")
}

/// Classifies a driver error: unreadable documents are the store's fault (`Corrupt`), anything
/// else (no server, I/O, timeouts, server errors) means the store is not usable right now.
pub(crate) fn store_error(e: mongodb::error::Error) -> UserStoreError {
    match e.kind.as_ref() {
        ErrorKind::BsonDeserialization(_) => UserStoreError::Corrupt(error_text(&e)),
        _ => UserStoreError::Unavailable(error_text(&e)),
    }
}

/// Whether a write was refused by a unique index.
pub(crate) fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::Command(c) => {
            c.code == DUPLICATE_KEY
                // FerretDB 1.x on SQLite refuses an *update* that breaks a unique index (inserts
                // get 11000) as InternalError with SQLite's own message: the same refusal, and
                // the update is not applied.
                || (c.code == 1 && c.message.contains("UNIQUE constraint failed"))
        }
        ErrorKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .is_some_and(|errors| errors.iter().any(|w| w.code == DUPLICATE_KEY)),
        _ => false,
    }
}

/// Creates an index unless it exists (creating an existing one with the same options is a
/// no-op, so every node does this at start).
pub(crate) async fn ensure_index(
    collection: &mongodb::Collection<Document>,
    keys: Document,
    name: &str,
    unique: bool,
) -> Result<(), UserStoreError> {
    let options = IndexOptions::builder()
        .name(name.to_owned())
        .unique(unique)
        .build();
    collection
        .create_index(IndexModel::builder().keys(keys).options(options).build())
        .await
        .map(|_| ())
        .map_err(|e| UserStoreError::Migration(format!("creating the index {name}: {e}")))
}

/// An instant as stored: whole microseconds since the Unix epoch.
pub(crate) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// A stored instant back; `Corrupt` when out of chrono's range.
pub(crate) fn instant(us: i64) -> Result<DateTime<Utc>, UserStoreError> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| UserStoreError::Corrupt(format!("timestamp {us} out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_the_password_and_user_info() {
        let url = "mongodb://admin:hunter2@db.example:27017/app";
        let msg = "failed for admin:hunter2@db.example and hunter2";
        let out = scrub(msg, url);
        assert!(!out.contains("hunter2"), "{out}");
        assert_eq!(scrub("plain", "mongodb://h/db"), "plain");
    }

    #[test]
    fn versions_below_the_minimum_are_refused() {
        for (v, ok) in [
            ("7.0.77", true),
            ("4.2.0", true),
            ("4.4.29", true),
            ("4.0.28", false),
            ("3.6.23", false),
            ("", false),
            ("x.y", false),
        ] {
            let result = check_version(&doc! { "version": v });
            assert_eq!(result.is_ok(), ok, "{v}: {result:?}");
        }
        let err = check_version(&doc! { "version": "4.0.3" }).unwrap_err();
        assert!(err.to_string().contains("too old"), "{err}");
    }
}
