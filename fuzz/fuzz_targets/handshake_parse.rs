//! libFuzzer target: see `rivulet_fuzz::handshake_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rivulet_fuzz::handshake_parse(data);
});
