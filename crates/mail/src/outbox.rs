//! The embedded default: every mail an `.eml` file in `DATA_DIR/outbox/`.

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rand::RngCore;

use crate::transport::{Email, FailureReason, Transport, TransportError};
use crate::MailError;

/// Writes each mail as an RFC 5322 `.eml` file (readable by any mail client, `cat`, or a test).
///
/// The directory is `0700` and each file `0600`: an action mail holds a live token. A file is
/// written under a temporary name, synced, then renamed, so a reader never sees half a mail.
/// Names sort by time: `<unix-millis>-<random>.eml`. The log names the file, never the link.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    /// Uses `DATA_DIR/outbox`, creating it (`0700`) when missing.
    pub fn in_data_dir(data_dir: &Path) -> Result<Outbox, MailError> {
        Outbox::new(data_dir.join("outbox"))
    }

    /// Uses `dir`, creating it and its parents when missing and restricting it to `0700`.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Outbox, MailError> {
        let dir = dir.into();
        let err = |source| MailError::Outbox {
            path: dir.clone(),
            source,
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(err)?;
        // An existing directory keeps its mode through create(): tighten it.
        fs::set_permissions(&dir, Permissions::from_mode(0o700)).map_err(err)?;
        Ok(Outbox { dir })
    }

    /// The directory the files go to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn write(&self, email: &Email) -> std::io::Result<PathBuf> {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let mut random = [0u8; 6];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("{millis:013}-{suffix}.eml");
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(&name);
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(&email.bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| path)
    }
}

#[async_trait]
impl Transport for Outbox {
    async fn deliver(&self, email: &Email) -> Result<(), TransportError> {
        let outbox = self.clone();
        let email = email.clone();
        let written = tokio::task::spawn_blocking(move || outbox.write(&email))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r);
        match written {
            Ok(path) => {
                tracing::info!(file = %path.display(), "mail written to the outbox");
                Ok(())
            }
            Err(e) => Err(TransportError {
                reason: FailureReason::Io,
                permanent: false,
                detail: format!("writing to {}: {e}", self.dir.display()),
            }),
        }
    }

    fn describe(&self) -> String {
        format!("outbox {}", self.dir.display())
    }
}
