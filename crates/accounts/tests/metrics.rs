//! Sign-in and registration counters, observed through a recorder installed for this process.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::{fixture, GOOD_PASSWORD, OTHER_PASSWORD};
use metrics::{
    Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

#[derive(Default)]
struct Counters(Mutex<HashMap<String, Arc<AtomicU64>>>);

struct Handle(Arc<AtomicU64>);

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

fn render(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for &'static Counters {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut map = self.0.lock().unwrap();
        let cell = map.entry(render(key)).or_default().clone();
        Counter::from_arc(Arc::new(Handle(cell)))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

impl Counters {
    fn get(&self, name: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

#[tokio::test]
async fn counters() {
    let counters: &'static Counters = Box::leak(Box::default());
    metrics::set_global_recorder(counters).unwrap();

    let f = fixture().await;
    f.register("alice@example.com").await;
    f.register("bob@example.com").await;
    f.accounts
        .register("alice@example.com", GOOD_PASSWORD)
        .await
        .unwrap_err();
    f.accounts
        .add_user("root@example.com", GOOD_PASSWORD, true)
        .await
        .unwrap();
    assert_eq!(counters.get("ringfence_registrations_total{}"), 2);

    f.accounts
        .authenticate("alice@example.com", GOOD_PASSWORD)
        .await
        .unwrap();
    f.accounts
        .authenticate("alice@example.com", OTHER_PASSWORD)
        .await
        .unwrap_err();
    f.accounts
        .authenticate("nobody@example.com", GOOD_PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(counters.get("ringfence_sign_in_total{result=ok}"), 1);
    assert_eq!(counters.get("ringfence_sign_in_total{result=invalid}"), 2);

    // Throttled sign-ins have their own label.
    let policy = ringfence_accounts::ThrottlePolicy {
        account_free_attempts: 1,
        ..Default::default()
    };
    let throttled = f.throttled_with(policy).await;
    throttled
        .authenticate("bob@example.com", OTHER_PASSWORD)
        .await
        .unwrap_err();
    throttled
        .authenticate("bob@example.com", GOOD_PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(counters.get("ringfence_sign_in_total{result=invalid}"), 3);
    assert_eq!(counters.get("ringfence_sign_in_total{result=throttled}"), 1);
    assert_eq!(counters.get("ringfence_sign_in_total{result=ok}"), 1);
}
