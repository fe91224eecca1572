//! Peer exchange (BEP 11, `ut_pex`), sans-IO: tells each peer which peers we are
//! connected to (what was added and dropped since the last message, at most once a
//! minute, at most 50 of each), and collects the peers others tell us about.
//!
//! Nothing happens on private torrents (BEP 27): [`Pex::advertise`] leaves `ut_pex`
//! out of our extension handshake, no message is sent, and received ones are ignored.
//! What peers send is bounded: messages from a peer that did not announce `ut_pex` in
//! its extension handshake are ignored, at most [`PexConfig::max_per_message`]
//! addresses of a message are looked at, at most one message per peer per half
//! interval is used, and the addresses already reported are remembered in a bounded set.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use peer_wire::{ExtensionError, ExtensionHandshake, Message, PexFlags, PexMessage, UT_PEX};

use crate::picker::PeerKey;

/// Our extended message id for `ut_pex` (what peers send it under).
pub const OUR_UT_PEX: u8 = 1;

/// PEX limits.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct PexConfig {
    /// Time between two messages to one peer (default 60 s, BEP 11's minimum).
    pub interval: Duration,
    /// The first message to a peer goes out this long after its handshake (default 2 s).
    pub first_delay: Duration,
    /// Added (and dropped) entries per message at most, both ways (default 50).
    pub max_per_message: usize,
    /// Distinct learned addresses remembered (default 1000).
    pub max_learned: usize,
}

impl Default for PexConfig {
    fn default() -> Self {
        PexConfig {
            interval: Duration::from_secs(60),
            first_delay: Duration::from_secs(2),
            max_per_message: 50,
            max_learned: 1000,
        }
    }
}

/// A connected peer as PEX reports it to others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PexEntry {
    /// The connection.
    pub key: PeerKey,
    /// Where others can reach it (the address we dialed, or its IP and announced
    /// listen port).
    pub addr: SocketAddr,
    /// Its flags (seed, reachable, ...).
    pub flags: PexFlags,
}

#[derive(Debug)]
struct PexPeer {
    ext_id: u8,
    next_send: Instant,
    sent: HashSet<SocketAddr>,
    last_used: Option<Instant>,
}

/// The PEX state of one torrent. See the [module docs](self).
#[derive(Debug)]
pub struct Pex {
    private: bool,
    config: PexConfig,
    peers: HashMap<PeerKey, PexPeer>,
    learned: HashSet<SocketAddr>,
    learned_order: VecDeque<SocketAddr>,
}

impl Pex {
    /// PEX for a torrent (`private`: BEP 27, PEX off).
    pub fn new(private: bool, config: PexConfig) -> Pex {
        Pex {
            private,
            config,
            peers: HashMap::new(),
            learned: HashSet::new(),
            learned_order: VecDeque::new(),
        }
    }

    /// Whether PEX is on (the torrent is not private).
    pub fn enabled(&self) -> bool {
        !self.private
    }

    /// Adds `ut_pex` to our extension handshake, unless the torrent is private.
    pub fn advertise(&self, hs: &mut ExtensionHandshake) {
        if !self.private {
            hs.m.insert(UT_PEX.into(), OUR_UT_PEX);
        }
    }

    /// A peer's extension handshake: if it speaks `ut_pex`, it gets messages.
    pub fn handle_handshake(&mut self, now: Instant, key: PeerKey, hs: &ExtensionHandshake) {
        match hs.id_of(UT_PEX) {
            Some(id) if !self.private => {
                let first = now + self.config.first_delay;
                let p = self.peers.entry(key).or_insert_with(|| PexPeer {
                    ext_id: id,
                    next_send: first,
                    sent: HashSet::new(),
                    last_used: None,
                });
                p.ext_id = id;
            }
            _ => {
                self.peers.remove(&key);
            }
        }
    }

    /// A `ut_pex` message (sent under [`OUR_UT_PEX`]) from a peer: returns the newly
    /// learned addresses worth dialing (never seen before, not port 0, not
    /// unspecified or multicast). A peer that did not announce `ut_pex` in its
    /// extension handshake is ignored (it would escape the flood limit). `Err` if the
    /// message is malformed.
    pub fn handle_message(
        &mut self,
        now: Instant,
        key: PeerKey,
        payload: &Bytes,
    ) -> Result<Vec<SocketAddr>, ExtensionError> {
        if self.private {
            return Ok(Vec::new());
        }
        let Some(p) = self.peers.get_mut(&key) else {
            tracing::debug!(
                peer = key,
                "ut_pex message from a peer without ut_pex: ignored"
            );
            return Ok(Vec::new());
        };
        let msg = PexMessage::parse(payload)?;
        // A peer that floods messages gets one used per half interval.
        let half = self.config.interval / 2;
        if p.last_used.is_some_and(|t| now < t + half) {
            tracing::debug!(peer = key, "ut_pex message too soon: ignored");
            return Ok(Vec::new());
        }
        p.last_used = Some(now);
        let mut fresh = Vec::new();
        for (addr, _flags) in msg.added.into_iter().take(self.config.max_per_message) {
            let ip = addr.ip();
            if addr.port() == 0 || ip.is_unspecified() || ip.is_multicast() {
                continue;
            }
            if self.remember(addr) {
                fresh.push(addr);
            }
        }
        Ok(fresh)
    }

    fn remember(&mut self, addr: SocketAddr) -> bool {
        if !self.learned.insert(addr) {
            return false;
        }
        self.learned_order.push_back(addr);
        while self.learned_order.len() > self.config.max_learned {
            if let Some(old) = self.learned_order.pop_front() {
                self.learned.remove(&old);
            }
        }
        true
    }

    /// The connection is gone.
    pub fn handle_disconnect(&mut self, key: PeerKey) {
        self.peers.remove(&key);
    }

    /// When [`poll_messages`](Self::poll_messages) has something due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers.values().map(|p| p.next_send).min()
    }

    /// The messages due at `now`, given the peers we are connected to: each peer hears
    /// what was added and dropped since its last message (itself left out); empty
    /// messages are not sent.
    pub fn poll_messages(
        &mut self,
        now: Instant,
        connected: &[PexEntry],
    ) -> Vec<(PeerKey, Message)> {
        let mut out = Vec::new();
        let max = self.config.max_per_message;
        for (&key, p) in self.peers.iter_mut() {
            if p.next_send > now {
                continue;
            }
            p.next_send = now + self.config.interval;
            let current: HashMap<SocketAddr, PexFlags> = connected
                .iter()
                .filter(|e| e.key != key)
                .map(|e| (e.addr, e.flags))
                .collect();
            let mut msg = PexMessage::default();
            for (addr, flags) in &current {
                if msg.added.len() >= max {
                    break;
                }
                if !p.sent.contains(addr) {
                    msg.added.push((*addr, *flags));
                }
            }
            for addr in &p.sent {
                if msg.dropped.len() >= max {
                    break;
                }
                if !current.contains_key(addr) {
                    msg.dropped.push(*addr);
                }
            }
            if msg.added.is_empty() && msg.dropped.is_empty() {
                continue;
            }
            for (a, _) in &msg.added {
                p.sent.insert(*a);
            }
            for a in &msg.dropped {
                p.sent.remove(a);
            }
            out.push((key, msg.to_message(p.ext_id)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hs_pex(id: u8) -> ExtensionHandshake {
        let mut h = ExtensionHandshake::new();
        h.m.insert(UT_PEX.into(), id);
        h
    }

    fn entry(key: PeerKey, port: u16) -> PexEntry {
        PexEntry {
            key,
            addr: SocketAddr::from(([10, 0, 0, 1], port)),
            flags: PexFlags(PexFlags::REACHABLE),
        }
    }

    fn decode(m: &Message) -> (u8, PexMessage) {
        let Message::Extended { id, payload } = m else {
            panic!("{m:?}")
        };
        (*id, PexMessage::parse(payload).unwrap())
    }

    #[test]
    fn sends_added_then_dropped_at_most_once_an_interval() {
        let mut pex = Pex::new(false, PexConfig::default());
        let t0 = Instant::now();
        pex.handle_handshake(t0, 1, &hs_pex(9));
        let peers = [entry(1, 1001), entry(2, 1002), entry(3, 1003)];
        // Not before the first delay.
        assert!(pex.poll_messages(t0, &peers).is_empty());
        let t1 = pex.poll_timeout().unwrap();
        let out = pex.poll_messages(t1, &peers);
        assert_eq!(out.len(), 1);
        let (id, msg) = decode(&out[0].1);
        assert_eq!((out[0].0, id), (1, 9));
        let mut added: Vec<u16> = msg.added.iter().map(|(a, _)| a.port()).collect();
        added.sort();
        assert_eq!(added, vec![1002, 1003], "the peer itself is left out");
        assert!(
            msg.added
                .iter()
                .all(|(_, f)| f.contains(PexFlags::REACHABLE))
        );
        // Peer 3 leaves, peer 4 comes: nothing until a minute has passed.
        let peers = [entry(1, 1001), entry(2, 1002), entry(4, 1004)];
        assert!(
            pex.poll_messages(t1 + Duration::from_secs(59), &peers)
                .is_empty()
        );
        let t2 = pex.poll_timeout().unwrap();
        assert_eq!(t2, t1 + Duration::from_secs(60));
        let out = pex.poll_messages(t2, &peers);
        let (_, msg) = decode(&out[0].1);
        assert_eq!(
            msg.added.iter().map(|(a, _)| a.port()).collect::<Vec<_>>(),
            vec![1004]
        );
        assert_eq!(
            msg.dropped.iter().map(|a| a.port()).collect::<Vec<_>>(),
            vec![1003]
        );
        // Nothing changed: nothing sent.
        assert!(
            pex.poll_messages(t2 + Duration::from_secs(60), &peers)
                .is_empty()
        );
    }

    #[test]
    fn messages_are_bounded() {
        let mut pex = Pex::new(false, PexConfig::default());
        let t0 = Instant::now();
        pex.handle_handshake(t0, 0, &hs_pex(1));
        let peers: Vec<PexEntry> = (1..=120).map(|k| entry(k, 2000 + k as u16)).collect();
        let t = t0 + Duration::from_secs(5);
        let out = pex.poll_messages(t, &peers);
        assert_eq!(decode(&out[0].1).1.added.len(), 50);
        let out = pex.poll_messages(t + Duration::from_secs(60), &peers);
        assert_eq!(decode(&out[0].1).1.added.len(), 50);
        let out = pex.poll_messages(t + Duration::from_secs(120), &peers);
        assert_eq!(decode(&out[0].1).1.added.len(), 20);
    }

    #[test]
    fn learns_new_peers_once_and_ignores_floods_and_junk() {
        let mut pex = Pex::new(false, PexConfig::default());
        let t0 = Instant::now();
        pex.handle_handshake(t0, 1, &hs_pex(1));
        let mut m = PexMessage::default();
        m.added
            .push(("10.0.0.2:6881".parse().unwrap(), PexFlags(0)));
        m.added.push(("0.0.0.0:6881".parse().unwrap(), PexFlags(0)));
        m.added.push(("10.0.0.3:0".parse().unwrap(), PexFlags(0)));
        m.added.push(("[::1]:7000".parse().unwrap(), PexFlags(0)));
        let payload = Bytes::from(m.to_bytes());
        let got = pex.handle_message(t0, 1, &payload).unwrap();
        assert_eq!(
            got,
            vec![
                "10.0.0.2:6881".parse::<SocketAddr>().unwrap(),
                "[::1]:7000".parse().unwrap()
            ]
        );
        // Too soon: ignored. Later: already known.
        assert!(pex.handle_message(t0, 1, &payload).unwrap().is_empty());
        let later = t0 + Duration::from_secs(31);
        assert!(pex.handle_message(later, 1, &payload).unwrap().is_empty());
        assert!(
            pex.handle_message(later, 1, &Bytes::from_static(b"d5:added5:abcdee"))
                .is_err()
        );
        // Only the first 50 of a long list are looked at.
        pex.handle_handshake(t0, 2, &hs_pex(1));
        let mut big = PexMessage::default();
        for i in 0..500u32 {
            big.added.push((
                SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 1)),
                PexFlags(0),
            ));
        }
        let got = pex
            .handle_message(t0, 2, &Bytes::from(big.to_bytes()))
            .unwrap();
        assert_eq!(got.len(), 50);
    }

    #[test]
    fn peers_without_ut_pex_are_not_heard() {
        let mut pex = Pex::new(false, PexConfig::default());
        let t0 = Instant::now();
        let message = |port: u16| {
            let mut m = PexMessage::default();
            m.added
                .push((SocketAddr::from(([10, 0, 0, 9], port)), PexFlags(0)));
            Bytes::from(m.to_bytes())
        };
        // Never announced ut_pex: every message (none is rate-limited) is ignored.
        for port in 1..=20 {
            assert!(
                pex.handle_message(t0, 1, &message(port))
                    .unwrap()
                    .is_empty()
            );
        }
        // Announced it, then a later handshake withdrew it.
        pex.handle_handshake(t0, 2, &hs_pex(3));
        assert_eq!(pex.handle_message(t0, 2, &message(100)).unwrap().len(), 1);
        pex.handle_handshake(t0, 2, &ExtensionHandshake::new());
        let later = t0 + Duration::from_secs(60);
        assert!(
            pex.handle_message(later, 2, &message(101))
                .unwrap()
                .is_empty()
        );
        assert!(pex.learned.len() == 1);
    }

    #[test]
    fn private_torrents_do_no_pex() {
        let mut pex = Pex::new(true, PexConfig::default());
        let mut hs = ExtensionHandshake::new();
        pex.advertise(&mut hs);
        assert!(hs.m.is_empty());
        let t0 = Instant::now();
        pex.handle_handshake(t0, 1, &hs_pex(1));
        assert!(pex.poll_timeout().is_none());
        assert!(
            pex.poll_messages(t0 + Duration::from_secs(100), &[entry(2, 1)])
                .is_empty()
        );
        let mut m = PexMessage::default();
        m.added
            .push(("10.0.0.2:6881".parse().unwrap(), PexFlags(0)));
        assert!(
            pex.handle_message(t0, 1, &Bytes::from(m.to_bytes()))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn the_learned_set_is_bounded() {
        let config = PexConfig {
            max_learned: 10,
            ..PexConfig::default()
        };
        let mut pex = Pex::new(false, config);
        let t0 = Instant::now();
        for i in 0..100u16 {
            pex.handle_handshake(t0, PeerKey::from(i), &hs_pex(1));
            let mut m = PexMessage::default();
            m.added
                .push((SocketAddr::from(([10, 0, 0, 1], i + 1)), PexFlags(0)));
            pex.handle_message(t0, PeerKey::from(i), &Bytes::from(m.to_bytes()))
                .unwrap();
        }
        assert_eq!(pex.learned.len(), 10);
        assert_eq!(pex.learned_order.len(), 10);
    }

    proptest! {
        #[test]
        fn hostile_payloads_never_panic_and_stay_bounded(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 1..20),
        ) {
            let mut pex = Pex::new(false, PexConfig { max_learned: 64, ..PexConfig::default() });
            let t0 = Instant::now();
            for (i, p) in payloads.into_iter().enumerate() {
                pex.handle_handshake(t0, i as PeerKey, &hs_pex(1));
                let got = pex.handle_message(t0, i as PeerKey, &Bytes::from(p));
                if let Ok(v) = got {
                    prop_assert!(v.len() <= 50);
                }
            }
            prop_assert!(pex.learned.len() <= 64);
        }
    }
}
