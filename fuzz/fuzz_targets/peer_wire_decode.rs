//! libFuzzer target: see `rivulet_fuzz::peer_wire_decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rivulet_fuzz::peer_wire_decode(data);
});
