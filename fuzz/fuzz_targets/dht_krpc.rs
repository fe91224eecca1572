//! libFuzzer target: see `rivulet_fuzz::dht_krpc`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rivulet_fuzz::dht_krpc(data);
});
