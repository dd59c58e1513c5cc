//! What the SQL stores (SQLite and PostgreSQL) share: the row layout, decoding a row, the error
//! mapping, the statements that read the same in both dialects ([`Table`]), the per-user write
//! transaction ([`UserWrite`]) and reporting expired rows once their deletion has committed.
//!
//! Both tables have the same columns with times as BIGINT unix milliseconds, so one decoder,
//! generic over the sqlx row type, reads either. sqlx binds `$n` placeholders on SQLite as on
//! PostgreSQL, so a statement with no dialect in it is written once here; each store keeps the
//! statements where the dialects differ (`MIN` and `LEAST`, arrays, advisory locks, how a write
//! transaction begins) and the policies that differ with them (what a read of a dead row does,
//! how counts are kept, how expired rows of everyone are swept).

use std::marker::PhantomData;

use sqlx::migrate::{Migrate, Migrator};
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Transaction, Type,
};

use crate::events::{self, Event};
use crate::{Session, SessionCounts, SessionId, StoreError};

/// The columns every query that returns whole sessions selects, in [`decode`]'s names.
pub(crate) const COLUMNS: &str = "id, user_id, created_at, last_seen_at, idle_expires_at, \
    absolute_expires_at, ip, user_agent, device, node";

/// Reads one session from a row holding [`COLUMNS`]; a value this code cannot read is
/// [`StoreError::Corrupt`], never a panic.
pub(crate) fn decode<'r, R>(row: &'r R) -> Result<Session, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let text = |name: &'static str| row.try_get::<String, _>(name).map_err(map_sqlx_error);
    let opt_text = |name: &'static str| {
        row.try_get::<Option<String>, _>(name)
            .map_err(map_sqlx_error)
    };
    let time = |name: &'static str| {
        let ms: i64 = row.try_get(name).map_err(map_sqlx_error)?;
        from_millis(ms).ok_or_else(|| StoreError::Corrupt(format!("{name} out of range: {ms}")))
    };
    Ok(Session {
        id: parse_id(&text("id")?)?,
        user_id: text("user_id")?,
        created_at: time("created_at")?,
        last_seen_at: time("last_seen_at")?,
        idle_expires_at: time("idle_expires_at")?,
        absolute_expires_at: time("absolute_expires_at")?,
        ip: opt_text("ip")?,
        user_agent: opt_text("user_agent")?,
        device: text("device")?,
        node: text("node")?,
    })
}

/// A stored id read back; a malformed one is a corrupt record.
pub(crate) fn parse_id(text: &str) -> Result<SessionId, StoreError> {
    SessionId::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("malformed session id {text:?}")))
}

/// Stored ids read back; one malformed id makes the whole answer a corrupt record.
pub(crate) fn parse_ids(texts: &[String]) -> Result<Vec<SessionId>, StoreError> {
    texts.iter().map(|text| parse_id(text)).collect()
}

pub(crate) use crate::session::{from_millis, millis};

/// Which of a user's other live sessions (ids, oldest first) a new one evicts so that, with it,
/// at most `cap` remain; the new session is never its own victim.
pub(crate) fn beyond_cap(others_oldest_first: Vec<String>, cap: u32) -> Vec<String> {
    let keep_others = (cap as usize).saturating_sub(1);
    let excess = others_oldest_first.len().saturating_sub(keep_others);
    others_oldest_first.into_iter().take(excess).collect()
}

/// Counts as SQL returns them (never below zero in practice; clamped if they were).
pub(crate) fn counts(sessions: i64, users: i64) -> SessionCounts {
    SessionCounts {
        active_sessions: u64::try_from(sessions).unwrap_or(0),
        signed_in_users: u64::try_from(users).unwrap_or(0),
    }
}

/// A limit as SQL wants it.
pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn map_sqlx_error(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::RowNotFound => StoreError::Corrupt(error.to_string()),
        // Pool timeouts, I/O, a locked or busy database, a closed pool, a server gone: the
        // store is not answering right now, which callers turn into 503 rather than a sign-out.
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Runs this crate's `migrator` on `pool`, leaving the versions other crates apply to the same
/// database alone (see [`crate::migrations`]).
pub(crate) async fn migrate<DB>(mut migrator: Migrator, pool: &Pool<DB>) -> Result<(), StoreError>
where
    DB: Database,
    DB::Connection: Migrate,
{
    migrator.set_ignore_missing(true);
    crate::migrations::run_alongside_others(|| migrator.run(pool))
        .await
        .map_err(map_migrate_error)
}

fn map_migrate_error(error: sqlx::migrate::MigrateError) -> StoreError {
    match error {
        sqlx::migrate::MigrateError::Execute(inner) => map_sqlx_error(inner),
        // A dirty or mismatching migration history: the schema is not what this code expects.
        other => StoreError::Corrupt(format!("session schema migration: {other}")),
    }
}

/// Expired rows a transaction deleted (id, user id), reported once it has committed (a
/// rolled-back transaction deleted nothing).
pub(crate) struct Expired(pub(crate) Vec<(String, String)>);

impl Expired {
    /// Commits `tx`, then logs and counts each expired session it deleted.
    pub(crate) async fn commit<DB: sqlx::Database>(
        self,
        tx: sqlx::Transaction<'static, DB>,
    ) -> Result<(), StoreError> {
        tx.commit().await.map_err(map_sqlx_error)?;
        self.report();
        Ok(())
    }

    /// Logs and counts each expired session (its deletion has committed).
    pub(crate) fn report(&self) {
        for (id, user_id) in &self.0 {
            match SessionId::parse(id) {
                Some(id) => events::session(Event::Expired, &id, user_id),
                None => tracing::warn!(
                    user_id,
                    "deleted an expired session row with a malformed id"
                ),
            }
        }
    }
}

/// A write transaction on one user's sessions, with that user's expired rows already deleted
/// in it (the per-user half of pruning): insert, remove, remove-for-user and the listing run in
/// one (and SQLite's touch). Each store begins it its own way (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: the user's
/// advisory lock) and hands it to [`Table::prune_user`].
pub(crate) struct UserWrite<DB: Database> {
    /// The transaction every statement of the write runs in.
    pub(crate) tx: Transaction<'static, DB>,
    /// Expired rows deleted in `tx`, reported once it commits.
    pub(crate) expired: Expired,
}

impl<DB: Database> UserWrite<DB> {
    /// Commits the write, then reports the expired rows it deleted.
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        self.expired.commit(self.tx).await
    }
}

/// The statements on the `sessions` table that read the same in both dialects, run over
/// either database (`Table<Sqlite>`, `Table<Postgres>`). The bounds below say only that the
/// database binds and decodes text and BIGINT, which both do.
pub(crate) struct Table<DB>(PhantomData<DB>);

impl<DB> Table<DB>
where
    DB: Database,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> i64: Encode<'q, DB>,
    for<'r> String: Decode<'r, DB>,
    for<'r> i64: Decode<'r, DB>,
    String: Type<DB>,
    i64: Type<DB>,
    &'static str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    /// Deletes the user's expired rows in `tx` (just begun by the store) and hands the
    /// transaction back as that user's write.
    pub(crate) async fn prune_user(
        mut tx: Transaction<'static, DB>,
        user_id: &str,
        now_ms: i64,
    ) -> Result<UserWrite<DB>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "DELETE FROM sessions WHERE user_id = $1 AND expires_at <= $2 RETURNING id",
        )
        .bind(user_id)
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        let expired = ids.into_iter().map(|id| (id, user_id.to_owned())).collect();
        Ok(UserWrite {
            tx,
            expired: Expired(expired),
        })
    }

    /// Inserts the session's row, `expires_at` included.
    pub(crate) async fn insert(
        write: &mut UserWrite<DB>,
        session: &Session,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, last_seen_at, idle_expires_at, \
             absolute_expires_at, expires_at, ip, user_agent, device, node) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(session.id.as_str())
        .bind(session.user_id.as_str())
        .bind(millis(session.created_at))
        .bind(millis(session.last_seen_at))
        .bind(millis(session.idle_expires_at))
        .bind(millis(session.absolute_expires_at))
        .bind(millis(session.expires_at()))
        .bind(session.ip.as_deref())
        .bind(session.user_agent.as_deref())
        .bind(session.device.as_str())
        .bind(session.node.as_str())
        .execute(&mut *write.tx)
        .await
        .map_err(map_sqlx_error)?;
        Ok(())
    }

    /// The ids of the user's other live sessions that `session`, just inserted, evicts under
    /// `cap` (none without one). The store deletes them its own way, in the same write.
    pub(crate) async fn cap_victims(
        write: &mut UserWrite<DB>,
        session: &Session,
        cap: Option<u32>,
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let Some(cap) = cap else {
            return Ok(Vec::new());
        };
        // Oldest first; the session just inserted is never its own victim.
        let others: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM sessions WHERE user_id = $1 AND expires_at > $2 AND id <> $3 \
             ORDER BY created_at ASC, id ASC",
        )
        .bind(session.user_id.as_str())
        .bind(now_ms)
        .bind(session.id.as_str())
        .fetch_all(&mut *write.tx)
        .await
        .map_err(map_sqlx_error)?;
        Ok(beyond_cap(others, cap))
    }

    /// Deletes one session of the user and commits the write; `true` when it existed.
    pub(crate) async fn remove(
        mut write: UserWrite<DB>,
        user_id: &str,
        id: &SessionId,
    ) -> Result<bool, StoreError> {
        let removed: Option<String> =
            sqlx::query_scalar("DELETE FROM sessions WHERE id = $1 AND user_id = $2 RETURNING id")
                .bind(id.as_str())
                .bind(user_id)
                .fetch_optional(&mut *write.tx)
                .await
                .map_err(map_sqlx_error)?;
        write.commit().await?;
        Ok(removed.is_some())
    }

    /// Deletes every session of the user but `keep` and commits the write; the ids removed.
    pub(crate) async fn remove_for_user(
        mut write: UserWrite<DB>,
        user_id: &str,
        keep: Option<&SessionId>,
    ) -> Result<Vec<SessionId>, StoreError> {
        // An id is never empty, so "" as `keep` matches nothing and one statement serves both.
        let keep = keep.map(SessionId::as_str).unwrap_or("");
        let ids: Vec<String> =
            sqlx::query_scalar("DELETE FROM sessions WHERE user_id = $1 AND id <> $2 RETURNING id")
                .bind(user_id)
                .bind(keep)
                .fetch_all(&mut *write.tx)
                .await
                .map_err(map_sqlx_error)?;
        write.commit().await?;
        parse_ids(&ids)
    }

    /// The user's live sessions, most recently seen first, read in the write (its expired rows
    /// just went) and committed.
    pub(crate) async fn list_for_user(
        mut write: UserWrite<DB>,
        user_id: &str,
        now_ms: i64,
    ) -> Result<Vec<Session>, StoreError> {
        let query = format!(
            "SELECT {COLUMNS} FROM sessions WHERE user_id = $1 AND expires_at > $2 \
             ORDER BY last_seen_at DESC, id ASC"
        );
        let rows = sqlx::query(&query)
            .bind(user_id)
            .bind(now_ms)
            .fetch_all(&mut *write.tx)
            .await
            .map_err(map_sqlx_error)?;
        write.commit().await?;
        rows.iter().map(decode).collect()
    }

    /// How many live sessions the user has: a range of the per-user index.
    pub(crate) async fn count_for_user(
        pool: &Pool<DB>,
        user_id: &str,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND expires_at > $2",
        )
        .bind(user_id)
        .bind(now_ms)
        .fetch_one(pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// A live session by id alone (admin tools).
    pub(crate) async fn find(
        pool: &Pool<DB>,
        id: &SessionId,
        now_ms: i64,
    ) -> Result<Option<Session>, StoreError> {
        let query = format!("SELECT {COLUMNS} FROM sessions WHERE id = $1 AND expires_at > $2");
        let row = sqlx::query(&query)
            .bind(id.as_str())
            .bind(now_ms)
            .fetch_optional(pool)
            .await
            .map_err(map_sqlx_error)?;
        row.as_ref().map(decode).transpose()
    }

    /// Up to `max` live sessions of everyone, most recently seen first (admin tools).
    pub(crate) async fn list_all(
        pool: &Pool<DB>,
        max: usize,
        now_ms: i64,
    ) -> Result<Vec<Session>, StoreError> {
        let query = format!(
            "SELECT {COLUMNS} FROM sessions WHERE expires_at > $1 \
             ORDER BY last_seen_at DESC, id ASC LIMIT $2"
        );
        let rows = sqlx::query(&query)
            .bind(now_ms)
            .bind(limit(max))
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
        rows.iter().map(decode).collect()
    }

    /// Whether the database answers (readiness).
    pub(crate) async fn ping(pool: &Pool<DB>) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(map_sqlx_error)
    }
}

/// Implements [`crate::SessionStore`] for a SQL store `$store` over the sqlx database `$db`.
///
/// Why a macro: these methods are the same for both stores, but one generic implementation
/// would be a blanket `impl<S> SessionStore for S` over a sealed trait carrying [`Table`]'s
/// dozen sqlx bounds, which every reader of `SessionStore`'s implementors would meet.
///
/// The store supplies `pool` (its `Pool<$db>`), `begin_user_write` (its way of starting a
/// [`UserWrite`]) and the four methods whose SQL or policy differ between the dialects:
/// `insert_session`, `get_session`, `touch_session` and `count_sessions`, each with the
/// signature of the trait method it serves.
macro_rules! impl_session_store {
    ($store:ty, $db:ty) => {
        // A block of its own, so that the names below resolve here and not where it is used.
        const _: () = {
            use async_trait::async_trait;
            use chrono::{DateTime, Utc};

            use $crate::sql::millis;
            use $crate::{Session, SessionCounts, SessionId, SessionStore, StoreError};

            type Table = $crate::sql::Table<$db>;

            #[async_trait]
            impl SessionStore for $store {
                async fn insert(
                    &self,
                    session: &Session,
                    cap: Option<u32>,
                    now: DateTime<Utc>,
                ) -> Result<Vec<SessionId>, StoreError> {
                    self.insert_session(session, cap, now).await
                }

                async fn get(
                    &self,
                    user_id: &str,
                    id: &SessionId,
                    now: DateTime<Utc>,
                ) -> Result<Option<Session>, StoreError> {
                    self.get_session(user_id, id, now).await
                }

                async fn touch(
                    &self,
                    session: &Session,
                    now: DateTime<Utc>,
                ) -> Result<bool, StoreError> {
                    self.touch_session(session, now).await
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

                async fn count_for_user(
                    &self,
                    user_id: &str,
                    now: DateTime<Utc>,
                ) -> Result<u64, StoreError> {
                    Table::count_for_user(&self.pool, user_id, millis(now)).await
                }

                async fn find(
                    &self,
                    id: &SessionId,
                    now: DateTime<Utc>,
                ) -> Result<Option<Session>, StoreError> {
                    Table::find(&self.pool, id, millis(now)).await
                }

                async fn list_all(
                    &self,
                    max: usize,
                    now: DateTime<Utc>,
                ) -> Result<Vec<Session>, StoreError> {
                    Table::list_all(&self.pool, max, millis(now)).await
                }

                async fn counts(&self, now: DateTime<Utc>) -> Result<SessionCounts, StoreError> {
                    self.count_sessions(now).await
                }

                async fn ping(&self) -> Result<(), StoreError> {
                    Table::ping(&self.pool).await
                }
            }
        };
    };
}
pub(crate) use impl_session_store;
