//! The failover benchmark harness (`benches/failover/run.sh`, issue 13): pharos, CTDB and
//! keepalived in one network-namespace lab, probed and sampled identically.
//!
//! - [`probe`]: the client probe (a TCP connection to every public address every 10 ms, reading
//!   the banner that names the node that answered); binary `failover-probe`.
//! - [`sampler`]: which node namespace holds each address every 10 ms (netlink dumps, [`netlink`]);
//!   binary `failover-sampler`.
//! - `failover-banner`: the responder in each node namespace.
//! - [`driver`]: the lab, the systems ([`systems`]), the faults and the figures; binary
//!   `failover-bench`, which `run.sh` starts. [`analysis`] and [`report`] turn what was
//!   recorded into figures and tables.

#![warn(missing_docs)]

pub mod analysis;
pub mod child;
pub mod clock;
pub mod driver;
pub mod event;
pub mod netlink;
pub mod netns;
pub mod probe;
pub mod procs;
pub mod profile;
pub mod report;
pub mod sampler;
pub mod systems;
