//! "Where you're signed in": three real browsers, listed with parsed labels, addresses, times
//! and the node, each seeing itself as the current one.

use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::*;

struct Expected {
    user_agent: &'static str,
    label: &'static str,
    ip: &'static str,
}

const DEVICES: [Expected; 3] = [
    Expected {
        user_agent: FIREFOX_LINUX,
        label: "Firefox on Linux",
        ip: "198.51.100.7",
    },
    Expected {
        user_agent: SAFARI_IPHONE,
        label: "Safari on iPhone",
        ip: "203.0.113.42",
    },
    Expected {
        user_agent: CHROME_WINDOWS,
        label: "Chrome on Windows",
        ip: "2001:db8::7",
    },
];

fn check_entry(entry: &Value, expected: &Expected, created: DateTime<Utc>, seen: DateTime<Utc>) {
    assert_eq!(entry["device"], expected.label, "{entry}");
    assert_eq!(entry["user_agent"], expected.user_agent, "{entry}");
    assert_eq!(entry["ip"], expected.ip, "{entry}");
    assert_eq!(entry["node"], "solo", "{entry}");
    assert_eq!(time(&entry["created_at"]), created, "{entry}");
    assert_eq!(time(&entry["last_seen_at"]), seen, "{entry}");
    assert_eq!(
        time(&entry["expires_at"]),
        seen + Duration::minutes(30),
        "{entry}"
    );
}

async fn three_devices(backend: Backend) {
    let d = Deployment::single(backend, None).await;
    let node = d.node(0);
    d.add_user("alice@example.com", false).await;
    let other = Device::new(FIREFOX_LINUX, "192.0.2.99");
    d.add_user("bob@example.com", false).await;
    other.login(node, "bob@example.com").await;

    let mut devices = Vec::new();
    let mut created = Vec::new();
    for expected in &DEVICES {
        let device = Device::new(expected.user_agent, expected.ip);
        let login = device.login(node, "alice@example.com").await;
        assert_eq!(login["session"]["device"], expected.label, "{login}");
        assert_eq!(login["session"]["current"], true);
        created.push(d.now());
        devices.push(device);
        d.advance(Duration::seconds(30));
    }

    // Less than a renewal interval (3 min) after every sign-in: nothing renewed yet.
    for device in &devices {
        let listed = device.sessions(node).await;
        assert_eq!(listed.len(), 3, "only alice's sessions: {listed:?}");
        let mut expected_ids: Vec<String> = devices.iter().map(Device::id).collect();
        expected_ids.sort();
        assert_eq!(ids(&listed), expected_ids);
        let current: Vec<&Value> = listed.iter().filter(|s| s["current"] == true).collect();
        assert_eq!(current.len(), 1, "{listed:?}");
        assert_eq!(current[0]["id"].as_str().unwrap(), device.id());
        for (i, other) in devices.iter().enumerate() {
            let entry = listed
                .iter()
                .find(|s| s["id"].as_str() == Some(&other.id()))
                .unwrap();
            check_entry(entry, &DEVICES[i], created[i], created[i]);
            assert_eq!(
                time(&entry["absolute_expires_at"]),
                created[i] + Duration::hours(12)
            );
        }
    }

    // The iPhone comes back five minutes later, Firefox a minute after that: their last-seen
    // times and expiries move (Firefox's own listing request renews it), Chrome's do not, and
    // the list is most recently seen first.
    d.advance(Duration::minutes(5));
    let iphone_seen = d.now();
    assert_eq!(devices[1].me(node).await, StatusCode::OK);
    d.advance(Duration::minutes(1));
    let firefox_seen = d.now();
    let listed = devices[0].sessions(node).await;
    let order: Vec<String> = listed
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        order,
        vec![devices[0].id(), devices[1].id(), devices[2].id()],
        "{listed:?}"
    );
    check_entry(&listed[0], &DEVICES[0], created[0], firefox_seen);
    check_entry(&listed[1], &DEVICES[1], created[1], iphone_seen);
    check_entry(&listed[2], &DEVICES[2], created[2], created[2]);

    // The page shows the same, from each device's point of view.
    for (i, device) in devices.iter().enumerate() {
        let page = device.get(node, "/account/sessions").await;
        page.assert_status(StatusCode::OK);
        let html = &page.body;
        for expected in &DEVICES {
            assert!(
                html.contains(expected.label),
                "{} missing: {html}",
                expected.label
            );
            assert!(
                html.contains(expected.ip),
                "{} missing: {html}",
                expected.ip
            );
        }
        assert!(!html.contains("192.0.2.99"), "bob's session leaked: {html}");
        assert_eq!(html.matches("This device").count(), 1, "{html}");
        // The current device comes first and carries the badge.
        let first = html.find("<li class=\"device").unwrap();
        let current_item = &html[first..html[first..].find("</li>").unwrap() + first];
        assert!(current_item.contains("This device"), "{current_item}");
        assert!(current_item.contains(DEVICES[i].label), "{current_item}");
        // Every other device has a sign-out form; this one does not.
        for other in &devices {
            let action = format!("/account/sessions/{}/revoke", other.id());
            assert_eq!(
                html.contains(&action),
                other.id() != device.id(),
                "{action}: {html}"
            );
        }
        assert!(html.contains("/account/sessions/revoke-others"));
    }

    // Signing in again on a device gives it a new session id; the old one is gone.
    let old = devices[2].id();
    devices[2].login(node, "alice@example.com").await;
    assert_ne!(devices[2].id(), old);
    let listed = devices[2].sessions(node).await;
    assert_eq!(listed.len(), 3);
    assert!(!ids(&listed).contains(&old));
}

on_each_backend!(three_devices: three_devices_listed_sqlite, three_devices_listed_redis);
