//! Delivery through a real SMTP server (aiosmtpd): every letter, its headers and its one link,
//! over plain SMTP, STARTTLS and implicit TLS.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{all_letters, composer, fast_policy, links, PUBLIC_URL, TOKEN};
use ringfence_mail::{Mailer, SmtpTransport, SmtpUrl};
use ringfence_testkit::{SmtpServer, TestPki};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_letter_arrives_over_smtp_with_its_headers_and_only_action_mails_have_one_link() {
    let server = SmtpServer::start().unwrap();
    let url = SmtpUrl::parse(&server.url()).unwrap();
    let transport = SmtpTransport::new(&url, "auth.example.test").unwrap();
    let mailer = Mailer::start(composer(), Arc::new(transport), fast_policy()).unwrap();

    let letters = all_letters();
    for (i, (letter, _)) in letters.iter().enumerate() {
        mailer
            .send(&format!("user{i}@example.org"), letter.clone())
            .unwrap();
    }
    assert!(
        mailer.flush(WAIT).await,
        "queue did not empty: {:?}",
        mailer.stats()
    );
    assert_eq!(mailer.stats().sent, letters.len() as u64);
    let received = server.wait_for_messages(letters.len(), WAIT).unwrap();

    for (i, (letter, path)) in letters.iter().enumerate() {
        let to = format!("user{i}@example.org");
        let mail = received
            .iter()
            .find(|m| m.header("To") == Some(to.as_str()))
            .unwrap_or_else(|| panic!("no mail to {to}"));
        let what = letter.kind();
        assert_eq!(
            mail.header("Subject"),
            Some(letter.subject("Acme Login").as_str()),
            "{what}"
        );
        assert_eq!(
            mail.header("From"),
            Some("\"Acme Login\" <ringfence@auth.example.test>"),
            "{what}"
        );
        let date = mail
            .header("Date")
            .unwrap_or_else(|| panic!("{what}: no Date"));
        assert!(date.ends_with("+0000"), "{what}: Date {date}");
        let id = mail
            .header("Message-ID")
            .unwrap_or_else(|| panic!("{what}: no Message-ID"));
        assert!(
            id.starts_with('<') && id.ends_with("@auth.example.test>"),
            "{what}: {id}"
        );
        assert_eq!(mail.header("MIME-Version"), Some("1.0"), "{what}");
        assert!(
            mail.header("Content-Type")
                .unwrap()
                .starts_with("multipart/alternative"),
            "{what}"
        );
        // The envelope matches the headers (aiosmtpd's Mailbox records it).
        assert_eq!(mail.header("X-RcptTo"), Some(to.as_str()), "{what}");
        assert_eq!(
            mail.header("X-MailFrom"),
            Some("ringfence@auth.example.test"),
            "{what}"
        );

        let text = mail
            .text()
            .unwrap_or_else(|| panic!("{what}: no text part"));
        let html = mail
            .html()
            .unwrap_or_else(|| panic!("{what}: no HTML part"));
        assert!(
            text.contains("Acme Login") && html.contains("Acme Login"),
            "{what}"
        );
        match path {
            Some(path) => {
                let want = format!("{PUBLIC_URL}{path}?token={TOKEN}");
                assert_eq!(links(text), vec![want.clone()], "{what}: text part");
                assert_eq!(links(html), vec![want], "{what}: HTML part");
                assert_eq!(html.matches("<a ").count(), 1, "{what}");
            }
            None => {
                assert_eq!(links(text), Vec::<String>::new(), "{what}: text part");
                assert_eq!(links(html), Vec::<String>::new(), "{what}: HTML part");
                assert!(!html.contains("<a "), "{what}");
                assert!(!mail.raw.contains(TOKEN), "{what}");
            }
        }
    }

    // The e-mail change notice names the new address; the passkey's name is escaped in HTML.
    let changed = received
        .iter()
        .find(|m| m.header("Subject") == Some("Your Acme Login e-mail address was changed"))
        .unwrap();
    assert!(changed.text().unwrap().contains("ada.new@example.org"));
    let passkey = received
        .iter()
        .find(|m| m.header("Subject") == Some("A passkey was added to your Acme Login account"))
        .unwrap();
    assert!(passkey.html().unwrap().contains("YubiKey &#60;5C&#62;"));
    assert!(passkey.text().unwrap().contains("YubiKey <5C>"));

    // Message-IDs are unique.
    let mut ids: Vec<_> = received
        .iter()
        .filter_map(|m| m.header("Message-ID"))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), letters.len());
    mailer.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_implicit_tls_deliver_to_a_relay_with_a_trusted_ca() {
    let pki = TestPki::generate().unwrap();
    let ca = std::fs::read(pki.ca_file()).unwrap();
    for server in [
        SmtpServer::start_starttls(&pki).unwrap(),
        SmtpServer::start_smtps(&pki).unwrap(),
    ] {
        let url = SmtpUrl::parse(&server.url()).unwrap();
        let transport = SmtpTransport::with_ca_pem(&url, "auth.example.test", &ca).unwrap();
        let mailer = Mailer::start(composer(), Arc::new(transport), fast_policy()).unwrap();
        mailer
            .send("tls@example.org", ringfence_mail::Letter::PasswordChanged)
            .unwrap();
        assert!(
            mailer.flush(WAIT).await,
            "{}: {:?}",
            server.url(),
            mailer.stats()
        );
        let got = server.wait_for_messages(1, WAIT).unwrap();
        assert_eq!(
            got[0].header("To"),
            Some("tls@example.org"),
            "{}",
            server.url()
        );
        mailer.shutdown(WAIT).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_whose_certificate_does_not_verify_gets_no_mail() {
    let pki = TestPki::generate().unwrap();
    let server = SmtpServer::start_starttls(&pki).unwrap();
    let url = SmtpUrl::parse(&server.url()).unwrap();
    // No CA given: the test CA is not in the system's trust store.
    let transport = SmtpTransport::new(&url, "auth.example.test").unwrap();
    let mut policy = fast_policy();
    policy.retry_window = Duration::from_millis(300);
    let mailer = Mailer::start(composer(), Arc::new(transport), policy).unwrap();
    mailer
        .send("tls@example.org", ringfence_mail::Letter::PasswordChanged)
        .unwrap();
    assert!(mailer.flush(WAIT).await);
    let stats = mailer.stats();
    assert_eq!((stats.sent, stats.dropped), (0, 1), "{stats:?}");
    assert!(stats.failed_attempts >= 1);
    assert!(server.messages().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_url_authenticate_after_starttls_and_never_reach_the_log() {
    let logs = common::logs();
    let pki = TestPki::generate().unwrap();
    let ca = std::fs::read(pki.ca_file()).unwrap();
    // '@', ':' and '/' travel percent-encoded in the URL and arrive decoded.
    let password = "Pa55:w/rd@relay";
    let server = SmtpServer::start_with_auth(&pki, "mailer@example.org", password).unwrap();
    assert!(server
        .url()
        .contains("mailer%40example.org:Pa55%3Aw%2Frd%40relay@"));
    let url = SmtpUrl::parse(&server.url()).unwrap();
    assert_eq!(url.password(), Some(password));
    let transport = SmtpTransport::with_ca_pem(&url, "auth.example.test", &ca).unwrap();
    assert!(!format!("{transport:?}").contains("Pa55"));
    let mailer = Mailer::start(composer(), Arc::new(transport), fast_policy()).unwrap();
    mailer
        .send("auth@example.org", ringfence_mail::Letter::PasswordChanged)
        .unwrap();
    assert!(mailer.flush(WAIT).await, "{:?}", mailer.stats());
    let got = server.wait_for_messages(1, WAIT).unwrap();
    assert_eq!(got[0].header("To"), Some("auth@example.org"));
    let server_log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(server_log.contains("accepted"), "{server_log}");

    // A wrong password is refused for good (535): given up at once, not retried for a day.
    let wrong = server.url().replace("Pa55%3Aw", "Wrong%3Aw");
    let url = SmtpUrl::parse(&wrong).unwrap();
    let transport = SmtpTransport::with_ca_pem(&url, "auth.example.test", &ca).unwrap();
    let mailer = Mailer::start(composer(), Arc::new(transport), fast_policy()).unwrap();
    mailer
        .send("auth@example.org", ringfence_mail::Letter::PasswordChanged)
        .unwrap();
    assert!(mailer.flush(WAIT).await);
    let stats = mailer.stats();
    assert_eq!(
        (stats.sent, stats.failed_attempts, stats.dropped),
        (0, 1, 1),
        "{stats:?}"
    );
    let log = logs.text();
    assert!(log.contains("refused for good"), "{log}");
    assert!(
        log.contains("reason=\"rejected\"") || log.contains("reason=rejected"),
        "{log}"
    );
    assert!(!log.contains("Pa55") && !log.contains("Wrong:w"), "{log}");
    assert_eq!(server.messages().unwrap().len(), 1);
}
