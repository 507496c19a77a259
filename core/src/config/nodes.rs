//! The CTDB nodes file: one address per line, PNN = line index.

use super::ConfigError;
use crate::types::Pnn;
use alloc::format;
use alloc::vec::Vec;
use core::net::IpAddr;

/// One slot of the nodes file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeEntry {
    /// The node's number (its index among the non-blank lines).
    pub pnn: Pnn,
    /// The node's address; `None` for a deleted node (a `#` line).
    pub address: Option<IpAddr>,
}

/// A parsed nodes file.
///
/// Rules (CTDB's): leading and trailing blanks are stripped; blank lines are ignored; a line
/// starting with `#` is a deleted node that keeps its PNN slot, so that later nodes keep their
/// numbers; every other line is one IPv4 or IPv6 address. Duplicate addresses are an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodesFile {
    entries: Vec<NodeEntry>,
}

/// The most nodes a cluster may have (CTDB's PNNs are 32-bit, but pharos sizes tables by it).
pub const MAX_NODES: usize = 256;

impl NodesFile {
    /// Parses the text of a nodes file.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut entries: Vec<NodeEntry> = Vec::new();
        let mut last_line = 0;
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            if entries.len() >= MAX_NODES {
                return Err(ConfigError::at(
                    line_no,
                    format!("too many nodes (at most {MAX_NODES})"),
                ));
            }
            let pnn = Pnn(entries.len() as u32);
            let address = if line.starts_with('#') {
                None
            } else {
                // CTDB allows nothing after the address but blanks.
                let written: IpAddr = line.parse().map_err(|_| {
                    ConfigError::at(line_no, format!("invalid node address {line:?}"))
                })?;
                // `::ffff:10.0.0.1` is 10.0.0.1: a dual-stack listener reports it that way.
                let addr = canonical(written);
                if let Some(why) = unusable(addr) {
                    return Err(ConfigError::at(
                        line_no,
                        format!("{written} cannot be a node address: {why}"),
                    ));
                }
                if let Some(dup) = entries.iter().find(|e| e.address == Some(addr)) {
                    return Err(ConfigError::at(
                        line_no,
                        format!("duplicate node address {written} (already pnn {})", dup.pnn),
                    ));
                }
                Some(addr)
            };
            entries.push(NodeEntry { pnn, address });
            last_line = line_no;
        }
        if !entries.iter().any(|e| e.address.is_some()) {
            return Err(ConfigError::at(
                last_line,
                "no nodes (every line is empty or deleted)",
            ));
        }
        Ok(NodesFile { entries })
    }

    /// A nodes file from a list of addresses (`None` = deleted), for embedders and tests.
    pub fn from_addresses(addresses: &[Option<IpAddr>]) -> Result<Self, ConfigError> {
        let mut text = alloc::string::String::new();
        for a in addresses {
            match a {
                Some(a) => text.push_str(&format!("{a}\n")),
                None => text.push_str("#deleted\n"),
            }
        }
        Self::parse(&text)
    }

    /// Every slot, deleted ones included, in PNN order.
    pub fn entries(&self) -> &[NodeEntry] {
        &self.entries
    }

    /// Number of slots (deleted ones included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no slots (never true for a parsed file).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The PNN of the live node with this address (an IPv4-mapped IPv6 address is matched as
    /// the IPv4 address).
    pub fn pnn_of(&self, addr: IpAddr) -> Option<Pnn> {
        let addr = canonical(addr);
        self.entries
            .iter()
            .find(|e| e.address == Some(addr))
            .map(|e| e.pnn)
    }

    /// The address of `pnn`, `None` if it is deleted or out of range.
    pub fn address_of(&self, pnn: Pnn) -> Option<IpAddr> {
        self.entries.get(pnn.index()).and_then(|e| e.address)
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they map.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
        v4 => v4,
    }
}

/// Why an address cannot name one node: listening on it would listen everywhere, or it names
/// many hosts.
fn unusable(addr: IpAddr) -> Option<&'static str> {
    if addr.is_unspecified() {
        Some("it is the unspecified address (it would listen on every interface)")
    } else if addr.is_multicast() {
        Some("it is a multicast address")
    } else if addr == IpAddr::V4(core::net::Ipv4Addr::BROADCAST) {
        Some("it is the broadcast address")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pnn_is_line_index_and_deleted_keep_slot() {
        let f = NodesFile::parse("  10.0.0.1\n\n#10.0.0.2\n10.0.0.3  \nfd00::4\n").unwrap();
        assert_eq!(f.len(), 4);
        assert_eq!(f.address_of(Pnn(0)), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(f.address_of(Pnn(1)), None);
        assert_eq!(f.pnn_of("10.0.0.3".parse().unwrap()), Some(Pnn(2)));
        assert_eq!(f.pnn_of("fd00::4".parse().unwrap()), Some(Pnn(3)));
        assert_eq!(f.pnn_of("10.0.0.2".parse().unwrap()), None);
    }

    #[test]
    fn errors_name_the_line() {
        let e = NodesFile::parse("10.0.0.1\n\n10.0.0.x\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.reason.contains("10.0.0.x"), "{e}");
        let e = NodesFile::parse("10.0.0.1\n10.0.0.1\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("duplicate"));
        // The same address written as IPv4-mapped IPv6 is a duplicate too (issue 9.9: such a
        // 2-node cluster was never quorate).
        let e = NodesFile::parse("127.0.0.1\n::ffff:127.0.0.1\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(
            e.reason,
            "duplicate node address ::ffff:127.0.0.1 (already pnn 0)"
        );
        for (text, why) in [
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("::ffff:0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("ff02::1", "multicast"),
            ("255.255.255.255", "broadcast"),
        ] {
            let e = NodesFile::parse(&alloc::format!("10.0.0.1\n{text}\n")).unwrap_err();
            assert_eq!(e.line, 2, "{text}");
            assert!(e.reason.contains(why), "{text}: {e}");
        }
        let f = NodesFile::parse("::ffff:10.0.0.7\n").unwrap();
        assert_eq!(f.address_of(Pnn(0)), Some("10.0.0.7".parse().unwrap()));
        assert_eq!(f.pnn_of("::ffff:10.0.0.7".parse().unwrap()), Some(Pnn(0)));
        let e = NodesFile::parse("10.0.0.1 extra\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(NodesFile::parse("\n#x\n").is_err());
        assert!(NodesFile::parse("").is_err());
        assert_eq!(
            alloc::format!("{}", e.in_file("/etc/ctdb/nodes")),
            "/etc/ctdb/nodes:1: invalid node address \"10.0.0.1 extra\""
        );
    }
}
