#!/usr/bin/env python3
"""Writes the seed inputs in fuzz/seeds/ (checked in, so re-running is only needed when the
formats change). Random inputs almost never form a whole key document, so the fuzzer starts from
real ones: material in clear, and wrapped under the master key the target uses ([7] * 32).

Needs the `cryptography` package for AES-256-GCM.
"""
import base64, hashlib, json, os, pathlib

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

HERE = pathlib.Path(__file__).resolve().parent
MASTER = bytes([7] * 32)
key_id = bytes(range(16))
material = bytes(range(32, 64))
hex_id = key_id.hex()
dashed = f"{hex_id[:8]}-{hex_id[8:12]}-{hex_id[12:16]}-{hex_id[16:20]}-{hex_id[20:]}"
times = {
    "created_at": "2026-01-01T00:00:00Z",
    "activates_at": "2026-01-02T00:00:00Z",
    "expires_at": "2026-04-01T00:00:00Z",
}

clear = {"version": 1, "id": dashed, **times,
         "material": {"encryption": "none", "key": base64.b64encode(material).decode()}}
revoked = dict(clear, revoked_at="2026-02-01T00:00:00.123456789Z")

fingerprint = hashlib.sha256(b"ringfence master key fingerprint:" + MASTER).digest()[:8].hex()
nonce = bytes(12)
sealed = AESGCM(MASTER).encrypt(nonce, material, b"ringfence key-wrap v1:" + key_id)
wrapped = {"version": 1, "id": dashed, **times,
           "material": {"encryption": "aes256gcm", "master_key": fingerprint,
                        "nonce": base64.b64encode(nonce).decode(),
                        "ciphertext": base64.b64encode(sealed).decode()}}

out = HERE / "key_document"
out.mkdir(exist_ok=True)
for name, doc in [("clear.json", clear), ("revoked.json", revoked), ("wrapped.json", wrapped)]:
    (out / name).write_text(json.dumps(doc))

# A payload-shaped input for `unprotect`: version byte, key id, nonce, 64 bytes, tag. The target
# splices the ring's real key id over bytes 1..17, so this reaches AES-GCM authentication.
out = HERE / "unprotect"
out.mkdir(exist_ok=True)
payload = bytes([1]) + key_id + bytes(12) + bytes(64) + bytes(16)
(out / "payload.bin").write_bytes(payload)
(out / "payload.b64").write_text(base64.urlsafe_b64encode(payload).decode().rstrip("="))
