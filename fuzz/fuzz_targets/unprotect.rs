//! Arbitrary bytes and strings handed to a protector as payloads: every outcome must be a
//! value or an `UnprotectError`, never a panic.
//!
//! Raw random input almost never names a key the ring holds, so each input is also tried with
//! a valid header (version byte and the ring's key id) spliced in: that drives the fuzzer past
//! the key lookup into AES-GCM authentication and the time-limited framing.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use ringfence_keyring::payload::{FORMAT_VERSION, HEADER_LEN};
use ringfence_keyring::{KeyRing, Protector, SystemClock};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    protector: Protector,
    key_id: [u8; 16],
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let ring = KeyRing::in_memory(SystemClock::shared());
    let key_id = ring.default_key_id().expect("in-memory ring has a key").0;
    Fixture {
        runtime,
        protector: ring.protector("fuzz"),
        key_id,
    }
});

fuzz_target!(|data: &[u8]| {
    let fx = &*FIXTURE;
    let protector = &fx.protector;

    let _ = protector.unprotect_bytes_cached(data);

    let mut spliced = data.to_vec();
    if spliced.len() >= HEADER_LEN {
        spliced[0] = FORMAT_VERSION;
        spliced[1..HEADER_LEN].copy_from_slice(&fx.key_id);
        let _ = protector.unprotect_bytes_cached(&spliced);
    }

    if let Ok(text) = std::str::from_utf8(data) {
        fx.runtime.block_on(async {
            let _ = protector.unprotect(text).await;
            let _ = protector.time_limited().unprotect(text).await;
        });
    }

    // Whatever the input, sealing it must give it back unchanged.
    let sealed = protector.protect(data).expect("in-memory ring has a key");
    let opened = fx
        .runtime
        .block_on(protector.unprotect(&sealed))
        .expect("own payload opens");
    assert_eq!(opened, data);
});
