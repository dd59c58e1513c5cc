//! The server's mail flags in one place: `--public-url`, `--smtp-url`, `--mail-from`, the data
//! directory, and the retry policy, turned into a running [`Mailer`].

use std::path::Path;
use std::sync::Arc;

use crate::{
    Composer, MailError, Mailer, Outbox, PublicUrl, RetryPolicy, SmtpTransport, SmtpUrl, Transport,
};

/// What `ringfence serve` knows about mail, as the flags give it.
#[derive(Debug, Clone)]
pub struct MailSettings<'a> {
    /// The app's name, as mails and subjects say it.
    pub app_name: &'a str,
    /// `--public-url`: the base of every link.
    pub public_url: &'a str,
    /// `--smtp-url`; `None` writes every mail to `DATA_DIR/outbox/`.
    pub smtp_url: Option<&'a str>,
    /// `--mail-from`; `None` is `ringfence@` + the public URL's host.
    pub mail_from: Option<&'a str>,
    /// `DATA_DIR`, for the outbox.
    pub data_dir: &'a Path,
    /// Backoff, retry window, queue size.
    pub policy: RetryPolicy,
}

impl Mailer {
    /// Checks every setting (each error is one line naming the flag's problem, never a
    /// password), picks the transport (SMTP with `smtp_url`, else the outbox) and starts the
    /// queue on the current Tokio runtime.
    pub fn from_settings(settings: MailSettings<'_>) -> Result<Mailer, MailError> {
        let public_url = PublicUrl::parse(settings.public_url)?;
        let transport: Arc<dyn Transport> = match settings.smtp_url {
            Some(url) => Arc::new(SmtpTransport::new(
                &SmtpUrl::parse(url)?,
                public_url.host(),
            )?),
            None => Arc::new(Outbox::in_data_dir(settings.data_dir)?),
        };
        let composer = Composer::new(settings.app_name, public_url, settings.mail_from)?;
        Mailer::start(composer, transport, settings.policy)
    }
}
