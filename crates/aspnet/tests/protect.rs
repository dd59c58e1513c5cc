//! Protect and unprotect across every algorithm pair and purpose chain, and the specific errors.

mod common;

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use common::*;
use ringfence_aspnet::{DataProtector, Error, KeyRing};
use uuid::Uuid;

const ID: &str = "80732141-ec8f-4b80-af9c-c4d2d1ff8901";

fn ring_with(encryption: &str, validation: &str) -> Arc<KeyRing> {
    let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let xml = key_xml(
        ID,
        t,
        t,
        t + Duration::days(90),
        &descriptor(encryption, validation, &master_key(7)),
    );
    Arc::new(KeyRing::from_xml(&[xml]).unwrap())
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap()
}

fn purposes(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| s.to_string()).collect()
}

#[test]
fn every_algorithm_pair_round_trips_under_every_purpose_chain() {
    let pairs = [
        ("AES_128_CBC", "HMACSHA256"),
        ("AES_192_CBC", "HMACSHA256"),
        ("AES_256_CBC", "HMACSHA256"),
        ("AES_128_CBC", "HMACSHA512"),
        ("AES_192_CBC", "HMACSHA512"),
        ("AES_256_CBC", "HMACSHA512"),
        ("AES_128_GCM", "HMACSHA256"),
        ("AES_192_GCM", "HMACSHA256"),
        ("AES_256_GCM", "HMACSHA256"),
    ];
    let chains: [&[&str]; 4] = [
        &[],
        &["app"],
        &["MyApp", "Orders", "v1"],
        &["ünïcödé", &"long-purpose".repeat(20)],
    ];
    for (encryption, validation) in pairs {
        let ring = ring_with(encryption, validation);
        for chain in chains {
            let protector = DataProtector::new(ring.clone(), purposes(chain));
            for plaintext in [&b""[..], b"x", &[0xAB; 1000]] {
                let payload = protector.protect(plaintext, now()).unwrap();
                assert_eq!(&payload[..4], &[0x09, 0xF0, 0xC9, 0xF0]);
                assert_eq!(&payload[4..20], Uuid::parse_str(ID).unwrap().to_bytes_le());
                assert_eq!(
                    protector.unprotect(&payload).unwrap(),
                    plaintext,
                    "{encryption} {chain:?}"
                );
            }
        }
    }
}

#[test]
fn a_wrong_purpose_is_refused_as_unauthentic() {
    let ring = ring_with("AES_256_CBC", "HMACSHA256");
    let payload = DataProtector::new(ring.clone(), purposes(&["app", "a"]))
        .protect(b"hi", now())
        .unwrap();
    for other in [
        &["app", "b"][..],
        &["app"],
        &["app", "a", "c"],
        &["a", "app"],
    ] {
        let err = DataProtector::new(ring.clone(), purposes(other))
            .unprotect(&payload)
            .unwrap_err();
        assert!(matches!(err, Error::Unauthentic), "{other:?}: {err}");
    }
}

#[test]
fn every_tampered_byte_is_refused() {
    for encryption in ["AES_256_CBC", "AES_256_GCM"] {
        let protector = DataProtector::new(ring_with(encryption, "HMACSHA256"), purposes(&["p"]));
        let payload = protector.protect(b"secret", now()).unwrap();
        for i in 0..payload.len() {
            let mut bad = payload.clone();
            bad[i] ^= 0x01;
            let err = protector.unprotect(&bad).unwrap_err();
            let expected = match i {
                0..=3 => matches!(err, Error::NotAPayload(_)),
                4..=19 => matches!(err, Error::UnknownKey(_)),
                _ => matches!(err, Error::Unauthentic),
            };
            assert!(expected, "{encryption} byte {i}: {err}");
        }
        assert!(matches!(
            protector.unprotect(&payload[..30]).unwrap_err(),
            Error::NotAPayload(_)
        ));
        let mut longer = payload.clone();
        longer.push(0);
        assert!(matches!(
            protector.unprotect(&longer).unwrap_err(),
            Error::Unauthentic
        ));
    }
}

#[test]
fn an_unknown_key_id_is_named() {
    let protector = DataProtector::new(ring_with("AES_256_CBC", "HMACSHA256"), vec![]);
    let mut payload = protector.protect(b"x", now()).unwrap();
    payload[4..20].copy_from_slice(&[0x11; 16]);
    let err = protector.unprotect(&payload).unwrap_err();
    assert!(matches!(err, Error::UnknownKey(_)));
    assert!(
        err.to_string()
            .contains("11111111-1111-1111-1111-111111111111"),
        "{err}"
    );
}

#[test]
fn a_revoked_key_no_longer_opens_its_payloads() {
    let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let key = key_xml(
        ID,
        t,
        t,
        t + Duration::days(90),
        &descriptor("AES_256_CBC", "HMACSHA256", &master_key(1)),
    );
    let before = DataProtector::new(
        Arc::new(KeyRing::from_xml(std::slice::from_ref(&key)).unwrap()),
        vec![],
    );
    let payload = before.protect(b"x", now()).unwrap();
    for revocation in [
        revocation_xml(ID, t + Duration::days(3)),
        revocation_xml("*", t + Duration::seconds(1)),
    ] {
        let ring = Arc::new(KeyRing::from_xml(&[key.clone(), revocation]).unwrap());
        let err = DataProtector::new(ring, vec![])
            .unprotect(&payload)
            .unwrap_err();
        assert!(matches!(err, Error::RevokedKey(_)), "{err}");
    }
    // Revoking all keys created before a date spares the keys created after it.
    let ring =
        Arc::new(KeyRing::from_xml(&[key, revocation_xml("*", t - Duration::seconds(1))]).unwrap());
    assert_eq!(
        DataProtector::new(ring, vec![])
            .unprotect(&payload)
            .unwrap(),
        b"x"
    );
}

#[test]
fn time_limited_payloads_open_until_their_expiration() {
    let protector = DataProtector::new(
        ring_with("AES_256_CBC", "HMACSHA256"),
        purposes(&["app", "reset"]),
    );
    let expiration = now() + Duration::hours(1);
    let payload = protector
        .protect_until(b"token", expiration, now())
        .unwrap();
    let (plaintext, at) = protector
        .unprotect_time_limited(&payload, now() + Duration::minutes(59))
        .unwrap();
    assert_eq!((plaintext.as_slice(), at), (&b"token"[..], expiration));
    let err = protector
        .unprotect_time_limited(&payload, now() + Duration::minutes(61))
        .unwrap_err();
    assert!(matches!(err, Error::Expired(e) if e == expiration));
    // The extra purpose keeps a time-limited payload from opening as a plain one.
    assert!(matches!(
        protector.unprotect(&payload).unwrap_err(),
        Error::Unauthentic
    ));
    // The stamp is .NET ticks, big-endian, before the plaintext.
    let inner = protector.create_protector(ringfence_aspnet::protector::TIME_LIMITED_PURPOSE);
    let stamped = inner.unprotect(&payload).unwrap();
    assert_eq!(
        &stamped[..8],
        &ringfence_aspnet::to_ticks(expiration).to_be_bytes()
    );
}

#[test]
fn dotnet_ticks_of_midnight_2000_match_upstreams_constant() {
    // TimeLimitedDataProtectorTests: 0x08c1220247e44000 is midnight 2000-01-01 UTC.
    let t = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
    assert_eq!(ringfence_aspnet::to_ticks(t), 0x08c1_2202_47e4_4000);
    assert_eq!(ringfence_aspnet::from_ticks(0x08c1_2202_47e4_4000), Some(t));
    // Beyond .NET's range: saturated, never an overflow.
    assert_eq!(
        ringfence_aspnet::to_ticks(chrono::DateTime::<Utc>::MAX_UTC),
        i64::MAX
    );
}

#[test]
fn every_truncation_of_a_payload_is_an_error_never_a_panic() {
    for encryption in ["AES_128_CBC", "AES_192_GCM"] {
        let protector = DataProtector::new(ring_with(encryption, "HMACSHA512"), purposes(&["p"]));
        let payload = protector.protect(b"0123456789abcdef0123", now()).unwrap();
        for len in 0..payload.len() {
            assert!(
                protector.unprotect(&payload[..len]).is_err(),
                "{encryption} {len}"
            );
        }
    }
}
