//! libFuzzer target: see `rivulet_fuzz::tracker_udp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rivulet_fuzz::tracker_udp(data);
});
