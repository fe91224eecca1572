//! libFuzzer target: see `rivulet_fuzz::bencode_decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rivulet_fuzz::bencode_decode(data);
});
