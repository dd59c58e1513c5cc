//! The optional per-user cap: signing in beyond it ends that user's oldest session.

use chrono::Duration;
use reqwest::StatusCode;

use crate::harness::*;

async fn cap_evicts_oldest(backend: Backend) {
    let d = Deployment::single(backend, Some(2)).await;
    let node = d.node(0);
    d.add_user("alice@example.com", false).await;
    d.add_user("bob@example.com", false).await;
    let first = Device::new(FIREFOX_LINUX, "198.51.100.40");
    let second = Device::new(SAFARI_IPHONE, "198.51.100.41");
    let third = Device::new(CHROME_WINDOWS, "198.51.100.42");
    let bob1 = Device::new(FIREFOX_LINUX, "198.51.100.43");
    let bob2 = Device::new(CHROME_ANDROID, "198.51.100.44");
    bob1.login(node, "bob@example.com").await;
    bob2.login(node, "bob@example.com").await;

    first.login(node, "alice@example.com").await;
    d.advance(Duration::minutes(2));
    second.login(node, "alice@example.com").await;
    d.advance(Duration::minutes(2));
    // The oldest session is now the most recently seen one (this request renews it):
    // eviction goes by sign-in time.
    assert_eq!(first.me(node).await, StatusCode::OK);
    third.login(node, "alice@example.com").await;

    assert_eq!(first.probe(node).await, StatusCode::UNAUTHORIZED);
    assert_eq!(second.probe(node).await, StatusCode::OK);
    assert_eq!(third.probe(node).await, StatusCode::OK);
    let mut expected = vec![second.id(), third.id()];
    expected.sort();
    assert_eq!(ids(&third.sessions(node).await), expected);
    // Another user's sessions are not touched by alice's cap.
    assert_eq!(bob1.probe(node).await, StatusCode::OK);
    assert_eq!(bob2.probe(node).await, StatusCode::OK);

    // The evicted device signs in again: now the second one is the oldest.
    d.advance(Duration::minutes(1));
    first.login(node, "alice@example.com").await;
    assert_eq!(second.probe(node).await, StatusCode::UNAUTHORIZED);
    assert_eq!(third.probe(node).await, StatusCode::OK);
    assert_eq!(first.probe(node).await, StatusCode::OK);
    let counts = node.sessions().counts().await.unwrap();
    assert_eq!(counts.active_sessions, 4);
    assert_eq!(counts.signed_in_users, 2);
}

on_each_backend!(cap_evicts_oldest: cap_evicts_oldest_sqlite, cap_evicts_oldest_redis);
