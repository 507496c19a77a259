//! pharos-mio: the production shell around `pharos-core`: the `pharosd` daemon (a single-threaded
//! mio event loop) and the `pharos` command-line tool.

pub mod cli;
pub mod config;
pub mod control_socket;
pub mod daemon;
pub mod descriptors;
pub mod ipalloc_case;
pub mod line;
pub mod lock;
pub mod netio;
