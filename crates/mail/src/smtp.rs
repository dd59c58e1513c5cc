//! Delivery to an SMTP relay through lettre (Tokio, rustls; no OpenSSL).

use std::time::Duration;

use async_trait::async_trait;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::transport::{Email, FailureReason, Transport, TransportError};
use crate::{MailError, SmtpSecurity, SmtpUrl};

/// How long one SMTP conversation may take before it counts as failed (and is retried).
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends through the relay of an [`SmtpUrl`], one connection per mail.
///
/// TLS (STARTTLS or implicit) verifies the relay's certificate against the system's trust store,
/// plus any CA given to [`SmtpTransport::with_ca_pem`]; there is no way to turn verification off.
pub struct SmtpTransport {
    inner: AsyncSmtpTransport<Tokio1Executor>,
    url: SmtpUrl,
}

impl SmtpTransport {
    /// A transport for `url`, greeting the relay with `EHLO hello_name` (the public URL's host
    /// is the natural choice).
    pub fn new(url: &SmtpUrl, hello_name: &str) -> Result<SmtpTransport, MailError> {
        Self::build(url, hello_name, None)
    }

    /// Like [`SmtpTransport::new`], also trusting the CA certificate(s) in `ca_pem` (PEM): for a
    /// relay with a private CA, and for tests.
    pub fn with_ca_pem(
        url: &SmtpUrl,
        hello_name: &str,
        ca_pem: &[u8],
    ) -> Result<SmtpTransport, MailError> {
        Self::build(url, hello_name, Some(ca_pem))
    }

    fn build(
        url: &SmtpUrl,
        hello_name: &str,
        ca_pem: Option<&[u8]>,
    ) -> Result<SmtpTransport, MailError> {
        let tls_params = || {
            let mut b = TlsParameters::builder(url.host().to_owned());
            if let Some(pem) = ca_pem {
                let cert = Certificate::from_pem(pem)
                    .map_err(|e| MailError::Tls(format!("CA certificate: {e}")))?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls().map_err(|e| MailError::Tls(e.to_string()))
        };
        let tls = match url.security() {
            SmtpSecurity::Plain => Tls::None,
            SmtpSecurity::StartTls => Tls::Required(tls_params()?),
            SmtpSecurity::ImplicitTls => Tls::Wrapper(tls_params()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(url.host())
            .port(url.port())
            .tls(tls)
            .hello_name(ClientId::Domain(hello_name.to_owned()))
            .timeout(Some(SMTP_TIMEOUT));
        if let (Some(user), Some(pass)) = (url.user(), url.password()) {
            builder = builder.credentials(Credentials::new(user.to_owned(), pass.to_owned()));
        }
        Ok(SmtpTransport {
            inner: builder.build(),
            url: url.clone(),
        })
    }
}

impl std::fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTransport")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Transport for SmtpTransport {
    async fn deliver(&self, email: &Email) -> Result<(), TransportError> {
        self.inner
            .send_raw(&email.envelope, &email.bytes)
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    fn describe(&self) -> String {
        self.url.to_string()
    }
}

/// Sorts lettre's error into a metric label and decides whether a retry can help.
fn classify(e: &lettre::transport::smtp::Error) -> TransportError {
    let reason = if e.is_timeout() {
        FailureReason::Timeout
    } else if e.is_tls() {
        FailureReason::Tls
    } else if e.is_transient() || e.is_permanent() {
        FailureReason::Rejected
    } else {
        FailureReason::Connect
    };
    // lettre's Display is the server's reply or the I/O error: it quotes neither the message nor
    // the credentials. Keep the source chain too (e.g. "Connection refused").
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    TransportError {
        reason,
        permanent: e.is_permanent(),
        detail,
    }
}
