//! Integration tests for rivulet-dht.

mod codec;
mod interop_js;
mod interop_libtorrent;
mod loopback;
mod sim;
