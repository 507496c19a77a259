//! pharos-host: the std code every pharos shell shares (mio now, tokio later), with nothing in
//! it tied to an event loop: daemon settings (flags + `pharos.toml`), the cluster lock, the
//! `pharos` CLI and its text rendering, and the offline `ipalloc` tool.

pub mod cli;
pub mod ipalloc_case;
pub mod lock;
pub mod render;
pub mod settings;
