//! The control-socket protocol, shared by every shell and the CLI.
//!
//! A client sends one request as one line of text, the words of the CLI command
//! (`status`, `setvar KeepaliveInterval 100ms`, ...), and gets one line of JSON back. Text keeps
//! the socket usable by hand (`socat - UNIX:/run/pharos/pharosd.sock`); JSON is what `--json`
//! prints. Parsing never panics; every bad request gets an error response. The core answers
//! with a typed [`Response`]; its JSON form is defined once, in the std host layer
//! (`pharos-host`'s `schema`), which writes it for the daemon and reads it for the CLI.

use crate::config::{Tunables, MAX_NODES};
use crate::types::{Generation, NodeFlags, Pnn};
// Recovery mode is a node state the wire and the control protocol both show; it lives in
// `types`, re-exported here where the status report uses it.
pub use crate::types::RecoveryMode;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;
use core::time::Duration;

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
    /// The public addresses: this node's own (`ip`), or every one the cluster knows
    /// (`ip all`), each with its holder.
    Ip {
        /// Every address the cluster knows, not only this node's.
        all: bool,
    },
    /// One public address in detail.
    IpInfo(IpAddr),
    /// Move a public address to a node (`moveip IP PNN`).
    MoveIp(IpAddr, Pnn),
    /// Re-read the public addresses file on every node.
    ReloadIps,
    /// The last run of one event's scripts (`scriptstatus [EVENT]`, `monitor` when no event is
    /// named, as `ctdb scriptstatus`). The node does not run scripts: a shell answers this
    /// from its event runner and does not hand it to the node.
    ScriptStatus(&'static str),
    /// This node's public interfaces: link state and addresses on each (`ifaces`).
    Ifaces,
}

/// The events of CTDB's legacy event scripts, in CTDB's order (`ctdb_event_to_string`).
pub const EVENT_NAMES: [&str; 12] = [
    "init",
    "setup",
    "startup",
    "startrecovery",
    "recovered",
    "takeip",
    "releaseip",
    "monitor",
    "shutdown",
    "updateip",
    "ipreallocated",
    "startipreallocate",
];

/// An event name as [`EVENT_NAMES`] spells it (case matters, as in CTDB).
pub fn parse_event_name(word: &str) -> Result<&'static str, ControlError> {
    EVENT_NAMES
        .iter()
        .find(|&&e| e == word)
        .copied()
        .ok_or_else(|| {
            ControlError(format!(
                "unknown event {word:?} (expected one of {})",
                EVENT_NAMES.join(", ")
            ))
        })
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

/// A PNN as a request names it: a node number below [`MAX_NODES`].
pub fn parse_pnn(word: &str) -> Result<Pnn, ControlError> {
    word.parse::<u32>()
        .ok()
        .filter(|&n| (n as usize) < MAX_NODES)
        .map(Pnn)
        .ok_or_else(|| {
            ControlError(format!(
                "invalid PNN {word:?} (expected a node number from 0 to {})",
                MAX_NODES - 1
            ))
        })
}

/// `setvar NAME VALUE...` with a value of several words (the CLI passes `"1 s"` as one
/// argument): the tunable's own complaint about that value when it has one.
fn multi_word_value(name: &str, words: &[&str]) -> ControlError {
    let value = words.join(" ");
    let reason = match Tunables::def(name) {
        None => format!("unknown tunable {name:?}"),
        Some(d) => match d.parse(&value) {
            Err(e) => e,
            Ok(_) => format!("{}: a value is one word, got {value:?}", d.name),
        },
    };
    ControlError(format!("setvar: {reason}"))
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
            ("nodestatus", 1) => Request::NodeStatus(Some(
                parse_pnn(args[0]).map_err(|e| ControlError(format!("nodestatus: {e}, or all")))?,
            )),
            ("nodestatus", _) => return Err(usage(cmd, "[PNN|all]")),
            ("pnn", 0) => Request::Pnn,
            ("recmaster", 0) | ("leader", 0) => Request::Recmaster,
            ("listvars", 0) => Request::ListVars,
            ("getvar", 1) => Request::GetVar(args[0].to_string()),
            ("getvar", _) => return Err(usage(cmd, "NAME")),
            ("setvar", 2) => Request::SetVar(args[0].to_string(), args[1].to_string()),
            ("setvar", n) if n > 2 => return Err(multi_word_value(args[0], &args[1..])),
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
            ("ip", 0) => Request::Ip { all: false },
            ("ip", 1) if args[0] == "all" => Request::Ip { all: true },
            ("ip", _) => return Err(usage(cmd, "[all]")),
            ("ipinfo", 1) => Request::IpInfo(parse_ip(args[0])?),
            ("ipinfo", _) => return Err(usage(cmd, "IP")),
            ("moveip", 2) => Request::MoveIp(
                parse_ip(args[0])?,
                parse_pnn(args[1]).map_err(|e| ControlError(format!("moveip: {e}")))?,
            ),
            ("moveip", _) => return Err(usage(cmd, "IP PNN")),
            ("reloadips", 0) => Request::ReloadIps,
            ("ifaces", 0) => Request::Ifaces,
            ("scriptstatus", 0) => Request::ScriptStatus("monitor"),
            ("scriptstatus", 1) => Request::ScriptStatus(
                parse_event_name(args[0])
                    .map_err(|e| ControlError(format!("scriptstatus: {e}")))?,
            ),
            ("scriptstatus", _) => return Err(usage(cmd, "[EVENT]")),
            (
                "status" | "pnn" | "recmaster" | "leader" | "listvars" | "ping" | "disable"
                | "enable" | "stop" | "continue" | "unban" | "reloadips" | "ifaces",
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
            Request::Ip { all: false } => "ip".to_string(),
            Request::Ip { all: true } => "ip all".to_string(),
            Request::IpInfo(a) => format!("ipinfo {a}"),
            Request::MoveIp(a, p) => format!("moveip {a} {p}"),
            Request::ReloadIps => "reloadips".to_string(),
            Request::ScriptStatus(event) => format!("scriptstatus {event}"),
            Request::Ifaces => "ifaces".to_string(),
        };
        s.push('\n');
        s
    }
}

fn parse_ip(word: &str) -> Result<IpAddr, ControlError> {
    word.parse()
        .map_err(|_| ControlError(format!("invalid IP address {word:?}")))
}

/// One public address as `ip` and `ipinfo` show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpStatus {
    /// The address.
    pub address: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
    /// Its holder in the last allocation ([`Pnn::NONE`]: nobody).
    pub pnn: Pnn,
    /// The interfaces this node may put it on (empty if it is not one of this node's).
    pub interfaces: Vec<String>,
    /// The interface it is on here, if this node hosts it.
    pub active: Option<String>,
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
    /// For `ip`: the answering node and its addresses.
    Ips(Pnn, Vec<IpStatus>),
    /// For `ipinfo`: the answering node and the address.
    IpInfo(Pnn, IpStatus),
    /// For `scriptstatus`, from the shell's event runner.
    ScriptStatus(ScriptStatusReport),
    /// For `ifaces`: the answering node and its public interfaces.
    Ifaces(Pnn, Vec<IfaceStatus>),
    /// The request failed.
    Error(String),
}

/// One public interface in an `ifaces` answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfaceStatus {
    /// Its name.
    pub name: String,
    /// Up with carrier, as the shell last told the node.
    pub link_up: bool,
    /// Public addresses on it now.
    pub references: u32,
}

/// What `scriptstatus` reports: the scripts of the last completed run of one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptStatusReport {
    /// The event, one of [`EVENT_NAMES`].
    pub event: &'static str,
    /// Every script of that run, in the order they ran (disabled ones included).
    pub scripts: Vec<ScriptLine>,
}

/// One script's result in a [`ScriptStatusReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptLine {
    /// Its name (`10.interface`; a `.script` suffix is not part of it).
    pub name: String,
    /// How it ended.
    pub state: ScriptState,
    /// When it started, in milliseconds since the Unix epoch (the shell's wall clock; 0 for
    /// a script that did not start).
    pub start_ms: u64,
    /// How long it ran.
    pub duration: Duration,
    /// What it wrote to stdout and stderr (interleaved, as written), up to the shell's limit.
    pub output: String,
    /// Bytes of output beyond that limit, read and not kept.
    pub output_dropped: u64,
}

/// How one script ended (CTDB's `ctdb event status` words in [`ScriptState::as_str`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptState {
    /// Exit status 0.
    Ok,
    /// A non-zero exit status.
    Error(i32),
    /// Ended by this signal, not sent by the runner.
    Signalled(i32),
    /// Still running when the event's time ran out; killed with its process group.
    TimedOut,
    /// Not executable: skipped.
    Disabled,
    /// Could not be started, and why.
    CannotRun(String),
    /// Not started because an earlier script of the run failed.
    NotRun,
}

impl ScriptState {
    /// `OK`, `ERROR`, `TIMEDOUT`, `DISABLED`, `CANNOT RUN` or `NOT RUN`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ScriptState::Ok => "OK",
            ScriptState::Error(_) | ScriptState::Signalled(_) => "ERROR",
            ScriptState::TimedOut => "TIMEDOUT",
            ScriptState::Disabled => "DISABLED",
            ScriptState::CannotRun(_) => "CANNOT RUN",
            ScriptState::NotRun => "NOT RUN",
        }
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
            "scriptstatus Monitor",
            "scriptstatus monitor takeip",
        ] {
            assert!(Request::parse(bad).is_err(), "{bad:?}");
        }
        // The word the operator typed, and the range; never the "-1" of Pnn::NONE.
        let e = Request::parse("nodestatus 4294967295").unwrap_err().0;
        assert_eq!(
            e,
            "nodestatus: invalid PNN \"4294967295\" (expected a node number from 0 to 255), or all"
        );
        assert!(Request::parse("nodestatus 256").is_err());
        assert_eq!(
            Request::parse("scriptstatus"),
            Ok(Request::ScriptStatus("monitor"))
        );
        assert_eq!(
            Request::parse("scriptstatus takeip"),
            Ok(Request::ScriptStatus("takeip"))
        );
        let e = Request::parse("scriptstatus bogus").unwrap_err().0;
        assert!(
            e.starts_with("scriptstatus: unknown event \"bogus\" (expected one of init, "),
            "{e}"
        );
        assert_eq!(
            Request::parse("nodestatus 255"),
            Ok(Request::NodeStatus(Some(Pnn(255))))
        );
        // A value of several words gets the tunable's own complaint, not only the usage.
        let e = Request::parse("setvar KeepaliveInterval 1 s")
            .unwrap_err()
            .0;
        assert_eq!(
            e,
            "setvar: invalid duration \"1 s\" (expected e.g. 250ms, 2s or 2)"
        );
        let e = Request::parse("setvar KeepaliveLimit 1 2").unwrap_err().0;
        assert!(e.contains("KeepaliveLimit: invalid number \"1 2\""), "{e}");
        let e = Request::parse("setvar Bogus 1 2").unwrap_err().0;
        assert!(e.contains("unknown tunable \"Bogus\""), "{e}");
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
            Request::ScriptStatus("monitor"),
            Request::ScriptStatus("startipreallocate"),
            Request::Ifaces,
        ] {
            assert_eq!(Request::parse(&r.to_line()), Ok(r));
        }
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
