//! The sans-IO BEP 15 server front end: datagram in, datagram out, on a shared [`Swarms`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

use super::wire::{AddrFamily, AnnounceRequest, Request, Response, request_transaction_id};
use crate::server::{PeerAnnounce, Reach, Swarms};

/// How long a connection id epoch lasts; an id is accepted in its epoch and the next one,
/// so for 1 to 2 minutes.
pub const CONNECTION_ID_EPOCH: Duration = Duration::from_secs(60);

/// Most bytes of an announce reply (fits an Ethernet MTU without fragmentation).
pub const MAX_REPLY: usize = 1472;

/// What happened to a datagram (for counters and logs).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum UdpOutcome {
    /// A connect was answered.
    Connected,
    /// An announce was answered with peers.
    Announced,
    /// A scrape was answered.
    Scraped,
    /// An error reply was sent (bad packet, bad connection id, refused announce).
    Error,
    /// Nothing was sent (too short to carry a transaction id).
    Dropped,
    /// Nothing was sent: the source IP is over [`ServerConfig::rate_limit`](crate::server::ServerConfig::rate_limit).
    RateLimited,
}

/// Answers BEP 15 datagrams. Connection ids are stateless: a keyed SHA-1 of the client's
/// address and the current minute, so the server stores nothing per unconnected client.
///
/// Amplification: until a packet carries a valid connection id (which proves the source
/// address receives our replies) a reply is never longer than the packet it answers:
/// connect replies are 16 bytes for 16, error replies are cut to the request's length.
#[derive(Debug, Clone)]
pub struct UdpServer {
    secret: [u8; 16],
    start: Instant,
}

impl UdpServer {
    /// A front end whose connection ids are keyed with `secret` (use random bytes) and whose
    /// epochs count from `start`.
    pub fn new(start: Instant, secret: [u8; 16]) -> Self {
        UdpServer { secret, start }
    }

    fn epoch(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_secs() / CONNECTION_ID_EPOCH.as_secs()
    }

    fn id_for(&self, epoch: u64, from: &SocketAddr) -> u64 {
        let mut h = Sha1::new();
        h.update(self.secret);
        h.update(epoch.to_be_bytes());
        match from.ip().to_canonical() {
            std::net::IpAddr::V4(v4) => h.update(v4.octets()),
            std::net::IpAddr::V6(v6) => h.update(v6.octets()),
        }
        h.update(from.port().to_be_bytes());
        let d = h.finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[..8]);
        u64::from_be_bytes(b)
    }

    /// The connection id `from` gets now.
    pub fn connection_id(&self, now: Instant, from: &SocketAddr) -> u64 {
        self.id_for(self.epoch(now), from)
    }

    /// Whether `id` is valid for `from` now (issued in this epoch or the previous one).
    pub fn check_connection_id(&self, now: Instant, from: &SocketAddr, id: u64) -> bool {
        let e = self.epoch(now);
        self.id_for(e, from) == id || (e > 0 && self.id_for(e - 1, from) == id)
    }

    /// Answer one datagram from `from`. The reply (if any) is appended to `out`, which the
    /// caller clears and sends back to `from` when it is not empty.
    pub fn handle_datagram(
        &self,
        swarms: &mut Swarms,
        now: Instant,
        from: SocketAddr,
        packet: &[u8],
        out: &mut Vec<u8>,
    ) -> UdpOutcome {
        if !swarms.check_rate(now, from.ip()) {
            return UdpOutcome::RateLimited;
        }
        let req = match Request::decode(packet) {
            Ok(r) => r,
            Err(e) => {
                return match request_transaction_id(packet) {
                    Some(tid) => {
                        error_reply(tid, &format!("bad request: {e}"), packet.len(), out);
                        UdpOutcome::Error
                    }
                    None => UdpOutcome::Dropped,
                };
            }
        };
        let family = AddrFamily::of(&from);
        match req {
            Request::Connect { transaction_id } => {
                Response::Connect {
                    transaction_id,
                    connection_id: self.connection_id(now, &from),
                }
                .encode(family, out);
                UdpOutcome::Connected
            }
            Request::Announce(a) => {
                if !self.check_connection_id(now, &from, a.connection_id) {
                    error_reply(a.transaction_id, "invalid connection id", packet.len(), out);
                    return UdpOutcome::Error;
                }
                self.announce(swarms, now, from, family, &a, out)
            }
            Request::Scrape {
                connection_id,
                transaction_id,
                info_hashes,
            } => {
                if !self.check_connection_id(now, &from, connection_id) {
                    error_reply(transaction_id, "invalid connection id", packet.len(), out);
                    return UdpOutcome::Error;
                }
                Response::Scrape {
                    transaction_id,
                    stats: swarms.scrape(&info_hashes),
                }
                .encode(family, out);
                UdpOutcome::Scraped
            }
        }
    }

    fn announce(
        &self,
        swarms: &mut Swarms,
        now: Instant,
        from: SocketAddr,
        family: AddrFamily,
        a: &AnnounceRequest,
        out: &mut Vec<u8>,
    ) -> UdpOutcome {
        let entry = match family {
            AddrFamily::V4 => 6,
            AddrFamily::V6 => 18,
        };
        let fit = (MAX_REPLY - 20) / entry;
        let numwant = usize::try_from(a.num_want).ok().map(|n| n.min(fit));
        let req = PeerAnnounce {
            info_hash: a.info_hash,
            peer_id: a.peer_id,
            reach: Reach::Addr(SocketAddr::new(from.ip().to_canonical(), a.port)),
            left: a.left,
            event: a.event,
            numwant: Some(numwant.unwrap_or(swarms.config().default_numwant.min(fit))),
            key: Some(a.key),
            family: Some(family),
        };
        let start = out.len();
        // The header is written once the counts are known; peers go straight after it.
        out.resize(start + 20, 0);
        let r = swarms.announce_compact(now, &req, out);
        match r {
            Ok(c) => {
                let head = &mut out[start..start + 20];
                head[..4].copy_from_slice(&1u32.to_be_bytes());
                head[4..8].copy_from_slice(&a.transaction_id.to_be_bytes());
                head[8..12].copy_from_slice(&c.interval.to_be_bytes());
                head[12..16].copy_from_slice(&c.incomplete.to_be_bytes());
                head[16..20].copy_from_slice(&c.complete.to_be_bytes());
                UdpOutcome::Announced
            }
            Err(e) => {
                out.truncate(start);
                error_reply(a.transaction_id, &e.to_string(), usize::MAX, out);
                UdpOutcome::Error
            }
        }
    }
}

/// An error packet no longer than `limit` bytes.
fn error_reply(tid: u32, message: &str, limit: usize, out: &mut Vec<u8>) {
    let start = out.len();
    Response::Error {
        transaction_id: tid,
        message: message.to_owned(),
    }
    .encode(AddrFamily::V4, out);
    let limit = limit.max(8);
    if out.len() - start > limit {
        out.truncate(start + limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::ServerConfig;
    use crate::types::{Event, InfoHash, PeerId};
    use proptest::prelude::*;
    use rand::SeedableRng;

    fn setup() -> (UdpServer, Swarms, Instant) {
        let t = Instant::now();
        (
            UdpServer::new(t, [9; 16]),
            Swarms::with_rng(
                ServerConfig::default(),
                rand::rngs::StdRng::seed_from_u64(1),
            ),
            t,
        )
    }

    #[test]
    fn connection_id_lifetime() {
        let (s, _, t) = setup();
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let id = s.connection_id(t, &a);
        assert!(s.check_connection_id(t + Duration::from_secs(119), &a, id));
        assert!(!s.check_connection_id(t + Duration::from_secs(120), &a, id));
        assert!(!s.check_connection_id(t, &b, id));
    }

    #[test]
    fn announce_with_bad_connection_id_is_not_amplified() {
        let (s, mut sw, t) = setup();
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut pkt = vec![];
        Request::Announce(AnnounceRequest {
            connection_id: 1,
            transaction_id: 3,
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([2; 20]),
            downloaded: 0,
            left: 0,
            uploaded: 0,
            event: Event::Started,
            ip: 0,
            key: 0,
            num_want: -1,
            port: 1,
        })
        .encode(&mut pkt);
        let mut out = vec![];
        assert_eq!(
            s.handle_datagram(&mut sw, t, from, &pkt, &mut out),
            UdpOutcome::Error
        );
        assert!(out.len() <= pkt.len());
        assert_eq!(sw.peer_count(), 0);
    }

    proptest! {
        #[test]
        fn replies_to_garbage_are_never_larger(pkt in proptest::collection::vec(any::<u8>(), 0..300)) {
            let (s, mut sw, t) = setup();
            let mut out = vec![];
            s.handle_datagram(&mut sw, t, "127.0.0.1:1".parse().unwrap(), &pkt, &mut out);
            prop_assert!(out.len() <= pkt.len());
        }
    }
}
