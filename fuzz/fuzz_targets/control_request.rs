//! See `pharos_fuzz::control_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pharos_fuzz::control_request(data));
