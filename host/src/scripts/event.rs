//! The events a script is run for, with CTDB's arguments.

use pharos_core::control::EVENT_NAMES;
use std::net::IpAddr;

/// One event, with its arguments, as CTDB passes them to a legacy script: `argv[1]` is the
/// event's name, the arguments follow (`ctdb/server/eventscript.c`, `check_options`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Once at start, before the control socket is up; a failure stops the daemon (CTDB).
    Init,
    /// Once after `init`; a failure stops the daemon (CTDB).
    Setup,
    /// After the first recovery; starts the services; CTDB retries it until it succeeds.
    Startup,
    /// A database recovery starts (rarely used by scripts).
    StartRecovery,
    /// A database recovery ended (rarely used by scripts).
    Recovered,
    /// `takeip IFACE IP MASKBITS`: the address has been configured on the interface.
    TakeIp {
        /// The interface.
        iface: String,
        /// The public address.
        ip: IpAddr,
        /// Its prefix length.
        maskbits: u8,
    },
    /// `releaseip IFACE IP MASKBITS`: the address is about to be removed.
    ReleaseIp {
        /// The interface.
        iface: String,
        /// The public address.
        ip: IpAddr,
        /// Its prefix length.
        maskbits: u8,
    },
    /// The periodic health check (every MonitorInterval).
    Monitor,
    /// The daemon is stopping; stops the services.
    Shutdown,
    /// `updateip OLDIFACE NEWIFACE IP MASKBITS`: the address moved between interfaces.
    UpdateIp {
        /// The interface it was on.
        old_iface: String,
        /// The interface it is on now.
        new_iface: String,
        /// The public address.
        ip: IpAddr,
        /// Its prefix length.
        maskbits: u8,
    },
    /// On every node, after every takeover run.
    IpReallocated,
    /// On every node, before a takeover run releases anything (CTDB 4.21 and later).
    StartIpReallocate,
}

impl Event {
    /// The event's name, as `argv[1]` and `scriptstatus` spell it (one of
    /// [`EVENT_NAMES`]).
    pub fn name(&self) -> &'static str {
        let i = match self {
            Event::Init => 0,
            Event::Setup => 1,
            Event::Startup => 2,
            Event::StartRecovery => 3,
            Event::Recovered => 4,
            Event::TakeIp { .. } => 5,
            Event::ReleaseIp { .. } => 6,
            Event::Monitor => 7,
            Event::Shutdown => 8,
            Event::UpdateIp { .. } => 9,
            Event::IpReallocated => 10,
            Event::StartIpReallocate => 11,
        };
        EVENT_NAMES[i]
    }

    /// The arguments after the event's name (`eth1 10.0.0.1 24`), addresses as CTDB writes
    /// them (`ctdb_sock_addr_to_string`: the usual text form, IPv6 compressed).
    pub fn args(&self) -> Vec<String> {
        match self {
            Event::TakeIp {
                iface,
                ip,
                maskbits,
            }
            | Event::ReleaseIp {
                iface,
                ip,
                maskbits,
            } => vec![iface.clone(), ip.to_string(), maskbits.to_string()],
            Event::UpdateIp {
                old_iface,
                new_iface,
                ip,
                maskbits,
            } => vec![
                old_iface.clone(),
                new_iface.clone(),
                ip.to_string(),
                maskbits.to_string(),
            ],
            _ => Vec::new(),
        }
    }

    /// Whether this is `monitor`, which other events cancel (see the module docs).
    pub fn is_monitor(&self) -> bool {
        matches!(self, Event::Monitor)
    }
}

impl std::fmt::Display for Event {
    /// The name and arguments, as the script's command line shows them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())?;
        for a in self.args() {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_arguments_are_ctdbs() {
        let take = Event::TakeIp {
            iface: "eth1".into(),
            ip: "10.0.0.1".parse().unwrap(),
            maskbits: 24,
        };
        assert_eq!(take.name(), "takeip");
        assert_eq!(take.args(), ["eth1", "10.0.0.1", "24"]);
        let update = Event::UpdateIp {
            old_iface: "eth1".into(),
            new_iface: "eth2".into(),
            ip: "fd00:0:0::1".parse().unwrap(),
            maskbits: 64,
        };
        assert_eq!(update.to_string(), "updateip eth1 eth2 fd00::1 64");
        assert_eq!(Event::Monitor.to_string(), "monitor");
        assert!(Event::Monitor.is_monitor() && !take.is_monitor());
        let all = [
            Event::Init,
            Event::Setup,
            Event::Startup,
            Event::StartRecovery,
            Event::Recovered,
            take,
            Event::ReleaseIp {
                iface: "e".into(),
                ip: "::1".parse().unwrap(),
                maskbits: 128,
            },
            Event::Monitor,
            Event::Shutdown,
            update,
            Event::IpReallocated,
            Event::StartIpReallocate,
        ];
        let names: Vec<&str> = all.iter().map(Event::name).collect();
        assert_eq!(names, EVENT_NAMES);
    }
}
