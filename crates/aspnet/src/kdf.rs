//! NIST SP800-108 key derivation in counter mode with HMAC-SHA512 as the PRF: the derivation .NET's
//! Data Protection runs for every payload (the master key is the key-derivation key, the purpose
//! chain the label, the encryptor's context header and the payload's key modifier the context).

use hmac::{Hmac, Mac};
use sha2::Sha512;
use zeroize::Zeroize;

/// Fills `output` with `PRF(kdk, [i]₃₂ ‖ label ‖ 0x00 ‖ context_header ‖ context ‖ [L]₃₂)` for
/// i = 1, 2, … (big-endian counters, L the output length in bits), SP800-108 section 5.1.
pub fn derive(kdk: &[u8], label: &[u8], context_header: &[u8], context: &[u8], output: &mut [u8]) {
    let output_bits = (output.len() as u32).wrapping_mul(8).to_be_bytes();
    // HMAC takes keys of any length (longer ones are hashed first), as .NET's HMACSHA512 does.
    let Ok(prf) = Hmac::<Sha512>::new_from_slice(kdk) else {
        unreachable!("HMAC accepts keys of every length")
    };
    for (i, chunk) in output.chunks_mut(64).enumerate() {
        let mut mac = prf.clone();
        mac.update(&(i as u32 + 1).to_be_bytes());
        mac.update(label);
        mac.update(&[0]);
        mac.update(context_header);
        mac.update(context);
        mac.update(&output_bits);
        let mut block = mac.finalize().into_bytes();
        chunk.copy_from_slice(&block[..chunk.len()]);
        block.as_mut_slice().zeroize();
    }
}
