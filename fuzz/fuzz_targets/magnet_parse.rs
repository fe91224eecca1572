//! libFuzzer target: see `rivulet_fuzz::magnet_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rivulet_fuzz::magnet_parse(data);
});
