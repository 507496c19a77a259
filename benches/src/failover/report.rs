//! The results: markdown tables (a headline table like issue 13's, then min / median / p95 /
//! max per system and event with the two-node and stale counts, then RSS and idle CPU per node,
//! then every setting) and a JSON file with every raw figure.

use super::analysis::Stats;
use super::driver::{ProfileResult, Trial};
use super::event::Event;
use serde_json::{json, Value};
use std::fmt::Write;

fn trials<'a>(r: &'a ProfileResult, e: Event) -> impl Iterator<Item = &'a Trial> + 'a {
    r.trials.iter().filter(move |t| t.event == e.name())
}

fn label(r: &ProfileResult) -> String {
    r.profile.as_ref().map_or("?".into(), |p| p.label.clone())
}

fn system(r: &ProfileResult) -> String {
    r.profile.as_ref().map_or("?".into(), |p| p.system.clone())
}

fn s3(x: f64) -> String {
    if x < 1.0 {
        format!("{x:.3}")
    } else {
        format!("{x:.2}")
    }
}

/// One cell of the headline table: the median in seconds, or why there is none.
fn headline_cell(r: &ProfileResult, e: Event) -> String {
    if e == Event::Kill9Leader && system(r) == "keepalived" {
        return "-".into();
    }
    let ts: Vec<&Trial> = trials(r, e).collect();
    if r.status.starts_with("not hosted") {
        return "not hosted".into();
    }
    if ts.is_empty() {
        return String::new();
    }
    let vals: Vec<f64> = ts.iter().filter_map(|t| t.value).collect();
    let missing = ts.len() - vals.len();
    match Stats::of(&vals) {
        Some(s) if missing == 0 => format!("{} s", s3(s.median)),
        Some(s) => format!(
            "{} s ({missing} of {} not completed)",
            s3(s.median),
            ts.len()
        ),
        None => "not completed".into(),
    }
}

fn stale_events() -> [Event; 5] {
    [
        Event::Kill9,
        Event::Kill9Leader,
        Event::Sigstop,
        Event::Cut,
        Event::Stop,
    ]
}

/// The markdown report.
pub fn markdown(results: &[ProfileResult], header: &str) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "{header}\n");
    let _ = writeln!(
        m,
        "### Medians (client-visible: event to the first answer from the new holder)\n"
    );
    let _ = write!(m, "| event |");
    for r in results {
        let _ = write!(m, " {} |", label(r));
    }
    let _ = write!(m, "\n|---|");
    for _ in results {
        let _ = write!(m, "---|");
    }
    m.push('\n');
    for e in Event::ALL {
        if results.iter().all(|r| trials(r, e).next().is_none()) {
            continue;
        }
        let _ = write!(m, "| {} |", e.title());
        for r in results {
            let _ = write!(m, " {} |", headline_cell(r, e));
        }
        m.push('\n');
    }
    let _ = write!(m, "| samples with an address on two nodes |");
    for r in results {
        let (n, d) = r
            .trials
            .iter()
            .fold((0, 0), |(n, d), t| (n + t.samples, d + t.doubled));
        let _ = write!(m, " {d} of {n} |");
    }
    let _ = write!(m, "\n| runs leaving a stale address on the victim |");
    for r in results {
        let ts: Vec<&Trial> = r.trials.iter().filter(|t| t.stale.is_some()).collect();
        let bad = ts
            .iter()
            .filter(|t| t.stale.as_ref().is_some_and(|s| !s.is_empty()))
            .count();
        let _ = write!(m, " {bad} of {} |", ts.len());
    }
    let _ = write!(m, "\n| RSS per node (all processes of the system) |");
    for r in results {
        let _ = write!(m, " {} |", rss_cell(r));
    }
    let _ = write!(m, "\n| idle CPU per node |");
    for r in results {
        let _ = write!(m, " {} |", cpu_cell(r));
    }
    m.push_str("\n\n### Every event, seconds\n\n");
    m.push_str(
        "| system | settings | event | n | min | median | p95 | max | not completed | \
         samples on two nodes | stale runs |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        for e in Event::ALL {
            let ts: Vec<&Trial> = trials(r, e).collect();
            if ts.is_empty() {
                continue;
            }
            let vals: Vec<f64> = ts.iter().filter_map(|t| t.value).collect();
            let (n, d) = ts
                .iter()
                .fold((0, 0), |(n, d), t| (n + t.samples, d + t.doubled));
            let stale = if stale_events().contains(&e) {
                let bad = ts
                    .iter()
                    .filter(|t| t.stale.as_ref().is_some_and(|s| !s.is_empty()));
                format!("{} of {}", bad.count(), ts.len())
            } else {
                "-".into()
            };
            let cols = match Stats::of(&vals) {
                Some(s) => format!(
                    "{} | {} | {} | {} | {}",
                    s.n,
                    s3(s.min),
                    s3(s.median),
                    s3(s.p95),
                    s3(s.max)
                ),
                None => "0 | | | |".into(),
            };
            let _ = writeln!(
                m,
                "| {} | {} | {} | {cols} | {} | {d} of {n} | {stale} |",
                system(r),
                label(r),
                e.name(),
                ts.len() - vals.len()
            );
        }
    }
    m.push_str("\n### Footprint per node (idle, healthy cluster)\n\n");
    m.push_str("| system | settings | node | RSS MB | idle CPU % | processes (RSS kB) |\n|---|---|---|---|---|---|\n");
    for r in results {
        for f in &r.footprint {
            let procs: Vec<String> = f.procs.iter().map(|(c, k)| format!("{c} {k}")).collect();
            let _ = writeln!(
                m,
                "| {} | {} | n{} | {:.1} | {:.2} (over {} s) | {} |",
                system(r),
                label(r),
                f.node,
                f.rss_kb as f64 / 1024.0,
                f.cpu_pct,
                r.idle_secs,
                procs.join(", ")
            );
        }
    }
    m.push_str("\n### Status and notes\n\n");
    for r in results {
        let _ = writeln!(m, "- {}: {}", label(r), r.status);
        for t in &r.trials {
            for n in &t.notes {
                let _ = writeln!(m, "  - {} #{}: {n}", t.event, t.rep + 1);
            }
        }
    }
    m.push_str("\n### Settings\n");
    for r in results {
        let Some(p) = &r.profile else { continue };
        let _ = write!(
            m,
            "\n#### {} (`profiles/{}.profile`)\n\n```\n{}```\n\n```\n{}```\n",
            p.label, p.name, p.text, r.settings
        );
    }
    m
}

fn rss_cell(r: &ProfileResult) -> String {
    let v: Vec<f64> = r
        .footprint
        .iter()
        .map(|f| f.rss_kb as f64 / 1024.0)
        .collect();
    match Stats::of(&v) {
        Some(s) => range(format!("{:.1}", s.min), format!("{:.1}", s.max)) + " MB",
        None => String::new(),
    }
}

fn cpu_cell(r: &ProfileResult) -> String {
    let v: Vec<f64> = r.footprint.iter().map(|f| f.cpu_pct).collect();
    match Stats::of(&v) {
        Some(s) => {
            range(format!("{:.2}", s.min), format!("{:.2}", s.max))
                + &format!(" % ({} s)", r.idle_secs)
        }
        None => String::new(),
    }
}

/// `a-b`, or `a` when both print the same.
fn range(a: String, b: String) -> String {
    if a == b {
        a
    } else {
        format!("{a}-{b}")
    }
}

/// Every raw figure.
pub fn json(results: &[ProfileResult], meta: Value) -> Value {
    let profiles: Vec<Value> = results
        .iter()
        .map(|r| {
            let trials: Vec<Value> = r
                .trials
                .iter()
                .map(|t| {
                    json!({
                        "event": t.event, "rep": t.rep, "victim": t.victim, "leader": t.leader,
                        "seconds": t.value,
                        "addresses": t.per_addr.iter().map(|(a, s)| json!({"address": a, "seconds": s})).collect::<Vec<_>>(),
                        "samples": t.samples, "samples_on_two_nodes": t.doubled,
                        "stale_on_victim": t.stale, "notes": t.notes,
                    })
                })
                .collect();
            let fp: Vec<Value> = r
                .footprint
                .iter()
                .map(|f| json!({"node": f.node, "rss_kb": f.rss_kb, "cpu_pct": f.cpu_pct,
                    "processes": f.procs.iter().map(|(c, k)| json!({"comm": c, "rss_kb": k})).collect::<Vec<_>>()}))
                .collect();
            let p = r.profile.as_ref();
            json!({
                "profile": p.map(|p| p.name.clone()), "system": p.map(|p| p.system.clone()),
                "label": p.map(|p| p.label.clone()), "profile_text": p.map(|p| p.text.clone()),
                "settings": r.settings, "status": r.status, "trials": trials,
                "footprint": fp, "idle_seconds": r.idle_secs,
                "whole_run": {"samples": r.samples_seen, "samples_on_two_nodes": r.doubled_seen},
            })
        })
        .collect();
    json!({"meta": meta, "profiles": profiles})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failover::profile::Profile;

    fn result(system: &str, values: &[Option<f64>], doubled: usize) -> ProfileResult {
        let p = Profile::parse("p", &format!("system = {system}\nlabel = L {system}\n")).unwrap();
        ProfileResult {
            profile: Some(p),
            status: "ok".into(),
            trials: values
                .iter()
                .enumerate()
                .map(|(i, &v)| Trial {
                    event: "kill9".into(),
                    rep: i,
                    value: v,
                    samples: 100,
                    doubled,
                    stale: Some(if i == 0 {
                        vec!["10.0.0.1".into()]
                    } else {
                        vec![]
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn tables_show_medians_counts_and_gaps() {
        let rs = [
            result("ctdb", &[Some(0.6), Some(0.64), Some(0.7)], 3),
            result("keepalived", &[Some(0.03), None], 0),
        ];
        let m = markdown(&rs, "# t");
        assert!(
            m.contains(
                "| kill -9 of the holder (not leader) | 0.640 s | 0.030 s (1 of 2 not completed) |"
            ),
            "{m}"
        );
        assert!(m.contains("| 9 of 300 | 0 of 200 |"), "{m}");
        assert!(m.contains("| 1 of 3 | 1 of 2 |"), "{m}");
        assert!(m.contains("| ctdb | L ctdb | kill9 | 3 | 0.600 | 0.640 | 0.700 | 0.700 | 0 | 9 of 300 | 1 of 3 |"), "{m}");
        let j = json(&rs, json!({}));
        assert_eq!(j["profiles"][1]["trials"][1]["seconds"], Value::Null);
        assert_eq!(j["profiles"][0]["trials"][0]["samples_on_two_nodes"], 3);
    }

    #[test]
    fn keepalived_has_no_leader_row_and_unhosted_says_so() {
        let mut k = result("keepalived", &[], 0);
        k.trials.push(Trial {
            event: "kill9-leader".into(),
            ..Default::default()
        });
        assert_eq!(headline_cell(&k, Event::Kill9Leader), "-");
        let mut p = result("pharos", &[None], 0);
        p.status = "not hosted: every node OK".into();
        assert_eq!(headline_cell(&p, Event::Kill9), "not hosted");
    }
}
