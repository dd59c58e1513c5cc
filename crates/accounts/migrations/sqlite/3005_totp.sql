-- TOTP authenticators (issue 15), one row per user. Secrets are stored only sealed under the
-- key ring (purpose ringfence.mfa.v1/totp-secret/<user id>), never in the clear.
-- `secret`: the confirmed secret (TOTP is on when it is set); `pending_secret`: one set up
-- but not yet confirmed with a code. `last_step`: the last RFC 6238 time step accepted; a
-- code is taken with `UPDATE ... WHERE last_step < step`, so each step works once on every
-- node sharing this database.
CREATE TABLE IF NOT EXISTS user_totp (
    user_id        TEXT PRIMARY KEY NOT NULL,
    secret         TEXT,
    pending_secret TEXT,
    last_step      INTEGER NOT NULL DEFAULT -1,
    updated_at_ms  INTEGER NOT NULL
);
