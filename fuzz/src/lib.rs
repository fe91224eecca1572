//! Fuzz entry points shared by the libFuzzer binaries and the corpus replay test.
#![warn(missing_docs)]

/// Decode arbitrary bytes as bencode (strict and lenient); must never panic.
pub fn bencode_decode(_data: &[u8]) {}
/// Parse arbitrary bytes as a .torrent; must never panic.
pub fn metainfo_parse(_data: &[u8]) {}
/// Parse arbitrary bytes as a magnet link; must never panic.
pub fn magnet_parse(_data: &[u8]) {}
