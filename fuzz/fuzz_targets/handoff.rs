//! Fuzz target `handoff`: see `oxwsgi_fuzz::handoff`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxwsgi_fuzz::handoff(data));
