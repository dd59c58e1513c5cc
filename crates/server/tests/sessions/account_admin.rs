//! The admin page's control of one account (issue 14): find by e-mail, status and sessions,
//! disable, enable, set a password, mail a reset link, delete after a confirm step.

use reqwest::StatusCode;

use crate::harness::*;

const ALICE: &str = "alice@example.com";

/// `/admin/users/{id}/{action}` of the one account the page shows.
fn action_path(page: &str, action: &str) -> String {
    let marker = "action=\"/admin/users/";
    let start = page.find(marker).expect("an account on the page") + marker.len();
    let id = &page[start..start + 36];
    format!("/admin/users/{id}/{action}")
}

async fn admin_controls(backend: Backend) {
    let d = Deployment::start(backend, &["node-a", "node-b"], None).await;
    let (a, b) = (d.node(0), d.node(1));
    d.add_user("root@example.com", true).await;
    d.add_user(ALICE, false).await;
    let admin = Device::new(FIREFOX_LINUX, "198.51.100.70");
    admin.login(a, "root@example.com").await;
    let laptop = Device::new(CHROME_WINDOWS, "198.51.100.71");
    let phone = Device::new(SAFARI_IPHONE, "198.51.100.72");
    laptop.login(a, ALICE).await;
    phone.login(b, ALICE).await;

    let page = admin.get(a, "/admin?email=alice%40example.com").await;
    page.assert_status(StatusCode::OK);
    assert!(page
        .body
        .contains("<span class=\"num\">2</span> active sessions"));
    assert!(page.body.contains(">not verified<"), "{}", page.body);
    assert!(page.body.contains(">enabled<"), "{}", page.body);
    let csrf = page.form_csrf();
    let disable = action_path(&page.body, "disable");

    // Not an admin: 403 whatever is posted, before the form is read. No token: 400.
    let reply = laptop.form(a, &disable, &[("_csrf", &csrf)]).await;
    reply.assert_status(StatusCode::FORBIDDEN);
    let reply = laptop
        .post_raw(
            a,
            &disable.replace("disable", "delete"),
            "text/plain",
            "garbage",
        )
        .await;
    reply.assert_status(StatusCode::FORBIDDEN);
    let reply = admin.form(b, &disable, &[]).await;
    reply.assert_shows(StatusCode::BAD_REQUEST, "Form expired");
    assert_eq!(laptop.probe(b).await, StatusCode::OK);

    // Disable (on the other node): every session ends, the right password is refused.
    let reply = admin.form(b, &disable, &[("_csrf", &csrf)]).await;
    reply.assert_status(StatusCode::OK);
    assert!(reply
        .body
        .contains("Disabled alice@example.com; 2 sessions ended."));
    assert!(reply.body.contains(">disabled<"), "{}", reply.body);
    assert_eq!(laptop.probe(a).await, StatusCode::UNAUTHORIZED);
    assert_eq!(phone.probe(b).await, StatusCode::UNAUTHORIZED);
    let reply = laptop.login_with(a, ALICE, PASSWORD).await;
    reply.assert_status(StatusCode::FORBIDDEN);

    // Enable: the same password works again.
    let reply = admin
        .form(
            a,
            &action_path(&reply_page(&admin, a).await, "enable"),
            &[("_csrf", &csrf)],
        )
        .await;
    reply.assert_shows(StatusCode::OK, "Enabled alice@example.com.");
    laptop.login(a, ALICE).await;

    // Set a password: a weak one is refused with the reason; a good one ends her sessions.
    let set = action_path(&reply.body, "password");
    let reply = admin
        .form(a, &set, &[("password", "short"), ("_csrf", &csrf)])
        .await;
    reply.assert_shows(StatusCode::UNPROCESSABLE_ENTITY, "role=\"alert\"");
    let reply = admin
        .form(a, &set, &[("password", NEW_PASSWORD), ("_csrf", &csrf)])
        .await;
    reply.assert_status(StatusCode::OK);
    assert!(reply
        .body
        .contains("Password of alice@example.com set; 1 session ended."));
    assert_eq!(laptop.probe(a).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        laptop.login_with(a, ALICE, PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        laptop.login_with(a, ALICE, NEW_PASSWORD).await.status,
        StatusCode::OK
    );
    assert_eq!(d.mail.kinds_to(ALICE), ["password_changed"]);

    // Mail a reset link.
    let reply = admin
        .form(
            a,
            &action_path(&reply.body, "password-reset"),
            &[("_csrf", &csrf)],
        )
        .await;
    reply.assert_shows(StatusCode::OK, "A reset link is on its way");
    assert_eq!(
        d.mail.kinds_to(ALICE),
        ["password_changed", "reset_password"]
    );

    // Delete: the first post only asks; the confirmed one removes account and sessions.
    let delete = action_path(&reply.body, "delete");
    let reply = admin.form(b, &delete, &[("_csrf", &csrf)]).await;
    reply.assert_shows(StatusCode::OK, "Delete this account?");
    assert!(reply.body.contains("name=\"confirm\" value=\"yes\""));
    assert_eq!(laptop.probe(a).await, StatusCode::OK);
    let reply = admin
        .form(b, &delete, &[("confirm", "yes"), ("_csrf", &csrf)])
        .await;
    reply.assert_status(StatusCode::OK);
    assert!(reply
        .body
        .contains("Deleted alice@example.com; 1 session ended."));
    assert_eq!(laptop.probe(a).await, StatusCode::UNAUTHORIZED);
    assert!(a.accounts().user_by_email(ALICE).await.unwrap().is_none());
    let reply = admin
        .form(a, &delete, &[("confirm", "yes"), ("_csrf", &csrf)])
        .await;
    reply.assert_status(StatusCode::NOT_FOUND);
    let reply = admin
        .form(a, "/admin/users/not-a-user/disable", &[("_csrf", &csrf)])
        .await;
    reply.assert_status(StatusCode::NOT_FOUND);

    // An administrator cannot delete their own account from the page.
    let page = admin.get(a, "/admin?email=root%40example.com").await;
    let reply = admin
        .form(
            a,
            &action_path(&page.body, "delete"),
            &[("confirm", "yes"), ("_csrf", &csrf)],
        )
        .await;
    assert!(
        reply
            .body
            .contains("You cannot delete your own account here."),
        "{}",
        reply.body
    );
    assert!(a
        .accounts()
        .user_by_email("root@example.com")
        .await
        .unwrap()
        .is_some());
}

/// The admin page with alice looked up.
async fn reply_page(admin: &Device, node: &Node) -> String {
    admin
        .get(node, "/admin?email=alice%40example.com")
        .await
        .body
}

on_each_backend!(admin_controls: admin_page_finds_disables_enables_sets_password_resets_and_deletes_sqlite, admin_page_finds_disables_enables_sets_password_resets_and_deletes_redis);

/// The revoke path of the session listed with `ip` on the admin page.
fn session_revoke_path(page: &str, ip: &str) -> String {
    let row = page
        .find(ip)
        .unwrap_or_else(|| panic!("{ip} on the page: {page}"));
    let marker = "action=\"";
    let start = page[row..].find(marker).expect("a sign-out form") + row + marker.len();
    let end = page[start..].find('"').unwrap() + start;
    let path = &page[start..end];
    assert!(
        path.ends_with("/revoke") && path.contains("/sessions/"),
        "{path}"
    );
    path.to_owned()
}

/// Issue 14: the admin page lists the found user's sessions (device, address, node) and signs
/// one of them out, on every node, leaving the others.
async fn admin_sessions(backend: Backend) {
    let d = Deployment::start(backend, &["node-a", "node-b"], None).await;
    let (a, b) = (d.node(0), d.node(1));
    d.add_user("root@example.com", true).await;
    d.add_user(ALICE, false).await;
    let admin = Device::new(FIREFOX_LINUX, "198.51.100.80");
    admin.login(a, "root@example.com").await;
    let laptop = Device::new(CHROME_WINDOWS, "198.51.100.81");
    let phone = Device::new(SAFARI_IPHONE, "198.51.100.82");
    laptop.login(a, ALICE).await;
    phone.login(b, ALICE).await;

    let page = admin.get(a, "/admin?email=alice%40example.com").await;
    page.assert_status(StatusCode::OK);
    for shown in [
        "198.51.100.81",
        "198.51.100.82",
        "node-a",
        "node-b",
        "iPhone",
    ] {
        assert!(page.body.contains(shown), "{shown}: {}", page.body);
    }
    let csrf = page.form_csrf();
    let revoke = session_revoke_path(&page.body, "198.51.100.82");
    let reply = admin.form(b, &revoke, &[("_csrf", &csrf)]).await;
    reply.assert_shows(
        StatusCode::OK,
        "Signed alice@example.com out of one session.",
    );
    assert_eq!(phone.probe(a).await, StatusCode::UNAUTHORIZED);
    assert_eq!(laptop.probe(b).await, StatusCode::OK);
    assert!(!reply.body.contains("198.51.100.82"), "{}", reply.body);
    assert!(reply
        .body
        .contains("<span class=\"num\">1</span> active session<"));

    // Again: nothing left to end; an id that is no session id at all, the same. Not an
    // administrator: 403. No token: 400.
    let reply = admin.form(a, &revoke, &[("_csrf", &csrf)]).await;
    reply.assert_shows(StatusCode::OK, "That session had already ended.");
    let tampered = format!("{}x/revoke", revoke.trim_end_matches("/revoke"));
    let reply = admin.form(a, &tampered, &[("_csrf", &csrf)]).await;
    reply.assert_shows(StatusCode::OK, "That session had already ended.");
    assert_eq!(laptop.probe(a).await, StatusCode::OK);
    let laptop_revoke = session_revoke_path(&reply.body, "198.51.100.81");
    let reply = laptop.form(a, &laptop_revoke, &[("_csrf", &csrf)]).await;
    reply.assert_status(StatusCode::FORBIDDEN);
    let reply = admin.form(a, &laptop_revoke, &[]).await;
    reply.assert_shows(StatusCode::BAD_REQUEST, "Form expired");
    assert_eq!(laptop.probe(a).await, StatusCode::OK);

    // Looking themselves up, the administrator sees their own session marked, with no button;
    // posted anyway, it is refused (signing out is the way to end it).
    let page = admin.get(a, "/admin?email=root%40example.com").await;
    assert!(page.body.contains("Your session"), "{}", page.body);
    assert!(!page.body.contains("/sessions/"), "{}", page.body);
    let own = admin
        .api(a, reqwest::Method::GET, "/api/v1/sessions", None)
        .await
        .json()["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .expect("the admin's own session")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let root_id = a
        .accounts()
        .user_by_email("root@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;
    let path = format!("/admin/users/{root_id}/sessions/{own}/revoke");
    let reply = admin.form(a, &path, &[("_csrf", &csrf)]).await;
    reply.assert_shows(StatusCode::CONFLICT, "That is your own session");
    assert_eq!(admin.probe(b).await, StatusCode::OK, "still signed in");
}

on_each_backend!(admin_sessions: admin_page_lists_a_users_sessions_and_signs_one_out_sqlite, admin_page_lists_a_users_sessions_and_signs_one_out_redis);
