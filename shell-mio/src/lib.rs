//! pharos-mio: the production shell around `pharos-core`: the `pharosd` daemon (a single-threaded
//! mio event loop) and the `pharos` command-line tool.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod hosting;
pub mod ipalloc_case;
pub mod lock;
pub mod netio;
