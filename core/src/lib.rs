//! # pharos-core
//!
//! The sans-IO heart of pharos, a cluster high-availability manager in the spirit of Samba CTDB.
//! This crate never touches a socket, a clock, a file or a random source of its own: a shell (the
//! mio daemon, the tokio library, the simulator, a test) feeds it [`Event`]s with an explicit
//! [`Instant`], and drains what it wants done.
//!
//! ```
//! use pharos_core::{config::{NodesFile, Tunables}, Event, Instant, Node, NodeConfig, Pnn};
//! use core::time::Duration;
//!
//! let nodes = NodesFile::parse("127.0.0.1\n127.0.0.2\n").unwrap();
//! let config = NodeConfig::new(nodes, Pnn(0), 4379, Tunables::default()).unwrap();
//! let mut now = Instant::from_nanos(0);
//! let mut node = Node::new(config, 42, now);
//! // The node asks to connect to its peer.
//! let action = node.poll_action().unwrap();
//! assert!(matches!(action, pharos_core::Action::Connect { peer: Pnn(1), .. }));
//! // Time passes; the shell calls back at the deadline.
//! now = node.poll_timeout().unwrap().max(now + Duration::from_millis(1));
//! node.handle(now, Event::Timeout).unwrap();
//! ```
//!
//! Modules, one concern each: [`wire`] (frames), [`config`] (nodes file, public addresses,
//! tunables), [`node`] (the state machine: transport, health), [`control`] (the control-socket
//! codec), [`quorum`], [`ipalloc`] (CTDB's public-IP allocation algorithms).
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

pub mod config;
pub mod control;
pub mod drive;
pub mod error;
pub mod ipalloc;
pub mod node;
pub mod quorum;
pub mod rng;
pub mod time;
pub mod types;
pub mod wire;

pub use error::Error;
pub use node::{Action, Event, LockResult, Node, NodeConfig, Notification};

pub use time::Instant;
pub use types::{ClientId, ConnId, Generation, Link, NodeFlags, Pnn};

#[cfg(feature = "sim")]
pub mod sim;
