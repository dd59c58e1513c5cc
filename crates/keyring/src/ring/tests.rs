//! Unit tests of the ring's internals: default-key selection over time, the cipher slots and
//! the map hasher.

use std::hash::BuildHasher;

use proptest::prelude::*;

use std::hash::BuildHasherDefault;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::entry::{RandomBytesHasher, CIPHER_SLOTS};
use super::*;
use crate::key::{Key, KeyId, KeyInfo, KeyMaterial};
use crate::payload::purpose_hash;

fn at(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

fn entry(created: DateTime<Utc>, activates: DateTime<Utc>, expires: DateTime<Utc>) -> Key {
    Key {
        info: KeyInfo {
            id: KeyId::generate(),
            created_at: created,
            activates_at: activates,
            expires_at: expires,
            revoked_at: None,
        },
        material: KeyMaterial::generate(),
    }
}

fn state_of(keys: Vec<Key>) -> RingState {
    let mut state = RingState::default();
    for key in keys {
        state.keys.insert(key.info.id, Arc::new(KeyEntry::new(key)));
    }
    state
}

fn id_of(key: Option<&Arc<KeyEntry>>) -> Option<KeyId> {
    key.map(|k| k.info.id)
}

/// Every instant where the answer may change, and its neighbours.
fn probes(state: &RingState, skew: Duration) -> Vec<DateTime<Utc>> {
    let one = Duration::nanoseconds(1);
    let mut probes = Vec::new();
    for k in state.keys.values() {
        for edge in [k.info.activates_at - skew, k.info.expires_at] {
            probes.extend([edge - one, edge, edge + one]);
        }
    }
    probes
}

prop_compose! {
    /// Keys with edges a few seconds apart, often equal, some revoked.
    fn keys()(specs in proptest::collection::vec(
        (0i64..40, 0i64..40, 1i64..40, any::<bool>(), 0i64..3), 0..7,
    )) -> Vec<Key> {
        let base = 1_900_000_000_000_000_000i64;
        let s = 1_000_000_000i64;
        specs.into_iter().map(|(created, activates, life, revoked, tie)| {
            let mut key = entry(
                at(base + created * s + tie),
                at(base + activates * s),
                at(base + (activates + life) * s),
            );
            if revoked {
                key.info.revoked_at = Some(at(base));
            }
            key
        }).collect()
    }
}

proptest! {
    /// The timeline gives what a scan gives, at every edge and either side of it, in any
    /// order of lookups (the hint moves forward and back).
    #[test]
    fn timeline_matches_a_scan(keys in keys(), skew_s in 0i64..5, order in any::<u64>()) {
        let skew = Duration::seconds(skew_s);
        let state = state_of(keys);
        let mut probes = probes(&state, skew);
        probes.push(at(0));
        probes.push(at(i64::MAX - 1));
        probes.push(at(i64::MIN + 1));
        // A cheap shuffle, reproducible from `order`.
        let n = probes.len();
        for i in 0..n {
            probes.swap(i, (order.rotate_left(i as u32) as usize ^ i) % n);
        }
        for now in probes {
            let fast = state.default_key_at_nanos(crate::clock::nanos(now), skew);
            prop_assert_eq!(
                fast.map(id_of),
                Some(id_of(state.scan_default_key(now, skew))),
                "at {}", now
            );
            prop_assert_eq!(
                id_of(state.default_key(now, skew)),
                id_of(state.scan_default_key(now, skew))
            );
        }
    }
}

#[test]
fn dates_beyond_nanoseconds_are_answered_by_a_scan() {
    let year = |y: i32| {
        DateTime::parse_from_rfc3339(&format!("{y:04}-01-01T00:00:00Z"))
            .unwrap()
            .with_timezone(&Utc)
    };
    let skew = Duration::minutes(5);
    // Two keys whose edges all saturate to i64::MAX, one whose edges saturate to MIN.
    let late = entry(year(2020), year(2500), year(2600));
    let later = entry(year(2020), year(2550), year(2700));
    let early = entry(year(1000), year(1100), year(1200));
    let ids = (late.info.id, later.info.id, early.info.id);
    let state = state_of(vec![late, later, early]);
    for (now, expected) in [
        (year(1150), Some(ids.2)),
        (year(1600), None),
        (year(2000), None),
        (year(2520), Some(ids.0)),
        (year(2560), Some(ids.1)),
        (year(2650), Some(ids.1)),
        (year(2800), None),
    ] {
        assert_eq!(id_of(state.default_key(now, skew)), expected, "at {now}");
    }
    assert_eq!(state.default_key_at_nanos(i64::MAX, skew).map(id_of), None);
    assert_eq!(state.default_key_at_nanos(i64::MIN, skew).map(id_of), None);
    // An instant near the extremes of chrono's range does not overflow the skew arithmetic.
    assert_eq!(
        id_of(state.default_key(DateTime::<Utc>::MAX_UTC, skew)),
        None
    );
    assert_eq!(
        id_of(state.default_key(DateTime::<Utc>::MIN_UTC, skew)),
        None
    );
}

#[test]
fn a_state_without_keys_has_no_default() {
    let state = RingState::default();
    assert_eq!(
        state.default_key_at_nanos(0, Duration::zero()).map(id_of),
        Some(None)
    );
}

#[test]
fn purposes_beyond_the_slots_use_the_map_and_every_cipher_is_the_derived_one() {
    let now = Utc::now();
    let key = KeyEntry::new(entry(now, now, now + Duration::days(1)));
    let purposes: Vec<[u8; 32]> = (0..CIPHER_SLOTS + 4)
        .map(|i| purpose_hash(&[format!("p{i}")]))
        .collect();
    let id = key.info.id;
    for _ in 0..2 {
        for purpose in &purposes {
            let sealed = key.with_cipher(purpose, |c| crate::payload::seal(c, &id, b"x"));
            let fresh = key.derive(purpose);
            assert_eq!(crate::payload::open(&fresh, &sealed).unwrap(), b"x");
        }
    }
    assert!(key.slots.iter().all(|s| s.get().is_some()));
    assert_eq!(key.overflow.read().unwrap().len(), 4);
}

#[test]
fn the_hasher_takes_the_random_bytes_as_they_are() {
    let build = BuildHasherDefault::<RandomBytesHasher>::default();
    let a = KeyId([1; 16]);
    let b = KeyId([2; 16]);
    assert_ne!(build.hash_one(a), build.hash_one(b));
    assert_eq!(build.hash_one(a), build.hash_one(KeyId([1; 16])));
    // The table's bits come straight from the bytes.
    assert_eq!(build.hash_one(a) >> 56, 1);
}
