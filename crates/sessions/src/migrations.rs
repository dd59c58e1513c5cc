//! sqlx migrations that several processes may start at the same moment on one database.
//!
//! sqlx's SQLite migrator takes no lock: two processes opening a fresh database file together
//! (a node starting while an admin command runs, or several nodes on one file) both find a
//! migration missing, both apply it (every migration of this project is idempotent: `IF NOT
//! EXISTS`, `INSERT OR REPLACE`), and the slower one fails to record it with a unique violation
//! on `_sqlx_migrations` (or, for a migration that adds a column, which SQLite cannot make
//! idempotent, fails on the column the faster one added). Its transaction rolled back and the migration is in place, so running
//! the migrator once more finds it applied and goes on. PostgreSQL's migrator holds an
//! advisory lock and never loses that race; the retry costs it nothing.

use std::future::Future;
use std::time::Duration;

use sqlx::migrate::MigrateError;

/// How often a migrator that lost the race is run again before its error is returned.
const ATTEMPTS: u32 = 10;

/// Runs `migrate` (a closure calling `Migrator::run`), again when it lost the race to record a
/// migration another process applied at the same moment.
pub async fn run_alongside_others<F, Fut>(mut migrate: F) -> Result<(), MigrateError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), MigrateError>>,
{
    let mut attempt = 1;
    loop {
        match migrate().await {
            Err(error) if attempt < ATTEMPTS && lost_the_race(&error) => {
                tracing::debug!(%error, attempt, "another process applied the same migration; checking again");
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn lost_the_race(error: &MigrateError) -> bool {
    let inner = match error {
        MigrateError::Execute(inner) | MigrateError::ExecuteMigration(inner, _) => inner,
        _ => return false,
    };
    match inner {
        sqlx::Error::Database(db) => {
            // SQLite cannot add a column only if it is missing (no `ADD COLUMN IF NOT EXISTS`),
            // so a migration that adds one is not idempotent: the slower process fails on the
            // column the faster one just added, with SQLite's generic error code and this
            // message as the only sign. Its transaction rolled back; running again finds the
            // migration recorded.
            // A busy database is the same race seen earlier (see `is_sqlite_busy`): the
            // migration's transaction rolled back and may start over.
            db.is_unique_violation()
                || db.message().starts_with("duplicate column name")
                || is_sqlite_busy(inner)
        }
        _ => false,
    }
}

/// Whether `error` is SQLite saying another connection holds the database (`SQLITE_BUSY` and
/// its extended codes, `SQLITE_LOCKED`) in a way its busy timeout did not wait out: switching a
/// new file to WAL, or a write from a snapshot another process's commit made stale (517,
/// `SQLITE_BUSY_SNAPSHOT`). The statement failed whole; trying again shortly is safe.
pub fn is_sqlite_busy(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("5" | "261" | "517" | "6"))
        }
        _ => false,
    }
}
