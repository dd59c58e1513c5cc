//! Finding 4 of issue 13: what a node writes (the data dir, the key ring's files, the SQLite
//! database and its companions) is for the service account only, `0600` files in `0700`
//! directories, whatever the umask; what an older version left open is tightened at start; a
//! master key file others may read is warned about.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use common::*;
use ringfence_testkit::NodeProcess;

/// Starts `ringfence serve` under `umask 022` (the usual default, which leaves new files
/// `0644`), whatever the umask of the test.
fn start_with_umask_022(data_dir: &Path, extra: &[&str]) -> NodeProcess {
    let mut args = vec![
        "-c".to_owned(),
        "umask 022 && exec \"$0\" \"$@\"".to_owned(),
        env!("CARGO_BIN_EXE_ringfence").to_owned(),
        "serve".to_owned(),
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--data-dir".to_owned(),
        data_dir.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    NodeProcess::start(
        Path::new("/bin/sh"),
        &args,
        &[("RUST_LOG".to_owned(), "info".to_owned())],
    )
    .unwrap()
}

/// The node's log once it holds `needle` (stderr is read by its own thread, so a line written
/// before the ready line on stdout may arrive a moment after it); the log as it is after 5 s.
fn log_with(node: &NodeProcess, needle: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let log = node.output();
        if log.contains(needle) || std::time::Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every file and directory a node keeps in `data`: the directories, then the files.
fn node_files(data: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let keys = data.join("keys");
    let dirs = vec![data.to_path_buf(), keys.clone()];
    let mut files = Vec::new();
    for dir in [data, keys.as_path()] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    (dirs, files)
}

/// Asserts `0700` directories and `0600` files, and that the files a node must have are there.
fn assert_private(data: &Path) {
    let (dirs, files) = node_files(data);
    for dir in &dirs {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
    }
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for needed in ["ringfence.db", "ringfence.db-wal", "revision", ".lock"] {
        assert!(names.iter().any(|n| n == needed), "{needed} in {names:?}");
    }
    assert!(names.iter().any(|n| n.starts_with("key-")), "{names:?}");
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
}

/// Writes data through the node, so the database has its `-wal` and `-shm` files.
async fn register(base: &str, email: &str) {
    register_api(&browser(), base, email).await;
}

#[tokio::test]
async fn finding_04_files_are_private_whatever_the_umask() {
    let root = tempfile::tempdir().unwrap();
    // Below a directory that does not exist yet: every directory the node makes is checked.
    let data = root.path().join("service/data");
    let node = start_with_umask_022(&data, &[]);
    register(&node.url(), "modes@example.com").await;
    assert_private(&data);
    assert_eq!(mode(&root.path().join("service")), 0o700);
    drop(node);
}

#[tokio::test]
async fn finding_04_loose_modes_found_at_start_are_tightened() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let mut node = start_with_umask_022(&data, &[]);
    register(&node.url(), "older@example.com").await;
    node.terminate();
    node.wait_exit(std::time::Duration::from_secs(30)).unwrap();
    drop(node);
    // As an older version (or a careless copy) left them: readable by everyone.
    let (dirs, files) = node_files(&data);
    for dir in &dirs {
        chmod(dir, 0o755);
    }
    for file in &files {
        chmod(file, 0o644);
    }

    let node = start_with_umask_022(&data, &[]);
    register(&node.url(), "newer@example.com").await;
    assert_private(&data);
    let log = log_with(&node, "ringfence.db");
    assert!(log.contains("tightened the mode"), "{log}");
    assert!(
        log.contains("ringfence.db"),
        "the log names the file: {log}"
    );
}

#[tokio::test]
async fn finding_04_a_readable_master_key_file_is_warned_about() {
    let root = tempfile::tempdir().unwrap();
    let key = root.path().join("master.key");
    let encoded = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    std::fs::write(&key, format!("{encoded}\n")).unwrap();
    let key_arg = key.display().to_string();
    let warning = "master key file is readable by group or others";

    chmod(&key, 0o644);
    let node = start_with_umask_022(&root.path().join("loose"), &["--master-key-file", &key_arg]);
    let log = log_with(&node, warning);
    assert!(log.contains(warning), "{log}");
    assert!(log.contains(&key_arg), "the warning names the file: {log}");
    assert_eq!(mode(&key), 0o644, "the operator's file is left as it is");
    drop(node);

    chmod(&key, 0o600);
    let node = start_with_umask_022(&root.path().join("tight"), &["--master-key-file", &key_arg]);
    register(&node.url(), "tight@example.com").await;
    let log = node.output();
    assert!(!log.contains(warning), "{log}");
}
