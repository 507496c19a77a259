//! Small identifiers shared by every module.

use core::fmt;

/// Physical node number: the node's line index in the nodes file, from 0.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pnn(pub u32);

impl fmt::Debug for Pnn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Pnn::NONE {
            f.write_str("Pnn(NONE)")
        } else {
            write!(f, "Pnn({})", self.0)
        }
    }
}

impl Pnn {
    /// "No node" on the wire and in JSON (-1 as i32).
    pub const NONE: Pnn = Pnn(u32::MAX);

    /// The PNN as an index into per-node tables.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for Pnn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Pnn::NONE {
            f.write_str("-1")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// Cluster generation: changes with every recovery; frames carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Generation(pub u32);

/// A connection the shell accepted, named by the shell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// A control-socket client, named by the shell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientId(pub u64);

/// One TCP connection between two nodes.
///
/// As in CTDB, every node keeps one outgoing connection to each peer (it writes there) and
/// accepts one incoming connection from each peer (it reads there).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Link {
    /// Our outgoing connection to this peer.
    Out(Pnn),
    /// A connection we accepted.
    In(ConnId),
}

/// CTDB's node flags, as a bit set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NodeFlags(pub u32);

impl NodeFlags {
    /// No TCP connection in both directions with this node (or keepalives stopped).
    pub const DISCONNECTED: NodeFlags = NodeFlags(0x01);
    /// The node's health monitoring failed.
    pub const UNHEALTHY: NodeFlags = NodeFlags(0x02);
    /// Administratively banned for a period.
    pub const BANNED: NodeFlags = NodeFlags(0x08);
    /// Administratively disabled: in the cluster, hosts no public IP.
    pub const DISABLED: NodeFlags = NodeFlags(0x04);
    /// Removed from the nodes file (a `#` line); keeps its PNN.
    pub const DELETED: NodeFlags = NodeFlags(0x10);
    /// Administratively stopped: inactive.
    pub const STOPPED: NodeFlags = NodeFlags(0x20);
    /// Flags a node sets on itself and tells its peers (the rest are local observations).
    pub const ADMIN: NodeFlags = NodeFlags(0x02 | 0x04 | 0x08 | 0x20);

    /// Every flag with its CTDB name, in CTDB's display order.
    pub const NAMES: [(NodeFlags, &'static str); 6] = [
        (NodeFlags::DISCONNECTED, "DISCONNECTED"),
        (NodeFlags::UNHEALTHY, "UNHEALTHY"),
        (NodeFlags::BANNED, "BANNED"),
        (NodeFlags::DISABLED, "DISABLED"),
        (NodeFlags::STOPPED, "STOPPED"),
        (NodeFlags::DELETED, "DELETED"),
    ];

    /// No flag set: the node is OK.
    pub const fn empty() -> Self {
        NodeFlags(0)
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: NodeFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set.
    pub const fn intersects(self, other: NodeFlags) -> bool {
        self.0 & other.0 != 0
    }

    /// Sets or clears `other`.
    pub fn set(&mut self, other: NodeFlags, on: bool) {
        if on {
            self.0 |= other.0
        } else {
            self.0 &= !other.0
        }
    }

    /// `self` with the flags of `other` added.
    pub const fn union(self, other: NodeFlags) -> Self {
        NodeFlags(self.0 | other.0)
    }

    /// The flags set in both `self` and `other`.
    pub const fn intersection(self, other: NodeFlags) -> Self {
        NodeFlags(self.0 & other.0)
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names of the set flags, in display order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        NodeFlags::NAMES
            .into_iter()
            .filter(move |(f, _)| self.intersects(*f))
            .map(|(_, n)| n)
    }
}

impl fmt::Debug for NodeFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `OK`, or the set flags joined by `|` (as `ctdb status` prints them).
impl fmt::Display for NodeFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("OK");
        }
        for (i, name) in self.names().enumerate() {
            if i > 0 {
                f.write_str("|")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn flags_display_like_ctdb() {
        assert_eq!(NodeFlags::empty().to_string(), "OK");
        let f = NodeFlags::DISCONNECTED.union(NodeFlags::BANNED);
        assert_eq!(f.to_string(), "DISCONNECTED|BANNED");
        let mut g = f;
        g.set(NodeFlags::DISCONNECTED, false);
        assert_eq!(g, NodeFlags::BANNED);
        assert_eq!(Pnn::NONE.to_string(), "-1");
    }
}

/// Recovery mode, as CTDB names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoveryMode {
    /// Normal operation.
    Normal,
    /// A recovery is under way.
    Active,
}

impl RecoveryMode {
    /// `NORMAL` or `ACTIVE`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryMode::Normal => "NORMAL",
            RecoveryMode::Active => "ACTIVE",
        }
    }
}

/// A set of PNNs below [`crate::config::MAX_NODES`], as a fixed bitmap (`Copy`, no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NodeSet([u8; NodeSet::BYTES]);

impl NodeSet {
    /// Encoded size.
    pub const BYTES: usize = crate::config::MAX_NODES / 8;

    /// The empty set.
    pub const fn new() -> Self {
        NodeSet([0; NodeSet::BYTES])
    }

    /// From its encoding (missing bytes are zero).
    pub fn from_bytes(b: &[u8]) -> Self {
        let mut s = NodeSet::new();
        let n = b.len().min(NodeSet::BYTES);
        s.0[..n].copy_from_slice(&b[..n]);
        s
    }

    /// Its encoding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Adds `p` (ignored if out of range).
    pub fn insert(&mut self, p: Pnn) {
        if let Some(b) = self.0.get_mut(p.index() / 8) {
            *b |= 1 << (p.index() % 8);
        }
    }

    /// Removes `p`.
    pub fn remove(&mut self, p: Pnn) {
        if let Some(b) = self.0.get_mut(p.index() / 8) {
            *b &= !(1 << (p.index() % 8));
        }
    }

    /// Whether `p` is in the set.
    pub fn contains(&self, p: Pnn) -> bool {
        self.0
            .get(p.index() / 8)
            .is_some_and(|b| b & (1 << (p.index() % 8)) != 0)
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.0.iter().map(|b| b.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }

    /// Members in increasing order (empty bytes are skipped whole).
    pub fn iter(&self) -> impl Iterator<Item = Pnn> + '_ {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, &b)| b != 0)
            .flat_map(|(i, &b)| {
                (0..8)
                    .filter(move |bit| b & (1 << bit) != 0)
                    .map(move |bit| Pnn((i * 8 + bit) as u32))
            })
    }
}

impl fmt::Debug for NodeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(|p| p.0)).finish()
    }
}
