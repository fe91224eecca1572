//! The tracker server core: swarm state shared by every front end, bounded and clock-free.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::types::{Event, InfoHash, PeerId, ScrapeStats};
use crate::udp::AddrFamily;

/// Limits and timing of a tracker server. Every limit is enforced by [`Swarms`].
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The `interval` told to clients (default 120 s, as the npm tracker).
    pub interval: Duration,
    /// The `min interval` told to HTTP clients (default 60 s).
    pub min_interval: Duration,
    /// A peer is dropped when it has not announced for this long (default: interval + 60 s,
    /// i.e. one missed announce with some slack).
    pub peer_timeout: Duration,
    /// Most peers kept per swarm (default 10 000). Peers beyond it still get a peer list but
    /// are not stored.
    pub max_peers_per_swarm: usize,
    /// Most swarms (default 1 000 000). Announces for new swarms beyond it fail.
    pub max_swarms: usize,
    /// Peers returned when the client does not say (default 50).
    pub default_numwant: usize,
    /// Most peers returned whatever the client asks (default 200).
    pub max_numwant: usize,
    /// If set, only these swarms are tracked; others get a failure reply.
    pub allow_list: Option<HashSet<InfoHash>>,
    /// Most TCP connections (HTTP requests and WebSocket clients) served at once by the
    /// tokio driver (default 10 000); further ones wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            interval: Duration::from_secs(120),
            min_interval: Duration::from_secs(60),
            peer_timeout: Duration::from_secs(180),
            max_peers_per_swarm: 10_000,
            max_swarms: 1_000_000,
            default_numwant: 50,
            max_numwant: 200,
            allow_list: None,
            max_connections: 10_000,
        }
    }
}

/// An announce as the server core sees it, whatever front end received it.
#[derive(Clone, Debug)]
pub struct PeerAnnounce {
    /// The swarm.
    pub info_hash: InfoHash,
    /// The peer.
    pub peer_id: PeerId,
    /// The address to hand out: the source IP of the request and the announced port.
    pub addr: SocketAddr,
    /// Bytes left (0: a seeder).
    pub left: u64,
    /// Event.
    pub event: Event,
    /// Peers wanted; `None` for the default. Capped at [`ServerConfig::max_numwant`].
    pub numwant: Option<usize>,
    /// The client's key: lets the same peer id announce from a new IP.
    pub key: Option<u32>,
    /// Only return peers of this family (UDP); `None` for both (HTTP `peers` + `peers6`).
    pub family: Option<AddrFamily>,
}

/// The core's answer to an announce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceReply {
    /// Seconds until the next announce.
    pub interval: u32,
    /// Seconds the client must wait at least.
    pub min_interval: u32,
    /// Seeders.
    pub complete: u32,
    /// Leechers.
    pub incomplete: u32,
    /// Peers for the client (never the client itself).
    pub peers: Vec<(PeerId, SocketAddr)>,
}

/// Why the core refused an announce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnnounceRefused {
    /// The info hash is not in the allow-list.
    #[error("info hash {0} is not tracked here")]
    NotAllowed(InfoHash),
    /// The server holds [`ServerConfig::max_swarms`] swarms already.
    #[error("tracker is full ({0} swarms)")]
    TooManySwarms(usize),
    /// The port is 0.
    #[error("invalid port 0")]
    BadPort,
}

/// One peer: this is what the memory bound below counts.
#[derive(Clone, Debug)]
struct Peer {
    id: PeerId,
    addr: SocketAddr,
    last_seen: Instant,
    key: Option<u32>,
    seeder: bool,
}

#[derive(Debug, Default)]
struct Swarm {
    peers: Vec<Peer>,
    index: HashMap<PeerId, u32>,
    seeders: u32,
    downloaded: u32,
}

impl Swarm {
    fn remove_at(&mut self, i: usize) {
        let p = self.peers.swap_remove(i);
        self.index.remove(&p.id);
        if p.seeder {
            self.seeders -= 1;
        }
        if let Some(moved) = self.peers.get(i) {
            self.index.insert(moved.id, i as u32);
        }
    }
    fn stats(&self) -> ScrapeStats {
        ScrapeStats {
            complete: self.seeders,
            downloaded: self.downloaded,
            incomplete: self.peers.len() as u32 - self.seeders,
        }
    }
}

/// Bytes one stored peer costs at most (entry plus its index slot, hash table overhead
/// included): see the [`Swarms`] docs.
pub const MAX_BYTES_PER_PEER: usize = 256;

/// The swarm state of a tracker server.
///
/// Sans-IO: every call takes `now`; nothing runs by itself. Call [`expire`](Self::expire)
/// every few seconds (the drivers do) to drop peers silent for longer than
/// [`ServerConfig::peer_timeout`].
///
/// Bounds: at most [`max_swarms`](ServerConfig::max_swarms) swarms of at most
/// [`max_peers_per_swarm`](ServerConfig::max_peers_per_swarm) peers each. A stored peer is an
/// 80-byte record (peer id, address, last-seen time, key, seeder flag) in a vector plus a
/// 24-byte index entry and one control byte in a hash table (7/16 to 7/8 full): about 110
/// bytes typically and at most [`MAX_BYTES_PER_PEER`] (256) bytes per peer at the peak peer
/// count, growth slack included ([`expire`](Self::expire) gives back slack once a swarm has
/// shrunk to a quarter). A swarm adds about 150 bytes. No allocation depends on what a
/// client claims.
#[derive(Debug)]
pub struct Swarms {
    config: ServerConfig,
    swarms: HashMap<InfoHash, Swarm>,
    rng: StdRng,
    peers: usize,
}

impl Swarms {
    /// A server core with OS randomness (used to pick which peers to hand out).
    pub fn new(config: ServerConfig) -> Self {
        Self::with_rng(config, StdRng::from_os_rng())
    }

    /// A server core with an injected random source.
    pub fn with_rng(config: ServerConfig, rng: StdRng) -> Self {
        Swarms {
            config,
            swarms: HashMap::new(),
            rng,
            peers: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Swarms currently tracked.
    pub fn swarm_count(&self) -> usize {
        self.swarms.len()
    }

    /// Peers currently stored, over all swarms.
    pub fn peer_count(&self) -> usize {
        self.peers
    }

    /// Whether `info_hash` may be tracked (allow-list).
    pub fn allowed(&self, info_hash: &InfoHash) -> bool {
        self.config
            .allow_list
            .as_ref()
            .is_none_or(|l| l.contains(info_hash))
    }

    /// Record an announce and pick peers for the reply.
    pub fn announce(
        &mut self,
        now: Instant,
        req: &PeerAnnounce,
    ) -> Result<AnnounceReply, AnnounceRefused> {
        if !self.allowed(&req.info_hash) {
            return Err(AnnounceRefused::NotAllowed(req.info_hash));
        }
        if req.addr.port() == 0 {
            return Err(AnnounceRefused::BadPort);
        }
        let interval = self.config.interval.as_secs().min(u32::MAX as u64) as u32;
        let min_interval = self.config.min_interval.as_secs().min(u32::MAX as u64) as u32;
        if req.event == Event::Stopped {
            let mut stats = ScrapeStats::default();
            if let Some(s) = self.swarms.get_mut(&req.info_hash) {
                if let Some(&i) = s.index.get(&req.peer_id) {
                    if owns(&s.peers[i as usize], req) {
                        s.remove_at(i as usize);
                        self.peers -= 1;
                    }
                }
                stats = s.stats();
                if s.peers.is_empty() {
                    self.swarms.remove(&req.info_hash);
                }
            }
            return Ok(AnnounceReply {
                interval,
                min_interval,
                complete: stats.complete,
                incomplete: stats.incomplete,
                peers: Vec::new(),
            });
        }
        if !self.swarms.contains_key(&req.info_hash) && self.swarms.len() >= self.config.max_swarms
        {
            return Err(AnnounceRefused::TooManySwarms(self.swarms.len()));
        }
        let swarm = self.swarms.entry(req.info_hash).or_default();
        let seeder = req.left == 0;
        let me = match swarm.index.get(&req.peer_id) {
            Some(&i) => {
                let p = &mut swarm.peers[i as usize];
                if owns(p, req) {
                    if p.seeder != seeder {
                        if seeder {
                            swarm.seeders += 1;
                        } else {
                            swarm.seeders -= 1;
                        }
                    }
                    if req.event == Event::Completed && !p.seeder && seeder {
                        swarm.downloaded = swarm.downloaded.saturating_add(1);
                    }
                    p.addr = req.addr;
                    p.last_seen = now;
                    p.seeder = seeder;
                    if req.key.is_some() {
                        p.key = req.key;
                    }
                }
                Some(i as usize)
            }
            None if swarm.peers.len() < self.config.max_peers_per_swarm => {
                if req.event == Event::Completed && seeder {
                    swarm.downloaded = swarm.downloaded.saturating_add(1);
                }
                let i = swarm.peers.len();
                swarm.peers.push(Peer {
                    id: req.peer_id,
                    addr: req.addr,
                    last_seen: now,
                    key: req.key,
                    seeder,
                });
                swarm.index.insert(req.peer_id, i as u32);
                if seeder {
                    swarm.seeders += 1;
                }
                self.peers += 1;
                Some(i)
            }
            None => None,
        };
        let want = req
            .numwant
            .unwrap_or(self.config.default_numwant)
            .min(self.config.max_numwant);
        let peers = select(&mut self.rng, swarm, me, want, req.family, seeder);
        let stats = swarm.stats();
        Ok(AnnounceReply {
            interval,
            min_interval,
            complete: stats.complete,
            incomplete: stats.incomplete,
            peers,
        })
    }

    /// Figures for each hash, in order (zeros for unknown swarms).
    pub fn scrape(&self, info_hashes: &[InfoHash]) -> Vec<ScrapeStats> {
        info_hashes.iter().map(|h| self.stats(h)).collect()
    }

    /// Figures for one swarm (zeros if unknown).
    pub fn stats(&self, info_hash: &InfoHash) -> ScrapeStats {
        self.swarms
            .get(info_hash)
            .map(Swarm::stats)
            .unwrap_or_default()
    }

    /// Drop peers not seen for [`ServerConfig::peer_timeout`] and empty swarms. Returns how
    /// many peers were dropped.
    pub fn expire(&mut self, now: Instant) -> usize {
        let timeout = self.config.peer_timeout;
        let mut dropped = 0;
        self.swarms.retain(|_, s| {
            let mut i = 0;
            while i < s.peers.len() {
                if now.saturating_duration_since(s.peers[i].last_seen) > timeout {
                    s.remove_at(i);
                    dropped += 1;
                } else {
                    i += 1;
                }
            }
            if s.peers.capacity() > 64 && s.peers.len() < s.peers.capacity() / 4 {
                s.peers.shrink_to(s.peers.len() * 2);
                s.index.shrink_to(s.peers.len() * 2);
            }
            !s.peers.is_empty()
        });
        self.peers -= dropped;
        dropped
    }

    /// Whether `peer_id` is stored in `info_hash`'s swarm (for tests and diagnostics).
    pub fn contains(&self, info_hash: &InfoHash, peer_id: &PeerId) -> bool {
        self.swarms
            .get(info_hash)
            .is_some_and(|s| s.index.contains_key(peer_id))
    }
}

/// Whether `req` may update the stored peer `p`: same IP, or the same key.
fn owns(p: &Peer, req: &PeerAnnounce) -> bool {
    same_ip(p.addr.ip(), req.addr.ip()) || (p.key.is_some() && p.key == req.key)
}

fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// Up to `want` peers other than `me`, from a random starting point; seeders get no seeders.
fn select(
    rng: &mut StdRng,
    swarm: &Swarm,
    me: Option<usize>,
    want: usize,
    family: Option<AddrFamily>,
    seeder: bool,
) -> Vec<(PeerId, SocketAddr)> {
    let n = swarm.peers.len();
    let mut out = Vec::with_capacity(want.min(n));
    if n == 0 || want == 0 {
        return out;
    }
    let start = rng.random_range(0..n);
    for k in 0..n {
        if out.len() >= want {
            break;
        }
        let i = (start + k) % n;
        if Some(i) == me {
            continue;
        }
        let p = &swarm.peers[i];
        if seeder && p.seeder {
            continue;
        }
        if family.is_some_and(|f| AddrFamily::of(&p.addr) != f) {
            continue;
        }
        out.push((p.id, p.addr));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(peer: u8, port: u16, left: u64, event: Event) -> PeerAnnounce {
        PeerAnnounce {
            info_hash: InfoHash([7; 20]),
            peer_id: PeerId([peer; 20]),
            addr: SocketAddr::from(([127, 0, 0, peer], port)),
            left,
            event,
            numwant: None,
            key: None,
            family: None,
        }
    }

    fn swarms(config: ServerConfig) -> Swarms {
        Swarms::with_rng(config, StdRng::seed_from_u64(3))
    }

    #[test]
    fn announce_scrape_stop() {
        let t = Instant::now();
        let mut s = swarms(ServerConfig::default());
        let r = s.announce(t, &ann(1, 1000, 0, Event::Started)).unwrap();
        assert!(r.peers.is_empty());
        assert_eq!((r.complete, r.incomplete), (1, 0));
        let r = s.announce(t, &ann(2, 1000, 5, Event::Started)).unwrap();
        assert_eq!(
            r.peers,
            vec![(PeerId([1; 20]), "127.0.0.1:1000".parse().unwrap())]
        );
        assert_eq!((r.complete, r.incomplete), (1, 1));
        // Seeders get only leechers.
        let r = s.announce(t, &ann(3, 1000, 0, Event::Started)).unwrap();
        assert_eq!(r.peers.len(), 1);
        assert_eq!(r.peers[0].0, PeerId([2; 20]));
        // Leecher 2 completes.
        s.announce(t, &ann(2, 1000, 0, Event::Completed)).unwrap();
        assert_eq!(
            s.scrape(&[InfoHash([7; 20]), InfoHash([0; 20])]),
            vec![
                ScrapeStats {
                    complete: 3,
                    downloaded: 1,
                    incomplete: 0
                },
                ScrapeStats::default()
            ]
        );
        for p in 1..=3 {
            s.announce(t, &ann(p, 1000, 0, Event::Stopped)).unwrap();
        }
        assert_eq!((s.swarm_count(), s.peer_count()), (0, 0));
    }

    #[test]
    fn stop_from_other_ip_is_ignored() {
        let t = Instant::now();
        let mut s = swarms(ServerConfig::default());
        s.announce(t, &ann(1, 1000, 0, Event::Started)).unwrap();
        let mut evil = ann(1, 1000, 0, Event::Stopped);
        evil.addr = "10.0.0.1:1000".parse().unwrap();
        s.announce(t, &evil).unwrap();
        assert!(s.contains(&InfoHash([7; 20]), &PeerId([1; 20])));
    }

    #[test]
    fn expiry_after_missed_interval() {
        let t = Instant::now();
        let mut s = swarms(ServerConfig::default());
        s.announce(t, &ann(1, 1000, 0, Event::Started)).unwrap();
        s.announce(
            t + Duration::from_secs(100),
            &ann(2, 1000, 0, Event::Started),
        )
        .unwrap();
        assert_eq!(s.expire(t + Duration::from_secs(180)), 0);
        assert_eq!(s.expire(t + Duration::from_secs(181)), 1);
        assert_eq!(s.peer_count(), 1);
        assert_eq!(s.expire(t + Duration::from_secs(300)), 1);
        assert_eq!(s.swarm_count(), 0);
    }

    #[test]
    fn caps_and_allow_list() {
        let t = Instant::now();
        let mut s = swarms(ServerConfig {
            max_peers_per_swarm: 10,
            max_numwant: 3,
            max_swarms: 1,
            ..Default::default()
        });
        for p in 1..=20 {
            s.announce(t, &ann(p, 1000, 1, Event::Started)).unwrap();
        }
        assert_eq!(s.peer_count(), 10);
        let mut a = ann(30, 1000, 1, Event::None);
        a.numwant = Some(1000);
        assert_eq!(s.announce(t, &a).unwrap().peers.len(), 3);
        a.info_hash = InfoHash([8; 20]);
        assert_eq!(s.announce(t, &a), Err(AnnounceRefused::TooManySwarms(1)));
        let mut s = swarms(ServerConfig {
            allow_list: Some([InfoHash([7; 20])].into_iter().collect()),
            ..Default::default()
        });
        assert!(s.announce(t, &ann(1, 1, 0, Event::None)).is_ok());
        assert!(matches!(
            s.announce(t, &a),
            Err(AnnounceRefused::NotAllowed(_))
        ));
    }

    #[test]
    fn family_filter() {
        let t = Instant::now();
        let mut s = swarms(ServerConfig::default());
        let mut v6 = ann(1, 1000, 0, Event::Started);
        v6.addr = "[2001:db8::1]:1000".parse().unwrap();
        s.announce(t, &v6).unwrap();
        s.announce(t, &ann(2, 1000, 0, Event::Started)).unwrap();
        let mut q = ann(3, 1000, 1, Event::Started);
        q.family = Some(AddrFamily::V4);
        let r = s.announce(t, &q).unwrap();
        assert_eq!(r.peers.len(), 1);
        assert!(r.peers[0].1.is_ipv4());
        q.family = None;
        assert_eq!(s.announce(t, &q).unwrap().peers.len(), 2);
    }

    #[test]
    fn peer_record_size_within_stated_bound() {
        let entry = std::mem::size_of::<Peer>();
        let index = std::mem::size_of::<(PeerId, u32)>() + 1;
        assert!(entry <= 80, "{entry}");
        // Vector slack up to 2x, table at least 7/16 full.
        assert!(entry * 2 + index * 16 / 7 <= MAX_BYTES_PER_PEER);
    }
}
