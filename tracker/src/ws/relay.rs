//! The sans-IO WebSocket tracker core: swarms of connected WebRTC peers and the
//! offer/answer relay between them.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::wire::{ClientMessage, ServerMessage, WsAnnounce, WsAnswer};
use crate::server::ServerConfig;
use crate::types::{Event, InfoHash, PeerId, ScrapeStats};

/// Identifies one WebSocket connection; the driver allocates them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Most swarms one connection may join.
pub const MAX_SWARMS_PER_CONNECTION: usize = 256;

#[derive(Debug)]
struct WsPeer {
    id: PeerId,
    conn: ConnId,
    last_seen: Instant,
    seeder: bool,
}

#[derive(Debug, Default)]
struct WsSwarm {
    peers: Vec<WsPeer>,
    index: HashMap<PeerId, u32>,
    seeders: u32,
    downloaded: u32,
}

impl WsSwarm {
    fn remove_at(&mut self, i: usize) -> WsPeer {
        let p = self.peers.swap_remove(i);
        self.index.remove(&p.id);
        if p.seeder {
            self.seeders -= 1;
        }
        if let Some(moved) = self.peers.get(i) {
            self.index.insert(moved.id, i as u32);
        }
        p
    }
    fn stats(&self) -> ScrapeStats {
        ScrapeStats {
            complete: self.seeders,
            downloaded: self.downloaded,
            incomplete: self.peers.len() as u32 - self.seeders,
        }
    }
}

#[derive(Debug, Default)]
struct Conn {
    peer_id: Option<PeerId>,
    swarms: Vec<InfoHash>,
}

/// The WebSocket tracker core. Feed it each decoded client message with
/// [`handle_message`](Self::handle_message) and closed connections with
/// [`handle_disconnect`](Self::handle_disconnect); after each call drain
/// [`poll_transmit`](Self::poll_transmit) and send every message to its connection. Call
/// [`expire`](Self::expire) now and then.
///
/// A peer is tied to the connection it announced on: answers are accepted only from the
/// connection that announced the answering peer id, offers are forwarded one per other peer of
/// the swarm (seeders get no offers from seeders), and a peer leaves its swarms when its
/// connection closes. Bounded by the [`ServerConfig`] limits (swarms, peers per swarm) and
/// [`MAX_SWARMS_PER_CONNECTION`].
#[derive(Debug)]
pub struct WsRelay {
    config: ServerConfig,
    swarms: HashMap<InfoHash, WsSwarm>,
    conns: HashMap<ConnId, Conn>,
    rng: StdRng,
    out: VecDeque<(ConnId, ServerMessage)>,
}

impl WsRelay {
    /// A relay with OS randomness.
    pub fn new(config: ServerConfig) -> Self {
        Self::with_rng(config, StdRng::from_os_rng())
    }

    /// A relay with an injected random source.
    pub fn with_rng(config: ServerConfig, rng: StdRng) -> Self {
        WsRelay {
            config,
            swarms: HashMap::new(),
            conns: HashMap::new(),
            rng,
            out: VecDeque::new(),
        }
    }

    /// Figures for one swarm.
    pub fn stats(&self, info_hash: &InfoHash) -> ScrapeStats {
        self.swarms
            .get(info_hash)
            .map(WsSwarm::stats)
            .unwrap_or_default()
    }

    /// Peers connected over all swarms.
    pub fn peer_count(&self) -> usize {
        self.swarms.values().map(|s| s.peers.len()).sum()
    }

    /// The next message to send, and to which connection.
    pub fn poll_transmit(&mut self) -> Option<(ConnId, ServerMessage)> {
        self.out.pop_front()
    }

    fn fail(&mut self, conn: ConnId, info_hash: Option<InfoHash>, reason: impl Into<String>) {
        self.out.push_back((
            conn,
            ServerMessage::Failure {
                info_hash,
                reason: reason.into(),
            },
        ));
    }

    /// Process one message from `conn`.
    pub fn handle_message(&mut self, now: Instant, conn: ConnId, msg: ClientMessage) {
        match msg {
            ClientMessage::Announce(a) => self.announce(now, conn, a),
            ClientMessage::Answer(a) => self.answer(conn, a),
            ClientMessage::Scrape(hashes) => {
                let files = hashes.iter().map(|h| (*h, self.stats(h))).collect();
                self.out.push_back((conn, ServerMessage::Scrape { files }));
            }
        }
    }

    fn leave(&mut self, conn: ConnId, info_hash: InfoHash, peer_id: PeerId) {
        if let Some(s) = self.swarms.get_mut(&info_hash) {
            if let Some(&i) = s.index.get(&peer_id) {
                if s.peers[i as usize].conn == conn {
                    s.remove_at(i as usize);
                }
            }
            if s.peers.is_empty() {
                self.swarms.remove(&info_hash);
            }
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.swarms.retain(|h| *h != info_hash);
        }
    }

    fn announce(&mut self, now: Instant, conn: ConnId, a: WsAnnounce) {
        let ih = a.info_hash;
        if self
            .config
            .allow_list
            .as_ref()
            .is_some_and(|l| !l.contains(&ih))
        {
            return self.fail(
                conn,
                Some(ih),
                format!("info hash {ih} is not tracked here"),
            );
        }
        let c = self.conns.entry(conn).or_default();
        match c.peer_id {
            Some(p) if p != a.peer_id => {
                return self.fail(conn, Some(ih), "peer id changed on this connection");
            }
            _ => c.peer_id = Some(a.peer_id),
        }
        let interval = self.config.interval.as_secs().min(u32::MAX as u64) as u32;
        if a.event == Event::Stopped {
            self.leave(conn, ih, a.peer_id);
            let st = self.stats(&ih);
            self.out.push_back((
                conn,
                ServerMessage::AnnounceReply {
                    info_hash: ih,
                    complete: st.complete,
                    incomplete: st.incomplete,
                    interval,
                },
            ));
            return;
        }
        if !self.swarms.contains_key(&ih) && self.swarms.len() >= self.config.max_swarms {
            return self.fail(conn, Some(ih), "tracker is full");
        }
        let joined = c.swarms.contains(&ih);
        if !joined && c.swarms.len() >= MAX_SWARMS_PER_CONNECTION {
            return self.fail(conn, Some(ih), "too many swarms on one connection");
        }
        let swarm = self.swarms.entry(ih).or_default();
        let seeder = a.left == Some(0);
        let me = match swarm.index.get(&a.peer_id) {
            Some(&i) => {
                let p = &mut swarm.peers[i as usize];
                // The same peer id from a new connection: the client reconnected.
                p.conn = conn;
                p.last_seen = now;
                if p.seeder != seeder {
                    if seeder {
                        swarm.seeders += 1;
                        if a.event == Event::Completed {
                            swarm.downloaded = swarm.downloaded.saturating_add(1);
                        }
                    } else {
                        swarm.seeders -= 1;
                    }
                    p.seeder = seeder;
                }
                Some(i as usize)
            }
            None if swarm.peers.len() < self.config.max_peers_per_swarm => {
                let i = swarm.peers.len();
                swarm.peers.push(WsPeer {
                    id: a.peer_id,
                    conn,
                    last_seen: now,
                    seeder,
                });
                swarm.index.insert(a.peer_id, i as u32);
                if seeder {
                    swarm.seeders += 1;
                }
                Some(i)
            }
            None => None,
        };
        if me.is_some() && !joined {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.swarms.push(ih);
            }
        }
        let st = swarm.stats();
        self.out.push_back((
            conn,
            ServerMessage::AnnounceReply {
                info_hash: ih,
                complete: st.complete,
                incomplete: st.incomplete,
                interval,
            },
        ));
        // Forward offer i to the i-th chosen other peer.
        let n = swarm.peers.len();
        if n == 0 || a.offers.is_empty() {
            return;
        }
        let start = self.rng.random_range(0..n);
        let mut offers = a.offers.into_iter();
        for k in 0..n {
            let i = (start + k) % n;
            let p = &swarm.peers[i];
            if Some(i) == me || p.conn == conn || (seeder && p.seeder) {
                continue;
            }
            let Some(o) = offers.next() else { break };
            self.out.push_back((
                p.conn,
                ServerMessage::Offer {
                    info_hash: ih,
                    peer_id: a.peer_id,
                    offer_id: o.offer_id,
                    offer: o.offer,
                },
            ));
        }
    }

    fn answer(&mut self, conn: ConnId, a: WsAnswer) {
        let ih = a.info_hash;
        if self.conns.get(&conn).and_then(|c| c.peer_id) != Some(a.peer_id) {
            return self.fail(
                conn,
                Some(ih),
                "answer from a peer that has not announced here",
            );
        }
        let target = self.swarms.get(&ih).and_then(|s| {
            s.index
                .get(&a.to_peer_id)
                .map(|&i| s.peers[i as usize].conn)
        });
        // If the offerer left there is nothing to do (the JS tracker is silent too).
        if let Some(to) = target {
            self.out.push_back((
                to,
                ServerMessage::Answer {
                    info_hash: ih,
                    peer_id: a.peer_id,
                    offer_id: a.offer_id,
                    answer: a.answer,
                },
            ));
        }
    }

    /// Drop every peer of a closed connection.
    pub fn handle_disconnect(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if let Some(peer_id) = c.peer_id {
            for ih in c.swarms {
                if let Some(s) = self.swarms.get_mut(&ih) {
                    if let Some(&i) = s.index.get(&peer_id) {
                        if s.peers[i as usize].conn == conn {
                            s.remove_at(i as usize);
                        }
                    }
                    if s.peers.is_empty() {
                        self.swarms.remove(&ih);
                    }
                }
            }
        }
    }

    /// Drop peers silent for longer than [`ServerConfig::peer_timeout`].
    pub fn expire(&mut self, now: Instant) -> usize {
        let timeout = self.config.peer_timeout;
        let mut dropped = Vec::new();
        self.swarms.retain(|ih, s| {
            let mut i = 0;
            while i < s.peers.len() {
                if now.saturating_duration_since(s.peers[i].last_seen) > timeout {
                    let p = s.remove_at(i);
                    dropped.push((p.conn, *ih));
                } else {
                    i += 1;
                }
            }
            !s.peers.is_empty()
        });
        for (conn, ih) in &dropped {
            if let Some(c) = self.conns.get_mut(conn) {
                c.swarms.retain(|h| h != ih);
            }
        }
        dropped.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::wire::{Offer, Sdp};

    fn sdp(kind: &str) -> Sdp {
        Sdp {
            kind: kind.into(),
            sdp: format!("{kind}-sdp"),
        }
    }

    fn announce(peer: u8, offers: usize) -> ClientMessage {
        ClientMessage::Announce(WsAnnounce {
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([peer; 20]),
            uploaded: 0,
            downloaded: 0,
            left: Some(10),
            event: Event::Started,
            numwant: offers as u32,
            offers: (0..offers)
                .map(|i| Offer {
                    offer_id: [i as u8; 20],
                    offer: sdp("offer"),
                })
                .collect(),
        })
    }

    #[test]
    fn offers_and_answers_are_relayed() {
        let t = Instant::now();
        let mut r = WsRelay::with_rng(ServerConfig::default(), StdRng::seed_from_u64(1));
        let (a, b) = (ConnId(1), ConnId(2));
        r.handle_message(t, b, announce(2, 0));
        assert!(matches!(
            r.poll_transmit(),
            Some((c, ServerMessage::AnnounceReply { incomplete: 1, .. })) if c == b
        ));
        r.handle_message(t, a, announce(1, 3));
        assert!(matches!(
            r.poll_transmit(),
            Some((c, ServerMessage::AnnounceReply { incomplete: 2, .. })) if c == a
        ));
        // One offer reaches the one other peer.
        let Some((
            to,
            ServerMessage::Offer {
                peer_id, offer_id, ..
            },
        )) = r.poll_transmit()
        else {
            panic!()
        };
        assert_eq!((to, peer_id), (b, PeerId([1; 20])));
        assert!(r.poll_transmit().is_none());
        // b answers; a gets it.
        r.handle_message(
            t,
            b,
            ClientMessage::Answer(WsAnswer {
                info_hash: InfoHash([1; 20]),
                peer_id: PeerId([2; 20]),
                to_peer_id: PeerId([1; 20]),
                offer_id,
                answer: sdp("answer"),
            }),
        );
        assert!(matches!(
            r.poll_transmit(),
            Some((c, ServerMessage::Answer { peer_id, .. })) if c == a && peer_id == PeerId([2; 20])
        ));
        // A forged answer from a connection that is not that peer is refused.
        r.handle_message(
            t,
            ConnId(9),
            ClientMessage::Answer(WsAnswer {
                info_hash: InfoHash([1; 20]),
                peer_id: PeerId([2; 20]),
                to_peer_id: PeerId([1; 20]),
                offer_id,
                answer: sdp("answer"),
            }),
        );
        assert!(matches!(
            r.poll_transmit(),
            Some((c, ServerMessage::Failure { .. })) if c == ConnId(9)
        ));
        r.handle_disconnect(b);
        assert_eq!(r.peer_count(), 1);
        r.handle_disconnect(a);
        assert_eq!(r.peer_count(), 0);
    }
}
