//! Protect + unprotect round trips: ringfence against raw AES-256-GCM (the limit) and the
//! `cookie` crate's private jar (what Rust web apps use to seal cookies today).
//!
//! Goal (docs/benchmarks.md): a 64-byte round trip costs at most 1.3x raw AES-256-GCM and no
//! more than the private jar.
//!
//! `raw_aes256gcm_header` is the same raw cipher with ringfence's 17-byte clear header
//! authenticated as associated data: the floor of ringfence's payload format, so the gap
//! between it and `ringfence_bytes` is what the key ring itself costs.
//!
//! Every contender seals the same plaintext with a fresh random 12-byte nonce from
//! `rand::thread_rng` and allocates its output, so the differences are framing, key lookup and
//! encoding, not the cipher.

use std::hint::black_box;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use cookie::{Cookie, CookieJar};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, RngCore};
use ringfence_keyring::{KeyRing, SystemClock};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const SIZES: [(usize, &str); 2] = [(64, "64B"), (1024, "1KiB")];

/// Printable ASCII, so the private jar (which seals a cookie *string*) gets the very same bytes.
fn plaintext(len: usize) -> Vec<u8> {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| rng.sample(rand::distributions::Alphanumeric))
        .collect()
}

/// The limit: one AES-256-GCM seal and open with a cipher built once, nonce prepended and tag
/// appended, output allocated once each way (what ringfence does minus key lookup). With an
/// empty `header` this is bare AES-256-GCM; with ringfence's 17-byte header (version and key
/// id, authenticated as associated data) it is the cost floor of ringfence's payload format.
fn raw_seal(cipher: &Aes256Gcm, header: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len() + NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(header);
    let mut nonce = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut nonce);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let (head, body) = out.split_at_mut(header.len() + NONCE_LEN);
    let (aad, nonce) = head.split_at(header.len());
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, body)
        .expect("seal");
    out.extend_from_slice(&tag);
    out
}

fn raw_open(cipher: &Aes256Gcm, header_len: usize, sealed: &[u8]) -> Vec<u8> {
    let (head, rest) = sealed.split_at(header_len + NONCE_LEN);
    let (aad, nonce) = head.split_at(header_len);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut plain = ciphertext.to_vec();
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            aad,
            &mut plain,
            Tag::from_slice(tag),
        )
        .expect("open");
    plain
}

fn round_trips(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let ring = KeyRing::in_memory(SystemClock::shared());
    let protector = ring.protector("bench");
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    let raw = Aes256Gcm::new((&key).into());
    // Version byte and a key id, as ringfence frames a payload.
    let mut header = [0u8; 17];
    header[0] = 1;
    rand::thread_rng().fill_bytes(&mut header[1..]);
    let jar_key = cookie::Key::generate();

    for (len, label) in SIZES {
        let data = plaintext(len);
        let text = String::from_utf8(data.clone()).expect("ascii");

        // Each contender must really round-trip before its numbers mean anything.
        assert_eq!(raw_open(&raw, 0, &raw_seal(&raw, b"", &data)), data);
        let framed = raw_seal(&raw, &header, &data);
        assert_eq!(raw_open(&raw, header.len(), &framed), data);
        let payload = protector.protect_bytes(&data).expect("protect");
        assert_eq!(
            protector.unprotect_bytes_cached(&payload).expect("open"),
            data
        );

        let mut group = c.benchmark_group(format!("roundtrip_{label}"));
        group.throughput(Throughput::Bytes(len as u64));

        group.bench_function(BenchmarkId::new("raw_aes256gcm", label), |b| {
            b.iter(|| {
                let sealed = raw_seal(&raw, b"", black_box(&data));
                raw_open(&raw, 0, black_box(&sealed))
            })
        });

        group.bench_function(BenchmarkId::new("raw_aes256gcm_header", label), |b| {
            b.iter(|| {
                let sealed = raw_seal(&raw, &header, black_box(&data));
                raw_open(&raw, header.len(), black_box(&sealed))
            })
        });

        group.bench_function(BenchmarkId::new("ringfence_bytes", label), |b| {
            b.iter(|| {
                let payload = protector.protect_bytes(black_box(&data)).expect("protect");
                protector
                    .unprotect_bytes_cached(black_box(&payload))
                    .expect("unprotect")
            })
        });

        group.bench_function(BenchmarkId::new("ringfence_base64", label), |b| {
            b.to_async(&runtime).iter(|| async {
                let payload = protector.protect(black_box(&data)).expect("protect");
                protector
                    .unprotect(black_box(&payload))
                    .await
                    .expect("unprotect")
            })
        });

        group.bench_function(BenchmarkId::new("cookie_private_jar", label), |b| {
            b.iter(|| {
                // One jar per request, as a web framework would build it.
                let mut jar = CookieJar::new();
                jar.private_mut(&jar_key)
                    .add(Cookie::new("session", black_box(&text).clone()));
                jar.private(&jar_key).get("session").expect("unseal")
            })
        });

        group.finish();
    }
}

criterion_group!(benches, round_trips);
criterion_main!(benches);
