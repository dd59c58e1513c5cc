-- Single-use tokens of mail links (issue 14): password reset, address verification, address
-- change. Only the SHA-256 of a token is stored (hex), never the token. `binding` is a digest of
-- the account's state when the token was issued (see ringfence_accounts::tokens): once the
-- password or the address changes the token is void. Times are unix milliseconds; expired rows
-- are purged now and then by the store.
CREATE TABLE IF NOT EXISTS mail_tokens (
    token_hash    TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    purpose       TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    binding       TEXT NOT NULL,
    -- The address an e-mail change moves to; NULL for the other purposes.
    new_email     TEXT
);
CREATE INDEX IF NOT EXISTS mail_tokens_expires_at ON mail_tokens (expires_at_ms);
