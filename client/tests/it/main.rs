//! Integration tests of the `rivulet` binary.

mod backpressure;
mod cli;
mod datapath;
mod dht_cli;
mod discovery;
mod engine;
mod faults;
mod hostile_metadata;
mod io_errors;
mod lifecycle;
mod limits;
mod magnet;
mod session;
mod storage;
mod transfer;
mod transmission;
