//! Entry points for the fuzz targets (`fuzz/`, crate `rivulet-fuzz`) into parts of the
//! client that are not public API: thin wrappers and re-exports only.
//!
//! **Not a stable API.** Hidden from the docs; it changes whenever the fuzz targets
//! need it to. Do not use it outside `fuzz/`.

use std::net::SocketAddr;
use std::time::Instant;

use peer_wire::Message;

/// Messages a connection keeps for the torrent core during the metadata phase, at most.
pub const MAX_REPLAY: usize = crate::fetch::MAX_REPLAY;

/// Bytes of messages a connection keeps for the torrent core during the metadata
/// phase, at most.
pub const MAX_REPLAY_BYTES: usize = crate::fetch::MAX_REPLAY_BYTES;

/// The metadata phase's per-connection buffer of messages for the torrent core.
#[derive(Debug, Default)]
pub struct Replay(crate::fetch::Replay);

impl Replay {
    /// An empty buffer.
    pub fn new() -> Replay {
        Replay::default()
    }

    /// Keeps a message the peer sent, if the bounds allow.
    pub fn keep(&mut self, msg: &Message) {
        self.0.keep(msg);
    }

    /// Whether every message was kept.
    pub fn is_complete(&self) -> bool {
        self.0.is_complete()
    }

    /// Messages and encoded bytes held now.
    pub fn held(&self) -> (usize, usize) {
        self.0.held()
    }
}

/// (peer, torrent) pairs the LSD receiver remembers, at most (give or take one
/// datagram's info hashes).
pub const LSD_MAX_REPORTED: usize = crate::lsd::MAX_REPORTED;

/// The sans-IO receiving side of local service discovery (BEP 14).
#[derive(Debug)]
pub struct LsdReceiver(crate::lsd::State);

impl LsdReceiver {
    /// A receiver whose own announces carry `cookie`.
    pub fn new(cookie: &str, now: Instant) -> LsdReceiver {
        LsdReceiver(crate::lsd::State::new(cookie.to_string(), now))
    }

    /// A datagram from `from`: the (peer, info hash) pairs to report, for the torrents
    /// `known` says we have.
    pub fn receive(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
        known: impl Fn(&[u8; 20]) -> bool,
    ) -> Vec<(SocketAddr, [u8; 20])> {
        self.0.receive(now, from, datagram, known)
    }

    /// (peer, torrent) pairs remembered as reported.
    pub fn reported(&self) -> usize {
        self.0.reported_len()
    }
}
