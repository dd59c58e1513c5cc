//! Bringing users over from ASP.NET Core Identity, their passwords kept (issue 19).
//!
//! A source (the documents `AspNetCore.Identity.MongoDB` writes, see `mongo::aspnet_source`, or a JSON
//! export of EF Core's `AspNetUsers` table, see [`json`]) yields [`SourceRow`]s; an [`Importer`]
//! writes each into any [`UserStore`] with one insert, so a row is imported whole or not at all,
//! and counts what happened in an [`ImportReport`].
//!
//! Idempotent: the account keeps the source's user id (so the `NameIdentifier` of a .NET cookie
//! still names the same account, see docs/aspnet.md), and an id already in the store is skipped
//! as imported before. A second source row whose address normalizes to one already taken is a
//! duplicate and skipped; the first one wins.

pub mod json;

use chrono::{DateTime, Duration, Utc};

use crate::aspnet_identity;
use crate::{Email, User, UserStore, UserStoreError};

/// A lockout ending further ahead than this is an administrator's lock (ASP.NET has no
/// "disabled" flag: apps set `LockoutEnd` to the far future, often `DateTimeOffset.MaxValue`),
/// imported as a disabled account. Shorter ones come from failed sign-ins (ASP.NET's default is
/// 5 minutes) and are dropped: ringfence throttles failures itself.
pub const ADMIN_LOCK_AFTER: Duration = Duration::days(30);

/// The longest source user id kept; longer ones are refused (ringfence's own are 36 characters).
const MAX_ID_LEN: usize = 128;

/// One user as an ASP.NET Core Identity store holds it, read from any source.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceUser {
    /// The source's user id (a GUID for EF Core, an ObjectId's hex for MongoDB).
    pub id: String,
    /// The address as stored (`Email`, `Email.Value`), if any.
    pub email: Option<String>,
    /// The address was confirmed (`EmailConfirmed`, `Email.ConfirmationRecord`).
    pub email_confirmed: bool,
    /// `PasswordHash`: base64 of ASP.NET's `PasswordHasher` format, if the user has a password.
    pub password_hash: Option<String>,
    /// `TwoFactorEnabled` / `IsTwoFactorEnabled`.
    pub two_factor_enabled: bool,
    /// `LockoutEnd` / `LockoutEndDate`.
    pub lockout_end: Option<DateTime<Utc>>,
    /// The MongoDB provider's soft delete (`DeletedOn` set).
    pub deleted: bool,
    /// When the account was made, if the source says (`CreatedOn`).
    pub created_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SourceUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hash is offline-crackable: never in debug output or logs.
        f.debug_struct("SourceUser")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("email_confirmed", &self.email_confirmed)
            .field("password_hash", &self.password_hash.as_ref().map(|_| ".."))
            .field("two_factor_enabled", &self.two_factor_enabled)
            .field("lockout_end", &self.lockout_end)
            .field("deleted", &self.deleted)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// What a source yields for one document or element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceRow {
    /// A readable user.
    User(SourceUser),
    /// A document that could not be read: `which` names it (its id or position), `why` says
    /// what is wrong. Reported and skipped; the rest goes on.
    Malformed {
        /// The document's id, or its position in the source.
        which: String,
        /// What is wrong with it.
        why: String,
    },
}

/// What an import did, row by row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// New accounts.
    pub imported: u64,
    /// Ids already in the store (an earlier run): left as they are.
    pub already_imported: u64,
    /// Deleted in the source (`DeletedOn`).
    pub skipped_deleted: u64,
    /// No e-mail address: ringfence accounts are keyed by address.
    pub skipped_no_email: u64,
    /// The address, once normalized, belongs to another account already.
    pub skipped_duplicate: u64,
    /// Rows not imported because something in them is unusable: (which, why).
    pub failed: Vec<(String, String)>,
    /// Imported accounts that had two-factor sign-in on in ASP.NET: their authenticator keys
    /// are not carried over, so they sign in with the password until they set up TOTP again.
    pub two_factor_not_carried: u64,
}

impl ImportReport {
    /// Rows skipped for any reason (already imported, deleted, no e-mail, duplicate).
    pub fn skipped(&self) -> u64 {
        self.already_imported
            + self.skipped_deleted
            + self.skipped_no_email
            + self.skipped_duplicate
    }
}

/// Writes [`SourceRow`]s into a user store, one insert per row.
pub struct Importer<'a> {
    store: &'a dyn UserStore,
    now: DateTime<Utc>,
    report: ImportReport,
}

impl<'a> Importer<'a> {
    /// An importer into `store`; `now` dates the accounts whose source gives no creation time
    /// and decides which lockouts are still on.
    pub fn new(store: &'a dyn UserStore, now: DateTime<Utc>) -> Self {
        Importer {
            store,
            now,
            report: ImportReport::default(),
        }
    }

    /// Imports one row. A row that cannot be imported is counted (skipped or failed) and the
    /// import goes on; only a store that stops answering is an error (nothing of this row was
    /// written; running the import again carries on where it stopped).
    pub async fn add(&mut self, row: SourceRow) -> Result<(), UserStoreError> {
        let source = match row {
            SourceRow::User(user) => user,
            SourceRow::Malformed { which, why } => {
                self.report.failed.push((which, why));
                return Ok(());
            }
        };
        if source.deleted {
            self.report.skipped_deleted += 1;
            return Ok(());
        }
        let Some(raw_email) = source.email.as_deref().filter(|e| !e.trim().is_empty()) else {
            self.report.skipped_no_email += 1;
            return Ok(());
        };
        let user = match self.account(&source, raw_email) {
            Ok(user) => user,
            Err(why) => {
                self.report.failed.push((source.id, why));
                return Ok(());
            }
        };
        let hash = match source
            .password_hash
            .as_deref()
            .filter(|h| !h.trim().is_empty())
        {
            None => {
                self.report.failed.push((
                    source.id,
                    "no password hash (an account that signs in only through an external provider)"
                        .to_owned(),
                ));
                return Ok(());
            }
            Some(hash) => match aspnet_identity::import_hash(hash) {
                Ok(kept) => kept,
                Err(e) => {
                    self.report
                        .failed
                        .push((source.id, format!("unusable password hash: {e}")));
                    return Ok(());
                }
            },
        };
        if self.store.by_id(&user.id).await?.is_some() {
            self.report.already_imported += 1;
            return Ok(());
        }
        match self.store.insert(&user, &hash).await {
            Ok(()) => {
                self.report.imported += 1;
                if source.two_factor_enabled {
                    self.report.two_factor_not_carried += 1;
                }
                Ok(())
            }
            Err(UserStoreError::EmailTaken) => {
                self.report.skipped_duplicate += 1;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The report so far.
    pub fn report(&self) -> &ImportReport {
        &self.report
    }

    /// The report.
    pub fn finish(self) -> ImportReport {
        self.report
    }

    fn account(&self, source: &SourceUser, raw_email: &str) -> Result<User, String> {
        if source.id.is_empty()
            || source.id.len() > MAX_ID_LEN
            || source
                .id
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err("unusable user id".to_owned());
        }
        let email =
            Email::parse(raw_email).map_err(|e| format!("e-mail address not accepted: {e}"))?;
        let created_at = source.created_at.unwrap_or(self.now);
        Ok(User {
            id: source.id.clone(),
            email: email.as_str().to_owned(),
            is_admin: false,
            created_at,
            password_changed_at: self.now,
            email_verified: source.email_confirmed,
            disabled: source
                .lockout_end
                .is_some_and(|end| end > self.now + ADMIN_LOCK_AFTER),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(id: &str, email: &str) -> SourceUser {
        SourceUser {
            id: id.to_owned(),
            email: Some(email.to_owned()),
            email_confirmed: true,
            password_hash: Some(
                "AAABAgMEBQYHCAkKCwwNDg+ukCEMDf0yyQ29NYubggHIVY0sdEUfdyeM+E1LtH1uJg==".to_owned(),
            ),
            two_factor_enabled: false,
            lockout_end: None,
            deleted: false,
            created_at: None,
        }
    }

    #[test]
    fn debug_output_leaves_the_hash_out() {
        let text = format!("{:?}", source("a", "a@example.com"));
        assert!(!text.contains("AAAB"), "{text}");
    }
}
