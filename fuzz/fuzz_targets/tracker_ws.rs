//! libFuzzer target: see `rivulet_fuzz::tracker_ws`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rivulet_fuzz::tracker_ws(data);
});
