//! The standard BitTorrent handshake as a sans-IO, consuming state machine.
//!
//! ```text
//!  Outgoing::new ──poll_transmit: our 68 bytes──▶ handle_input(68 bytes) ──▶ Established
//!
//!  Incoming::new ──handle_input(48 bytes: protocol, reserved, info hash)
//!                   ├─ info hash not served ──▶ Err(UnknownInfoHash)
//!                   └─ poll_transmit: our 68 bytes ──▶ handle_input(20-byte peer id) ──▶ Established
//! ```
//!
//! **Drain rule:** after every `handle_input`, call `poll_transmit` and send what it
//! returns before feeding more input. `handle_input` may consume fewer bytes than it is
//! given (it stops at each decision point and at the end of the handshake); feed the
//! rest again, or — once established — hand it to the peer-wire decoder.

use metainfo::InfoHashV1;

use crate::error::HandshakeError;
use crate::wire::{HANDSHAKE_LEN, HEADER_LEN, Handshake, Header, PeerId, Reserved, check_protocol};

/// What this node says about itself in handshakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Our peer id.
    pub peer_id: PeerId,
    /// The extension bits we set.
    pub reserved: Reserved,
}

impl Config {
    /// A config with [`Reserved::STANDARD`] bits.
    pub fn new(peer_id: PeerId) -> Self {
        Config {
            peer_id,
            reserved: Reserved::STANDARD,
        }
    }
}

/// A completed handshake: who the peer is and what it supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Established {
    /// The peer's id.
    pub peer_id: PeerId,
    /// The peer's extension bits (see [`Reserved::intersection`] for what both support).
    pub reserved: Reserved,
    /// The torrent of this connection.
    pub info_hash: InfoHashV1,
}

/// The result of feeding input to a handshake state.
#[derive(Debug)]
pub enum Step<S> {
    /// The handshake goes on in this state.
    NeedMore(S),
    /// The handshake is complete.
    Done(Established),
}

/// Accumulates up to 68 bytes of the peer's handshake.
#[derive(Debug, Clone)]
struct RecvBuf {
    buf: [u8; HANDSHAKE_LEN],
    have: usize,
}

impl RecvBuf {
    fn new() -> Self {
        RecvBuf {
            buf: [0; HANDSHAKE_LEN],
            have: 0,
        }
    }
    /// Copies up to `upto - have` bytes; returns how many were taken.
    fn fill(&mut self, data: &[u8], upto: usize) -> usize {
        let n = upto.saturating_sub(self.have).min(data.len());
        self.buf[self.have..self.have + n].copy_from_slice(&data[..n]);
        self.have += n;
        n
    }
    fn filled(&self) -> &[u8] {
        &self.buf[..self.have]
    }
}

/// Our side of a connection we opened.
///
/// ```
/// use metainfo::InfoHashV1;
/// use rivulet_handshake::{Config, Handshake, Outgoing, PeerId, Reserved, Step};
///
/// let ih = InfoHashV1([7; 20]);
/// let mut out = Outgoing::new(&Config::new(PeerId([b'a'; 20])), ih);
/// let sent = out.poll_transmit().unwrap();
/// assert_eq!(&sent[28..48], &ih.0);
///
/// let reply = Handshake { reserved: Reserved::NONE, info_hash: ih, peer_id: PeerId([b'b'; 20]) };
/// let mut wire = reply.to_bytes().to_vec();
/// wire.extend_from_slice(&[0, 0, 0, 1, 2]); // the first peer-wire message follows
/// let (step, used) = out.handle_input(&wire).unwrap();
/// assert_eq!(used, 68);
/// let Step::Done(est) = step else { panic!() };
/// assert_eq!(est.peer_id, PeerId([b'b'; 20]));
/// ```
#[derive(Debug, Clone)]
pub struct Outgoing {
    config: Config,
    info_hash: InfoHashV1,
    expected_peer_id: Option<PeerId>,
    transmit: Option<[u8; HANDSHAKE_LEN]>,
    recv: RecvBuf,
}

impl Outgoing {
    /// Starts a handshake for `info_hash` (a v1 hash, or a v2 hash truncated).
    pub fn new(config: &Config, info_hash: InfoHashV1) -> Self {
        let ours = Handshake {
            reserved: config.reserved,
            info_hash,
            peer_id: config.peer_id,
        };
        Outgoing {
            config: *config,
            info_hash,
            expected_peer_id: None,
            transmit: Some(ours.to_bytes()),
            recv: RecvBuf::new(),
        }
    }

    /// Also require the peer to have this id (as a tracker announced it).
    pub fn expect_peer_id(mut self, id: PeerId) -> Self {
        self.expected_peer_id = Some(id);
        self
    }

    /// Bytes to send: our handshake, once.
    pub fn poll_transmit(&mut self) -> Option<[u8; HANDSHAKE_LEN]> {
        self.transmit.take()
    }

    /// Feeds bytes received from the peer; returns the next step and how many bytes of
    /// `data` were consumed (never past the end of the handshake).
    pub fn handle_input(mut self, data: &[u8]) -> Result<(Step<Self>, usize), HandshakeError> {
        let used = self.recv.fill(data, HANDSHAKE_LEN);
        check_protocol(self.recv.filled())?;
        if let Some(h) = Header::parse(self.recv.filled())? {
            if h.info_hash != self.info_hash {
                return Err(HandshakeError::InfoHashMismatch {
                    expected: self.info_hash,
                    found: h.info_hash,
                });
            }
        }
        let Some(hs) = Handshake::parse(self.recv.filled())? else {
            return Ok((Step::NeedMore(self), used));
        };
        check_peer_id(&self.config, self.expected_peer_id, hs.peer_id)?;
        Ok((
            Step::Done(Established {
                peer_id: hs.peer_id,
                reserved: hs.reserved,
                info_hash: hs.info_hash,
            }),
            used,
        ))
    }
}

fn check_peer_id(
    config: &Config,
    expected: Option<PeerId>,
    found: PeerId,
) -> Result<(), HandshakeError> {
    if found == config.peer_id {
        return Err(HandshakeError::SelfConnection(found));
    }
    if let Some(expected) = expected {
        if expected != found {
            return Err(HandshakeError::PeerIdMismatch { expected, found });
        }
    }
    Ok(())
}

/// Our side of a connection a peer opened.
///
/// ```
/// use metainfo::InfoHashV1;
/// use rivulet_handshake::{Config, Handshake, HandshakeError, Incoming, PeerId, Reserved, Step};
///
/// let ih = InfoHashV1([7; 20]);
/// let served = |h: &InfoHashV1| *h == ih;
/// let theirs = Handshake { reserved: Reserved::STANDARD, info_hash: ih, peer_id: PeerId([b'b'; 20]) }.to_bytes();
///
/// let inc = Incoming::new(&Config::new(PeerId([b'a'; 20])));
/// // It stops after the info hash, to let us answer before the peer id arrives.
/// let (step, used) = inc.handle_input(&theirs, served).unwrap();
/// assert_eq!(used, 48);
/// let Step::NeedMore(mut inc) = step else { panic!() };
/// assert!(inc.poll_transmit().is_some());
/// let (step, _) = inc.handle_input(&theirs[48..], served).unwrap();
/// assert!(matches!(step, Step::Done(e) if e.info_hash == ih));
///
/// // An unknown torrent is refused.
/// let other = Incoming::new(&Config::new(PeerId([b'a'; 20])));
/// assert_eq!(other.handle_input(&theirs, |_| false).unwrap_err(), HandshakeError::UnknownInfoHash(ih));
/// ```
#[derive(Debug, Clone)]
pub struct Incoming {
    config: Config,
    header: Option<Header>,
    transmit: Option<[u8; HANDSHAKE_LEN]>,
    recv: RecvBuf,
}

impl Incoming {
    /// Waits for a peer's handshake.
    pub fn new(config: &Config) -> Self {
        Incoming {
            config: *config,
            header: None,
            transmit: None,
            recv: RecvBuf::new(),
        }
    }

    /// The info hash the peer asked for, once known (and accepted).
    pub fn info_hash(&self) -> Option<InfoHashV1> {
        self.header.map(|h| h.info_hash)
    }

    /// Bytes to send: our handshake, once the peer's info hash has been accepted.
    pub fn poll_transmit(&mut self) -> Option<[u8; HANDSHAKE_LEN]> {
        self.transmit.take()
    }

    /// Feeds bytes received from the peer. `served` says whether this node serves an
    /// info hash. Consumes at most up to the info hash in one call, so that the reply
    /// can be sent before the peer id is read (see the module's drain rule).
    pub fn handle_input(
        mut self,
        data: &[u8],
        served: impl Fn(&InfoHashV1) -> bool,
    ) -> Result<(Step<Self>, usize), HandshakeError> {
        if self.header.is_none() {
            let used = self.recv.fill(data, HEADER_LEN);
            let Some(h) = Header::parse(self.recv.filled())? else {
                return Ok((Step::NeedMore(self), used));
            };
            if !served(&h.info_hash) {
                return Err(HandshakeError::UnknownInfoHash(h.info_hash));
            }
            self.header = Some(h);
            self.transmit = Some(
                Handshake {
                    reserved: self.config.reserved,
                    info_hash: h.info_hash,
                    peer_id: self.config.peer_id,
                }
                .to_bytes(),
            );
            return Ok((Step::NeedMore(self), used));
        }
        let used = self.recv.fill(data, HANDSHAKE_LEN);
        let Some(hs) = Handshake::parse(self.recv.filled())? else {
            return Ok((Step::NeedMore(self), used));
        };
        check_peer_id(&self.config, None, hs.peer_id)?;
        Ok((
            Step::Done(Established {
                peer_id: hs.peer_id,
                reserved: hs.reserved,
                info_hash: hs.info_hash,
            }),
            used,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(b: u8) -> Config {
        Config::new(PeerId([b; 20]))
    }

    /// Runs both sides in memory, delivering `chunk` bytes at a time.
    fn pair(
        chunk: usize,
        served: InfoHashV1,
        asked: InfoHashV1,
    ) -> Result<(Established, Established), HandshakeError> {
        let mut out = Outgoing::new(&cfg(1), asked);
        let inc = Incoming::new(&cfg(2));
        let mut to_inc: Vec<u8> = out.poll_transmit().unwrap().to_vec();
        let mut to_out: Vec<u8> = Vec::new();
        let (mut out_done, mut inc_done) = (None, None);
        let (mut out_s, mut inc_s) = (Some(out), Some(inc));
        for _ in 0..1000 {
            if let Some(i) = inc_s.take() {
                let n = chunk.min(to_inc.len());
                let (step, used) = i.handle_input(&to_inc[..n], |h| *h == served)?;
                to_inc.drain(..used);
                match step {
                    Step::NeedMore(mut i) => {
                        if let Some(t) = i.poll_transmit() {
                            to_out.extend_from_slice(&t);
                        }
                        inc_s = Some(i);
                    }
                    Step::Done(e) => inc_done = Some(e),
                }
            }
            if let Some(o) = out_s.take() {
                let n = chunk.min(to_out.len());
                let (step, used) = o.handle_input(&to_out[..n])?;
                to_out.drain(..used);
                match step {
                    Step::NeedMore(o) => out_s = Some(o),
                    Step::Done(e) => out_done = Some(e),
                }
            }
            if let (Some(a), Some(b)) = (out_done, inc_done) {
                return Ok((a, b));
            }
        }
        panic!("handshake did not finish");
    }

    #[test]
    fn in_memory_pair_any_chunking() {
        let ih = InfoHashV1([9; 20]);
        for chunk in [1, 3, 7, 20, 48, 68, 100] {
            let (o, i) = pair(chunk, ih, ih).unwrap();
            assert_eq!(o.peer_id, PeerId([2; 20]));
            assert_eq!(i.peer_id, PeerId([1; 20]));
            assert_eq!(o.info_hash, ih);
            assert_eq!(i.reserved, Reserved::STANDARD);
        }
    }

    #[test]
    fn unknown_info_hash() {
        assert_eq!(
            pair(68, InfoHashV1([1; 20]), InfoHashV1([2; 20])).unwrap_err(),
            HandshakeError::UnknownInfoHash(InfoHashV1([2; 20]))
        );
    }

    #[test]
    fn mismatch_and_self_connection() {
        let ih = InfoHashV1([9; 20]);
        let reply = |ih, id| {
            Handshake {
                reserved: Reserved::NONE,
                info_hash: ih,
                peer_id: id,
            }
            .to_bytes()
        };
        let out = Outgoing::new(&cfg(1), ih);
        assert_eq!(
            out.handle_input(&reply(InfoHashV1([8; 20]), PeerId([2; 20]))[..50])
                .unwrap_err(),
            HandshakeError::InfoHashMismatch {
                expected: ih,
                found: InfoHashV1([8; 20])
            }
        );
        let out = Outgoing::new(&cfg(1), ih);
        assert_eq!(
            out.handle_input(&reply(ih, PeerId([1; 20]))).unwrap_err(),
            HandshakeError::SelfConnection(PeerId([1; 20]))
        );
        let out = Outgoing::new(&cfg(1), ih).expect_peer_id(PeerId([3; 20]));
        assert!(matches!(
            out.handle_input(&reply(ih, PeerId([2; 20]))),
            Err(HandshakeError::PeerIdMismatch { .. })
        ));
        let inc = Incoming::new(&cfg(1));
        let (Step::NeedMore(inc), 48) = inc
            .handle_input(&reply(ih, PeerId([1; 20])), |_| true)
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(
            inc.handle_input(&reply(ih, PeerId([1; 20]))[48..], |_| true)
                .unwrap_err(),
            HandshakeError::SelfConnection(PeerId([1; 20]))
        );
    }
}
