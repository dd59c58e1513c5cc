//! The pages of issue 14 against a real `ringfence serve` that delivers its mail to a real SMTP
//! server (aiosmtpd, started by the test): under `--require-verified-email`, registration's
//! verification mail, the sign-in page's refusal (and the new mail it sends), the verify page,
//! then forgot password, the reset mail, the reset page, and signing in with the new password.

mod common;

use std::time::Duration;

use common::*;
use reqwest::{Client, StatusCode};
use ringfence_testkit::{ReceivedMail, SmtpServer};

const NEW_PASSWORD: &str = "violet kettle drums at dawn";
const MAIL_WAIT: Duration = Duration::from_secs(20);

/// The one link in the text part of `mail`.
fn link_in(mail: &ReceivedMail) -> String {
    let text = mail.text().expect("a text part");
    let start = text.find("http").expect("a link in the mail");
    text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect()
}

/// The link of the `nth` mail (from 1) the SMTP server received whose link goes to `page`.
fn nth_link(smtp: &SmtpServer, page: &str, nth: usize) -> String {
    let deadline = std::time::Instant::now() + MAIL_WAIT;
    loop {
        let links: Vec<String> = smtp
            .messages()
            .unwrap()
            .iter()
            .filter(|m| m.text().is_some_and(|t| t.contains(page)))
            .map(link_in)
            .collect();
        if links.len() >= nth {
            return links[nth - 1].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {nth}. mail with a {page} link within {MAIL_WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// GETs a mail link's page (`200`, a form holding the token) and posts its form with `extra`
/// fields. Returns the post's answer.
async fn follow(client: &Client, link: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let page = client.get(link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK, "GET {link}");
    let html = page.text().await.unwrap();
    let (origin, query) = link.split_once('?').unwrap();
    let token = query.strip_prefix("token=").unwrap();
    assert!(html.contains(&format!("name=\"token\" value=\"{token}\"")));
    let csrf = csrf_of(&html);
    let mut form = vec![("token", token), ("_csrf", csrf.as_str())];
    form.extend_from_slice(extra);
    client.post(origin).form(&form).send().await.unwrap()
}

#[tokio::test]
async fn verify_then_forgot_and_reset_through_the_pages_over_real_smtp() {
    let smtp = SmtpServer::start().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let node = start_node(
        "pages-mail",
        scratch.path(),
        &[
            "--smtp-url".to_owned(),
            smtp.url(),
            "--require-verified-email".to_owned(),
        ],
    );
    let base = node.url();
    let email = "hedy@example.com";
    let client = browser();

    // Registration mails a verification link; signing in before following it is refused and
    // mails another.
    let reply = register_page(&client, &base, email).await;
    assert_eq!(reply.status(), StatusCode::SEE_OTHER);
    let first = nth_link(&smtp, "/verify-email?token=", 1);
    let fresh = browser();
    let reply = login_page(&fresh, &base, email, PASSWORD).await;
    assert_eq!(reply.status(), StatusCode::FORBIDDEN);
    let html = reply.text().await.unwrap();
    assert!(html.contains("confirm your e-mail address"), "{html}");
    let second = nth_link(&smtp, "/verify-email?token=", 2);
    assert_ne!(first, second);

    // The link's page confirms on POST; then the password signs in.
    let reply = follow(&fresh, &second, &[]).await;
    assert_eq!(reply.status(), StatusCode::OK);
    assert!(reply.text().await.unwrap().contains("Address confirmed"));
    let reply = login_page(&fresh, &base, email, PASSWORD).await;
    assert_eq!(reply.status(), StatusCode::SEE_OTHER);

    // Forgot password: the reset mail, its page, a new password; the old sessions end.
    let anonymous = browser();
    let (_, html) = get_page(&anonymous, &format!("{base}/forgot-password")).await;
    let request = anonymous.post(format!("{base}/forgot-password"));
    let reply = send_form(request, &[("email", email)], &html).await;
    assert_eq!(reply.status(), StatusCode::OK);
    let link = nth_link(&smtp, "/reset-password?token=", 1);
    let reply = follow(&anonymous, &link, &[("password", NEW_PASSWORD)]).await;
    assert_eq!(reply.status(), StatusCode::SEE_OTHER);
    assert_eq!(reply.headers()["location"], "/login");
    assert_eq!(
        signed_in_as(&fresh, &base).await,
        None,
        "the reset ended it"
    );
    let reply = login_page(&anonymous, &base, email, PASSWORD).await;
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    let reply = login_page(&anonymous, &base, email, NEW_PASSWORD).await;
    assert_eq!(reply.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        signed_in_as(&anonymous, &base).await.as_deref(),
        Some(email)
    );
    // The reset's notice arrived too.
    let notices = smtp.wait_for_messages(4, MAIL_WAIT).unwrap();
    assert!(
        notices
            .iter()
            .any(|m| m.text().is_some_and(|t| !t.contains("token="))),
        "a notice without a link"
    );
}
