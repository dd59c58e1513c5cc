//! Mail for ringfence: the letters the product sends, and their delivery.
//!
//! - [`Letter`]: every mail the product sends. Action letters (verify e-mail, reset password,
//!   confirm an e-mail change) hold exactly one link, `PUBLIC_URL/<page>?token=T`, built here from
//!   the configured [`PublicUrl`] and a URL-safe [`ActionToken`]; notices hold none.
//! - [`Composer`]: renders a letter from its askama templates into a finished [`Email`]:
//!   `multipart/alternative` (plain text, then HTML), with Date, Message-ID
//!   (`<random@public-host>`), From (`--mail-from`, default `ringfence@HOST`), To and Subject.
//! - [`Transport`]: the delivery seam, with two implementations: [`SmtpTransport`] (lettre over
//!   Tokio and rustls; [`SmtpUrl`] parses `--smtp-url`) and [`Outbox`], the embedded default that
//!   writes `.eml` files (`0600`) into `DATA_DIR/outbox/` (`0700`).
//! - [`Mailer`]: the cheap-to-clone handle requests use. [`Mailer::send`] queues and returns at
//!   once; a background task delivers, retrying with exponential backoff ([`RetryPolicy`]) within
//!   a retry window, logs every failure (never a link, token or password) and counts it in the
//!   metrics `ringfence_mail_sent_total`, `ringfence_mail_failures_total{reason}`,
//!   `ringfence_mail_dropped_total` and the gauge `ringfence_mail_queue`.
//!
//! The crate depends on no other ringfence crate; the account side calls it through
//! [`Mailer::send`]. The server builds the [`Mailer`] from its flags with
//! [`Mailer::from_settings`] ([`MailSettings`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), ringfence_mail::MailError> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use ringfence_mail::{
//!     ActionToken, Composer, Letter, Mailer, Outbox, PublicUrl, RetryPolicy, SmtpTransport,
//!     SmtpUrl, Transport,
//! };
//!
//! let public_url = PublicUrl::parse("https://auth.example.com")?;
//! let composer = Composer::new("Example", public_url.clone(), None)?; // From: ringfence@auth.example.com
//! let smtp_url: Option<&str> = Some("smtp://mailer:secret@relay.example.com:587?tls=required");
//! let transport: Arc<dyn Transport> = match smtp_url {
//!     Some(url) => Arc::new(SmtpTransport::new(&SmtpUrl::parse(url)?, public_url.host())?),
//!     None => Arc::new(Outbox::in_data_dir("ringfence-data".as_ref())?),
//! };
//! let mailer = Mailer::start(composer, transport, RetryPolicy::default())?;
//!
//! // In a request handler: returns at once; a failure to queue does not fail the request.
//! let token = ActionToken::new("k7Jx0_example-token")?;
//! let letter = Letter::ResetPassword { token, valid_for: Duration::from_secs(3600) };
//! if let Err(e) = mailer.send("ada@example.com", letter) {
//!     tracing::warn!(error = %e, "reset mail not queued");
//! }
//!
//! // At shutdown: give the queue a few seconds.
//! mailer.shutdown(Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod compose;
mod error;
mod letter;
pub(crate) mod links;
mod mailer;
mod outbox;
mod settings;
mod smtp;
mod smtp_url;
mod transport;

pub use compose::Composer;
pub use error::MailError;
pub use letter::Letter;
pub use links::{Action, ActionToken, PublicUrl, MAX_TOKEN_LEN};
pub use mailer::{MailStats, Mailer, RetryPolicy};
pub use outbox::Outbox;
pub use settings::MailSettings;
pub use smtp::{SmtpTransport, SMTP_TIMEOUT};
pub use smtp_url::{SmtpSecurity, SmtpUrl};
pub use transport::{Email, FailureReason, Transport, TransportError};

// The README's Rust blocks compile as doctests, so what a reader of crates.io copies works.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}
