//! Fuzz target `headers`: see `oxwsgi_fuzz::headers`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxwsgi_fuzz::headers(data));
