//! Integration tests of the `rivulet` binary.

mod cli;
