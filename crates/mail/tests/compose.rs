//! Composing letters: senders, recipients, link rules, and what never shows in `Debug`.

mod common;

use std::time::Duration;

use common::{composer, TOKEN};
use ringfence_mail::{ActionToken, Composer, Letter, MailError, Mailer, Outbox, PublicUrl};
use ringfence_testkit::ReceivedMail;

#[test]
fn the_default_sender_is_ringfence_at_the_public_host_named_after_the_app() {
    let c = composer();
    assert_eq!(c.from_address(), "ringfence@auth.example.test");
    let mail = c
        .compose("a@example.org", &Letter::PasswordChanged)
        .unwrap();
    assert_eq!(mail.from().as_deref(), Some("ringfence@auth.example.test"));
    let parsed = ReceivedMail::parse(mail.bytes()).unwrap();
    assert_eq!(
        parsed.header("From"),
        Some("\"Acme Login\" <ringfence@auth.example.test>")
    );

    // A public URL on an IP address (a node on loopback) still gets a usable sender.
    let local = PublicUrl::parse("http://127.0.0.1:8080").unwrap();
    let c = Composer::new("ringfence", local, None).unwrap();
    assert_eq!(c.from_address(), "ringfence@127.0.0.1");
    let mail = c
        .compose("a@example.org", &Letter::PasswordChanged)
        .unwrap();
    assert!(
        mail.message_id().ends_with("@127.0.0.1>"),
        "{}",
        mail.message_id()
    );
    let v6 = PublicUrl::parse("http://[::1]:8080").unwrap();
    let c = Composer::new("ringfence", v6, None).unwrap();
    assert_eq!(c.from_address(), "ringfence@localhost");
    let mail = c
        .compose("a@example.org", &Letter::PasswordChanged)
        .unwrap();
    assert!(
        mail.message_id().ends_with("@::1>"),
        "{}",
        mail.message_id()
    );
    let local = PublicUrl::parse("http://localhost:8080").unwrap();
    let c = Composer::new("ringfence", local, None).unwrap();
    assert_eq!(c.from_address(), "ringfence@localhost");
}

#[test]
fn mail_from_keeps_a_given_display_name_and_refuses_a_bad_address() {
    let url = PublicUrl::parse("https://auth.example.test").unwrap();
    let c = Composer::new("Acme", url.clone(), Some("Acme Support <help@example.com>")).unwrap();
    let mail = c
        .compose("a@example.org", &Letter::PasswordChanged)
        .unwrap();
    let parsed = ReceivedMail::parse(mail.bytes()).unwrap();
    assert_eq!(
        parsed.header("From"),
        Some("\"Acme Support\" <help@example.com>")
    );

    let e = Composer::new("Acme", url, Some("not an address")).unwrap_err();
    assert!(matches!(e, MailError::Address { .. }), "{e:?}");
    assert!(e.to_string().contains("`not an address`"), "{e}");
}

#[test]
fn a_bad_recipient_is_an_error_not_a_panic() {
    for to in ["", "no-at-sign", "a@", "@b", "a b@c.d", "a@b\r\nBcc: x@y.z"] {
        let e = composer()
            .compose(to, &Letter::PasswordChanged)
            .unwrap_err();
        assert!(matches!(e, MailError::Address { .. }), "{to:?}: {e:?}");
    }
}

#[test]
fn a_header_injection_through_a_name_stays_in_the_body() {
    let mail = composer()
        .compose(
            "a@example.org",
            &Letter::PasskeyAdded {
                name: "x\r\nBcc: evil@example.com".into(),
            },
        )
        .unwrap();
    let parsed = ReceivedMail::parse(mail.bytes()).unwrap();
    assert!(parsed.header("Bcc").is_none());
}

#[test]
fn neither_a_letter_nor_an_email_shows_its_token_in_debug() {
    let letter = Letter::ResetPassword {
        token: ActionToken::new(TOKEN).unwrap(),
        valid_for: Duration::from_secs(3600),
    };
    assert!(!format!("{letter:?}").contains(TOKEN));
    let mail = composer().compose("a@example.org", &letter).unwrap();
    assert!(!format!("{mail:?}").contains(TOKEN));
    assert!(String::from_utf8_lossy(mail.bytes()).contains("reset-password"));
}

#[test]
fn the_mailer_outside_a_runtime_is_an_error() {
    let data = tempfile::tempdir().unwrap();
    let outbox = Outbox::in_data_dir(data.path()).unwrap();
    let e = Mailer::start(composer(), std::sync::Arc::new(outbox), Default::default()).unwrap_err();
    assert!(matches!(e, MailError::NoRuntime), "{e:?}");
}

#[test]
fn ascii_parts_travel_as_7bit_with_the_link_whole_and_non_ascii_ones_are_encoded() {
    let letter = Letter::ResetPassword {
        token: ActionToken::new(TOKEN).unwrap(),
        valid_for: Duration::from_secs(3600),
    };
    let mail = composer().compose("a@example.org", &letter).unwrap();
    let raw = String::from_utf8(mail.bytes().to_vec()).unwrap();
    let link = format!("{}/reset-password?token={TOKEN}", common::PUBLIC_URL);
    assert!(raw.contains(&format!("\r\n{link}\r\n")), "{raw}");
    assert!(raw.contains("Content-Transfer-Encoding: 7bit"));
    assert!(raw.split("\r\n").all(|l| l.len() <= 998));

    let url = PublicUrl::parse("https://auth.example.test").unwrap();
    let cafe = Composer::new("Café Ümlaut", url, None).unwrap();
    let mail = cafe.compose("a@example.org", &letter).unwrap();
    assert!(
        mail.bytes().is_ascii(),
        "non-ASCII must be encoded on the wire"
    );
    let parsed = ReceivedMail::parse(mail.bytes()).unwrap();
    let text = parsed.text().unwrap().replace('\n', " ");
    assert!(text.contains("your Café Ümlaut account"), "{text}");
    assert!(parsed.html().unwrap().contains("Café Ümlaut"));
    assert_eq!(common::links(parsed.text().unwrap()), vec![link]);
}
