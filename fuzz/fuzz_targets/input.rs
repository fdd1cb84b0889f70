//! Fuzz target `input`: see `oxwsgi_fuzz::input`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxwsgi_fuzz::input(data));
