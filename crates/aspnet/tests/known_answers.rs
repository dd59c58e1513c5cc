//! Known-answer vectors from dotnet/aspnetcore's own test suites (SP800_108Tests,
//! ManagedAuthenticatedEncryptorTests, Cng/GcmAuthenticatedEncryptorTests, and the precomputed
//! GCM context headers of AesGcmAuthenticatedEncryptor), byte for byte.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ringfence_aspnet::{kdf, Algorithm, Encryptor, Validation};

fn derive_b64(kdk: &[u8], len: usize) -> String {
    let mut out = vec![0u8; len];
    kdf::derive(kdk, b"label", b"contextHeader", b"context", &mut out);
    STANDARD.encode(out)
}

#[test]
fn sp800_108_matches_upstream_vectors_around_the_digest_length() {
    assert_eq!(
        derive_b64(b"kdk", 63),
        "V47WmHzPSkdC2vkLAomIjCzZlDOAetll3yJLcSvon7LJFjJpEN+KnSNp+gIpeydKMsENkflbrIZ/3s6GkEaH"
    );
    assert_eq!(
        derive_b64(b"kdk", 64),
        "mVaFM4deXLl610CmnCteNzxgbM/VkmKznAlPauHcDBn0le06uOjAKLHx0LfoU2/Ttq9nd78Y6Nk6wArmdwJgJg=="
    );
    assert_eq!(
        derive_b64(b"kdk", 65),
        "GaHPeqdUxriFpjRtkYQYWr5/iqneD/+hPhVJQt4rXblxSpB1UUqGqL00DMU/FJkX0iMCfqUjQXtXyfks+p++Ev4="
    );
}

#[test]
fn sp800_108_matches_upstream_vectors_for_a_50000_byte_key() {
    let kdk: Vec<u8> = (0..50_000).map(|i| i as u8).collect();
    assert_eq!(
        derive_b64(&kdk, 63),
        "rt2hM6kkQ8hAXmkHx0TU4o3Q+S7fie6b3S1LAq107k++P9v8uSYA2G+WX3pJf9ZkpYrTKD7WUIoLkgA1R9lk"
    );
    assert_eq!(
        derive_b64(&kdk, 64),
        "RKiXmHSrWq5gkiRSyNZWNJrMR0jDyYHJMt9odOayRAE5wLSX2caINpQmfzTH7voJQi3tbn5MmD//dcspghfBiw=="
    );
    assert_eq!(
        derive_b64(&kdk, 65),
        "KedXO0zAIZ3AfnPqY1NnXxpC3HDHIxefG4bwD3g6nWYEc5+q7pjbam71Yqj0zgHMNC9Z7BX3wS1/tajFocRWZUk="
    );
}

#[test]
fn sp800_108_matches_upstream_vectors_for_an_empty_key() {
    for (len, expected) in [
        (64, "fHGMWaDLmoncLsEKuKbZo8T+73paNohDeb5O7BSxbC8Gus8d/mUpa/9w2ss65OHlmFw1VZhIXzr5swMYVRndRw=="),
        (96, "iXd0KuWopclbxtWf9dO8fnerBqLJvndOUs74pTcj7Ck8Ctsvz4QttXkCY1DPd4aDbOE/CCU8/bIQtzoU1Xu3ZQ1pV0qEZmzFll+Vpf+q7av7AGEqwh56a+NPt6gxC5CP"),
    ] {
        let mut out = vec![0u8; len];
        kdf::derive(&[], &[], &[], &[], &mut out);
        assert_eq!(STANDARD.encode(out), expected);
    }
}

/// SequentialGenRandom: 00 01 02 … across the key modifier and the IV/nonce.
fn sequential(len: usize) -> Vec<u8> {
    (0..len as u8).collect()
}

#[test]
fn aes_256_cbc_hmac_sha256_encrypts_the_upstream_known_key_vector() {
    let encryptor = Encryptor::new(Algorithm::DEFAULT, b"master key".to_vec()).unwrap();
    let out = encryptor.encrypt_with_randomness(&[2, 3, 4], &[6, 5, 4, 3], &sequential(32));
    assert_eq!(
        STANDARD.encode(out),
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+36j4yWJOjBgOJxmYDYwhLnYqFxw+9mNh/cudyPrWmJmw4d/dmGaLJLLut2udiAAA="
    );
}

#[test]
fn aes_128_gcm_encrypts_the_upstream_known_key_vector() {
    let encryptor = Encryptor::new(Algorithm::Gcm { key_len: 16 }, b"master key".to_vec()).unwrap();
    let out = encryptor.encrypt_with_randomness(&[2, 3, 4], &[6, 5, 4, 3], &sequential(28));
    // Upstream's vector has 3 bytes before and 4 after (its pre/post buffers), all zero.
    let upstream = STANDARD
        .decode("AAAAAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaG0O2kY0NZtmh2UQtXY5B2jlgnOgAAAAA")
        .unwrap();
    assert_eq!(out, upstream[3..upstream.len() - 4]);
}

#[test]
fn gcm_context_headers_match_the_ones_upstream_precomputed() {
    let hex = |s: &str| -> Vec<u8> {
        s.split('-')
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    };
    for (key_len, expected) in [
        (16, "00-01-00-00-00-10-00-00-00-0C-00-00-00-10-00-00-00-10-95-7C-50-FF-69-2E-38-8B-9A-D5-C7-68-9E-4B-9E-2B"),
        (24, "00-01-00-00-00-18-00-00-00-0C-00-00-00-10-00-00-00-10-0D-AA-01-3A-95-0A-DA-2B-79-8F-5F-F2-72-FA-D3-63"),
        (32, "00-01-00-00-00-20-00-00-00-0C-00-00-00-10-00-00-00-10-E7-DC-CE-66-DF-85-5A-32-3A-6B-B7-BD-7A-59-BE-45"),
    ] {
        let encryptor = Encryptor::new(Algorithm::Gcm { key_len }, vec![0; 64]).unwrap();
        assert_eq!(encryptor.context_header(), hex(expected), "AES-{} GCM", key_len * 8);
    }
}

#[test]
fn cbc_context_header_lays_out_sizes_then_the_empty_string_fingerprint() {
    let encryptor = Encryptor::new(
        Algorithm::Cbc {
            key_len: 24,
            validation: Validation::HmacSha512,
        },
        vec![0; 64],
    )
    .unwrap();
    let header = encryptor.context_header();
    assert_eq!(
        &header[..18],
        &[0, 0, 0, 0, 0, 24, 0, 0, 0, 16, 0, 0, 0, 64, 0, 0, 0, 64]
    );
    assert_eq!(header.len(), 18 + 16 + 64);
}

#[test]
fn additional_authenticated_data_is_laid_out_as_upstreams_key_ring_protector_tests_build_it() {
    // KeyRingBasedDataProtectorTests.BuildAadFromPurposeStrings for key
    // ba73c9ce-d322-4e45-af90-341307e11c38 and three purposes, spelled out byte by byte.
    let key = uuid::Uuid::parse_str("ba73c9ce-d322-4e45-af90-341307e11c38").unwrap();
    let purposes: Vec<String> = ["purpose1", "purpose2", "yet another purpose"]
        .map(String::from)
        .to_vec();
    let mut expected = vec![0x09, 0xF0, 0xC9, 0xF0];
    expected.extend([
        0xce, 0xc9, 0x73, 0xba, 0x22, 0xd3, 0x45, 0x4e, 0xaf, 0x90, 0x34, 0x13, 0x07, 0xe1, 0x1c,
        0x38,
    ]);
    expected.extend([0, 0, 0, 3]);
    for p in &purposes {
        expected.push(p.len() as u8);
        expected.extend(p.as_bytes());
    }
    assert_eq!(
        ringfence_aspnet::protector::additional_authenticated_data(key, &purposes),
        expected
    );
    // A purpose of 200 bytes: BinaryWriter's 7-bit length takes two bytes, C8 01.
    let long = vec!["é".repeat(100)];
    let aad = ringfence_aspnet::protector::additional_authenticated_data(key, &long);
    assert_eq!(&aad[24..26], &[0xC8, 0x01]);
    assert_eq!(aad.len(), 26 + 200);
}

#[test]
fn an_aes_key_size_dotnet_does_not_offer_is_refused() {
    for key_len in [0, 8, 20, 64] {
        assert!(Encryptor::new(Algorithm::Gcm { key_len }, vec![0; 64]).is_err());
        let cbc = Algorithm::Cbc {
            key_len,
            validation: Validation::HmacSha256,
        };
        assert!(Encryptor::new(cbc, vec![0; 64]).is_err());
    }
}
