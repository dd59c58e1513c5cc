//! An in-memory [`AccountMailer`]: the accounts crate's own seam, caught in tests of the crate
//! (the server's tests deliver through a real SMTP server instead).

use std::sync::{Arc, Mutex};

use ringfence_accounts::{AccountMail, AccountMailer, Email};

/// Every mail the service queued, in order, with its recipient.
#[derive(Clone, Default)]
pub struct MailCollector {
    mails: Arc<Mutex<Vec<(String, AccountMail)>>>,
}

impl AccountMailer for MailCollector {
    fn send(&self, to: &Email, mail: AccountMail) {
        self.mails
            .lock()
            .unwrap()
            .push((to.as_str().to_owned(), mail));
    }
}

impl MailCollector {
    pub fn all(&self) -> Vec<(String, AccountMail)> {
        self.mails.lock().unwrap().clone()
    }

    pub fn kinds_to(&self, to: &str) -> Vec<&'static str> {
        self.all()
            .iter()
            .filter(|(t, _)| t == to)
            .map(|(_, m)| m.kind())
            .collect()
    }

    /// The token of the last mail of `kind` to `to`.
    pub fn token(&self, to: &str, kind: &str) -> String {
        self.all()
            .iter()
            .rev()
            .find(|(t, m)| t == to && m.kind() == kind)
            .and_then(|(_, m)| m.token().map(|t| t.as_str().to_owned()))
            .unwrap_or_else(|| panic!("no {kind} mail to {to} in {:?}", self.all()))
    }
}
