//! Integration tests of the `rivulet` binary.

mod cli;
mod engine;
mod transfer;
