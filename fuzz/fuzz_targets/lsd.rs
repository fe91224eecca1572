//! libFuzzer target: see `rivulet_fuzz::lsd`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rivulet_fuzz::lsd(data);
});
