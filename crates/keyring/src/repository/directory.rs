//! Key documents as files in a directory: the embedded default (`<data-dir>/keys`).
//!
//! ```text
//! keys/
//!   key-<id>.json   one key document each, written to a temp file then renamed (atomic)
//!   revision        the ring revision, a decimal number (absent = 0)
//!   .lock           advisory lock file: writers hold an exclusive lock while they compare
//!                   the revision and write, so processes sharing the directory never race
//! ```
//!
//! The directory is `0700` and every file in it `0600`, whatever the umask (see
//! [`crate::private_files`]); what an older version left readable by others is tightened when
//! the repository opens.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{KeyRepository, RawDocument, RepositoryError, Revision, RingSnapshot};
use crate::document::KeyDocument;
use crate::private_files;

/// Stores key documents in a directory.
#[derive(Debug, Clone)]
pub struct DirectoryKeyRepository {
    dir: PathBuf,
}

impl DirectoryKeyRepository {
    /// A repository in `dir`, created (with parents, `0700`) if missing. An existing directory
    /// or file of the repository that group or others could read is tightened (`0700` / `0600`)
    /// with a warning.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, RepositoryError> {
        let dir = dir.into();
        private_files::create_dir(&dir).map_err(|e| io_error(&dir, e))?;
        tighten_files(&dir)?;
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Path) -> Result<T, RepositoryError> + Send + 'static,
    ) -> Result<T, RepositoryError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || work(&dir))
            .await
            .map_err(|e| RepositoryError::Unavailable(format!("key store task failed: {e}")))?
    }
}

fn io_error(path: &Path, error: io::Error) -> RepositoryError {
    RepositoryError::Unavailable(format!("{}: {error}", path.display()))
}

fn read_revision(dir: &Path) -> Result<Revision, RepositoryError> {
    let path = dir.join("revision");
    match fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|_| {
            RepositoryError::Corrupt(format!(
                "{}: not a number: {:?}",
                path.display(),
                text.trim()
            ))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io_error(&path, e)),
    }
}

/// Tightens every file of the repository (key documents, revision, lock, temp files) that
/// group or others could read.
fn tighten_files(dir: &Path) -> Result<(), RepositoryError> {
    let entries = fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| io_error(dir, e))?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let ours = (name.starts_with("key-") && name.ends_with(".json"))
            || (name.starts_with('.') && name.ends_with(".tmp"))
            || name == "revision"
            || name == ".lock";
        if ours {
            private_files::tighten(&path).map_err(|e| io_error(&path, e))?;
        }
    }
    Ok(())
}

/// Writes a file atomically: a temp file (`0600`) in the same directory, flushed, then renamed.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), RepositoryError> {
    let target = dir.join(name);
    let temp = dir.join(format!(".{name}.tmp"));
    let mut file = private_files::open_for_write(&temp, true).map_err(|e| io_error(&temp, e))?;
    file.write_all(bytes).map_err(|e| io_error(&temp, e))?;
    file.sync_all().map_err(|e| io_error(&temp, e))?;
    fs::rename(&temp, &target).map_err(|e| io_error(&target, e))
}

fn load_dir(dir: &Path) -> Result<RingSnapshot, RepositoryError> {
    let revision = read_revision(dir)?;
    let mut documents = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // A directory deleted under a running node is an empty (purged) store, not an outage.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(RingSnapshot::default()),
        Err(e) => return Err(io_error(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("key-") && name.ends_with(".json")) {
            continue;
        }
        let path = entry.path();
        // A document larger than this is not one of ours; report it rather than read it all.
        let bytes = match entry.metadata() {
            Ok(meta) if meta.len() > 64 * 1024 => {
                format!("file too large: {} bytes", meta.len()).into_bytes()
            }
            _ => fs::read(&path).map_err(|e| io_error(&path, e))?,
        };
        documents.push(RawDocument {
            name: path.display().to_string(),
            bytes,
        });
    }
    documents.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(RingSnapshot {
        revision,
        documents,
    })
}

fn compare_and_write_dir(
    dir: &Path,
    expected: Revision,
    documents: &[KeyDocument],
) -> Result<bool, RepositoryError> {
    // Made again (private) when it was deleted under a running node.
    private_files::create_dir(dir).map_err(|e| io_error(dir, e))?;
    let lock_path = dir.join(".lock");
    let lock =
        private_files::open_for_write(&lock_path, false).map_err(|e| io_error(&lock_path, e))?;
    // Exclusive advisory lock across processes; released when `lock` is dropped.
    lock.lock().map_err(|e| io_error(&lock_path, e))?;
    if read_revision(dir)? != expected {
        return Ok(false);
    }
    for doc in documents {
        write_atomic(
            dir,
            &format!("key-{}.json", doc.id),
            doc.to_json().as_bytes(),
        )?;
    }
    write_atomic(dir, "revision", (expected + 1).to_string().as_bytes())?;
    Ok(true)
}

#[async_trait]
impl KeyRepository for DirectoryKeyRepository {
    async fn load(&self) -> Result<RingSnapshot, RepositoryError> {
        self.blocking(load_dir).await
    }

    async fn revision(&self) -> Result<Revision, RepositoryError> {
        self.blocking(read_revision).await
    }

    async fn compare_and_write(
        &self,
        expected: Revision,
        documents: &[KeyDocument],
    ) -> Result<bool, RepositoryError> {
        let documents = documents.to_vec();
        self.blocking(move |dir| compare_and_write_dir(dir, expected, &documents))
            .await
    }

    fn describe(&self) -> String {
        format!("directory {}", self.dir.display())
    }
}
