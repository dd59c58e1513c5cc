//! The delivery seam: one finished message in, delivered or an error out.

use std::fmt;

use async_trait::async_trait;

/// A finished message: the RFC 5322 bytes and the envelope (sender and recipient) to deliver
/// them with.
///
/// `Debug` shows the kind of letter and the Message-ID, never the body: the body of an action
/// mail holds a token.
#[derive(Clone)]
pub struct Email {
    pub(crate) envelope: lettre::address::Envelope,
    pub(crate) to: String,
    pub(crate) message_id: String,
    pub(crate) kind: &'static str,
    pub(crate) bytes: Vec<u8>,
}

impl Email {
    /// The recipient's address.
    pub fn to(&self) -> &str {
        &self.to
    }

    /// The envelope sender (the `From:` address).
    pub fn from(&self) -> Option<String> {
        self.envelope.from().map(ToString::to_string)
    }

    /// The `Message-ID` header's value, with its angle brackets: how logs name a mail.
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// Which letter this is (`reset_password`, `password_changed`, …), for logs and metrics.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The whole message as it goes over the wire or into an `.eml` file (CRLF line ends).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email")
            .field("kind", &self.kind)
            .field("message_id", &self.message_id)
            .finish_non_exhaustive()
    }
}

/// Why a delivery attempt failed, as the `reason` label of `ringfence_mail_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// The relay could not be reached (refused, unreachable, DNS).
    Connect,
    /// The relay did not answer in time.
    Timeout,
    /// TLS could not be set up (no STARTTLS offered, certificate did not verify).
    Tls,
    /// The relay refused the mail or the credentials (4xx/5xx reply).
    Rejected,
    /// Writing the mail (outbox) failed.
    Io,
    /// The queue was full when the mail was handed in.
    QueueFull,
}

impl FailureReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Connect => "connect",
            FailureReason::Timeout => "timeout",
            FailureReason::Tls => "tls",
            FailureReason::Rejected => "rejected",
            FailureReason::Io => "io",
            FailureReason::QueueFull => "queue_full",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed delivery attempt.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct TransportError {
    /// The class of failure.
    pub reason: FailureReason,
    /// True when trying again cannot help (a 5xx refusal): the queue gives the mail up at once.
    pub permanent: bool,
    /// What happened, for the log. Never the message body nor a credential.
    pub detail: String,
}

/// Delivers one message. Implemented by [`crate::SmtpTransport`] and [`crate::Outbox`]; the
/// [`crate::Mailer`] queue calls it, retries on error and never lets it block a request.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Delivers `email` once. An `Err` is retried later unless it is permanent.
    async fn deliver(&self, email: &Email) -> Result<(), TransportError>;

    /// Where mail goes, for the startup log (`smtp://relay:587?tls=required`,
    /// `outbox /var/lib/ringfence/outbox`); never a password.
    fn describe(&self) -> String;
}
