//! libFuzzer target: see `rivulet_fuzz::resume_check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rivulet_fuzz::resume_check(data);
});
