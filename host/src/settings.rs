//! Daemon settings: `pharos.toml` merged with command-line flags (flags win), validated before
//! the daemon binds anything. Every error is one line: `FILE:LINE: reason` for a file, the flag
//! and its value for a flag.

use crate::lock::LockSpec;
use pharos_core::config::{ConfigError, NodesFile, PublicAddresses, TunableKind, Tunables};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The cluster port when none is configured (CTDB's).
pub const DEFAULT_PORT: u16 = 4379;
/// The control socket when none is configured.
pub const DEFAULT_SOCKET: &str = "/run/pharos/pharosd.sock";

/// `pharos.toml`, as written by an operator. Every key is optional. Values that are checked
/// after parsing keep their place in the file (`Spanned`) for the error message.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Path of the CTDB-format nodes file.
    pub nodes: Option<PathBuf>,
    /// Path of the CTDB-format public_addresses file.
    pub public_addresses: Option<PathBuf>,
    /// This node's address (absent: try each node address in order).
    pub node_address: Option<IpAddr>,
    /// Cluster TCP port (1 to 65535).
    pub port: Option<Spanned<u16>>,
    /// Control socket path.
    pub socket: Option<PathBuf>,
    /// Event script directory.
    pub event_dir: Option<PathBuf>,
    /// `none`, `fcntl:PATH` or `etcd:HOST:PORT[,...]/KEY`.
    pub cluster_lock: Option<Spanned<String>>,
    /// Whether this node may become recovery master (default true; CTDB's --no-recmaster).
    pub recmaster: Option<bool>,
    /// votequorum's two_node (same as the tunable TwoNode).
    pub two_node: Option<Spanned<bool>>,
    /// votequorum's wait_for_all (same as the tunable WaitForAll).
    pub wait_for_all: Option<Spanned<bool>>,
    /// Tunables by CTDB name; values as strings (`"250ms"`) or integers (seconds or counts),
    /// `true`/`false` for the 0-or-1 ones.
    #[serde(default)]
    pub tunables: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
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
    /// That file, parsed (read at load, so a bad file stops the daemon before it binds).
    pub public_ips: Option<PublicAddresses>,
    /// Fixed node address, or `None` for automatic bind.
    pub node_address: Option<IpAddr>,
    /// Cluster port.
    pub port: u16,
    /// Control socket path.
    pub socket: PathBuf,
    /// The cluster lock; one this build can provide ([`LockSpec::provider`] succeeds).
    pub cluster_lock: LockSpec,
    /// Event script directory.
    pub event_dir: Option<PathBuf>,
    /// Tunables after the file and the flags.
    pub tunables: Tunables,
    /// May become recovery master.
    pub recmaster_capable: bool,
}

/// Line (1-based) of byte offset `at` in `text`.
fn line_of(text: &[u8], at: usize) -> usize {
    text.get(..at)
        .map_or(0, |t| t.iter().filter(|&&b| b == b'\n').count())
        + 1
}

/// Reads and parses a public_addresses file (at start, and again for `reloadips`); errors name
/// `FILE:LINE`.
pub fn read_public_addresses(path: &Path) -> Result<PublicAddresses, String> {
    PublicAddresses::parse(&read_text(path)?)
        .map_err(|e| e.in_file(&path.display().to_string()).to_string())
}

/// Reads a text file; a file that is not UTF-8 is an error at the line of the first bad byte.
pub fn read_text(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        format!(
            "{}:{}: not UTF-8 text (byte 0x{:02x})",
            path.display(),
            line_of(bytes, at),
            bytes[at]
        )
    })
}

/// Parses `pharos.toml` text; errors are `FILE:LINE: reason`.
pub fn parse_file_config(text: &str, path: &Path) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| {
        let msg = e.message().trim().to_string();
        match e.span() {
            Some(s) => format!(
                "{}:{}: {msg}",
                path.display(),
                line_of(text.as_bytes(), s.start)
            ),
            None => format!("{}: {msg}", path.display()),
        }
    })
}

/// The text form of a `[tunables]` value, for [`Tunables::set`].
fn tunable_text(name: &str, value: &toml::Value) -> Result<String, String> {
    let def = Tunables::def(name).ok_or_else(|| format!("unknown tunable {name:?}"))?;
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Boolean(b) if def.kind == TunableKind::Bool => Ok(u8::from(*b).to_string()),
        toml::Value::Boolean(b) => Err(format!(
            "{}: expected a {}, got the boolean {b}",
            def.name,
            if def.kind == TunableKind::Duration {
                "duration (250ms, 2s or 2)"
            } else {
                "number"
            }
        )),
        other => Err(format!(
            "{}: expected a number or a string, got {} {other}",
            def.name,
            other.type_str()
        )),
    }
}

fn port(p: u16, place: impl FnOnce() -> String) -> Result<u16, String> {
    if p == 0 {
        return Err(format!("{}: port 0 is not a port (1 to 65535)", place()));
    }
    Ok(p)
}

/// A cluster lock spec this build can provide.
fn cluster_lock(spec: &str) -> Result<LockSpec, String> {
    let lock = LockSpec::parse(spec)?;
    lock.provider()?;
    Ok(lock)
}

impl Settings {
    /// Loads the config file (if any), applies the flags and reads the nodes file.
    pub fn load(o: &Overrides) -> Result<Settings, String> {
        let (file, text, base) = match &o.config {
            Some(p) => {
                let text = read_text(p)?;
                let fc = parse_file_config(&text, p)?;
                let base = p.parent().map(Path::to_path_buf).unwrap_or_default();
                (fc, text, base)
            }
            None => (FileConfig::default(), String::new(), PathBuf::new()),
        };
        let config_name = o
            .config
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        // `FILE:LINE` of something in the config file.
        let at = |span: std::ops::Range<usize>| {
            format!("{config_name}:{}", line_of(text.as_bytes(), span.start))
        };
        // Relative paths in the file are relative to the file.
        let rel = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        let nodes_path = o
            .nodes
            .clone()
            .or(file.nodes.map(rel))
            .ok_or("no nodes file: give --nodes FILE or `nodes = \"FILE\"` in pharos.toml")?;
        let nodes = NodesFile::parse(&read_text(&nodes_path)?)
            .map_err(|e| e.in_file(&nodes_path.display().to_string()).to_string())?;
        let public_addresses = o
            .public_addresses
            .clone()
            .or(file.public_addresses.map(rel));
        let public_ips = match &public_addresses {
            Some(p) => Some(read_public_addresses(p)?),
            None => None,
        };
        let mut tunables = Tunables::default();
        for (name, value) in &file.tunables {
            let line = line_of(text.as_bytes(), name.span().start);
            let def = tunable_text(name.get_ref(), value.get_ref())
                .and_then(|v| tunables.set(name.get_ref(), &v))
                .map_err(|e| ConfigError::at(line, e).in_file(&config_name).to_string())?;
            warn_obsolete(def);
        }
        for (name, value) in [
            ("TwoNode", &file.two_node),
            ("WaitForAll", &file.wait_for_all),
        ] {
            if let Some(v) = value {
                tunables
                    .set(name, if *v.get_ref() { "1" } else { "0" })
                    .map_err(|e| format!("{}: {e}", at(v.span())))?;
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
        let port = match (o.port, &file.port) {
            (Some(p), _) => port(p, || format!("--port {p}"))?,
            (None, Some(p)) => port(*p.get_ref(), || at(p.span()))?,
            (None, None) => DEFAULT_PORT,
        };
        let cluster_lock = match (&o.cluster_lock, &file.cluster_lock) {
            (Some(spec), _) => cluster_lock(spec).map_err(|e| format!("--cluster-lock: {e}"))?,
            (None, Some(spec)) => match cluster_lock(spec.get_ref()) {
                // A relative lock file is relative to the config file, like every path in it.
                Ok(LockSpec::Fcntl(p)) => LockSpec::Fcntl(rel(p)),
                Ok(lock) => lock,
                Err(e) => return Err(format!("{}: {e}", at(spec.span()))),
            },
            (None, None) => LockSpec::None,
        };
        Ok(Settings {
            nodes_path,
            nodes,
            public_addresses,
            public_ips,
            node_address,
            port,
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::scratch::Scratch;

    #[test]
    fn file_and_flags_merge_flags_win() {
        let d = Scratch::new("merge");
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
    }

    #[test]
    fn errors_name_file_and_line() {
        let d = Scratch::new("errors");
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
        assert!(Settings::load(&o)
            .unwrap_err()
            .contains("pharos.toml:2: invalid cluster lock \"flock\""));
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
    }

    /// One config file, one nodes file; the error of loading them.
    fn load_error(name: &str, toml: &[u8], nodes: &[u8], flags: Overrides) -> String {
        let d = Scratch::new(name);
        std::fs::write(d.join("nodes"), nodes).unwrap();
        std::fs::write(d.join("pharos.toml"), toml).unwrap();
        let o = Overrides {
            config: Some(d.join("pharos.toml")),
            ..flags
        };
        Settings::load(&o).unwrap_err()
    }

    const NODES: &[u8] = b"127.0.0.1\n";

    #[test]
    fn port_zero_is_refused() {
        let e = load_error(
            "port0",
            b"nodes = \"nodes\"\n\nport = 0\n",
            NODES,
            Overrides::default(),
        );
        assert!(
            e.ends_with("pharos.toml:3: port 0 is not a port (1 to 65535)"),
            "{e}"
        );
        let flags = Overrides {
            port: Some(0),
            ..Default::default()
        };
        let e = load_error("port0flag", b"nodes = \"nodes\"\n", NODES, flags);
        assert_eq!(e, "--port 0: port 0 is not a port (1 to 65535)");
    }

    #[test]
    fn a_tunable_given_a_boolean_is_refused_unless_it_is_0_or_1() {
        let e = load_error(
            "bool",
            b"nodes = \"nodes\"\n[tunables]\nKeepaliveLimit = true\n",
            NODES,
            Overrides::default(),
        );
        assert!(
            e.ends_with("pharos.toml:3: KeepaliveLimit: expected a number, got the boolean true"),
            "{e}"
        );
        let e = load_error(
            "boolduration",
            b"nodes = \"nodes\"\n[tunables]\nKeepaliveInterval = false\n",
            NODES,
            Overrides::default(),
        );
        assert!(
            e.contains("pharos.toml:3: KeepaliveInterval: expected a duration"),
            "{e}"
        );
        let e = load_error(
            "float",
            b"nodes = \"nodes\"\n[tunables]\nKeepaliveLimit = 1.5\n",
            NODES,
            Overrides::default(),
        );
        assert!(
            e.contains("pharos.toml:3: KeepaliveLimit: expected a number or a string"),
            "{e}"
        );
        // A 0-or-1 tunable takes true and false.
        let d = Scratch::new("boolok");
        std::fs::write(d.join("nodes"), NODES).unwrap();
        std::fs::write(
            d.join("pharos.toml"),
            "nodes = \"nodes\"\n[tunables]\nTwoNode = true\nNoIPFailback = 1\n",
        )
        .unwrap();
        let o = Overrides {
            config: Some(d.join("pharos.toml")),
            ..Default::default()
        };
        let s = Settings::load(&o).unwrap();
        assert!(s.tunables.two_node && s.tunables.no_ip_failback);
    }

    #[test]
    fn a_quoted_key_keeps_its_line() {
        let e = load_error(
            "quoted",
            b"nodes = \"nodes\"\n[tunables]\n\n\"KeepaliveLimit\" = 0\n",
            NODES,
            Overrides::default(),
        );
        assert!(
            e.contains("pharos.toml:4: KeepaliveLimit:") && e.contains("out of range"),
            "{e}"
        );
        let e = load_error(
            "quoted2",
            b"nodes = \"nodes\"\n[tunables]\nKeepaliveLimit = 3\n 'Bogus' = 1\n",
            NODES,
            Overrides::default(),
        );
        assert!(
            e.ends_with("pharos.toml:4: unknown tunable \"Bogus\""),
            "{e}"
        );
    }

    #[test]
    fn a_file_that_is_not_utf8_names_the_line_of_the_bad_byte() {
        let e = load_error(
            "utf8toml",
            b"nodes = \"nodes\"\n# caf\xe9\nport = 1\n",
            NODES,
            Overrides::default(),
        );
        assert!(
            e.ends_with("pharos.toml:2: not UTF-8 text (byte 0xe9)"),
            "{e}"
        );
        let e = load_error(
            "utf8nodes",
            b"nodes = \"nodes\"\n",
            b"127.0.0.1\n127.0.0.2\n\xff\n",
            Overrides::default(),
        );
        assert!(e.ends_with("nodes:3: not UTF-8 text (byte 0xff)"), "{e}");
        let d = Scratch::new("utf8pub");
        std::fs::write(d.join("pub"), b"10.0.0.1/24 eth0\n\n10.0.0.2/24 eth\x80\n").unwrap();
        let flags = Overrides {
            public_addresses: Some(d.join("pub")),
            ..Default::default()
        };
        let e = load_error("utf8pubcfg", b"nodes = \"nodes\"\n", NODES, flags);
        assert!(e.ends_with("pub:3: not UTF-8 text (byte 0x80)"), "{e}");
        // A good public_addresses file is read at load.
        std::fs::write(d.join("pub"), "10.0.0.1/24 eth0\n").unwrap();
        std::fs::write(d.join("nodes"), NODES).unwrap();
        let o = Overrides {
            nodes: Some(d.join("nodes")),
            public_addresses: Some(d.join("pub")),
            ..Default::default()
        };
        assert_eq!(Settings::load(&o).unwrap().public_ips.unwrap().len(), 1);
    }

    #[test]
    fn an_etcd_lock_is_refused_at_validation() {
        let e = load_error(
            "etcd",
            b"nodes = \"nodes\"\ncluster_lock = \"etcd:127.0.0.1:2379/pharos\"\n",
            NODES,
            Overrides::default(),
        );
        assert!(
            e.contains("pharos.toml:2: cluster lock \"etcd:127.0.0.1:2379/pharos\": the etcd lock comes with the tokio shell"),
            "{e}"
        );
        let flags = Overrides {
            cluster_lock: Some("etcd:h:1/k".into()),
            ..Default::default()
        };
        let e = load_error("etcdflag", b"nodes = \"nodes\"\n", NODES, flags);
        assert!(
            e.starts_with("--cluster-lock: cluster lock \"etcd:h:1/k\""),
            "{e}"
        );
    }

    #[test]
    fn a_relative_lock_file_is_relative_to_the_config_file() {
        let d = Scratch::new("rellock");
        std::fs::write(d.join("nodes"), NODES).unwrap();
        std::fs::write(
            d.join("pharos.toml"),
            "nodes = \"nodes\"\ncluster_lock = \"fcntl:cluster.lock\"\n",
        )
        .unwrap();
        let o = Overrides {
            config: Some(d.join("pharos.toml")),
            ..Default::default()
        };
        assert_eq!(
            Settings::load(&o).unwrap().cluster_lock,
            LockSpec::Fcntl(d.join("cluster.lock"))
        );
    }
}
