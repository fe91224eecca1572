//! Integration tests for rivulet-handshake.

mod interop_libtorrent;
mod interop_transmission;
mod loopback;
mod mse_props;
mod peer_exchange;
