//! pharos-host: the std code every pharos shell shares (mio now, tokio later), with nothing in
//! it tied to an event loop: daemon settings (flags + `pharos.toml`), the cluster-lock providers
//! and the service that runs them off the event-loop thread, the control socket's JSON schema
//! (written by the daemons, read by the CLI), the `pharos` CLI with its text rendering, the
//! offline `ipalloc` tool, and the event-script runner, which runs CTDB's legacy event scripts
//! on its own thread.

pub mod cli;
pub mod client;
pub mod ipalloc_case;
pub mod line;
pub mod lock;
pub mod render;
pub mod schema;
pub mod scratch;
pub mod scripts;
pub mod settings;
