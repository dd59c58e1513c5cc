//! Key ring behaviour with an injected clock: lifecycle, rotation, revocation, propagation
//! through the store, purge recovery, master keys. Backends are covered by the conformance tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use ringfence_keyring::{
    DocumentError, KeyDocument, KeyRepository, KeyRing, KeyRingConfig, KeyRingError, KeyStatus,
    ManualClock, MasterKey, MemoryKeyRepository, ProtectError, RepositoryError, Revision,
    RingSnapshot, UnprotectError,
};

fn config() -> KeyRingConfig {
    KeyRingConfig::default()
}

async fn ring_on(
    repo: Arc<dyn KeyRepository>,
    clock: &ManualClock,
    config: KeyRingConfig,
) -> KeyRing {
    KeyRing::open(repo, config, clock.shared())
        .await
        .expect("open")
}

#[tokio::test]
async fn protect_round_trip_and_purpose_isolation() {
    let clock = ManualClock::new(Utc::now());
    let ring = ring_on(Arc::new(MemoryKeyRepository::new()), &clock, config()).await;
    let a = ring.protector("a");
    let payload = a.protect(b"secret").unwrap();
    assert_eq!(a.unprotect(&payload).await.unwrap(), b"secret");
    assert_eq!(
        ring.protector("b").unprotect(&payload).await,
        Err(UnprotectError::Invalid)
    );
    assert_eq!(
        a.purpose("child").unprotect(&payload).await,
        Err(UnprotectError::Invalid)
    );
    assert_eq!(
        a.unprotect(&payload[..payload.len() - 4]).await,
        Err(UnprotectError::Invalid)
    );
    assert_eq!(
        a.unprotect(&payload[..20]).await,
        Err(UnprotectError::Malformed)
    );
    assert_eq!(
        a.unprotect("not base64 !!").await,
        Err(UnprotectError::Malformed)
    );
    assert_eq!(a.unprotect("").await, Err(UnprotectError::Malformed));
}

#[tokio::test]
async fn header_tampering_is_detected() {
    let clock = ManualClock::new(Utc::now());
    let ring = ring_on(Arc::new(MemoryKeyRepository::new()), &clock, config()).await;
    let p = ring.protector("p");
    let mut bytes = p.protect_bytes(b"x").unwrap();
    bytes[0] = 2;
    assert_eq!(
        p.unprotect_bytes(&bytes).await,
        Err(UnprotectError::UnsupportedVersion(2))
    );
    let mut bytes = p.protect_bytes(b"x").unwrap();
    bytes[5] ^= 1;
    assert!(matches!(
        p.unprotect_bytes(&bytes).await,
        Err(UnprotectError::UnknownKey(_))
    ));
}

/// A repository wrapper that counts full loads, to see re-reads happen (or not).
struct Counting {
    inner: Arc<MemoryKeyRepository>,
    loads: AtomicUsize,
}

#[async_trait]
impl KeyRepository for Counting {
    async fn load(&self) -> Result<RingSnapshot, RepositoryError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load().await
    }
    async fn revision(&self) -> Result<Revision, RepositoryError> {
        self.inner.revision().await
    }
    async fn compare_and_write(
        &self,
        expected: Revision,
        documents: &[KeyDocument],
    ) -> Result<bool, RepositoryError> {
        self.inner.compare_and_write(expected, documents).await
    }
    fn describe(&self) -> String {
        "counting".into()
    }
}

#[tokio::test]
async fn unknown_key_rereads_store_rate_limited() {
    let clock = ManualClock::new(Utc::now());
    let store = Arc::new(MemoryKeyRepository::new());
    let a = ring_on(store.clone(), &clock, config()).await;
    let counting = Arc::new(Counting {
        inner: store.clone(),
        loads: AtomicUsize::new(0),
    });
    let b = ring_on(counting.clone(), &clock, config()).await;
    // A makes a new key that B has not seen: B re-reads and opens the payload. (Keys made in
    // the same instant tie-break by id, the same way on every node; move the clock so the new
    // key is the newer one.)
    clock.advance(Duration::seconds(1));
    let key = a.create_key().await.unwrap();
    let payload = a.protector("p").protect(b"hi").unwrap();
    assert_eq!(a.default_key_id(), Some(key.id));
    let before = counting.loads.load(Ordering::SeqCst);
    assert_eq!(b.protector("p").unprotect(&payload).await.unwrap(), b"hi");
    assert_eq!(counting.loads.load(Ordering::SeqCst), before + 1);
    // A flood of random key ids right after does not turn into store reads.
    let mut forged = a.protector("p").protect_bytes(b"hi").unwrap();
    for i in 0..50u8 {
        forged[1] = i;
        forged[2] = i.wrapping_mul(7);
        assert!(b.protector("p").unprotect_bytes(&forged).await.is_err());
    }
    assert!(counting.loads.load(Ordering::SeqCst) <= before + 2);
}

#[tokio::test]
async fn rotation_over_a_year_never_breaks_a_payload() {
    let clock = ManualClock::new(Utc::now());
    let store = Arc::new(MemoryKeyRepository::new());
    let ring = ring_on(store.clone(), &clock, config()).await;
    let second_node = ring_on(store, &clock, config()).await;
    let p = ring.protector("cookies");
    let mut payloads = Vec::new();
    let mut defaults = std::collections::BTreeSet::new();
    for day in 0..400 {
        for hour in (0..24).step_by(6) {
            clock.advance(Duration::hours(6));
            ring.tick(hour == 0).await.unwrap();
            second_node.tick(false).await.unwrap();
            // The default key of both nodes agrees at all times.
            assert_eq!(
                ring.default_key_id(),
                second_node.default_key_id(),
                "day {day}"
            );
            let id = ring.default_key_id().expect("always a default key");
            defaults.insert(id);
            payloads.push((day, p.protect(format!("{day}").as_bytes()).unwrap()));
        }
    }
    // Keys rolled over at 90 days: 400 days need 5 keys, and never more than one successor ahead.
    assert_eq!(defaults.len(), 5, "{defaults:?}");
    assert!(ring.keys().len() <= 6);
    let now = clock.now_for_test();
    let pending = ring
        .keys()
        .iter()
        .filter(|k| k.status(now) == KeyStatus::Pending)
        .count();
    assert!(pending <= 1);
    // Expired keys still open old payloads, on both nodes.
    let q = second_node.protector("cookies");
    for (day, payload) in payloads {
        assert_eq!(
            q.unprotect(&payload).await.unwrap(),
            format!("{day}").as_bytes()
        );
    }
}

trait NowForTest {
    fn now_for_test(&self) -> chrono::DateTime<Utc>;
}
impl NowForTest for ManualClock {
    fn now_for_test(&self) -> chrono::DateTime<Utc> {
        ringfence_keyring::Clock::now(self)
    }
}

#[tokio::test]
async fn successor_is_created_within_the_propagation_window_and_activates_at_expiry() {
    let clock = ManualClock::new(Utc::now());
    let ring = ring_on(Arc::new(MemoryKeyRepository::new()), &clock, config()).await;
    let first = ring.keys()[0].clone();
    clock.advance(Duration::days(86));
    ring.tick(true).await.unwrap();
    assert_eq!(ring.keys().len(), 1, "no successor before the window");
    clock.advance(Duration::days(1) + Duration::hours(1)); // 71 h left < 72 h window
    ring.tick(true).await.unwrap();
    let keys = ring.keys();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[1].activates_at, first.expires_at);
    assert_eq!(
        ring.default_key_id(),
        Some(first.id),
        "successor waits for the old key to expire"
    );
    clock.set(first.expires_at);
    assert_eq!(ring.default_key_id(), Some(keys[1].id));
}

/// A recorder that counts one counter, to see `note_key` decide.
#[derive(Default)]
struct CountOne(Arc<std::sync::atomic::AtomicU64>);

impl metrics::CounterFn for CountOne {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::SeqCst);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::SeqCst);
    }
}

struct NonDefaultRecorder(Arc<std::sync::atomic::AtomicU64>);

impl metrics::Recorder for NonDefaultRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        if key.name() == "ringfence_keyring_unprotect_non_default_key_total" {
            metrics::Counter::from_arc(Arc::new(CountOne(self.0.clone())))
        } else {
            metrics::Counter::noop()
        }
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

/// The default key switches by time alone, with no reload in between: protect uses the new key
/// from the first nanosecond it is eligible (activation minus the clock skew), also when the
/// clock goes back, and the non-default-key metric follows at the next protect or poll.
#[tokio::test]
async fn default_key_follows_the_clock_without_a_reload() {
    let clock = ManualClock::new(Utc::now());
    let ring = ring_on(Arc::new(MemoryKeyRepository::new()), &clock, config()).await;
    let first = ring.keys()[0].clone();
    clock.advance(Duration::days(87) + Duration::hours(1));
    ring.tick(true).await.unwrap();
    let second = ring.keys()[1].clone();
    assert_eq!(second.activates_at, first.expires_at);

    let p = ring.protector("p");
    let key_of = |payload: &[u8]| ringfence_keyring::payload::key_id_of(payload).unwrap();
    let switch = second.activates_at - config().clock_skew;
    let one = Duration::nanoseconds(1);
    let opened_under_non_default = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let recorder = NonDefaultRecorder(opened_under_non_default.clone());
    let count = || opened_under_non_default.load(Ordering::SeqCst);

    clock.set(switch - one);
    let old = p.protect_bytes(b"old").unwrap();
    assert_eq!(key_of(&old), first.id);
    metrics::with_local_recorder(&recorder, || {
        assert_eq!(p.unprotect_bytes_cached(&old).unwrap(), b"old");
    });
    assert_eq!(count(), 0, "opened under the default key");

    clock.set(switch);
    let new = p.protect_bytes(b"new").unwrap();
    assert_eq!(key_of(&new), second.id, "no lag behind the clock");
    assert_eq!(ring.default_key_id(), Some(second.id));
    metrics::with_local_recorder(&recorder, || {
        assert_eq!(p.unprotect_bytes_cached(&old).unwrap(), b"old");
        assert_eq!(count(), 1, "the first key is no longer the default");
        assert_eq!(p.unprotect_bytes_cached(&new).unwrap(), b"new");
        assert_eq!(count(), 1);
    });

    // Back in time (a clock step on this node): the first key again, at once.
    clock.set(switch - Duration::hours(1));
    assert_eq!(key_of(&p.protect_bytes(b"x").unwrap()), first.id);
    metrics::with_local_recorder(&recorder, || {
        assert_eq!(p.unprotect_bytes_cached(&new).unwrap(), b"new");
        assert_eq!(count(), 2, "the second key is not the default yet");
    });

    // On a node that only opens payloads, the refresh task's poll moves the metric along.
    clock.set(switch + Duration::hours(1));
    ring.tick(false).await.unwrap();
    metrics::with_local_recorder(&recorder, || {
        assert_eq!(p.unprotect_bytes_cached(&new).unwrap(), b"new");
        assert_eq!(count(), 2, "the second key is the default again");
        assert_eq!(p.unprotect_bytes_cached(&old).unwrap(), b"old");
        assert_eq!(count(), 3);
    });

    // Past the first key's expiry: the second key protects, the first still opens.
    clock.set(first.expires_at + Duration::days(30));
    assert_eq!(key_of(&p.protect_bytes(b"x").unwrap()), second.id);
    assert_eq!(p.unprotect_bytes(&old).await.unwrap(), b"old");
}

#[tokio::test]
async fn revoked_keys_never_open_and_a_new_key_takes_over() {
    let clock = ManualClock::new(Utc::now());
    let store = Arc::new(MemoryKeyRepository::new());
    let a = ring_on(store.clone(), &clock, config()).await;
    let b = ring_on(store, &clock, config()).await;
    let payload = a.protector("p").protect(b"x").unwrap();
    let old = a.default_key_id().unwrap();
    a.revoke(old).await.unwrap();
    assert_eq!(
        a.protector("p").unprotect(&payload).await,
        Err(UnprotectError::Revoked(old))
    );
    let new = a
        .default_key_id()
        .expect("a new key after revoking the default");
    assert_ne!(new, old);
    // B learns the revocation at its next poll (the revision moved).
    b.tick(false).await.unwrap();
    assert_eq!(
        b.protector("p").unprotect(&payload).await,
        Err(UnprotectError::Revoked(old))
    );
    assert_eq!(b.default_key_id(), Some(new));
    assert!(matches!(
        a.revoke("00000000-0000-0000-0000-000000000000".parse().unwrap())
            .await,
        Err(KeyRingError::NoSuchKey(_))
    ));
}

#[tokio::test]
async fn revoke_all_before_a_date() {
    let clock = ManualClock::new(Utc::now());
    let ring = ring_on(Arc::new(MemoryKeyRepository::new()), &clock, config()).await;
    ring.create_key().await.unwrap();
    clock.advance(Duration::seconds(1));
    assert_eq!(
        ring.revoke_created_before(clock.now_for_test())
            .await
            .unwrap(),
        2
    );
    let keys = ring.keys();
    assert_eq!(keys.iter().filter(|k| k.revoked_at.is_some()).count(), 2);
    assert!(
        ring.is_ready(),
        "a generating node replaces revoked keys at once"
    );
}

#[tokio::test]
async fn non_generating_node_waits_for_a_key_then_serves() {
    let clock = ManualClock::new(Utc::now());
    let store = Arc::new(MemoryKeyRepository::new());
    let secondary = ring_on(
        store.clone(),
        &clock,
        KeyRingConfig {
            generate_keys: false,
            ..config()
        },
    )
    .await;
    assert!(!secondary.is_ready());
    assert_eq!(
        secondary.protector("p").protect(b"x"),
        Err(ProtectError::NoDefaultKey)
    );
    assert!(
        store.load().await.unwrap().documents.is_empty(),
        "a secondary never writes keys"
    );
    let primary = ring_on(store, &clock, config()).await;
    secondary.tick(false).await.unwrap();
    assert!(secondary.is_ready());
    assert_eq!(secondary.default_key_id(), primary.default_key_id());
}

#[tokio::test]
async fn purged_store_is_refilled_from_memory() {
    let clock = ManualClock::new(Utc::now());
    let store = Arc::new(MemoryKeyRepository::new());
    let node = ring_on(store.clone(), &clock, config()).await;
    let payload = node.protector("p").protect(b"still here").unwrap();
    let id = node.default_key_id();
    store.purge();
    node.tick(false).await.unwrap();
    assert_eq!(node.default_key_id(), id, "no new key after a purge");
    // A node starting after the purge finds the old key and opens old payloads.
    let late = ring_on(store.clone(), &clock, config()).await;
    assert_eq!(late.default_key_id(), id);
    assert_eq!(
        late.protector("p").unprotect(&payload).await.unwrap(),
        b"still here"
    );
    assert_eq!(store.load().await.unwrap().documents.len(), 1);
}

#[tokio::test]
async fn wrong_or_missing_master_key_refuses_to_open() {
    let clock = ManualClock::new(Utc::now());
    let store = Arc::new(MemoryKeyRepository::new());
    let master = MasterKey::from_bytes(&[1; 32]);
    let ring = ring_on(
        store.clone(),
        &clock,
        KeyRingConfig {
            master_key: Some(master.clone()),
            ..config()
        },
    )
    .await;
    let snapshot = store.load().await.unwrap();
    let doc = KeyDocument::from_json(&snapshot.documents[0].bytes).unwrap();
    assert!(doc.is_wrapped(), "material is stored only wrapped");
    let wrong = KeyRingConfig {
        master_key: Some(MasterKey::from_bytes(&[2; 32])),
        ..config()
    };
    let err = KeyRing::open(store.clone(), wrong, clock.shared())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            KeyRingError::Document(DocumentError::WrongMasterKey { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("wrong master key"));
    let err = KeyRing::open(store.clone(), config(), clock.shared())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            KeyRingError::Document(DocumentError::MasterKeyRequired { .. })
        ),
        "{err}"
    );
    // The right key opens, and payloads survive.
    let payload = ring.protector("p").protect(b"x").unwrap();
    let again = ring_on(
        store,
        &clock,
        KeyRingConfig {
            master_key: Some(master),
            ..config()
        },
    )
    .await;
    assert_eq!(
        again.protector("p").unprotect(&payload).await.unwrap(),
        b"x"
    );
}

#[tokio::test]
async fn bad_documents_are_skipped_and_named() {
    let clock = ManualClock::new(Utc::now());
    let store = Arc::new(MemoryKeyRepository::new());
    store.put_raw("broken-doc", b"{ not json");
    let ring = ring_on(store, &clock, config()).await;
    assert!(ring.is_ready());
    let bad = ring.bad_documents();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].0, "broken-doc");
}

#[tokio::test]
async fn time_limited_payloads_expire() {
    let clock = ManualClock::new(Utc::now());
    let ring = ring_on(Arc::new(MemoryKeyRepository::new()), &clock, config()).await;
    let p = ring.protector("reset").time_limited();
    let expires = clock.now_for_test() + Duration::minutes(10);
    let payload = p.protect(b"user", expires).unwrap();
    let (data, at) = p.unprotect(&payload).await.unwrap();
    assert_eq!(
        (data.as_slice(), at.timestamp_millis()),
        (&b"user"[..], expires.timestamp_millis())
    );
    // A time-limited payload is not a plain payload of the same purpose.
    assert_eq!(
        ring.protector("reset").unprotect(&payload).await,
        Err(UnprotectError::Invalid)
    );
    clock.advance(Duration::minutes(10));
    assert!(matches!(
        p.unprotect(&payload).await,
        Err(UnprotectError::Expired(_))
    ));
}

#[tokio::test]
async fn too_short_lifetime_is_refused() {
    let clock = ManualClock::new(Utc::now());
    let err = KeyRing::open(
        Arc::new(MemoryKeyRepository::new()),
        KeyRingConfig {
            key_lifetime: Duration::days(6),
            ..config()
        },
        clock.shared(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, KeyRingError::Config(_)));
}

#[tokio::test]
async fn memory_backend_passes_conformance() {
    ringfence_keyring::conformance::run_all(|n| async move {
        let store: Arc<dyn KeyRepository> = Arc::new(MemoryKeyRepository::new());
        vec![store; n]
    })
    .await;
}

#[tokio::test]
async fn master_key_rotation_without_downtime() {
    let clock = ManualClock::new(Utc::now());
    let store = Arc::new(MemoryKeyRepository::new());
    let old = MasterKey::from_bytes(&[1; 32]);
    let new = MasterKey::from_bytes(&[2; 32]);
    let node = ring_on(
        store.clone(),
        &clock,
        KeyRingConfig {
            master_key: Some(old.clone()),
            ..config()
        },
    )
    .await;
    let payload = node.protector("p").protect(b"x").unwrap();
    // Step 1: nodes restart with the new master key and the old one as a previous key.
    let rotating = KeyRingConfig {
        master_key: Some(new.clone()),
        previous_master_keys: vec![old.clone()],
        ..config()
    };
    let updated = ring_on(store.clone(), &clock, rotating).await;
    // Step 2: rewrap: every document is now wrapped under the new key only.
    assert_eq!(updated.rewrap().await.unwrap(), 1);
    for raw in store.load().await.unwrap().documents {
        let doc = KeyDocument::from_json(&raw.bytes).unwrap();
        assert!(doc.open(Some(&new)).is_ok());
        assert!(doc.open(Some(&old)).is_err());
    }
    // A node still on the old key keeps serving from memory and does not write old-wrapped
    // copies back over the rotated documents.
    node.tick(true).await.unwrap();
    assert_eq!(node.protector("p").unprotect(&payload).await.unwrap(), b"x");
    let doc = KeyDocument::from_json(&store.load().await.unwrap().documents[0].bytes).unwrap();
    assert!(
        doc.open(Some(&new)).is_ok(),
        "the stale node did not undo the rotation"
    );
    // Step 3: nodes drop the previous key.
    let done = ring_on(
        store,
        &clock,
        KeyRingConfig {
            master_key: Some(new),
            ..config()
        },
    )
    .await;
    assert_eq!(done.protector("p").unprotect(&payload).await.unwrap(), b"x");
}
