-- Recovery codes (issue 15): the SHA-256 (hex) of each unused code of a user's current set.
-- Codes carry 120 random bits, so a fast hash is enough (see ringfence_accounts::factors).
-- Using a code deletes its row (one DELETE: exactly one of concurrent uses wins); a new set
-- replaces every row of the user in one transaction.
CREATE TABLE IF NOT EXISTS recovery_codes (
    user_id   TEXT COLLATE "C" NOT NULL,
    code_hash TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);
