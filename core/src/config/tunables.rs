//! Tunables: CTDB's names, pharos's defaults, durations with units.
//!
//! A duration accepts `250ms`, `2s`, or a bare integer meaning seconds (as in CTDB). Names are
//! matched without regard to case, as CTDB does. A tunables file holds `NAME=VALUE` lines
//! (CTDB's `ctdb.tunables`), with `#` comments and blank lines.

use super::ConfigError;
use alloc::format;
use alloc::string::String;
use core::fmt;
use core::time::Duration;

/// The type of a tunable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunableKind {
    /// A duration (`250ms`, `2s`, bare integer = seconds).
    Duration,
    /// A non-negative integer.
    Count,
    /// 0 or 1.
    Bool,
}

/// A tunable's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunableValue {
    /// For [`TunableKind::Duration`].
    Duration(Duration),
    /// For [`TunableKind::Count`].
    Count(u32),
    /// For [`TunableKind::Bool`].
    Bool(bool),
}

/// Printed as CTDB prints it: whole seconds as a bare integer, otherwise `NNNms`; booleans as 0/1.
impl fmt::Display for TunableValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TunableValue::Duration(d) if d.subsec_nanos() == 0 => write!(f, "{}", d.as_secs()),
            TunableValue::Duration(d) => write!(f, "{}ms", d.as_millis()),
            TunableValue::Count(n) => write!(f, "{n}"),
            TunableValue::Bool(b) => write!(f, "{}", b as u8),
        }
    }
}

/// Parses `250ms`, `2s` or a bare integer (seconds). Rejects anything else.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (digits, unit_ms) = if let Some(d) = t.strip_suffix("ms") {
        (d, true)
    } else if let Some(d) = t.strip_suffix('s') {
        (d, false)
    } else {
        (t, false)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid duration {text:?} (expected e.g. 250ms, 2s or 2)"
        ));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("duration {text:?} is too large"))?;
    let d = if unit_ms {
        Duration::from_millis(n)
    } else {
        n.checked_mul(1000)
            .map(Duration::from_millis)
            .ok_or_else(|| format!("duration {text:?} is too large"))?
    };
    Ok(d)
}

/// Describes one tunable: name, type, bounds, and how to read and write it.
#[derive(Debug)]
pub struct TunableDef {
    /// CTDB's name, e.g. `KeepaliveInterval`.
    pub name: &'static str,
    /// Its type.
    pub kind: TunableKind,
    /// One-line description.
    pub doc: &'static str,
    /// Smallest accepted value (milliseconds for durations).
    pub min: u64,
    /// Largest accepted value (milliseconds for durations).
    pub max: u64,
    /// Accepted for compatibility only; setting it has no effect and should be warned about.
    pub obsolete: bool,
    get: fn(&Tunables) -> TunableValue,
    set: fn(&mut Tunables, TunableValue),
}

macro_rules! tunables {
    ($( $(#[doc = $doc:literal])* $field:ident : $kind:ident = $name:literal, default $default:expr, range $min:expr, $max:expr $(, $obsolete:ident)?; )*) => {
        /// Every tunable, with pharos's defaults. Fields are named after CTDB's tunables.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct Tunables {
            $( $(#[doc = $doc])* pub $field: tunables!(@ty $kind), )*
        }

        impl Default for Tunables {
            fn default() -> Self {
                Tunables { $( $field: $default, )* }
            }
        }

        /// The table of tunables, in `listvars` order.
        pub const TUNABLES: &[TunableDef] = &[
            $( TunableDef {
                name: $name,
                kind: TunableKind::$kind,
                doc: concat!($($doc),*),
                min: $min,
                max: $max,
                obsolete: tunables!(@obsolete $($obsolete)?),
                get: |t| tunables!(@wrap $kind, t.$field),
                set: |t, v| if let Some(x) = tunables!(@unwrap $kind, v) { t.$field = x },
            }, )*
        ];
    };
    (@ty Duration) => { Duration };
    (@ty Count) => { u32 };
    (@ty Bool) => { bool };
    (@wrap Duration, $e:expr) => { TunableValue::Duration($e) };
    (@wrap Count, $e:expr) => { TunableValue::Count($e) };
    (@wrap Bool, $e:expr) => { TunableValue::Bool($e) };
    (@unwrap Duration, $v:expr) => { match $v { TunableValue::Duration(d) => Some(d), _ => None } };
    (@unwrap Count, $v:expr) => { match $v { TunableValue::Count(d) => Some(d), _ => None } };
    (@unwrap Bool, $v:expr) => { match $v { TunableValue::Bool(d) => Some(d), _ => None } };
    (@obsolete obsolete) => { true };
    (@obsolete) => { false };
}

const MS: u64 = 1;
const S: u64 = 1000 * MS;
const HOUR: u64 = 3600 * S;

tunables! {
    /// Interval between keepalives to each connected peer.
    keepalive_interval: Duration = "KeepaliveInterval", default Duration::from_secs(1), range 10 * MS, HOUR;
    /// Consecutive silent keepalive intervals after which a peer is dead.
    keepalive_limit: Count = "KeepaliveLimit", default 3, range 1, 1000;
    /// How long an outgoing connection attempt may take (at most KeepaliveInterval ×
    /// KeepaliveLimit, so that a SYN lost on a cut link is not waited on longer than a silent
    /// peer).
    connect_timeout: Duration = "ConnectTimeout", default Duration::from_secs(1), range 10 * MS, HOUR;
    /// Longest delay before reconnecting after a failed connect or a lost connection: the
    /// wait starts at 20 ms and doubles up to this (and to KeepaliveInterval × KeepaliveLimit).
    reconnect_interval: Duration = "ReconnectInterval", default Duration::from_secs(1), range 10 * MS, HOUR;
    /// Bound on one recovery-master election round.
    election_timeout: Duration = "ElectionTimeout", default Duration::from_secs(1), range 10 * MS, HOUR;
    /// Interval of the recovery master's monitor loop.
    recover_interval: Duration = "RecoverInterval", default Duration::from_secs(1), range 10 * MS, HOUR;
    /// Bound on one recovery.
    recover_timeout: Duration = "RecoverTimeout", default Duration::from_secs(30), range 10 * MS, HOUR;
    /// Pause after a recovery before another may start.
    rerecovery_timeout: Duration = "RerecoveryTimeout", default Duration::from_secs(10), range 0, HOUR;
    /// How long a node stays banned after repeated recovery failures.
    recovery_ban_period: Duration = "RecoveryBanPeriod", default Duration::from_secs(300), range 0, 24 * HOUR;
    /// Window in which repeated lock failures count towards a ban.
    recovery_grace_period: Duration = "RecoveryGracePeriod", default Duration::from_secs(120), range 0, 24 * HOUR;
    /// Whether repeated failures may ban a node.
    enable_bans: Bool = "EnableBans", default true, range 0, 1;
    /// Bound on releasing or taking public addresses in a takeover run.
    takeover_timeout: Duration = "TakeoverTimeout", default Duration::from_secs(9), range 10 * MS, HOUR;
    /// Interval of the health-monitoring event.
    monitor_interval: Duration = "MonitorInterval", default Duration::from_secs(15), range 10 * MS, HOUR;
    /// Bound on one event-script run.
    event_script_timeout: Duration = "EventScriptTimeout", default Duration::from_secs(30), range 10 * MS, HOUR;
    /// Monitor events in a row that may time out before the node is marked UNHEALTHY (a
    /// failing monitor marks it at once).
    monitor_timeout_count: Count = "MonitorTimeoutCount", default 20, range 1, 1000;
    /// Do not move addresses back to a node that becomes healthy again.
    no_ip_failback: Bool = "NoIPFailback", default false, range 0, 1;
    /// Do not move addresses between healthy nodes to balance them.
    no_ip_takeover: Bool = "NoIPTakeover", default false, range 0, 1;
    /// Public-IP allocation: 0 deterministic, 1 nondeterministic, 2 LCP2.
    ip_alloc_algorithm: Count = "IPAllocAlgorithm", default 2, range 0, 2;
    /// votequorum's two_node: a 2-node cluster is quorate with one node while it holds the
    /// cluster lock.
    two_node: Bool = "TwoNode", default false, range 0, 1;
    /// votequorum's wait_for_all: after start, not quorate until every node was seen once.
    wait_for_all: Bool = "WaitForAll", default false, range 0, 1;
    /// Obsolete in current CTDB; accepted and ignored.
    no_ip_host_on_all_disabled: Bool = "NoIPHostOnAllDisabled", default false, range 0, 1, obsolete;
}

impl TunableDef {
    /// Parses `text` as a value of this tunable's type and checks its bounds.
    pub fn parse(&self, text: &str) -> Result<TunableValue, String> {
        let t = text.trim();
        let (value, magnitude) = match self.kind {
            TunableKind::Duration => {
                let d = parse_duration(t)?;
                (TunableValue::Duration(d), d.as_millis() as u64)
            }
            TunableKind::Count => {
                let n: u32 = t
                    .parse()
                    .map_err(|_| format!("{}: invalid number {text:?}", self.name))?;
                (TunableValue::Count(n), n as u64)
            }
            TunableKind::Bool => match t {
                "0" => (TunableValue::Bool(false), 0),
                "1" => (TunableValue::Bool(true), 1),
                _ => return Err(format!("{}: expected 0 or 1, got {text:?}", self.name)),
            },
        };
        if magnitude < self.min || magnitude > self.max {
            // Both ends in one explicit unit, so `10ms..=3600000ms` never reads as `10ms..=3600`.
            let show = |v: u64| match self.kind {
                TunableKind::Duration if self.min % S == 0 && self.max % S == 0 => {
                    format!("{}s", v / S)
                }
                TunableKind::Duration => format!("{v}ms"),
                _ => format!("{v}"),
            };
            return Err(format!(
                "{}: {text:?} is out of range ({}..={})",
                self.name,
                show(self.min),
                show(self.max)
            ));
        }
        Ok(value)
    }
}

impl Tunables {
    /// The definition of tunable `name` (case-insensitive).
    pub fn def(name: &str) -> Option<&'static TunableDef> {
        TUNABLES.iter().find(|d| d.name.eq_ignore_ascii_case(name))
    }

    /// The current value of `name`.
    pub fn get(&self, name: &str) -> Option<TunableValue> {
        Self::def(name).map(|d| (d.get)(self))
    }

    /// Every tunable with its current value, in `listvars` order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static TunableDef, TunableValue)> + '_ {
        TUNABLES.iter().map(move |d| (d, (d.get)(self)))
    }

    /// Sets `name` from its text form, validated; returns the definition (callers warn when it
    /// is obsolete).
    pub fn set(&mut self, name: &str, value: &str) -> Result<&'static TunableDef, String> {
        let def = Self::def(name).ok_or_else(|| format!("unknown tunable {name:?}"))?;
        let v = def.parse(value)?;
        (def.set)(self, v);
        Ok(def)
    }

    /// Applies a tunables file (`NAME=VALUE` lines, `#` comments, blank lines).
    pub fn apply_file(&mut self, text: &str) -> Result<(), ConfigError> {
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, value) = line.split_once('=').ok_or_else(|| {
                ConfigError::at(i + 1, format!("expected NAME=VALUE, got {line:?}"))
            })?;
            self.set(name.trim(), value.trim())
                .map_err(|e| ConfigError::at(i + 1, e))?;
        }
        Ok(())
    }

    /// Time without any frame after which a peer is dead.
    pub fn dead_after(&self) -> Duration {
        self.keepalive_interval * self.keepalive_limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        for bad in ["", "ms", "-1", "1.5s", "1m", "2 s", "99999999999999999999"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn set_get_validate() {
        let mut t = Tunables::default();
        assert_eq!(t.keepalive_interval, Duration::from_secs(1));
        assert_eq!(t.keepalive_limit, 3);
        t.set("keepaliveinterval", "100ms").unwrap();
        assert_eq!(t.keepalive_interval, Duration::from_millis(100));
        assert_eq!(t.get("KeepaliveInterval").unwrap().to_string(), "100ms");
        t.set("KeepaliveLimit", "5").unwrap();
        assert_eq!(t.dead_after(), Duration::from_millis(500));
        assert!(t
            .set("KeepaliveLimit", "0")
            .unwrap_err()
            .contains("out of range"));
        assert_eq!(
            t.set("KeepaliveInterval", "1ms").unwrap_err(),
            "KeepaliveInterval: \"1ms\" is out of range (10ms..=3600000ms)"
        );
        assert_eq!(
            t.set("RerecoveryTimeout", "7200").unwrap_err(),
            "RerecoveryTimeout: \"7200\" is out of range (0s..=3600s)"
        );
        assert!(t.set("NoIPFailback", "2").is_err());
        assert!(t.set("Bogus", "1").unwrap_err().contains("unknown"));
        assert!(t.set("NoIPHostOnAllDisabled", "1").unwrap().obsolete);
        assert_eq!(t.get("ElectionTimeout").unwrap().to_string(), "1");
    }

    #[test]
    fn file_errors_name_the_line() {
        let mut t = Tunables::default();
        t.apply_file("# c\nKeepaliveInterval=200ms\n\nKeepaliveLimit = 4\n")
            .unwrap();
        assert_eq!(t.keepalive_interval, Duration::from_millis(200));
        assert_eq!(t.keepalive_limit, 4);
        let e = t.apply_file("KeepaliveLimit=2\nnonsense\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = t.apply_file("\n\nKeepaliveLimit=x\n").unwrap_err();
        assert_eq!(e.line, 3);
    }
}
