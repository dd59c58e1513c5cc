//! Key XML exactly as .NET's XmlKeyManager writes it, for the tests.
#![allow(dead_code)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};

pub const DESERIALIZER: &str = "Microsoft.AspNetCore.DataProtection.AuthenticatedEncryption.ConfigurationModel.AuthenticatedEncryptorDescriptorDeserializer, Microsoft.AspNetCore.DataProtection, Version=8.0.0.0, Culture=neutral, PublicKeyToken=adb9793829ddae60";

/// The `<descriptor>` body of `AuthenticatedEncryptorDescriptor` with an unencrypted master key.
pub fn descriptor(encryption: &str, validation: &str, master_key: &[u8]) -> String {
    format!(
        r#"<descriptor deserializerType="{DESERIALIZER}">
    <descriptor>
      <encryption algorithm="{encryption}" />
      <validation algorithm="{validation}" />
      <masterKey p4:requiresEncryption="true" xmlns:p4="http://schemas.asp.net/2015/03/dataProtection">
        <!-- Warning: the key below is in an unencrypted form. -->
        <value>{}</value>
      </masterKey>
    </descriptor>
  </descriptor>"#,
        STANDARD.encode(master_key)
    )
}

/// A descriptor whose master key was encrypted by `decryptor_type` (DPAPI, certificate, …).
pub fn encrypted_descriptor(decryptor_type: &str) -> String {
    format!(
        r#"<descriptor deserializerType="{DESERIALIZER}">
    <descriptor>
      <encryption algorithm="AES_256_CBC" />
      <validation algorithm="HMACSHA256" />
      <encryptedSecret decryptorType="{decryptor_type}" xmlns="http://schemas.asp.net/2015/03/dataProtection">
        <encryptedKey xmlns="">
          <!-- This key is encrypted with Windows DPAPI. -->
          <value>AQAAANCMnd8BFdERjHoAwE/Cl+sBAAAA</value>
        </encryptedKey>
      </encryptedSecret>
    </descriptor>
  </descriptor>"#
    )
}

fn dotnet_date(t: DateTime<Utc>) -> String {
    // .NET's round-trip format: seven fractional digits (ticks).
    format!(
        "{}.{:07}Z",
        t.format("%Y-%m-%dT%H:%M:%S"),
        t.timestamp_subsec_nanos() / 100
    )
}

pub fn key_xml(
    id: &str,
    created: DateTime<Utc>,
    activated: DateTime<Utc>,
    expires: DateTime<Utc>,
    descriptor: &str,
) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<key id="{id}" version="1">
  <creationDate>{}</creationDate>
  <activationDate>{}</activationDate>
  <expirationDate>{}</expirationDate>
  {descriptor}
</key>"#,
        dotnet_date(created),
        dotnet_date(activated),
        dotnet_date(expires)
    )
}

pub fn revocation_xml(id: &str, date: DateTime<Utc>) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<revocation version="1">
  <revocationDate>{}</revocationDate>
  <!-- All keys created before the revocation date are revoked. -->
  <key id="{id}" />
  <reason>test</reason>
</revocation>"#,
        dotnet_date(date)
    )
}

pub fn master_key(seed: u8) -> Vec<u8> {
    (0..64).map(|i| seed.wrapping_add(i)).collect()
}
