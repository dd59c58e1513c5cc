//! Key XML as .NET writes it, from a directory and from a real redis-server list; revocations;
//! the default key chosen as DefaultKeyResolver chooses it; encrypted keys refused by name.

mod common;

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::*;
use ringfence_aspnet::{Algorithm, DataProtector, Error, KeyRing, Validation};
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn id(n: u8) -> String {
    format!("{n:08x}-0000-4000-8000-000000000000")
}

fn plain_key(
    n: u8,
    created: DateTime<Utc>,
    activated: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> String {
    key_xml(
        &id(n),
        created,
        activated,
        expires,
        &descriptor("AES_256_CBC", "HMACSHA256", &master_key(n)),
    )
}

const CNG_CBC: &str = r#"<descriptor deserializerType="Microsoft.AspNetCore.DataProtection.AuthenticatedEncryption.ConfigurationModel.CngCbcAuthenticatedEncryptorDescriptorDeserializer, Microsoft.AspNetCore.DataProtection">
    <descriptor>
      <encryption algorithm="AES" keyLength="192" />
      <hash algorithm="SHA512" />
      <masterKey><value>AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==</value></masterKey>
    </descriptor>
  </descriptor>"#;
const CNG_GCM: &str = r#"<descriptor deserializerType="Microsoft.AspNetCore.DataProtection.AuthenticatedEncryption.ConfigurationModel.CngGcmAuthenticatedEncryptorDescriptorDeserializer, Microsoft.AspNetCore.DataProtection">
    <descriptor>
      <encryption algorithm="AES" keyLength="128" />
      <masterKey><value>AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==</value></masterKey>
    </descriptor>
  </descriptor>"#;
const MANAGED: &str = r#"<descriptor deserializerType="Microsoft.AspNetCore.DataProtection.AuthenticatedEncryption.ConfigurationModel.ManagedAuthenticatedEncryptorDescriptorDeserializer, Microsoft.AspNetCore.DataProtection">
    <descriptor>
      <encryption algorithm="System.Security.Cryptography.Aes, System.Security.Cryptography, Version=8.0.0.0" keyLength="256" />
      <validation algorithm="System.Security.Cryptography.HMACSHA384, System.Security.Cryptography, Version=8.0.0.0" />
      <masterKey><value>AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==</value></masterKey>
    </descriptor>
  </descriptor>"#;

#[test]
fn every_descriptor_kind_names_its_algorithm_pair() {
    let t = t0();
    let end = t + Duration::days(90);
    let mut documents = Vec::new();
    let mut expected = Vec::new();
    for (n, (enc, val, algorithm)) in [
        (
            "AES_128_CBC",
            "HMACSHA256",
            Algorithm::Cbc {
                key_len: 16,
                validation: Validation::HmacSha256,
            },
        ),
        (
            "AES_192_CBC",
            "HMACSHA512",
            Algorithm::Cbc {
                key_len: 24,
                validation: Validation::HmacSha512,
            },
        ),
        ("AES_256_CBC", "HMACSHA256", Algorithm::DEFAULT),
        ("AES_256_GCM", "HMACSHA256", Algorithm::Gcm { key_len: 32 }),
    ]
    .into_iter()
    .enumerate()
    {
        documents.push(key_xml(
            &id(n as u8),
            t,
            t,
            end,
            &descriptor(enc, val, &master_key(1)),
        ));
        expected.push((id(n as u8), algorithm));
    }
    for (n, (xml, algorithm)) in [
        (
            CNG_CBC,
            Algorithm::Cbc {
                key_len: 24,
                validation: Validation::HmacSha512,
            },
        ),
        (CNG_GCM, Algorithm::Gcm { key_len: 16 }),
        (
            MANAGED,
            Algorithm::Cbc {
                key_len: 32,
                validation: Validation::HmacSha384,
            },
        ),
    ]
    .into_iter()
    .enumerate()
    {
        documents.push(key_xml(&id(10 + n as u8), t, t, end, xml));
        expected.push((id(10 + n as u8), algorithm));
    }
    let ring = KeyRing::from_xml(&documents).unwrap();
    for (key_id, algorithm) in expected {
        let key = ring.key(Uuid::parse_str(&key_id).unwrap()).unwrap();
        assert_eq!(
            key.encryptor.as_ref().unwrap().algorithm(),
            algorithm,
            "{key_id}"
        );
        assert_eq!((key.created, key.activated, key.expires), (t, t, end));
    }
}

#[test]
fn keys_encrypted_at_rest_are_refused_naming_the_protection() {
    let t = t0();
    for (decryptor, named) in [
        ("Microsoft.AspNetCore.DataProtection.XmlEncryption.DpapiXmlDecryptor, Microsoft.AspNetCore.DataProtection, Version=8.0.0.0", "Windows DPAPI"),
        ("Microsoft.AspNetCore.DataProtection.XmlEncryption.DpapiNGXmlDecryptor, Microsoft.AspNetCore.DataProtection", "DPAPI-NG"),
        ("Microsoft.AspNetCore.DataProtection.XmlEncryption.EncryptedXmlDecryptor, Microsoft.AspNetCore.DataProtection", "X.509 certificate"),
        ("Azure.Extensions.AspNetCore.DataProtection.Keys.AzureKeyVaultXmlDecryptor, Azure.Extensions.AspNetCore.DataProtection.Keys", "Azure Key Vault"),
        ("Contoso.VaultDecryptor, Contoso", "custom IXmlDecryptor"),
    ] {
        let xml = key_xml(&id(1), t, t, t + Duration::days(90), &encrypted_descriptor(decryptor));
        let ring = Arc::new(KeyRing::from_xml(&[xml]).unwrap());
        let reason = ring.keys()[0].encryptor.as_ref().unwrap_err();
        assert!(reason.contains(named) && reason.contains("unsupported"), "{reason}");
        // Used as the default key (the only one), the error says which key and why.
        let err = DataProtector::new(ring, vec![]).protect(b"x", t + Duration::days(1)).unwrap_err();
        assert!(matches!(err, Error::NoDefaultKey(_)), "{err}");
        assert!(err.to_string().contains(named), "{err}");
    }
}

#[test]
fn a_payload_under_an_encrypted_key_names_the_key_and_the_protection() {
    let t = t0();
    let good = plain_key(1, t, t, t + Duration::days(90));
    let ring = Arc::new(KeyRing::from_xml(std::slice::from_ref(&good)).unwrap());
    let payload = DataProtector::new(ring, vec![]).protect(b"x", t).unwrap();
    let dpapi = key_xml(&id(1), t, t, t + Duration::days(90), &encrypted_descriptor("Microsoft.AspNetCore.DataProtection.XmlEncryption.DpapiXmlDecryptor, Microsoft.AspNetCore.DataProtection"));
    let ring = Arc::new(KeyRing::from_xml(&[dpapi]).unwrap());
    let err = DataProtector::new(ring, vec![])
        .unprotect(&payload)
        .unwrap_err();
    assert!(matches!(err, Error::UnusableKey { .. }));
    assert!(
        err.to_string().contains(&id(1)) && err.to_string().contains("DPAPI"),
        "{err}"
    );
}

#[test]
fn malformed_key_xml_is_a_clear_error() {
    for (xml, says) in [
        ("<key", "not XML"),
        ("<foo/>", "unknown element"),
        (r#"<key id="nope" version="1"/>"#, "not a GUID"),
        (
            r#"<key id="80732141-ec8f-4b80-af9c-c4d2d1ff8901" version="2"/>"#,
            "version",
        ),
    ] {
        let err = KeyRing::from_xml(&[xml]).unwrap_err();
        assert!(
            matches!(err, Error::KeyXml(_)) && err.to_string().contains(says),
            "{err}"
        );
    }
}

#[test]
fn the_default_key_is_chosen_as_dotnet_chooses_it() {
    let t = t0();
    let now = t + Duration::days(30);
    let default_of = |docs: &[String]| {
        KeyRing::from_xml(docs)
            .unwrap()
            .default_key(now)
            .map(|k| k.id.to_string())
    };
    // The newest activated, propagated key wins over an older one.
    let old = plain_key(1, t, t, t + Duration::days(90));
    let newer = plain_key(
        2,
        t + Duration::days(10),
        t + Duration::days(12),
        t + Duration::days(100),
    );
    assert_eq!(default_of(&[old.clone(), newer.clone()]), Some(id(2)));
    // A key not active yet (beyond the 5-minute clock skew) is not the default…
    let future = plain_key(
        3,
        now - Duration::days(3),
        now + Duration::hours(1),
        now + Duration::days(90),
    );
    assert_eq!(default_of(&[old.clone(), future.clone()]), Some(id(1)));
    // …but within the skew it is.
    let almost = plain_key(
        4,
        now - Duration::days(3),
        now + Duration::minutes(4),
        now + Duration::days(90),
    );
    assert_eq!(default_of(&[old.clone(), almost]), Some(id(4)));
    // An expired preferred key falls back to another propagated unrevoked key; never to itself.
    let expired = plain_key(5, t, t + Duration::days(1), now - Duration::days(1));
    assert_eq!(default_of(&[expired.clone(), old.clone()]), Some(id(1)));
    assert_eq!(default_of(&[expired]), None);
    // A revoked preferred key: the fallback is another key, never the revoked one.
    let revoked = revocation_xml(&id(2), now);
    assert_eq!(
        default_of(&[old.clone(), newer.clone(), revoked]),
        Some(id(1))
    );
    // Revoke-all before now: nothing is left.
    assert_eq!(default_of(&[old, newer, revocation_xml("*", now)]), None);
    // Among keys too new to have propagated, the oldest activated is preferred.
    let fresh_a = plain_key(
        6,
        now - Duration::hours(2),
        now - Duration::hours(2),
        now + Duration::days(90),
    );
    let fresh_b = plain_key(
        7,
        now - Duration::hours(1),
        now - Duration::hours(1),
        now + Duration::days(90),
    );
    assert_eq!(default_of(&[fresh_b, fresh_a]), Some(id(6)));
}

fn write_dir(documents: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, xml) in documents {
        std::fs::write(dir.path().join(name), xml).unwrap();
    }
    dir
}

#[test]
fn a_key_directory_is_read_with_its_revocations() {
    let t = t0();
    let dir = write_dir(&[
        (
            &format!("key-{}.xml", id(1)),
            plain_key(1, t, t, t + Duration::days(90)),
        ),
        (
            &format!("key-{}.xml", id(2)),
            plain_key(2, t, t, t + Duration::days(90)),
        ),
        (
            "revocation-20260102T000000Z.xml",
            revocation_xml(&id(2), t + Duration::days(1)),
        ),
        ("README.txt", "not a key".into()),
    ]);
    let ring = KeyRing::from_dir(dir.path()).unwrap();
    assert_eq!(ring.keys().len(), 2);
    let revoked: Vec<bool> = [1, 2]
        .iter()
        .map(|n| ring.key(Uuid::parse_str(&id(*n)).unwrap()).unwrap().revoked)
        .collect();
    assert_eq!(revoked, [false, true]);
    // A broken file is named.
    std::fs::write(dir.path().join("key-broken.xml"), "<key").unwrap();
    let err = KeyRing::from_dir(dir.path()).unwrap_err();
    assert!(err.to_string().contains("key-broken.xml"), "{err}");
    let err = KeyRing::from_dir(&dir.path().join("missing")).unwrap_err();
    assert!(matches!(err, Error::KeySource(_)), "{err}");
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn a_redis_list_is_read_like_persist_keys_to_stack_exchange_redis_writes_it() {
    use ringfence_testkit::RedisServer;
    let server = RedisServer::start().unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let t = t0();
    for xml in [
        plain_key(1, t, t, t + Duration::days(90)),
        key_xml(
            &id(2),
            t,
            t,
            t + Duration::days(90),
            &descriptor("AES_256_GCM", "HMACSHA256", &master_key(2)),
        ),
        revocation_xml(&id(1), t + Duration::days(1)),
    ] {
        let _: () = redis::cmd("RPUSH")
            .arg("DataProtection-Keys")
            .arg(xml)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let ring = KeyRing::from_redis(&server.url(), ringfence_aspnet::DEFAULT_REDIS_KEY)
        .await
        .unwrap();
    assert_eq!(ring.keys().len(), 2);
    assert_eq!(
        ring.default_key(t + Duration::days(3))
            .unwrap()
            .id
            .to_string(),
        id(2)
    );
    let empty = KeyRing::from_redis(&server.url(), "other-list")
        .await
        .unwrap();
    assert!(empty.keys().is_empty());
}

#[test]
fn a_master_key_wrapped_by_the_null_xml_encryptor_is_read() {
    // NullXmlEncryptor (tests, ephemeral setups) wraps the element without encrypting it.
    let t = t0();
    let wrapped = r#"<descriptor deserializerType="Microsoft.AspNetCore.DataProtection.AuthenticatedEncryption.ConfigurationModel.AuthenticatedEncryptorDescriptorDeserializer, Microsoft.AspNetCore.DataProtection">
    <descriptor>
      <encryption algorithm="AES_256_GCM" />
      <validation algorithm="HMACSHA256" />
      <encryptedSecret decryptorType="Microsoft.AspNetCore.DataProtection.XmlEncryption.NullXmlDecryptor, Microsoft.AspNetCore.DataProtection" xmlns="http://schemas.asp.net/2015/03/dataProtection">
        <unencryptedKey xmlns="">
          <masterKey><value>AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==</value></masterKey>
        </unencryptedKey>
      </encryptedSecret>
    </descriptor>
  </descriptor>"#;
    let ring =
        KeyRing::from_xml(&[key_xml(&id(1), t, t, t + Duration::days(90), wrapped)]).unwrap();
    let encryptor = ring.keys()[0].encryptor.as_ref().unwrap();
    assert_eq!(encryptor.algorithm(), Algorithm::Gcm { key_len: 32 });
}
