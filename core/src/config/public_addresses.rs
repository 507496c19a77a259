//! The CTDB public_addresses file: the addresses a node may host, with their interfaces.
//!
//! One address per line: `ADDRESS/MASKBITS IFACE[,IFACE...]`, e.g.
//! `192.168.1.10/24 eth1,eth2` or `fd00::10/64 eth1`. Leading and trailing blanks are ignored,
//! as are blank lines and lines starting with `#`; a `#` word after the interfaces starts a
//! comment. As in CTDB the mask is required and an address may appear only once.
//!
//! Stricter than CTDB where CTDB silently ignores mistakes: CTDB drops words after the
//! interface list and empty interface names (`eth0,,eth1`); here those are errors, so a typo
//! does not go unnoticed.

use super::ConfigError;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::IpAddr;

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
pub const MAX_IFACE_LEN: usize = 15;

/// One public address line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicAddress {
    /// The address.
    pub addr: IpAddr,
    /// Its prefix length (the `/MASKBITS`): 0..=32 for IPv4, 0..=128 for IPv6.
    pub prefix_len: u8,
    /// The interfaces it may be placed on, in file order (at least one).
    pub interfaces: Vec<String>,
    /// The 1-based line it was on.
    pub line: usize,
}

/// A parsed public_addresses file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublicAddresses {
    /// The addresses, in file order.
    pub addresses: Vec<PublicAddress>,
}

impl PublicAddresses {
    /// Parses the text of a public_addresses file. An empty file (or one with only comments)
    /// is valid: the node hosts no public address.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut addresses: Vec<PublicAddress> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let entry = parse_line(line, line_no)?;
            if let Some(first) = addresses.iter().find(|a| a.addr == entry.addr) {
                return Err(ConfigError::at(
                    line_no,
                    format!(
                        "duplicate public address {} (already on line {})",
                        entry.addr, first.line
                    ),
                ));
            }
            addresses.push(entry);
        }
        Ok(PublicAddresses { addresses })
    }

    /// The entry for `addr`, if listed.
    pub fn get(&self, addr: IpAddr) -> Option<&PublicAddress> {
        self.addresses.iter().find(|a| a.addr == addr)
    }

    /// The listed addresses, in file order.
    pub fn addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.addresses.iter().map(|a| a.addr)
    }

    /// Number of addresses.
    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    /// Whether no address is listed.
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }
}

fn parse_line(line: &str, line_no: usize) -> Result<PublicAddress, ConfigError> {
    let err = |reason: String| ConfigError::at(line_no, reason);
    let mut words = line.split_ascii_whitespace();
    // The caller skipped blank lines, so there is a first word.
    let spec = words.next().unwrap_or_default();
    let (addr_text, mask_text) = spec.split_once('/').ok_or_else(|| {
        err(format!(
            "expected ADDRESS/MASKBITS, got {spec:?} (the mask is required, e.g. 10.0.0.1/24)"
        ))
    })?;
    let addr: IpAddr = addr_text
        .parse()
        .map_err(|_| err(format!("invalid IP address {addr_text:?}")))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix_len = match mask_text.parse::<u8>() {
        Ok(m) if m <= max && mask_text.bytes().all(|b| b.is_ascii_digit()) => m,
        _ => {
            return Err(err(format!(
                "invalid mask {mask_text:?} for {addr} (expected 0 to {max})"
            )))
        }
    };
    let iface_list = match words.next() {
        Some(w) if !w.starts_with('#') => w,
        _ => return Err(err(format!("no interface given for {addr}"))),
    };
    if let Some(extra) = words.next() {
        if !extra.starts_with('#') {
            return Err(err(format!(
                "unexpected {extra:?} after the interfaces (interfaces are separated by commas, \
                 without spaces)"
            )));
        }
    }
    let mut interfaces: Vec<String> = Vec::new();
    for iface in iface_list.split(',') {
        check_iface(iface).map_err(|why| err(format!("interface {iface:?}: {why}")))?;
        if interfaces.iter().any(|i| i == iface) {
            return Err(err(format!("interface {iface:?} is listed twice")));
        }
        interfaces.push(iface.to_string());
    }
    Ok(PublicAddress {
        addr,
        prefix_len,
        interfaces,
        line: line_no,
    })
}

/// Linux's rules for an interface name.
fn check_iface(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty name (stray comma?)");
    }
    if name.len() > MAX_IFACE_LEN {
        return Err("name longer than 15 bytes");
    }
    if name == "." || name == ".." || name.contains('/') || name.contains(':') {
        return Err("not a valid interface name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn parses_ctdb_examples() {
        let text = "# public addresses\n\n  192.168.1.10/24 eth1,eth2  \n\
                    fd00::10/64\teth1 # IPv6\n10.0.0.1/32 bond0\r\n";
        let p = PublicAddresses::parse(text).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(
            p.addresses[0],
            PublicAddress {
                addr: "192.168.1.10".parse().unwrap(),
                prefix_len: 24,
                interfaces: vec!["eth1".into(), "eth2".into()],
                line: 3,
            }
        );
        assert_eq!(p.addresses[1].prefix_len, 64);
        assert_eq!(p.addresses[1].line, 4);
        assert_eq!(p.addresses[2].interfaces, ["bond0"]);
        assert!(p.get("fd00::10".parse().unwrap()).is_some());
        assert_eq!(p.addrs().count(), 3);
        assert!(PublicAddresses::parse("").unwrap().is_empty());
        assert!(PublicAddresses::parse("# only\n\n").unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("10.0.0.1 eth0\n", 1, "mask is required"),
            ("\n10.0.0.300/24 eth0\n", 2, "invalid IP address"),
            ("10.0.0.1/33 eth0\n", 1, "invalid mask"),
            ("fd00::1/129 eth0\n", 1, "invalid mask"),
            ("10.0.0.1/+8 eth0\n", 1, "invalid mask"),
            ("10.0.0.1/ eth0\n", 1, "invalid mask"),
            ("#c\n10.0.0.1/24\n", 2, "no interface"),
            ("10.0.0.1/24 # eth0\n", 1, "no interface"),
            ("10.0.0.1/24 eth0 eth1\n", 1, "unexpected \"eth1\""),
            ("10.0.0.1/24 eth0,,eth1\n", 1, "empty name"),
            ("10.0.0.1/24 eth0,\n", 1, "empty name"),
            ("10.0.0.1/24 averyveryverylongname\n", 1, "longer than 15"),
            ("10.0.0.1/24 eth0,eth0\n", 1, "listed twice"),
            ("10.0.0.1/24 eth0:1\n", 1, "not a valid interface"),
            (
                "10.0.0.1/24 eth0\n10.0.0.2/24 eth0\n10.0.0.1/16 eth1\n",
                3,
                "already on line 1",
            ),
        ];
        for (text, line, needle) in cases {
            let e = PublicAddresses::parse(text).unwrap_err();
            assert_eq!(e.line, *line, "{text:?}: {e}");
            assert!(e.reason.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn never_panics_on_odd_input() {
        for text in [
            "/",
            "/ /",
            "#",
            " \t ",
            "\u{0}",
            "::/0 x",
            "ÿ/1 é",
            "1.2.3.4/0 a,b,c,d",
        ] {
            let _ = PublicAddresses::parse(text);
        }
        assert_eq!(
            PublicAddresses::parse("::/0 x").unwrap().addresses[0].prefix_len,
            0
        );
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_names_a_real_line(text in "[ -~\t\n/,#:.0-9a-f]{0,200}") {
            match PublicAddresses::parse(&text) {
                Ok(p) => proptest::prop_assert!(p.addresses.iter().all(|a| !a.interfaces.is_empty())),
                Err(e) => proptest::prop_assert!(e.line >= 1 && e.line <= text.lines().count()),
            }
        }
    }
}
