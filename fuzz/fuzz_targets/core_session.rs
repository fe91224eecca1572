//! libFuzzer target: see `rivulet_fuzz::core_session`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rivulet_fuzz::core_session(data);
});
