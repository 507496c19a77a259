//! The bodies of the pharos fuzz targets.
//!
//! Each `fuzz_targets/NAME.rs` is a one-line wrapper around the function of the same name here,
//! so that a crashing input can also be replayed without libFuzzer (`cargo run --example
//! replay -- TARGET FILE`), and so that `examples/make_seeds.rs` builds seeds with the same
//! encoders the targets decode with.
//!
//! Every target panics (which libFuzzer reports as a crash) when a property fails.

mod node_inputs;
mod parsers;
mod reader;
mod wire;

pub use node_inputs::{node_inputs, LinkSel, Op as NodeOp, Setup as NodeSetup};
pub use parsers::{config_parsers, control_request};
pub use reader::Reader;
pub use wire::{encode_with_extra, frame_decode, stream_reassembly, BadTail, StreamSpec};
