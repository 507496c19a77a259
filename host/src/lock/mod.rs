//! The cluster lock: `none`, or a POSIX fcntl write lock on a file on shared storage.
//!
//! fcntl locks belong to the process and are dropped when *any* descriptor of the file is closed
//! by that process, so the lock file is opened exactly once and kept open while the lock is held;
//! nothing else in the daemon opens it.

use pharos_core::LockResult;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// The configured lock.
pub enum ClusterLock {
    /// No lock: quorum alone protects. Always granted.
    None,
    /// fcntl lock on `path`; `file` is open while we hold it.
    Fcntl {
        /// The lock file.
        path: PathBuf,
        /// Open (and locked) while held.
        file: Option<File>,
    },
}

impl ClusterLock {
    /// From `none` or `fcntl:PATH` (etcd locks are provided by the tokio shell).
    pub fn from_spec(spec: &str) -> Result<Self, String> {
        if spec == "none" {
            return Ok(ClusterLock::None);
        }
        if let Some(path) = spec.strip_prefix("fcntl:") {
            return Ok(ClusterLock::Fcntl {
                path: PathBuf::from(path),
                file: None,
            });
        }
        Err(format!(
            "cluster lock {spec:?} is not supported by pharosd (use none or fcntl:PATH)"
        ))
    }

    /// Tries to take the lock without blocking.
    pub fn acquire(&mut self) -> LockResult {
        match self {
            ClusterLock::None => LockResult::Granted,
            ClusterLock::Fcntl { path, file } => {
                if file.is_some() {
                    return LockResult::Granted;
                }
                let f = match OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&*path)
                {
                    Ok(f) => f,
                    Err(e) => {
                        log::warn!("cluster lock {}: {e}", path.display());
                        return LockResult::Failed;
                    }
                };
                // SAFETY: flock is a plain C struct; all-zero is a valid value before we set
                // the fields fcntl reads.
                let mut fl: libc::flock = unsafe { std::mem::zeroed() };
                fl.l_type = libc::F_WRLCK as libc::c_short;
                fl.l_whence = libc::SEEK_SET as libc::c_short;
                fl.l_start = 0;
                fl.l_len = 1;
                // SAFETY: F_SETLK with a valid descriptor and a pointer to an initialised flock.
                let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) };
                if rc == 0 {
                    *file = Some(f);
                    LockResult::Granted
                } else {
                    let e = std::io::Error::last_os_error();
                    match e.raw_os_error() {
                        Some(libc::EACCES) | Some(libc::EAGAIN) => LockResult::Contended,
                        _ => {
                            log::warn!("cluster lock {}: {e}", path.display());
                            LockResult::Failed
                        }
                    }
                }
            }
        }
    }

    /// Releases the lock (closing the file drops the fcntl lock).
    pub fn release(&mut self) {
        if let ClusterLock::Fcntl { file, .. } = self {
            *file = None;
        }
    }
}
