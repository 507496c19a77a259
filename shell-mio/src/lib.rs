//! pharos-mio: the production shell around `pharos-core`: the `pharosd` daemon (a single-threaded
//! mio event loop) and the `pharos` command-line tool.

pub mod ipalloc_case;
