//! Arbitrary bytes parsed as a stored key document and opened: every outcome must be a key or
//! a `DocumentError`, never a panic. The key store is shared by every node, so one bad
//! document must not take a node down.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use ringfence_keyring::{KeyDocument, MasterKey};

static MASTER: LazyLock<MasterKey> = LazyLock::new(|| MasterKey::from_bytes(&[7u8; 32]));

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = KeyDocument::from_json(data) else {
        return;
    };
    let _ = doc.open(None);
    let _ = doc.open(Some(&MASTER));
    let _ = doc.is_wrapped();
    let _ = doc.info().status(chrono::Utc::now());

    // A document this code accepted must survive being written back and read again.
    let again = KeyDocument::from_json(doc.to_json().as_bytes()).expect("re-read own JSON");
    assert_eq!(again, doc);
});
