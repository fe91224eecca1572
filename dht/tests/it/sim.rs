//! A whole DHT in one process: sans-IO nodes exchanging packets through an in-memory
//! router with seeded randomness, latency and loss, on virtual time.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rivulet_dht::{Config, Event, Id, LookupId, Node, RateLimit};

struct Packet {
    at: Instant,
    seq: u64,
    from: SocketAddr,
    to: usize,
    bytes: Vec<u8>,
}
impl PartialEq for Packet {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Packet {}
impl PartialOrd for Packet {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Packet {
    // Reversed: BinaryHeap pops the earliest.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

pub(crate) struct Sim {
    pub(crate) now: Instant,
    pub(crate) nodes: Vec<Node>,
    pub(crate) addrs: Vec<SocketAddr>,
    pub(crate) alive: Vec<bool>,
    index: HashMap<SocketAddr, usize>,
    packets: BinaryHeap<Packet>,
    timers: BinaryHeap<std::cmp::Reverse<(Instant, usize)>>,
    next_timer: Vec<Option<Instant>>,
    pub(crate) events: Vec<(usize, Instant, Event)>,
    rng: StdRng,
    seq: u64,
    pub(crate) loss: f64,
    pub(crate) delivered: u64,
}

fn addr(i: usize) -> SocketAddr {
    let ip = 0x0a00_0001u32 + i as u32;
    SocketAddr::from((Ipv4Addr::from(ip), 6881))
}

impl Sim {
    /// `n` nodes; node `i` bootstraps from a random earlier node, joins staggered by
    /// `join_gap`, then every node runs a second bootstrap so early tables fill up.
    pub(crate) fn new(n: usize, seed: u64) -> Sim {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut sim = Sim {
            now: t0,
            nodes: Vec::with_capacity(n),
            addrs: Vec::with_capacity(n),
            alive: vec![true; n],
            index: HashMap::new(),
            packets: BinaryHeap::new(),
            timers: BinaryHeap::new(),
            next_timer: vec![None; n],
            events: Vec::new(),
            rng: StdRng::seed_from_u64(seed ^ 0x5eed),
            seq: 0,
            loss: 0.0,
            delivered: 0,
        };
        for i in 0..n {
            let a = addr(i);
            let bootstrap = if i == 0 {
                vec![]
            } else {
                vec![addr(rng.random_range(0..i))]
            };
            let mut config = Config::default();
            config.bootstrap = bootstrap;
            config.rate_limit = Some(RateLimit {
                per_second: 100.0,
                burst: 400.0,
            });
            let id = Id::random(&mut rng);
            sim.nodes.push(Node::new(config, id, t0, rng.random()));
            sim.addrs.push(a);
            sim.index.insert(a, i);
        }
        // Staggered join: 20 nodes per simulated second.
        for i in 0..n {
            let at = t0 + Duration::from_millis(50 * i as u64);
            sim.run_until(at);
            sim.nodes[i].bootstrap(sim.now);
            sim.drain(i);
        }
        sim.run_for(Duration::from_secs(10));
        for i in 0..n {
            sim.nodes[i].bootstrap(sim.now);
            sim.drain(i);
            if i % 50 == 49 {
                sim.run_for(Duration::from_millis(500));
            }
        }
        sim.run_for(Duration::from_secs(10));
        sim.events.clear();
        sim
    }

    fn drain(&mut self, i: usize) {
        let from = self.addrs[i];
        while let Some(t) = self.nodes[i].poll_transmit() {
            let Some(&to) = self.index.get(&t.to) else {
                continue;
            };
            if self.loss > 0.0 && self.rng.random_bool(self.loss) {
                continue;
            }
            let latency = Duration::from_millis(self.rng.random_range(10..100));
            self.seq += 1;
            self.packets.push(Packet {
                at: self.now + latency,
                seq: self.seq,
                from,
                to,
                bytes: t.bytes,
            });
        }
        while let Some(e) = self.nodes[i].poll_event() {
            self.events.push((i, self.now, e));
        }
        let t = self.nodes[i].poll_timeout();
        if t != self.next_timer[i] {
            self.next_timer[i] = t;
            if let Some(t) = t {
                self.timers.push(std::cmp::Reverse((t, i)));
            }
        }
    }

    /// Processes the next packet or timer if it is due by `limit`; false if none.
    fn step(&mut self, limit: Instant) -> bool {
        let p = self.packets.peek().map(|p| p.at);
        let t = self.timers.peek().map(|r| r.0.0);
        match (p, t) {
            (Some(p), t) if p <= limit && t.is_none_or(|t| p <= t) => {
                let pkt = self.packets.pop().expect("peeked");
                self.now = self.now.max(pkt.at);
                if self.alive[pkt.to] {
                    self.delivered += 1;
                    self.nodes[pkt.to].handle_datagram(self.now, pkt.from, &pkt.bytes);
                    self.drain(pkt.to);
                }
                true
            }
            (_, Some(t)) if t <= limit => {
                let std::cmp::Reverse((t, i)) = self.timers.pop().expect("peeked");
                if self.next_timer[i] != Some(t) || !self.alive[i] {
                    return true;
                }
                self.next_timer[i] = None;
                self.now = self.now.max(t);
                self.nodes[i].handle_timeout(self.now);
                self.drain(i);
                true
            }
            _ => false,
        }
    }

    pub(crate) fn run_until(&mut self, at: Instant) {
        while self.step(at) {}
        self.now = self.now.max(at);
    }

    pub(crate) fn run_for(&mut self, d: Duration) {
        let at = self.now + d;
        self.run_until(at);
    }

    /// Runs until node `i` reports the end of lookup `lid`; returns the events of that
    /// lookup (the `LookupDone` last) and when it ended.
    pub(crate) fn run_lookup(&mut self, i: usize, lid: LookupId) -> (Vec<Event>, Instant) {
        let deadline = self.now + Duration::from_secs(120);
        let mut seen = Vec::new();
        let mut scanned = 0;
        loop {
            while scanned < self.events.len() {
                let (n, at, e) = &self.events[scanned];
                scanned += 1;
                if *n != i {
                    continue;
                }
                match e {
                    Event::Peers { lookup, .. } if *lookup == lid => seen.push(e.clone()),
                    Event::LookupDone { lookup, .. } if *lookup == lid => {
                        seen.push(e.clone());
                        let at = *at;
                        self.events.clear();
                        return (seen, at);
                    }
                    _ => {}
                }
            }
            assert!(self.now < deadline, "lookup did not finish");
            if !self.step(deadline) {
                self.now = deadline;
            }
        }
    }

    /// The `k` live nodes closest to `target`, excluding `exclude`.
    pub(crate) fn true_closest(&self, target: &Id, exclude: usize, k: usize) -> Vec<Id> {
        let mut all: Vec<Id> = (0..self.nodes.len())
            .filter(|&i| i != exclude && self.alive[i])
            .map(|i| self.nodes[i].id())
            .collect();
        all.sort_by_key(|id| id.distance(target));
        all.truncate(k);
        all
    }

    pub(crate) fn random_live(&mut self) -> usize {
        loop {
            let i = self.rng.random_range(0..self.nodes.len());
            if self.alive[i] {
                return i;
            }
        }
    }

    pub(crate) fn random_id(&mut self) -> Id {
        Id::random(&mut self.rng)
    }

    /// Kills a random `fraction` of the nodes (they stop answering).
    pub(crate) fn kill(&mut self, fraction: f64) {
        let n = (self.nodes.len() as f64 * fraction) as usize;
        let mut killed = 0;
        while killed < n {
            let i = self.rng.random_range(1..self.nodes.len());
            if self.alive[i] {
                self.alive[i] = false;
                killed += 1;
            }
        }
    }
}

/// Figures from one batch of lookups.
#[derive(Debug, Default)]
pub(crate) struct Figures {
    pub(crate) lookups: usize,
    pub(crate) all_k: usize,
    pub(crate) closest_found: usize,
    pub(crate) overlap_sum: usize,
    pub(crate) messages: u64,
    pub(crate) sim_ms: u128,
    pub(crate) peers_found: usize,
    pub(crate) announces: usize,
}

impl Figures {
    fn print(&self, label: &str) {
        let n = self.lookups.max(1) as f64;
        println!(
            "{label}: lookups {} | all 8 closest found {:.1}% | closest found {:.1}% | mean overlap {:.2}/8 | msgs/lookup {:.1} | sim ms/lookup {:.0} | announced peer found {}/{}",
            self.lookups,
            100.0 * self.all_k as f64 / n,
            100.0 * self.closest_found as f64 / n,
            self.overlap_sum as f64 / n,
            self.messages as f64 / n,
            self.sim_ms as f64 / n,
            self.peers_found,
            self.announces,
        );
    }
}

/// Runs `lookups` find_node lookups for random keys and `announces` announce/get_peers
/// pairs; prints and returns the figures.
pub(crate) fn measure(sim: &mut Sim, lookups: usize, announces: usize, label: &str) -> Figures {
    let mut f = Figures::default();
    for _ in 0..lookups {
        let origin = sim.random_live();
        let target = sim.random_id();
        let start = sim.now;
        let lid = sim.nodes[origin].find_node(start, target);
        sim.drain(origin);
        let (events, end) = sim.run_lookup(origin, lid);
        let Some(Event::LookupDone { closest, stats, .. }) = events.last() else {
            panic!("no LookupDone");
        };
        let truth = sim.true_closest(&target, origin, 8);
        let found: Vec<Id> = closest.iter().map(|n| n.id).collect();
        let overlap = truth.iter().filter(|t| found.contains(t)).count();
        f.lookups += 1;
        f.overlap_sum += overlap;
        if overlap == truth.len() {
            f.all_k += 1;
        }
        if found.first() == truth.first() {
            f.closest_found += 1;
        }
        f.messages += u64::from(stats.queries);
        f.sim_ms += (end - start).as_millis();
    }
    for _ in 0..announces {
        let a = sim.random_live();
        let b = sim.random_live();
        let hash = sim.random_id();
        let port = 7000 + (a % 1000) as u16;
        let lid = sim.nodes[a].announce(sim.now, hash, Some(port), false);
        sim.drain(a);
        sim.run_lookup(a, lid);
        let lid = sim.nodes[b].get_peers(sim.now, hash);
        sim.drain(b);
        let (events, _) = sim.run_lookup(b, lid);
        let want = SocketAddr::new(sim.addrs[a].ip(), port);
        f.announces += 1;
        if events
            .iter()
            .any(|e| matches!(e, Event::Peers { peers, .. } if peers.contains(&want)))
        {
            f.peers_found += 1;
        }
    }
    f.print(label);
    f
}

fn scenario(n: usize, lookups: usize, announces: usize) {
    let t = std::time::Instant::now();
    let mut sim = Sim::new(n, 42);
    let msgs = sim.delivered;
    println!(
        "N={n}: built in {:.1?} wall, {msgs} datagrams delivered while joining ({:.0} per node)",
        t.elapsed(),
        msgs as f64 / n as f64
    );
    let good = measure(&mut sim, lookups, announces, &format!("N={n} loss 0%"));
    assert_eq!(
        good.peers_found, good.announces,
        "announced peers are found"
    );
    assert!(
        good.all_k * 100 >= good.lookups * 95,
        "at 0% loss nearly every lookup finds all 8 closest"
    );
    assert_eq!(
        good.closest_found, good.lookups,
        "the closest node is always found"
    );
    sim.loss = 0.2;
    sim.kill(0.1);
    let bad = measure(
        &mut sim,
        lookups,
        announces,
        &format!("N={n} loss 20% + 10% gone"),
    );
    assert!(bad.closest_found * 100 >= bad.lookups * 90, "{bad:?}");
    assert!(bad.peers_found * 100 >= bad.announces * 80, "{bad:?}");
    println!("N={n}: total wall {:.1?}", t.elapsed());
}

#[test]
fn sim_1000_nodes() {
    scenario(1000, 100, 20);
}

/// Slow in debug builds: `cargo test -p rivulet-dht --release -- --ignored sim_10000`.
#[test]
#[ignore]
fn sim_10000_nodes() {
    scenario(10_000, 300, 50);
}
