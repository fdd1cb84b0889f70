//! Fuzz target `environ`: see `oxwsgi_fuzz::environ`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxwsgi_fuzz::environ(data));
