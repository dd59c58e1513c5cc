//! An in-memory [`AccountMailer`]: every account mail a service queued, caught at the accounts
//! crate's mail seam, for tests about what is sent rather than how it is delivered (delivery
//! through the real mailer and a real SMTP server is [`crate::SmtpServer`]'s part).

use std::sync::{Arc, Mutex};

use ringfence_accounts::{AccountMail, AccountMailer, Email};

/// Every mail queued through it, in order, with its recipient. Clones share the one list, so a
/// test keeps a clone and hands another to the service (or to several nodes).
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
    /// Every mail so far, oldest first, with its recipient.
    pub fn all(&self) -> Vec<(String, AccountMail)> {
        self.mails.lock().unwrap().clone()
    }

    /// The kinds of mail sent to `to` ([`AccountMail::kind`]), in order.
    pub fn kinds_to(&self, to: &str) -> Vec<&'static str> {
        self.all()
            .iter()
            .filter(|(t, _)| t == to)
            .map(|(_, m)| m.kind())
            .collect()
    }

    /// The last mail of `kind` to `to`; panics, listing every mail, when there is none.
    pub fn last(&self, to: &str, kind: &str) -> AccountMail {
        let all = self.all();
        all.iter()
            .rev()
            .find(|(t, m)| t == to && m.kind() == kind)
            .map(|(_, m)| m.clone())
            .unwrap_or_else(|| panic!("no {kind} mail to {to} in {all:?}"))
    }

    /// The link (path and query) of the last mail of `kind` to `to`.
    pub fn link(&self, to: &str, kind: &str) -> String {
        self.last(to, kind)
            .link_path()
            .unwrap_or_else(|| panic!("the {kind} mail to {to} has no link"))
    }

    /// The token of the last mail of `kind` to `to`.
    pub fn token(&self, to: &str, kind: &str) -> String {
        let mail = self.last(to, kind);
        let token = mail.token();
        token
            .unwrap_or_else(|| panic!("the {kind} mail to {to} has no token"))
            .as_str()
            .to_owned()
    }
}
