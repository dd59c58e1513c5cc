-- Passkeys (WebAuthn, issue 15): several per user, each with the name its owner gave it.
-- `credential_id` is the authenticator's credential id (URL-safe base64, unique: one credential
-- belongs to one account); `credential` is webauthn-rs's Passkey as JSON: the public key, the
-- sign counter and the backup flags, rewritten after each sign-in. Times are unix milliseconds.
-- Deleting the user deletes its passkeys.
CREATE TABLE IF NOT EXISTS passkeys (
    id              TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    user_id         TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id   TEXT COLLATE "C" NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    credential      TEXT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    last_used_at_ms BIGINT
);
CREATE INDEX IF NOT EXISTS passkeys_user_id ON passkeys (user_id);
