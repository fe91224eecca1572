//! libFuzzer target: see `rivulet_fuzz::hash_exchange`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rivulet_fuzz::hash_exchange(data);
});
