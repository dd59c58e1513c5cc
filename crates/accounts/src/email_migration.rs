//! Bringing stored e-mails to the current normal form of [`Email`].
//!
//! Rows written before the normal form included IDNA and NFC may hold `alice@xn--exmple-cua.com`
//! or a decomposed `é`: sign-in, which looks up the normalized form, would no longer find them,
//! and a look-alike could have been registered next to them. At start the server reads every
//! account once and:
//!
//! - rewrites an e-mail whose normal form differs, when no other account has (or would get) that
//!   form;
//! - reports, and leaves untouched, every group of accounts whose e-mails share one normal form
//!   (they are two accounts a person may both use: merging them silently could hand one owner's
//!   account to the other; an administrator decides). Until then the account already in normal
//!   form, if any, is the one sign-in finds;
//! - reports stored e-mails that are no longer valid at all (they keep working as stored for
//!   nothing: no lookup can reach them; an administrator decides).

use std::collections::BTreeMap;

use crate::{AccountError, Email, UserStore};

/// Accounts read per page: few pages keep `OFFSET` paging cheap on a large table.
const PAGE: u32 = 5_000;

/// What [`normalize_stored_emails`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailMigration {
    /// Accounts whose e-mail was rewritten to its normal form (ids).
    pub rewritten: Vec<String>,
    /// Groups of accounts (ids) whose e-mails share one normal form, left as they are: at least
    /// two each, or one whose normal form an account registered meanwhile took.
    pub collisions: Vec<Vec<String>>,
    /// Accounts whose stored e-mail is not a valid address any more (ids); left as they are.
    pub invalid: Vec<String>,
}

impl EmailMigration {
    /// Whether nothing needs an administrator.
    pub fn is_clean(&self) -> bool {
        self.collisions.is_empty() && self.invalid.is_empty()
    }
}

/// Reads every account of `users`, rewrites stored e-mails whose normal form changed, and
/// reports collisions and invalid addresses (see the module docs). Logs one line per finding,
/// with account ids, never the addresses. Safe to run on every start and on several nodes at
/// once: a rewrite that loses a race to another node is a unique violation, reported as a
/// collision for this run and found done on the next.
pub async fn normalize_stored_emails(
    users: &dyn UserStore,
) -> Result<EmailMigration, AccountError> {
    // Only rows whose normal form differs are kept in memory (normally none): normal form ->
    // (id, stored e-mail). Rows already in normal form are found through `by_email`.
    let mut changed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut report = EmailMigration::default();
    let mut offset = 0u32;
    loop {
        let page = users.list(PAGE, offset).await?;
        for user in &page {
            match Email::parse(&user.email) {
                Ok(email) if email.as_str() == user.email => {}
                Ok(email) => changed
                    .entry(email.into_string())
                    .or_default()
                    .push(user.id.clone()),
                Err(_) => report.invalid.push(user.id.clone()),
            }
        }
        let read = u32::try_from(page.len()).unwrap_or(PAGE);
        if read < PAGE {
            break;
        }
        offset = offset.saturating_add(read);
    }
    for (normal, mut ids) in changed {
        let email = Email::parse(&normal)?;
        if let Some(holder) = users.by_email(&email).await? {
            // An account already has the normal form: every changed row is its look-alike.
            ids.insert(0, holder.user.id);
        }
        if ids.len() > 1 {
            report.collisions.push(ids);
            continue;
        }
        let Some(id) = ids.pop() else { continue };
        match users.set_email(&id, &email).await {
            Ok(_) => report.rewritten.push(id),
            Err(crate::UserStoreError::EmailTaken) => report.collisions.push(vec![id]),
            Err(e) => return Err(e.into()),
        }
    }
    for id in &report.rewritten {
        tracing::info!(user_id = %id, "stored e-mail rewritten to its normal form");
    }
    for ids in &report.collisions {
        tracing::warn!(
            user_ids = %ids.join(","),
            "accounts whose e-mails are the same address once normalized (IDNA, NFC, case): \
             left as they are; only the one already in normal form can sign in by e-mail; \
             an administrator must decide"
        );
    }
    for id in &report.invalid {
        tracing::warn!(user_id = %id, "stored e-mail is not a valid address any more; left as it is");
    }
    Ok(report)
}
