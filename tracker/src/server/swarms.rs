//! The tracker server core: one swarm state shared by every front end (UDP, HTTP and
//! WebSocket), bounded and clock-free.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::rate::{RateLimit, RateLimiter};
use crate::types::{Event, InfoHash, PeerId, ScrapeStats};
use crate::udp::AddrFamily;

/// The hash tables' hasher: randomly keyed per table, so a client choosing info hashes and
/// peer ids cannot predict collisions.
type Hasher = std::hash::RandomState;

/// Limits and timing of a tracker server. Every limit is enforced by [`Swarms`].
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The `interval` told to clients (default 120 s, as the npm tracker).
    pub interval: Duration,
    /// The `min interval` told to HTTP clients (default 60 s).
    pub min_interval: Duration,
    /// A peer is dropped when it has not announced for this long (default: interval + 60 s,
    /// i.e. one missed announce with some slack). Counted in whole seconds.
    pub peer_timeout: Duration,
    /// Most peers kept per swarm (default 10 000). Peers beyond it still get a peer list but
    /// are not stored.
    pub max_peers_per_swarm: usize,
    /// Most swarms (default 1 000 000). Announces for new swarms beyond it fail.
    pub max_swarms: usize,
    /// Peers returned (or, over WebSocket, offers forwarded) when the client does not say
    /// (default 50).
    pub default_numwant: usize,
    /// Most peers returned, or offers forwarded, whatever the client asks (default 200).
    pub max_numwant: usize,
    /// If set, only these swarms are tracked; others get a failure reply.
    pub allow_list: Option<HashSet<InfoHash>>,
    /// Most TCP connections (HTTP requests and WebSocket clients) served at once by the
    /// tokio driver (default 10 000); further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Optional per-source-IP request limit over every front end (UDP datagrams, HTTP
    /// requests, WebSocket messages; default none). Requests over it get no UDP reply, an
    /// HTTP or WebSocket `failure reason`. See [`RateLimiter`] for its memory bound.
    pub rate_limit: Option<RateLimit>,
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
            rate_limit: None,
        }
    }
}

/// Identifies one WebSocket connection; the driver allocates them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// How a peer can be reached: what an announce came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reach {
    /// HTTP or UDP: at this address (the request's source IP and the announced port). Handed
    /// out in HTTP and UDP peer lists.
    Addr(SocketAddr),
    /// WebSocket (WebTorrent): over this connection, which carries WebRTC offers and answers.
    /// Such a peer gets offers from other WebSocket peers and is never in a peer list.
    Ws(ConnId),
}

/// An announce as the server core sees it, whatever front end received it.
#[derive(Clone, Debug)]
pub struct PeerAnnounce {
    /// The swarm.
    pub info_hash: InfoHash,
    /// The peer.
    pub peer_id: PeerId,
    /// How the peer is reached: its address (HTTP, UDP) or its WebSocket connection.
    pub reach: Reach,
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

/// The swarm figures sent with every announce reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnounceCounts {
    /// Seconds until the next announce.
    pub interval: u32,
    /// Seconds the client must wait at least.
    pub min_interval: u32,
    /// Seeders, however they are reached.
    pub complete: u32,
    /// Leechers, however they are reached.
    pub incomplete: u32,
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
    /// Peers for the client (never the client itself), only ones reachable by address.
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

const SEEDER: u8 = 1;
const HAS_KEY: u8 = 2;
/// In [`Hot::flags`]: the peer has an IPv4 address.
const V4: u8 = 4;

/// One peer: this is what the memory bound below counts.
#[derive(Clone, Debug)]
struct Peer {
    id: PeerId,
    /// Seconds since the core's time base.
    last_seen: u32,
    key: u32,
    /// Reachable by address (HTTP/UDP announces).
    addr: Option<SocketAddr>,
    /// Reachable over a WebSocket connection.
    conn: Option<ConnId>,
    flags: u8,
}

impl Peer {
    fn seeder(&self) -> bool {
        self.flags & SEEDER != 0
    }
    fn key(&self) -> Option<u32> {
        (self.flags & HAS_KEY != 0).then_some(self.key)
    }
    /// Whether an announce through `reach` (with `key`) may update this peer. A peer known
    /// by address is updated from the same IP, or with the same key; a WebSocket announce
    /// takes over the peer id (a client that reconnected, as the npm tracker does); a
    /// reachability the peer does not have yet is added (a hybrid client).
    fn owned_by(&self, reach: &Reach, key: Option<u32>) -> bool {
        match (reach, self.addr) {
            (Reach::Addr(a), Some(b)) => {
                same_ip(a.ip(), b.ip()) || (self.key().is_some() && self.key() == key)
            }
            (Reach::Addr(_), None) | (Reach::Ws(_), _) => true,
        }
    }
}

/// What picking peers for an IPv4 reply needs of a peer, kept apart from [`Peer`] so that a
/// pick reads 7 bytes per peer instead of 80 (`Swarm::hot[i]` summarises `Swarm::peers[i]`).
#[derive(Clone, Copy, Debug)]
struct Hot {
    /// The compact IPv4 address and port, if `flags` has `V4`.
    v4: [u8; 6],
    /// `SEEDER`, and `V4` when the peer has an IPv4 address.
    flags: u8,
}

impl Hot {
    fn of(p: &Peer) -> Hot {
        let mut h = Hot {
            v4: [0; 6],
            flags: p.flags & SEEDER,
        };
        if let Some(SocketAddr::V4(a)) = p.addr {
            h.v4[..4].copy_from_slice(&a.ip().octets());
            h.v4[4..].copy_from_slice(&a.port().to_be_bytes());
            h.flags |= V4;
        }
        h
    }
}

#[derive(Debug, Default)]
struct Swarm {
    hot: Vec<Hot>,
    peers: Vec<Peer>,
    index: HashMap<PeerId, u32, Hasher>,
    seeders: u32,
    downloaded: u32,
}

impl Swarm {
    fn remove_at(&mut self, i: usize) {
        self.hot.swap_remove(i);
        let p = self.peers.swap_remove(i);
        self.index.remove(&p.id);
        if p.seeder() {
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

/// The swarm state of a tracker server, shared by its UDP, HTTP and WebSocket front ends.
///
/// Sans-IO: every call takes `now`; nothing runs by itself. Call [`expire`](Self::expire)
/// every few seconds (the drivers do) to drop peers silent for longer than
/// [`ServerConfig::peer_timeout`].
///
/// One peer (info hash + peer id) records how it can be reached ([`Reach`]): an address, a
/// WebSocket connection, or both (a hybrid client announcing over both). Scrape figures and
/// `complete`/`incomplete` count every peer; HTTP and UDP peer lists hold only peers with an
/// address; WebRTC offers go only to peers with a connection. Expiry, the allow-list and
/// every cap apply alike whatever the front end. A `stopped` announce removes the
/// reachability it came through, and the peer once it has none left.
///
/// Bounds: at most [`max_swarms`](ServerConfig::max_swarms) swarms of at most
/// [`max_peers_per_swarm`](ServerConfig::max_peers_per_swarm) peers each. A stored peer is an
/// 80-byte record (peer id, optional address, optional connection id, last-seen second, key,
/// flags) and a 7-byte summary (compact IPv4 address, flags: what picking IPv4 peers reads)
/// in two vectors, plus a 24-byte index entry and one control byte in a hash table (7/16 to
/// 7/8 full): about 120 bytes typically and at most [`MAX_BYTES_PER_PEER`] (256) bytes per
/// peer at the peak peer count, growth slack included ([`expire`](Self::expire) gives back
/// slack once a swarm has shrunk to a quarter). A swarm adds about 200 bytes. No allocation
/// depends on what a client claims.
#[derive(Debug)]
pub struct Swarms {
    config: ServerConfig,
    swarms: HashMap<InfoHash, Swarm, Hasher>,
    rng: StdRng,
    peers: usize,
    /// The time base of `Peer::last_seen`: the first `now` seen.
    base: Option<Instant>,
    limiter: Option<RateLimiter>,
    events: EventCounts,
}

impl EventCounts {
    fn count(&mut self, event: Event) {
        let n = match event {
            Event::None => &mut self.regular,
            Event::Started => &mut self.started,
            Event::Completed => &mut self.completed,
            Event::Stopped => &mut self.stopped,
        };
        *n = n.saturating_add(1);
    }
}

/// Announces the server took (refused ones not counted), by event, across all swarms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventCounts {
    /// Regular announces (no event).
    pub regular: u64,
    /// `started`.
    pub started: u64,
    /// `completed`.
    pub completed: u64,
    /// `stopped`.
    pub stopped: u64,
}

impl Swarms {
    /// A server core with OS randomness (used to pick which peers to hand out).
    pub fn new(config: ServerConfig) -> Self {
        Self::with_rng(config, StdRng::from_os_rng())
    }

    /// A server core with an injected random source.
    pub fn with_rng(config: ServerConfig, rng: StdRng) -> Self {
        Swarms {
            limiter: config.rate_limit.map(RateLimiter::new),
            config,
            swarms: HashMap::default(),
            rng,
            peers: 0,
            base: None,
            events: EventCounts::default(),
        }
    }

    /// Announces taken so far, by event (what a test or an operator counts).
    pub fn event_counts(&self) -> EventCounts {
        self.events
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Swarms currently tracked.
    pub fn swarm_count(&self) -> usize {
        self.swarms.len()
    }

    /// Peers currently stored, over all swarms, however reached.
    pub fn peer_count(&self) -> usize {
        self.peers
    }

    /// Peers reachable over a WebSocket connection (counts every peer: call it for
    /// statistics, not per request).
    pub fn ws_peer_count(&self) -> usize {
        self.swarms
            .values()
            .map(|s| s.peers.iter().filter(|p| p.conn.is_some()).count())
            .sum()
    }

    /// Whether `info_hash` may be tracked (allow-list).
    pub fn allowed(&self, info_hash: &InfoHash) -> bool {
        self.config
            .allow_list
            .as_ref()
            .is_none_or(|l| l.contains(info_hash))
    }

    /// Count one request from `ip` against [`ServerConfig::rate_limit`]; `false` if it is over
    /// the limit (the front ends then drop or refuse it). Always `true` without a limit.
    pub fn check_rate(&mut self, now: Instant, ip: IpAddr) -> bool {
        self.limiter.as_mut().is_none_or(|l| l.check(now, ip))
    }

    fn stamp(&mut self, now: Instant) -> u32 {
        let base = *self.base.get_or_insert(now);
        now.saturating_duration_since(base)
            .as_secs()
            .min(u32::MAX as u64) as u32
    }

    /// Record an announce and pick peers for the reply: up to `numwant` peers reachable by
    /// address, of the requested family. For a WebSocket announce the list is empty (use
    /// [`announce_with`](Self::announce_with) to pick offer targets).
    pub fn announce(
        &mut self,
        now: Instant,
        req: &PeerAnnounce,
    ) -> Result<AnnounceReply, AnnounceRefused> {
        let mut peers = Vec::new();
        let c = self.announce_with(now, req, |id, reach| {
            if let Reach::Addr(a) = reach {
                peers.push((*id, a));
            }
        })?;
        Ok(AnnounceReply {
            interval: c.interval,
            min_interval: c.min_interval,
            complete: c.complete,
            incomplete: c.incomplete,
            peers,
        })
    }

    /// Record an announce and call `visit` for each peer picked for it (at most `numwant`,
    /// capped at [`ServerConfig::max_numwant`], from a random starting point, never the
    /// announcer, no seeders for a seeder): for an address announce, peers with an address
    /// of the requested family ([`Reach::Addr`]); for a WebSocket announce, peers on another
    /// connection ([`Reach::Ws`]). Nothing is allocated per call.
    pub fn announce_with(
        &mut self,
        now: Instant,
        req: &PeerAnnounce,
        mut visit: impl FnMut(&PeerId, Reach),
    ) -> Result<AnnounceCounts, AnnounceRefused> {
        let stamp = self.stamp(now);
        let recorded = record(&mut self.swarms, &self.config, &mut self.peers, stamp, req)?;
        self.events.count(req.event);
        let (swarm, me) = match recorded {
            Recorded::Gone(st) => return Ok(counts(&self.config, st)),
            Recorded::Stored(swarm, me) => (swarm, me),
        };
        let seeder = req.left == 0;
        let want = want(&self.config, req);
        let n = swarm.peers.len();
        if want > 0 && n > 0 {
            let start = self.rng.random_range(0..n);
            let mut left = want;
            let (tail, head) = swarm.hot.split_at(start);
            for (i, h) in (start..).zip(head).chain((0..).zip(tail)) {
                if Some(i) == me || (seeder && h.flags & SEEDER != 0) {
                    continue;
                }
                let p = &swarm.peers[i];
                let reach = match req.reach {
                    Reach::Addr(_) => match p.addr {
                        Some(a) if req.family.is_none_or(|f| AddrFamily::of(&a) == f) => {
                            Reach::Addr(a)
                        }
                        _ => continue,
                    },
                    Reach::Ws(mine) => match p.conn {
                        Some(c) if c != mine => Reach::Ws(c),
                        _ => continue,
                    },
                };
                visit(&p.id, reach);
                left -= 1;
                if left == 0 {
                    break;
                }
            }
        }
        Ok(counts(&self.config, swarm.stats()))
    }

    /// [`announce_with`](Self::announce_with) for an address announce, appending the picked
    /// peers to `out` in compact form (BEP 23 / BEP 15: 6 bytes per IPv4 peer, 18 per IPv6
    /// peer) of [`PeerAnnounce::family`] (IPv4 if unset). This is the UDP hot path: an IPv4
    /// pick reads only a 7-byte summary per peer.
    pub fn announce_compact(
        &mut self,
        now: Instant,
        req: &PeerAnnounce,
        out: &mut Vec<u8>,
    ) -> Result<AnnounceCounts, AnnounceRefused> {
        let family = req.family.unwrap_or(AddrFamily::V4);
        if matches!(req.reach, Reach::Ws(_)) || family == AddrFamily::V6 {
            let req = PeerAnnounce {
                family: Some(family),
                ..req.clone()
            };
            return self.announce_with(now, &req, |_, reach| {
                if let Reach::Addr(a) = reach {
                    crate::udp::wire::encode_peer(out, family, &a);
                }
            });
        }
        let stamp = self.stamp(now);
        let recorded = record(&mut self.swarms, &self.config, &mut self.peers, stamp, req)?;
        self.events.count(req.event);
        let (swarm, me) = match recorded {
            Recorded::Gone(st) => return Ok(counts(&self.config, st)),
            Recorded::Stored(swarm, me) => (swarm, me),
        };
        let skip = if req.left == 0 { SEEDER } else { 0 };
        let want = want(&self.config, req);
        let n = swarm.hot.len();
        if want > 0 && n > 0 {
            let start = self.rng.random_range(0..n);
            let me = me.unwrap_or(usize::MAX);
            out.reserve(want.min(n) * 6);
            let mut left = want;
            let (tail, head) = swarm.hot.split_at(start);
            for (i, h) in (start..).zip(head).chain((0..).zip(tail)) {
                if h.flags & V4 == 0 || h.flags & skip != 0 || i == me {
                    continue;
                }
                out.extend_from_slice(&h.v4);
                left -= 1;
                if left == 0 {
                    break;
                }
            }
        }
        Ok(counts(&self.config, swarm.stats()))
    }

    /// Figures for each hash, in order (zeros for unknown swarms).
    pub fn scrape(&self, info_hashes: &[InfoHash]) -> Vec<ScrapeStats> {
        info_hashes.iter().map(|h| self.stats(h)).collect()
    }

    /// Figures for one swarm (zeros if unknown), counting every peer however reached.
    pub fn stats(&self, info_hash: &InfoHash) -> ScrapeStats {
        self.swarms
            .get(info_hash)
            .map(Swarm::stats)
            .unwrap_or_default()
    }

    /// The WebSocket connection `peer_id` of `info_hash`'s swarm is reachable on, if any.
    pub fn peer_conn(&self, info_hash: &InfoHash, peer_id: &PeerId) -> Option<ConnId> {
        let s = self.swarms.get(info_hash)?;
        let &i = s.index.get(peer_id)?;
        s.peers.get(i as usize)?.conn
    }

    /// A WebSocket connection closed: its peers in `info_hashes` lose that reachability, and
    /// are dropped if they have no address either. Returns how many peers were dropped.
    pub fn disconnect(
        &mut self,
        conn: ConnId,
        peer_id: &PeerId,
        info_hashes: impl IntoIterator<Item = InfoHash>,
    ) -> usize {
        let mut dropped = 0;
        for ih in info_hashes {
            let Some(s) = self.swarms.get_mut(&ih) else {
                continue;
            };
            if let Some(&i) = s.index.get(peer_id) {
                let p = &mut s.peers[i as usize];
                if p.conn == Some(conn) {
                    p.conn = None;
                    if p.addr.is_none() {
                        s.remove_at(i as usize);
                        dropped += 1;
                    } else {
                        s.hot[i as usize] = Hot::of(p);
                    }
                }
            }
            if s.peers.is_empty() {
                self.swarms.remove(&ih);
            }
        }
        self.peers -= dropped;
        dropped
    }

    /// Drop peers not seen for [`ServerConfig::peer_timeout`] and empty swarms. Returns how
    /// many peers were dropped.
    pub fn expire(&mut self, now: Instant) -> usize {
        let timeout = self.config.peer_timeout.as_secs();
        let now = self.stamp(now) as u64;
        let mut dropped = 0;
        self.swarms.retain(|_, s| {
            let mut i = 0;
            while i < s.peers.len() {
                if now.saturating_sub(s.peers[i].last_seen as u64) > timeout {
                    s.remove_at(i);
                    dropped += 1;
                } else {
                    i += 1;
                }
            }
            if s.peers.capacity() > 64 && s.peers.len() < s.peers.capacity() / 4 {
                s.peers.shrink_to(s.peers.len() * 2);
                s.hot.shrink_to(s.peers.len() * 2);
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

fn counts(c: &ServerConfig, st: ScrapeStats) -> AnnounceCounts {
    AnnounceCounts {
        interval: c.interval.as_secs().min(u32::MAX as u64) as u32,
        min_interval: c.min_interval.as_secs().min(u32::MAX as u64) as u32,
        complete: st.complete,
        incomplete: st.incomplete,
    }
}

fn want(c: &ServerConfig, req: &PeerAnnounce) -> usize {
    req.numwant.unwrap_or(c.default_numwant).min(c.max_numwant)
}

enum Recorded<'a> {
    /// A `stopped` announce: the swarm's figures after it (no peers are picked).
    Gone(ScrapeStats),
    /// The swarm, and the announcer's index in it if stored.
    Stored(&'a mut Swarm, Option<usize>),
}

/// The bookkeeping half of an announce: checks, then store, update or remove the peer.
fn record<'a>(
    swarms: &'a mut HashMap<InfoHash, Swarm, Hasher>,
    config: &ServerConfig,
    peer_count: &mut usize,
    stamp: u32,
    req: &PeerAnnounce,
) -> Result<Recorded<'a>, AnnounceRefused> {
    if config
        .allow_list
        .as_ref()
        .is_some_and(|l| !l.contains(&req.info_hash))
    {
        return Err(AnnounceRefused::NotAllowed(req.info_hash));
    }
    if matches!(req.reach, Reach::Addr(a) if a.port() == 0) {
        return Err(AnnounceRefused::BadPort);
    }
    if req.event == Event::Stopped {
        let mut stats = ScrapeStats::default();
        if let Some(s) = swarms.get_mut(&req.info_hash) {
            if let Some(&i) = s.index.get(&req.peer_id) {
                let i = i as usize;
                let p = &mut s.peers[i];
                match req.reach {
                    Reach::Addr(_) if p.addr.is_some() && p.owned_by(&req.reach, req.key) => {
                        p.addr = None
                    }
                    Reach::Ws(c) if p.conn == Some(c) => p.conn = None,
                    _ => {}
                }
                if p.addr.is_none() && p.conn.is_none() {
                    s.remove_at(i);
                    *peer_count -= 1;
                } else {
                    s.hot[i] = Hot::of(&s.peers[i]);
                }
            }
            stats = s.stats();
            if s.peers.is_empty() {
                swarms.remove(&req.info_hash);
            }
        }
        return Ok(Recorded::Gone(stats));
    }
    let len = swarms.len();
    let swarm = match swarms.entry(req.info_hash) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            if len >= config.max_swarms {
                return Err(AnnounceRefused::TooManySwarms(len));
            }
            e.insert(Swarm::default())
        }
    };
    let seeder = req.left == 0;
    let me = match swarm.index.get(&req.peer_id) {
        Some(&i) => {
            let i = i as usize;
            let p = &mut swarm.peers[i];
            if p.owned_by(&req.reach, req.key) {
                if p.seeder() != seeder {
                    if seeder {
                        swarm.seeders += 1;
                        if req.event == Event::Completed {
                            swarm.downloaded = swarm.downloaded.saturating_add(1);
                        }
                    } else {
                        swarm.seeders -= 1;
                    }
                    p.flags ^= SEEDER;
                }
                match req.reach {
                    Reach::Addr(a) => p.addr = Some(a),
                    Reach::Ws(c) => p.conn = Some(c),
                }
                p.last_seen = stamp;
                if let Some(k) = req.key {
                    p.key = k;
                    p.flags |= HAS_KEY;
                }
                swarm.hot[i] = Hot::of(p);
            }
            Some(i)
        }
        None if swarm.peers.len() < config.max_peers_per_swarm => {
            if req.event == Event::Completed && seeder {
                swarm.downloaded = swarm.downloaded.saturating_add(1);
            }
            let (addr, conn) = match req.reach {
                Reach::Addr(a) => (Some(a), None),
                Reach::Ws(c) => (None, Some(c)),
            };
            let i = swarm.peers.len();
            let p = Peer {
                id: req.peer_id,
                last_seen: stamp,
                key: req.key.unwrap_or(0),
                addr,
                conn,
                flags: if seeder { SEEDER } else { 0 }
                    | if req.key.is_some() { HAS_KEY } else { 0 },
            };
            swarm.hot.push(Hot::of(&p));
            swarm.peers.push(p);
            swarm.index.insert(req.peer_id, i as u32);
            if seeder {
                swarm.seeders += 1;
            }
            *peer_count += 1;
            Some(i)
        }
        None => None,
    };
    Ok(Recorded::Stored(swarm, me))
}

fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(peer: u8, port: u16, left: u64, event: Event) -> PeerAnnounce {
        PeerAnnounce {
            info_hash: InfoHash([7; 20]),
            peer_id: PeerId([peer; 20]),
            reach: Reach::Addr(SocketAddr::from(([127, 0, 0, peer], port))),
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
        assert_eq!(
            s.event_counts(),
            EventCounts {
                regular: 0,
                started: 3,
                completed: 1,
                stopped: 3
            }
        );
        s.announce(t, &ann(1, 1000, 0, Event::None)).unwrap();
        assert_eq!(s.event_counts().regular, 1);
        // The UDP front end's path counts too.
        s.announce_compact(t, &ann(2, 1000, 0, Event::Started), &mut Vec::new())
            .unwrap();
        assert_eq!(s.event_counts().started, 4);
    }

    #[test]
    fn stop_from_other_ip_is_ignored() {
        let t = Instant::now();
        let mut s = swarms(ServerConfig::default());
        s.announce(t, &ann(1, 1000, 0, Event::Started)).unwrap();
        let mut evil = ann(1, 1000, 0, Event::Stopped);
        evil.reach = Reach::Addr("10.0.0.1:1000".parse().unwrap());
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
        v6.reach = Reach::Addr("[2001:db8::1]:1000".parse().unwrap());
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
        assert!(std::mem::size_of::<Hot>() <= 7);
        let entry_all = entry + std::mem::size_of::<Hot>();
        let index = std::mem::size_of::<(PeerId, u32)>() + 1;
        assert!(entry <= 80, "{entry}");
        // Vector slack up to 2x, table at least 7/16 full.
        assert!(entry_all * 2 + index * 16 / 7 <= MAX_BYTES_PER_PEER);
    }

    fn ws(peer: u8, conn: u64, left: u64, event: Event, numwant: usize) -> PeerAnnounce {
        PeerAnnounce {
            reach: Reach::Ws(ConnId(conn)),
            numwant: Some(numwant),
            ..ann(peer, 1, left, event)
        }
    }

    #[test]
    fn ws_and_address_peers_share_one_swarm() {
        let t = Instant::now();
        let mut s = swarms(ServerConfig::default());
        // Two WebSocket peers and two address peers in one swarm.
        s.announce(t, &ws(1, 10, 0, Event::Started, 5)).unwrap();
        s.announce(t, &ws(2, 20, 5, Event::Started, 5)).unwrap();
        s.announce(t, &ann(3, 1000, 5, Event::Started)).unwrap();
        let r = s.announce(t, &ann(4, 1000, 5, Event::Started)).unwrap();
        // Counts include everyone; the peer list only the address peer.
        assert_eq!((r.complete, r.incomplete), (1, 3));
        assert_eq!(
            r.peers,
            vec![(PeerId([3; 20]), "127.0.0.3:1000".parse().unwrap())]
        );
        let st = s.stats(&InfoHash([7; 20]));
        assert_eq!((st.complete, st.incomplete), (1, 3));
        assert_eq!(s.ws_peer_count(), 2);
        // A WebSocket announce picks only other connections.
        let mut got = vec![];
        let c = s
            .announce_with(t, &ws(2, 20, 5, Event::None, 5), |id, r| got.push((*id, r)))
            .unwrap();
        assert_eq!((c.complete, c.incomplete), (1, 3));
        assert_eq!(got, vec![(PeerId([1; 20]), Reach::Ws(ConnId(10)))]);
        assert_eq!(
            s.peer_conn(&InfoHash([7; 20]), &PeerId([1; 20])),
            Some(ConnId(10))
        );
        assert_eq!(s.peer_conn(&InfoHash([7; 20]), &PeerId([3; 20])), None);
    }

    #[test]
    fn hybrid_peer_keeps_the_reachability_it_did_not_stop() {
        let t = Instant::now();
        let mut s = swarms(ServerConfig::default());
        s.announce(t, &ws(1, 10, 5, Event::Started, 5)).unwrap();
        // The same client announces its address over HTTP/UDP: one peer, both ways.
        s.announce(t, &ann(1, 1000, 5, Event::Started)).unwrap();
        assert_eq!(s.peer_count(), 1);
        let r = s.announce(t, &ann(2, 1000, 5, Event::Started)).unwrap();
        assert_eq!(r.peers.len(), 1);
        let mut got = vec![];
        s.announce_with(t, &ws(3, 30, 5, Event::Started, 5), |id, r| {
            got.push((*id, r))
        })
        .unwrap();
        assert_eq!(got, vec![(PeerId([1; 20]), Reach::Ws(ConnId(10)))]);
        // The WebSocket closes: still listed by address.
        assert_eq!(
            s.disconnect(ConnId(10), &PeerId([1; 20]), [InfoHash([7; 20])]),
            0
        );
        assert!(s.contains(&InfoHash([7; 20]), &PeerId([1; 20])));
        assert_eq!(s.peer_conn(&InfoHash([7; 20]), &PeerId([1; 20])), None);
        // Stopping by address removes it.
        s.announce(t, &ann(1, 1000, 5, Event::Stopped)).unwrap();
        assert!(!s.contains(&InfoHash([7; 20]), &PeerId([1; 20])));
        // A WebSocket-only peer goes with its connection; a stop from another connection
        // does nothing.
        s.announce(t, &ws(3, 31, 5, Event::Stopped, 0)).unwrap();
        assert!(s.contains(&InfoHash([7; 20]), &PeerId([3; 20])));
        assert_eq!(
            s.disconnect(ConnId(30), &PeerId([3; 20]), [InfoHash([7; 20])]),
            1
        );
        assert_eq!(s.peer_count(), 1);
    }

    #[test]
    fn caps_expiry_and_allow_list_apply_to_ws_peers() {
        let t = Instant::now();
        let mut s = swarms(ServerConfig {
            max_peers_per_swarm: 3,
            max_numwant: 2,
            allow_list: Some([InfoHash([7; 20])].into_iter().collect()),
            ..Default::default()
        });
        for p in 1..=5 {
            s.announce(t, &ws(p, p as u64, 5, Event::Started, 0))
                .unwrap();
        }
        assert_eq!(s.peer_count(), 3);
        let mut n = 0;
        s.announce_with(t, &ws(9, 9, 5, Event::None, 50), |_, _| n += 1)
            .unwrap();
        assert_eq!(n, 2);
        let mut other = ws(1, 1, 5, Event::Started, 0);
        other.info_hash = InfoHash([8; 20]);
        assert!(matches!(
            s.announce(t, &other),
            Err(AnnounceRefused::NotAllowed(_))
        ));
        assert_eq!(s.expire(t + Duration::from_secs(181)), 3);
        assert_eq!((s.peer_count(), s.swarm_count()), (0, 0));
    }

    #[test]
    fn compact_pick_equals_the_general_pick() {
        // Same seed, same announces: the IPv4 fast path picks exactly what the general path
        // does, including with seeders, IPv6 and WebSocket peers mixed in.
        let t = Instant::now();
        let mut a = swarms(ServerConfig::default());
        let mut b = swarms(ServerConfig::default());
        let mut reqs = vec![];
        for p in 1..=60u8 {
            let mut r = ann(p, 1000 + p as u16, (p % 3) as u64, Event::Started);
            match p % 5 {
                0 => r.reach = Reach::Addr(format!("[2001:db8::{p}]:1000").parse().unwrap()),
                1 => r.reach = Reach::Ws(ConnId(p as u64)),
                _ => {}
            }
            r.numwant = Some(p as usize % 40);
            r.family = Some(AddrFamily::V4);
            reqs.push(r);
        }
        for r in reqs.iter().chain(&reqs) {
            let mut compact = vec![];
            let ca = a.announce_compact(t, r, &mut compact);
            let mut general = vec![];
            let cb = b.announce_with(t, r, |_, reach| {
                if let Reach::Addr(x) = reach {
                    crate::udp::wire::encode_peer(&mut general, AddrFamily::V4, &x);
                }
            });
            assert_eq!(ca, cb);
            assert_eq!(compact, general);
        }
    }
}
