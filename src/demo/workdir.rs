//! The demo's directory: where each node keeps its data and its log, the
//! cluster secret, and the load tester's reports; and what is removed at the
//! end.
//!
//! Layout: `node-a/` and `node-b/` (data dirs), `node-a.log` and `node-b.log`
//! (each node's stdout and stderr), `cluster-secret` (mode 0600),
//! `report.html` and `report.json`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Random bytes in the cluster secret (written as hex, so twice as many
/// characters; the server wants at least 16 bytes).
pub const CLUSTER_SECRET_BYTES: usize = 32;
/// Random bytes in the admin token (hex; the server wants at least 16 characters).
pub const ADMIN_TOKEN_BYTES: usize = 16;

/// Why the directory could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WorkdirError {
    #[error("--dir {0} is not empty; give a new or empty directory (the demo starts its nodes on fresh data)")]
    NotEmpty(PathBuf),
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The demo's directory and whether the nodes' data is kept at the end.
#[derive(Debug)]
pub struct Workdir {
    path: PathBuf,
    keep_data: bool,
}

impl Workdir {
    /// Uses `dir` (created if missing, refused unless empty), or a new
    /// temporary directory. The nodes' data is kept at the end with `keep` or
    /// when `dir` is given; the logs and reports are always kept.
    pub fn create(dir: Option<PathBuf>, keep: bool) -> Result<Workdir, WorkdirError> {
        match dir {
            Some(dir) => {
                let io = |what, source| WorkdirError::Io {
                    what,
                    path: dir.clone(),
                    source,
                };
                if dir.exists() {
                    let mut entries = std::fs::read_dir(&dir).map_err(|e| io("read", e))?;
                    if entries.next().is_some() {
                        return Err(WorkdirError::NotEmpty(dir));
                    }
                }
                std::fs::create_dir_all(&dir).map_err(|e| io("create", e))?;
                let path = dir.canonicalize().map_err(|e| io("resolve", e))?;
                Ok(Workdir {
                    path,
                    keep_data: true,
                })
            }
            None => {
                let temporary = tempfile::Builder::new()
                    .prefix("flashgate-demo-")
                    .tempdir()
                    .map_err(|source| WorkdirError::Io {
                        what: "create a temporary directory in",
                        path: std::env::temp_dir(),
                        source,
                    })?;
                // The logs and reports outlive the demo, so the directory does too.
                Ok(Workdir {
                    path: temporary.keep(),
                    keep_data: keep,
                })
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn keeps_data(&self) -> bool {
        self.keep_data
    }

    /// The data dir of node `name`.
    pub fn node_data(&self, name: &str) -> PathBuf {
        self.path.join(format!("node-{name}"))
    }

    /// The log (stdout and stderr) of node `name`.
    pub fn node_log(&self, name: &str) -> PathBuf {
        self.path.join(format!("node-{name}.log"))
    }

    pub fn cluster_secret(&self) -> PathBuf {
        self.path.join("cluster-secret")
    }

    pub fn report_html(&self) -> PathBuf {
        self.path.join("report.html")
    }

    pub fn report_json(&self) -> PathBuf {
        self.path.join("report.json")
    }

    /// Writes a new random cluster secret, readable by its owner only, and
    /// returns its path. Fails if the file exists.
    pub fn write_cluster_secret(&self) -> Result<PathBuf, WorkdirError> {
        let (path, _) = self.write_secret("cluster-secret")?;
        Ok(path)
    }

    /// Writes a new random token into the file `name` (the format of a tokens
    /// file: one token), readable by its owner only; returns its path and the
    /// token. Fails if the file exists.
    pub fn write_secret(&self, name: &str) -> Result<(PathBuf, String), WorkdirError> {
        let path = self.path.join(name);
        let io = |what, source| WorkdirError::Io {
            what,
            path: path.clone(),
            source,
        };
        let secret =
            random_hex(CLUSTER_SECRET_BYTES).map_err(|e| io("make random bytes for", e))?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io("create", e))?;
        file.write_all(secret.as_bytes())
            .map_err(|e| io("write", e))?;
        Ok((path, secret))
    }

    /// What to remove once the nodes are stopped: their data and the secret,
    /// unless the data is kept.
    pub fn tidy(&self) -> Tidy {
        let remove = if self.keep_data {
            Vec::new()
        } else {
            vec![
                self.node_data("a"),
                self.node_data("b"),
                self.node_data("c"),
                self.cluster_secret(),
            ]
        };
        Tidy { remove }
    }
}

/// Paths to remove at the end; cheap to clone into the signal handler.
#[derive(Clone, Debug)]
pub struct Tidy {
    remove: Vec<PathBuf>,
}

impl Tidy {
    /// Removes the paths; a path already gone is fine. Returns what could not
    /// be removed. Call it only once the nodes are stopped.
    pub fn run(&self) -> Vec<String> {
        let mut failures = Vec::new();
        for path in &self.remove {
            let result = if path.is_dir() {
                std::fs::remove_dir_all(path)
            } else {
                std::fs::remove_file(path)
            };
            match result {
                Err(error) if error.kind() != io::ErrorKind::NotFound => {
                    failures.push(format!("{}: {error}", path.display()));
                }
                _ => {}
            }
        }
        failures
    }
}

/// `bytes` random bytes from the kernel, as lowercase hex.
pub fn random_hex(bytes: usize) -> io::Result<String> {
    let mut buffer = vec![0u8; bytes];
    File::open("/dev/urandom")?.read_exact(&mut buffer)?;
    Ok(buffer.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// `count` distinct loopback UDP addresses that were free a moment ago (each
/// bound at once, then released for a node to take).
pub fn free_udp_addresses(count: usize) -> io::Result<Vec<SocketAddr>> {
    let sockets = (0..count)
        .map(|_| UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<io::Result<Vec<_>>>()?;
    sockets.iter().map(UdpSocket::local_addr).collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_given_directory_must_be_empty_and_keeps_everything() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("demo");
        let workdir = Workdir::create(Some(dir.clone()), false).unwrap();
        assert!(workdir.keeps_data());
        assert!(dir.is_dir());
        assert!(workdir.tidy().remove.is_empty());

        std::fs::write(dir.join("something"), "x").unwrap();
        let error = Workdir::create(Some(dir), false).unwrap_err();
        assert!(matches!(error, WorkdirError::NotEmpty(_)), "{error}");
        assert!(error.to_string().contains("new or empty"), "{error}");
    }

    #[test]
    fn the_secret_is_random_and_for_its_owner_only() {
        let parent = tempfile::tempdir().unwrap();
        let workdir = Workdir::create(Some(parent.path().join("demo")), false).unwrap();
        let path = workdir.write_cluster_secret().unwrap();
        let secret = std::fs::read_to_string(&path).unwrap();
        assert_eq!(secret.len(), CLUSTER_SECRET_BYTES * 2);
        assert!(secret.bytes().all(|byte| byte.is_ascii_hexdigit()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(workdir.write_cluster_secret().is_err(), "never overwritten");
        assert_ne!(random_hex(16).unwrap(), random_hex(16).unwrap());
    }

    #[test]
    fn without_keep_the_data_and_secret_go_and_the_logs_and_reports_stay() {
        let workdir = Workdir::create(None, false).unwrap();
        std::fs::create_dir_all(workdir.node_data("a").join("log")).unwrap();
        std::fs::write(workdir.node_log("a"), "log").unwrap();
        std::fs::write(workdir.report_html(), "<html>").unwrap();
        workdir.write_cluster_secret().unwrap();
        // Node b never started: its data dir is missing, which is fine.
        assert_eq!(workdir.tidy().run(), Vec::<String>::new());
        assert!(!workdir.node_data("a").exists());
        assert!(!workdir.cluster_secret().exists());
        assert!(workdir.node_log("a").exists());
        assert!(workdir.report_html().exists());
        std::fs::remove_dir_all(workdir.path()).unwrap();
    }

    #[test]
    fn free_addresses_are_distinct_loopback_ports() {
        let addresses = free_udp_addresses(2).unwrap();
        assert_eq!(addresses.len(), 2);
        assert_ne!(addresses[0], addresses[1]);
        assert!(addresses.iter().all(|address| address.ip().is_loopback()));
    }
}
