//! Start-up shared by the harness's helper binaries (probe, sampler, banner responder).

use std::io;

/// Asks the kernel to send SIGTERM when the process that started us dies, so a helper never
/// outlives a crashed harness (the harness starts helpers from its main thread: PR_SET_PDEATHSIG
/// follows the forking thread). Exits at once if that parent is already gone.
pub fn die_with_parent() -> io::Result<()> {
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number; no memory is passed.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::getppid() } != parent {
        std::process::exit(0);
    }
    Ok(())
}

/// Parses a duration argument: `10ms`, `2s` or bare seconds.
pub fn duration_ns(v: &str) -> Result<u64, String> {
    super::profile::parse_secs(v)
        .map(|s| (s * 1e9) as u64)
        .ok_or_else(|| format!("not a duration: {v:?} (10ms, 2s, 1.5)"))
}

/// Prints `NAME: error` and exits 1 (a helper's one-line failure).
pub fn fail(name: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("{name}: {e}");
    std::process::exit(1)
}
