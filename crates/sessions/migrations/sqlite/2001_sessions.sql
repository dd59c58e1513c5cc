-- ringfence-sessions: server-side session records (SQLite, single node).
-- Versions 2000-2999 belong to ringfence-sessions; other crates migrate the same database with
-- their own ranges, which is why every migrator runs with ignore_missing.
-- Times are unix milliseconds (UTC). expires_at = MIN(idle_expires_at, absolute_expires_at),
-- kept as a column so expiry checks, pruning and counts use one index.
CREATE TABLE IF NOT EXISTS sessions (
    id                  TEXT    NOT NULL PRIMARY KEY,
    user_id             TEXT    NOT NULL,
    created_at          INTEGER NOT NULL,
    last_seen_at        INTEGER NOT NULL,
    idle_expires_at     INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    ip                  TEXT,
    user_agent          TEXT,
    device              TEXT    NOT NULL,
    node                TEXT    NOT NULL
);

-- The per-user index: list, revoke-others and the cap read only one user's rows.
CREATE INDEX IF NOT EXISTS sessions_user_id ON sessions (user_id);

-- Expiry: pruning and the counts are range scans over this index; user_id is in it so
-- COUNT(DISTINCT user_id) never reads the table.
CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at, user_id);
