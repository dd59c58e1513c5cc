//! A software passkey authenticator for the tests: it answers the server's WebAuthn options the
//! way a browser with a platform authenticator would (the `toJSON()` form of the
//! `PublicKeyCredential`), signing with P-256 (ES256), and can be told to lie about the origin or
//! the RP id, or to roll its sign counter back.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// User present, user verified, attested credential data included.
const FLAGS_REGISTER: u8 = 0x01 | 0x04 | 0x40;
/// User present, user verified.
const FLAGS_ASSERT: u8 = 0x01 | 0x04;

/// One discoverable credential.
pub struct SoftPasskey {
    key: SigningKey,
    pub credential_id: Vec<u8>,
    /// The user handle the server gave at registration.
    pub user_handle: Vec<u8>,
    /// The next signature carries this counter, then it goes up by one.
    pub counter: u32,
    /// The origin the "browser" reports in clientDataJSON.
    pub origin: String,
    /// When set, the RP id hashed into authenticatorData instead of the one in the options.
    pub rp_id_override: Option<String>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url from the server")
}

/// CBOR, just enough for an attestation object and a COSE key.
fn cbor_head(major: u8, len: usize, out: &mut Vec<u8>) {
    let major = major << 5;
    match len {
        0..=23 => out.push(major | len as u8),
        24..=255 => out.extend([major | 24, len as u8]),
        _ => {
            out.push(major | 25);
            out.extend((len as u16).to_be_bytes());
        }
    }
}

fn cbor_text(text: &str, out: &mut Vec<u8>) {
    cbor_head(3, text.len(), out);
    out.extend(text.as_bytes());
}

fn cbor_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    cbor_head(2, bytes.len(), out);
    out.extend(bytes);
}

/// A small integer (−24..=23).
fn cbor_int(n: i8, out: &mut Vec<u8>) {
    if n >= 0 {
        cbor_head(0, n as usize, out);
    } else {
        cbor_head(1, (-1 - n) as usize, out);
    }
}

impl SoftPasskey {
    /// A new key that will claim `origin`.
    pub fn new(origin: &str) -> Self {
        let mut credential_id = vec![0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut credential_id);
        Self {
            key: SigningKey::random(&mut rand::rngs::OsRng),
            credential_id,
            user_handle: Vec::new(),
            counter: 1,
            origin: origin.to_owned(),
            rp_id_override: None,
        }
    }

    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_encoded_point(false);
        let mut out = Vec::new();
        cbor_head(5, 5, &mut out);
        cbor_int(1, &mut out); // kty: EC2
        cbor_int(2, &mut out);
        cbor_int(3, &mut out); // alg: ES256
        cbor_int(-7, &mut out);
        cbor_int(-1, &mut out); // crv: P-256
        cbor_int(1, &mut out);
        cbor_int(-2, &mut out);
        cbor_bytes(point.x().expect("x").as_slice(), &mut out);
        cbor_int(-3, &mut out);
        cbor_bytes(point.y().expect("y").as_slice(), &mut out);
        out
    }

    fn auth_data(&mut self, rp_id: &str, flags: u8, attested: bool) -> Vec<u8> {
        let rp_id = self
            .rp_id_override
            .clone()
            .unwrap_or_else(|| rp_id.to_owned());
        let mut out = Sha256::digest(rp_id.as_bytes()).to_vec();
        out.push(flags);
        out.extend(self.counter.to_be_bytes());
        self.counter += 1;
        if attested {
            out.extend([0u8; 16]); // AAGUID
            out.extend((self.credential_id.len() as u16).to_be_bytes());
            out.extend(&self.credential_id);
            out.extend(self.cose_key());
        }
        out
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        json!({"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false})
            .to_string()
            .into_bytes()
    }

    /// Answers `navigator.credentials.create({publicKey})`: the credential's `toJSON()`.
    pub fn register(&mut self, public_key: &Value) -> Value {
        let rp_id = public_key["rp"]["id"].as_str().expect("rp.id").to_owned();
        let challenge = public_key["challenge"].as_str().expect("challenge");
        self.user_handle = unb64(public_key["user"]["id"].as_str().expect("user.id"));
        let client_data = self.client_data("webauthn.create", challenge);
        let auth_data = self.auth_data(&rp_id, FLAGS_REGISTER, true);
        let mut attestation = Vec::new();
        cbor_head(5, 3, &mut attestation);
        cbor_text("fmt", &mut attestation);
        cbor_text("none", &mut attestation);
        cbor_text("attStmt", &mut attestation);
        cbor_head(5, 0, &mut attestation);
        cbor_text("authData", &mut attestation);
        cbor_bytes(&auth_data, &mut attestation);
        self.credential(json!({
            "clientDataJSON": b64(&client_data),
            "attestationObject": b64(&attestation),
            "transports": ["internal"],
        }))
    }

    /// The `PublicKeyCredential` JSON of this credential with `response`.
    fn credential(&self, response: Value) -> Value {
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": response,
        })
    }

    /// Answers `navigator.credentials.get({publicKey})` with this (discoverable) credential.
    pub fn assert(&mut self, public_key: &Value) -> Value {
        let rp_id = public_key["rpId"].as_str().expect("rpId").to_owned();
        let challenge = public_key["challenge"].as_str().expect("challenge");
        let client_data = self.client_data("webauthn.get", challenge);
        let auth_data = self.auth_data(&rp_id, FLAGS_ASSERT, false);
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(&client_data));
        let signature: Signature = self.key.sign(&signed);
        self.credential(json!({
            "clientDataJSON": b64(&client_data),
            "authenticatorData": b64(&auth_data),
            "signature": b64(signature.to_der().as_bytes()),
            "userHandle": b64(&self.user_handle),
        }))
    }
}
