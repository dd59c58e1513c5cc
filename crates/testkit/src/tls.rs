//! A throwaway certificate authority and a server certificate for `127.0.0.1`, made with the
//! `openssl` command line.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use crate::process;

/// Long enough for any test run, short enough that a leaked key is worthless tomorrow.
const DAYS: &str = "2";

/// A fresh test CA (`ca.pem`, `ca.key`) and a server certificate it signed (`server.pem`,
/// `server.key`) for `IP:127.0.0.1` and `DNS:localhost`, usable for both server and client
/// authentication (Redis Cluster nodes present it to each other on the cluster bus).
///
/// Keys are P-256. Dropping it removes the directory; servers started from it with
/// [`crate::RedisServer::start_tls`] keep their own copies.
#[derive(Debug)]
pub struct TestPki {
    dir: TempDir,
}

impl TestPki {
    /// Generates the CA and the server certificate in a new temporary directory.
    pub fn generate() -> io::Result<TestPki> {
        let openssl = process::require("openssl", "openssl")?;
        let dir = process::temp_dir("pki", false)?;
        let d = dir.path();
        let ca_key = d.join("ca.key");
        let ca = d.join("ca.pem");
        let key = d.join("server.key");
        let csr = d.join("server.csr");
        let cert = d.join("server.pem");
        let ext = d.join("server.ext");
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
             basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth,clientAuth\n",
        )?;
        // Distinct names too: a client must reject another test CA as unknown, not as a
        // look-alike whose signature fails.
        let serial = serial();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        run(
            &openssl,
            d,
            &[
                &["req", "-x509"][..],
                &ec,
                &["-keyout"],
                &[path_str(&ca_key)?, "-out", path_str(&ca)?],
                &[
                    "-days",
                    DAYS,
                    "-subj",
                    &format!("/CN=ringfence test CA {serial}"),
                ],
                &["-addext", "basicConstraints=critical,CA:TRUE"],
                &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ]
            .concat(),
        )?;
        run(
            &openssl,
            d,
            &[
                &["req"][..],
                &ec,
                &["-keyout", path_str(&key)?, "-out", path_str(&csr)?],
                &["-subj", "/CN=127.0.0.1"],
            ]
            .concat(),
        )?;
        run(
            &openssl,
            d,
            &[
                "x509",
                "-req",
                "-in",
                path_str(&csr)?,
                "-CA",
                path_str(&ca)?,
                "-CAkey",
                path_str(&ca_key)?,
                "-set_serial",
                &serial,
                "-days",
                DAYS,
                "-extfile",
                path_str(&ext)?,
                "-out",
                path_str(&cert)?,
            ],
        )?;
        Ok(TestPki { dir })
    }

    /// The directory holding every file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `ca.pem`: the CA certificate, the one file a client needs to verify the server.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// `server.pem`: the server certificate (IP `127.0.0.1`, DNS `localhost`).
    pub fn cert_file(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// `server.key`: the server certificate's private key (unencrypted PEM).
    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

fn path_str(path: &Path) -> io::Result<&str> {
    path.to_str().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("temporary path {} is not UTF-8", path.display()),
        )
    })
}

/// A serial number unlikely to repeat, so two test CAs never issue look-alike certificates.
fn serial() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}", nanos ^ u128::from(std::process::id()))
}

fn run(openssl: &Path, dir: &Path, args: &[&str]) -> io::Result<()> {
    let out = Command::new(openssl)
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "openssl {} failed ({}): {}",
            args.first().copied().unwrap_or_default(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
