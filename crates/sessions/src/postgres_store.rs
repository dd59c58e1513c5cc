//! Sessions in PostgreSQL: the store a fleet shares when it has PostgreSQL but no Redis.
//!
//! Table `sessions` (migration `migrations/postgres/2001_sessions.sql`): the same columns as the
//! SQLite table, times as BIGINT unix milliseconds, `expires_at = LEAST(idle_expires_at,
//! absolute_expires_at)`. The per-user index is `(user_id, expires_at)`: a user's listing, count,
//! revocations and cap read only that user's entries. `(expires_at, user_id)` serves expiry;
//! `(last_seen_at DESC, id)` the admin listing of everyone.
//!
//! # Consistency
//!
//! - **Every check reads the row.** [`SessionStore::get`] is one `SELECT` by primary key with the
//!   expiry in its `WHERE`, so a revocation committed on any node refuses the session on every
//!   node at its next request (there is no cache in front of PostgreSQL).
//! - **Touch is one `UPDATE … WHERE expires_at > now`**: a renewal racing a revocation waits for
//!   the delete and then matches nothing, so it never resurrects a session, and the absolute
//!   expiry is the stored one, never pushed out.
//! - **Per-user writes take the user's lock first.** Insert (with the cap), remove, remove-for-
//!   user and list run in one transaction that starts with a transaction-level advisory lock on
//!   the user (`ringfence_lock_session_users`), then deletes the user's expired rows, then works.
//!   Two nodes signing the same user in at once therefore apply the cap one after the other, and
//!   the counts below decide "first (last) session of this user" without a race.
//! - **Counts without a scan.** Statement-level triggers keep `session_totals` (16 stripes by
//!   user id hash, so sign-ins of different users rarely queue on one row) in the same
//!   transaction as every insert and delete. [`SessionStore::counts`] is one read-only statement:
//!   the totals minus the rows that have expired by `now` but are not deleted yet (a range of the
//!   expiry index, which the sweep keeps short). Exact to the millisecond, no write, no lock.
//!
//! # Expiry: lazy, bounded sweeps
//!
//! Expired rows are never served (every read filters on `expires_at`), and they are deleted
//! three ways: a user's own expired rows whenever that user's sessions are written or listed;
//! and a **bounded sweep** of anyone's (at most [`SWEEP_BATCH`] rows, oldest expiry first)
//! after every insert and every count, in its own short transaction. Why not a background task:
//! the store needs no task to start, hold or forget on every node; the work follows creation
//! (each sign-in clears up to [`SWEEP_BATCH`] dead rows, more than it adds), and the `/metrics`
//! scrape keeps clearing a backlog even when nobody signs in. Why it does not block requests:
//! only one node sweeps at a time (a `pg_try_advisory_xact_lock`; the others skip rather than
//! wait), a sweep locks only the users it deletes rows of, in key order, for one batch, and the
//! request paths that read (`get`, `touch`, the counts) take no advisory lock at all. A failed
//! sweep is logged, never the caller's error.
//!
//! Every deleted expired row is logged and counted as `expired` ([`crate::events`]) once its
//! transaction has committed.
//!
//! [`SessionStore::counts`]: crate::SessionStore::counts
//! [`SessionStore::get`]: crate::SessionStore::get

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres};

use crate::sql::{
    self, counts, decode, map_sqlx_error, millis, parse_ids, Expired, UserWrite, COLUMNS,
};
use crate::{Session, SessionCounts, SessionId, StoreError};

/// The statements this store shares with the SQLite one.
type Table = sql::Table<Postgres>;

/// Expired rows of any user deleted by one sweep: enough to outpace creation (one row per
/// insert), small enough that the users it locks are released within milliseconds.
pub const SWEEP_BATCH: i64 = 256;

/// Advisory lock class of the sweeper (`'rfsw'`): one sweep at a time across the fleet. The
/// per-user locks use class `'rfss'` (in the migration), so the two never collide.
const SWEEPER_LOCK_CLASS: i32 = 0x7266_7377;

/// A [`SessionStore`](crate::SessionStore) over a PostgreSQL database (see the module docs for the
/// schema).
#[derive(Debug, Clone)]
pub struct PostgresSessionStore {
    pool: PgPool,
}

impl PostgresSessionStore {
    /// Wraps a pool (it may be the accounts database's); call [`Self::migrate`] once at startup.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool this store uses.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates or upgrades the `sessions` tables. Other crates migrate the same database with
    /// their own version ranges (this crate owns 2000-2999), so versions applied by them are
    /// ignored rather than treated as unknown. PostgreSQL's migrator holds an advisory lock, so
    /// nodes starting together apply each migration once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sql::migrate(sqlx::migrate!("migrations/postgres"), &self.pool).await
    }

    /// Starts a write for one user: the user's lock, then that user's expired rows deleted (the
    /// per-user half of pruning), to be reported when the transaction commits.
    async fn begin_user_write(
        &self,
        user_id: &str,
        now_ms: i64,
    ) -> Result<UserWrite<Postgres>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_sqlx_error)?;
        sqlx::query("SELECT ringfence_lock_session_users(ARRAY[$1::TEXT])")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx_error)?;
        Table::prune_user(tx, user_id, now_ms).await
    }

    /// Deletes up to [`SWEEP_BATCH`] expired rows of anyone, unless another node is sweeping;
    /// returns how many it deleted.
    pub async fn sweep(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let now_ms = millis(now);
        let mut tx = self.pool.begin().await.map_err(map_sqlx_error)?;
        let ours: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, 0)")
            .bind(SWEEPER_LOCK_CLASS)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_sqlx_error)?;
        if !ours {
            return Ok(0);
        }
        let doomed: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, user_id FROM sessions WHERE expires_at <= $1 \
             ORDER BY expires_at LIMIT $2",
        )
        .bind(now_ms)
        .bind(SWEEP_BATCH)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        if doomed.is_empty() {
            return Ok(0);
        }
        let (ids, users): (Vec<String>, Vec<String>) = doomed.into_iter().unzip();
        // The users' locks before any row lock, as every per-user writer takes them (see the
        // migration): no writer of these users is between its first and last statement now.
        sqlx::query("SELECT ringfence_lock_session_users($1)")
            .bind(&users)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx_error)?;
        // Checked again: a row renewed between the SELECT and the locks stays.
        let gone: Vec<(String, String)> = sqlx::query_as(
            "DELETE FROM sessions WHERE id = ANY($1) AND expires_at <= $2 RETURNING id, user_id",
        )
        .bind(&ids)
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        let swept = gone.len();
        Expired(gone).commit(tx).await?;
        Ok(swept)
    }

    /// A sweep whose failure is only logged: the caller's own work has already committed.
    async fn sweep_quietly(&self, now: DateTime<Utc>) {
        if let Err(error) = self.sweep(now).await {
            tracing::warn!(%error, "sweeping expired sessions failed; the next sweep retries");
        }
    }
}

/// What PostgreSQL does its own way in `SessionStore`; the rest, the same for the SQLite
/// store, is generated by `sql::impl_session_store!` below.
impl PostgresSessionStore {
    /// `SessionStore::insert`; the cap's victims go in one statement, then a sweep follows.
    async fn insert_session(
        &self,
        session: &Session,
        cap: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionId>, StoreError> {
        let now_ms = millis(now);
        let mut write = self.begin_user_write(&session.user_id, now_ms).await?;
        Table::insert(&mut write, session).await?;
        // The user's lock makes the cap's read and this delete one step against other nodes'
        // sign-ins.
        let victims = Table::cap_victims(&mut write, session, cap, now_ms).await?;
        if !victims.is_empty() {
            sqlx::query("DELETE FROM sessions WHERE id = ANY($1)")
                .bind(&victims)
                .execute(&mut *write.tx)
                .await
                .map_err(map_sqlx_error)?;
        }
        let evicted = parse_ids(&victims)?;
        write.commit().await?;
        self.sweep_quietly(now).await;
        Ok(evicted)
    }

    /// `SessionStore::get`: read only, one statement.
    async fn get_session(
        &self,
        user_id: &str,
        id: &SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        // Read only: a dead row is left to the user's next write or the sweep.
        let query = format!(
            "SELECT {COLUMNS} FROM sessions WHERE id = $1 AND user_id = $2 AND expires_at > $3"
        );
        let row = sqlx::query(&query)
            .bind(id.as_str())
            .bind(user_id)
            .bind(millis(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        row.as_ref().map(decode).transpose()
    }

    /// `SessionStore::touch`: one statement, no transaction and no lock.
    async fn touch_session(
        &self,
        session: &Session,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // One statement: atomic against a concurrent delete, and it inserts nothing, so the
        // totals and the users' locks are not involved.
        let result = sqlx::query(
            "UPDATE sessions SET last_seen_at = $1, idle_expires_at = $2, \
             expires_at = LEAST($2, absolute_expires_at) \
             WHERE id = $3 AND user_id = $4 AND expires_at > $5",
        )
        .bind(millis(session.last_seen_at))
        .bind(millis(session.idle_expires_at))
        .bind(session.id.as_str())
        .bind(&session.user_id)
        .bind(millis(now))
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(result.rows_affected() > 0)
    }

    /// `SessionStore::counts`: the totals minus the backlog, then a sweep.
    async fn count_sessions(&self, now: DateTime<Utc>) -> Result<SessionCounts, StoreError> {
        // One statement, so one snapshot: the totals and the rows they count agree. The
        // backlog is the rows expired by `now` but not deleted yet; a user leaves the count
        // when none of their rows is live.
        let (sessions, users): (i64, i64) = sqlx::query_as(
            "SELECT \
               (SELECT COALESCE(SUM(sessions), 0) FROM session_totals)::BIGINT \
                 - (SELECT COUNT(*) FROM sessions WHERE expires_at <= $1), \
               (SELECT COALESCE(SUM(users), 0) FROM session_totals)::BIGINT \
                 - (SELECT COUNT(DISTINCT e.user_id) FROM sessions e \
                    WHERE e.expires_at <= $1 AND NOT EXISTS ( \
                      SELECT 1 FROM sessions l \
                      WHERE l.user_id = e.user_id AND l.expires_at > $1))",
        )
        .bind(millis(now))
        .fetch_one(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        self.sweep_quietly(now).await;
        Ok(counts(sessions, users))
    }
}

sql::impl_session_store!(PostgresSessionStore, Postgres);
