//! The control-socket protocol, shared by every shell and the CLI.
//!
//! A client sends one request as one line of text, the words of the CLI command
//! (`status`, `setvar KeepaliveInterval 100ms`, ...), and gets one line of JSON back. Text keeps
//! the socket usable by hand (`socat - UNIX:/run/pharos/pharosd.sock`); JSON is what `--json`
//! prints. Parsing never panics; every bad request gets an error response.

use crate::config::Tunables;
use crate::types::{Generation, NodeFlags, Pnn};
// Recovery mode is a node state the wire and the control protocol both show; it lives in
// `types`, re-exported here where the status report uses it.
pub use crate::types::RecoveryMode;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::net::IpAddr;

/// Longest request line accepted, not counting its newline.
pub const MAX_REQUEST_LEN: usize = 4096;

/// A control request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// The node map, generation, recovery master and quorum.
    Status,
    /// The status of one node, or of all (`None`).
    NodeStatus(Option<Pnn>),
    /// This node's PNN.
    Pnn,
    /// The recovery master.
    Recmaster,
    /// Every tunable and its value.
    ListVars,
    /// One tunable.
    GetVar(String),
    /// Sets a tunable (validated, effective at once).
    SetVar(String, String),
    /// Liveness of the daemon.
    Ping,
    /// Administrative flag changes on this node.
    Admin(AdminCommand),
}

/// `ctdb disable`, `enable`, `stop`, `continue`, `ban`, `unban`, applied to the node asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminCommand {
    /// Stay in the cluster, host no public IP.
    Disable,
    /// Undo `Disable`.
    Enable,
    /// Become inactive (no IPs, never recovery master).
    Stop,
    /// Undo `Stop`.
    Continue,
    /// Banned for this many seconds.
    Ban(u32),
    /// Undo `Ban`.
    Unban,
}

/// Why a request line was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlError(pub String);

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::error::Error for ControlError {}

fn usage(cmd: &str, args: &str) -> ControlError {
    ControlError(format!("usage: {cmd} {args}"))
}

fn parse_pnn(word: &str) -> Result<Pnn, ControlError> {
    word.parse::<u32>()
        .ok()
        .filter(|&n| n != u32::MAX)
        .map(Pnn)
        .ok_or_else(|| ControlError(format!("invalid PNN {word:?}")))
}

impl Request {
    /// Parses one request line (without or with its trailing newline).
    pub fn parse(line: &str) -> Result<Request, ControlError> {
        // The newline does not count, so that `to_line` of any accepted request parses back.
        if line.strip_suffix('\n').unwrap_or(line).len() > MAX_REQUEST_LEN {
            return Err(ControlError(format!(
                "request longer than {MAX_REQUEST_LEN} bytes"
            )));
        }
        let mut words = line.split_ascii_whitespace();
        let cmd = words
            .next()
            .ok_or_else(|| ControlError("empty request".into()))?;
        let args: Vec<&str> = words.collect();
        let n = args.len();
        let req = match (cmd, n) {
            ("status", 0) => Request::Status,
            ("nodestatus", 0) => Request::NodeStatus(None),
            ("nodestatus", 1) if args[0] == "all" => Request::NodeStatus(None),
            ("nodestatus", 1) => Request::NodeStatus(Some(parse_pnn(args[0])?)),
            ("nodestatus", _) => return Err(usage(cmd, "[PNN|all]")),
            ("pnn", 0) => Request::Pnn,
            ("recmaster", 0) | ("leader", 0) => Request::Recmaster,
            ("listvars", 0) => Request::ListVars,
            ("getvar", 1) => Request::GetVar(args[0].to_string()),
            ("getvar", _) => return Err(usage(cmd, "NAME")),
            ("setvar", 2) => Request::SetVar(args[0].to_string(), args[1].to_string()),
            ("setvar", _) => return Err(usage(cmd, "NAME VALUE")),
            ("ping", 0) => Request::Ping,
            ("disable", 0) => Request::Admin(AdminCommand::Disable),
            ("enable", 0) => Request::Admin(AdminCommand::Enable),
            ("stop", 0) => Request::Admin(AdminCommand::Stop),
            ("continue", 0) => Request::Admin(AdminCommand::Continue),
            ("unban", 0) => Request::Admin(AdminCommand::Unban),
            ("ban", 1) => match args[0].parse::<u32>() {
                Ok(secs) if secs > 0 => Request::Admin(AdminCommand::Ban(secs)),
                _ => {
                    return Err(ControlError(format!(
                        "invalid ban time {:?} (seconds, > 0)",
                        args[0]
                    )))
                }
            },
            ("ban", _) => return Err(usage(cmd, "SECONDS")),
            (
                "status" | "pnn" | "recmaster" | "leader" | "listvars" | "ping" | "disable"
                | "enable" | "stop" | "continue" | "unban",
                _,
            ) => return Err(ControlError(format!("{cmd} takes no arguments"))),
            _ => return Err(ControlError(format!("unknown command {cmd:?}"))),
        };
        Ok(req)
    }

    /// The request line (with its newline), as [`Request::parse`] reads it.
    pub fn to_line(&self) -> String {
        let mut s = match self {
            Request::Status => "status".to_string(),
            Request::NodeStatus(None) => "nodestatus all".to_string(),
            Request::NodeStatus(Some(p)) => format!("nodestatus {p}"),
            Request::Pnn => "pnn".to_string(),
            Request::Recmaster => "recmaster".to_string(),
            Request::ListVars => "listvars".to_string(),
            Request::GetVar(n) => format!("getvar {n}"),
            Request::SetVar(n, v) => format!("setvar {n} {v}"),
            Request::Ping => "ping".to_string(),
            Request::Admin(AdminCommand::Disable) => "disable".to_string(),
            Request::Admin(AdminCommand::Enable) => "enable".to_string(),
            Request::Admin(AdminCommand::Stop) => "stop".to_string(),
            Request::Admin(AdminCommand::Continue) => "continue".to_string(),
            Request::Admin(AdminCommand::Ban(s)) => format!("ban {s}"),
            Request::Admin(AdminCommand::Unban) => "unban".to_string(),
        };
        s.push('\n');
        s
    }
}

/// One node's line in a status report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// Its PNN.
    pub pnn: Pnn,
    /// Its address (`0.0.0.0` for a deleted node, as CTDB shows it).
    pub address: IpAddr,
    /// Its flags as this node sees them.
    pub flags: NodeFlags,
    /// Whether it is the node answering.
    pub this_node: bool,
}

/// What `status` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusReport {
    /// The answering node.
    pub pnn: Pnn,
    /// Current generation.
    pub generation: Generation,
    /// The recovery master, [`Pnn::NONE`] while none is known.
    pub recmaster: Pnn,
    /// Recovery mode.
    pub recovery_mode: RecoveryMode,
    /// Whether this node's partition has quorum.
    pub quorate: bool,
    /// Whether this node holds the cluster lock.
    pub holds_lock: bool,
    /// Every node slot, deleted ones included.
    pub nodes: Vec<NodeStatus>,
}

/// A control response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// For `status` and `nodestatus`.
    Status(StatusReport),
    /// For `pnn`.
    Pnn(Pnn),
    /// For `recmaster`.
    Recmaster(Pnn),
    /// For `listvars`: name and value of each tunable.
    Vars(Vec<(&'static str, String)>),
    /// For `getvar`.
    Var(&'static str, String),
    /// For `setvar`: done (with a warning when the tunable is obsolete).
    Done(Option<String>),
    /// For `ping`.
    Pong(Pnn),
    /// The request failed.
    Error(String),
}

/// Writes `s` as a JSON string literal.
pub fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn pnn_json(p: Pnn) -> i64 {
    if p == Pnn::NONE {
        -1
    } else {
        p.0 as i64
    }
}

impl Response {
    /// The response as one line of JSON (no newline). The `status` object is the one DESIGN.md
    /// fixes for `pharos --json status`.
    pub fn to_json(&self) -> String {
        let mut o = String::new();
        match self {
            Response::Status(s) => {
                let _ = write!(
                    o,
                    "{{\"pnn\":{},\"generation\":{},\"recmaster\":{},\"recovery_mode\":\"{}\",\"quorate\":{},\"holds_lock\":{},\"nodes\":[",
                    pnn_json(s.pnn),
                    s.generation.0,
                    pnn_json(s.recmaster),
                                        s.recovery_mode.as_str(),
                    s.quorate,
                    s.holds_lock
                );
                for (i, n) in s.nodes.iter().enumerate() {
                    if i > 0 {
                        o.push(',');
                    }
                    let _ = write!(
                        o,
                        "{{\"pnn\":{},\"address\":\"{}\",\"flags\":[",
                        n.pnn.0, n.address
                    );
                    for (j, name) in n.flags.names().enumerate() {
                        if j > 0 {
                            o.push(',');
                        }
                        write_json_str(&mut o, name);
                    }
                    let _ = write!(o, "],\"this_node\":{}}}", n.this_node);
                }
                o.push_str("]}");
            }
            Response::Pnn(p) => {
                let _ = write!(o, "{{\"pnn\":{}}}", pnn_json(*p));
            }
            Response::Recmaster(p) => {
                let _ = write!(o, "{{\"recmaster\":{}}}", pnn_json(*p));
            }
            Response::Vars(vars) => {
                o.push_str("{\"vars\":[");
                for (i, (name, value)) in vars.iter().enumerate() {
                    if i > 0 {
                        o.push(',');
                    }
                    o.push_str("{\"name\":");
                    write_json_str(&mut o, name);
                    o.push_str(",\"value\":");
                    write_json_str(&mut o, value);
                    o.push('}');
                }
                o.push_str("]}");
            }
            Response::Var(name, value) => {
                o.push_str("{\"name\":");
                write_json_str(&mut o, name);
                o.push_str(",\"value\":");
                write_json_str(&mut o, value);
                o.push('}');
            }
            Response::Done(warning) => {
                o.push_str("{\"ok\":true");
                if let Some(w) = warning {
                    o.push_str(",\"warning\":");
                    write_json_str(&mut o, w);
                }
                o.push('}');
            }
            Response::Pong(p) => {
                let _ = write!(o, "{{\"pong\":true,\"pnn\":{}}}", pnn_json(*p));
            }
            Response::Error(e) => {
                o.push_str("{\"error\":");
                write_json_str(&mut o, e);
                o.push('}');
            }
        }
        o
    }
}

/// Answers the tunable requests against `tunables` (shared by every shell through `Node`).
pub(crate) fn tunables_request(tunables: &mut Tunables, req: &Request) -> Option<Response> {
    Some(match req {
        Request::ListVars => Response::Vars(
            tunables
                .iter()
                .map(|(d, v)| (d.name, v.to_string()))
                .collect(),
        ),
        Request::GetVar(name) => match Tunables::def(name) {
            Some(d) => Response::Var(
                d.name,
                tunables
                    .get(d.name)
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            ),
            None => Response::Error(format!("unknown tunable {name:?}")),
        },
        Request::SetVar(name, value) => match tunables.set(name, value) {
            Ok(d) if d.obsolete => {
                Response::Done(Some(format!("{} is obsolete and has no effect", d.name)))
            }
            Ok(_) => Response::Done(None),
            Err(e) => Response::Error(e),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn parse_requests() {
        assert_eq!(Request::parse("status\n"), Ok(Request::Status));
        assert_eq!(
            Request::parse("  nodestatus 2 "),
            Ok(Request::NodeStatus(Some(Pnn(2))))
        );
        assert_eq!(
            Request::parse("nodestatus all"),
            Ok(Request::NodeStatus(None))
        );
        assert_eq!(
            Request::parse("setvar KeepaliveInterval 100ms"),
            Ok(Request::SetVar("KeepaliveInterval".into(), "100ms".into()))
        );
        for bad in [
            "",
            "   ",
            "frobnicate",
            "status x",
            "getvar",
            "setvar a",
            "nodestatus -1",
            "nodestatus 1 2",
        ] {
            assert!(Request::parse(bad).is_err(), "{bad:?}");
        }
        let long = "x".repeat(MAX_REQUEST_LEN + 1);
        assert!(Request::parse(&long).is_err());
        // The longest request parses back from its `to_line` (a control_request fuzz property).
        let longest = alloc::format!("getvar {}", "x".repeat(MAX_REQUEST_LEN - 7));
        let r = Request::parse(&longest).unwrap();
        assert_eq!(Request::parse(&r.to_line()), Ok(r));
        for r in [
            Request::Status,
            Request::NodeStatus(None),
            Request::NodeStatus(Some(Pnn(3))),
            Request::Pnn,
            Request::Recmaster,
            Request::ListVars,
            Request::GetVar("KeepaliveLimit".into()),
            Request::SetVar("KeepaliveLimit".into(), "4".into()),
            Request::Ping,
            Request::Admin(AdminCommand::Ban(5)),
            Request::Admin(AdminCommand::Continue),
        ] {
            assert_eq!(Request::parse(&r.to_line()), Ok(r));
        }
    }

    #[test]
    fn status_json_has_the_design_shape() {
        let s = StatusReport {
            pnn: Pnn(0),
            generation: Generation(5),
            recmaster: Pnn::NONE,
            recovery_mode: RecoveryMode::Normal,
            quorate: true,
            holds_lock: false,
            nodes: vec![
                NodeStatus {
                    pnn: Pnn(0),
                    address: "127.0.0.1".parse().unwrap(),
                    flags: NodeFlags::empty(),
                    this_node: true,
                },
                NodeStatus {
                    pnn: Pnn(1),
                    address: "::1".parse().unwrap(),
                    flags: NodeFlags::DISCONNECTED.union(NodeFlags::BANNED),
                    this_node: false,
                },
            ],
        };
        assert_eq!(
            Response::Status(s).to_json(),
            "{\"pnn\":0,\"generation\":5,\"recmaster\":-1,\"recovery_mode\":\"NORMAL\",\"quorate\":true,\"holds_lock\":false,\"nodes\":[\
{\"pnn\":0,\"address\":\"127.0.0.1\",\"flags\":[],\"this_node\":true},\
{\"pnn\":1,\"address\":\"::1\",\"flags\":[\"DISCONNECTED\",\"BANNED\"],\"this_node\":false}]}"
        );
        assert_eq!(
            Response::Error("a\"b\n".into()).to_json(),
            "{\"error\":\"a\\\"b\\n\"}"
        );
    }

    #[test]
    fn tunable_requests() {
        let mut t = Tunables::default();
        let r = tunables_request(
            &mut t,
            &Request::SetVar("keepaliveinterval".into(), "250ms".into()),
        );
        assert_eq!(r, Some(Response::Done(None)));
        let r = tunables_request(&mut t, &Request::GetVar("KeepaliveInterval".into()));
        assert_eq!(r, Some(Response::Var("KeepaliveInterval", "250ms".into())));
        let r = tunables_request(
            &mut t,
            &Request::SetVar("KeepaliveLimit".into(), "zero".into()),
        );
        assert!(matches!(r, Some(Response::Error(_))));
        assert_eq!(t.keepalive_limit, 3);
        assert!(
            matches!(tunables_request(&mut t, &Request::ListVars), Some(Response::Vars(v)) if v.len() > 10)
        );
        assert_eq!(tunables_request(&mut t, &Request::Status), None);
    }
}
