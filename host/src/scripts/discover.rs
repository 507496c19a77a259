//! Which scripts an event directory holds, in CTDB's legacy layout.
//!
//! Two spellings are recognised, each with the filter of the CTDB release that used it:
//! - `NN.NAME.script` (CTDB 4.9 and later, `$CTDB_BASE/events/legacy/`; the name is the file
//!   name without `.script`): `fnmatch("[0-9][0-9].*.script")` in `ctdb/common/event_script.c`;
//! - `NN.NAME` (CTDB 4.8 and earlier, `$CTDB_BASE/events.d/`): two digits and a dot, then no
//!   further `.` and no `~` anywhere (editor backups and `.rpmnew`/`.dpkg-dist` copies are
//!   ignored), `script_filter` in that release's `ctdb/common/run_event.c`.
//!
//! Anything else in the directory is ignored, as CTDB does. Scripts run in file-name order
//! (CTDB's `alphasort`, byte order in the C locale). A script is enabled when its file (a
//! symbolic link is followed, as CTDB's `stat` does) has the owner-execute bit; otherwise it
//! is listed as DISABLED and not run (`ctdb event script disable` clears that bit).

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// One script of an event directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// Its name as `scriptstatus` shows it (`10.interface`).
    pub name: String,
    /// Its file.
    pub path: PathBuf,
    /// Whether its file is executable by its owner (else DISABLED).
    pub enabled: bool,
}

/// The script name a directory entry stands for, if it is a script at all.
pub fn script_name(file: &str) -> Option<&str> {
    let b = file.as_bytes();
    if b.len() < 3 || !b[0].is_ascii_digit() || !b[1].is_ascii_digit() || b[2] != b'.' {
        return None;
    }
    // CTDB 4.9+: "[0-9][0-9]." then anything, then ".script" (so at least "NN..script").
    if let Some(name) = file.strip_suffix(".script") {
        if name.len() >= 3 {
            return Some(name);
        }
    }
    // CTDB 4.8 and earlier: no further dot, no '~'.
    let rest = &file[3..];
    if rest.contains('.') || file.contains('~') {
        return None;
    }
    Some(file)
}

/// The scripts in `dir`, in the order they run. Entries whose names are not UTF-8 are not
/// scripts (no CTDB script is named so, and `scriptstatus` could not show them).
pub fn list(dir: &Path) -> io::Result<Vec<Script>> {
    let mut found: Vec<(String, Script)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(file) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Some(name) = script_name(&file) else {
            continue;
        };
        let path = dir.join(&file);
        // Followed like CTDB's stat(): a dangling link is a disabled script.
        let enabled = std::fs::metadata(&path)
            .map(|m| m.permissions().mode() & 0o100 != 0)
            .unwrap_or(false);
        found.push((
            file.clone(),
            Script {
                name: name.to_string(),
                path,
                enabled,
            },
        ));
    }
    found.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(found.into_iter().map(|(_, s)| s).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::Scratch;

    #[test]
    fn names_follow_ctdbs_filters() {
        // CTDB 4.9+ names.
        assert_eq!(script_name("10.interface.script"), Some("10.interface"));
        assert_eq!(script_name("50.samba.old.script"), Some("50.samba.old"));
        assert_eq!(script_name("10..script"), Some("10."));
        assert_eq!(script_name("10.script"), Some("10.script"));
        // CTDB 4.8 names.
        assert_eq!(script_name("10.interface"), Some("10.interface"));
        assert_eq!(script_name("00."), Some("00."));
        // Ignored.
        for not in [
            "",
            "10",
            "1.x",
            "ab.x",
            "10x",
            "10.interface~",
            "10.interface.rpmnew",
            "10.interface.dpkg-dist",
            "README",
            ".10.x",
            "10.options.sh",
        ] {
            assert_eq!(script_name(not), None, "{not:?}");
        }
    }

    #[test]
    fn listed_in_byte_order_with_disabled_ones() {
        let d = Scratch::new("scripts-discover");
        let put = |name: &str, mode: u32| {
            let p = d.join(name);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        put("50.b.script", 0o755);
        put("10.a", 0o755);
        put("10.B.script", 0o644);
        put("05.x~", 0o755);
        put("99.README.txt", 0o755);
        put("20.group-only", 0o654);
        std::os::unix::fs::symlink(d.join("nowhere"), d.join("30.dangling.script")).unwrap();
        std::os::unix::fs::symlink(d.join("50.b.script"), d.join("40.link.script")).unwrap();
        let got: Vec<(String, bool)> = list(&d.0)
            .unwrap()
            .into_iter()
            .map(|s| (s.name, s.enabled))
            .collect();
        let want = [
            ("10.B", false),
            ("10.a", true),
            ("20.group-only", false),
            ("30.dangling", false),
            ("40.link", true),
            ("50.b", true),
        ];
        let want: Vec<(String, bool)> = want.iter().map(|(n, e)| (n.to_string(), *e)).collect();
        assert_eq!(got, want);
        assert!(list(&d.join("missing")).is_err());
    }
}
