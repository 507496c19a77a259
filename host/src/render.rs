//! The `pharos` tool's client side: one request over the control socket, and the text that
//! people read (modelled on `ctdb`'s output; `--json` prints the daemon's answer as it is).

use serde::Deserialize;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Sends one request line and returns the daemon's one-line JSON answer.
pub fn request(socket: &Path, line: &str) -> Result<String, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot connect to pharosd at {}: {e} (is pharosd running?)",
            socket.display()
        )
    })?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
    s.write_all(line.as_bytes())
        .map_err(|e| format!("cannot send to pharosd: {e}"))?;
    let mut answer = String::new();
    BufReader::new(s)
        .read_line(&mut answer)
        .map_err(|e| format!("no answer from pharosd: {e}"))?;
    if answer.is_empty() {
        return Err("pharosd closed the connection without answering".into());
    }
    Ok(answer.trim_end().to_string())
}

/// `{"error": ...}` answers.
#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
}

/// The daemon's error message, if the answer is an error.
pub fn error_of(json: &str) -> Option<String> {
    serde_json::from_str::<ErrorAnswer>(json)
        .ok()
        .map(|e| e.error)
}

/// A node line of `status`.
#[derive(Debug, Deserialize)]
pub struct NodeLine {
    /// PNN.
    pub pnn: u32,
    /// Address.
    pub address: String,
    /// Flag names; empty = OK.
    pub flags: Vec<String>,
    /// Whether it is the answering node.
    pub this_node: bool,
}

/// The `status` answer.
#[derive(Debug, Deserialize)]
pub struct Status {
    /// Answering node.
    pub pnn: i64,
    /// Generation.
    pub generation: u64,
    /// Recovery master or -1.
    pub recmaster: i64,
    /// NORMAL or ACTIVE.
    pub recovery_mode: String,
    /// Quorum.
    pub quorate: bool,
    /// Node slots.
    pub nodes: Vec<NodeLine>,
}

fn parse<T: for<'de> Deserialize<'de>>(json: &str) -> Result<T, String> {
    serde_json::from_str(json).map_err(|e| format!("unexpected answer from pharosd ({e}): {json}"))
}

fn node_line(n: &NodeLine) -> String {
    let flags = if n.flags.is_empty() {
        "OK".to_string()
    } else {
        n.flags.join("|")
    };
    let this = if n.this_node { " (THIS NODE)" } else { "" };
    format!("pnn:{} {:<16} {flags}{this}\n", n.pnn, n.address)
}

fn live(nodes: &[NodeLine]) -> impl Iterator<Item = &NodeLine> {
    nodes
        .iter()
        .filter(|n| !n.flags.iter().any(|f| f == "DELETED"))
}

/// `ctdb status`-style text.
pub fn render_status(json: &str) -> Result<String, String> {
    let s: Status = parse(json)?;
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
    Ok(out)
}

/// `ctdb nodestatus`-style text, and whether every listed node is OK (the exit status).
pub fn render_nodestatus(json: &str) -> Result<(String, bool), String> {
    let s: Status = parse(json)?;
    let mut out = String::new();
    let listed: Vec<&NodeLine> = live(&s.nodes).collect();
    if listed.len() > 1 {
        out.push_str(&format!("Number of nodes:{}\n", listed.len()));
    }
    for n in &listed {
        out.push_str(&node_line(n));
    }
    Ok((out, listed.iter().all(|n| n.flags.is_empty())))
}

#[derive(Deserialize)]
struct Var {
    name: String,
    value: String,
}

#[derive(Deserialize)]
struct Vars {
    vars: Vec<Var>,
}

/// `ctdb listvars`-style text.
pub fn render_listvars(json: &str) -> Result<String, String> {
    let v: Vars = parse(json)?;
    Ok(v.vars
        .iter()
        .map(|v| format!("{:<26} = {}\n", v.name, v.value))
        .collect())
}

/// `NAME = VALUE`.
pub fn render_getvar(json: &str) -> Result<String, String> {
    let v: Var = parse(json)?;
    Ok(format!("{} = {}\n", v.name, v.value))
}

/// A single number field (`pnn`, `recmaster`).
pub fn render_number(json: &str, field: &str) -> Result<String, String> {
    let v: serde_json::Value = parse(json)?;
    v.get(field)
        .and_then(|x| x.as_i64())
        .map(|n| format!("{n}\n"))
        .ok_or_else(|| format!("unexpected answer from pharosd: {json}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = r#"{"pnn":0,"generation":7,"recmaster":-1,"recovery_mode":"NORMAL","quorate":true,"nodes":[{"pnn":0,"address":"10.213.0.1","flags":[],"this_node":true},{"pnn":1,"address":"0.0.0.0","flags":["DELETED"],"this_node":false},{"pnn":2,"address":"10.213.0.3","flags":["DISCONNECTED","BANNED"],"this_node":false}]}"#;

    #[test]
    fn status_text_like_ctdb() {
        assert_eq!(
            render_status(STATUS).unwrap(),
            "Number of nodes:2\n\
             pnn:0 10.213.0.1       OK (THIS NODE)\n\
             pnn:2 10.213.0.3       DISCONNECTED|BANNED\n\
             Generation:7\n\
             Recovery mode:NORMAL (0)\n\
             Recovery master:UNKNOWN\n\
             Quorate:yes\n"
        );
        let (text, ok) = render_nodestatus(STATUS).unwrap();
        assert!(!ok);
        assert!(text.starts_with("Number of nodes:2\n"));
        assert!(render_status("{}")
            .unwrap_err()
            .contains("unexpected answer"));
    }

    #[test]
    fn vars_text_like_ctdb() {
        let j = r#"{"vars":[{"name":"KeepaliveInterval","value":"1"},{"name":"KeepaliveLimit","value":"3"}]}"#;
        assert_eq!(
            render_listvars(j).unwrap(),
            "KeepaliveInterval          = 1\nKeepaliveLimit             = 3\n"
        );
        assert_eq!(render_number(r#"{"pnn":2}"#, "pnn").unwrap(), "2\n");
        assert_eq!(error_of(r#"{"error":"nope"}"#).as_deref(), Some("nope"));
        assert_eq!(error_of(STATUS), None);
    }
}
