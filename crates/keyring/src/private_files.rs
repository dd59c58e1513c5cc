//! Files and directories only the service account can read: `0600` files in `0700` directories,
//! whatever the process umask (a umask of `022`, the usual default, would leave key files and
//! the database readable by every local user).
//!
//! Modes are set explicitly after creation, not only asked for at creation: the umask can only
//! remove bits from the requested mode, and a file left over from an older version (or a crashed
//! write) keeps whatever mode it had. What is found open to group or others is tightened, and a
//! warning names it, so an operator learns that the data was exposed until now.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

/// The mode of every file holding secrets or user data: read and write for the owner only.
pub const FILE_MODE: u32 = 0o600;
/// The mode of every directory holding such files: the owner only.
pub const DIR_MODE: u32 = 0o700;

/// Permission bits of group and others.
const OPEN_TO_OTHERS: u32 = 0o077;

/// Creates `dir` (and missing parents) as a `0700` directory; an existing one open to group or
/// others is tightened to `0700` with a warning. Parents that already exist are left alone.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(dir)?;
    tighten(dir)?;
    Ok(())
}

/// Opens `path` for writing as a `0600` file, creating it when missing (`truncate` says
/// whether an existing file is emptied). The mode is set on the open file even when it
/// existed before with a looser one.
pub fn open_for_write(path: &Path, truncate: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(truncate);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if file.metadata()?.permissions().mode() & 0o777 != FILE_MODE {
            file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
        }
    }
    Ok(file)
}

/// Creates `path` as an empty `0600` file unless it exists already (then it is left as it is).
/// Lets a program that creates files with its own default mode (SQLite: `0644`) find a private
/// one instead.
pub fn create_file(path: &Path) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    match options.open(path) {
        Ok(file) => {
            // The umask may have taken bits the owner needs; set the mode whole.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
            }
            drop(file);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Tightens `path` (a file to `0600`, a directory to `0700`) when group or others have any
/// access to it, and logs a warning naming it and its old mode. Returns whether it changed
/// anything; a missing path is `Ok(false)`.
///
/// A shared directory with the sticky bit (such as `/tmp` given as a data dir) is never
/// changed, only reported: taking it away from everyone else would break the machine.
pub fn tighten(path: &Path) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = match fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let mode = meta.permissions().mode();
        if meta.file_type().is_symlink() || mode & OPEN_TO_OTHERS == 0 {
            return Ok(false);
        }
        if meta.is_dir() && mode & 0o1000 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{:o}", mode & 0o7777),
                "a shared directory (sticky bit) holds private data; it is left as it is: give a directory of the service's own"
            );
            return Ok(false);
        }
        let private = if meta.is_dir() { DIR_MODE } else { FILE_MODE };
        fs::set_permissions(path, fs::Permissions::from_mode(private))?;
        tracing::warn!(
            path = %path.display(),
            was = format_args!("{:o}", mode & 0o7777),
            now = format_args!("{private:o}"),
            "tightened the mode of a private file or directory that group or others could read"
        );
        Ok(true)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(false)
    }
}

/// The permission bits of `path` when group or others may read it (or more), else `None`.
/// For files whose owner must fix them (a master key the service only reads).
pub fn readable_by_others(path: &Path) -> io::Result<Option<u32>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)?.permissions().mode() & 0o7777;
        Ok((mode & OPEN_TO_OTHERS != 0).then_some(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(None)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn loose_files_and_directories_are_tightened_and_sticky_ones_left() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create_dir(&dir).unwrap();
        assert_eq!(mode(&dir), DIR_MODE);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        create_dir(&dir).unwrap();
        assert_eq!(mode(&dir), DIR_MODE);

        let file = dir.join("f");
        fs::write(&file, b"x").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(readable_by_others(&file).unwrap(), Some(0o644));
        drop(open_for_write(&file, false).unwrap());
        assert_eq!(mode(&file), FILE_MODE);
        assert_eq!(fs::read(&file).unwrap(), b"x", "not truncated");
        assert_eq!(readable_by_others(&file).unwrap(), None);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(tighten(&file).unwrap());
        assert!(!tighten(&file).unwrap());
        assert!(!tighten(&dir.join("missing")).unwrap());

        let new = dir.join("new");
        create_file(&new).unwrap();
        assert_eq!(mode(&new), FILE_MODE);
        create_file(&new).unwrap();

        let shared = root.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(!tighten(&shared).unwrap());
        assert_eq!(mode(&shared), 0o1777);
    }
}
