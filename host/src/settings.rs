//! Daemon settings: `pharos.toml` merged with command-line flags (flags win).

use pharos_core::config::{ConfigError, NodesFile, Tunables};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The cluster port when none is configured (CTDB's).
pub const DEFAULT_PORT: u16 = 4379;
/// The control socket when none is configured.
pub const DEFAULT_SOCKET: &str = "/run/pharos/pharosd.sock";

/// `pharos.toml`, as written by an operator. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Path of the CTDB-format nodes file.
    pub nodes: Option<PathBuf>,
    /// Path of the CTDB-format public_addresses file.
    pub public_addresses: Option<PathBuf>,
    /// This node's address (absent: try each node address in order).
    pub node_address: Option<IpAddr>,
    /// Cluster TCP port.
    pub port: Option<u16>,
    /// Control socket path.
    pub socket: Option<PathBuf>,
    /// Event script directory.
    pub event_dir: Option<PathBuf>,
    /// `none`, `fcntl:PATH` or `etcd:HOST:PORT[,...]/KEY`.
    pub cluster_lock: Option<String>,
    /// Whether this node may become recovery master (default true; CTDB's --no-recmaster).
    pub recmaster: Option<bool>,
    /// votequorum's two_node (same as the tunable TwoNode).
    pub two_node: Option<bool>,
    /// votequorum's wait_for_all (same as the tunable WaitForAll).
    pub wait_for_all: Option<bool>,
    /// Tunables by CTDB name; values as strings (`"250ms"`) or integers (seconds or counts).
    #[serde(default)]
    pub tunables: BTreeMap<String, toml::Value>,
}

/// Command-line overrides (from `pharosd`'s flags).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--nodes`.
    pub nodes: Option<PathBuf>,
    /// `--public-addresses`.
    pub public_addresses: Option<PathBuf>,
    /// `--node-address`.
    pub node_address: Option<IpAddr>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--socket`.
    pub socket: Option<PathBuf>,
    /// `--cluster-lock`.
    pub cluster_lock: Option<String>,
    /// `--event-dir`.
    pub event_dir: Option<PathBuf>,
    /// `--tunable NAME=VALUE`, in order.
    pub tunables: Vec<String>,
    /// `--no-recmaster`.
    pub no_recmaster: bool,
}

/// Everything the daemon needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the nodes file was read from.
    pub nodes_path: PathBuf,
    /// The parsed nodes file.
    pub nodes: NodesFile,
    /// The public_addresses file, if any (used by the takeover runs).
    pub public_addresses: Option<PathBuf>,
    /// Fixed node address, or `None` for automatic bind.
    pub node_address: Option<IpAddr>,
    /// Cluster port.
    pub port: u16,
    /// Control socket path.
    pub socket: PathBuf,
    /// Cluster lock spec.
    pub cluster_lock: String,
    /// Event script directory.
    pub event_dir: Option<PathBuf>,
    /// Tunables after the file and the flags.
    pub tunables: Tunables,
    /// May become recovery master.
    pub recmaster_capable: bool,
}

/// Line (1-based) of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.get(..at).map_or(0, |t| t.matches('\n').count()) + 1
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses `pharos.toml` text; errors are `FILE:LINE: reason`.
pub fn parse_file_config(text: &str, path: &Path) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(text, s.start));
        let msg = e.message().trim().to_string();
        if line > 0 {
            format!("{}:{line}: {msg}", path.display())
        } else {
            format!("{}: {msg}", path.display())
        }
    })
}

/// Finds the line of `[tunables]` key `name` in the TOML text, for error messages.
fn tunable_line(text: &str, name: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(0, |i| i + 1)
}

impl Settings {
    /// Loads the config file (if any), applies the flags and reads the nodes file.
    pub fn load(o: &Overrides) -> Result<Settings, String> {
        let (file, text, base) = match &o.config {
            Some(p) => {
                let text = read(p)?;
                let fc = parse_file_config(&text, p)?;
                let base = p.parent().map(Path::to_path_buf).unwrap_or_default();
                (fc, text, base)
            }
            None => (FileConfig::default(), String::new(), PathBuf::new()),
        };
        // Relative paths in the file are relative to the file.
        let rel = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        let nodes_path = o
            .nodes
            .clone()
            .or(file.nodes.map(rel))
            .ok_or("no nodes file: give --nodes FILE or `nodes = \"FILE\"` in pharos.toml")?;
        let nodes = NodesFile::parse(&read(&nodes_path)?)
            .map_err(|e| e.in_file(&nodes_path.display().to_string()).to_string())?;
        let mut tunables = Tunables::default();
        let config_name = o
            .config
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        for (name, value) in &file.tunables {
            let v = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => (*b as u8).to_string(),
                other => other.to_string(),
            };
            let def = tunables.set(name, &v).map_err(|e| {
                ConfigError::at(tunable_line(&text, name), e)
                    .in_file(&config_name)
                    .to_string()
            })?;
            warn_obsolete(def);
        }
        for (key, name, value) in [
            ("two_node", "TwoNode", file.two_node),
            ("wait_for_all", "WaitForAll", file.wait_for_all),
        ] {
            if let Some(v) = value {
                tunables.set(name, if v { "1" } else { "0" }).map_err(|e| {
                    ConfigError::at(tunable_line(&text, key), e)
                        .in_file(&config_name)
                        .to_string()
                })?;
            }
        }
        for t in &o.tunables {
            let (name, value) = t
                .split_once('=')
                .ok_or_else(|| format!("--tunable {t:?}: expected NAME=VALUE"))?;
            let def = tunables
                .set(name.trim(), value.trim())
                .map_err(|e| format!("--tunable {t:?}: {e}"))?;
            warn_obsolete(def);
        }
        let node_address = o.node_address.or(file.node_address);
        if let Some(a) = node_address {
            if nodes.pnn_of(a).is_none() {
                return Err(format!(
                    "node address {a} is not in {}",
                    nodes_path.display()
                ));
            }
        }
        let cluster_lock = o
            .cluster_lock
            .clone()
            .or(file.cluster_lock)
            .unwrap_or_else(|| "none".into());
        validate_lock(&cluster_lock)?;
        Ok(Settings {
            nodes_path,
            nodes,
            public_addresses: o
                .public_addresses
                .clone()
                .or(file.public_addresses.map(rel)),
            node_address,
            port: o.port.or(file.port).unwrap_or(DEFAULT_PORT),
            socket: o
                .socket
                .clone()
                .or(file.socket.map(rel))
                .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
            cluster_lock,
            event_dir: o.event_dir.clone().or(file.event_dir.map(rel)),
            tunables,
            recmaster_capable: !o.no_recmaster && file.recmaster.unwrap_or(true),
        })
    }
}

fn warn_obsolete(def: &pharos_core::config::TunableDef) {
    if def.obsolete {
        log::warn!("tunable {} is obsolete and has no effect", def.name);
    }
}

fn validate_lock(spec: &str) -> Result<(), String> {
    if spec == "none" || spec.strip_prefix("fcntl:").is_some_and(|p| !p.is_empty()) {
        return Ok(());
    }
    if spec.strip_prefix("etcd:").is_some_and(|r| r.contains('/')) {
        return Ok(());
    }
    Err(format!(
        "invalid cluster_lock {spec:?}: expected none, fcntl:PATH or etcd:HOST:PORT[,HOST:PORT...]/KEY"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pharos-config-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn file_and_flags_merge_flags_win() {
        let d = tmpdir("merge");
        std::fs::write(d.join("nodes"), "127.0.0.1\n127.0.0.2\n").unwrap();
        std::fs::write(
            d.join("pharos.toml"),
            "nodes = \"nodes\"\nport = 5000\n[tunables]\nKeepaliveInterval = \"250ms\"\nKeepaliveLimit = 4\n",
        )
        .unwrap();
        let mut o = Overrides {
            config: Some(d.join("pharos.toml")),
            ..Default::default()
        };
        let s = Settings::load(&o).unwrap();
        assert_eq!(s.port, 5000);
        assert_eq!(s.nodes.len(), 2);
        assert_eq!(s.tunables.keepalive_limit, 4);
        assert_eq!(
            s.tunables.keepalive_interval,
            std::time::Duration::from_millis(250)
        );
        assert!(s.recmaster_capable);
        std::fs::write(
            d.join("pharos.toml"),
            "nodes = \"nodes\"\nrecmaster = false\ntwo_node = true\nwait_for_all = true\n",
        )
        .unwrap();
        let s = Settings::load(&o).unwrap();
        assert!(!s.recmaster_capable && s.tunables.two_node && s.tunables.wait_for_all);
        o.port = Some(6000);
        o.tunables = vec!["KeepaliveLimit=7".into()];
        let s = Settings::load(&o).unwrap();
        assert_eq!((s.port, s.tunables.keepalive_limit), (6000, 7));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn errors_name_file_and_line() {
        let d = tmpdir("errors");
        std::fs::write(d.join("nodes"), "127.0.0.1\n\nnot-an-ip\n").unwrap();
        std::fs::write(d.join("pharos.toml"), "nodes = \"nodes\"\n").unwrap();
        let o = Overrides {
            config: Some(d.join("pharos.toml")),
            ..Default::default()
        };
        let e = Settings::load(&o).unwrap_err();
        assert!(
            e.ends_with("nodes:3: invalid node address \"not-an-ip\""),
            "{e}"
        );

        std::fs::write(d.join("nodes"), "127.0.0.1\n").unwrap();
        std::fs::write(d.join("pharos.toml"), "nodes = \"nodes\"\n\nbogus = 1\n").unwrap();
        let e = Settings::load(&o).unwrap_err();
        assert!(e.contains("pharos.toml:3:"), "{e}");
        std::fs::write(
            d.join("pharos.toml"),
            "nodes = \"nodes\"\n[tunables]\n\nKeepaliveLimit = 0\n",
        )
        .unwrap();
        let e = Settings::load(&o).unwrap_err();
        assert!(
            e.contains("pharos.toml:4:") && e.contains("out of range"),
            "{e}"
        );
        std::fs::write(
            d.join("pharos.toml"),
            "nodes = \"nodes\"\ncluster_lock = \"flock\"\n",
        )
        .unwrap();
        assert!(Settings::load(&o).unwrap_err().contains("cluster_lock"));
        let o2 = Overrides {
            config: Some(d.join("pharos.toml")),
            tunables: vec!["KeepaliveLimit".into()],
            ..Default::default()
        };
        std::fs::write(d.join("pharos.toml"), "nodes = \"nodes\"\n").unwrap();
        assert!(Settings::load(&o2).unwrap_err().contains("NAME=VALUE"));
        let o3 = Overrides {
            config: Some(d.join("pharos.toml")),
            node_address: Some("127.0.0.5".parse().unwrap()),
            ..Default::default()
        };
        assert!(Settings::load(&o3).unwrap_err().contains("127.0.0.5"));
        assert!(Settings::load(&Overrides::default())
            .unwrap_err()
            .contains("no nodes file"));
        std::fs::remove_dir_all(d).unwrap();
    }
}
