//! The embedded default: mails as `.eml` files in `DATA_DIR/outbox/`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use common::{all_letters, composer, fast_policy, links, logs, PUBLIC_URL, TOKEN};
use ringfence_mail::{Mailer, Outbox, Transport};
use ringfence_testkit::ReceivedMail;

const WAIT: Duration = Duration::from_secs(20);

fn eml_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_letter_lands_in_the_outbox_as_a_private_parseable_eml_file() {
    let logs = logs();
    let data = tempfile::tempdir().unwrap();
    let outbox = Outbox::in_data_dir(data.path()).unwrap();
    assert_eq!(outbox.dir(), data.path().join("outbox"));
    assert_eq!(
        outbox.describe(),
        format!("outbox {}", outbox.dir().display())
    );
    let mailer = Mailer::start(composer(), Arc::new(outbox), fast_policy()).unwrap();

    let letters = all_letters();
    for (i, (letter, _)) in letters.iter().enumerate() {
        mailer
            .send(&format!("user{i}@example.org"), letter.clone())
            .unwrap();
    }
    assert!(mailer.flush(WAIT).await);

    let dir = data.path().join("outbox");
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let files = eml_files(&dir);
    assert_eq!(files.len(), letters.len(), "{files:?}");
    let log = logs.text();
    for file in &files {
        assert_eq!(file.extension().unwrap(), "eml", "{file:?}");
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file:?}");
        // The log names the file (and never a link: checked below).
        assert!(log.contains(file.to_str().unwrap()), "{log}");
    }
    assert!(!log.contains(TOKEN), "{log}");
    assert!(!log.contains(PUBLIC_URL), "{log}");

    for (i, (letter, path)) in letters.iter().enumerate() {
        let to = format!("user{i}@example.org");
        let mail = files
            .iter()
            .map(|f| ReceivedMail::parse(&std::fs::read(f).unwrap()).unwrap())
            .find(|m| m.header("To") == Some(to.as_str()))
            .unwrap_or_else(|| panic!("no file for {to}"));
        assert!(mail.raw.len() > 100);
        assert_eq!(
            mail.header("Subject"),
            Some(letter.subject("Acme Login").as_str())
        );
        assert!(mail.header("Date").is_some() && mail.header("Message-ID").is_some());
        let want: Vec<String> = path
            .map(|p| format!("{PUBLIC_URL}{p}?token={TOKEN}"))
            .into_iter()
            .collect();
        assert_eq!(links(mail.text().unwrap()), want, "{}", letter.kind());
        assert_eq!(links(mail.html().unwrap()), want, "{}", letter.kind());
    }
    mailer.shutdown(WAIT).await;
}

#[test]
fn an_existing_outbox_directory_is_made_private() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("outbox");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    Outbox::in_data_dir(data.path()).unwrap();
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

#[test]
fn an_outbox_that_cannot_be_created_is_a_clear_error() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let e = Outbox::in_data_dir(&file).unwrap_err().to_string();
    assert!(e.starts_with("outbox directory "), "{e}");
    assert!(e.contains("not-a-dir"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_that_cannot_be_written_is_retried_until_it_can() {
    let data = tempfile::tempdir().unwrap();
    let outbox = Outbox::in_data_dir(data.path()).unwrap();
    let dir = outbox.dir().to_path_buf();
    let mailer = Mailer::start(composer(), Arc::new(outbox), fast_policy()).unwrap();
    // A file where the directory was: every write fails, whoever runs the test (root included).
    std::fs::remove_dir(&dir).unwrap();
    std::fs::write(&dir, b"in the way").unwrap();

    mailer
        .send("a@example.org", ringfence_mail::Letter::PasswordChanged)
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while mailer.stats().failed_attempts < 2 {
        assert!(std::time::Instant::now() < deadline, "{:?}", mailer.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(logs().text().contains("reason=\"io\"") || logs().text().contains("reason=io"));

    std::fs::remove_file(&dir).unwrap();
    std::fs::create_dir(&dir).unwrap();
    assert!(mailer.flush(WAIT).await, "{:?}", mailer.stats());
    assert_eq!(mailer.stats().sent, 1);
    assert_eq!(eml_files(&dir).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_without_an_smtp_url_write_to_the_outbox_and_bad_flags_are_one_line_errors() {
    use ringfence_mail::MailSettings;
    let data = tempfile::tempdir().unwrap();
    let settings = |public_url, smtp_url, mail_from| MailSettings {
        app_name: "ringfence",
        public_url,
        smtp_url,
        mail_from,
        data_dir: data.path(),
        policy: fast_policy(),
    };
    let mailer = Mailer::from_settings(settings("http://localhost:8080", None, None)).unwrap();
    assert_eq!(mailer.composer().from_address(), "ringfence@localhost");
    mailer
        .send("a@example.org", ringfence_mail::Letter::PasswordChanged)
        .unwrap();
    assert!(mailer.flush(WAIT).await);
    assert_eq!(eml_files(&data.path().join("outbox")).len(), 1);

    let smtp = Mailer::from_settings(settings(
        "https://auth.example.test",
        Some("smtp://relay.example.test:2525"),
        Some("Acme <noreply@example.test>"),
    ))
    .unwrap();
    assert!(format!("{smtp:?}").contains("smtp://relay.example.test:2525"));

    for (public_url, smtp_url, mail_from, want) in [
        ("localhost:8080", None, None, "invalid public URL"),
        (
            "https://a.test",
            Some("smtp://u:hunter2@relay:99999"),
            None,
            "invalid SMTP URL",
        ),
        (
            "https://a.test",
            Some("imap://relay"),
            None,
            "smtp:// or smtps://",
        ),
        (
            "https://a.test",
            None,
            Some("nobody"),
            "invalid mail address `nobody`",
        ),
    ] {
        let e = Mailer::from_settings(settings(public_url, smtp_url, mail_from))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e}");
        assert!(!e.contains('\n') && !e.contains("hunter2"), "{e}");
    }
}
