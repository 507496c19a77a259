//! The control socket's JSON answers: one set of serde types, written by the daemon (from the
//! core's typed [`Response`]) and read back by the `pharos` CLI, so the shape is defined once.
//!
//! The shape is a contract (DESIGN.md, "CLI"): `pharos --json` prints these objects as the
//! daemon sent them. PNNs are numbers, `-1` where the core says [`Pnn::NONE`] ("none known");
//! `flags` lists flag names, empty when the node is OK.

use pharos_core::control::{
    IpStatus, Response, ScriptLine, ScriptState, ScriptStatusReport, StatusReport,
};
use pharos_core::Pnn;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The answer to `status` and `nodestatus`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The answering node.
    pub pnn: i64,
    /// Its generation.
    pub generation: u64,
    /// The recovery master it follows, -1 while none is known.
    pub recmaster: i64,
    /// `NORMAL` or `ACTIVE`.
    pub recovery_mode: String,
    /// Whether its partition has quorum.
    pub quorate: bool,
    /// Whether it holds the cluster lock.
    pub holds_lock: bool,
    /// Node slots, deleted ones included (`nodestatus PNN`: just that one).
    pub nodes: Vec<NodeLine>,
}

/// One node slot in a [`Status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLine {
    /// Its PNN.
    pub pnn: u32,
    /// Its address (`0.0.0.0` for a deleted node, as CTDB shows it).
    pub address: IpAddr,
    /// Its flags as the answering node sees them (`DISCONNECTED`, `BANNED`, ...); empty = OK.
    pub flags: Vec<String>,
    /// Whether it is the answering node.
    pub this_node: bool,
}

/// The answer to `pnn`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PnnAnswer {
    /// The answering node.
    pub pnn: i64,
}

/// The answer to `recmaster`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecmasterAnswer {
    /// The recovery master, -1 while none is known.
    pub recmaster: i64,
}

/// The answer to `listvars`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vars {
    /// Every tunable, in CTDB's order.
    pub vars: Vec<Var>,
}

/// The answer to `getvar`, and one entry of [`Vars`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Var {
    /// CTDB's name.
    pub name: String,
    /// The value as CTDB prints it (`1`, `250ms`).
    pub value: String,
}

/// The answer to `setvar` and the admin commands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// Always true.
    pub ok: bool,
    /// Something the operator should know (an obsolete tunable), absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// The answer to `ping`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    /// Always true.
    pub pong: bool,
    /// The answering node.
    pub pnn: i64,
}

/// The answer to `ip` (DESIGN.md: `{"ips":[{"address":"10.0.0.1","pnn":1,"interfaces":["eth1"]}]}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ips {
    /// The answering node.
    pub pnn: i64,
    /// Its public addresses (or every one the cluster knows, for `ip all`).
    pub ips: Vec<IpLine>,
}

/// One address of [`Ips`], and the answer to `ipinfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpLine {
    /// The address.
    pub address: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
    /// The node that hosts it, -1 for nobody.
    pub pnn: i64,
    /// The interfaces the answering node may put it on (empty if it is not one of its own).
    pub interfaces: Vec<String>,
    /// The interface it is on at the answering node, if there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<String>,
}

/// The answer to `ifaces`: the answering node's public interfaces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ifaces {
    /// The answering node.
    pub pnn: i64,
    /// Each interface its public addresses may go on, in first-listed order.
    pub interfaces: Vec<IfaceLine>,
}

/// One interface of [`Ifaces`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfaceLine {
    /// Its name.
    pub name: String,
    /// Administratively up with carrier.
    pub link_up: bool,
    /// Public addresses on it now.
    pub references: u32,
}

/// The answer to `ipinfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpInfoAnswer {
    /// The answering node.
    pub pnn: i64,
    /// The address.
    pub ip: IpLine,
}

impl From<&IpStatus> for IpLine {
    fn from(i: &IpStatus) -> Self {
        IpLine {
            address: i.address,
            prefix: i.prefix,
            pnn: pnn_number(i.pnn),
            interfaces: i.interfaces.clone(),
            active: i.active.clone(),
        }
    }
}

/// The answer to `scriptstatus [EVENT]`: the scripts of that event's last completed run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScriptStatus {
    /// The event (`monitor`, `takeip`, ...).
    pub event: String,
    /// Each script, in the order they ran.
    pub scripts: Vec<ScriptEntry>,
}

/// One script in a [`ScriptStatus`]. Every field is always present (`null` where it does not
/// apply), so that a consumer need not guess.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScriptEntry {
    /// Its name (`10.interface`).
    pub name: String,
    /// `OK`, `ERROR`, `TIMEDOUT`, `DISABLED`, `CANNOT RUN` or `NOT RUN` (an earlier script
    /// failed).
    pub status: String,
    /// Its exit status, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did (and not at its timeout).
    pub signal: Option<i32>,
    /// Why it could not be started (`CANNOT RUN`).
    pub reason: Option<String>,
    /// When it started, in seconds since the Unix epoch (millisecond precision); `null` when
    /// it did not start.
    pub start_time: Option<f64>,
    /// How long it ran, in seconds; `null` when it did not start.
    pub duration: Option<f64>,
    /// Its stdout and stderr, interleaved, as much as was kept.
    pub output: String,
    /// Bytes of output beyond what was kept.
    pub output_dropped: u64,
}

impl From<&ScriptLine> for ScriptEntry {
    fn from(l: &ScriptLine) -> Self {
        let started = !matches!(
            l.state,
            ScriptState::Disabled | ScriptState::NotRun | ScriptState::CannotRun(_)
        ) && l.start_ms != 0;
        ScriptEntry {
            name: l.name.clone(),
            status: l.state.as_str().to_string(),
            exit_code: match l.state {
                ScriptState::Ok => Some(0),
                ScriptState::Error(c) => Some(c),
                _ => None,
            },
            signal: match l.state {
                ScriptState::Signalled(s) => Some(s),
                _ => None,
            },
            reason: match &l.state {
                ScriptState::CannotRun(why) => Some(why.clone()),
                _ => None,
            },
            // Milliseconds since 1970 are exact in an f64 for the next 285,000 years.
            start_time: started.then_some(l.start_ms as f64 / 1000.0),
            duration: started.then_some(l.duration.as_secs_f64()),
            output: l.output.clone(),
            output_dropped: l.output_dropped,
        }
    }
}

impl From<&ScriptStatusReport> for ScriptStatus {
    fn from(r: &ScriptStatusReport) -> Self {
        ScriptStatus {
            event: r.event.to_string(),
            scripts: r.scripts.iter().map(ScriptEntry::from).collect(),
        }
    }
}

/// A refused request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorAnswer {
    /// Why, in one line.
    pub error: String,
}

/// A PNN as the JSON carries it: -1 for [`Pnn::NONE`].
pub fn pnn_number(p: Pnn) -> i64 {
    if p == Pnn::NONE {
        -1
    } else {
        i64::from(p.0)
    }
}

impl From<&StatusReport> for Status {
    fn from(s: &StatusReport) -> Self {
        Status {
            pnn: pnn_number(s.pnn),
            generation: u64::from(s.generation.0),
            recmaster: pnn_number(s.recmaster),
            recovery_mode: s.recovery_mode.as_str().to_string(),
            quorate: s.quorate,
            holds_lock: s.holds_lock,
            nodes: s
                .nodes
                .iter()
                .map(|n| NodeLine {
                    pnn: n.pnn.0,
                    address: n.address,
                    flags: n.flags.names().map(str::to_string).collect(),
                    this_node: n.this_node,
                })
                .collect(),
        }
    }
}

fn to_line<T: Serialize>(value: &T) -> String {
    // These types are plain structs of strings, numbers and lists: serde_json cannot fail on
    // them. Should it ever, the client still gets a well-formed error rather than nothing.
    serde_json::to_string(value)
        .unwrap_or_else(|_| r#"{"error":"pharosd could not encode its answer"}"#.to_string())
}

/// The response as one line of JSON, without the newline: what the daemon writes back.
pub fn encode(response: &Response) -> String {
    match response {
        Response::Status(s) => to_line(&Status::from(s)),
        Response::Pnn(p) => to_line(&PnnAnswer {
            pnn: pnn_number(*p),
        }),
        Response::Recmaster(p) => to_line(&RecmasterAnswer {
            recmaster: pnn_number(*p),
        }),
        Response::Vars(vars) => to_line(&Vars {
            vars: vars
                .iter()
                .map(|(name, value)| Var {
                    name: name.to_string(),
                    value: value.clone(),
                })
                .collect(),
        }),
        Response::Var(name, value) => to_line(&Var {
            name: name.to_string(),
            value: value.clone(),
        }),
        Response::Done(warning) => to_line(&Done {
            ok: true,
            warning: warning.clone(),
        }),
        Response::Pong(p) => to_line(&Pong {
            pong: true,
            pnn: pnn_number(*p),
        }),
        Response::Ips(pnn, ips) => to_line(&Ips {
            pnn: pnn_number(*pnn),
            ips: ips.iter().map(IpLine::from).collect(),
        }),
        Response::IpInfo(pnn, ip) => to_line(&IpInfoAnswer {
            pnn: pnn_number(*pnn),
            ip: IpLine::from(ip),
        }),
        Response::ScriptStatus(r) => to_line(&ScriptStatus::from(r)),
        Response::Ifaces(pnn, list) => to_line(&Ifaces {
            pnn: pnn_number(*pnn),
            interfaces: list
                .iter()
                .map(|i| IfaceLine {
                    name: i.name.clone(),
                    link_up: i.link_up,
                    references: i.references,
                })
                .collect(),
        }),
        Response::Error(e) => to_line(&ErrorAnswer { error: e.clone() }),
    }
}

/// Reads one answer line as `T`. A refusal (`{"error": ...}`) gives the daemon's reason; an
/// answer of another shape gives `unexpected answer from pharosd (...)`.
pub fn decode<T: DeserializeOwned>(json: &str) -> Result<T, String> {
    if let Ok(e) = serde_json::from_str::<ErrorAnswer>(json) {
        return Err(e.error);
    }
    serde_json::from_str(json).map_err(|e| format!("unexpected answer from pharosd ({e}): {json}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pharos_core::control::{NodeStatus, RecoveryMode};
    use pharos_core::{Generation, NodeFlags};

    fn report() -> StatusReport {
        StatusReport {
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
        }
    }

    /// The bytes of the contract, pinned: field names and order, -1, flag names.
    #[test]
    fn status_json_has_the_design_shape() {
        assert_eq!(
            encode(&Response::Status(report())),
            "{\"pnn\":0,\"generation\":5,\"recmaster\":-1,\"recovery_mode\":\"NORMAL\",\"quorate\":true,\"holds_lock\":false,\"nodes\":[\
{\"pnn\":0,\"address\":\"127.0.0.1\",\"flags\":[],\"this_node\":true},\
{\"pnn\":1,\"address\":\"::1\",\"flags\":[\"DISCONNECTED\",\"BANNED\"],\"this_node\":false}]}"
        );
        assert_eq!(
            encode(&Response::Error("a\"b\n".into())),
            "{\"error\":\"a\\\"b\\n\"}"
        );
        assert_eq!(
            encode(&Response::Recmaster(Pnn::NONE)),
            "{\"recmaster\":-1}"
        );
        assert_eq!(encode(&Response::Pong(Pnn(2))), "{\"pong\":true,\"pnn\":2}");
        assert_eq!(encode(&Response::Done(None)), "{\"ok\":true}");
        assert_eq!(
            encode(&Response::Done(Some("old".into()))),
            "{\"ok\":true,\"warning\":\"old\"}"
        );
        assert_eq!(
            encode(&Response::Var("KeepaliveLimit", "3".into())),
            "{\"name\":\"KeepaliveLimit\",\"value\":\"3\"}"
        );
    }

    /// The scriptstatus shape, pinned: every field present, `null` where it does not apply.
    #[test]
    fn scriptstatus_json() {
        use core::time::Duration;
        let line = |name: &str, state, start_ms, ms| ScriptLine {
            name: name.into(),
            state,
            start_ms,
            duration: Duration::from_millis(ms),
            output: String::new(),
            output_dropped: 0,
        };
        let mut failed = line("20.b", ScriptState::Error(3), 1_763_914_690_123, 74);
        failed.output = "bad\n".into();
        failed.output_dropped = 7;
        let report = ScriptStatusReport {
            event: "monitor",
            scripts: vec![
                line("10.a", ScriptState::Ok, 1_763_914_690_004, 4),
                line("15.off", ScriptState::Disabled, 0, 0),
                failed,
                line("30.c", ScriptState::NotRun, 0, 0),
                line("40.d", ScriptState::CannotRun("why".into()), 0, 0),
                line("50.e", ScriptState::Signalled(9), 1_000, 1500),
                line("60.f", ScriptState::TimedOut, 2_000, 30_000),
            ],
        };
        let json = encode(&Response::ScriptStatus(report.clone()));
        let none = r#""exit_code":null,"signal":null,"reason":null,"start_time":null,"duration":null,"output":"","output_dropped":0"#;
        assert_eq!(
            json,
            format!(
                "{{\"event\":\"monitor\",\"scripts\":[\
{{\"name\":\"10.a\",\"status\":\"OK\",\"exit_code\":0,\"signal\":null,\"reason\":null,\"start_time\":1763914690.004,\"duration\":0.004,\"output\":\"\",\"output_dropped\":0}},\
{{\"name\":\"15.off\",\"status\":\"DISABLED\",{none}}},\
{{\"name\":\"20.b\",\"status\":\"ERROR\",\"exit_code\":3,\"signal\":null,\"reason\":null,\"start_time\":1763914690.123,\"duration\":0.074,\"output\":\"bad\\n\",\"output_dropped\":7}},\
{{\"name\":\"30.c\",\"status\":\"NOT RUN\",{none}}},\
{{\"name\":\"40.d\",\"status\":\"CANNOT RUN\",\"exit_code\":null,\"signal\":null,\"reason\":\"why\",\"start_time\":null,\"duration\":null,\"output\":\"\",\"output_dropped\":0}},\
{{\"name\":\"50.e\",\"status\":\"ERROR\",\"exit_code\":null,\"signal\":9,\"reason\":null,\"start_time\":1.0,\"duration\":1.5,\"output\":\"\",\"output_dropped\":0}},\
{{\"name\":\"60.f\",\"status\":\"TIMEDOUT\",\"exit_code\":null,\"signal\":null,\"reason\":null,\"start_time\":2.0,\"duration\":30.0,\"output\":\"\",\"output_dropped\":0}}]}}"
            )
        );
        let back: ScriptStatus = decode(&json).unwrap();
        assert_eq!(back, ScriptStatus::from(&report));
    }

    /// What the daemon writes, the CLI reads back as the same values.
    #[test]
    fn every_answer_reads_back() {
        let status: Status = decode(&encode(&Response::Status(report()))).unwrap();
        assert_eq!(status, Status::from(&report()));
        assert_eq!(status.nodes[1].flags, ["DISCONNECTED", "BANNED"]);
        let p: PnnAnswer = decode(&encode(&Response::Pnn(Pnn(3)))).unwrap();
        assert_eq!(p.pnn, 3);
        let r: RecmasterAnswer = decode(&encode(&Response::Recmaster(Pnn::NONE))).unwrap();
        assert_eq!(r.recmaster, -1);
        let v: Vars = decode(&encode(&Response::Vars(vec![
            ("KeepaliveInterval", "1".into()),
            ("KeepaliveLimit", "3".into()),
        ])))
        .unwrap();
        assert_eq!(v.vars[1].name, "KeepaliveLimit");
        let d: Done = decode(&encode(&Response::Done(Some("w".into())))).unwrap();
        assert_eq!(d.warning.as_deref(), Some("w"));
        let d: Done = decode(&encode(&Response::Done(None))).unwrap();
        assert_eq!(d.warning, None);
        let p: Pong = decode(&encode(&Response::Pong(Pnn(1)))).unwrap();
        assert_eq!(p.pnn, 1);
        // A refusal is the daemon's reason, whatever was expected.
        let ip = IpStatus {
            address: "10.0.0.1".parse().unwrap(),
            prefix: 24,
            pnn: Pnn::NONE,
            interfaces: vec!["eth1".into()],
            active: None,
        };
        assert_eq!(
            encode(&Response::Ips(Pnn(0), vec![ip.clone()])),
            r#"{"pnn":0,"ips":[{"address":"10.0.0.1","prefix":24,"pnn":-1,"interfaces":["eth1"]}]}"#
        );
        let back: Ips = decode(&encode(&Response::Ips(Pnn(0), vec![ip.clone()]))).unwrap();
        assert_eq!(back.ips, vec![IpLine::from(&ip)]);
        let info: IpInfoAnswer = decode(&encode(&Response::IpInfo(Pnn(2), ip.clone()))).unwrap();
        assert_eq!((info.pnn, info.ip.pnn), (2, -1));
        let e = decode::<Status>(&encode(&Response::Error("no such node".into())));
        assert_eq!(e, Err("no such node".to_string()));
        // Another shape is an unexpected answer, not a panic.
        let e = decode::<Status>("{}").unwrap_err();
        assert!(e.starts_with("unexpected answer from pharosd"), "{e}");
        assert!(decode::<Pong>("not json").is_err());
    }
}
