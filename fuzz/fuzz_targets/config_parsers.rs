//! See `pharos_fuzz::config_parsers`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pharos_fuzz::config_parsers(data));
