//! sqlx migrations that several processes may start at the same moment on one database.
//!
//! sqlx's SQLite migrator takes no lock: two processes opening a fresh database file together
//! (a node starting while an admin command runs, or several nodes on one file) both find a
//! migration missing, both apply it (every migration of this project is idempotent: `IF NOT
//! EXISTS`, `INSERT OR REPLACE`), and the slower one fails to record it with a unique violation
//! on `_sqlx_migrations` (or, for a migration that adds a column, which SQLite cannot make
//! idempotent, fails on the column the faster one added). Its transaction rolled back and the
//! migration is in place, so running the migrator once more finds it applied and goes on. The
//! errors are told apart by their kind and code, never by their message. PostgreSQL's migrator holds an
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
    let mut checked_once = false;
    loop {
        let outcome = migrate().await;
        let again = match outcome.as_ref().err().map(race) {
            Some(Race::Lost) => true,
            // One more run tells: a migration another process applied is then found recorded
            // and skipped; a broken one fails the same way again and is returned.
            Some(Race::Unknown) => !std::mem::replace(&mut checked_once, true),
            Some(Race::None) | None => false,
        };
        match outcome {
            Err(error) if again && attempt < ATTEMPTS => {
                tracing::debug!(%error, attempt, "another process may have applied the same migration; checking again");
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// What a failed migrator run says about a race with another process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Race {
    /// Lost for certain: a unique violation recording the migration, or a busy database (see
    /// [`is_sqlite_busy`]); the migration's transaction rolled back and may start over.
    Lost,
    /// A migration's statement failed in a way SQLite reports only with its generic code: a
    /// migration that adds a column (SQLite has no `ADD COLUMN IF NOT EXISTS`) fails so on the
    /// column a faster process just added, and so does a broken migration. Only running again
    /// tells which, without reading the message.
    Unknown,
    /// Not a race (a dirty history, a missing file, a lost connection).
    None,
}

fn race(error: &MigrateError) -> Race {
    let (inner, in_a_migration) = match error {
        MigrateError::Execute(inner) => (inner, false),
        MigrateError::ExecuteMigration(inner, _) => (inner, true),
        _ => return Race::None,
    };
    match inner {
        sqlx::Error::Database(db) if db.is_unique_violation() || is_sqlite_busy(inner) => {
            Race::Lost
        }
        sqlx::Error::Database(_) if in_a_migration => Race::Unknown,
        _ => Race::None,
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

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use sqlx::migrate::MigrateError;
    use sqlx::SqlitePool;

    use super::run_alongside_others;

    /// What SQLite answers a migration that adds a column another process added first: its
    /// generic error code, the kind a broken migration has too.
    async fn column_already_there() -> sqlx::Error {
        let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE t (a INTEGER)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("ALTER TABLE t ADD COLUMN b INTEGER")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("ALTER TABLE t ADD COLUMN b INTEGER")
            .execute(&pool)
            .await
            .unwrap_err()
    }

    #[tokio::test]
    async fn a_migration_another_process_applied_is_found_on_the_second_run() {
        let runs = AtomicU32::new(0);
        let outcome = run_alongside_others(|| async {
            match runs.fetch_add(1, Ordering::SeqCst) {
                0 => Err(MigrateError::ExecuteMigration(
                    column_already_there().await,
                    2003,
                )),
                _ => Ok(()),
            }
        })
        .await;
        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_broken_migration_fails_after_one_more_run() {
        let runs = AtomicU32::new(0);
        let outcome = run_alongside_others(|| async {
            runs.fetch_add(1, Ordering::SeqCst);
            Err(MigrateError::ExecuteMigration(
                column_already_there().await,
                2003,
            ))
        })
        .await;
        assert!(
            matches!(outcome, Err(MigrateError::ExecuteMigration(_, 2003))),
            "{outcome:?}"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn other_failures_are_returned_at_once() {
        let runs = AtomicU32::new(0);
        let outcome = run_alongside_others(|| async {
            runs.fetch_add(1, Ordering::SeqCst);
            Err(MigrateError::VersionMissing(7))
        })
        .await;
        assert!(matches!(outcome, Err(MigrateError::VersionMissing(7))));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
