//! The crate's one error type for settings and composing (delivery failures are
//! [`crate::TransportError`], handled inside the queue).

/// A setting, address or token the crate cannot use, or a queue that cannot take a mail.
///
/// Every message is one line that names the problem and never quotes a password or a token.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The public URL (`--public-url`) is not an absolute `http(s)://` URL without query.
    #[error("invalid public URL: {0}")]
    PublicUrl(String),
    /// The SMTP URL (`--smtp-url`) cannot be used; the text says why.
    #[error("invalid SMTP URL: {0}")]
    SmtpUrl(String),
    /// A mail address (`--mail-from`, a recipient) is not a valid address.
    #[error("invalid mail address `{address}`: {reason}")]
    Address {
        /// The address as given (addresses are not secrets).
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A token for a mail link is empty, too long or has a character outside `[A-Za-z0-9_-]`.
    #[error("invalid link token: it must be 1 to {max} characters of [A-Za-z0-9_-]", max = crate::links::MAX_TOKEN_LEN)]
    Token,
    /// A template failed to render (a bug, not an input problem).
    #[error("cannot render the mail template: {0}")]
    Template(#[from] askama::Error),
    /// The message could not be assembled (a bug, not an input problem).
    #[error("cannot assemble the mail: {0}")]
    Message(String),
    /// The TLS settings for SMTP could not be built (e.g. an unreadable CA certificate).
    #[error("SMTP TLS setup failed: {0}")]
    Tls(String),
    /// The outbox directory cannot be created or secured.
    #[error("outbox directory {path}: {source}")]
    Outbox {
        /// The directory.
        path: std::path::PathBuf,
        /// The operating system's answer.
        source: std::io::Error,
    },
    /// The queue holds its maximum of undelivered mails; this one was dropped (and logged).
    #[error("the mail queue is full ({0} undelivered mails); the mail was dropped")]
    QueueFull(usize),
    /// The mailer was shut down; no more mails are taken.
    #[error("the mailer has been shut down")]
    Stopped,
    /// [`crate::Mailer::start`] was called outside a Tokio runtime.
    #[error("the mailer must be started inside a Tokio runtime")]
    NoRuntime,
}
