//! Integration tests: rivulet's clients against rivulet's server on loopback, and interop with
//! npm `bittorrent-tracker`.

mod interop;
mod loopback;
#[cfg(feature = "tls")]
mod tls;
mod ws;
