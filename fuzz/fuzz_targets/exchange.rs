//! Fuzz target `exchange`: see `oxwsgi_fuzz::exchange`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxwsgi_fuzz::exchange(data));
