//! Idle and absolute timeouts, decided by the server against the injected clock.

use chrono::Duration;
use reqwest::StatusCode;

use crate::harness::*;

/// A session unused for the idle timeout is refused; one used just before keeps going, and its
/// idle window then counts from that use.
async fn idle_timeout(backend: Backend) {
    let d = Deployment::single(backend, None).await;
    let node = d.node(0);
    d.add_user("alice@example.com", false).await;
    let t0 = d.now();
    let used = Device::new(FIREFOX_LINUX, "198.51.100.1");
    let idle = Device::new(SAFARI_IPHONE, "198.51.100.2");
    used.login(node, "alice@example.com").await;
    idle.login(node, "alice@example.com").await;

    d.advance(Duration::minutes(29) + Duration::seconds(59));
    let me = used.get(node, "/api/v1/me").await;
    me.assert_status(StatusCode::OK);
    assert_eq!(
        time(&me.json()["session"]["expires_at"]),
        d.now() + Duration::minutes(30),
        "a use after a tenth of the idle window slides the idle expiry"
    );

    // Exactly the idle timeout after sign-in: the untouched session is over.
    d.advance(Duration::seconds(1));
    let stale_cookie = idle.session_cookie().unwrap();
    let refused = idle.get(node, "/api/v1/me").await;
    refused.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(refused.json()["error"]["code"], "unauthenticated");
    assert!(
        idle.session_cookie().is_none(),
        "the stale cookie is cleared: {:?}",
        refused.headers
    );
    // Replaying the cookie does not bring it back (the record is gone, not just the cookie).
    idle.set_session_cookie(&stale_cookie);
    assert_eq!(idle.probe(node).await, StatusCode::UNAUTHORIZED);
    // The used one outlives its original expiry (t0 + 30 min).
    assert_eq!(used.me(node).await, StatusCode::OK);
    let listed = used.sessions(node).await;
    assert_eq!(
        ids(&listed),
        vec![used.id()],
        "the idle session is not listed"
    );

    // 30 minutes after its last renewal (at t0 + 29:59) the used one is idle too.
    d.advance(Duration::minutes(29) + Duration::seconds(59));
    assert_eq!(d.now(), t0 + Duration::minutes(59) + Duration::seconds(59));
    assert_eq!(used.me(node).await, StatusCode::UNAUTHORIZED);
    let user = node
        .accounts()
        .user_by_email("alice@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(node.sessions().list(&user.id).await.unwrap().is_empty());
    assert_eq!(node.sessions().counts().await.unwrap().active_sessions, 0);
}

/// Requests every five minutes keep a session alive for hours, well past the first idle
/// expiry, but never past the absolute timeout.
async fn absolute_timeout(backend: Backend) {
    let d = Deployment::single(backend, None).await;
    let node = d.node(0);
    d.add_user("alice@example.com", false).await;
    let t0 = d.now();
    let active = Device::new(CHROME_WINDOWS, "198.51.100.3");
    let login = active.login(node, "alice@example.com").await;
    assert_eq!(
        time(&login["session"]["absolute_expires_at"]),
        t0 + Duration::hours(12)
    );
    assert_eq!(
        time(&login["session"]["expires_at"]),
        t0 + Duration::minutes(30)
    );

    let mut later = None;
    let mut minutes = 0;
    while minutes < 12 * 60 - 5 {
        d.advance(Duration::minutes(5));
        minutes += 5;
        if minutes == 6 * 60 {
            // A second device signed in half-way through has its own absolute expiry.
            let device = Device::new(CHROME_ANDROID, "198.51.100.4");
            device.login(node, "alice@example.com").await;
            later = Some(device);
        }
        let me = active.get(node, "/api/v1/me").await;
        assert_eq!(
            me.status,
            StatusCode::OK,
            "active session refused {minutes} min after sign-in: {}",
            me.body
        );
        if minutes == 60 {
            assert!(time(&me.json()["session"]["expires_at"]) > t0 + Duration::minutes(30));
        }
        if let Some(device) = &later {
            assert_eq!(device.me(node).await, StatusCode::OK);
        }
    }
    let later = later.unwrap();

    // One second before the absolute expiry: still in, and the listing says when it ends.
    d.advance(Duration::minutes(4) + Duration::seconds(59));
    assert_eq!(active.me(node).await, StatusCode::OK);
    let listed = active.sessions(node).await;
    let mine = listed.iter().find(|s| s["current"] == true).unwrap();
    assert_eq!(
        time(&mine["expires_at"]),
        t0 + Duration::hours(12),
        "the absolute expiry caps the idle one: {mine}"
    );

    d.advance(Duration::seconds(1));
    assert_eq!(d.now(), t0 + Duration::hours(12));
    let refused = active.get(node, "/api/v1/me").await;
    refused.assert_status(StatusCode::UNAUTHORIZED);
    assert!(active.session_cookie().is_none());

    // The other device, as active, keeps its own absolute expiry: it signed in six hours later.
    assert_eq!(later.me(node).await, StatusCode::OK);
    assert_eq!(ids(&later.sessions(node).await), vec![later.id()]);
}

on_each_backend!(idle_timeout: idle_timeout_sqlite, idle_timeout_redis);

on_each_backend!(absolute_timeout: absolute_timeout_sqlite, absolute_timeout_redis);
