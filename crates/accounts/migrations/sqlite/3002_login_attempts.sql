-- Failed sign-in counters (ringfence-accounts, sign-in throttling). One row per counter; `key` is
-- `account:<sha256 hex>` or `address:<sha256 hex>`, so neither e-mails nor IP addresses are
-- stored. Times are unix milliseconds. A row whose forget_at_ms has passed counts as absent; such
-- rows are purged now and then by the store (the index keeps that cheap).
CREATE TABLE IF NOT EXISTS login_attempts (
    key             TEXT PRIMARY KEY NOT NULL,
    failures        INTEGER NOT NULL,
    -- 0 = not locked.
    locked_until_ms INTEGER NOT NULL,
    forget_at_ms    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS login_attempts_forget_at ON login_attempts (forget_at_ms);
