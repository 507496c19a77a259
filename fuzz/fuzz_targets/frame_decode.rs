//! See `pharos_fuzz::frame_decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pharos_fuzz::frame_decode(data));
