//! A password change signs out every other session of the user, on every node, and keeps the
//! one that made it.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::*;

/// Which password signs in now: `(old works, new works)`.
async fn passwords(d: &Deployment, email: &str) -> (bool, bool) {
    let fresh = Device::new(CHROME_ANDROID, "192.0.2.50");
    let old = fresh.login_with(d.node(0), email, PASSWORD).await.status;
    let new = fresh
        .login_with(d.node(1), email, NEW_PASSWORD)
        .await
        .status;
    for status in [old, new] {
        assert!(
            status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
            "{status}"
        );
    }
    // Leave no session behind: the callers count the user's sessions.
    if fresh.session_cookie().is_some() {
        let reply = fresh
            .api(d.node(0), Method::POST, "/api/v1/logout", None)
            .await;
        reply.assert_status(StatusCode::NO_CONTENT);
    }
    (old == StatusCode::OK, new == StatusCode::OK)
}

async fn change_via_api(backend: Backend) {
    let d = Deployment::start(backend, &["node-a", "node-b"], None).await;
    let (a, b) = (d.node(0), d.node(1));
    let [laptop, phone, desktop, bob] = alice_and_bob_signed_in(&d, 20).await;

    let change = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
    // Refusals change nothing: no CSRF header, wrong current password, weak new password.
    let reply = laptop
        .api_without_csrf(b, Method::POST, "/api/v1/password", Some(change.clone()))
        .await;
    reply.assert_status(StatusCode::FORBIDDEN);
    let wrong = json!({"current_password": "not my password at all", "new_password": NEW_PASSWORD});
    let reply = laptop
        .api(b, Method::POST, "/api/v1/password", Some(wrong))
        .await;
    reply.assert_status(StatusCode::FORBIDDEN);
    let weak = json!({"current_password": PASSWORD, "new_password": "password"});
    let reply = laptop
        .api(b, Method::POST, "/api/v1/password", Some(weak))
        .await;
    reply.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    accepted_everywhere(&d, &phone, "phone").await;
    accepted_everywhere(&d, &desktop, "desktop").await;
    assert_eq!(passwords(&d, "alice@example.com").await, (true, false));

    // The change itself, on node B with the token node A issued at sign-in.
    let reply = laptop
        .api(b, Method::POST, "/api/v1/password", Some(change))
        .await;
    reply.assert_status(StatusCode::NO_CONTENT);
    refused_everywhere(&d, &phone, "phone").await;
    refused_everywhere(&d, &desktop, "desktop").await;
    accepted_everywhere(&d, &laptop, "laptop").await;
    accepted_everywhere(&d, &bob, "bob").await;
    assert_eq!(ids(&laptop.sessions(a).await), vec![laptop.id()]);
    assert_eq!(passwords(&d, "alice@example.com").await, (false, true));
    // The laptop still writes with the token it had.
    let reply = laptop
        .api(a, Method::POST, "/api/v1/sessions/revoke-others", None)
        .await;
    reply.assert_status(StatusCode::OK);
}

async fn change_via_page(backend: Backend) {
    let d = Deployment::start(backend, &["node-a", "node-b"], None).await;
    let (a, b) = (d.node(0), d.node(1));
    d.add_user("alice@example.com", false).await;
    let laptop = Device::new(FIREFOX_LINUX, "198.51.100.30");
    let phone = Device::new(SAFARI_IPHONE, "198.51.100.31");
    let desktop = Device::new(CHROME_WINDOWS, "198.51.100.32");
    laptop.login(a, "alice@example.com").await;
    phone.login(b, "alice@example.com").await;
    desktop.login(b, "alice@example.com").await;

    let form = laptop.get(a, "/account/password").await;
    form.assert_status(StatusCode::OK);
    let csrf = form.form_csrf();
    let fields = [
        ("current_password", PASSWORD),
        ("new_password", NEW_PASSWORD),
    ];
    let reply = laptop.form(b, "/account/password", &fields).await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "no _csrf: {}",
        reply.body
    );
    let reply = laptop
        .form(
            b,
            "/account/password",
            &[
                ("current_password", "not my password at all"),
                ("new_password", NEW_PASSWORD),
                ("_csrf", &csrf),
            ],
        )
        .await;
    reply.assert_shows(StatusCode::FORBIDDEN, "role=\"alert\"");
    accepted_everywhere(&d, &phone, "phone").await;
    assert_eq!(passwords(&d, "alice@example.com").await, (true, false));

    let mut with_csrf = fields.to_vec();
    with_csrf.push(("_csrf", &csrf));
    let reply = laptop.form(b, "/account/password", &with_csrf).await;
    reply.assert_shows(StatusCode::OK, "2 other devices were signed out");
    refused_everywhere(&d, &phone, "phone").await;
    refused_everywhere(&d, &desktop, "desktop").await;
    accepted_everywhere(&d, &laptop, "laptop").await;
    assert_eq!(passwords(&d, "alice@example.com").await, (false, true));
    let page = laptop.get(b, "/account/sessions").await;
    assert_eq!(page.body.matches("<li class=\"device").count(), 1);
}

on_each_backend!(change_via_api: password_change_api_sqlite, password_change_api_redis);

on_each_backend!(change_via_page: password_change_page_sqlite, password_change_page_redis);
