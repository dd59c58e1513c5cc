//! Admin counts: `GET /api/v1/admin/stats` and the `/admin` page.

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::*;

async fn stats(device: &Device, node: &Node) -> Value {
    let reply = device.get(node, "/api/v1/admin/stats").await;
    reply.assert_status(StatusCode::OK);
    reply.json()
}

async fn stats_of(device: &Device, node: &Node, email: &str) -> Value {
    let path = format!(
        "/api/v1/admin/stats?email={}",
        email.replace('@', "%40").replace(' ', "%20")
    );
    let reply = device.get(node, &path).await;
    reply.assert_status(StatusCode::OK);
    reply.json()
}

async fn admin_counts(backend: Backend) {
    let d = Deployment::single(backend, None).await;
    let node = d.node(0);
    d.add_user("root@example.com", true).await;
    let anonymous = Device::new(FIREFOX_LINUX, "192.0.2.1");
    for email in ["alice@example.com", "bob@example.com"] {
        let reply = anonymous
            .send_json(
                node,
                "/api/v1/register",
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        reply.assert_status(StatusCode::CREATED);
    }
    let reply = anonymous.get(node, "/api/v1/admin/stats").await;
    reply.assert_status(StatusCode::UNAUTHORIZED);
    let reply = anonymous.get(node, "/admin").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/login");

    let admin = Device::new(FIREFOX_LINUX, "198.51.100.50");
    let login = admin.login(node, "root@example.com").await;
    assert_eq!(login["user"]["email"], "root@example.com");
    assert_eq!(
        stats(&admin, node).await,
        json!({"users": 3, "active_sessions": 1, "signed_in_users": 1})
    );

    let alice_laptop = Device::new(FIREFOX_LINUX, "198.51.100.51");
    let alice_phone = Device::new(SAFARI_IPHONE, "198.51.100.52");
    let bob = Device::new(CHROME_WINDOWS, "198.51.100.53");
    alice_laptop.login(node, "alice@example.com").await;
    alice_phone.login(node, "alice@example.com").await;
    bob.login(node, "bob@example.com").await;
    assert_eq!(
        stats(&admin, node).await,
        json!({"users": 3, "active_sessions": 4, "signed_in_users": 3})
    );

    // Per user: the API with ?email= and the page's lookup form.
    let alice = stats_of(&admin, node, "alice@example.com").await;
    assert_eq!(alice["user"]["active_sessions"], 2, "{alice}");
    assert_eq!(alice["user"]["email"], "alice@example.com");
    assert_eq!(alice["active_sessions"], 4);
    let upper = stats_of(&admin, node, "  Bob@Example.com ").await;
    assert_eq!(upper["user"]["active_sessions"], 1, "{upper}");
    let reply = admin
        .get(node, "/api/v1/admin/stats?email=nobody%40example.com")
        .await;
    reply.assert_status(StatusCode::NOT_FOUND);
    assert_eq!(reply.json()["error"]["code"], "not_found", "{}", reply.body);
    // A query that cannot be read (the field twice) is a 400 in the contract's shape, and a
    // clear 400 page on /admin.
    let reply = admin
        .get(
            node,
            "/api/v1/admin/stats?email=a%40example.com&email=b%40example.com",
        )
        .await;
    reply.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"]["code"], "malformed", "{}", reply.body);
    let page = admin.get(node, "/admin?email=a&email=b").await;
    page.assert_status(StatusCode::BAD_REQUEST);
    let page = admin.get(node, "/admin?email=alice%40example.com").await;
    page.assert_status(StatusCode::OK);
    assert!(
        page.body.contains(
            "<strong>alice@example.com</strong>: <span class=\"num\">2</span> active sessions"
        ),
        "{}",
        page.body
    );
    let page = admin.get(node, "/admin?email=nobody%40example.com").await;
    page.assert_shows(StatusCode::OK, "There is no user nobody@example.com.");
    let reply = alice_laptop
        .get(node, "/api/v1/admin/stats?email=bob%40example.com")
        .await;
    reply.assert_status(StatusCode::FORBIDDEN);

    // Not for everyone.
    let reply = alice_laptop.get(node, "/api/v1/admin/stats").await;
    reply.assert_status(StatusCode::FORBIDDEN);
    let reply = alice_laptop.get(node, "/admin").await;
    reply.assert_status(StatusCode::FORBIDDEN);

    // Bob signs out; alice signs one device out.
    let reply = bob.api(node, Method::POST, "/api/v1/logout", None).await;
    reply.assert_status(StatusCode::NO_CONTENT);
    let path = format!("/api/v1/sessions/{}", alice_phone.id());
    let reply = alice_laptop.api(node, Method::DELETE, &path, None).await;
    reply.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(
        stats(&admin, node).await,
        json!({"users": 3, "active_sessions": 2, "signed_in_users": 2})
    );

    // The page: the same numbers and the key ring.
    let page = admin.get(node, "/admin").await;
    page.assert_status(StatusCode::OK);
    let html = &page.body;
    for (n, what) in [(3, "users"), (2, "active sessions"), (2, "signed-in users")] {
        let shown = format!("<span class=\"num\">{n}</span> {what}");
        assert!(html.contains(&shown), "{shown}: {html}");
    }
    let keyring = node.state.ringfence.keyring();
    let default = keyring.default_key_id().unwrap().to_string();
    assert!(html.contains(&default), "default key {default}: {html}");
    assert_eq!(html.matches(">default<").count(), 1, "{html}");
    assert_eq!(
        html.matches("<tr").count() - 1,
        keyring.keys().len(),
        "one row per key: {html}"
    );
    assert!(html.contains(&keyring.describe_store()), "{html}");

    // Time passes: the admin keeps working, alice goes idle. Her session expires without
    // anyone signing it out, and the counts follow (the admin's own renewals must move it
    // forward in the counts too).
    for _ in 0..7 {
        d.advance(Duration::minutes(5));
        let now = stats(&admin, node).await;
        assert_eq!(now["users"], 3);
    }
    assert_eq!(
        stats(&admin, node).await,
        json!({"users": 3, "active_sessions": 1, "signed_in_users": 1})
    );
    let page = admin.get(node, "/admin").await;
    assert!(page
        .body
        .contains("<span class=\"num\">1</span> active sessions"));
    assert_eq!(alice_laptop.me(node).await, StatusCode::UNAUTHORIZED);
    alice_laptop.login(node, "alice@example.com").await;
    assert_eq!(
        stats(&admin, node).await,
        json!({"users": 3, "active_sessions": 2, "signed_in_users": 2})
    );

    // The page's "sign a user out everywhere" form: without its token refused, with it done.
    let page = admin.get(node, "/admin").await;
    let reply = admin
        .form(
            node,
            "/admin/revoke-user",
            &[("email", "alice@example.com")],
        )
        .await;
    reply.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(alice_laptop.me(node).await, StatusCode::OK);
    let reply = admin
        .form(
            node,
            "/admin/revoke-user",
            &[("email", "alice@example.com"), ("_csrf", &page.form_csrf())],
        )
        .await;
    reply.assert_status(StatusCode::OK);
    assert!(
        reply
            .body
            .contains("Signed alice@example.com out of 1 session."),
        "{}",
        reply.body
    );
    assert_eq!(alice_laptop.me(node).await, StatusCode::UNAUTHORIZED);
    let reply = admin
        .form(
            node,
            "/admin/revoke-user",
            &[
                ("email", "nobody@example.com"),
                ("_csrf", &page.form_csrf()),
            ],
        )
        .await;
    assert!(
        reply.body.contains("There is no user nobody@example.com."),
        "{}",
        reply.body
    );
    alice_laptop.login(node, "alice@example.com").await;

    // Past the admin's absolute timeout everything is over, whatever the activity.
    for _ in 0..=(12 * 60 / 5) {
        d.advance(Duration::minutes(5));
        let _ = admin.probe(node).await;
        let _ = alice_laptop.probe(node).await;
    }
    let counts = node.sessions().counts().await.unwrap();
    assert_eq!(counts.active_sessions, 0);
    assert_eq!(counts.signed_in_users, 0);
}

on_each_backend!(admin_counts: admin_counts_sqlite, admin_counts_redis);

/// Finding 11 of issue 13: a signed-in non-administrator gets `403` from every admin route
/// whatever the body or query, not the `400`/`415`/`422` that would tell them what the route
/// accepts. The caller is checked before anything of the request is read.
#[tokio::test]
async fn finding_11_admin_routes_check_the_caller_first() {
    let d = Deployment::single(Backend::Sqlite, None).await;
    let node = d.node(0);
    d.add_user("mallory@example.com", false).await;
    let mallory = Device::new(FIREFOX_LINUX, "203.0.113.7");
    mallory.login(node, "mallory@example.com").await;
    let page = mallory.get(node, "/").await;
    let page_csrf = page.form_csrf();

    // Bodies every body extractor refuses in its own way: wrong content type, not JSON, JSON of
    // the wrong shape, a form of the wrong shape.
    let bodies: [(&str, &str); 5] = [
        ("text/plain", "garbage"),
        ("application/json", "{not json"),
        ("application/json", "[1, 2, 3]"),
        ("application/x-www-form-urlencoded", "%zz=%zz&&=="),
        ("application/octet-stream", "\u{0}\u{1}\u{2}"),
    ];
    // The account-control routes too, on a user that exists (mallory's own id would do; an
    // administrator's makes the refusal matter).
    let admin_id = d.add_user("root@example.com", true).await.id;
    let user_routes = [
        "/api/v1/admin/users/{id}/disable",
        "/api/v1/admin/users/{id}/enable",
        "/api/v1/admin/users/{id}/password",
        "/api/v1/admin/users/{id}/password-reset",
        "/admin/users/{id}/disable",
        "/admin/users/{id}/enable",
        "/admin/users/{id}/delete",
        "/admin/users/{id}/password",
        "/admin/users/{id}/password-reset",
        "/admin/users/{id}/sessions/AAAAAAAAAAAAAAAAAAAAAA/revoke",
    ]
    .map(|path| path.replace("{id}", &admin_id));
    let paths = ["/api/v1/admin/revoke-user", "/admin/revoke-user"]
        .into_iter()
        .chain(user_routes.iter().map(String::as_str));
    for path in paths {
        for (content_type, bytes) in bodies {
            let reply = mallory.post_raw(node, path, content_type, bytes).await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "POST {path} ({content_type}) {bytes:?}: {}",
                reply.body
            );
        }
    }
    // A well-formed request is refused just the same, with the antiforgery token it needs.
    let reply = mallory
        .api(
            node,
            Method::POST,
            "/api/v1/admin/revoke-user",
            Some(json!({"email": "mallory@example.com"})),
        )
        .await;
    reply.assert_status(StatusCode::FORBIDDEN);
    assert_eq!(reply.json()["error"]["code"], "forbidden");
    let reply = mallory
        .form(
            node,
            "/admin/revoke-user",
            &[("email", "mallory@example.com"), ("_csrf", &page_csrf)],
        )
        .await;
    reply.assert_status(StatusCode::FORBIDDEN);
    assert_eq!(
        mallory.me(node).await,
        StatusCode::OK,
        "nothing was revoked"
    );
    // The admin reads: an unreadable query (the field twice) is 403 too.
    for path in [
        "/api/v1/admin/stats?email=a&email=b",
        "/admin?email=a&email=b",
        "/api/v1/admin/stats",
        "/admin",
    ] {
        let reply = mallory.get(node, path).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "GET {path}: {}",
            reply.body
        );
    }

    // Signed out, the API says 401 and the pages send the browser to sign in, before any body.
    let anonymous = Device::new(FIREFOX_LINUX, "203.0.113.8");
    let reply = anonymous
        .post_raw(node, "/api/v1/admin/revoke-user", "text/plain", "garbage")
        .await;
    reply.assert_status(StatusCode::UNAUTHORIZED);
    let reply = anonymous
        .post_raw(node, "/admin/revoke-user", "text/plain", "garbage")
        .await;
    reply.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/login");
}
