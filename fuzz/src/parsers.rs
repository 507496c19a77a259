//! The text parsers: configuration files and control requests.

use pharos_core::config::public_addresses::MAX_IFACE_LEN;
use pharos_core::config::{parse_duration, NodesFile, PublicAddresses, Tunables, TUNABLES};
use pharos_core::control::Request;
use pharos_core::Pnn;
use std::collections::HashSet;

/// Number of lines as the parsers count them (for checking error line numbers).
fn line_count(text: &str) -> usize {
    text.lines().count()
}

/// `config_parsers`: the same text as a nodes file, a public_addresses file, a tunables file,
/// and each line as a duration and a `NAME VALUE` assignment.
///
/// Nothing panics; errors name a line of the text; a parsed nodes file numbers its slots in
/// order, has a live node and no duplicate, and survives a round trip through
/// [`NodesFile::from_addresses`]; a parsed public_addresses file has valid masks and interface
/// names, no duplicate, and prints back as a file that parses to the same entries; a tunables
/// file can only produce values that [`Tunables::set`] accepts again from their printed form.
pub fn config_parsers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lines = line_count(&text);

    match PublicAddresses::parse(&text) {
        Ok(p) => check_public_addresses(&p, lines),
        Err(e) => assert!(e.line >= 1 && e.line <= lines, "error line {}", e.line),
    }

    match NodesFile::parse(&text) {
        Ok(nodes) => check_nodes(&text, &nodes),
        Err(e) => assert!(e.line <= lines, "error line {} of {lines}", e.line),
    }

    let mut tunables = Tunables::default();
    match tunables.apply_file(&text) {
        Ok(()) => {}
        Err(e) => assert!(e.line >= 1 && e.line <= lines, "error line {}", e.line),
    }
    // Whatever got applied (all of it, or the lines before an error) is valid and prints in a
    // form that parses back to the same value.
    let mut again = Tunables::default();
    for (def, value) in tunables.iter() {
        let shown = value.to_string();
        again
            .set(def.name, &shown)
            .unwrap_or_else(|e| panic!("{} = {shown} does not parse back: {e}", def.name));
        assert_eq!(again.get(def.name), Some(value), "{}", def.name);
    }
    assert_eq!(again, tunables);
    assert_eq!(TUNABLES.len(), tunables.iter().count());

    for line in text.lines().take(64) {
        if let Ok(d) = parse_duration(line) {
            assert_eq!(d.subsec_nanos() % 1_000_000, 0, "whole milliseconds");
        }
        if let Some((name, value)) = line.trim().split_once(char::is_whitespace) {
            let mut t = Tunables::default();
            if t.set(name, value).is_err() {
                assert_eq!(t, Tunables::default(), "a refused set changed something");
            }
        }
    }
}

fn check_public_addresses(p: &PublicAddresses, lines: usize) {
    let mut last_line = 0;
    for a in &p.addresses {
        assert!(a.line > last_line && a.line <= lines, "line {}", a.line);
        last_line = a.line;
        assert!(a.prefix_len <= if a.addr.is_ipv4() { 32 } else { 128 });
        assert!(!a.interfaces.is_empty());
        for i in &a.interfaces {
            assert!(!i.is_empty() && i.len() <= MAX_IFACE_LEN, "{i:?}");
            assert!(!i.contains([',', '/', ':']), "{i:?}");
        }
        assert_eq!(p.get(a.addr), Some(a), "duplicate {}", a.addr);
    }
    // Printed back, one line per address. The trailing comment word keeps an interface name
    // from ending the line, where the line's trim would eat Unicode blanks in it.
    let printed: String = p
        .addresses
        .iter()
        .map(|a| format!("{}/{} {} #\n", a.addr, a.prefix_len, a.interfaces.join(",")))
        .collect();
    let again = PublicAddresses::parse(&printed)
        .unwrap_or_else(|e| panic!("printed file does not parse: {e}\n{printed}"));
    assert_eq!(again.len(), p.len());
    for (x, y) in again.addresses.iter().zip(&p.addresses) {
        assert_eq!(
            (x.addr, x.prefix_len, &x.interfaces),
            (y.addr, y.prefix_len, &y.interfaces)
        );
    }
}

fn check_nodes(text: &str, nodes: &NodesFile) {
    let non_blank = text.lines().filter(|l| !l.trim().is_empty()).count();
    assert_eq!(nodes.len(), non_blank);
    assert!(!nodes.is_empty());
    let mut seen = HashSet::new();
    let mut live = 0;
    for (i, e) in nodes.entries().iter().enumerate() {
        assert_eq!(e.pnn, Pnn(i as u32));
        assert_eq!(nodes.address_of(e.pnn), e.address);
        if let Some(a) = e.address {
            live += 1;
            assert!(seen.insert(a), "duplicate {a}");
            assert_eq!(nodes.pnn_of(a), Some(e.pnn));
        }
    }
    assert!(live > 0);
    let addrs: Vec<_> = nodes.entries().iter().map(|e| e.address).collect();
    assert_eq!(NodesFile::from_addresses(&addrs).as_ref(), Ok(nodes));
}

/// `control_request`: any text as a control request line.
///
/// Parsing never panics, and whatever parses is printed by [`Request::to_line`] as a line that
/// parses back to the same request.
pub fn control_request(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(request) = Request::parse(&text) else {
        return;
    };
    let line = request.to_line();
    assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
    assert_eq!(
        Request::parse(&line).as_ref(),
        Ok(&request),
        "{text:?} -> {line:?}"
    );
}
