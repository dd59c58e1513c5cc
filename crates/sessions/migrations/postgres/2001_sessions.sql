-- ringfence-sessions: server-side session records on PostgreSQL, shared by every node.
-- Versions 2000-2999 belong to ringfence-sessions; other crates migrate the same database with
-- their own ranges, which is why every migrator runs with ignore_missing.
-- Times are unix milliseconds (UTC), as in the SQLite schema. expires_at =
-- LEAST(idle_expires_at, absolute_expires_at), kept as a column so expiry checks, pruning and
-- counts use one index. Ids and user ids compare byte by byte (COLLATE "C").
CREATE TABLE IF NOT EXISTS sessions (
    id                  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    user_id             TEXT COLLATE "C" NOT NULL,
    created_at          BIGINT NOT NULL,
    last_seen_at        BIGINT NOT NULL,
    idle_expires_at     BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL,
    ip                  TEXT,
    user_agent          TEXT,
    device              TEXT NOT NULL,
    node                TEXT NOT NULL
);

-- The per-user index: a user's list, count, revocations and cap read only that user's rows,
-- and the expiry in it answers "active sessions of this user" without reading the table.
CREATE INDEX IF NOT EXISTS sessions_user_id ON sessions (user_id, expires_at);

-- Expiry: the sweep and the counts' expired backlog are range scans over this index.
CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at, user_id);

-- The admin listing of everyone's sessions, most recently seen first.
CREATE INDEX IF NOT EXISTS sessions_last_seen_at ON sessions (last_seen_at DESC, id);

-- Counts without a scan: 16 rows (stripes), each holding the session rows and the distinct
-- users with a row whose user id hashes to it. A user always lands in the same stripe, so a
-- stripe's user total is exact; spreading users over 16 rows keeps sign-ins of different users
-- from queueing on one row lock. Rows past their expiry count here until they are deleted; the
-- store subtracts that backlog when it reads the totals.
CREATE TABLE IF NOT EXISTS session_totals (
    stripe   INTEGER NOT NULL PRIMARY KEY CHECK (stripe BETWEEN 0 AND 15),
    sessions BIGINT  NOT NULL,
    users    BIGINT  NOT NULL
);
INSERT INTO session_totals (stripe, sessions, users)
    SELECT g, 0, 0 FROM generate_series(0, 15) AS g
    ON CONFLICT (stripe) DO NOTHING;

-- Every writer that inserts or deletes a user's rows holds that user's lock (a transaction-level
-- advisory lock, class 1919316851 = 'rfss', key hashtext(user_id)) first, so "was this the
-- user's first (last) row" is decided by one transaction at a time. Several users are locked in
-- ascending key order, so two writers never wait on each other in a cycle.
CREATE OR REPLACE FUNCTION ringfence_lock_session_users(user_ids TEXT[]) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    lock_key INTEGER;
BEGIN
    FOR lock_key IN SELECT DISTINCT hashtext(u) FROM unnest(user_ids) AS u ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(1919316851, lock_key);
    END LOOP;
END
$$;

-- Keeps session_totals right for every statement that inserts or deletes rows, whatever wrote
-- it: one call per statement with the rows it changed (`changed`). A user counts once more when
-- their only rows are the ones just inserted, once less when no row of theirs is left. The
-- users' locks are taken first (already held by the store's own writers), then the stripes are
-- updated in ascending order.
CREATE OR REPLACE FUNCTION ringfence_count_sessions() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
DECLARE
    direction BIGINT := CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END;
    moved RECORD;
BEGIN
    PERFORM ringfence_lock_session_users(ARRAY(SELECT DISTINCT user_id FROM changed));
    FOR moved IN
        SELECT hashtext(c.user_id) & 15 AS stripe,
               COUNT(*) AS sessions,
               COUNT(DISTINCT c.user_id) FILTER (WHERE NOT EXISTS (
                   SELECT 1 FROM sessions s
                   WHERE s.user_id = c.user_id
                     AND NOT EXISTS (SELECT 1 FROM changed n WHERE n.id = s.id))) AS users
        FROM changed c
        GROUP BY 1
        ORDER BY 1
    LOOP
        UPDATE session_totals
        SET sessions = sessions + direction * moved.sessions,
            users = users + direction * moved.users
        WHERE stripe = moved.stripe;
    END LOOP;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS sessions_count_inserts ON sessions;
CREATE TRIGGER sessions_count_inserts AFTER INSERT ON sessions
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION ringfence_count_sessions();

DROP TRIGGER IF EXISTS sessions_count_deletes ON sessions;
CREATE TRIGGER sessions_count_deletes AFTER DELETE ON sessions
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION ringfence_count_sessions();
