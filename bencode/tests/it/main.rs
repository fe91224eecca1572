//! Integration tests for `rivulet-bencode`.

mod errors;
mod examples;
mod props;
mod raw;
#[cfg(feature = "serde")]
mod serde_tests;
