//! See `pharos_fuzz::node_inputs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pharos_fuzz::node_inputs(data));
