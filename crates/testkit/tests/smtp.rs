//! The SMTP server (aiosmtpd) against a hand-written SMTP conversation.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use ringfence_testkit::{ReceivedMail, SmtpServer};

/// Sends one message with a bare-bones SMTP client; panics on any unexpected reply.
fn send(port: u16, to: &str, body: &str) {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut expect = |code: &str| loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with(code), "wanted {code}, got {line:?}");
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    };
    expect("220");
    for (cmd, code) in [
        ("EHLO test\r\n".to_owned(), "250"),
        ("MAIL FROM:<from@example.org>\r\n".to_owned(), "250"),
        (format!("RCPT TO:<{to}>\r\n"), "250"),
        ("DATA\r\n".to_owned(), "354"),
        (format!("{body}\r\n.\r\n"), "250"),
        ("QUIT\r\n".to_owned(), "221"),
    ] {
        writer.write_all(cmd.as_bytes()).unwrap();
        expect(code);
    }
}

#[test]
fn smtp_server_stores_messages_and_survives_a_restart_on_the_same_port() {
    let mut smtp = SmtpServer::start().unwrap();
    assert_eq!(smtp.url(), format!("smtp://127.0.0.1:{}", smtp.port()));
    let body = "From: a@example.org\r\nTo: b@example.org\r\nSubject: hello\r\n\
                Content-Type: text/plain; charset=utf-8\r\n\
                Content-Transfer-Encoding: quoted-printable\r\n\r\n\
                a long line joined by a soft break =\r\nhere, and an equals sign =3D.";
    send(smtp.port(), "b@example.org", body);
    let got = smtp.wait_for_messages(1, Duration::from_secs(10)).unwrap();
    assert_eq!(got[0].header("subject"), Some("hello"));
    assert_eq!(got[0].header("X-RcptTo"), Some("b@example.org"));
    assert_eq!(
        got[0].text(),
        Some("a long line joined by a soft break here, and an equals sign =.\n")
    );

    let port = smtp.port();
    smtp.stop();
    assert!(!smtp.is_running());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    smtp.restart().unwrap();
    assert_eq!(smtp.port(), port);
    send(port, "c@example.org", "Subject: again\r\n\r\nsecond");
    let got = smtp.wait_for_messages(2, Duration::from_secs(10)).unwrap();
    assert_eq!(got.len(), 2);
    assert!(got.iter().any(|m| m.header("Subject") == Some("again")));

    let dir = smtp.dir().to_path_buf();
    drop(smtp);
    assert!(!dir.exists());
}

#[test]
fn received_mail_parses_multipart_and_base64() {
    let raw = "Subject: parts\r\nMIME-Version: 1.0\r\n\
               Content-Type: multipart/alternative;\r\n boundary=\"XYZ\"\r\n\r\n\
               --XYZ\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain\r\n\
               --XYZ\r\nContent-Type: text/html; charset=utf-8\r\n\
               Content-Transfer-Encoding: base64\r\n\r\nPGI+aHRtbDwvYj4=\r\n--XYZ--\r\n";
    let mail = ReceivedMail::parse(raw.as_bytes()).unwrap();
    assert_eq!(
        mail.header("content-type"),
        Some("multipart/alternative; boundary=\"XYZ\"")
    );
    assert_eq!(mail.parts.len(), 2);
    assert_eq!(mail.text(), Some("plain"));
    assert_eq!(mail.html(), Some("<b>html</b>"));
    assert!(ReceivedMail::parse(b" folded first\r\n\r\n").is_err());
}
