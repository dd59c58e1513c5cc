//! Property tests: any bytes under any purposes round-trip; any single-bit change is rejected.

use chrono::Utc;
use proptest::prelude::*;
use ringfence_keyring::{KeyRing, ManualClock};

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

    #[test]
    fn garbage_never_panics(text in ".{0,300}", bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let ring = ring();
        let p = ring.protector("p");
        let _ = block_on(p.unprotect(&text));
        let _ = block_on(p.unprotect_bytes(&bytes));
    }
}
