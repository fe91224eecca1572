//! Integration tests of the `rivulet` binary.

mod cli;
mod dht_cli;
mod engine;
mod faults;
mod magnet;
mod session;
mod storage;
mod transfer;
