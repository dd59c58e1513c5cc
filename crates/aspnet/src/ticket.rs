//! `TicketSerializer` (format version 5), the binary form of an `AuthenticationTicket` that the
//! cookie handler protects and an `ITicketStore` stores. Integers are little-endian `Int32`,
//! strings .NET `BinaryWriter` strings (7-bit-encoded byte length, UTF-8), and a string equal to
//! its usual default is written as `"\0"` instead.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Error;

const FORMAT_VERSION: i32 = 5;
const PROPERTIES_VERSION: i32 = 1;
/// Stands for "the default value" of a string field.
const DEFAULT_PLACEHOLDER: &str = "\0";
/// `ClaimsIdentity.DefaultNameClaimType`.
pub const DEFAULT_NAME_CLAIM_TYPE: &str =
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name";
/// `ClaimsIdentity.DefaultRoleClaimType`.
pub const DEFAULT_ROLE_CLAIM_TYPE: &str =
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/role";
/// `ClaimValueTypes.String`.
pub const STRING_VALUE_TYPE: &str = "http://www.w3.org/2001/XMLSchema#string";
/// `ClaimsIdentity.DefaultIssuer`.
pub const DEFAULT_ISSUER: &str = "LOCAL AUTHORITY";
/// `ClaimTypes.NameIdentifier`.
pub const NAME_IDENTIFIER_CLAIM_TYPE: &str =
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier";
/// `ClaimTypes.Email`.
pub const EMAIL_CLAIM_TYPE: &str =
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress";
/// Nesting deeper than this (actors of actors…) is refused rather than recursed into.
const MAX_ACTOR_DEPTH: usize = 16;

/// An authentication ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticationTicket {
    /// The authentication scheme (`Cookies`).
    pub scheme: String,
    /// The principal's identities.
    pub identities: Vec<Identity>,
    /// `AuthenticationProperties.Items`, in order (`.issued`, `.expires`, `.persistent`, …).
    pub properties: Vec<(String, String)>,
}

/// A `ClaimsIdentity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `AuthenticationType` (empty for none).
    pub authentication_type: String,
    /// `NameClaimType`.
    pub name_claim_type: String,
    /// `RoleClaimType`.
    pub role_claim_type: String,
    /// The claims.
    pub claims: Vec<Claim>,
    /// A string `BootstrapContext`.
    pub bootstrap_context: Option<String>,
    /// `Actor`: the identity acting on behalf of this one.
    pub actor: Option<Box<Identity>>,
}

impl Identity {
    /// An identity with .NET's default name and role claim types.
    pub fn new(authentication_type: &str, claims: Vec<Claim>) -> Identity {
        Identity {
            authentication_type: authentication_type.to_owned(),
            name_claim_type: DEFAULT_NAME_CLAIM_TYPE.to_owned(),
            role_claim_type: DEFAULT_ROLE_CLAIM_TYPE.to_owned(),
            claims,
            bootstrap_context: None,
            actor: None,
        }
    }
}

/// A `Claim`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claim {
    /// `Type`.
    #[serde(rename = "type")]
    pub claim_type: String,
    /// `Value`.
    pub value: String,
    /// `ValueType`.
    #[serde(skip)]
    pub value_type: String,
    /// `Issuer`.
    #[serde(skip)]
    pub issuer: String,
    /// `OriginalIssuer`.
    #[serde(skip)]
    pub original_issuer: String,
    /// `Properties`.
    #[serde(skip)]
    pub properties: Vec<(String, String)>,
}

impl Claim {
    /// A string claim issued by `LOCAL AUTHORITY`, as `new Claim(type, value)` makes it.
    pub fn new(claim_type: &str, value: &str) -> Claim {
        Claim {
            claim_type: claim_type.to_owned(),
            value: value.to_owned(),
            value_type: STRING_VALUE_TYPE.to_owned(),
            issuer: DEFAULT_ISSUER.to_owned(),
            original_issuer: DEFAULT_ISSUER.to_owned(),
            properties: Vec::new(),
        }
    }
}

impl AuthenticationTicket {
    /// The value of property `key`.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `.issued` (`IssuedUtc`).
    pub fn issued(&self) -> Option<DateTime<Utc>> {
        self.property(".issued").and_then(parse_rfc1123)
    }

    /// `.expires` (`ExpiresUtc`).
    pub fn expires(&self) -> Option<DateTime<Utc>> {
        self.property(".expires").and_then(parse_rfc1123)
    }

    /// `.persistent` present (`IsPersistent`).
    pub fn is_persistent(&self) -> bool {
        self.property(".persistent").is_some()
    }

    /// Every claim of every identity, in order.
    pub fn claims(&self) -> impl Iterator<Item = &Claim> {
        self.identities.iter().flat_map(|i| i.claims.iter())
    }

    /// The first claim of `claim_type`.
    pub fn claim(&self, claim_type: &str) -> Option<&str> {
        self.claims()
            .find(|c| c.claim_type == claim_type)
            .map(|c| c.value.as_str())
    }

    /// Serializes as `TicketSerializer.Serialize` does.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        write_string(&mut out, &self.scheme);
        write_count(&mut out, self.identities.len());
        for identity in &self.identities {
            write_identity(&mut out, identity);
        }
        write_pairs(&mut out, PROPERTIES_VERSION, &self.properties);
        out
    }

    /// Deserializes what `TicketSerializer.Serialize` wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<AuthenticationTicket, Error> {
        let mut reader = Reader { bytes, pos: 0 };
        let version = reader.int()?;
        if version != FORMAT_VERSION {
            return Err(Error::Ticket(format!("format version {version}, not 5")));
        }
        let scheme = reader.string()?;
        let count = reader.count()?;
        let mut identities = Vec::new();
        for _ in 0..count {
            identities.push(reader.identity(0)?);
        }
        let properties_version = reader.int()?;
        if properties_version != PROPERTIES_VERSION {
            return Err(Error::Ticket(format!(
                "properties version {properties_version}, not 1"
            )));
        }
        let properties = reader.pairs()?;
        if reader.pos != bytes.len() {
            return Err(Error::Ticket("trailing bytes after the ticket".into()));
        }
        Ok(AuthenticationTicket {
            scheme,
            identities,
            properties,
        })
    }
}

/// `DateTimeOffset.ToString("r")`: `Sun, 06 Dec 2026 22:00:00 GMT`.
pub fn format_rfc1123(time: DateTime<Utc>) -> String {
    time.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn parse_rfc1123(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(&text.replace("GMT", "+0000"))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// A .NET `BinaryWriter` string: 7-bit-encoded UTF-8 byte length, then the bytes.
pub(crate) fn write_string(out: &mut Vec<u8>, text: &str) {
    let mut len = text.len() as u32;
    while len >= 0x80 {
        out.push((len as u8) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(text.as_bytes());
}

fn write_with_default(out: &mut Vec<u8>, value: &str, default: &str) {
    write_string(
        out,
        if value == default {
            DEFAULT_PLACEHOLDER
        } else {
            value
        },
    );
}

fn write_count(out: &mut Vec<u8>, count: usize) {
    out.extend_from_slice(&(count as i32).to_le_bytes());
}

fn write_pairs(out: &mut Vec<u8>, version: i32, pairs: &[(String, String)]) {
    out.extend_from_slice(&version.to_le_bytes());
    write_count(out, pairs.len());
    for (key, value) in pairs {
        write_string(out, key);
        write_string(out, value);
    }
}

fn write_identity(out: &mut Vec<u8>, identity: &Identity) {
    write_string(out, &identity.authentication_type);
    write_with_default(out, &identity.name_claim_type, DEFAULT_NAME_CLAIM_TYPE);
    write_with_default(out, &identity.role_claim_type, DEFAULT_ROLE_CLAIM_TYPE);
    write_count(out, identity.claims.len());
    for claim in &identity.claims {
        write_with_default(out, &claim.claim_type, &identity.name_claim_type);
        write_string(out, &claim.value);
        write_with_default(out, &claim.value_type, STRING_VALUE_TYPE);
        write_with_default(out, &claim.issuer, DEFAULT_ISSUER);
        write_with_default(out, &claim.original_issuer, &claim.issuer);
        write_count(out, claim.properties.len());
        for (key, value) in &claim.properties {
            write_string(out, key);
            write_string(out, value);
        }
    }
    match &identity.bootstrap_context {
        Some(context) => {
            out.push(1);
            write_string(out, context);
        }
        None => out.push(0),
    }
    match &identity.actor {
        Some(actor) => {
            out.push(1);
            write_identity(out, actor);
        }
        None => out.push(0),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| Error::Ticket("truncated".into()))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn int(&mut self) -> Result<i32, Error> {
        let mut buf = [0u8; 4];
        buf.copy_from_slice(self.take(4)?);
        Ok(i32::from_le_bytes(buf))
    }

    /// A count, each counted item taking at least one byte: a count beyond the bytes left is
    /// refused before anything is allocated for it.
    fn count(&mut self) -> Result<usize, Error> {
        let count = self.int()?;
        usize::try_from(count)
            .ok()
            .filter(|&c| c <= self.bytes.len() - self.pos)
            .ok_or_else(|| Error::Ticket(format!("impossible count {count}")))
    }

    fn bool(&mut self) -> Result<bool, Error> {
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(Error::Ticket(format!("boolean byte {other}"))),
        }
    }

    fn string(&mut self) -> Result<String, Error> {
        let mut len: u32 = 0;
        for shift in (0..35).step_by(7) {
            let byte = self.take(1)?[0];
            len |= u32::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                let bytes = self.take(len as usize)?;
                return String::from_utf8(bytes.to_vec())
                    .map_err(|_| Error::Ticket("a string is not UTF-8".into()));
            }
        }
        Err(Error::Ticket("a string length is malformed".into()))
    }

    fn with_default(&mut self, default: &str) -> Result<String, Error> {
        let value = self.string()?;
        Ok(if value == DEFAULT_PLACEHOLDER {
            default.to_owned()
        } else {
            value
        })
    }

    fn pairs(&mut self) -> Result<Vec<(String, String)>, Error> {
        let count = self.count()?;
        let mut pairs = Vec::new();
        for _ in 0..count {
            pairs.push((self.string()?, self.string()?));
        }
        Ok(pairs)
    }

    fn identity(&mut self, depth: usize) -> Result<Identity, Error> {
        if depth > MAX_ACTOR_DEPTH {
            return Err(Error::Ticket("actors nested too deeply".into()));
        }
        let authentication_type = self.string()?;
        let name_claim_type = self.with_default(DEFAULT_NAME_CLAIM_TYPE)?;
        let role_claim_type = self.with_default(DEFAULT_ROLE_CLAIM_TYPE)?;
        let count = self.count()?;
        let mut claims = Vec::new();
        for _ in 0..count {
            let claim_type = self.with_default(&name_claim_type)?;
            let value = self.string()?;
            let value_type = self.with_default(STRING_VALUE_TYPE)?;
            let issuer = self.with_default(DEFAULT_ISSUER)?;
            let original_issuer = self.with_default(&issuer)?;
            let count = self.count()?;
            let mut properties = Vec::new();
            for _ in 0..count {
                properties.push((self.string()?, self.string()?));
            }
            claims.push(Claim {
                claim_type,
                value,
                value_type,
                issuer,
                original_issuer,
                properties,
            });
        }
        let bootstrap_context = if self.bool()? {
            Some(self.string()?)
        } else {
            None
        };
        let actor = if self.bool()? {
            Some(Box::new(self.identity(depth + 1)?))
        } else {
            None
        };
        Ok(Identity {
            authentication_type,
            name_claim_type,
            role_claim_type,
            claims,
            bootstrap_context,
            actor,
        })
    }
}
