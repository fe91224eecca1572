//! The sans-IO DHT node; see [`Node`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::bloom::ScrapeBloom;
use crate::id::Id;
use crate::item::{Item, ItemError, ItemStore};
use crate::krpc::{
    self, Body, ErrorBody, Message, Method, NodeInfo, Query, Response, Want, error_code,
};
use crate::lookup::{Lookup, LookupId, LookupStats};
use crate::routing::{Insert, K, RoutingTable, TableStats};
use crate::storage::{PeerStore, Tokens};

/// Per-source-IP limit on incoming queries (a token bucket).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained queries per second.
    pub per_second: f64,
    /// Burst size.
    pub burst: f64,
}

/// Node configuration. `Config::default()` is what a public node wants.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Lookup parallelism (BEP 5 suggests 3).
    pub alpha: usize,
    /// How long to wait for a response.
    pub query_timeout: Duration,
    /// BEP 43: do not answer queries and ask others not to add us to their tables.
    pub read_only: bool,
    /// Where to start when the routing table is empty.
    pub bootstrap: Vec<SocketAddr>,
    /// BEP 42: only add nodes whose id matches their (public) address.
    pub enforce_bep42: bool,
    /// BEP 42: once the external address is learnt (by voting on the `ip` fields of
    /// responses), switch to an id derived from it if ours does not match
    /// ([`Event::IdChanged`]).
    pub secure_id: bool,
    /// The address family the node works in: IPv6 nodes go in the table and lookups
    /// when true, IPv4 when false.
    pub ipv6: bool,
    /// Cap on transactions waiting for an answer; further queries fail at once.
    pub max_pending: usize,
    /// Cap on info hashes in the peer store.
    pub max_info_hashes: usize,
    /// Cap on peers per info hash.
    pub max_peers_per_hash: usize,
    /// Peers per `get_peers` answer (BEP 5 `values`).
    pub max_values: usize,
    /// Cap on stored BEP 44 items.
    pub max_items: usize,
    /// Incoming query limit per source IP; `None` for none.
    pub rate_limit: Option<RateLimit>,
    /// Client version sent as `v` (BEP 5 suggests 2 letters and 2 bytes of version).
    pub version: Option<[u8; 4]>,
    /// How often maintenance runs (token rotation, expiry, bucket refresh, pings).
    pub maintenance_interval: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            alpha: 3,
            query_timeout: Duration::from_secs(2),
            read_only: false,
            bootstrap: Vec::new(),
            enforce_bep42: false,
            secure_id: false,
            ipv6: false,
            max_pending: 2048,
            max_info_hashes: 10_000,
            max_peers_per_hash: 200,
            max_values: 50,
            max_items: 1000,
            rate_limit: Some(RateLimit {
                per_second: 50.0,
                burst: 200.0,
            }),
            version: Some(*b"RV\x00\x01"),
            maintenance_interval: Duration::from_secs(10),
        }
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// The encoded KRPC message.
    pub bytes: Vec<u8>,
}

/// Something the application should know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Peers found by a running `get_peers` or `announce` lookup (each reported once).
    Peers {
        /// The lookup.
        lookup: LookupId,
        /// New peers.
        peers: Vec<SocketAddr>,
    },
    /// A lookup finished.
    LookupDone {
        /// The lookup.
        lookup: LookupId,
        /// What was looked up.
        target: Id,
        /// The closest nodes that answered, closest first (at most 8).
        closest: Vec<NodeInfo>,
        /// For `announce` and `put`: how many nodes accepted it.
        announced: usize,
        /// Message counts.
        stats: LookupStats,
    },
    /// A BEP 44 `get` lookup found a valid item (for mutable items, each time a higher
    /// `seq` is seen).
    Item {
        /// The lookup.
        lookup: LookupId,
        /// The verified item.
        item: Item,
    },
    /// The external address learnt from the `ip` fields of responses changed.
    ExternalIp(IpAddr),
    /// Our node id changed (BEP 42, see [`Config::secure_id`]).
    IdChanged(Id),
    /// The result of a [`Node::scrape`] (BEP 33), just before its `LookupDone`.
    Scrape {
        /// The lookup.
        lookup: LookupId,
        /// The estimated swarm size.
        estimate: ScrapeEstimate,
    },
    /// The answer to [`Node::sample_infohashes`] (BEP 51).
    Samples {
        /// The handle returned by `sample_infohashes`.
        lookup: LookupId,
        /// The node asked.
        from: SocketAddr,
        /// False if it did not answer (timeout or error); the rest is then empty.
        ok: bool,
        /// Info hashes it stores (a sample).
        samples: Vec<Id>,
        /// How many info hashes it stores in total.
        num: Option<i64>,
        /// Seconds to wait before asking it again.
        interval: Option<i64>,
        /// Nodes close to the target, to continue sampling.
        nodes: Vec<NodeInfo>,
    },
}

/// A BEP 33 estimate of a swarm's size, from the union of the bloom filters of the
/// nodes closest to the info hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeEstimate {
    /// Seeds.
    pub seeds: u32,
    /// Downloaders.
    pub peers: u32,
}

/// Counters for monitoring and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeStats {
    /// Datagrams handled.
    pub received: u64,
    /// Datagrams that were not valid KRPC (dropped, or answered with error 203).
    pub malformed: u64,
    /// Queries dropped by the rate limit.
    pub rate_limited: u64,
    /// Responses that matched no pending transaction (late, spoofed or duplicated).
    pub unmatched: u64,
    /// Queries answered.
    pub queries_answered: u64,
    /// Datagrams queued for sending.
    pub sent: u64,
    /// Queries that timed out.
    pub timeouts: u64,
}

#[derive(Debug, Clone, Copy)]
enum Purpose {
    Sample(LookupId),
    Lookup(LookupId),
    Announce(LookupId),
    Ping,
}

#[derive(Debug)]
struct Pending {
    to: SocketAddr,
    id: Option<Id>,
    purpose: Purpose,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    FindNode,
    GetPeers,
    Announce {
        port: Option<u16>,
        seed: bool,
    },
    /// BEP 44 get; the salt is needed to verify mutable items.
    Get {
        salt: Vec<u8>,
    },
    /// BEP 44 put, after a `get` lookup for the tokens.
    Put {
        item: Item,
        cas: Option<i64>,
    },
    /// BEP 33 scrape: `get_peers` with `scrape=1`, bloom filters merged.
    Scrape,
}

#[derive(Debug)]
struct Running {
    lookup: Lookup,
    kind: Kind,
    /// Internal lookups (bucket refresh) report no event.
    internal: bool,
    /// `Some(outstanding)` once the store phase (`announce_peer` / `put`) started.
    storing: Option<usize>,
    stored: usize,
    /// BEP 44 get: the best item reported so far (immutable: found; mutable: its seq).
    best_seq: Option<Option<i64>>,
    /// BEP 33: the union of the seeds and downloaders filters received.
    blooms: Option<Box<(ScrapeBloom, ScrapeBloom)>>,
}

/// The query a lookup of `kind` sends.
fn lookup_method(kind: &Kind, target: Id) -> Method<'static> {
    match kind {
        Kind::FindNode => Method::FindNode { target },
        Kind::GetPeers | Kind::Announce { .. } | Kind::Scrape => Method::GetPeers {
            info_hash: target,
            noseed: false,
            scrape: *kind == Kind::Scrape,
        },
        Kind::Get { .. } | Kind::Put { .. } => Method::Get { target, seq: None },
    }
}

#[derive(Debug, Clone, Copy)]
struct TokenBucket {
    tokens: f64,
    last: Instant,
}

/// Cap on per-IP rate-limit entries.
const MAX_RATE_ENTRIES: usize = 16_384;
/// Votes collected before the external address is (re)decided.
const IP_VOTES: u32 = 10;

/// A Mainline DHT node, sans IO.
///
/// A [`Node`] owns the routing table, the peer store, the token secrets, the pending
/// transactions and the running lookups. It reads no clock and opens no socket:
///
/// * feed it datagrams with [`Node::handle_datagram`] and the passing of time with
///   [`Node::handle_timeout`];
/// * start work with the commands ([`Node::bootstrap`], [`Node::find_node`],
///   [`Node::get_peers`], [`Node::announce`], [`Node::get_item`], [`Node::put_item`],
///   [`Node::sample_infohashes`], [`Node::ping`]), each returning at once (lookups
///   return a [`LookupId`] that their [`Event`]s carry);
/// * **drain rule:** after every `handle_*` call and every command, call
///   [`Node::poll_transmit`] until it returns `None` (send each datagram), then
///   [`Node::poll_event`] until it returns `None`, then ask [`Node::poll_timeout`] when
///   to call [`Node::handle_timeout`] next. Outputs queue up until drained; nothing is
///   lost by draining late, but time only moves when you say so.
///
/// Randomness (transaction ids, token secrets, refresh targets) comes from a seeded
/// RNG given to [`Node::new`], so a simulation is reproducible.
#[derive(Debug)]
pub struct Node {
    config: Config,
    id: Id,
    table: RoutingTable,
    rng: StdRng,
    tokens: Tokens,
    peers: PeerStore,
    items: ItemStore,
    pending: HashMap<u16, Pending>,
    /// (deadline, tid, soft): soft deadlines only free a lookup's parallelism slot.
    timeouts: BinaryHeap<Reverse<(Instant, u16, bool)>>,
    next_tid: u16,
    lookups: HashMap<LookupId, Running>,
    next_lookup: u64,
    pinging: HashSet<SocketAddr>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    next_maintenance: Instant,
    rate: HashMap<IpAddr, TokenBucket>,
    votes: HashMap<IpAddr, u32>,
    vote_count: u32,
    external_ip: Option<IpAddr>,
    stats: NodeStats,
}

impl Node {
    /// A node with id `id`, starting at `now`, drawing randomness from `seed`.
    pub fn new(config: Config, id: Id, now: Instant, seed: u64) -> Node {
        let mut rng = StdRng::seed_from_u64(seed);
        let tokens = Tokens::new(&mut rng, now);
        Node {
            peers: PeerStore::new(config.max_info_hashes, config.max_peers_per_hash),
            items: ItemStore::new(config.max_items),
            next_maintenance: now + config.maintenance_interval,
            config,
            id,
            table: RoutingTable::new(id, now),
            tokens,
            next_tid: rng.random(),
            rng,
            pending: HashMap::new(),
            timeouts: BinaryHeap::new(),
            lookups: HashMap::new(),
            next_lookup: 0,
            pinging: HashSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            rate: HashMap::new(),
            votes: HashMap::new(),
            vote_count: 0,
            external_ip: None,
            stats: NodeStats::default(),
        }
    }

    /// Our node id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The routing table.
    pub fn routing_table(&self) -> &RoutingTable {
        &self.table
    }

    /// Routing table counts at `now`.
    pub fn table_stats(&self, now: Instant) -> TableStats {
        self.table.stats(now)
    }

    /// Message counters.
    pub fn stats(&self) -> NodeStats {
        self.stats
    }

    /// Transactions waiting for an answer.
    pub fn pending_queries(&self) -> usize {
        self.pending.len()
    }

    /// Lookups running.
    pub fn running_lookups(&self) -> usize {
        self.lookups.len()
    }

    /// The external address learnt by voting on the `ip` fields of responses (BEP 42).
    pub fn external_ip(&self) -> Option<IpAddr> {
        self.external_ip
    }

    /// Changes our node id, rebuilding the routing table around it. Running lookups
    /// carry on; answers from now on carry the new id.
    pub fn set_id(&mut self, now: Instant, id: Id) {
        let old = std::mem::replace(&mut self.table, RoutingTable::new(id, now));
        self.id = id;
        for e in old.iter() {
            if e.info.id != id {
                self.table.insert(e.info, now, true);
            }
        }
    }

    /// Sets read-only mode (BEP 43) from now on.
    pub fn set_read_only(&mut self, read_only: bool) {
        self.config.read_only = read_only;
    }

    /// Adds a node known to be alive (for example from a saved table) without
    /// contacting it. It counts as having answered at `now`.
    pub fn add_node(&mut self, info: NodeInfo, now: Instant) {
        if self.acceptable(&info) {
            self.table.insert(info, now, true);
        }
    }

    // ---- Outputs -------------------------------------------------------------------

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Node::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = self.timeouts.peek().map(|Reverse((t, _, _))| *t);
        Some(t.map_or(self.next_maintenance, |t| t.min(self.next_maintenance)))
    }

    // ---- Commands ------------------------------------------------------------------

    /// Looks up our own id, starting from the bootstrap nodes if the table is small.
    pub fn bootstrap(&mut self, now: Instant) -> LookupId {
        let id = self.id;
        self.start(now, id, Kind::FindNode, false)
    }

    /// Finds the nodes closest to `target`.
    pub fn find_node(&mut self, now: Instant, target: Id) -> LookupId {
        self.start(now, target, Kind::FindNode, false)
    }

    /// Finds peers for `info_hash`; they arrive as [`Event::Peers`] while the lookup runs.
    pub fn get_peers(&mut self, now: Instant, info_hash: Id) -> LookupId {
        self.start(now, info_hash, Kind::GetPeers, false)
    }

    /// Finds peers for `info_hash` (like [`Node::get_peers`]), then announces us to the
    /// closest nodes: on `port`, or on the source port of our packets when `None`
    /// (`implied_port`).
    pub fn announce(
        &mut self,
        now: Instant,
        info_hash: Id,
        port: Option<u16>,
        seed: bool,
    ) -> LookupId {
        self.start(now, info_hash, Kind::Announce { port, seed }, false)
    }

    /// BEP 33: estimates how many seeds and downloaders `info_hash` has
    /// ([`Event::Scrape`]).
    pub fn scrape(&mut self, now: Instant, info_hash: Id) -> LookupId {
        self.start(now, info_hash, Kind::Scrape, false)
    }

    /// Looks up a BEP 44 item by target; verified items arrive as [`Event::Item`].
    /// `salt` is the salt of a mutable item (empty for none, and for immutable items).
    pub fn get_item(&mut self, now: Instant, target: Id, salt: &[u8]) -> LookupId {
        self.start(
            now,
            target,
            Kind::Get {
                salt: salt.to_vec(),
            },
            false,
        )
    }

    /// Stores a BEP 44 item on the nodes closest to its target (optionally with
    /// compare-and-swap on the previous `seq`); [`Event::LookupDone`] reports how many
    /// accepted it. The item is also kept in our own store.
    pub fn put_item(&mut self, now: Instant, item: Item, cas: Option<i64>) -> LookupId {
        let target = item.target();
        let _ = self.items.put(item.clone(), None, now);
        self.start(now, target, Kind::Put { item, cas }, false)
    }

    /// BEP 51: asks the node at `addr` for a sample of the info hashes it stores; the
    /// answer arrives as [`Event::Samples`].
    pub fn sample_infohashes(&mut self, now: Instant, addr: SocketAddr, target: Id) -> LookupId {
        let lid = LookupId(self.next_lookup);
        self.next_lookup += 1;
        let method = Method::SampleInfohashes { target };
        if !self.send_query(now, addr, None, method, Purpose::Sample(lid)) {
            self.events.push_back(Event::Samples {
                lookup: lid,
                from: addr,
                ok: false,
                samples: Vec::new(),
                num: None,
                interval: None,
                nodes: Vec::new(),
            });
        }
        lid
    }

    /// Stops a lookup; late answers are ignored. No event is reported for it.
    pub fn cancel(&mut self, lookup: LookupId) {
        self.lookups.remove(&lookup);
    }

    /// Pings an address; if it answers it joins the routing table.
    pub fn ping(&mut self, now: Instant, addr: SocketAddr) {
        if self.pinging.insert(addr)
            && !self.send_query(now, addr, None, Method::Ping, Purpose::Ping)
        {
            self.pinging.remove(&addr);
        }
    }

    fn start(&mut self, now: Instant, target: Id, kind: Kind, internal: bool) -> LookupId {
        let lid = LookupId(self.next_lookup);
        self.next_lookup += 1;
        let mut lookup = Lookup::new(target, self.config.alpha, K);
        let seeds = self.table.closest(&target, K * 2, now);
        for n in &seeds {
            lookup.add(Some(n.id), n.addr);
        }
        if seeds.len() < K {
            for a in self.config.bootstrap.clone() {
                lookup.add(None, a);
            }
        }
        // So do the peers stored with us, for a scrape.
        let blooms = (kind == Kind::Scrape).then(|| Box::new(self.peers.blooms(&target, now)));
        // An item stored with us counts too.
        let mut best_seq = None;
        if let (Kind::Get { .. }, false) = (&kind, internal) {
            if let Some(item) = self.items.get(&target, now) {
                best_seq = Some(item.seq);
                self.events.push_back(Event::Item {
                    lookup: lid,
                    item: item.clone(),
                });
            }
        }
        // Peers announced to us count too (in a tiny DHT we may be the closest node).
        if matches!(kind, Kind::GetPeers | Kind::Announce { .. }) && !internal {
            let local = self.peers.get(
                &target,
                now,
                self.config.max_values,
                self.config.ipv6,
                0,
                false,
            );
            let peers = lookup.new_peers(&local);
            if !peers.is_empty() {
                self.events.push_back(Event::Peers { lookup: lid, peers });
            }
        }
        self.lookups.insert(
            lid,
            Running {
                lookup,
                kind,
                internal,
                storing: None,
                stored: 0,
                best_seq,
                blooms,
            },
        );
        self.drive(now, lid);
        lid
    }

    // ---- Inputs --------------------------------------------------------------------

    /// Handles one received datagram. Malformed input is counted and dropped (or
    /// answered with a protocol error), never a panic.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.stats.received += 1;
        let msg = match Message::decode(data) {
            Ok(m) => m,
            Err(_) => {
                self.stats.malformed += 1;
                if let Some(tid) = krpc::peek_query_tid(data) {
                    if !self.config.read_only && self.allow(from.ip(), now) {
                        self.send_error(from, tid, error_code::PROTOCOL, b"malformed query");
                    }
                }
                return;
            }
        };
        match msg.body {
            Body::Query(ref q) => {
                if self.config.read_only {
                    return;
                }
                if !self.allow(from.ip(), now) {
                    self.stats.rate_limited += 1;
                    return;
                }
                self.answer(now, from, msg.tid, q);
                if !msg.read_only {
                    let info = NodeInfo {
                        id: q.id,
                        addr: from,
                    };
                    if self.table.insert(info, now, false) == Insert::Rejected
                        && self.acceptable(&info)
                        && self.table.has_room_for(&q.id, now)
                        && self.pending.len() < self.config.max_pending / 2
                    {
                        self.ping(now, from);
                    }
                }
            }
            Body::Response(ref r) => {
                let Some(p) = self.take_pending(msg.tid, from) else {
                    self.stats.unmatched += 1;
                    return;
                };
                if let Some(ip) = msg.ip {
                    self.vote(now, ip.ip());
                }
                let info = NodeInfo {
                    id: r.id,
                    addr: from,
                };
                if !msg.read_only && self.acceptable(&info) {
                    if let Insert::Cached(Some(q)) = self.table.insert(info, now, true) {
                        self.ping(now, q.addr);
                    }
                }
                self.on_response(now, p, r);
            }
            Body::Error(_) => {
                let Some(p) = self.take_pending(msg.tid, from) else {
                    self.stats.unmatched += 1;
                    return;
                };
                // It is alive, just unhelpful: fail the query, not the node.
                self.on_failure(now, p, false);
            }
        }
    }

    /// Handles the passing of time: query timeouts and periodic maintenance.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((t, tid, soft))) = self.timeouts.peek().copied() {
            if t > now {
                break;
            }
            self.timeouts.pop();
            if soft {
                if let Some(Pending {
                    to,
                    purpose: Purpose::Lookup(lid),
                    ..
                }) = self.pending.get(&tid)
                {
                    let (to, lid) = (*to, *lid);
                    if let Some(run) = self.lookups.get_mut(&lid) {
                        if run.lookup.on_slow(to) {
                            let method = lookup_method(&run.kind, run.lookup.target);
                            let id = self.pending.get(&tid).and_then(|p| p.id);
                            if !self.send_query(now, to, id, method, Purpose::Lookup(lid)) {
                                if let Some(run) = self.lookups.get_mut(&lid) {
                                    run.lookup.on_failure(to, true);
                                }
                            }
                        }
                        self.drive(now, lid);
                    }
                }
                continue;
            }
            if let Some(p) = self.pending.remove(&tid) {
                self.stats.timeouts += 1;
                self.on_failure(now, p, true);
            }
        }
        if now >= self.next_maintenance {
            self.next_maintenance = now + self.config.maintenance_interval;
            self.maintenance(now);
        }
    }

    fn maintenance(&mut self, now: Instant) {
        self.tokens.maybe_rotate(now, &mut self.rng);
        self.peers.expire(now);
        self.items.expire(now);
        if let Some(rl) = self.config.rate_limit {
            // Forget sources whose bucket has refilled.
            let full = Duration::from_secs_f64(rl.burst / rl.per_second.max(0.001));
            self.rate
                .retain(|_, b| now.saturating_duration_since(b.last) < full);
        }
        if self.table.is_empty() && !self.config.bootstrap.is_empty() && self.lookups.is_empty() {
            let id = self.id;
            self.start(now, id, Kind::FindNode, true);
            return;
        }
        for target in self.table.stale_buckets(now, &mut self.rng) {
            self.start(now, target, Kind::FindNode, true);
        }
        for n in self.table.questionable(now, 4) {
            self.ping(now, n.addr);
        }
    }

    // ---- Internals -----------------------------------------------------------------

    fn acceptable(&self, info: &NodeInfo) -> bool {
        info.addr.is_ipv6() == self.config.ipv6
            && info.addr.port() != 0
            && !info.addr.ip().is_unspecified()
            && info.id != self.id
            && (!self.config.enforce_bep42 || info.id.is_secure_for(info.addr.ip()))
    }

    fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let Some(rl) = self.config.rate_limit else {
            return true;
        };
        if !self.rate.contains_key(&ip) && self.rate.len() >= MAX_RATE_ENTRIES {
            // Under a flood of sources: forget them all rather than grow.
            self.rate.clear();
        }
        let b = self.rate.entry(ip).or_insert(TokenBucket {
            tokens: rl.burst,
            last: now,
        });
        let dt = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + dt * rl.per_second).min(rl.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn vote(&mut self, now: Instant, ip: IpAddr) {
        if self.votes.len() < 64 || self.votes.contains_key(&ip) {
            *self.votes.entry(ip).or_insert(0) += 1;
        }
        self.vote_count += 1;
        if self.vote_count >= IP_VOTES {
            let winner = self
                .votes
                .iter()
                .max_by_key(|(_, c)| **c)
                .map(|(ip, _)| *ip);
            self.votes.clear();
            self.vote_count = 0;
            if winner.is_some() && winner != self.external_ip {
                self.external_ip = winner;
                if let Some(ip) = winner {
                    self.events.push_back(Event::ExternalIp(ip));
                    if self.config.secure_id && !self.id.is_secure_for(ip) {
                        let id = Id::random_secure(ip, &mut self.rng);
                        self.set_id(now, id);
                        self.events.push_back(Event::IdChanged(id));
                    }
                }
            }
        }
    }

    fn take_pending(&mut self, tid: &[u8], from: SocketAddr) -> Option<Pending> {
        let tid = u16::from_be_bytes(tid.try_into().ok()?);
        let p = self.pending.get(&tid)?;
        if p.to != from {
            return None;
        }
        self.pending.remove(&tid)
    }

    fn push(&mut self, to: SocketAddr, msg: &Message<'_>) {
        self.stats.sent += 1;
        self.transmits.push_back(Transmit {
            to,
            bytes: msg.encode(),
        });
    }

    fn send_error(&mut self, to: SocketAddr, tid: &[u8], code: i64, text: &[u8]) {
        let version = self.config.version;
        let msg = Message {
            tid,
            version: version.as_ref().map(|v| &v[..]),
            ip: None,
            read_only: false,
            body: Body::Error(ErrorBody {
                code,
                message: text.into(),
            }),
        };
        self.push(to, &msg);
    }

    /// Sends a query; false if it could not be sent (too many pending).
    fn send_query(
        &mut self,
        now: Instant,
        to: SocketAddr,
        id: Option<Id>,
        method: Method<'_>,
        purpose: Purpose,
    ) -> bool {
        if self.pending.len() >= self.config.max_pending {
            return false;
        }
        let mut tid = self.next_tid;
        while self.pending.contains_key(&tid) {
            tid = tid.wrapping_add(1);
        }
        self.next_tid = tid.wrapping_add(1);
        let tid_bytes = tid.to_be_bytes();
        let version = self.config.version;
        let msg = Message {
            tid: &tid_bytes,
            version: version.as_ref().map(|v| &v[..]),
            ip: None,
            read_only: self.config.read_only,
            body: Body::Query(Query {
                id: self.id,
                want: Want::default(),
                method,
            }),
        };
        self.push(to, &msg);
        self.pending.insert(tid, Pending { to, id, purpose });
        self.timeouts
            .push(Reverse((now + self.config.query_timeout, tid, false)));
        if matches!(purpose, Purpose::Lookup(_)) {
            self.timeouts
                .push(Reverse((now + self.config.query_timeout / 2, tid, true)));
        }
        true
    }

    fn answer(&mut self, now: Instant, from: SocketAddr, tid: &[u8], q: &Query<'_>) {
        let mut r = Response {
            id: self.id,
            ..Response::default()
        };
        let want = if q.want.v4 || q.want.v6 {
            q.want
        } else {
            Want {
                v4: from.is_ipv4(),
                v6: from.is_ipv6(),
            }
        };
        let token;
        let stored_item;
        let blooms;
        let nodes_for = |r: &mut Response<'_>, target: &Id, table: &RoutingTable| {
            let c = table.closest(target, K, now);
            if want.v4 {
                r.nodes = c.iter().filter(|n| n.addr.is_ipv4()).copied().collect();
            }
            if want.v6 {
                r.nodes6 = c.iter().filter(|n| n.addr.is_ipv6()).copied().collect();
            }
        };
        match &q.method {
            Method::Ping => {}
            Method::FindNode { target } => nodes_for(&mut r, target, &self.table),
            Method::GetPeers {
                info_hash,
                noseed,
                scrape,
            } => {
                token = self.tokens.issue(from.ip());
                r.token = Some(&token[..]);
                if *scrape {
                    blooms = self.peers.blooms(info_hash, now);
                    r.bf_seeds = Some(&blooms.0.0[..]);
                    r.bf_peers = Some(&blooms.1.0[..]);
                }
                let offset = self.rng.random::<u32>() as usize;
                r.values = self.peers.get(
                    info_hash,
                    now,
                    self.config.max_values,
                    from.is_ipv6(),
                    offset,
                    *noseed,
                );
                if r.values.is_empty() {
                    nodes_for(&mut r, info_hash, &self.table);
                }
            }
            Method::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                seed,
            } => {
                if !self.tokens.verify(from.ip(), token) {
                    self.send_error(from, tid, error_code::PROTOCOL, b"bad token");
                    return;
                }
                let port = if *implied_port { from.port() } else { *port };
                if port == 0 {
                    self.send_error(from, tid, error_code::PROTOCOL, b"bad port");
                    return;
                }
                self.peers
                    .announce(*info_hash, SocketAddr::new(from.ip(), port), *seed, now);
            }
            Method::SampleInfohashes { target } => {
                let offset = self.rng.random::<u32>() as usize;
                r.samples = self.peers.sample(20, offset);
                r.num = Some(self.peers.len() as i64);
                r.interval = Some(60);
                nodes_for(&mut r, target, &self.table);
            }
            Method::Get { target, seq } => {
                token = self.tokens.issue(from.ip());
                r.token = Some(&token[..]);
                nodes_for(&mut r, target, &self.table);
                stored_item = self.items.get(target, now).cloned();
                if let Some(item) = &stored_item {
                    r.k = item.k;
                    r.seq = item.seq;
                    if seq.is_none_or(|s| item.seq.is_none_or(|have| have > s)) {
                        r.v = Some(item.v.as_slice().into());
                        r.sig = item.sig;
                    }
                }
            }
            Method::Put(p) => {
                if !self.tokens.verify(from.ip(), p.token) {
                    self.send_error(from, tid, error_code::PROTOCOL, b"bad token");
                    return;
                }
                let item = Item {
                    v: p.v.to_vec(),
                    k: p.k,
                    sig: p.sig,
                    seq: p.seq,
                    salt: p.salt.unwrap_or_default().to_vec(),
                };
                let mutable = p.k.is_some() || p.sig.is_some();
                let checked = if mutable && item.k.is_none() {
                    Err(ItemError::Incomplete)
                } else {
                    item.check()
                };
                if let Err(e) = checked {
                    let (code, text): (i64, &[u8]) = match e {
                        ItemError::TooBig(_) => (error_code::MESSAGE_TOO_BIG, b"message too big"),
                        ItemError::SaltTooBig(_) => (error_code::SALT_TOO_BIG, b"salt too big"),
                        ItemError::InvalidSignature => {
                            (error_code::INVALID_SIGNATURE, b"invalid signature")
                        }
                        _ => (error_code::PROTOCOL, b"invalid item"),
                    };
                    self.send_error(from, tid, code, text);
                    return;
                }
                if let Err((code, text)) = self.items.put(item, p.cas, now) {
                    self.send_error(from, tid, code, text);
                    return;
                }
            }
            Method::Other {
                target: Some(t), ..
            } => nodes_for(&mut r, t, &self.table),
            _ => {
                self.send_error(from, tid, error_code::METHOD_UNKNOWN, b"method unknown");
                return;
            }
        }
        self.stats.queries_answered += 1;
        let version = self.config.version;
        let msg = Message {
            tid,
            version: version.as_ref().map(|v| &v[..]),
            ip: Some(from),
            read_only: false,
            body: Body::Response(r),
        };
        self.push(from, &msg);
    }

    fn on_response(&mut self, now: Instant, p: Pending, r: &Response<'_>) {
        match p.purpose {
            Purpose::Sample(lid) => {
                self.events.push_back(Event::Samples {
                    lookup: lid,
                    from: p.to,
                    ok: true,
                    samples: r.samples.clone(),
                    num: r.num,
                    interval: r.interval,
                    nodes: if self.config.ipv6 {
                        r.nodes6.clone()
                    } else {
                        r.nodes.clone()
                    },
                });
            }
            Purpose::Ping => {
                self.pinging.remove(&p.to);
            }
            Purpose::Lookup(lid) => {
                let v6 = self.config.ipv6;
                let own = self.id;
                let Some(run) = self.lookups.get_mut(&lid) else {
                    return;
                };
                run.lookup.on_response(p.to, r.id, r.token);
                let nodes = if v6 { &r.nodes6 } else { &r.nodes };
                for n in nodes {
                    if n.id != own && n.addr.port() != 0 && !n.addr.ip().is_unspecified() {
                        run.lookup.add(Some(n.id), n.addr);
                    }
                }
                if let (Kind::Get { salt }, Some(v)) = (&run.kind, &r.v) {
                    let item = Item {
                        v: v.to_vec(),
                        k: r.k,
                        sig: r.sig,
                        seq: r.seq,
                        salt: if r.k.is_some() {
                            salt.clone()
                        } else {
                            Vec::new()
                        },
                    };
                    let better = match run.best_seq {
                        None => true,
                        Some(prev) => item.k.is_some() && item.seq > prev,
                    };
                    if better && item.target() == run.lookup.target && item.check().is_ok() {
                        run.best_seq = Some(item.seq);
                        if !run.internal {
                            self.events.push_back(Event::Item { lookup: lid, item });
                        }
                    }
                }
                if run.kind == Kind::Scrape {
                    let b = run.blooms.get_or_insert_with(Default::default);
                    if let Some(f) = r.bf_seeds.and_then(ScrapeBloom::from_slice) {
                        b.0.union(&f);
                    }
                    if let Some(f) = r.bf_peers.and_then(ScrapeBloom::from_slice) {
                        b.1.union(&f);
                    }
                }
                if !r.values.is_empty() && !matches!(run.kind, Kind::FindNode | Kind::Scrape) {
                    let peers = run.lookup.new_peers(&r.values);
                    if !peers.is_empty() && !run.internal {
                        self.events.push_back(Event::Peers { lookup: lid, peers });
                    }
                }
                self.drive(now, lid);
            }
            Purpose::Announce(lid) => {
                if let Some(run) = self.lookups.get_mut(&lid) {
                    run.lookup.stats.responses += 1;
                    run.stored += 1;
                    if let Some(o) = run.storing.as_mut() {
                        *o = o.saturating_sub(1);
                    }
                    self.drive(now, lid);
                }
            }
        }
    }

    fn on_failure(&mut self, now: Instant, p: Pending, timed_out: bool) {
        if timed_out {
            if let Some(id) = p.id {
                self.table.failed(&id, p.to, now);
            }
        }
        match p.purpose {
            Purpose::Sample(lid) => {
                self.events.push_back(Event::Samples {
                    lookup: lid,
                    from: p.to,
                    ok: false,
                    samples: Vec::new(),
                    num: None,
                    interval: None,
                    nodes: Vec::new(),
                });
            }
            Purpose::Ping => {
                self.pinging.remove(&p.to);
            }
            Purpose::Lookup(lid) => {
                if let Some(run) = self.lookups.get_mut(&lid) {
                    run.lookup.on_failure(p.to, timed_out);
                    self.drive(now, lid);
                }
            }
            Purpose::Announce(lid) => {
                if let Some(run) = self.lookups.get_mut(&lid) {
                    run.lookup.stats.failures += 1;
                    if let Some(o) = run.storing.as_mut() {
                        *o = o.saturating_sub(1);
                    }
                    self.drive(now, lid);
                }
            }
        }
    }

    /// Sends what a lookup wants sent and finishes it when it has converged.
    fn drive(&mut self, now: Instant, lid: LookupId) {
        loop {
            let Some(run) = self.lookups.get_mut(&lid) else {
                return;
            };
            if run.storing.is_some() {
                break;
            }
            let Some((addr, id)) = run.lookup.next() else {
                break;
            };
            let method = lookup_method(&run.kind, run.lookup.target);
            if !self.send_query(now, addr, id, method, Purpose::Lookup(lid)) {
                if let Some(run) = self.lookups.get_mut(&lid) {
                    run.lookup.on_failure(addr, false);
                }
            }
        }
        let Some(run) = self.lookups.get_mut(&lid) else {
            return;
        };
        if run.storing.is_none() && run.lookup.is_done() {
            let store = match &run.kind {
                Kind::Announce { .. } | Kind::Put { .. } => Some(run.kind.clone()),
                _ => None,
            };
            let Some(kind) = store else {
                self.finish(lid);
                return;
            };
            let targets = run.lookup.closest_responded(K);
            let target = run.lookup.target;
            run.storing = Some(0);
            let mut sent = 0;
            for (node, token) in targets {
                let Some(token) = token else { continue };
                let method = match &kind {
                    Kind::Announce { port, seed } => Method::AnnouncePeer {
                        info_hash: target,
                        port: port.unwrap_or(0),
                        implied_port: port.is_none(),
                        token: &token,
                        seed: *seed,
                    },
                    Kind::Put { item, cas } => Method::Put(krpc::Put {
                        token: &token,
                        v: item.v.as_slice().into(),
                        k: item.k,
                        sig: item.sig,
                        seq: item.seq,
                        cas: *cas,
                        salt: (!item.salt.is_empty()).then_some(item.salt.as_slice()),
                    }),
                    _ => continue,
                };
                if self.send_query(
                    now,
                    node.addr,
                    Some(node.id),
                    method,
                    Purpose::Announce(lid),
                ) {
                    sent += 1;
                }
            }
            if let Some(run) = self.lookups.get_mut(&lid) {
                run.lookup.stats.queries += sent as u32;
                run.storing = Some(sent);
            }
            if sent == 0 {
                self.finish(lid);
            }
        } else if run.storing == Some(0) {
            self.finish(lid);
        }
    }

    fn finish(&mut self, lid: LookupId) {
        let Some(run) = self.lookups.remove(&lid) else {
            return;
        };
        if run.internal {
            return;
        }
        if run.kind == Kind::Scrape {
            let (seeds, peers) = run
                .blooms
                .map_or((0.0, 0.0), |b| (b.0.estimate(), b.1.estimate()));
            self.events.push_back(Event::Scrape {
                lookup: lid,
                estimate: ScrapeEstimate {
                    seeds: seeds.round() as u32,
                    peers: peers.round() as u32,
                },
            });
        }
        let closest = run
            .lookup
            .closest_responded(K)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        self.events.push_back(Event::LookupDone {
            lookup: lid,
            target: run.lookup.target,
            closest,
            announced: run.stored,
            stats: run.lookup.stats,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two nodes wired together; step until quiet.
    fn exchange(nodes: &mut [(SocketAddr, Node)], now: Instant) {
        loop {
            let mut moved = false;
            for i in 0..nodes.len() {
                while let Some(t) = nodes[i].1.poll_transmit() {
                    moved = true;
                    let from = nodes[i].0;
                    if let Some(j) = nodes.iter().position(|(a, _)| *a == t.to) {
                        nodes[j].1.handle_datagram(now, from, &t.bytes);
                    }
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn node(i: u8, now: Instant, bootstrap: Vec<SocketAddr>) -> (SocketAddr, Node) {
        let addr = SocketAddr::from(([10, 0, 0, i], 6881));
        let config = Config {
            bootstrap,
            ..Config::default()
        };
        (addr, Node::new(config, Id::sha1(&[i]), now, u64::from(i)))
    }

    #[test]
    fn announce_then_get_peers_between_three_nodes() {
        let now = Instant::now();
        let a = node(1, now, vec![]);
        let boot = vec![a.0];
        let mut nodes = vec![a, node(2, now, boot.clone()), node(3, now, boot)];
        nodes[1].1.bootstrap(now);
        nodes[2].1.bootstrap(now);
        exchange(&mut nodes, now);
        while nodes[1].1.poll_event().is_some() {}
        assert!(nodes[0].1.routing_table().len() >= 2);
        let hash = Id::from_name("room");
        let lid = nodes[1].1.announce(now, hash, Some(7000), false);
        exchange(&mut nodes, now);
        let ev: Vec<_> = std::iter::from_fn(|| nodes[1].1.poll_event()).collect();
        assert!(
            ev.iter().any(|e| matches!(e, Event::LookupDone { lookup, announced, .. } if *lookup == lid && *announced >= 1)),
            "{ev:?}"
        );
        // BEP 33: node 2 announces as a seed at another address; a scrape counts both.
        nodes[2].1.announce(now, hash, Some(7001), true);
        exchange(&mut nodes, now);
        while nodes[2].1.poll_event().is_some() {}
        let lid = nodes[0].1.scrape(now, hash);
        exchange(&mut nodes, now);
        let ev: Vec<_> = std::iter::from_fn(|| nodes[0].1.poll_event()).collect();
        assert!(
            ev.iter().any(|e| matches!(e, Event::Scrape { lookup, estimate } if *lookup == lid && estimate.seeds == 1 && estimate.peers == 1)),
            "{ev:?}"
        );
        // BEP 51: node 0 holds the announce and samples it.
        let to = nodes[0].0;
        let lid = nodes[2].1.sample_infohashes(now, to, Id::ZERO);
        exchange(&mut nodes, now);
        let ev: Vec<_> = std::iter::from_fn(|| nodes[2].1.poll_event()).collect();
        assert!(
            ev.iter().any(|e| matches!(e, Event::Samples { lookup, ok: true, samples, num: Some(1), .. } if *lookup == lid && samples == &vec![hash])),
            "{ev:?}"
        );
        let lid = nodes[2].1.get_peers(now, hash);
        exchange(&mut nodes, now);
        let ev: Vec<_> = std::iter::from_fn(|| nodes[2].1.poll_event()).collect();
        let want = SocketAddr::from(([10, 0, 0, 2], 7000));
        assert!(
            ev.iter().any(|e| matches!(e, Event::Peers { lookup, peers } if *lookup == lid && peers.contains(&want))),
            "{ev:?}"
        );
    }

    #[test]
    fn garbage_is_counted_and_bad_token_refused() {
        let now = Instant::now();
        let (_, mut n) = node(1, now, vec![]);
        let from = SocketAddr::from(([10, 0, 0, 9], 1));
        n.handle_datagram(now, from, b"\xff\x00garbage");
        n.handle_datagram(now, from, b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe");
        assert_eq!(n.stats().malformed, 2);
        let t = n.poll_transmit().unwrap();
        let m = Message::decode(&t.bytes).unwrap();
        assert!(matches!(m.body, Body::Error(ErrorBody { code: 203, .. })));
        let q = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe";
        n.handle_datagram(now, from, q);
        let t = n.poll_transmit().unwrap();
        let m = Message::decode(&t.bytes).unwrap();
        assert!(matches!(m.body, Body::Error(ErrorBody { code: 203, .. })));
        // An unmatched response is counted, not trusted.
        n.handle_datagram(
            now,
            from,
            b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re",
        );
        assert_eq!(n.stats().unmatched, 1);
        assert!(n.routing_table().is_empty());
    }

    #[test]
    fn rate_limit_and_read_only() {
        let now = Instant::now();
        let (_, mut n) = node(1, now, vec![]);
        let from = SocketAddr::from(([10, 0, 0, 9], 1));
        let ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        for _ in 0..300 {
            n.handle_datagram(now, from, ping);
        }
        assert_eq!(n.stats().rate_limited, 100);
        n.set_read_only(true);
        while n.poll_transmit().is_some() {}
        n.handle_datagram(now + Duration::from_secs(10), from, ping);
        assert!(n.poll_transmit().is_none());
        // Our queries now carry ro=1.
        n.ping(now, SocketAddr::from(([10, 0, 0, 10], 1)));
        let t = n.poll_transmit().unwrap();
        assert!(Message::decode(&t.bytes).unwrap().read_only);
    }

    #[test]
    fn timeouts_fail_lookups() {
        let now = Instant::now();
        let (_, mut n) = node(1, now, vec![SocketAddr::from(([10, 0, 0, 50], 1))]);
        let lid = n.bootstrap(now);
        assert!(n.poll_transmit().is_some());
        let mut ev = None;
        for _ in 0..10 {
            let t = n.poll_timeout().unwrap();
            n.handle_timeout(t);
            ev = n.poll_event();
            if ev.is_some() {
                break;
            }
        }
        match ev {
            Some(Event::LookupDone {
                lookup,
                closest,
                stats,
                ..
            }) => {
                assert_eq!(lookup, lid);
                assert!(closest.is_empty());
                // Retried after each timeout, up to 3 attempts.
                assert_eq!(stats.queries, 3);
                assert_eq!(stats.failures, 3);
            }
            e => panic!("{e:?}"),
        }
        assert_eq!(n.pending_queries(), 0);
    }
}

#[cfg(test)]
mod bep42_tests {
    use super::*;

    #[test]
    fn adopts_secure_id_after_votes() {
        let now = Instant::now();
        let config = Config {
            secure_id: true,
            ..Config::default()
        };
        let mut n = Node::new(config, Id([0; 20]), now, 1);
        let ext: SocketAddr = "124.31.75.21:6881".parse().unwrap();
        for i in 0..IP_VOTES {
            let to = SocketAddr::from(([10, 0, 1, i as u8], 6881));
            n.ping(now, to);
            let t = n.poll_transmit().unwrap();
            let q = Message::decode(&t.bytes).unwrap();
            let resp = Message {
                tid: q.tid,
                version: None,
                ip: Some(ext),
                read_only: false,
                body: Body::Response(Response {
                    id: Id([i as u8 + 1; 20]),
                    ..Response::default()
                }),
            };
            n.handle_datagram(now, to, &resp.encode());
        }
        let events: Vec<_> = std::iter::from_fn(|| n.poll_event()).collect();
        assert!(events.contains(&Event::ExternalIp(ext.ip())), "{events:?}");
        assert!(n.id().is_secure_for(ext.ip()));
        assert!(events.contains(&Event::IdChanged(n.id())));
        assert!(n.routing_table().len() >= 8);
        assert_eq!(n.routing_table().own_id(), n.id());
    }
}

#[cfg(test)]
mod maintenance_tests {
    use super::*;
    use crate::routing::STALE_AFTER;

    fn query(ro: bool) -> Vec<u8> {
        Message {
            tid: b"q1",
            version: None,
            ip: None,
            read_only: ro,
            body: Body::Query(Query {
                id: Id([5; 20]),
                want: Want::default(),
                method: Method::Ping,
            }),
        }
        .encode()
    }

    #[test]
    fn read_only_senders_are_not_added() {
        let now = Instant::now();
        let mut n = Node::new(Config::default(), Id([1; 20]), now, 1);
        let from = SocketAddr::from(([10, 0, 0, 5], 1));
        n.handle_datagram(now, from, &query(true));
        let sent: Vec<_> = std::iter::from_fn(|| n.poll_transmit()).collect();
        assert_eq!(sent.len(), 1, "answered, not pinged");
        n.handle_datagram(now, from, &query(false));
        let sent: Vec<_> = std::iter::from_fn(|| n.poll_transmit()).collect();
        assert_eq!(sent.len(), 2, "answered and pinged to verify");
    }

    #[test]
    fn stale_buckets_are_refreshed_and_questionable_nodes_pinged() {
        let now = Instant::now();
        let mut n = Node::new(Config::default(), Id([1; 20]), now, 1);
        for i in 0..4u8 {
            let info = NodeInfo {
                id: Id([0x80 | i; 20]),
                addr: SocketAddr::from(([10, 0, 1, i], 6881)),
            };
            n.add_node(info, now);
        }
        let later = now + STALE_AFTER + Duration::from_secs(1);
        n.handle_timeout(later);
        let sent: Vec<_> = std::iter::from_fn(|| n.poll_transmit()).collect();
        let methods: Vec<_> = sent
            .iter()
            .map(|t| match Message::decode(&t.bytes).unwrap().body {
                Body::Query(q) => q.method,
                b => panic!("{b:?}"),
            })
            .collect();
        assert!(
            methods.iter().any(|m| matches!(m, Method::FindNode { .. })),
            "{methods:?}"
        );
        assert!(
            methods.iter().any(|m| matches!(m, Method::Ping)),
            "{methods:?}"
        );
        // Nobody answers: after the timeouts the nodes fail; bad ones are dropped
        // from lookups' results and replaced when a replacement exists.
        let mut t = later;
        for _ in 0..20 {
            t += Duration::from_secs(2);
            n.handle_timeout(t);
            while n.poll_transmit().is_some() {}
        }
        assert!(n.table_stats(t).bad > 0, "{:?}", n.table_stats(t));
        assert_eq!(n.pending_queries(), 0);
    }
}
