//! A scratch directory under the system temp dir, removed (with what is in it) when dropped:
//! for the tests of every pharos crate, which must clean up also when they fail.

use std::path::{Path, PathBuf};

/// A directory `pharos-test-NAME-PID` in the temp dir, created empty, removed on drop (kept
/// when `PHAROS_KEEP_SCRATCH` is set).
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// Creates it (replacing a leftover of the same name from this PID).
    pub fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("pharos-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        if let Err(e) = std::fs::create_dir_all(&d) {
            panic!("cannot create {}: {e}", d.display());
        }
        Scratch(d)
    }

    /// A path inside it.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // PHAROS_KEEP_SCRATCH=1 keeps the logs of a run for a post-mortem.
        if std::env::var_os("PHAROS_KEEP_SCRATCH").is_some() {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
