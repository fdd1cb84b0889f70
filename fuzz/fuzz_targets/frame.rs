//! Fuzz target `frame`: see `oxwsgi_fuzz::frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxwsgi_fuzz::frame(data));
