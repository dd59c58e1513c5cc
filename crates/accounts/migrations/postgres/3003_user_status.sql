-- Account status (issue 14). Accounts that existed before this migration count as unverified:
-- nobody proved they read mail at their address, and marking them verified would let an account
-- registered with someone else's address pass `--require-verified-email`. Such a user gets a
-- verification mail when they next sign in with the right password (see docs/ARCHITECTURE.md).
ALTER TABLE users ADD COLUMN IF NOT EXISTS email_verified BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN IF NOT EXISTS disabled BOOLEAN NOT NULL DEFAULT FALSE;
-- The admin listing pages by id (`WHERE id > $1 ORDER BY id`): byte order, as on SQLite,
-- whatever the database's locale.
ALTER TABLE users ALTER COLUMN id TYPE TEXT COLLATE "C";
