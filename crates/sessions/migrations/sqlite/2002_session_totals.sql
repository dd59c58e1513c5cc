-- ringfence-sessions: counts without a scan. One row holds the number of session rows and of
-- distinct users with at least one row; two triggers keep it right in the same transaction as
-- every insert and delete (sign-in, sign-out, revocation, the cap, pruning), so it cannot drift.
-- Rows past their expiry are still counted here until they are deleted: counting first deletes
-- every expired row (by the expires_at index, each row once in its life), then reads this row.
CREATE TABLE IF NOT EXISTS session_totals (
    id       INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    sessions INTEGER NOT NULL,
    users    INTEGER NOT NULL
);

INSERT OR REPLACE INTO session_totals (id, sessions, users)
    SELECT 1, COUNT(*), COUNT(DISTINCT user_id) FROM sessions;

-- A user's first row makes one more signed-in user; the sessions_user_id index answers the
-- EXISTS in O(log n).
CREATE TRIGGER IF NOT EXISTS session_totals_insert AFTER INSERT ON sessions
BEGIN
    UPDATE session_totals
    SET sessions = sessions + 1,
        users = users + NOT EXISTS (
            SELECT 1 FROM sessions WHERE user_id = NEW.user_id AND id <> NEW.id)
    WHERE id = 1;
END;

-- A user's last row gone makes one fewer.
CREATE TRIGGER IF NOT EXISTS session_totals_delete AFTER DELETE ON sessions
BEGIN
    UPDATE session_totals
    SET sessions = sessions - 1,
        users = users - NOT EXISTS (SELECT 1 FROM sessions WHERE user_id = OLD.user_id)
    WHERE id = 1;
END;
