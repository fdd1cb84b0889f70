//! Fuzz target `inflate`: see `oxwsgi_fuzz::inflate`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxwsgi_fuzz::inflate(data));
