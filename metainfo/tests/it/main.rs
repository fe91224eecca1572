//! Integration tests for rivulet-metainfo.

mod interop;
mod parse;
