//! Runs the IP allocator offline on a case file (`pharos ipalloc [--text] FILE`), and checks a
//! case's expected results (the CTDB conformance test).
//!
//! The file format is `ctdb-takeover-case/1` (see `tests/data/ctdb-takeover/FORMAT.md`): a JSON
//! object with an `algorithm` and `steps`; each step gives the `nodes` (flags, runstate), the
//! address layout (`input`, shared or per-node), `tunables`, `force_rebalance_nodes` and
//! `home_nodes`. Each step is run independently through [`pharos_core::ipalloc::allocate`].
//!
//! Which facts are used, so that an operator can edit a case to ask "what if node 3 fails?":
//! * the step's `input` together with its `nodes`, merged as CTDB merges the nodes' views; the
//!   precomputed `derived` block is only used when `input` is absent (then node flags do not
//!   matter: `derived.ips[].available_on` says who can host), and is otherwise only compared
//!   (a warning if it disagrees);
//! * a step with `"chained_from_previous_step": true` may omit `input`, `nodes`, `tunables` and
//!   `home_nodes`: it then reuses the previous step's, with the previous step's *result* as the
//!   current holders;
//! * `expected` and `expected_log` are ignored by [`run`] and compared by [`check`].

use pharos_core::config::Tunables;
use pharos_core::ipalloc::{
    allocate, parse_home_nodes, AddressInput, Algorithm, AllocInput, Allocation, ConfiguredAddress,
    Event, NodeState, NodeView, Options,
};
use pharos_core::{NodeFlags, Pnn};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

/// The format tag this module reads.
pub const FORMAT: &str = "ctdb-takeover-case/1";

/// A case file as written.
#[derive(Debug, Deserialize)]
pub struct CaseFile {
    /// Must be [`FORMAT`] when present.
    #[serde(default)]
    pub format: Option<String>,
    /// Case name, e.g. `lcp2.032`.
    #[serde(default)]
    pub name: Option<String>,
    /// One-line title.
    #[serde(default)]
    pub description: Option<String>,
    /// `lcp2`, `deterministic`, `nondeterministic` (or 2, 0, 1). Default: the steps'
    /// `IPAllocAlgorithm` tunable, else LCP2.
    #[serde(default)]
    pub algorithm: Option<Value>,
    /// The allocator runs, in order.
    pub steps: Vec<StepSpec>,
}

/// One step (allocator run) as written.
#[derive(Debug, Deserialize)]
pub struct StepSpec {
    /// Optional title.
    #[serde(default)]
    pub description: Option<String>,
    /// Whether the previous step's result is this step's starting point.
    #[serde(default)]
    pub chained_from_previous_step: bool,
    /// One entry per node, index = PNN.
    #[serde(default)]
    pub nodes: Option<Vec<NodeSpec>>,
    /// The raw address layout.
    #[serde(default)]
    pub input: Option<InputSpec>,
    /// The layout after CTDB's merge.
    #[serde(default)]
    pub derived: Option<DerivedSpec>,
    /// Tunables by CTDB name.
    #[serde(default)]
    pub tunables: Option<BTreeMap<String, Value>>,
    /// LCP2's forced rebalance targets.
    #[serde(default)]
    pub force_rebalance_nodes: Option<Vec<i64>>,
    /// Deterministic: the `home_nodes` file, `null` = none.
    #[serde(default)]
    pub home_nodes: Option<Vec<HomeNodeSpec>>,
    /// The expected result, in CTDB order.
    #[serde(default)]
    pub expected: Option<Vec<ExpectedSpec>>,
    /// Log lines CTDB printed.
    #[serde(default)]
    pub expected_log: Option<ExpectedLog>,
}

/// A node entry.
#[derive(Debug, Deserialize)]
pub struct NodeSpec {
    /// Must equal the entry's index when present.
    #[serde(default)]
    pub pnn: Option<i64>,
    /// Flag names (`UNHEALTHY`, `STOPPED`, ...).
    #[serde(default)]
    pub flags: Option<Vec<String>>,
    /// The flags as an integer (or a string such as `"0x20"`).
    #[serde(default)]
    pub flags_raw: Option<Value>,
    /// `RUNNING` (default), `STARTUP`, ... or 0..6.
    #[serde(default)]
    pub runstate: Option<Value>,
}

/// The raw address layout.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum InputSpec {
    /// One list; every node in `known_on` reports the same holder.
    Shared {
        /// The addresses.
        ips: Vec<SharedIp>,
    },
    /// Each node's own list.
    PerNode {
        /// Index = PNN.
        per_node: Vec<Vec<PerNodeIp>>,
    },
}

/// An address of a shared layout.
#[derive(Debug, Clone, Deserialize)]
pub struct SharedIp {
    /// The address.
    pub addr: String,
    /// Holder, `null` or -1 = none.
    #[serde(default)]
    pub current_pnn: Option<i64>,
    /// Nodes listing it; absent = all.
    #[serde(default)]
    pub known_on: Option<Vec<i64>>,
}

/// An address in one node's view.
#[derive(Debug, Clone, Deserialize)]
pub struct PerNodeIp {
    /// The address.
    pub addr: String,
    /// The holder this node reports.
    #[serde(default)]
    pub current_pnn: Option<i64>,
}

/// The merged layout.
#[derive(Debug, Deserialize)]
pub struct DerivedSpec {
    /// In CTDB order.
    pub ips: Vec<DerivedIp>,
}

/// One merged address.
#[derive(Debug, Deserialize)]
pub struct DerivedIp {
    /// The address.
    pub addr: String,
    /// Merged holder.
    #[serde(default)]
    pub current_pnn: Option<i64>,
    /// Nodes listing it.
    #[serde(default)]
    pub known_on: Option<Vec<i64>>,
    /// Nodes able to host it.
    #[serde(default)]
    pub available_on: Vec<i64>,
}

/// A `home_nodes` line.
#[derive(Debug, Clone, Deserialize)]
pub struct HomeNodeSpec {
    /// The address (as text: CTDB ignores the whole file if one does not parse).
    pub addr: String,
    /// Its home node.
    pub pnn: i64,
}

/// One expected result entry.
#[derive(Debug, Deserialize)]
pub struct ExpectedSpec {
    /// The address.
    pub addr: String,
    /// The holder, `null` or -1 = unassigned.
    #[serde(default)]
    pub pnn: Option<i64>,
}

/// CTDB's log at a level.
#[derive(Debug, Deserialize)]
pub struct ExpectedLog {
    /// `ERR`, `WARNING`, `NOTICE`, `INFO` or `DEBUG`.
    pub level: String,
    /// The lines, without timestamps.
    #[serde(default)]
    pub lines: Vec<String>,
}

/// One step, run.
#[derive(Debug, Clone)]
pub struct StepRun {
    /// The step's title, if any.
    pub description: Option<String>,
    /// Node states used.
    pub nodes: Vec<NodeState>,
    /// The allocator input (after merging).
    pub input: AllocInput,
    /// The options used.
    pub options: Options,
    /// The result.
    pub result: Allocation,
    /// Things the operator should know (obsolete tunables, ignored entries, ...).
    pub warnings: Vec<String>,
    /// The raw layout, kept for chaining.
    layout: Layout,
    tunables: BTreeMap<String, Value>,
    home_nodes: Option<Vec<HomeNodeSpec>>,
}

/// A whole case, run.
#[derive(Debug, Clone)]
pub struct CaseRun {
    /// Case name.
    pub name: Option<String>,
    /// Case title.
    pub description: Option<String>,
    /// The algorithm of the file (steps may override it with `IPAllocAlgorithm`).
    pub algorithm: Algorithm,
    /// Steps, in order, each with its algorithm.
    pub steps: Vec<(Algorithm, StepRun)>,
}

/// The layout a step runs on, in a form that can be re-run with new holders.
#[derive(Debug, Clone)]
enum Layout {
    Shared(Vec<(IpAddr, Option<Pnn>, Option<Vec<Pnn>>)>),
    PerNode(Vec<Vec<(IpAddr, Option<Pnn>)>>),
    Derived(Vec<AddressInput>),
}

impl Layout {
    fn with_holders(&self, result: &Allocation) -> Layout {
        let holder = |addr: IpAddr, old: Option<Pnn>| result.owner_of(addr).unwrap_or(old);
        match self {
            Layout::Shared(ips) => Layout::Shared(
                ips.iter()
                    .map(|(a, c, k)| (*a, holder(*a, *c), k.clone()))
                    .collect(),
            ),
            Layout::PerNode(views) => Layout::PerNode(
                views
                    .iter()
                    .map(|v| v.iter().map(|(a, c)| (*a, holder(*a, *c))).collect())
                    .collect(),
            ),
            Layout::Derived(ips) => Layout::Derived(
                ips.iter()
                    .map(|a| AddressInput {
                        current: holder(a.addr, a.current),
                        ..a.clone()
                    })
                    .collect(),
            ),
        }
    }

    fn build(&self, nodes: &[NodeState]) -> Result<AllocInput, String> {
        let input = match self {
            Layout::Shared(ips) => {
                let addrs: Vec<ConfiguredAddress> = ips
                    .iter()
                    .map(|(a, c, k)| ConfiguredAddress {
                        addr: *a,
                        current: *c,
                        nodes: k.clone(),
                    })
                    .collect();
                AllocInput::from_nodes(nodes, &addrs)
            }
            Layout::PerNode(views) => {
                if views.len() != nodes.len() {
                    return Err(format!(
                        "input.per_node has {} views but there are {} nodes",
                        views.len(),
                        nodes.len()
                    ));
                }
                let views: Vec<NodeView> = views
                    .iter()
                    .zip(nodes)
                    .map(|(v, s)| NodeView::new(*s, v.clone()))
                    .collect();
                AllocInput::merge(&views)
            }
            Layout::Derived(ips) => AllocInput::new(nodes.len(), ips.clone()),
        };
        input.map_err(|e| e.to_string())
    }
}

/// Reads and parses a case file.
pub fn load(path: &Path) -> Result<CaseFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses the text of a case file.
pub fn parse(text: &str) -> Result<CaseFile, String> {
    let case: CaseFile =
        serde_json::from_str(text).map_err(|e| format!("not a valid case file: {e}"))?;
    if let Some(f) = &case.format {
        if f != FORMAT {
            return Err(format!("unsupported format {f:?} (expected {FORMAT:?})"));
        }
    }
    if case.steps.is_empty() {
        return Err("the case has no steps".into());
    }
    Ok(case)
}

/// Runs every step of a parsed case.
pub fn run_case(case: &CaseFile) -> Result<CaseRun, String> {
    let algorithm = match &case.algorithm {
        Some(v) => Some(parse_algorithm(v)?),
        None => None,
    };
    let mut steps: Vec<(Algorithm, StepRun)> = Vec::new();
    for (i, spec) in case.steps.iter().enumerate() {
        let prev = steps.last().map(|(_, s)| s);
        let (alg, step) =
            run_step(spec, algorithm, prev).map_err(|e| format!("step {}: {e}", i + 1))?;
        steps.push((alg, step));
    }
    Ok(CaseRun {
        name: case.name.clone(),
        description: case.description.clone(),
        algorithm: algorithm.unwrap_or_default(),
        steps,
    })
}

/// `pharos ipalloc [--text] FILE`: runs the case and returns the output (JSON, or a table with
/// `text`). Warnings go to standard error.
pub fn run(path: &Path, text: bool) -> Result<String, String> {
    let case = load(path)?;
    let done = run_case(&case).map_err(|e| format!("{}: {e}", path.display()))?;
    for (i, (_, step)) in done.steps.iter().enumerate() {
        for w in &step.warnings {
            eprintln!("{}: step {}: warning: {w}", path.display(), i + 1);
        }
    }
    Ok(if text {
        render_text(&done)
    } else {
        render_json(&done)
    })
}

/// `{"steps":[{"allocation":[{"addr":"10.0.0.1","pnn":2}, ...]}, ...]}`, one address per line,
/// in CTDB order; pnn -1 = unassigned.
pub fn render_json(run: &CaseRun) -> String {
    let mut out = String::from("{\"steps\":[\n");
    for (i, (_, step)) in run.steps.iter().enumerate() {
        out.push_str(" {\"allocation\":[\n");
        let list = step.result.assignments();
        for (j, a) in list.iter().enumerate() {
            let pnn = a.pnn.map_or(-1, |p| i64::from(p.0));
            let comma = if j + 1 < list.len() { "," } else { "" };
            // An IpAddr's text never needs JSON escaping.
            let _ = writeln!(out, "  {{\"addr\":\"{}\",\"pnn\":{pnn}}}{comma}", a.addr);
        }
        out.push_str(if i + 1 < run.steps.len() {
            " ]},\n"
        } else {
            " ]}\n"
        });
    }
    out.push_str("]}\n");
    out
}

/// A table per step: each address with its holder before and after, then each node's count.
pub fn render_text(run: &CaseRun) -> String {
    let mut out = String::new();
    let title = match (&run.name, &run.description) {
        (Some(n), Some(d)) => format!("{n}: {d}"),
        (Some(n), None) => n.clone(),
        (None, Some(d)) => d.clone(),
        (None, None) => "case".into(),
    };
    let _ = writeln!(out, "{title}");
    for (i, (alg, step)) in run.steps.iter().enumerate() {
        let _ = writeln!(out);
        let _ = write!(out, "step {}/{} ({alg})", i + 1, run.steps.len());
        if let Some(d) = &step.description {
            let _ = write!(out, ": {d}");
        }
        let _ = writeln!(out);
        let list = step.result.assignments();
        let width = list
            .iter()
            .map(|a| a.addr.to_string().len())
            .max()
            .unwrap_or(0)
            .max("ADDRESS".len());
        let _ = writeln!(out, "{:<width$}  {:>4}  {:>4}", "ADDRESS", "WAS", "NOW");
        let show = |p: Option<Pnn>| p.map_or_else(|| "-".to_string(), |p| p.0.to_string());
        for a in list {
            let mark = match (a.previous, a.pnn) {
                (_, None) => "  unassigned",
                (None, Some(_)) => "  assigned",
                (Some(x), Some(y)) if x != y => "  moved",
                _ => "",
            };
            let _ = writeln!(
                out,
                "{:<width$}  {:>4}  {:>4}{mark}",
                a.addr.to_string(),
                show(a.previous),
                show(a.pnn)
            );
        }
        let counts = step.result.counts(step.input.node_count());
        let _ = writeln!(out, "{:<4}  {:<24}  ADDRESSES", "NODE", "STATE");
        for (pnn, (state, count)) in step.nodes.iter().zip(&counts).enumerate() {
            let mut flags = state.flags.to_string();
            if !state.running {
                flags.push_str(" (not running)");
            }
            let _ = writeln!(out, "{pnn:<4}  {flags:<24}  {count}");
        }
        let moved = list
            .iter()
            .filter(|a| a.previous.is_some() && a.pnn.is_some() && a.is_move())
            .count();
        let unassigned = list.iter().filter(|a| a.pnn.is_none()).count();
        let _ = writeln!(
            out,
            "{} addresses, {moved} moved, {unassigned} unassigned",
            list.len()
        );
        for w in &step.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
    }
    out
}

fn run_step(
    spec: &StepSpec,
    case_algorithm: Option<Algorithm>,
    prev: Option<&StepRun>,
) -> Result<(Algorithm, StepRun), String> {
    let chained = if spec.chained_from_previous_step {
        Some(prev.ok_or("chained_from_previous_step is set on the first step")?)
    } else {
        None
    };
    let mut warnings: Vec<String> = Vec::new();

    let nodes: Vec<NodeState> = match (&spec.nodes, chained) {
        (Some(list), _) => list
            .iter()
            .enumerate()
            .map(|(i, n)| parse_node(i, n))
            .collect::<Result<_, _>>()?,
        (None, Some(p)) => p.nodes.clone(),
        (None, None) => return Err("missing \"nodes\"".into()),
    };
    let n = nodes.len();

    let layout = match (&spec.input, &spec.derived, chained) {
        (Some(input), _, _) => parse_input(input, n, &mut warnings)?,
        (None, _, Some(p)) => p.layout.with_holders(&p.result),
        (None, Some(derived), None) => Layout::Derived(parse_derived(derived, n)?),
        (None, None, None) => return Err("missing \"input\" (or \"derived\")".into()),
    };
    let input = layout.build(&nodes)?;
    if let (Some(_), Some(derived)) = (&spec.input, &spec.derived) {
        // Informational only when "input" is there: never a reason to refuse the case.
        match compare_derived(&input, derived, n) {
            Ok(None) => {}
            Ok(Some(diff)) => warnings.push(format!(
                "\"derived\" disagrees with \"input\" + \"nodes\" ({diff}); using the latter"
            )),
            Err(e) => warnings.push(format!("\"derived\" is malformed ({e}); ignored")),
        }
    }

    let tunables_map = match (&spec.tunables, chained) {
        (Some(t), _) => t.clone(),
        (None, Some(p)) => p.tunables.clone(),
        (None, None) => BTreeMap::new(),
    };
    let (tunables, explicit_algorithm) = parse_tunables(&tunables_map, &mut warnings)?;
    let algorithm = match (case_algorithm, explicit_algorithm) {
        (Some(a), Some(b)) if a != b => {
            return Err(format!(
                "tunable IPAllocAlgorithm selects {b} but the case's algorithm is {a}"
            ))
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => Algorithm::default(),
    };

    let mut options = Options::from_tunables(&tunables);
    for &p in spec.force_rebalance_nodes.iter().flatten() {
        let pnn = u32::try_from(p)
            .map_err(|_| format!("force_rebalance_nodes: {p} is not a node number"))?;
        options.force_rebalance.push(Pnn(pnn));
    }
    let home_nodes = match (&spec.home_nodes, chained) {
        (Some(h), _) => Some(h.clone()),
        (None, Some(p)) => p.home_nodes.clone(),
        (None, None) => None,
    };
    if let Some(list) = &home_nodes {
        // Through CTDB's own reading rules: one unparsable entry voids the whole file.
        let text: String = list
            .iter()
            .map(|h| format!("{} {}\n", h.addr, h.pnn))
            .collect();
        match parse_home_nodes(&text) {
            Some(h) => options.home_nodes = h,
            None => warnings.push(
                "home_nodes has an entry that does not parse: the whole file is ignored, as in \
                 CTDB"
                    .into(),
            ),
        }
        if algorithm != Algorithm::Deterministic && !list.is_empty() {
            warnings.push(format!(
                "home_nodes only matters to deterministic, not {algorithm}"
            ));
        }
    }

    let result = allocate(&input, algorithm, &options);
    for e in result.events() {
        match e {
            Event::UnknownRebalanceNode { .. }
            | Event::HomeNodeOutOfRange { .. }
            | Event::NoIpFailbackIgnored
            | Event::RebalanceLimit => warnings.push(e.to_string()),
            _ => {}
        }
    }
    Ok((
        algorithm,
        StepRun {
            description: spec.description.clone(),
            nodes,
            input,
            options,
            result,
            warnings,
            layout,
            tunables: tunables_map,
            home_nodes,
        },
    ))
}

fn parse_algorithm(v: &Value) -> Result<Algorithm, String> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(format!(
                "algorithm: expected a name or a number, got {other}"
            ))
        }
    };
    text.parse()
        .map_err(|e: pharos_core::ipalloc::AllocError| format!("algorithm {text:?}: {e}"))
}

fn parse_node(index: usize, n: &NodeSpec) -> Result<NodeState, String> {
    let ctx = |m: String| format!("nodes[{index}]: {m}");
    if let Some(p) = n.pnn {
        if p != index as i64 {
            return Err(ctx(format!("pnn {p} does not match its position {index}")));
        }
    }
    let from_names = match &n.flags {
        Some(names) => {
            let mut f = NodeFlags::empty();
            for name in names {
                f = f.union(
                    flag_by_name(name).ok_or_else(|| ctx(format!("unknown flag {name:?}")))?,
                );
            }
            Some(f)
        }
        None => None,
    };
    let from_raw = match &n.flags_raw {
        None | Some(Value::Null) => None,
        Some(v) => Some(NodeFlags(parse_flags_raw(v).map_err(ctx)?)),
    };
    let flags = match (from_names, from_raw) {
        (Some(a), Some(b)) if a != b => {
            return Err(ctx(format!(
                "\"flags\" ({a}) and \"flags_raw\" ({:#x}) disagree; give one",
                b.0
            )))
        }
        (Some(f), _) | (None, Some(f)) => f,
        (None, None) => NodeFlags::empty(),
    };
    let running = match &n.runstate {
        None | Some(Value::Null) => true,
        Some(v) => parse_runstate(v).map_err(ctx)? == 5,
    };
    Ok(NodeState { flags, running })
}

fn flag_by_name(name: &str) -> Option<NodeFlags> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "PERMANENTLY_DISABLED" {
        return Some(NodeFlags::DISABLED);
    }
    NodeFlags::NAMES
        .iter()
        .find(|(_, n)| *n == upper)
        .map(|(f, _)| *f)
}

/// An integer, or a string with C-style base detection (`0x20`, `040`, `32`), as CTDB's test
/// harness reads flags.
fn parse_flags_raw(v: &Value) -> Result<u32, String> {
    let bad = || format!("flags_raw: expected a non-negative 32-bit number, got {v}");
    match v {
        Value::Number(n) => n
            .as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(bad),
        Value::String(s) => {
            let s = s.trim();
            let parsed = if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                u32::from_str_radix(hex, 16)
            } else if s.len() > 1 && s.starts_with('0') {
                u32::from_str_radix(&s[1..], 8)
            } else {
                s.parse()
            };
            parsed.map_err(|_| bad())
        }
        _ => Err(bad()),
    }
}

const RUNSTATES: [&str; 7] = [
    "UNKNOWN",
    "INIT",
    "SETUP",
    "FIRST_RECOVERY",
    "STARTUP",
    "RUNNING",
    "SHUTDOWN",
];

fn parse_runstate(v: &Value) -> Result<usize, String> {
    let found = match v {
        Value::String(s) => RUNSTATES
            .iter()
            .position(|r| r.eq_ignore_ascii_case(s.trim())),
        Value::Number(n) => n
            .as_u64()
            .and_then(|x| usize::try_from(x).ok())
            .filter(|&x| x < RUNSTATES.len()),
        _ => None,
    };
    found.ok_or_else(|| {
        format!(
            "runstate: expected one of {} (or 0..6), got {v}",
            RUNSTATES.join(", ")
        )
    })
}

fn parse_addr(text: &str) -> Result<IpAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("invalid IP address {text:?}"))
}

/// A holder: `null` or -1 = none; negative otherwise is an error; PNNs past the last node are
/// kept (the merge then ignores them, as CTDB would: no such node claims the address).
fn parse_holder(addr: IpAddr, v: Option<i64>) -> Result<Option<Pnn>, String> {
    match v {
        None | Some(-1) => Ok(None),
        Some(p) => u32::try_from(p)
            .map(|p| Some(Pnn(p)))
            .map_err(|_| format!("{addr}: current_pnn {p} is not a node number (-1 = none)")),
    }
}

fn parse_pnn_list(addr: IpAddr, what: &str, list: &[i64], n: usize) -> Result<Vec<Pnn>, String> {
    list.iter()
        .map(|&p| match usize::try_from(p) {
            Ok(i) if i < n => Ok(Pnn(i as u32)),
            _ => Err(format!(
                "{addr}: {what} lists {p}, which is not one of the {n} nodes"
            )),
        })
        .collect()
}

fn parse_input(input: &InputSpec, n: usize, warnings: &mut Vec<String>) -> Result<Layout, String> {
    let mut note_stranger = |addr: IpAddr, holder: Option<Pnn>| {
        if let Some(p) = holder.filter(|p| p.index() >= n) {
            warnings.push(format!(
                "{addr}: current_pnn {p} is not a node; treated as unassigned"
            ));
        }
    };
    match input {
        InputSpec::Shared { ips } => {
            let mut out = Vec::with_capacity(ips.len());
            for ip in ips {
                let addr = parse_addr(&ip.addr)?;
                let holder = parse_holder(addr, ip.current_pnn)?;
                note_stranger(addr, holder);
                let known = match &ip.known_on {
                    Some(list) => Some(parse_pnn_list(addr, "known_on", list, n)?),
                    None => None,
                };
                out.push((addr, holder, known));
            }
            Ok(Layout::Shared(out))
        }
        InputSpec::PerNode { per_node } => {
            let mut views = Vec::with_capacity(per_node.len());
            for view in per_node {
                let mut v = Vec::with_capacity(view.len());
                for ip in view {
                    let addr = parse_addr(&ip.addr)?;
                    let holder = parse_holder(addr, ip.current_pnn)?;
                    note_stranger(addr, holder);
                    v.push((addr, holder));
                }
                views.push(v);
            }
            Ok(Layout::PerNode(views))
        }
    }
}

fn parse_derived(derived: &DerivedSpec, n: usize) -> Result<Vec<AddressInput>, String> {
    derived
        .ips
        .iter()
        .map(|ip| {
            let addr = parse_addr(&ip.addr)?;
            let current = parse_holder(addr, ip.current_pnn)?;
            if let Some(p) = current.filter(|p| p.index() >= n) {
                return Err(format!(
                    "{addr}: current_pnn {p} is not one of the {n} nodes"
                ));
            }
            Ok(AddressInput {
                addr,
                current,
                known_on: parse_pnn_list(
                    addr,
                    "known_on",
                    ip.known_on.as_deref().unwrap_or(&[]),
                    n,
                )?,
                available_on: parse_pnn_list(addr, "available_on", &ip.available_on, n)?,
            })
        })
        .collect()
}

/// `None` if `derived` says exactly what `input` merges to, else the first difference.
fn compare_derived(
    input: &AllocInput,
    derived: &DerivedSpec,
    n: usize,
) -> Result<Option<String>, String> {
    let want = parse_derived(derived, n)?;
    let got = input.addresses();
    if want.len() != got.len() {
        return Ok(Some(format!(
            "{} addresses instead of {}",
            want.len(),
            got.len()
        )));
    }
    for (w, g) in want.iter().zip(got) {
        let known_ok = derived_known_matches(w, g);
        if w.addr != g.addr
            || w.current != g.current
            || w.available_on != g.available_on
            || !known_ok
        {
            return Ok(Some(format!("first at {}", g.addr)));
        }
    }
    Ok(None)
}

fn derived_known_matches(want: &AddressInput, got: &AddressInput) -> bool {
    let mut w = want.known_on.clone();
    w.sort();
    w.dedup();
    w == got.known_on
}

fn parse_tunables(
    map: &BTreeMap<String, Value>,
    warnings: &mut Vec<String>,
) -> Result<(Tunables, Option<Algorithm>), String> {
    let mut t = Tunables::default();
    let mut algorithm = None;
    for (name, value) in map {
        let text = match value {
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => u8::from(*b).to_string(),
            Value::String(s) => s.clone(),
            other => return Err(format!("tunable {name}: expected a number, got {other}")),
        };
        let def = t.set(name, &text).map_err(|e| format!("tunables: {e}"))?;
        if def.obsolete {
            warnings.push(format!(
                "{} is obsolete in current CTDB and has no effect",
                def.name
            ));
        }
        if def.name == "IPAllocAlgorithm" {
            algorithm = Some(Algorithm::from_tunables(&t));
        }
    }
    Ok((t, algorithm))
}

// ---------------------------------------------------------------------------------------------
// Checking expected results.

/// The outcome of checking one case file against its expectations.
#[derive(Debug, Clone, Default)]
pub struct CaseCheck {
    /// Case name (or the file name).
    pub name: String,
    /// Steps run.
    pub steps: usize,
    /// Steps that had an `expected` allocation to compare.
    pub compared: usize,
    /// Every difference, as `step N: ...`.
    pub failures: Vec<String>,
}

/// Runs a case file and compares each step with its `expected` allocation (same addresses, same
/// order, same holders), its `derived` layout with the merge of `input` + `nodes`, the log lines
/// of `expected_log` that name allocator decisions, and, for chained steps, that the input
/// holders are the previous step's result.
pub fn check(path: &Path) -> Result<CaseCheck, String> {
    let case = load(path)?;
    let done = run_case(&case).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = case.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let mut report = CaseCheck {
        name,
        steps: done.steps.len(),
        ..CaseCheck::default()
    };
    for (i, (spec, (alg, step))) in case.steps.iter().zip(&done.steps).enumerate() {
        let mut fail = |m: String| report.failures.push(format!("step {}: {m}", i + 1));
        if let Some(expected) = &spec.expected {
            report.compared += 1;
            if let Err(m) = compare_allocation(&step.result, expected) {
                fail(m);
            }
        }
        if let (Some(_), Some(derived)) = (&spec.input, &spec.derived) {
            match compare_derived(&step.input, derived, step.nodes.len()) {
                Ok(None) => {}
                Ok(Some(diff)) => fail(format!("merged input differs from \"derived\": {diff}")),
                Err(e) => fail(format!("derived: {e}")),
            }
        }
        if let Some(log) = &spec.expected_log {
            if let Err(m) = compare_log(*alg, &step.result, log) {
                fail(m);
            }
        }
        if spec.chained_from_previous_step && i > 0 {
            let prev = &done.steps[i - 1].1.result;
            for a in step.input.addresses() {
                if let Some(p) = prev.owner_of(a.addr) {
                    if p != a.current {
                        fail(format!(
                            "chained: {} starts on {:?} but the previous step left it on {:?}",
                            a.addr, a.current, p
                        ));
                        break;
                    }
                }
            }
        }
    }
    Ok(report)
}

fn compare_allocation(result: &Allocation, expected: &[ExpectedSpec]) -> Result<(), String> {
    let got = result.assignments();
    let mut diffs = Vec::new();
    if got.len() != expected.len() {
        diffs.push(format!(
            "{} addresses, expected {}",
            got.len(),
            expected.len()
        ));
    }
    for (k, (g, e)) in got.iter().zip(expected).enumerate() {
        let want_addr = parse_addr(&e.addr)?;
        let want = parse_holder(want_addr, e.pnn)?;
        if g.addr != want_addr {
            diffs.push(format!(
                "position {k}: {} where {want_addr} was expected",
                g.addr
            ));
        } else if g.pnn != want {
            let show = |p: Option<Pnn>| p.map_or(-1, |p| i64::from(p.0));
            diffs.push(format!(
                "{}: pnn {} (expected {})",
                g.addr,
                show(g.pnn),
                show(want)
            ));
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        let total = diffs.len();
        diffs.truncate(8);
        Err(format!("{total} differences: {}", diffs.join("; ")))
    }
}

/// CTDB debug levels, least verbose first.
const LEVELS: [&str; 5] = ["ERR", "WARNING", "NOTICE", "INFO", "DEBUG"];

/// Kinds of log line that record allocator decisions.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum LineKind {
    Released,
    Uncovered,
    Assigned,
    Moved,
}

fn classify(line: &str) -> Option<LineKind> {
    if line.starts_with("Unassign IP: ") {
        return Some(LineKind::Released);
    }
    if line.starts_with("Failed to find node to cover ip ") {
        return Some(LineKind::Uncovered);
    }
    let words: Vec<&str> = line.split(' ').collect();
    let num = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit());
    let bracket = |w: &str, sign: char| {
        w.strip_prefix('[')
            .and_then(|w| w.strip_suffix(']'))
            .map(|w| w.strip_prefix(sign).unwrap_or(w))
            .is_some_and(num)
    };
    // " ADDR -> PNN [+COST]" (LCP2's assignment; leading space)
    if let ["", _, "->", pnn, cost] = words[..] {
        if num(pnn) && bracket(cost, '+') {
            return Some(LineKind::Assigned);
        }
    }
    // "SRC [-X] -> ADDR -> DST [+Y]" (LCP2's chosen move; no leading space, unlike candidates)
    if let [src, d1, "->", _, "->", dst, d2] = words[..] {
        if num(src) && bracket(d1, '-') && num(dst) && bracket(d2, '+') {
            return Some(LineKind::Moved);
        }
    }
    None
}

fn event_kind(e: &Event) -> Option<LineKind> {
    match e {
        Event::Released { .. } => Some(LineKind::Released),
        Event::Uncovered { .. } => Some(LineKind::Uncovered),
        Event::Assigned { cost: Some(_), .. } => Some(LineKind::Assigned),
        Event::Moved {
            imbalance: Some(_), ..
        } => Some(LineKind::Moved),
        _ => None,
    }
}

fn compare_log(alg: Algorithm, result: &Allocation, log: &ExpectedLog) -> Result<(), String> {
    let level = LEVELS
        .iter()
        .position(|l| l.eq_ignore_ascii_case(log.level.trim()))
        .ok_or_else(|| format!("expected_log: unknown level {:?}", log.level))?;
    let lcp2 = alg == Algorithm::Lcp2;
    // Which kinds are certain to be complete at this level: debug shows releases; warnings and
    // up show uncovered addresses; LCP2 prints its choices at info, but at debug its candidate
    // assignments look like choices, so assignments are compared at exactly info.
    let checked = [
        (LineKind::Released, level >= 4),
        (LineKind::Uncovered, level >= 1),
        (LineKind::Assigned, lcp2 && level == 3),
        (LineKind::Moved, lcp2 && level >= 3),
    ];
    for (kind, on) in checked {
        if !on {
            continue;
        }
        let want: Vec<&str> = log
            .lines
            .iter()
            .map(String::as_str)
            .filter(|l| classify(l) == Some(kind))
            .collect();
        let got: Vec<String> = result
            .events()
            .iter()
            .filter(|e| event_kind(e) == Some(kind))
            .map(|e| e.to_string())
            .collect();
        if want != got {
            let first = want
                .iter()
                .zip(&got)
                .position(|(w, g)| *w != g.as_str())
                .unwrap_or(want.len().min(got.len()));
            return Err(format!(
                "{kind:?} log lines differ at #{first}: expected {:?}, got {:?} ({} vs {} lines)",
                want.get(first),
                got.get(first),
                want.len(),
                got.len()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CASE: &str = r#"{
      "format": "ctdb-takeover-case/1", "name": "t", "algorithm": "lcp2",
      "steps": [
        {"nodes": [{"flags": []}, {"flags": ["UNHEALTHY"]}, {"flags_raw": "0"}],
         "input": {"mode": "shared", "ips": [
            {"addr": "10.0.0.1", "current_pnn": 0}, {"addr": "10.0.0.2", "current_pnn": 1},
            {"addr": "10.0.0.3", "current_pnn": 2}, {"addr": "10.0.0.4", "current_pnn": -1}]},
         "tunables": {"NoIPFailback": 0},
         "expected": [{"addr": "10.0.0.4", "pnn": 0}, {"addr": "10.0.0.3", "pnn": 2},
                      {"addr": "10.0.0.2", "pnn": 2}, {"addr": "10.0.0.1", "pnn": 0}]},
        {"chained_from_previous_step": true,
         "nodes": [{"flags": []}, {"flags": []}, {"flags": ["STOPPED"]}]}
      ]}"#;

    #[test]
    fn runs_and_renders() {
        let done = run_case(&parse(CASE).unwrap()).unwrap();
        let json = render_json(&done);
        let v: Value = serde_json::from_str(&json).unwrap();
        let first = &v["steps"][0]["allocation"];
        assert_eq!(first[0]["addr"], "10.0.0.4");
        assert_eq!(first[3]["pnn"], 0);
        // Step 2 starts from step 1's result; node 2 stops, node 1 is back.
        let second = &v["steps"][1]["allocation"];
        assert!(second.as_array().unwrap().iter().all(|a| a["pnn"] != 2));
        let text = render_text(&done);
        assert!(text.contains("step 2/2 (lcp2)"), "{text}");
        assert!(text.contains("UNHEALTHY"), "{text}");
    }

    #[test]
    fn check_reports_differences() {
        let dir = std::env::temp_dir().join(format!("pharos-ipalloc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.json");
        std::fs::write(&good, CASE).unwrap();
        let r = check(&good).unwrap();
        assert_eq!((r.steps, r.compared), (2, 1));
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        let bad = dir.join("bad.json");
        std::fs::write(
            &bad,
            CASE.replace(
                r#"{"addr": "10.0.0.3", "pnn": 2}"#,
                r#"{"addr": "10.0.0.3", "pnn": 1}"#,
            ),
        )
        .unwrap();
        let r = check(&bad).unwrap();
        assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
        assert!(
            r.failures[0].contains("10.0.0.3: pnn 2 (expected 1)"),
            "{:?}",
            r.failures
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn clear_errors() {
        let err = |text: &str| run_case(&parse(text).unwrap()).unwrap_err();
        let base = |node: &str, ip: &str| {
            format!(
                r#"{{"steps":[{{"nodes":[{node}],"input":{{"mode":"shared","ips":[{ip}]}}}}]}}"#
            )
        };
        let ok_ip = r#"{"addr":"10.0.0.1"}"#;
        assert!(err(&base(r#"{"flags":["BOGUS"]}"#, ok_ip)).contains("unknown flag"));
        assert!(err(&base(r#"{"flags":["STOPPED"],"flags_raw":2}"#, ok_ip)).contains("disagree"));
        assert!(err(&base(r#"{"runstate":"NAPPING"}"#, ok_ip)).contains("runstate"));
        assert!(err(&base("{}", r#"{"addr":"10.0.0.256"}"#)).contains("invalid IP address"));
        assert!(err(&base("{}", r#"{"addr":"10.0.0.1","known_on":[3]}"#)).contains("known_on"));
        assert!(err(&base("{}", r#"{"addr":"10.0.0.1","current_pnn":-2}"#)).contains("current_pnn"));
        assert!(err(&base("{}", &format!("{ok_ip},{ok_ip}"))).contains("listed twice"));
        assert!(parse("{").unwrap_err().contains("not a valid case file"));
        assert!(parse(r#"{"steps":[]}"#).unwrap_err().contains("no steps"));
        assert!(parse(r#"{"format":"x","steps":[{}]}"#)
            .unwrap_err()
            .contains("unsupported format"));
        assert!(err(r#"{"steps":[{}]}"#).contains("missing \"nodes\""));
        let t = r#"{"algorithm":"lcp2","steps":[{"nodes":[{}],"input":{"mode":"shared","ips":[]},"tunables":{"IPAllocAlgorithm":0}}]}"#;
        assert!(err(t).contains("IPAllocAlgorithm"));
        let t = r#"{"steps":[{"nodes":[{}],"input":{"mode":"shared","ips":[]},"tunables":{"NoSuchThing":1}}]}"#;
        assert!(err(t).contains("unknown tunable"));
    }

    #[test]
    fn stale_derived_block_is_only_a_warning() {
        let t = r#"{"steps":[{"nodes":[{},{"flags":["STOPPED"]}],
                   "input":{"mode":"shared","ips":[{"addr":"10.0.0.1","current_pnn":1}]},
                   "derived":{"ips":[{"addr":"10.0.0.1","current_pnn":1,"available_on":[0,1]}]}}]}"#;
        let done = run_case(&parse(t).unwrap()).unwrap();
        let step = &done.steps[0].1;
        assert!(
            step.warnings.iter().any(|w| w.contains("disagrees")),
            "{:?}",
            step.warnings
        );
        // input + nodes win: node 1 is stopped, so the address moves to node 0.
        assert_eq!(step.result.assignments()[0].pnn, Some(Pnn(0)));
        let bad = t.replace("\"available_on\":[0,1]", "\"available_on\":[7]");
        let done = run_case(&parse(&bad).unwrap()).unwrap();
        assert!(done.steps[0]
            .1
            .warnings
            .iter()
            .any(|w| w.contains("malformed")));
    }

    #[test]
    fn obsolete_tunable_is_accepted_with_a_warning() {
        let t = r#"{"steps":[{"nodes":[{}],"input":{"mode":"shared","ips":[{"addr":"10.0.0.1"}]},
                   "tunables":{"NoIPHostOnAllDisabled":1}}]}"#;
        let done = run_case(&parse(t).unwrap()).unwrap();
        let step = &done.steps[0].1;
        assert!(
            step.warnings.iter().any(|w| w.contains("obsolete")),
            "{:?}",
            step.warnings
        );
        assert_eq!(step.result.assignments()[0].pnn, Some(Pnn(0)));
    }

    #[test]
    fn log_line_classes() {
        assert_eq!(
            classify("Unassign IP: 10.0.0.1 from 2"),
            Some(LineKind::Released)
        );
        assert_eq!(
            classify(" 10.19.99.251 -> 2 [+9216]"),
            Some(LineKind::Assigned)
        );
        assert_eq!(
            classify("1 [-121363] -> 192.168.20.253 -> 0 [+0]"),
            Some(LineKind::Moved)
        );
        assert_eq!(classify(" 1 [-121363] -> 192.168.20.253 -> 0 [+0]"), None);
        assert_eq!(classify(" 0 [15129]"), None);
    }
}
