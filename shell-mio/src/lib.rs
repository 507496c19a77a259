//! pharos-mio: the production shell around `pharos-core`: the `pharosd` daemon (a single-threaded
//! mio event loop). Settings, the cluster lock and the `pharos` CLI are in `pharos-host`.

pub mod addresses;
pub mod control_socket;
pub mod daemon;
pub mod descriptors;
pub mod events;
pub mod hosting;
pub mod netio;
