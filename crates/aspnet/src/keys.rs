//! The key ring as .NET persists it: one XML document per key (`<key id=… version="1">`) and per
//! revocation (`<revocation version="1">`), in a directory (`PersistKeysToFileSystem`) or a Redis
//! list (`PersistKeysToStackExchangeRedis`), and the choice of the default key the way
//! `DefaultKeyResolver` makes it.

use std::path::Path;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use roxmltree::{Document, Node};
use uuid::Uuid;

use crate::encryptor::{Algorithm, Encryptor, Validation};
use crate::Error;

/// The Redis list `PersistKeysToStackExchangeRedis` uses unless told otherwise.
pub const DEFAULT_REDIS_KEY: &str = "DataProtection-Keys";

/// A key created less than this long ago may not have reached every node yet (.NET's
/// `KeyManagementOptions.KeyPropagationWindow`).
const KEY_PROPAGATION_WINDOW: Duration = Duration::days(2);
/// A key whose activation is at most this far in the future counts as active (.NET's
/// `KeyManagementOptions.MaxServerClockSkew`).
const MAX_SERVER_CLOCK_SKEW: Duration = Duration::minutes(5);

/// Where a .NET app persists its key ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A directory of `*.xml` documents (`PersistKeysToFileSystem`).
    Dir(std::path::PathBuf),
    /// A Redis list of XML documents (`PersistKeysToStackExchangeRedis`; cargo feature
    /// `redis`).
    #[cfg(feature = "redis")]
    Redis {
        /// redis:// URL.
        url: String,
        /// The list ([`DEFAULT_REDIS_KEY`] unless the app names another).
        list: String,
    },
}

impl KeySource {
    /// Reads the ring as it is now (.NET adds keys ahead of their activation, so a reader that
    /// loads again every few hours never meets a payload under a key it has not seen).
    pub async fn load(&self) -> Result<KeyRing, Error> {
        match self {
            KeySource::Dir(dir) => KeyRing::from_dir(dir),
            #[cfg(feature = "redis")]
            KeySource::Redis { url, list } => KeyRing::from_redis(url, list).await,
        }
    }
}

/// One key of the ring.
#[derive(Debug)]
pub struct Key {
    /// The key id (a .NET GUID).
    pub id: Uuid,
    /// `<creationDate>`.
    pub created: DateTime<Utc>,
    /// `<activationDate>`: the key protects new payloads from then on.
    pub activated: DateTime<Utc>,
    /// `<expirationDate>`: no new payloads after it (old ones still open).
    pub expires: DateTime<Utc>,
    /// Revoked by a `<revocation>` document: its payloads no longer open.
    pub revoked: bool,
    /// The encryptor, or why this key cannot have one here (say, a DPAPI-encrypted master key).
    pub encryptor: Result<Encryptor, String>,
}

/// A parsed key-ring document.
#[derive(Debug)]
pub enum KeyDocument {
    /// A `<key>`.
    Key(Key),
    /// A `<revocation>`.
    Revocation {
        /// `<revocationDate>`.
        date: DateTime<Utc>,
        /// `None` for `<key id="*"/>`: every key created at or before `date`.
        key: Option<Uuid>,
    },
}

/// The keys of a ring, revocations applied.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: Vec<Key>,
}

impl KeyRing {
    /// Builds a ring from its documents (keys and revocations, any order).
    pub fn from_documents(documents: Vec<KeyDocument>) -> KeyRing {
        let mut keys = Vec::new();
        let mut revoked_ids = Vec::new();
        let mut revoked_before: Option<DateTime<Utc>> = None;
        for document in documents {
            match document {
                KeyDocument::Key(key) => keys.push(key),
                KeyDocument::Revocation { key: Some(id), .. } => revoked_ids.push(id),
                KeyDocument::Revocation { date, key: None } => {
                    revoked_before = Some(revoked_before.map_or(date, |d| d.max(date)));
                }
            }
        }
        for key in &mut keys {
            key.revoked = revoked_ids.contains(&key.id)
                || revoked_before.is_some_and(|date| key.created <= date);
        }
        KeyRing { keys }
    }

    /// Parses XML documents (as the Redis list holds them).
    pub fn from_xml<S: AsRef<str>>(documents: &[S]) -> Result<KeyRing, Error> {
        let parsed = documents
            .iter()
            .enumerate()
            .map(|(i, xml)| {
                parse_document(xml.as_ref())
                    .map_err(|e| Error::KeyXml(format!("element {i} of the list: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KeyRing::from_documents(parsed))
    }

    /// Reads every `*.xml` file of a directory `PersistKeysToFileSystem` writes.
    pub fn from_dir(dir: &Path) -> Result<KeyRing, Error> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| Error::KeySource(format!("cannot read {}: {e}", dir.display())))?;
        let mut documents = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| Error::KeySource(format!("cannot read {}: {e}", dir.display())))?
                .path();
            if path.extension().is_none_or(|ext| ext != "xml") {
                continue;
            }
            let xml = std::fs::read_to_string(&path)
                .map_err(|e| Error::KeySource(format!("cannot read {}: {e}", path.display())))?;
            let document = parse_document(&xml)
                .map_err(|e| Error::KeyXml(format!("{}: {e}", path.display())))?;
            documents.push(document);
        }
        Ok(KeyRing::from_documents(documents))
    }

    /// Reads the Redis list `PersistKeysToStackExchangeRedis` writes.
    #[cfg(feature = "redis")]
    pub async fn from_redis(url: &str, list: &str) -> Result<KeyRing, Error> {
        let client = redis::Client::open(url).map_err(|e| Error::KeySource(e.to_string()))?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| Error::KeySource(format!("redis: {e}")))?;
        let documents: Vec<String> = redis::cmd("LRANGE")
            .arg(list)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(|e| Error::KeySource(format!("redis list {list}: {e}")))?;
        KeyRing::from_xml(&documents)
    }

    /// Every key.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The key with this id.
    pub fn key(&self, id: Uuid) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// The key that protects new payloads at `now`: .NET's preferred default key (the newest
    /// activated key that has propagated, else the oldest that has not), or when that one is
    /// revoked, expired or unusable the fallback a node that may not create keys uses.
    pub fn default_key(&self, now: DateTime<Utc>) -> Option<&Key> {
        let cutoff = now - KEY_PROPAGATION_WINDOW;
        let usable = |k: &&Key| k.encryptor.is_ok();
        let mut propagated: Vec<&Key> = self
            .keys
            .iter()
            .filter(|k| k.activated <= now + MAX_SERVER_CLOCK_SKEW && k.created <= cutoff)
            .collect();
        propagated.sort_by(|a, b| b.activated.cmp(&a.activated).then(a.id.cmp(&b.id)));
        let mut fresh: Vec<&Key> = self
            .keys
            .iter()
            .filter(|k| k.activated <= now + MAX_SERVER_CLOCK_SKEW && k.created > cutoff)
            .collect();
        fresh.sort_by(|a, b| a.activated.cmp(&b.activated).then(a.id.cmp(&b.id)));
        let preferred = propagated.into_iter().chain(fresh).next();
        if let Some(key) = preferred {
            if !key.revoked && key.expires > now && key.encryptor.is_ok() {
                return Some(key);
            }
        }
        let not_preferred = |k: &&Key| !k.revoked && preferred.is_none_or(|p| p.id != k.id);
        let mut old: Vec<&Key> = self
            .keys
            .iter()
            .filter(not_preferred)
            .filter(|k| k.created <= cutoff)
            .collect();
        old.sort_by_key(|k| std::cmp::Reverse(k.created));
        let mut new: Vec<&Key> = self
            .keys
            .iter()
            .filter(not_preferred)
            .filter(|k| k.created > cutoff)
            .collect();
        new.sort_by_key(|k| k.created);
        old.into_iter().chain(new).find(usable)
    }
}

/// Parses one key-ring XML document.
pub fn parse_document(xml: &str) -> Result<KeyDocument, String> {
    let doc = Document::parse(xml).map_err(|e| format!("not XML: {e}"))?;
    let root = doc.root_element();
    match root.tag_name().name() {
        "key" => parse_key(root).map(KeyDocument::Key),
        "revocation" => {
            let date = date_child(root, "revocationDate")?;
            let id = child(root, "key")
                .and_then(|k| k.attribute("id"))
                .ok_or("<revocation> without <key id=…>")?;
            let key = if id == "*" { None } else { Some(parse_id(id)?) };
            Ok(KeyDocument::Revocation { date, key })
        }
        other => Err(format!("unknown element <{other}>")),
    }
}

fn parse_key(root: Node<'_, '_>) -> Result<Key, String> {
    if root.attribute("version") != Some("1") {
        return Err("<key> version is not 1".into());
    }
    let id = parse_id(root.attribute("id").ok_or("<key> without id")?)?;
    let descriptor = child(root, "descriptor").ok_or("<key> without <descriptor>")?;
    Ok(Key {
        id,
        created: date_child(root, "creationDate")?,
        activated: date_child(root, "activationDate")?,
        expires: date_child(root, "expirationDate")?,
        revoked: false,
        encryptor: parse_descriptor(descriptor),
    })
}

/// The encryptor a `<descriptor deserializerType=…>` describes, or why it cannot be built here.
fn parse_descriptor(outer: Node<'_, '_>) -> Result<Encryptor, String> {
    if let Some(secret) = outer
        .descendants()
        .find(|n| n.tag_name().name() == "encryptedSecret")
    {
        let decryptor = secret.attribute("decryptorType").unwrap_or("");
        if !short_type_name(decryptor).starts_with("NullXmlDecryptor") {
            return Err(format!(
                "its master key is encrypted with {} (decryptorType {}): unsupported; \
                 re-encrypt the key ring without ProtectKeysWith… or share it unencrypted",
                describe_decryptor(decryptor),
                short_type_name(decryptor)
            ));
        }
    }
    let deserializer = short_type_name(outer.attribute("deserializerType").unwrap_or(""));
    let inner = child(outer, "descriptor").ok_or("<descriptor> without inner <descriptor>")?;
    let encryption = child(inner, "encryption").ok_or("descriptor without <encryption>")?;
    let algorithm_name = encryption.attribute("algorithm").unwrap_or("");
    let key_bits = || -> Result<usize, String> {
        match encryption.attribute("keyLength") {
            Some("128") => Ok(16),
            Some("192") => Ok(24),
            Some("256") => Ok(32),
            other => Err(format!("unsupported AES key length {other:?}")),
        }
    };
    let algorithm = match deserializer {
        "AuthenticatedEncryptorDescriptorDeserializer" => {
            let validation = child(inner, "validation")
                .and_then(|v| v.attribute("algorithm"))
                .unwrap_or("HMACSHA256");
            named_algorithm(algorithm_name, validation)?
        }
        "ManagedAuthenticatedEncryptorDescriptorDeserializer" => {
            if !short_type_name(algorithm_name).eq_ignore_ascii_case("Aes") {
                return Err(format!("unsupported managed algorithm {algorithm_name}"));
            }
            let validation = child(inner, "validation")
                .and_then(|v| v.attribute("algorithm"))
                .unwrap_or("HMACSHA256");
            Algorithm::Cbc {
                key_len: key_bits()?,
                validation: validation_by_name(short_type_name(validation))?,
            }
        }
        "CngCbcAuthenticatedEncryptorDescriptorDeserializer" => {
            let hash = child(inner, "hash")
                .and_then(|v| v.attribute("algorithm"))
                .unwrap_or("SHA256");
            if algorithm_name != "AES" {
                return Err(format!("unsupported CNG algorithm {algorithm_name}"));
            }
            Algorithm::Cbc {
                key_len: key_bits()?,
                validation: validation_by_name(&format!("HMAC{hash}"))?,
            }
        }
        "CngGcmAuthenticatedEncryptorDescriptorDeserializer" => {
            if algorithm_name != "AES" {
                return Err(format!("unsupported CNG algorithm {algorithm_name}"));
            }
            Algorithm::Gcm {
                key_len: key_bits()?,
            }
        }
        other => return Err(format!("unsupported descriptor deserializer {other:?}")),
    };
    let value = inner
        .descendants()
        .find(|n| n.tag_name().name() == "masterKey")
        .and_then(|m| child(m, "value"))
        .and_then(|v| v.text())
        .ok_or("descriptor without <masterKey><value>")?;
    let master_key = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| "<masterKey> value is not base64".to_string())?;
    Encryptor::new(algorithm, master_key)
}

/// `AES_256_CBC` + `HMACSHA256` and the other names `AuthenticatedEncryptorDescriptor` writes.
fn named_algorithm(encryption: &str, validation: &str) -> Result<Algorithm, String> {
    let (bits, mode) = match encryption.split('_').collect::<Vec<_>>().as_slice() {
        ["AES", bits, mode] => (*bits, *mode),
        _ => return Err(format!("unsupported encryption algorithm {encryption}")),
    };
    let key_len = match bits {
        "128" => 16,
        "192" => 24,
        "256" => 32,
        _ => return Err(format!("unsupported encryption algorithm {encryption}")),
    };
    match mode {
        "CBC" => Ok(Algorithm::Cbc {
            key_len,
            validation: validation_by_name(validation)?,
        }),
        "GCM" => Ok(Algorithm::Gcm { key_len }),
        _ => Err(format!("unsupported encryption algorithm {encryption}")),
    }
}

fn validation_by_name(name: &str) -> Result<Validation, String> {
    match name.to_ascii_uppercase().as_str() {
        "HMACSHA1" => Ok(Validation::HmacSha1),
        "HMACSHA256" => Ok(Validation::HmacSha256),
        "HMACSHA384" => Ok(Validation::HmacSha384),
        "HMACSHA512" => Ok(Validation::HmacSha512),
        _ => Err(format!("unsupported validation algorithm {name}")),
    }
}

fn describe_decryptor(decryptor: &str) -> &'static str {
    match short_type_name(decryptor) {
        "DpapiXmlDecryptor" => "Windows DPAPI (ProtectKeysWithDpapi)",
        "DpapiNGXmlDecryptor" => "Windows DPAPI-NG (ProtectKeysWithDpapiNG)",
        "EncryptedXmlDecryptor" => "an X.509 certificate (ProtectKeysWithCertificate)",
        "AzureKeyVaultXmlDecryptor" => "Azure Key Vault (ProtectKeysWithAzureKeyVault)",
        _ => "a custom IXmlDecryptor",
    }
}

/// `Namespace.Type, Assembly, Version=…` → `Type`.
fn short_type_name(qualified: &str) -> &str {
    let type_name = qualified.split(',').next().unwrap_or("").trim();
    type_name.rsplit('.').next().unwrap_or(type_name)
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|n| n.is_element() && n.tag_name().name() == name)
}

fn date_child(node: Node<'_, '_>, name: &str) -> Result<DateTime<Utc>, String> {
    let text = child(node, name)
        .and_then(|n| n.text())
        .ok_or_else(|| format!("missing <{name}>"))?;
    DateTime::parse_from_rfc3339(text.trim())
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| format!("<{name}> is not a date: {text}"))
}

fn parse_id(id: &str) -> Result<Uuid, String> {
    Uuid::parse_str(id).map_err(|_| format!("key id {id:?} is not a GUID"))
}
