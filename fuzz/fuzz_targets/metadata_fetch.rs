//! libFuzzer target: see `rivulet_fuzz::metadata_fetch`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rivulet_fuzz::metadata_fetch(data);
});
