//! The text that people read, modelled on `ctdb`'s output, from the answers of [`crate::schema`].

use crate::schema::{IpInfoAnswer, Ips, NodeLine, Status, Var, Vars};

fn node_line(n: &NodeLine) -> String {
    let flags = if n.flags.is_empty() {
        "OK".to_string()
    } else {
        n.flags.join("|")
    };
    let this = if n.this_node { " (THIS NODE)" } else { "" };
    format!(
        "pnn:{} {:<16} {flags}{this}\n",
        n.pnn,
        n.address.to_string()
    )
}

fn live(nodes: &[NodeLine]) -> impl Iterator<Item = &NodeLine> {
    nodes
        .iter()
        .filter(|n| !n.flags.iter().any(|f| f == "DELETED"))
}

/// `ctdb status`-style text.
pub fn status(s: &Status) -> String {
    let mut out = format!("Number of nodes:{}\n", live(&s.nodes).count());
    for n in live(&s.nodes) {
        out.push_str(&node_line(n));
    }
    out.push_str(&format!("Generation:{}\n", s.generation));
    let mode = if s.recovery_mode == "NORMAL" { 0 } else { 1 };
    out.push_str(&format!("Recovery mode:{} ({mode})\n", s.recovery_mode));
    let rm = if s.recmaster < 0 {
        "UNKNOWN".to_string()
    } else {
        s.recmaster.to_string()
    };
    out.push_str(&format!("Recovery master:{rm}\n"));
    out.push_str(&format!(
        "Quorate:{}\n",
        if s.quorate { "yes" } else { "no" }
    ));
    out
}

/// `ctdb nodestatus`-style text, and whether every listed node is OK (the exit status).
pub fn nodestatus(s: &Status) -> (String, bool) {
    let mut out = String::new();
    let listed: Vec<&NodeLine> = live(&s.nodes).collect();
    if listed.len() > 1 {
        out.push_str(&format!("Number of nodes:{}\n", listed.len()));
    }
    for n in &listed {
        out.push_str(&node_line(n));
    }
    (out, listed.iter().all(|n| n.flags.is_empty()))
}

/// `ctdb listvars`-style text.
pub fn listvars(v: &Vars) -> String {
    v.vars
        .iter()
        .map(|v| format!("{:<26} = {}\n", v.name, v.value))
        .collect()
}

/// `NAME = VALUE`.
/// `ctdb ip`: "Public IPs on node N" then `ADDRESS PNN` per line; `-v` adds the interfaces as
/// `ctdb ip -v` shows them (`node[P] active[I] available[I,...] configured[I,...]`).
pub fn ip(ips: &Ips, verbose: bool) -> String {
    let mut out = format!("Public IPs on node {}\n", ips.pnn);
    for i in &ips.ips {
        if verbose {
            let active = i.active.clone().unwrap_or_default();
            let ifaces = i.interfaces.join(",");
            out += &format!(
                "{} node[{}] active[{active}] available[{ifaces}] configured[{ifaces}]\n",
                i.address, i.pnn
            );
        } else {
            out += &format!("{} {}\n", i.address, i.pnn);
        }
    }
    out
}

/// `ctdb ipinfo IP`.
pub fn ipinfo(a: &IpInfoAnswer) -> String {
    let i = &a.ip;
    let mut out = format!(
        "Public IP[{}] info on node {}\nIP:{}\nCurrentNode:{}\nNumInterfaces:{}\n",
        i.address,
        a.pnn,
        i.address,
        i.pnn,
        i.interfaces.len()
    );
    for (k, name) in i.interfaces.iter().enumerate() {
        let active = if i.active.as_deref() == Some(name.as_str()) {
            " (active)"
        } else {
            ""
        };
        out += &format!("Interface[{}]: Name:{name}{active}\n", k + 1);
    }
    out
}

/// `ctdb getvar NAME`.
pub fn getvar(v: &Var) -> String {
    format!("{} = {}\n", v.name, v.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::decode;

    const STATUS: &str = r#"{"pnn":0,"generation":7,"recmaster":-1,"recovery_mode":"NORMAL","quorate":true,"holds_lock":false,"nodes":[{"pnn":0,"address":"10.213.0.1","flags":[],"this_node":true},{"pnn":1,"address":"0.0.0.0","flags":["DELETED"],"this_node":false},{"pnn":2,"address":"10.213.0.3","flags":["DISCONNECTED","BANNED"],"this_node":false}]}"#;

    #[test]
    fn status_text_like_ctdb() {
        let s: Status = decode(STATUS).unwrap();
        assert_eq!(
            status(&s),
            "Number of nodes:2\n\
             pnn:0 10.213.0.1       OK (THIS NODE)\n\
             pnn:2 10.213.0.3       DISCONNECTED|BANNED\n\
             Generation:7\n\
             Recovery mode:NORMAL (0)\n\
             Recovery master:UNKNOWN\n\
             Quorate:yes\n"
        );
        let (text, ok) = nodestatus(&s);
        assert!(!ok);
        assert!(text.starts_with("Number of nodes:2\n"));
    }

    #[test]
    fn vars_text_like_ctdb() {
        let j = r#"{"vars":[{"name":"KeepaliveInterval","value":"1"},{"name":"KeepaliveLimit","value":"3"}]}"#;
        assert_eq!(
            listvars(&decode(j).unwrap()),
            "KeepaliveInterval          = 1\nKeepaliveLimit             = 3\n"
        );
        assert_eq!(
            getvar(&decode(r#"{"name":"KeepaliveLimit","value":"3"}"#).unwrap()),
            "KeepaliveLimit = 3\n"
        );
    }
}
