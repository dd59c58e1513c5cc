-- User accounts (ringfence-accounts). Versions 3000+ belong to this crate; other crates keep their
-- own ranges in the same _sqlx_migrations table.
CREATE TABLE IF NOT EXISTS users (
    id                  TEXT PRIMARY KEY NOT NULL,
    -- Already normalized (trimmed, lowercased) by Email::parse, so byte equality is the right
    -- uniqueness rule and ORDER BY email is byte order, as on PostgreSQL with COLLATE "C".
    email               TEXT NOT NULL UNIQUE,
    password_hash       TEXT NOT NULL,
    is_admin            BOOLEAN NOT NULL DEFAULT FALSE,
    -- RFC 3339 text, as sqlx encodes DateTime<Utc> for SQLite.
    created_at          TEXT NOT NULL,
    password_changed_at TEXT NOT NULL
);
