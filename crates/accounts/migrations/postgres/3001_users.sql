-- User accounts (ringfence-accounts). Versions 3000+ belong to this crate; other crates keep their
-- own ranges in the same _sqlx_migrations table.
CREATE TABLE IF NOT EXISTS users (
    id                  TEXT PRIMARY KEY NOT NULL,
    -- Already normalized by Email::parse. COLLATE "C" makes uniqueness and ORDER BY byte-wise,
    -- independent of the database locale and identical to SQLite.
    email               TEXT COLLATE "C" NOT NULL UNIQUE,
    password_hash       TEXT NOT NULL,
    is_admin            BOOLEAN NOT NULL DEFAULT FALSE,
    created_at          TIMESTAMPTZ NOT NULL,
    password_changed_at TIMESTAMPTZ NOT NULL
);
