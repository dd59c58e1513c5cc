//! Turns a [`Letter`] for an address into a finished [`Email`].

use std::time::SystemTime;

use base64::Engine;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{header, Body, Mailbox, MultiPart, SinglePart};
use lettre::Address;
use rand::RngCore;

use crate::letter::Letter;
use crate::links::PublicUrl;
use crate::transport::Email;
use crate::MailError;

/// What every mail shares: the app's name, the public URL its links start with, and the
/// sender. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Composer {
    app_name: String,
    public_url: PublicUrl,
    from: Mailbox,
}

impl Composer {
    /// `from` is `--mail-from` (an address, optionally `Name <addr>`); `None` means
    /// [`Composer::default_from`]. A bare address gets the app's name as its display name.
    pub fn new(
        app_name: impl Into<String>,
        public_url: PublicUrl,
        from: Option<&str>,
    ) -> Result<Composer, MailError> {
        let app_name = app_name.into();
        let from = match from {
            Some(given) => given.trim().to_owned(),
            None => Self::default_from(&public_url),
        };
        let mut mailbox: Mailbox = from.parse().map_err(|e| MailError::Address {
            address: from.clone(),
            reason: format!("{e}"),
        })?;
        if mailbox.name.is_none() {
            mailbox.name = Some(app_name.clone());
        }
        Ok(Composer {
            app_name,
            public_url,
            from: mailbox,
        })
    }

    /// `ringfence@` + the public URL's host: the contract's default for `--mail-from`
    /// (`ringfence@localhost` for an IPv6 host, which no `From:` parser takes).
    pub fn default_from(public_url: &PublicUrl) -> String {
        let host = public_url.host();
        if host.starts_with('[') {
            // lettre's header parser takes no domain literal (`[::1]`, `[127.0.0.1]`); an IPv4
            // address passes as a dotted name, an IPv6 one cannot.
            "ringfence@localhost".to_owned()
        } else {
            format!("ringfence@{host}")
        }
    }

    /// The app's name, as mails and subjects say it.
    pub fn app_name(&self) -> &str {
        &self.app_name
    }

    /// The base of every link.
    pub fn public_url(&self) -> &PublicUrl {
        &self.public_url
    }

    /// The `From:` address (without display name).
    pub fn from_address(&self) -> String {
        self.from.email.to_string()
    }

    /// Renders `letter` for `to`: `multipart/alternative` (plain text, then HTML) with Date,
    /// Message-ID (`<random@public-host>`), From, To and Subject.
    pub fn compose(&self, to: &str, letter: &Letter) -> Result<Email, MailError> {
        let to_address: Address = to.trim().parse().map_err(|e| MailError::Address {
            address: to.to_owned(),
            reason: format!("{e}"),
        })?;
        let link = letter
            .action()
            .map(|(action, token)| self.public_url.link(action, token))
            .unwrap_or_default();
        let (text, html) = letter.render(&self.app_name, to_address.as_ref(), &link)?;
        let message_id = self.message_id();
        let message = lettre::Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to_address.clone()))
            .subject(letter.subject(&self.app_name))
            .date(SystemTime::now())
            .message_id(Some(message_id.clone()))
            .header(header::MIME_VERSION_1_0)
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(body(&wrap(&text, TEXT_WIDTH))),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(body(&html)),
                    ),
            )
            .map_err(|e| MailError::Message(e.to_string()))?;
        Ok(Email {
            envelope: message.envelope().clone(),
            to: to_address.to_string(),
            message_id,
            kind: letter.kind(),
            bytes: message.formatted(),
        })
    }

    /// `<128 random bits, base64url@public host>`: unique without a counter shared between
    /// nodes, and naming the sending site as RFC 5322 recommends.
    fn message_id(&self) -> String {
        let mut random = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
        let host = self
            .public_url
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        format!("<{id}@{host}>")
    }
}

/// Prose in the text part is wrapped to this many columns; a link, having no spaces, stays whole.
const TEXT_WIDTH: usize = 76;

/// The longest line RFC 5322 allows, without its CRLF.
const MAX_LINE: usize = 998;

/// A part's body as `7bit` when it can be (ASCII, no line over 998 characters), so that the link
/// stays whole and readable in an `.eml` file or a mail's source; otherwise lettre's choice
/// (quoted-printable or base64), e.g. for a non-ASCII app or passkey name.
fn body(text: &str) -> Body {
    let plain = text.is_ascii()
        && !text.contains(['\0', '\r'])
        && text.lines().all(|l| l.len() <= MAX_LINE);
    if plain {
        let crlf = text.replace('\n', "\r\n");
        Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::SevenBit)
    } else {
        Body::new(text.to_owned())
    }
}

/// Wraps every line longer than `width` at spaces (a word longer than `width` gets a line of
/// its own, unbroken).
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / width);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if line.chars().count() <= width {
            out.push_str(line);
            continue;
        }
        let mut column = 0;
        for word in line.split(' ') {
            let len = word.chars().count();
            if column > 0 && column + 1 + len > width {
                out.push('\n');
                column = 0;
            } else if column > 0 {
                out.push(' ');
                column += 1;
            }
            out.push_str(word);
            column += len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prose_wraps_and_links_stay_whole() {
        let link = format!(
            "https://example.com/reset-password?token={}",
            "a".repeat(60)
        );
        let text = format!("{} end\n\n{link}\nshort", "word ".repeat(30).trim_end());
        let wrapped = wrap(&text, 20);
        assert!(
            wrapped.lines().all(|l| l.len() <= 20 || l == link),
            "{wrapped}"
        );
        assert!(wrapped.lines().any(|l| l == link));
        assert_eq!(
            wrapped.replace('\n', " ").split_whitespace().count(),
            text.split_whitespace().count()
        );
        assert!(wrapped.ends_with("\nshort"));
    }
}
