//! The control socket's file: created with mode 0600, never taking over a socket a live process
//! listens on, never removing anything but a stale socket, and removed again when the daemon
//! stops, but only if it is still the socket this daemon created.

use mio::net::UnixListener;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The bound control socket. Dropping it removes the socket file (if it is still ours).
pub struct ControlSocket {
    /// The listening socket.
    pub listener: UnixListener,
    path: PathBuf,
    /// Device and inode of the socket file we created, to never remove someone else's file.
    id: Option<(u64, u64)>,
}

/// What kind of file is at a path, in words for an error message.
fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a socket"
    }
}

/// Makes `path` free for a new socket: nothing there, or a stale socket (one whose connect is
/// refused), which is removed. Anything else is an error naming the path and what is there.
fn clear_stale(path: &Path) -> Result<(), String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot inspect {}: {e}", path.display())),
    };
    let t = meta.file_type();
    if !t.is_socket() {
        return Err(format!(
            "{} is {}, not a socket: refusing to replace it (choose another --socket path)",
            path.display(),
            kind_of(t)
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(format!(
            "{} is in use (another pharosd is running there?)",
            path.display()
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            log::info!("removing stale control socket {}", path.display());
            std::fs::remove_file(path)
                .map_err(|e| format!("cannot remove stale socket {}: {e}", path.display()))
        }
        Err(e) => Err(format!(
            "cannot tell whether socket {} is in use: {e}",
            path.display()
        )),
    }
}

fn socket_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.file_type().is_socket())
        .map(|m| (m.dev(), m.ino()))
}

impl ControlSocket {
    /// Creates the socket at `path` (and its directory), mode 0600. Errors are one line, ready
    /// to print.
    pub fn bind(path: &Path) -> Result<ControlSocket, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        clear_stale(path)?;
        // SAFETY: umask only changes this process's file-creation mask; it is restored at once
        // and the daemon is single-threaded here, so no other file creation can observe it.
        let old = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(path);
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        let listener =
            bound.map_err(|e| format!("cannot bind control socket {}: {e}", path.display()))?;
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
            id: socket_id(path),
        })
    }

    /// Removes the socket file if it is still the one we created (idempotent).
    pub fn remove(&mut self) {
        let Some(id) = self.id.take() else { return };
        if socket_id(&self.path) != Some(id) {
            log::warn!(
                "not removing {}: it is no longer the socket this daemon created",
                self.path.display()
            );
            return;
        }
        if let Err(e) = std::fs::remove_file(&self.path) {
            log::warn!("cannot remove {}: {e}", self.path.display());
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pharos-cs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn only_our_own_socket_is_removed_on_drop() {
        let d = scratch("own");
        let path = d.join("s");
        let s = ControlSocket::bind(&path).unwrap();
        assert!(socket_id(&path).is_some());
        drop(s);
        assert!(!path.exists());

        // Replaced by someone else's file while we ran: left alone.
        let s = ControlSocket::bind(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "theirs").unwrap();
        drop(s);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "theirs");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_fifo_is_named_and_kept() {
        let d = scratch("fifo");
        let path = d.join("f");
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a NUL-terminated path this test owns.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = ControlSocket::bind(&path).err().unwrap();
        assert!(err.contains("a FIFO") && err.contains("/f"), "{err}");
        assert!(std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_fifo());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
