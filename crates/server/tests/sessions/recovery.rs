//! The pages of issue 14: forgot / reset password, the mail-link pages, `/account/security`
//! (verification, address change), sign-in refusals, each with its bad input.

use reqwest::StatusCode;

use crate::harness::*;

const ALICE: &str = "alice@example.com";

/// A browser that has loaded `path` on `node`; returns the page's `_csrf`.
async fn open(device: &Device, node: &Node, path: &str) -> String {
    let page = device.get(node, path).await;
    assert_eq!(page.status, StatusCode::OK, "GET {path}: {}", page.body);
    page.form_csrf()
}

/// Registers `email` through the page (which signs in and sends the verification mail).
async fn register(device: &Device, node: &Node, email: &str) {
    let csrf = open(device, node, "/register").await;
    let reply = device
        .form(
            node,
            "/register",
            &[("email", email), ("password", PASSWORD), ("_csrf", &csrf)],
        )
        .await;
    reply.assert_status(StatusCode::SEE_OTHER);
}

/// Posts the forgot-password form for `email`.
async fn ask_for_reset(device: &Device, node: &Node, email: &str, csrf: &str) -> Reply {
    device
        .form(
            node,
            "/forgot-password",
            &[("email", email), ("_csrf", csrf)],
        )
        .await
}

/// Posts the form of a mail link's page (`/reset-password`, `/verify-email`, `/confirm-email`):
/// the `token`, then the new `password` and the form's `_csrf` when given.
async fn redeem(
    device: &Device,
    node: &Node,
    page: &str,
    token: &str,
    password: Option<&str>,
    csrf: Option<&str>,
) -> Reply {
    let mut fields = vec![("token", token)];
    fields.extend(password.map(|password| ("password", password)));
    fields.extend(csrf.map(|csrf| ("_csrf", csrf)));
    device.form(node, page, &fields).await
}

/// Posts the sign-in form.
async fn sign_in(device: &Device, node: &Node, email: &str, password: &str, csrf: &str) -> Reply {
    let fields = [("email", email), ("password", password), ("_csrf", csrf)];
    device.form(node, "/login", &fields).await
}

/// Posts the address-change form of `/account/security` for `new_email`.
async fn change_address(device: &Device, node: &Node, new_email: &str, csrf: &str) -> Reply {
    let fields = [("new_email", new_email), ("_csrf", csrf)];
    device.form(node, "/account/security/email", &fields).await
}

/// Asserts that `reply` is the page of a refused mail link: `400`, "This link is not valid".
#[track_caller]
fn assert_link_refused(reply: &Reply, what: &str) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{what}");
    assert!(
        reply.body.contains("This link is not valid"),
        "{}",
        reply.body
    );
}

async fn forgot_then_reset(backend: Backend) {
    let d = Deployment::start(backend, &["node-a", "node-b"], None).await;
    let (a, b) = (d.node(0), d.node(1));
    d.add_user(ALICE, false).await;
    let phone = Device::new(SAFARI_IPHONE, "198.51.100.61");
    phone.login(b, ALICE).await;

    // The sign-in page links to the forgot-password page.
    let browser = Device::new(FIREFOX_LINUX, "198.51.100.60");
    let login = browser.get(a, "/login").await;
    assert!(
        login.body.contains("href=\"/forgot-password\""),
        "{}",
        login.body
    );

    // Known and unknown addresses get the same page; only the known one gets mail.
    let csrf = open(&browser, a, "/forgot-password").await;
    let known = ask_for_reset(&browser, a, ALICE, &csrf).await;
    let unknown = ask_for_reset(&browser, a, "nobody@example.com", &csrf).await;
    known.assert_status(StatusCode::OK);
    assert_eq!((known.status, &known.body), (unknown.status, &unknown.body));
    a.accounts().wait_for_mail_jobs().await;
    assert_eq!(d.mail.kinds_to(ALICE), ["reset_password"]);
    assert!(d.mail.kinds_to("nobody@example.com").is_empty());

    // The link's page, on the other node; opening it (twice, as a mail scanner and then the
    // user) uses up nothing.
    let link = d.mail.link(ALICE, "reset_password");
    assert!(link.starts_with("/reset-password?token="), "{link}");
    let token = d.mail.token(ALICE, "reset_password");
    let reader = Device::new(CHROME_WINDOWS, "198.51.100.62");
    open(&reader, b, &link).await;
    let form = reader.get(b, &link).await;
    assert!(form
        .body
        .contains(&format!("name=\"token\" value=\"{token}\"")));
    let csrf = form.form_csrf();

    // No _csrf: the 400 page. A weak password: the form again with the reason, token kept.
    let reset =
        |node, password, csrf| redeem(&reader, node, "/reset-password", &token, password, csrf);
    let reply = reset(b, Some(NEW_PASSWORD), None).await;
    reply.assert_shows(StatusCode::BAD_REQUEST, "Form expired");
    let reply = reset(b, Some("short"), Some(&csrf)).await;
    reply.assert_shows(StatusCode::UNPROCESSABLE_ENTITY, "role=\"alert\"");
    assert!(
        reply.body.contains(&format!("value=\"{token}\"")),
        "{}",
        reply.body
    );

    // The reset: 303 to /login, every session ended, the notice sent.
    let reply = reset(b, Some(NEW_PASSWORD), Some(&csrf)).await;
    reply.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/login");
    assert_eq!(phone.probe(a).await, StatusCode::UNAUTHORIZED);
    assert_eq!(phone.probe(b).await, StatusCode::UNAUTHORIZED);
    assert_eq!(d.mail.kinds_to(ALICE), ["reset_password", "password_reset"]);

    // The link works once.
    let reply = reset(a, Some("another fine passphrase"), Some(&csrf)).await;
    reply.assert_shows(StatusCode::BAD_REQUEST, "This link is not valid");
    assert!(
        reply.body.contains("href=\"/forgot-password\""),
        "{}",
        reply.body
    );

    // Sign in through the page: the old password is refused, the new one works.
    let csrf = open(&reader, a, "/login").await;
    let reply = sign_in(&reader, a, ALICE, PASSWORD, &csrf).await;
    reply.assert_status(StatusCode::UNAUTHORIZED);
    let reply = sign_in(&reader, a, ALICE, NEW_PASSWORD, &csrf).await;
    reply.assert_status(StatusCode::SEE_OTHER);
    let home = reader.get(b, "/").await;
    assert!(
        home.body.contains("Signed in as alice@example.com"),
        "{}",
        home.body
    );
}

on_each_backend!(forgot_then_reset: forgot_and_reset_password_through_the_pages_across_nodes_sqlite, forgot_and_reset_password_through_the_pages_across_nodes_redis);

#[tokio::test]
async fn mail_link_pages_refuse_missing_malformed_unknown_and_wrong_purpose_tokens() {
    let d = Deployment::single(Backend::Sqlite, None).await;
    let node = d.node(0);
    let browser = Device::new(FIREFOX_LINUX, "198.51.100.63");
    // Registration through the page sends the verification mail.
    register(&browser, node, ALICE).await;
    let verify = d.mail.token(ALICE, "verify_email");
    let csrf = open(&browser, node, "/account/security").await;

    let made_up = "A".repeat(43);
    for page in ["/reset-password", "/verify-email", "/confirm-email"] {
        for query in [
            "".to_owned(),
            "?token=".to_owned(),
            "?token=%00%ff%3Cscript%3E".to_owned(),
            "?token=short".to_owned(),
            format!("?token={}", "x".repeat(5000)),
            "?token=a&token=b".to_owned(),
        ] {
            let reply = browser.get(node, &format!("{page}{query}")).await;
            assert_link_refused(&reply, &format!("GET {page}{query}"));
        }
        // A well-formed token nobody issued, and nothing at all.
        for token in [made_up.as_str(), "", "!!!"] {
            let reply = redeem(&browser, node, page, token, Some(NEW_PASSWORD), Some(&csrf)).await;
            assert_link_refused(&reply, &format!("POST {page} {token:?}"));
        }
    }
    // A verification token is no reset token (nor an address-change one), and trying does not
    // spend it.
    for page in ["/reset-password", "/confirm-email"] {
        let reply = redeem(
            &browser,
            node,
            page,
            &verify,
            Some(NEW_PASSWORD),
            Some(&csrf),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{page}: {}",
            reply.body
        );
    }
    let reply = redeem(&browser, node, "/verify-email", &verify, None, Some(&csrf)).await;
    reply.assert_shows(StatusCode::OK, "Address confirmed");
}

#[tokio::test]
async fn forgot_password_page_is_throttled_with_retry_after() {
    let setup = Setup {
        throttle: true,
        ..Setup::default()
    };
    let d = Deployment::start_with(Backend::Sqlite, &["solo"], None, setup).await;
    let node = d.node(0);
    let browser = Device::new(FIREFOX_LINUX, "198.51.100.64");
    let csrf = open(&browser, node, "/forgot-password").await;
    let mut last = None;
    for _ in 0..6 {
        let reply = ask_for_reset(&browser, node, ALICE, &csrf).await;
        if reply.status != StatusCode::OK {
            last = Some(reply);
            break;
        }
    }
    let reply = last.expect("throttled within 6 requests");
    reply.assert_status(StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0);
    assert!(reply.body.contains("role=\"alert\""), "{}", reply.body);
    // A malformed address is shown again, not thrown away.
    let reply = ask_for_reset(&browser, node, "not an address", &csrf).await;
    assert_ne!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(
        reply.body.contains("value=\"not an address\""),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn security_page_verifies_resends_and_changes_the_address() {
    let d = Deployment::single(Backend::Sqlite, None).await;
    let node = d.node(0);
    let browser = Device::new(FIREFOX_LINUX, "198.51.100.65");
    // Registration through the page sends the verification mail.
    register(&browser, node, ALICE).await;
    let page = browser.get(node, "/account/security").await;
    page.assert_shows(StatusCode::OK, "not verified");
    assert!(page.body.contains("action=\"/account/security/password\""));
    // The two-step sign-in section is on the same page, not behind a link (just signed in:
    // its forms are open). This node has no passkeys, so no passkey section.
    assert!(page.body.contains("id=\"two-factor\""), "{}", page.body);
    assert!(page
        .body
        .contains("action=\"/account/security/totp/setup\""));
    assert!(!page.body.contains("id=\"passkey-register\""));
    let csrf = page.form_csrf();

    // Resend: a second verification mail; the first link still works too.
    let first = d.mail.link(ALICE, "verify_email");
    let reply = browser
        .form(node, "/account/security/verification", &[("_csrf", &csrf)])
        .await;
    reply.assert_shows(StatusCode::OK, "We sent a new verification link");
    assert_eq!(d.mail.kinds_to(ALICE), ["verify_email", "verify_email"]);
    let reply = browser
        .form(node, "/account/security/verification", &[])
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "no _csrf: {}",
        reply.body
    );

    // The link shows a button; the button confirms.
    let form = browser.get(node, &first).await;
    assert!(form.body.contains("Confirm address"), "{}", form.body);
    let token = first.split_once("token=").unwrap().1;
    let form_csrf = form.form_csrf();
    let reply = redeem(
        &browser,
        node,
        "/verify-email",
        token,
        None,
        Some(&form_csrf),
    )
    .await;
    reply.assert_status(StatusCode::OK);
    let page = browser.get(node, "/account/security").await;
    assert!(page.body.contains(">verified<"), "{}", page.body);
    assert!(!page.body.contains("/account/security/verification"));

    // Address change: refused for a taken or malformed address, then mailed to the new one.
    d.add_user("bob@example.com", false).await;
    for (taken, status) in [
        ("bob@example.com", StatusCode::CONFLICT),
        ("not-an-address", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let reply = change_address(&browser, node, taken, &csrf).await;
        assert_eq!(reply.status, status, "{taken}: {}", reply.body);
        assert!(reply.body.contains("role=\"alert\""), "{}", reply.body);
    }
    let reply = change_address(&browser, node, "alice@new.example", &csrf).await;
    reply.assert_status(StatusCode::OK);
    assert!(reply
        .body
        .contains("We sent a confirmation link to alice@new.example"));
    let link = d.mail.link("alice@new.example", "confirm_email_change");
    let form = browser.get(node, &link).await;
    form.assert_status(StatusCode::OK);
    let token = d.mail.token("alice@new.example", "confirm_email_change");
    let form_csrf = form.form_csrf();
    let reply = redeem(
        &browser,
        node,
        "/confirm-email",
        &token,
        None,
        Some(&form_csrf),
    )
    .await;
    reply.assert_shows(StatusCode::OK, "alice@new.example");
    assert!(d.mail.kinds_to(ALICE).contains(&"email_changed"));
    let page = browser.get(node, "/account/security").await;
    assert!(
        page.body.contains("<strong>alice@new.example</strong>"),
        "{}",
        page.body
    );

    // A second change whose address is taken meanwhile: the confirm page says so (409).
    let reply = change_address(&browser, node, "carol@example.com", &csrf).await;
    reply.assert_status(StatusCode::OK);
    d.add_user("carol@example.com", false).await;
    let token = d.mail.token("carol@example.com", "confirm_email_change");
    let reply = redeem(&browser, node, "/confirm-email", &token, None, Some(&csrf)).await;
    reply.assert_shows(StatusCode::CONFLICT, "Address taken");

    // The old address of the password form still works.
    let page = browser.get(node, "/account/password").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Change password"), "{}", page.body);
}

#[tokio::test]
async fn sign_in_page_tells_a_disabled_or_unverified_account_only_with_the_right_password() {
    let setup = Setup {
        require_verified_email: true,
        ..Setup::default()
    };
    let d = Deployment::start_with(Backend::Sqlite, &["solo"], None, setup).await;
    let node = d.node(0);
    let alice = d.add_user(ALICE, false).await;
    let browser = Device::new(FIREFOX_LINUX, "198.51.100.66");
    let csrf = open(&browser, node, "/login").await;
    let sign_in_with = |password: &'static str| sign_in(&browser, node, ALICE, password, &csrf);

    let reply = sign_in_with(PASSWORD).await;
    reply.assert_shows(StatusCode::FORBIDDEN, "confirm your e-mail address");
    assert!(
        reply.body.contains("new verification mail"),
        "{}",
        reply.body
    );
    assert_eq!(d.mail.kinds_to(ALICE), ["verify_email"]);
    let reply = sign_in_with("a wrong password, surely").await;
    reply.assert_status(StatusCode::UNAUTHORIZED);
    assert!(
        !reply.body.contains("confirm your e-mail"),
        "{}",
        reply.body
    );

    node.accounts().disable(&alice.id).await.unwrap();
    let reply = sign_in_with(PASSWORD).await;
    reply.assert_shows(StatusCode::FORBIDDEN, "This account is disabled");
    let reply = sign_in_with("a wrong password, surely").await;
    reply.assert_status(StatusCode::UNAUTHORIZED);
    assert!(!reply.body.contains("disabled"), "{}", reply.body);
}

#[tokio::test]
async fn page_forms_refuse_huge_bodies_wrong_types_and_doubled_tokens_with_clear_pages() {
    let d = Deployment::single(Backend::Sqlite, None).await;
    let node = d.node(0);
    let browser = Device::new(FIREFOX_LINUX, "198.51.100.67");
    let csrf = open(&browser, node, "/forgot-password").await;
    let huge = "e".repeat(100 * 1024);
    let reply = ask_for_reset(&browser, node, &huge, &csrf).await;
    reply.assert_shows(StatusCode::PAYLOAD_TOO_LARGE, "<h1>Too large</h1>");
    let reply = browser
        .post_raw(node, "/reset-password", "text/plain", "token=x&password=y")
        .await;
    reply.assert_status(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let doubled = browser
        .form(
            node,
            "/forgot-password",
            &[("email", ALICE), ("_csrf", &csrf), ("_csrf", &csrf)],
        )
        .await;
    doubled.assert_status(StatusCode::BAD_REQUEST);
    let reply = ask_for_reset(&browser, node, ALICE, "forged").await;
    reply.assert_shows(StatusCode::BAD_REQUEST, "Form expired");
    assert!(d.mail.kinds_to(ALICE).is_empty());
}

#[tokio::test]
async fn address_change_on_the_security_page_needs_a_recent_sign_in() {
    let d = Deployment::single(Backend::Sqlite, None).await;
    let node = d.node(0);
    let browser = Device::new(FIREFOX_LINUX, "198.51.100.68");
    register(&browser, node, ALICE).await;
    let csrf = open(&browser, node, "/account/security").await;
    d.advance(chrono::Duration::minutes(11));
    let reply = change_address(&browser, node, "alice@new.example", &csrf).await;
    reply.assert_shows(StatusCode::FORBIDDEN, "recent sign-in");
    assert!(
        reply.body.contains("value=\"alice@new.example\""),
        "{}",
        reply.body
    );
    assert!(d.mail.kinds_to("alice@new.example").is_empty());
}
