//! See `pharos_fuzz::stream_reassembly`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pharos_fuzz::stream_reassembly(data));
