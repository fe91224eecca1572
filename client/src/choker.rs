//! The choker, sans-IO: which interested peers we upload to.
//!
//! Every [`ChokerConfig::rechoke_interval`] (10 s) the choker ranks the interested
//! peers and unchokes the best [`ChokerConfig::upload_slots`] of them:
//!
//! - **Downloading** (tit-for-tat): by the rate at which each peer sent us payload over
//!   the last [`ChokerConfig::rate_window`] (20 s); one slot is an *optimistic unchoke*
//!   that goes to a choked interested peer regardless of its rate, rotated every
//!   [`ChokerConfig::optimistic_interval`] (30 s) to the peer that has waited longest
//!   (never-unchoked peers first), so newcomers get a chance to prove themselves.
//! - **Seeding** ([`SeedAlgorithm`]): nobody sends us anything, so either
//!   [`SeedAlgorithm::RoundRobin`] (libtorrent's default: a peer keeps its slot for a
//!   turn of [`ChokerConfig::seed_turn`], then yields to the peer that has waited
//!   longest) or [`SeedAlgorithm::FastestUpload`] (the peers we upload to fastest).
//!
//! Between rechokes, a free slot is filled at once: a peer that becomes interested
//! while slots are free is unchoked immediately, and so is the longest-waiting peer when
//! an unchoked one leaves or loses interest.
//!
//! Rates are sampled at each rechoke from cumulative byte counters
//! ([`Choker::record_download`], [`Choker::record_upload`]): cheap per block, and a
//! rolling window over the last samples. The choker reads no clock: every call takes
//! `now`. Decisions come out of [`Choker::poll_change`]; the caller sends the choke or
//! unchoke messages.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How upload slots are shared while seeding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SeedAlgorithm {
    /// Every interested peer gets turns of [`ChokerConfig::seed_turn`] (default).
    #[default]
    RoundRobin,
    /// The peers we upload to fastest keep the slots (plus the optimistic one).
    FastestUpload,
}

/// The choker's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChokerConfig {
    /// Peers unchoked at once, the optimistic unchoke included (default 8; 0: upload
    /// to nobody).
    pub upload_slots: usize,
    /// How often the slots are reassigned (default 10 s).
    pub rechoke_interval: Duration,
    /// How often the optimistic unchoke moves to another peer (default 30 s).
    pub optimistic_interval: Duration,
    /// The window download and upload rates are measured over (default 20 s).
    pub rate_window: Duration,
    /// How long a seed's round-robin turn lasts (default 30 s).
    pub seed_turn: Duration,
    /// The seeding algorithm (default round robin).
    pub seed_algorithm: SeedAlgorithm,
}

impl Default for ChokerConfig {
    fn default() -> Self {
        ChokerConfig {
            upload_slots: 8,
            rechoke_interval: Duration::from_secs(10),
            optimistic_interval: Duration::from_secs(30),
            rate_window: Duration::from_secs(20),
            seed_turn: Duration::from_secs(30),
            seed_algorithm: SeedAlgorithm::RoundRobin,
        }
    }
}

/// Samples of a cumulative byte counter, for a rate over a rolling window.
#[derive(Debug, Clone, Default)]
struct RateMeter {
    total: u64,
    /// (when, total then), oldest first; at most a window's worth plus one.
    samples: VecDeque<(Instant, u64)>,
}

/// Samples kept per meter at most (bounds memory whatever the intervals).
const MAX_SAMPLES: usize = 16;

impl RateMeter {
    fn sample(&mut self, now: Instant, window: Duration) {
        self.samples.push_back((now, self.total));
        // Keep the newest sample at or before now - window as the window's start.
        while self.samples.len() > MAX_SAMPLES
            || (self.samples.len() > 1
                && self
                    .samples
                    .get(1)
                    .is_some_and(|&(t, _)| now.saturating_duration_since(t) >= window))
        {
            self.samples.pop_front();
        }
    }

    /// Bytes per second between the oldest kept sample and `now`'s total.
    fn rate(&self, now: Instant) -> u64 {
        let Some(&(t0, b0)) = self.samples.front() else {
            return 0;
        };
        let dt = now.saturating_duration_since(t0).as_secs_f64();
        if dt <= 0.0 {
            return 0;
        }
        ((self.total - b0) as f64 / dt) as u64
    }
}

#[derive(Debug, Clone)]
struct Peer {
    interested: bool,
    unchoked: bool,
    optimistic: bool,
    /// When this peer's current unchoke began.
    unchoked_at: Option<Instant>,
    /// When it was last choked (or connected): how long it has waited.
    waiting_since: Instant,
    /// Whether it was ever unchoked (newcomers go first for the optimistic slot).
    ever_unchoked: bool,
    down: RateMeter,
    up: RateMeter,
}

/// The choker for one torrent. See the [module docs](self). `K` is the caller's peer
/// key.
#[derive(Debug)]
pub struct Choker<K> {
    config: ChokerConfig,
    seeding: bool,
    peers: HashMap<K, Peer>,
    unchoked: usize,
    next_rechoke: Option<Instant>,
    next_optimistic: Option<Instant>,
    changes: VecDeque<(K, bool)>,
}

impl<K: Copy + Eq + Hash + Ord> Choker<K> {
    /// A choker with no peers.
    pub fn new(config: ChokerConfig) -> Self {
        Choker {
            config,
            seeding: false,
            peers: HashMap::new(),
            unchoked: 0,
            next_rechoke: None,
            next_optimistic: None,
            changes: VecDeque::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ChokerConfig {
        &self.config
    }

    /// Sets the seeding algorithm (takes effect at the next rechoke).
    pub fn set_seed_algorithm(&mut self, algorithm: SeedAlgorithm) {
        self.config.seed_algorithm = algorithm;
    }

    /// Switches between the downloading (tit-for-tat) and seeding algorithms; takes
    /// effect at the next rechoke.
    pub fn set_seeding(&mut self, seeding: bool) {
        self.seeding = seeding;
    }

    /// Whether `key` is unchoked.
    pub fn is_unchoked(&self, key: K) -> bool {
        self.peers.get(&key).is_some_and(|p| p.unchoked)
    }

    /// Peers unchoked now.
    pub fn unchoked_count(&self) -> usize {
        self.unchoked
    }

    /// A connected peer (choked, not interested).
    pub fn add_peer(&mut self, now: Instant, key: K) {
        self.peers.entry(key).or_insert_with(|| Peer {
            interested: false,
            unchoked: false,
            optimistic: false,
            unchoked_at: None,
            waiting_since: now,
            ever_unchoked: false,
            down: RateMeter::default(),
            up: RateMeter::default(),
        });
        self.next_rechoke
            .get_or_insert(now + self.config.rechoke_interval);
    }

    /// The peer is gone; its slot (if it had one) goes to a waiting peer.
    pub fn remove_peer(&mut self, now: Instant, key: K) {
        if let Some(p) = self.peers.remove(&key)
            && p.unchoked
        {
            self.unchoked -= 1;
            self.fill(now);
        }
        self.changes.retain(|(k, _)| *k != key);
    }

    /// The peer's interest in our pieces changed. An interested peer takes a free slot
    /// at once; one that lost interest gives its slot up.
    pub fn set_interested(&mut self, now: Instant, key: K, interested: bool) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.interested == interested {
            return;
        }
        p.interested = interested;
        if !interested && p.unchoked {
            self.set(now, key, false);
        }
        self.fill(now);
    }

    /// `bytes` of payload received from the peer.
    pub fn record_download(&mut self, key: K, bytes: u64) {
        if let Some(p) = self.peers.get_mut(&key) {
            p.down.total += bytes;
        }
    }

    /// `bytes` of payload sent to the peer.
    pub fn record_upload(&mut self, key: K, bytes: u64) {
        if let Some(p) = self.peers.get_mut(&key) {
            p.up.total += bytes;
        }
    }

    /// The peer's download rate (bytes/s it sent us over the window), as of the last
    /// rechoke's sample.
    pub fn download_rate(&self, now: Instant, key: K) -> u64 {
        self.peers.get(&key).map_or(0, |p| p.down.rate(now))
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_rechoke
    }

    /// Runs the rechoke if it is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_rechoke.is_some_and(|t| t <= now) {
            self.rechoke(now);
        }
    }

    /// The next decision: `(peer, true)` to unchoke, `(peer, false)` to choke.
    pub fn poll_change(&mut self) -> Option<(K, bool)> {
        self.changes.pop_front()
    }

    fn set(&mut self, now: Instant, key: K, unchoke: bool) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.unchoked == unchoke {
            return;
        }
        p.unchoked = unchoke;
        if unchoke {
            self.unchoked += 1;
            p.unchoked_at = Some(now);
            p.ever_unchoked = true;
        } else {
            self.unchoked -= 1;
            p.unchoked_at = None;
            p.optimistic = false;
            p.waiting_since = now;
        }
        // A decision reversed before it was polled cancels out.
        if let Some(pos) = self.changes.iter().position(|(k, _)| *k == key) {
            self.changes.remove(pos);
        } else {
            self.changes.push_back((key, unchoke));
        }
    }

    /// Gives free slots to the interested choked peers that waited longest.
    fn fill(&mut self, now: Instant) {
        while self.unchoked < self.config.upload_slots {
            let Some(key) = self.longest_waiting(|_| true) else {
                return;
            };
            self.set(now, key, true);
        }
    }

    /// The choked interested peer that has waited longest (never-unchoked first).
    fn longest_waiting(&self, extra: impl Fn(&K) -> bool) -> Option<K> {
        self.peers
            .iter()
            .filter(|(k, p)| p.interested && !p.unchoked && extra(k))
            .min_by_key(|(k, p)| (p.ever_unchoked, p.waiting_since, **k))
            .map(|(k, _)| *k)
    }

    /// Reassigns the slots (see the module docs).
    pub fn rechoke(&mut self, now: Instant) {
        self.next_rechoke = Some(now + self.config.rechoke_interval);
        let window = self.config.rate_window;
        for p in self.peers.values_mut() {
            p.down.sample(now, window);
            p.up.sample(now, window);
        }
        let slots = self.config.upload_slots;
        if slots == 0 {
            let all: Vec<K> = self.peers.keys().copied().collect();
            for k in all {
                self.set(now, k, false);
            }
            return;
        }
        // The optimistic unchoke: kept until its interval ends, then moved.
        let rotate = self.next_optimistic.is_none_or(|t| t <= now);
        let mut optimistic = self
            .peers
            .iter()
            .find(|(_, p)| p.optimistic && p.interested)
            .map(|(k, _)| *k);
        // Ranked peers: the regular slots.
        let mut ranked: Vec<(K, u64, Instant)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.interested)
            .map(|(k, p)| {
                let score = if !self.seeding {
                    p.down.rate(now)
                } else {
                    match self.config.seed_algorithm {
                        SeedAlgorithm::FastestUpload => p.up.rate(now),
                        SeedAlgorithm::RoundRobin => {
                            // Peers within their turn keep it; the rest by how long
                            // they waited.
                            match p.unchoked_at {
                                Some(t)
                                    if now.saturating_duration_since(t) < self.config.seed_turn =>
                                {
                                    u64::MAX
                                }
                                _ => 0,
                            }
                        }
                    }
                };
                let since = if p.unchoked {
                    p.unchoked_at.unwrap_or(now)
                } else {
                    p.waiting_since
                };
                (*k, score, since)
            })
            .collect();
        let round_robin = self.seeding && self.config.seed_algorithm == SeedAlgorithm::RoundRobin;
        ranked.sort_by(|a, b| {
            b.1.cmp(&a.1).then_with(|| {
                if round_robin {
                    // Waited longest first.
                    let wa = self.peers.get(&a.0).map(|p| (p.unchoked, p.ever_unchoked));
                    let wb = self.peers.get(&b.0).map(|p| (p.unchoked, p.ever_unchoked));
                    wa.cmp(&wb).then(a.2.cmp(&b.2)).then(a.0.cmp(&b.0))
                } else {
                    a.0.cmp(&b.0)
                }
            })
        });
        // Round robin rotates every slot already; the other algorithms keep one slot
        // for the optimistic unchoke when there are more candidates than slots.
        let with_optimistic = ranked.len() > slots && !round_robin;
        let regular = if with_optimistic { slots - 1 } else { slots };
        let mut keep: Vec<K> = ranked.iter().take(regular).map(|r| r.0).collect();
        if with_optimistic {
            if optimistic.is_some_and(|k| keep.contains(&k)) || rotate {
                optimistic = None;
            }
            if optimistic.is_none() {
                optimistic = self.longest_waiting(|k| !keep.contains(k));
                if rotate {
                    // Prefer a peer that is choked now, so the slot really moves.
                    let fresh = self
                        .peers
                        .iter()
                        .filter(|(k, p)| p.interested && !p.unchoked && !keep.contains(k))
                        .min_by_key(|(k, p)| (p.ever_unchoked, p.waiting_since, **k))
                        .map(|(k, _)| *k);
                    optimistic = fresh.or(optimistic);
                }
                self.next_optimistic = Some(now + self.config.optimistic_interval);
            }
            if let Some(k) = optimistic {
                keep.push(k);
            }
        } else {
            optimistic = None;
        }
        let all: Vec<K> = self.peers.keys().copied().collect();
        // Choke first, so the count never passes the slots.
        for k in &all {
            if !keep.contains(k) {
                self.set(now, *k, false);
            }
        }
        for k in &keep {
            self.set(now, *k, true);
        }
        for (k, p) in self.peers.iter_mut() {
            p.optimistic = Some(*k) == optimistic;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(slots: usize) -> ChokerConfig {
        ChokerConfig {
            upload_slots: slots,
            ..ChokerConfig::default()
        }
    }

    fn drain(c: &mut Choker<u32>) -> Vec<(u32, bool)> {
        std::iter::from_fn(|| c.poll_change()).collect()
    }

    fn unchoked(c: &Choker<u32>, n: u32) -> Vec<u32> {
        (0..n).filter(|k| c.is_unchoked(*k)).collect()
    }

    #[test]
    fn free_slots_are_taken_at_once_and_freed_slots_refilled() {
        let t0 = Instant::now();
        let mut c = Choker::new(config(2));
        for k in 0..4 {
            c.add_peer(t0, k);
        }
        c.set_interested(t0, 0, true);
        c.set_interested(t0, 1, true);
        c.set_interested(t0, 2, true);
        assert_eq!(drain(&mut c), vec![(0, true), (1, true)]);
        assert_eq!(c.unchoked_count(), 2);
        // Peer 0 loses interest: its slot goes to 2, the one waiting.
        c.set_interested(t0, 0, false);
        assert_eq!(drain(&mut c), vec![(0, false), (2, true)]);
        // Peer 1 leaves: nobody else is interested, so the slot stays free.
        c.remove_peer(t0, 1);
        assert_eq!(drain(&mut c), vec![]);
        assert_eq!(c.unchoked_count(), 1);
        c.set_interested(t0, 3, true);
        assert_eq!(drain(&mut c), vec![(3, true)]);
    }

    #[test]
    fn tit_for_tat_unchokes_the_fastest_uploaders_to_us_plus_one_optimistic() {
        let t0 = Instant::now();
        let mut c = Choker::new(config(3));
        for k in 0..6 {
            c.add_peer(t0, k);
            c.set_interested(t0, k, true);
        }
        drain(&mut c);
        // 0, 1, 2 were unchoked first; over the next 10 s peers 4 and 5 send us the
        // most (a peer uploads to us whether or not we choke it).
        c.rechoke(t0); // first samples
        drain(&mut c);
        let rates = [100u64, 0, 0, 50, 10_000, 20_000];
        for (k, r) in rates.iter().enumerate() {
            c.record_download(k as u32, r * 10);
        }
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(c.poll_timeout(), Some(t1));
        c.handle_timeout(t1);
        assert_eq!(c.download_rate(t1, 5), 20_000);
        let now = unchoked(&c, 6);
        // The two fastest hold the regular slots; the third is the optimistic unchoke
        // chosen at the first rechoke (3: never unchoked before), kept for 30 s.
        assert_eq!(now, vec![3, 4, 5]);
        assert_eq!(c.unchoked_count(), 3);
    }

    #[test]
    fn the_optimistic_unchoke_rotates_every_30_seconds_to_every_waiting_peer() {
        let t0 = Instant::now();
        let mut c = Choker::new(config(2));
        for k in 0..5 {
            c.add_peer(t0, k);
            c.set_interested(t0, k, true);
        }
        // Peer 0 is the only one sending us data: it keeps its regular slot.
        let mut seen = std::collections::BTreeSet::new();
        let mut t = t0;
        let mut optimistic_history = Vec::new();
        for step in 0..13 {
            c.record_download(0, 1_000_000);
            c.handle_timeout(t);
            if step == 0 {
                c.rechoke(t);
            }
            drain(&mut c);
            let u = unchoked(&c, 5);
            assert!(u.contains(&0), "step {step}: {u:?}");
            assert_eq!(u.len(), 2, "step {step}: {u:?}");
            let opt = *u.iter().find(|k| **k != 0).unwrap();
            optimistic_history.push(opt);
            seen.insert(opt);
            t += Duration::from_secs(10);
        }
        // Every other peer had an optimistic turn, and each turn lasted 30 s (three
        // rechokes) apart from the first one.
        assert_eq!(
            seen,
            [1, 2, 3, 4].into_iter().collect(),
            "{optimistic_history:?}"
        );
        let changes = optimistic_history
            .windows(2)
            .filter(|w| w[0] != w[1])
            .count();
        assert!((3..=5).contains(&changes), "{optimistic_history:?}");
        for run in optimistic_history[1..].chunk_by(|a, b| a == b) {
            assert!(run.len() <= 3, "{optimistic_history:?}");
        }
    }

    #[test]
    fn seeding_round_robin_gives_every_peer_a_turn() {
        let t0 = Instant::now();
        let mut c = Choker::new(config(2));
        c.set_seeding(true);
        for k in 0..6 {
            c.add_peer(t0, k);
            c.set_interested(t0, k, true);
        }
        let mut turns = [0u32; 6];
        let mut t = t0;
        for _ in 0..30 {
            t += Duration::from_secs(10);
            c.handle_timeout(t);
            for k in unchoked(&c, 6) {
                turns[k as usize] += 1;
            }
            assert_eq!(c.unchoked_count(), 2);
        }
        // 30 rechokes x 2 slots over 6 peers: every peer gets its share, give or take
        // a turn.
        for (k, n) in turns.iter().enumerate() {
            assert!((7..=13).contains(n), "peer {k}: {turns:?}");
        }
    }

    #[test]
    fn seeding_fastest_upload_keeps_the_fast_peers() {
        let t0 = Instant::now();
        let mut c = Choker::new(ChokerConfig {
            upload_slots: 3,
            seed_algorithm: SeedAlgorithm::FastestUpload,
            ..ChokerConfig::default()
        });
        c.set_seeding(true);
        for k in 0..5 {
            c.add_peer(t0, k);
            c.set_interested(t0, k, true);
        }
        c.rechoke(t0);
        let mut t = t0;
        for _ in 0..6 {
            c.record_upload(3, 5_000_000);
            c.record_upload(4, 9_000_000);
            c.record_upload(0, 10);
            t += Duration::from_secs(10);
            c.handle_timeout(t);
            let u = unchoked(&c, 5);
            assert!(u.contains(&3) && u.contains(&4), "{u:?}");
            assert_eq!(u.len(), 3);
        }
    }

    #[test]
    fn rates_use_a_rolling_window() {
        let t0 = Instant::now();
        let mut c = Choker::new(config(1));
        c.add_peer(t0, 7);
        c.rechoke(t0);
        c.record_download(7, 1_000_000);
        c.rechoke(t0 + Duration::from_secs(10));
        assert_eq!(c.download_rate(t0 + Duration::from_secs(10), 7), 100_000);
        // Nothing more arrives: after the window has passed, the rate falls to 0.
        for s in [20, 30, 40] {
            c.rechoke(t0 + Duration::from_secs(s));
        }
        assert_eq!(c.download_rate(t0 + Duration::from_secs(40), 7), 0);
    }

    #[test]
    fn zero_slots_uploads_to_nobody() {
        let t0 = Instant::now();
        let mut c = Choker::new(config(0));
        c.add_peer(t0, 1);
        c.set_interested(t0, 1, true);
        c.rechoke(t0);
        assert_eq!(drain(&mut c), vec![]);
        assert!(!c.is_unchoked(1));
    }
}
