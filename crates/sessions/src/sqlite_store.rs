//! Sessions in SQLite: the embedded, zero-setup store for a single node.
//!
//! SQLite is the single-node store: every node would need the same file, so a fleet uses
//! [`crate::RedisSessionStore`] or [`crate::PostgresSessionStore`] instead.
//!
//! Table `sessions` (migration `migrations/sqlite/2001_sessions.sql`): one row per session, times
//! as INTEGER unix milliseconds, plus `expires_at = MIN(idle_expires_at, absolute_expires_at)`.
//! The per-user index is the `(user_id)` index; expiry checks and pruning use the
//! `(expires_at, user_id)` index.
//!
//! **Counts** (migration `2002_session_totals.sql`): table `session_totals` holds one row, the
//! number of session rows and of distinct users with a row, kept by `AFTER INSERT` and `AFTER
//! DELETE` triggers inside the same transaction as every change, so it cannot drift.
//! [`SessionStore::counts`] deletes every expired row first (by the expiry index: each row is
//! deleted once in its life, so the cost is the sessions that expired since the last count, not
//! all of them) and then reads that row: exact to the millisecond, never a scan of the live
//! sessions. A user's count is the `(user_id)` index range of their rows.
//!
//! **Expiry events**: every statement that deletes expired rows returns their ids, and each is
//! logged and counted as `expired` ([`crate::events`]) once its transaction has committed.
//!
//! Every write runs in a `BEGIN IMMEDIATE` transaction: it takes the write lock up front, so two
//! writers queue on the busy timeout instead of failing with `SQLITE_BUSY` when a read lock
//! cannot be upgraded. Expired rows of a user are deleted whenever that user's sessions are
//! written or listed, and every insert also deletes a bounded batch of expired rows of anyone,
//! so the table cannot grow with dead sessions.
//!
//! Times are stored at millisecond precision; [`crate::SessionManager`] creates sessions with
//! millisecond times, so what it holds equals what it reads back.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Row, Sqlite, SqlitePool};

use crate::sql::{
    self, counts, decode, map_sqlx_error, millis, parse_ids, Expired, UserWrite, COLUMNS,
};
use crate::{Session, SessionCounts, SessionId, SessionStore, StoreError};

/// The statements this store shares with the PostgreSQL one.
type Table = sql::Table<Sqlite>;

/// Expired rows of any user deleted per insert: enough to outpace creation (one row per
/// insert), small enough that no insert stalls on a large backlog.
const GLOBAL_PRUNE_BATCH: i64 = 256;

/// [`SessionStore`] over a SQLite database (see the module docs for the schema).
#[derive(Debug, Clone)]
pub struct SqliteSessionStore {
    pool: SqlitePool,
}

impl SqliteSessionStore {
    /// Wraps a pool. The caller configures it (WAL journal and a busy timeout are recommended,
    /// since sign-ins and renewals write concurrently); call [`Self::migrate`] once at startup.
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// The pool this store uses.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Creates or upgrades the `sessions` table. Other crates migrate the same database with
    /// their own version ranges (this crate owns 2000-2999), so versions applied by them are
    /// ignored rather than treated as unknown.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sql::migrate(sqlx::migrate!("migrations/sqlite"), &self.pool).await
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_sqlx_error)
    }

    /// Starts a write for one user: the write lock, then that user's expired rows deleted (the
    /// per-user half of pruning), to be reported when the transaction commits.
    async fn begin_user_write(
        &self,
        user_id: &str,
        now_ms: i64,
    ) -> Result<UserWrite<Sqlite>, StoreError> {
        Table::prune_user(self.begin_write().await?, user_id, now_ms).await
    }
}

#[async_trait]
impl SessionStore for SqliteSessionStore {
    async fn insert(
        &self,
        session: &Session,
        cap: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionId>, StoreError> {
        let now_ms = millis(now);
        let mut write = self.begin_user_write(&session.user_id, now_ms).await?;
        let batch: Vec<(String, String)> = sqlx::query_as(
            "DELETE FROM sessions WHERE id IN \
             (SELECT id FROM sessions WHERE expires_at <= ? LIMIT ?) RETURNING id, user_id",
        )
        .bind(now_ms)
        .bind(GLOBAL_PRUNE_BATCH)
        .fetch_all(&mut *write.tx)
        .await
        .map_err(map_sqlx_error)?;
        write.expired.0.extend(batch);

        Table::insert(&mut write, session).await?;
        let victims = Table::cap_victims(&mut write, session, cap, now_ms).await?;
        for id in &victims {
            sqlx::query("DELETE FROM sessions WHERE id = ?")
                .bind(id)
                .execute(&mut *write.tx)
                .await
                .map_err(map_sqlx_error)?;
        }
        let evicted = parse_ids(&victims)?;
        write.commit().await?;
        Ok(evicted)
    }

    async fn get(
        &self,
        user_id: &str,
        id: &SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let query =
            format!("SELECT {COLUMNS}, expires_at FROM sessions WHERE id = ? AND user_id = ?");
        let row = sqlx::query(&query)
            .bind(id.as_str())
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        let Some(row) = row else { return Ok(None) };
        let expires_at: i64 = row.try_get("expires_at").map_err(map_sqlx_error)?;
        let now_ms = millis(now);
        if expires_at > now_ms {
            return decode(&row).map(Some);
        }
        // Found a dead row: the rare moment a read pays for a write, and it clears all of this
        // user's dead rows at once.
        self.begin_user_write(user_id, now_ms)
            .await?
            .commit()
            .await?;
        Ok(None)
    }

    async fn touch(&self, session: &Session, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let now_ms = millis(now);
        let mut write = self.begin_user_write(&session.user_id, now_ms).await?;
        // The absolute expiry is the stored one: a renewal can never push it out.
        let result = sqlx::query(
            "UPDATE sessions SET last_seen_at = ?, idle_expires_at = ?, \
             expires_at = MIN(?, absolute_expires_at) \
             WHERE id = ? AND user_id = ? AND expires_at > ?",
        )
        .bind(millis(session.last_seen_at))
        .bind(millis(session.idle_expires_at))
        .bind(millis(session.idle_expires_at))
        .bind(session.id.as_str())
        .bind(&session.user_id)
        .bind(now_ms)
        .execute(&mut *write.tx)
        .await
        .map_err(map_sqlx_error)?;
        write.commit().await?;
        Ok(result.rows_affected() > 0)
    }

    async fn remove(
        &self,
        user_id: &str,
        id: &SessionId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let write = self.begin_user_write(user_id, millis(now)).await?;
        Table::remove(write, user_id, id).await
    }

    async fn remove_for_user(
        &self,
        user_id: &str,
        keep: Option<&SessionId>,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionId>, StoreError> {
        let write = self.begin_user_write(user_id, millis(now)).await?;
        Table::remove_for_user(write, user_id, keep).await
    }

    async fn list_for_user(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, StoreError> {
        let now_ms = millis(now);
        let write = self.begin_user_write(user_id, now_ms).await?;
        Table::list_for_user(write, user_id, now_ms).await
    }

    async fn count_for_user(&self, user_id: &str, now: DateTime<Utc>) -> Result<u64, StoreError> {
        Table::count_for_user(&self.pool, user_id, millis(now)).await
    }

    async fn find(
        &self,
        id: &SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        Table::find(&self.pool, id, millis(now)).await
    }

    async fn list_all(&self, max: usize, now: DateTime<Utc>) -> Result<Vec<Session>, StoreError> {
        Table::list_all(&self.pool, max, millis(now)).await
    }

    async fn counts(&self, now: DateTime<Utc>) -> Result<SessionCounts, StoreError> {
        // The totals count every row, so the expired ones go first (see the module docs).
        let mut tx = self.begin_write().await?;
        let swept: Vec<(String, String)> =
            sqlx::query_as("DELETE FROM sessions WHERE expires_at <= ? RETURNING id, user_id")
                .bind(millis(now))
                .fetch_all(&mut *tx)
                .await
                .map_err(map_sqlx_error)?;
        let (sessions, users): (i64, i64) =
            sqlx::query_as("SELECT sessions, users FROM session_totals WHERE id = 1")
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_sqlx_error)?
                .ok_or_else(|| StoreError::Corrupt("session_totals has no row".to_owned()))?;
        Expired(swept).commit(tx).await?;
        Ok(counts(sessions, users))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Table::ping(&self.pool).await
    }
}
