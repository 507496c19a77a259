//! The events a run can inject, by name.

/// One kind of event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// Cold start: every daemon launched, until every address is served.
    Start,
    /// kill -9 of a node holding addresses that is not the leader.
    Kill9,
    /// kill -9 of the leader (CTDB's leader, pharos's recovery master) while it holds addresses.
    Kill9Leader,
    /// SIGSTOP of a holder's daemon (SIGCONT after the failover).
    Sigstop,
    /// The holder's link cut at the bridge (healed after the failover).
    Cut,
    /// Graceful stop of a holder (pharos: SIGTERM; CTDB: `ctdb shutdown`; keepalived: SIGTERM).
    Stop,
    /// The node killed by `kill9` restarted, until it serves an address again.
    Return,
}

impl Event {
    /// Every event, in the order a run takes them.
    pub const ALL: [Event; 7] = [
        Event::Start,
        Event::Kill9,
        Event::Kill9Leader,
        Event::Sigstop,
        Event::Cut,
        Event::Stop,
        Event::Return,
    ];

    /// The name used on the command line and in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Event::Start => "start",
            Event::Kill9 => "kill9",
            Event::Kill9Leader => "kill9-leader",
            Event::Sigstop => "sigstop",
            Event::Cut => "cut",
            Event::Stop => "stop",
            Event::Return => "return",
        }
    }

    /// A row title for the tables.
    pub fn title(self) -> &'static str {
        match self {
            Event::Start => "cold start to every address served",
            Event::Kill9 => "kill -9 of the holder (not leader)",
            Event::Kill9Leader => "kill -9 of the leader that holds it",
            Event::Sigstop => "SIGSTOP of the holder",
            Event::Cut => "link cut on the holder",
            Event::Stop => "graceful stop of the holder",
            Event::Return => "node return (restart after kill -9)",
        }
    }

    /// Parses a comma-separated list (`all` for every event), in run order, without repeats.
    pub fn parse_list(s: &str) -> Result<Vec<Event>, String> {
        let mut want = Vec::new();
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if w == "all" {
                want.extend(Event::ALL);
                continue;
            }
            match Event::ALL.iter().find(|e| e.name() == w) {
                Some(&e) => want.push(e),
                None => {
                    let names: Vec<&str> = Event::ALL.iter().map(|e| e.name()).collect();
                    return Err(format!(
                        "unknown event {w:?} (known: {}, all)",
                        names.join(", ")
                    ));
                }
            }
        }
        if want.is_empty() {
            return Err("no events".into());
        }
        Ok(Event::ALL
            .into_iter()
            .filter(|e| want.contains(e))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        assert_eq!(
            Event::parse_list("cut,kill9").unwrap(),
            vec![Event::Kill9, Event::Cut]
        );
        assert_eq!(Event::parse_list("all").unwrap().len(), 7);
        assert!(Event::parse_list("kill8").unwrap_err().contains("kill8"));
        assert!(Event::parse_list(",").is_err());
    }
}
