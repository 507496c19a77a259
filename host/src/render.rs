//! The text that people read, modelled on `ctdb`'s output, from the answers of [`crate::schema`].

use crate::schema::{
    Ifaces, IpInfoAnswer, Ips, NodeLine, ScriptEntry, ScriptStatus, Status, Var, Vars,
};

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

/// `ctime(3)` of a broken-down time, without its newline: `Mon Nov  3 16:18:10 2026`.
fn ctime_of(tm: &libc::tm) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let day = usize::try_from(tm.tm_wday).ok().and_then(|i| DAYS.get(i));
    let month = usize::try_from(tm.tm_mon).ok().and_then(|i| MONTHS.get(i));
    format!(
        "{} {}{:>3} {:02}:{:02}:{:02} {}",
        day.unwrap_or(&"???"),
        month.unwrap_or(&"???"),
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        i64::from(tm.tm_year) + 1900
    )
}

/// Seconds since the Unix epoch as `ctime(3)` prints them, in local time (as ctdb does).
fn local_ctime(unix_seconds: f64) -> String {
    let t = unix_seconds.floor() as libc::time_t;
    // SAFETY: tm is a plain C struct; all-zero is a valid value for localtime_r to fill.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r reads the time_t and writes only into our tm.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return format!("@{t}");
    }
    ctime_of(&tm)
}

/// A script's output under its line, as `ctdb event status` shows it: trailing newlines
/// stripped, one line inline, several indented below.
fn script_output(out: &mut String, e: &ScriptEntry) {
    let failed = e.status != "OK" && e.status != "DISABLED";
    if !failed && e.output.is_empty() {
        return;
    }
    let text = e.output.trim_end_matches('\n');
    if text.contains('\n') {
        out.push_str("  OUTPUT:\n");
        for l in text.split('\n') {
            out.push_str(&format!("    {l}\n"));
        }
    } else {
        out.push_str(&format!("  OUTPUT: {text}\n"));
    }
    if e.output_dropped > 0 {
        out.push_str(&format!(
            "  ({} more bytes of output not kept)\n",
            e.output_dropped
        ));
    }
}

fn scriptstatus_with(s: &ScriptStatus, ctime: &dyn Fn(f64) -> String) -> String {
    let mut out = String::new();
    for e in &s.scripts {
        let when = e.start_time.map(ctime).unwrap_or_default();
        let took = e.duration.unwrap_or(0.0);
        let name = &e.name;
        match e.status.as_str() {
            // Not run because an earlier script failed: ctdb shows nothing for it.
            "NOT RUN" => continue,
            "OK" | "ERROR" => {
                out.push_str(&format!("{name:<20} {:<10} {took:.3} {when}\n", e.status))
            }
            "TIMEDOUT" => out.push_str(&format!("{name:<20} {:<10} {when}\n", e.status)),
            "CANNOT RUN" => out.push_str(&format!(
                "{name:<20} {:<10} ({})\n",
                e.status,
                e.reason.as_deref().unwrap_or("unknown reason")
            )),
            other => out.push_str(&format!("{name:<20} {other:<10}\n")),
        }
        if let Some(sig) = e.signal {
            out.push_str(&format!("  (ended by signal {sig})\n"));
        }
        script_output(&mut out, e);
    }
    out
}

/// `ctdb ifaces` text: `Interfaces on node 0`, then `name:eth0 link:up references:2` per
/// interface (`No interfaces configured` without public addresses, as ctdb says).
pub fn ifaces(a: &Ifaces) -> String {
    if a.interfaces.is_empty() {
        return "No interfaces configured\n".to_string();
    }
    let mut out = format!("Interfaces on node {}\n", a.pnn);
    for i in &a.interfaces {
        let link = if i.link_up { "up" } else { "down" };
        out.push_str(&format!(
            "name:{} link:{link} references:{}\n",
            i.name, i.references
        ));
    }
    out
}

/// `ctdb scriptstatus`-style text (`ctdb event status legacy EVENT`): one line per script
/// with its status, duration and start time (local time), the output under a script that
/// failed or printed something, nothing for the scripts after a failure.
pub fn scriptstatus(s: &ScriptStatus) -> String {
    scriptstatus_with(s, &local_ctime)
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
    fn ifaces_text_like_ctdb() {
        use crate::schema::encode;
        use pharos_core::control::{IfaceStatus, Response};
        use pharos_core::Pnn;
        let list = vec![
            IfaceStatus {
                name: "eth1".into(),
                link_up: true,
                references: 2,
            },
            IfaceStatus {
                name: "eth2".into(),
                link_up: false,
                references: 0,
            },
        ];
        let json = encode(&Response::Ifaces(Pnn(1), list));
        assert_eq!(
            json.trim_end(),
            r#"{"pnn":1,"interfaces":[{"name":"eth1","link_up":true,"references":2},{"name":"eth2","link_up":false,"references":0}]}"#
        );
        let a: Ifaces = decode(&json).unwrap();
        assert_eq!(
            ifaces(&a),
            "Interfaces on node 1\nname:eth1 link:up references:2\nname:eth2 link:down references:0\n"
        );
        let none: Ifaces = decode(&encode(&Response::Ifaces(Pnn(0), Vec::new()))).unwrap();
        assert_eq!(ifaces(&none), "No interfaces configured\n");
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

    #[test]
    fn ctime_like_libc() {
        // SAFETY: tm is a plain C struct; all-zero is a valid value.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        tm.tm_wday = 1;
        tm.tm_mon = 10;
        tm.tm_mday = 3;
        tm.tm_hour = 16;
        tm.tm_min = 8;
        tm.tm_sec = 5;
        tm.tm_year = 126;
        assert_eq!(ctime_of(&tm), "Mon Nov  3 16:08:05 2026");
        tm.tm_mday = 23;
        assert_eq!(ctime_of(&tm), "Mon Nov 23 16:08:05 2026");
        // Local time, whatever the zone: the shape of ctime.
        let t = local_ctime(1_763_914_690.5);
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with(" 2025") || t.ends_with(" 2026"), "{t}");
    }

    /// The layout of CTDB's `ctdb event status`, from the daemon's JSON.
    #[test]
    fn scriptstatus_text_like_ctdb() {
        let j = r#"{"event":"monitor","scripts":[
            {"name":"00.ctdb","status":"OK","exit_code":0,"signal":null,"reason":null,"start_time":1763914690.004,"duration":0.0042,"output":"","output_dropped":0},
            {"name":"01.disabled","status":"DISABLED","exit_code":null,"signal":null,"reason":null,"start_time":null,"duration":null,"output":"","output_dropped":0},
            {"name":"05.chatty","status":"OK","exit_code":0,"signal":null,"reason":null,"start_time":1763914690.1,"duration":0.024,"output":"note\n","output_dropped":0},
            {"name":"10.interface","status":"ERROR","exit_code":1,"signal":null,"reason":null,"start_time":1763914691.0,"duration":0.074,"output":"ERROR: eth1 down\n\nsecond line\n\n","output_dropped":10},
            {"name":"20.after","status":"NOT RUN","exit_code":null,"signal":null,"reason":null,"start_time":null,"duration":null,"output":"","output_dropped":0}]}"#;
        let s: ScriptStatus = decode(j).unwrap();
        let text = scriptstatus_with(&s, &|t| format!("T{t}"));
        assert_eq!(
            text,
            "00.ctdb              OK         0.004 T1763914690.004\n\
             01.disabled          DISABLED  \n\
             05.chatty            OK         0.024 T1763914690.1\n  OUTPUT: note\n\
             10.interface         ERROR      0.074 T1763914691\n  OUTPUT:\n    ERROR: eth1 down\n    \n    second line\n\
             \x20 (10 more bytes of output not kept)\n"
        );
        let j = r#"{"event":"takeip","scripts":[
            {"name":"10.hang","status":"TIMEDOUT","exit_code":null,"signal":null,"reason":null,"start_time":5.0,"duration":30.0,"output":"","output_dropped":0},
            {"name":"20.gone","status":"CANNOT RUN","exit_code":null,"signal":null,"reason":"Exec format error (os error 8)","start_time":null,"duration":null,"output":"","output_dropped":0},
            {"name":"30.killed","status":"ERROR","exit_code":null,"signal":9,"reason":null,"start_time":6.0,"duration":1.5,"output":"","output_dropped":0}]}"#;
        let text = scriptstatus_with(&decode(j).unwrap(), &|t| format!("T{t}"));
        assert_eq!(
            text,
            "10.hang              TIMEDOUT   T5\n  OUTPUT: \n\
             20.gone              CANNOT RUN (Exec format error (os error 8))\n  OUTPUT: \n\
             30.killed            ERROR      1.500 T6\n  (ended by signal 9)\n  OUTPUT: \n"
        );
    }
}
