//! What the SQL stores (SQLite and PostgreSQL) share: the row layout, decoding a row, the error
//! mapping, and reporting expired rows once their deletion has committed.
//!
//! Both tables have the same columns with times as BIGINT unix milliseconds, so one decoder,
//! generic over the sqlx row type, reads either.

use sqlx::{ColumnIndex, Decode, Row, Type};

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

pub(crate) fn map_migrate_error(error: sqlx::migrate::MigrateError) -> StoreError {
    match error {
        sqlx::migrate::MigrateError::Execute(inner) => map_sqlx_error(inner),
        // A dirty or mismatching migration history: the schema is not what this code expects.
        other => StoreError::Corrupt(format!("session schema migration: {other}")),
    }
}

/// Expired rows a transaction deleted (id, user id), reported once it has committed (a
/// rolled-back transaction deleted nothing).
#[derive(Default)]
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
