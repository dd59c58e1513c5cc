//! Property tests: any bytes under any purposes round-trip; any single-bit change is rejected.

use chrono::Utc;
use proptest::prelude::*;
use ringfence_keyring::{KeyRing, ManualClock, UnprotectError};

fn ring() -> KeyRing {
    KeyRing::in_memory(ManualClock::new(Utc::now()).shared())
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

proptest! {
    #[test]
    fn round_trips_any_bytes_and_purposes(
        data in proptest::collection::vec(any::<u8>(), 0..2048),
        purposes in proptest::collection::vec(".{0,16}", 1..4),
    ) {
        let ring = ring();
        let mut p = ring.protector(&purposes[0]);
        for sub in &purposes[1..] { p = p.purpose(sub); }
        let payload = p.protect(&data).unwrap();
        prop_assert_eq!(block_on(p.unprotect(&payload)).unwrap(), data);
    }

    #[test]
    fn any_single_bit_flip_is_rejected(
        data in proptest::collection::vec(any::<u8>(), 0..256),
        bit in any::<prop::sample::Index>(),
    ) {
        let ring = ring();
        let p = ring.protector("p");
        let mut bytes = p.protect_bytes(&data).unwrap();
        let i = bit.index(bytes.len() * 8);
        bytes[i / 8] ^= 1 << (i % 8);
        prop_assert!(block_on(p.unprotect_bytes(&bytes)).is_err());
    }

    /// Every bit of a payload, for a few plaintext lengths: the version byte fails the version
    /// check (it is not authenticated; see `payload`), the key id names no key, and every
    /// other bit fails AES-GCM authentication.
    #[test]
    fn every_single_bit_flip_is_rejected_with_its_reason(len in 0usize..80) {
        let ring = ring();
        let p = ring.protector("p");
        let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let payload = p.protect_bytes(&data).unwrap();
        for i in 0..payload.len() * 8 {
            let mut bytes = payload.clone();
            bytes[i / 8] ^= 1 << (i % 8);
            let result = p.unprotect_bytes_cached(&bytes);
            match i / 8 {
                0 => prop_assert_eq!(result, Err(UnprotectError::UnsupportedVersion(bytes[0]))),
                1..=16 => prop_assert!(matches!(result, Err(UnprotectError::UnknownKey(_)))),
                _ => prop_assert_eq!(result, Err(UnprotectError::Invalid)),
            }
        }
        prop_assert_eq!(p.unprotect_bytes_cached(&payload).unwrap(), data);
    }

    #[test]
    fn garbage_never_panics(text in ".{0,300}", bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let ring = ring();
        let p = ring.protector("p");
        let _ = block_on(p.unprotect(&text));
        let _ = block_on(p.unprotect_bytes(&bytes));
    }
}
