//! Settings profiles (`benches/failover/profiles/*.profile`): which system, its tunables and
//! options, and the harness's waits for it. One `key = value` per line, `#` comments; keys
//! `tunable.NAME` are the system's tunables (CTDB and pharos names), the rest are options.
//! The file is printed verbatim with the results, so every setting is on record.

use std::path::Path;

/// One settings profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// The file's stem, e.g. `ctdb-fast`.
    pub name: String,
    /// `pharos`, `ctdb` or `keepalived`.
    pub system: String,
    /// A short label for tables, e.g. `CTDB fastest tunables`.
    pub label: String,
    /// `tunable.NAME = VALUE` lines, in file order.
    pub tunables: Vec<(String, String)>,
    /// Every other `key = value`, in file order.
    pub options: Vec<(String, String)>,
    /// The file as written.
    pub text: String,
}

/// The systems the harness knows.
pub const SYSTEMS: [&str; 3] = ["pharos", "ctdb", "keepalived"];

impl Profile {
    /// Parses a profile; errors name the line.
    pub fn parse(name: &str, text: &str) -> Result<Profile, String> {
        let mut p = Profile {
            name: name.to_string(),
            system: String::new(),
            label: name.to_string(),
            tunables: Vec::new(),
            options: Vec::new(),
            text: text.to_string(),
        };
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(format!("{name}:{}: expected `key = value`", i + 1));
            };
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() || v.is_empty() {
                return Err(format!("{name}:{}: empty key or value", i + 1));
            }
            if let Some(t) = k.strip_prefix("tunable.") {
                p.tunables.push((t.to_string(), v.to_string()));
            } else {
                match k {
                    "system" => p.system = v.to_string(),
                    "label" => p.label = v.to_string(),
                    _ => p.options.push((k.to_string(), v.to_string())),
                }
            }
        }
        if !SYSTEMS.contains(&p.system.as_str()) {
            return Err(format!(
                "{name}: `system` must be one of {}",
                SYSTEMS.join(", ")
            ));
        }
        for (k, v) in &p.options {
            if HARNESS_DURATIONS.contains(&k.as_str()) && parse_secs(v).is_none() {
                return Err(format!(
                    "{name}: {k} = {v}: not a duration (250ms, 2s, 1.5)"
                ));
            }
        }
        Ok(p)
    }

    /// Reads `DIR/NAME.profile`.
    pub fn load(dir: &Path, name: &str) -> Result<Profile, String> {
        let path = dir.join(format!("{name}.profile"));
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Profile::parse(name, &text)
    }

    /// Option `key`, if set.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Option `key` as seconds, or `default`.
    pub fn secs(&self, key: &str, default: f64) -> f64 {
        self.option(key).and_then(parse_secs).unwrap_or(default)
    }
}

/// The harness's own waits, all durations:
/// `settle` (healthy cluster -> next fault), `failover_timeout`, `start_timeout`,
/// `ready_timeout` (restored node -> healthy again).
pub const HARNESS_DURATIONS: [&str; 4] = [
    "settle",
    "failover_timeout",
    "start_timeout",
    "ready_timeout",
];

/// `250ms`, `2s` or a bare number of seconds.
pub fn parse_secs(v: &str) -> Option<f64> {
    let x = if let Some(ms) = v.strip_suffix("ms") {
        ms.trim().parse::<f64>().ok()? / 1000.0
    } else if let Some(s) = v.strip_suffix('s') {
        s.trim().parse::<f64>().ok()?
    } else {
        v.parse::<f64>().ok()?
    };
    (x.is_finite() && x >= 0.0).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_profile() {
        let p = Profile::parse(
            "ctdb-fast",
            "# fast\nsystem = ctdb\nlabel = CTDB fast\ntunable.KeepaliveInterval = 1\n\
             leader_timeout = 2 # seconds\nsettle = 3s\n",
        )
        .unwrap();
        assert_eq!(p.system, "ctdb");
        assert_eq!(p.label, "CTDB fast");
        assert_eq!(p.tunables, vec![("KeepaliveInterval".into(), "1".into())]);
        assert_eq!(p.option("leader_timeout"), Some("2"));
        assert_eq!(p.secs("settle", 0.0), 3.0);
        assert_eq!(p.secs("ready_timeout", 9.0), 9.0);
    }

    #[test]
    fn bad_profiles_name_the_line() {
        let e = Profile::parse("x", "system = ctdb\nnonsense\n").unwrap_err();
        assert!(e.contains("x:2"), "{e}");
        assert!(Profile::parse("x", "system = zfs\n")
            .unwrap_err()
            .contains("system"));
        assert!(Profile::parse("x", "system = ctdb\nsettle = soon\n").is_err());
        assert!(Profile::parse("x", "system = ctdb\n = 1\n").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_secs("250ms"), Some(0.25));
        assert_eq!(parse_secs("2s"), Some(2.0));
        assert_eq!(parse_secs("1.5"), Some(1.5));
        assert_eq!(parse_secs("-1"), None);
        assert_eq!(parse_secs("x"), None);
        assert_eq!(parse_secs("inf"), None);
    }
}
