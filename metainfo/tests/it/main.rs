//! Integration tests for rivulet-metainfo.

mod interop;
mod limits;
mod parse;
