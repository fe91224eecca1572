//! libFuzzer target: see `rivulet_fuzz::pex`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rivulet_fuzz::pex(data);
});
