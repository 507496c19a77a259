//! `fcntl:PATH`: a POSIX write lock on the first byte of a file on shared storage.
//!
//! fcntl locks belong to the process and are dropped when *any* descriptor of the file is closed
//! by that process, so the lock file is opened exactly once and kept open while the lock is held;
//! nothing else in the daemon opens it (the identity check below uses `stat`, which opens
//! nothing).
//!
//! A lock on a file that has been deleted (or renamed over) still holds, but on an inode nobody
//! else can reach: the next node to lock PATH creates a new file and gets its own lock, and the
//! cluster has two holders. So while the lock is held, [`FcntlLock::check`] compares the device
//! and inode of `stat(PATH)` with those of the open descriptor every [`CHECK_INTERVAL`] and
//! reports the lock lost when they differ or PATH is gone (CTDB's fcntl helper does the same
//! every 5 s).

use super::LockProvider;
use pharos_core::LockResult;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

/// How often a held lock's file is checked. A `stat` is cheap (on NFS, usually an attribute
/// cache hit), and this bounds how long a deleted lock file goes unnoticed by its holder.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Attempts to lock PATH when it is replaced between our open and our lock.
const ATTEMPTS: usize = 3;

/// A file's identity: (device, inode).
type FileId = (u64, u64);

/// The fcntl lock provider.
pub struct FcntlLock {
    path: PathBuf,
    /// The lock file, open (and locked) while held, with its identity.
    held: Option<(File, FileId)>,
}

impl FcntlLock {
    /// A provider for the lock file `path` (nothing is opened until [`LockProvider::acquire`]).
    pub fn new(path: PathBuf) -> Self {
        FcntlLock { path, held: None }
    }

    /// Whether `path` still names the file open as `identity`.
    fn same_file(&self, identity: FileId) -> Result<(), String> {
        match std::fs::metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == identity => Ok(()),
            Ok(_) => Err(format!(
                "{} is no longer the file that was locked (replaced)",
                self.path.display()
            )),
            Err(e) => Err(format!("{}: {e}", self.path.display())),
        }
    }

    /// Opens and locks PATH: `Ok(None)` when PATH was replaced meanwhile (try again).
    fn try_lock(&self) -> Result<Option<(File, FileId)>, LockResult> {
        let fail = |e: std::io::Error| {
            log::warn!("cluster lock {}: {e}", self.path.display());
            LockResult::Failed
        };
        // Write access is all a write lock needs (and a FIFO's open blocks here until a reader
        // comes, which is how the tests stand in for a hung file system).
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .map_err(fail)?;
        // SAFETY: flock is a plain C struct; all-zero is a valid value before we set the
        // fields fcntl reads.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = 0;
        fl.l_len = 1;
        // SAFETY: F_SETLK with a valid descriptor and a pointer to an initialised flock.
        let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EACCES) | Some(libc::EAGAIN) => LockResult::Contended,
                _ => fail(e),
            });
        }
        let m = f.metadata().map_err(fail)?;
        let identity = (m.dev(), m.ino());
        // Deleted or replaced between our open and our lock: that lock protects nothing.
        Ok(self.same_file(identity).is_ok().then_some((f, identity)))
    }
}

impl LockProvider for FcntlLock {
    fn acquire(&mut self) -> LockResult {
        if self.held.is_some() {
            return LockResult::Granted;
        }
        for _ in 0..ATTEMPTS {
            match self.try_lock() {
                Ok(Some(held)) => {
                    self.held = Some(held);
                    return LockResult::Granted;
                }
                Ok(None) => continue,
                Err(result) => return result,
            }
        }
        log::warn!(
            "cluster lock {}: the file keeps being replaced while it is locked",
            self.path.display()
        );
        LockResult::Failed
    }

    fn release(&mut self) {
        // Closing the only descriptor drops the lock.
        self.held = None;
    }

    fn check_interval(&self) -> Option<Duration> {
        Some(CHECK_INTERVAL)
    }

    fn check(&mut self) -> Result<(), String> {
        match &self.held {
            Some((_, identity)) => self.same_file(*identity),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::scratch::Scratch;

    #[test]
    fn a_held_lock_notices_its_file_deleted_or_replaced() {
        let d = Scratch::new("identity");
        let path = d.join("cluster.lock");
        let mut lock = FcntlLock::new(path.clone());
        assert_eq!(lock.acquire(), LockResult::Granted);
        assert_eq!(lock.check(), Ok(()));
        std::fs::remove_file(&path).unwrap();
        let e = lock.check().unwrap_err();
        assert!(e.contains("No such file"), "{e}");
        lock.release();
        // A new file at the path is a new lock.
        assert_eq!(lock.acquire(), LockResult::Granted);
        assert_eq!(lock.check(), Ok(()));
        let other = d.join("other");
        std::fs::write(&other, "").unwrap();
        std::fs::rename(&other, &path).unwrap();
        let e = lock.check().unwrap_err();
        assert!(e.contains("replaced"), "{e}");
        lock.release();
    }

    #[test]
    fn an_unusable_path_fails() {
        let d = Scratch::new("fail");
        let mut lock = FcntlLock::new(d.join("missing-dir/cluster.lock"));
        assert_eq!(lock.acquire(), LockResult::Failed);
    }
}
