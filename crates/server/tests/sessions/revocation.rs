//! Revocation on a fleet: two nodes on shared stores. Whatever node signs a device out, the
//! device is refused by every node on its very next request.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::*;

async fn two_nodes(backend: Backend) {
    let d = Deployment::start(backend, &["node-a", "node-b"], None).await;
    let (a, b) = (d.node(0), d.node(1));
    let [laptop, phone, desktop, bob] = alice_and_bob_signed_in(&d, 10).await;
    for device in [&laptop, &phone, &desktop, &bob] {
        accepted_everywhere(&d, device, "fresh sign-in").await;
    }
    let me = laptop.get(b, "/api/v1/me").await;
    assert_eq!(me.json()["node"], "node-b");
    assert_eq!(me.node(), "node-b");
    let listed = laptop.sessions(b).await;
    assert_eq!(listed.len(), 3);
    for (device, node) in [
        (&laptop, "node-a"),
        (&phone, "node-b"),
        (&desktop, "node-a"),
    ] {
        let entry = listed
            .iter()
            .find(|s| s["id"].as_str() == Some(&device.id()))
            .unwrap();
        assert_eq!(entry["node"], node, "the node that signed the device in");
    }

    // Without the CSRF header nothing happens.
    let refused = laptop
        .api_without_csrf(a, Method::POST, "/api/v1/sessions/revoke-others", None)
        .await;
    refused.assert_status(StatusCode::FORBIDDEN);
    accepted_everywhere(&d, &phone, "after a refused revoke-others").await;

    // Sign out everywhere else, through node A (with a token node A issued).
    let reply = laptop
        .api(a, Method::POST, "/api/v1/sessions/revoke-others", None)
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.json(), json!({"revoked": 2}));
    refused_everywhere(&d, &phone, "phone after revoke-others").await;
    refused_everywhere(&d, &desktop, "desktop after revoke-others").await;
    accepted_everywhere(&d, &laptop, "the device that asked").await;
    accepted_everywhere(&d, &bob, "another user").await;
    for node in &d.nodes {
        let listed = laptop.sessions(node).await;
        assert_eq!(ids(&listed), vec![laptop.id()], "on {}", node.name);
        assert_eq!(listed[0]["current"], true);
    }

    // One device, revoked on node B, is refused by node A; a token from node A works on B.
    phone.login(a, "alice@example.com").await;
    desktop.login(b, "alice@example.com").await;
    let path = format!("/api/v1/sessions/{}", phone.id());
    let refused = laptop
        .api_without_csrf(b, Method::DELETE, &path, None)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let reply = laptop.api(b, Method::DELETE, &path, None).await;
    reply.assert_status(StatusCode::NO_CONTENT);
    refused_everywhere(&d, &phone, "phone after DELETE on node B").await;
    accepted_everywhere(&d, &desktop, "desktop").await;
    let again = laptop.api(a, Method::DELETE, &path, None).await;
    again.assert_status(StatusCode::NOT_FOUND);

    // Another user's session cannot be reached by id.
    let bobs = format!("/api/v1/sessions/{}", bob.id());
    let reply = laptop.api(a, Method::DELETE, &bobs, None).await;
    reply.assert_status(StatusCode::NOT_FOUND);
    accepted_everywhere(&d, &bob, "bob after alice tried to revoke him").await;
    let garbage = laptop
        .api(a, Method::DELETE, "/api/v1/sessions/not-a-session-id", None)
        .await;
    assert_eq!(garbage.status, StatusCode::NOT_FOUND);

    // The pages do the same: one device through node A's page, the rest through node B's.
    let page = laptop.get(a, "/account/sessions").await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = page.form_csrf();
    let action = format!("/account/sessions/{}/revoke", desktop.id());
    let no_token = laptop.form(a, &action, &[]).await;
    assert_eq!(no_token.status, StatusCode::BAD_REQUEST);
    accepted_everywhere(&d, &desktop, "after a form without _csrf").await;
    let reply = laptop.form(a, &action, &[("_csrf", &csrf)]).await;
    reply.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/account/sessions");
    refused_everywhere(&d, &desktop, "desktop after the page's sign-out").await;

    phone.login(a, "alice@example.com").await;
    desktop.login(b, "alice@example.com").await;
    let page = laptop.get(b, "/account/sessions").await;
    let reply = laptop
        .form(
            b,
            "/account/sessions/revoke-others",
            &[("_csrf", &page.form_csrf())],
        )
        .await;
    reply.assert_status(StatusCode::SEE_OTHER);
    refused_everywhere(&d, &phone, "phone after the page's revoke-others").await;
    refused_everywhere(&d, &desktop, "desktop after the page's revoke-others").await;
    accepted_everywhere(&d, &laptop, "laptop").await;
    accepted_everywhere(&d, &bob, "bob").await;
    assert_eq!(laptop.sessions(a).await.len(), 1);

    // A device that deletes its own session is signed out, on every node.
    desktop.login(a, "alice@example.com").await;
    let own = desktop.session_cookie().unwrap();
    let path = format!("/api/v1/sessions/{}", desktop.id());
    let reply = desktop.api(b, Method::DELETE, &path, None).await;
    reply.assert_status(StatusCode::NO_CONTENT);
    assert!(desktop.session_cookie().is_none(), "its cookie is cleared");
    desktop.set_session_cookie(&own);
    refused_everywhere(&d, &desktop, "desktop after deleting itself").await;

    // Signing out ends the session on the server: the old cookie is refused by both nodes.
    let cookie = laptop.session_cookie().unwrap();
    let reply = laptop.api(b, Method::POST, "/api/v1/logout", None).await;
    reply.assert_status(StatusCode::NO_CONTENT);
    assert!(laptop.session_cookie().is_none());
    laptop.set_session_cookie(&cookie);
    refused_everywhere(&d, &laptop, "laptop after logout").await;
}

// Two nodes on one SQLite file (the embedded store) behave the same.
on_each_backend!(two_nodes: revocation_on_two_nodes_sqlite, revocation_on_two_nodes_redis);
