//! libFuzzer target: see `rivulet_fuzz::metainfo_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rivulet_fuzz::metainfo_parse(data);
});
