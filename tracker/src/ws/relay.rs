//! The sans-IO WebSocket tracker front end: WebRTC peers in the shared [`Swarms`] and the
//! offer/answer relay between them.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use super::wire::{ClientMessage, ServerMessage, WsAnnounce, WsAnswer};
use crate::server::{AnnounceRefused, PeerAnnounce, Reach, Swarms};
use crate::types::{Event, InfoHash, PeerId};

pub use crate::server::ConnId;

/// Most swarms one connection may join.
pub const MAX_SWARMS_PER_CONNECTION: usize = 256;

/// Most messages queued by [`WsRelay`] before the oldest are dropped (the driver drains the
/// queue after every call, so this only bounds a caller that does not).
pub const MAX_QUEUED: usize = 4096;

#[derive(Debug, Default)]
struct Conn {
    peer_id: Option<PeerId>,
    swarms: Vec<InfoHash>,
}

/// The WebSocket tracker front end. Its peers live in the [`Swarms`] shared with the UDP and
/// HTTP front ends (reachable as [`Reach::Ws`]), so scrape figures and `complete`/
/// `incomplete` count every peer, and the same caps, allow-list and expiry apply.
///
/// Feed it each decoded client message with [`handle_message`](Self::handle_message) and
/// closed connections with [`handle_disconnect`](Self::handle_disconnect); after each call
/// drain [`poll_transmit`](Self::poll_transmit) and send every message to its connection.
/// After [`Swarms::expire`], call [`prune`](Self::prune).
///
/// A peer is tied to the connection it announced on: answers are accepted only from the
/// connection that announced the answering peer id; offer `i` goes to the `i`-th picked peer
/// on another connection (at most `numwant`, capped at
/// [`ServerConfig::max_numwant`](crate::server::ServerConfig::max_numwant); seeders get no
/// offers from seeders); a peer loses its WebSocket reachability when its connection closes.
/// Per connection: one peer id, at most [`MAX_SWARMS_PER_CONNECTION`] swarms.
#[derive(Debug, Default)]
pub struct WsRelay {
    conns: HashMap<ConnId, Conn>,
    out: VecDeque<(ConnId, ServerMessage)>,
}

impl WsRelay {
    /// A relay with no connections.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connections that have announced.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// The next message to send, and to which connection.
    pub fn poll_transmit(&mut self) -> Option<(ConnId, ServerMessage)> {
        self.out.pop_front()
    }

    fn send(&mut self, conn: ConnId, msg: ServerMessage) {
        if self.out.len() >= MAX_QUEUED {
            self.out.pop_front();
        }
        self.out.push_back((conn, msg));
    }

    fn fail(&mut self, conn: ConnId, info_hash: Option<InfoHash>, reason: impl Into<String>) {
        self.send(
            conn,
            ServerMessage::Failure {
                info_hash,
                reason: reason.into(),
            },
        );
    }

    /// Process one message from `conn`.
    pub fn handle_message(
        &mut self,
        swarms: &mut Swarms,
        now: Instant,
        conn: ConnId,
        msg: ClientMessage,
    ) {
        match msg {
            ClientMessage::Announce(a) => self.announce(swarms, now, conn, a),
            ClientMessage::Answer(a) => self.answer(swarms, conn, a),
            ClientMessage::Scrape(hashes) => {
                let files = hashes.iter().map(|h| (*h, swarms.stats(h))).collect();
                self.send(conn, ServerMessage::Scrape { files });
            }
        }
    }

    fn announce(&mut self, swarms: &mut Swarms, now: Instant, conn: ConnId, a: WsAnnounce) {
        let ih = a.info_hash;
        let c = self.conns.entry(conn).or_default();
        match c.peer_id {
            Some(p) if p != a.peer_id => {
                return self.fail(conn, Some(ih), "peer id changed on this connection");
            }
            _ => c.peer_id = Some(a.peer_id),
        }
        let joined = c.swarms.contains(&ih);
        if !joined && a.event != Event::Stopped && c.swarms.len() >= MAX_SWARMS_PER_CONNECTION {
            // Entries may be stale (peers expired or taken over): look again first.
            c.swarms
                .retain(|h| swarms.peer_conn(h, &a.peer_id) == Some(conn));
            if c.swarms.len() >= MAX_SWARMS_PER_CONNECTION {
                return self.fail(conn, Some(ih), "too many swarms on one connection");
            }
        }
        let req = PeerAnnounce {
            info_hash: ih,
            peer_id: a.peer_id,
            reach: Reach::Ws(conn),
            left: a.left.unwrap_or(u64::MAX),
            event: a.event,
            // As the npm tracker: numwant 0 or absent means as many as there are offers.
            numwant: Some(match a.numwant {
                0 => a.offers.len(),
                n => (n as usize).min(a.offers.len()),
            }),
            key: None,
            family: None,
        };
        let mut offers = a.offers.into_iter();
        let mut forwards = Vec::new();
        let r = swarms.announce_with(now, &req, |_, reach| {
            if let (Reach::Ws(to), Some(o)) = (reach, offers.next()) {
                forwards.push((
                    to,
                    ServerMessage::Offer {
                        info_hash: ih,
                        peer_id: a.peer_id,
                        offer_id: o.offer_id,
                        offer: o.offer,
                    },
                ));
            }
        });
        let counts = match r {
            Ok(c) => c,
            Err(e) => {
                let reason = match e {
                    AnnounceRefused::TooManySwarms(_) => "tracker is full".to_owned(),
                    e => e.to_string(),
                };
                return self.fail(conn, Some(ih), reason);
            }
        };
        let stored = swarms.peer_conn(&ih, &a.peer_id) == Some(conn);
        if let Some(c) = self.conns.get_mut(&conn) {
            if stored && !joined {
                c.swarms.push(ih);
            } else if !stored && joined {
                c.swarms.retain(|h| *h != ih);
            }
        }
        self.send(
            conn,
            ServerMessage::AnnounceReply {
                info_hash: ih,
                complete: counts.complete,
                incomplete: counts.incomplete,
                interval: counts.interval,
            },
        );
        for (to, m) in forwards {
            self.send(to, m);
        }
    }

    fn answer(&mut self, swarms: &Swarms, conn: ConnId, a: WsAnswer) {
        let ih = a.info_hash;
        if self.conns.get(&conn).and_then(|c| c.peer_id) != Some(a.peer_id) {
            return self.fail(
                conn,
                Some(ih),
                "answer from a peer that has not announced here",
            );
        }
        // If the offerer left there is nothing to do (the JS tracker is silent too).
        if let Some(to) = swarms.peer_conn(&ih, &a.to_peer_id) {
            self.send(
                to,
                ServerMessage::Answer {
                    info_hash: ih,
                    peer_id: a.peer_id,
                    offer_id: a.offer_id,
                    answer: a.answer,
                },
            );
        }
    }

    /// A connection closed: its peers lose their WebSocket reachability (and leave their
    /// swarms unless they also announced an address).
    pub fn handle_disconnect(&mut self, swarms: &mut Swarms, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if let Some(peer_id) = c.peer_id {
            swarms.disconnect(conn, &peer_id, c.swarms);
        }
    }

    /// Forget swarms whose peer is no longer reachable on its connection (expired, or taken
    /// over by a reconnected client). Call after [`Swarms::expire`].
    pub fn prune(&mut self, swarms: &Swarms) {
        for (id, c) in &mut self.conns {
            if let Some(p) = c.peer_id {
                c.swarms.retain(|h| swarms.peer_conn(h, &p) == Some(*id));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::ServerConfig;
    use crate::ws::wire::{Offer, Sdp};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

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
        let mut sw = Swarms::with_rng(ServerConfig::default(), StdRng::seed_from_u64(1));
        let mut r = WsRelay::new();
        let (a, b) = (ConnId(1), ConnId(2));
        r.handle_message(&mut sw, t, b, announce(2, 0));
        assert!(matches!(
            r.poll_transmit(),
            Some((c, ServerMessage::AnnounceReply { incomplete: 1, .. })) if c == b
        ));
        r.handle_message(&mut sw, t, a, announce(1, 3));
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
            &mut sw,
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
            &mut sw,
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
        r.handle_disconnect(&mut sw, b);
        assert_eq!(sw.peer_count(), 1);
        r.handle_disconnect(&mut sw, a);
        assert_eq!(sw.peer_count(), 0);
    }
}
