//! The routing table (BEP 5): k-buckets over the XOR metric.
//!
//! Bucket `i` (for `i` below the last) holds nodes whose id shares exactly `i` leading
//! bits with ours; the last bucket holds everything closer, including our own id. When
//! the last bucket is full it splits (a new last bucket takes the nodes that share more
//! bits), up to 160 buckets. Other full buckets keep a replacement cache of the most
//! recently seen candidates, promoted when a member goes bad.
//!
//! Node states follow BEP 5: *good* if it answered one of our queries in the last 15
//! minutes, or has ever answered and sent us a query in the last 15 minutes;
//! *bad* after [`MAX_FAILURES`] unanswered queries in a row; *questionable* otherwise.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::id::Id;
use crate::krpc::NodeInfo;

/// Nodes per bucket (BEP 5 `K`).
pub const K: usize = 8;
/// Unanswered queries in a row after which a node is bad.
pub const MAX_FAILURES: u8 = 2;
/// Inactivity after which a node is questionable and a bucket needs refreshing.
pub const STALE_AFTER: Duration = Duration::from_secs(15 * 60);

/// The BEP 5 state of a node in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Recently active.
    Good,
    /// Not heard from for 15 minutes.
    Questionable,
    /// Failed to answer several queries in a row.
    Bad,
}

/// One node in the table.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Id and address.
    pub info: NodeInfo,
    /// When we last heard anything from it (a response or a query).
    pub last_seen: Instant,
    /// When it last answered one of our queries.
    pub last_response: Option<Instant>,
    /// Unanswered queries in a row.
    pub failures: u8,
}

impl Entry {
    fn new(info: NodeInfo, now: Instant, responded: bool) -> Entry {
        Entry {
            info,
            last_seen: now,
            last_response: responded.then_some(now),
            failures: 0,
        }
    }

    /// The node's state at `now`.
    pub fn state(&self, now: Instant) -> NodeState {
        if self.failures >= MAX_FAILURES {
            return NodeState::Bad;
        }
        let fresh = |t: Instant| now.saturating_duration_since(t) < STALE_AFTER;
        match self.last_response {
            Some(r) if fresh(r) || fresh(self.last_seen) => NodeState::Good,
            _ => NodeState::Questionable,
        }
    }
}

#[derive(Debug, Clone)]
struct Bucket {
    nodes: Vec<Entry>,
    /// Most recently seen last.
    replacements: Vec<Entry>,
    last_changed: Instant,
}

impl Bucket {
    fn new(now: Instant) -> Bucket {
        Bucket {
            nodes: Vec::with_capacity(K),
            replacements: Vec::new(),
            last_changed: now,
        }
    }
}

/// What [`RoutingTable::insert`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insert {
    /// The node was added.
    Added,
    /// The node was already there and was refreshed.
    Updated,
    /// The bucket is full; the node went to the replacement cache. The questionable
    /// node returned (if any) should be pinged: if it fails, the newcomer takes its place.
    Cached(Option<NodeInfo>),
    /// Not added (our own id, a known id at another address, or a rejected address).
    Rejected,
}

/// Counts for monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableStats {
    /// Number of buckets.
    pub buckets: usize,
    /// Nodes in the table.
    pub nodes: usize,
    /// Of which good.
    pub good: usize,
    /// Of which questionable.
    pub questionable: usize,
    /// Of which bad (kept until a replacement arrives).
    pub bad: usize,
    /// Nodes in replacement caches.
    pub replacements: usize,
}

/// The routing table. Pure data: it reads no clock (every method takes `now`).
#[derive(Debug, Clone)]
pub struct RoutingTable {
    own: Id,
    buckets: Vec<Bucket>,
}

impl RoutingTable {
    /// An empty table for the node `own`.
    pub fn new(own: Id, now: Instant) -> RoutingTable {
        RoutingTable {
            own,
            buckets: vec![Bucket::new(now)],
        }
    }

    /// Our id.
    pub fn own_id(&self) -> Id {
        self.own
    }

    fn index(&self, id: &Id) -> usize {
        self.own.common_prefix_len(id).min(self.buckets.len() - 1)
    }

    /// Looks a node up by id.
    pub fn get(&self, id: &Id) -> Option<&Entry> {
        self.buckets[self.index(id)]
            .nodes
            .iter()
            .find(|e| e.info.id == *id)
    }

    /// Whether inserting a node with this id would currently succeed without eviction
    /// (there is room, a bad node to replace, or the bucket can split).
    pub fn has_room_for(&self, id: &Id, now: Instant) -> bool {
        if *id == self.own || self.get(id).is_some() {
            return false;
        }
        let i = self.index(id);
        let b = &self.buckets[i];
        b.nodes.len() < K
            || b.nodes.iter().any(|e| e.state(now) == NodeState::Bad)
            || (i == self.buckets.len() - 1 && self.buckets.len() < 160)
    }

    /// Records that `info` is alive: `responded` if it answered one of our queries
    /// (only such nodes are added), otherwise it sent us a query (only refreshes a
    /// node already present).
    pub fn insert(&mut self, info: NodeInfo, now: Instant, responded: bool) -> Insert {
        if info.id == self.own {
            return Insert::Rejected;
        }
        loop {
            let i = self.index(&info.id);
            let can_split = i == self.buckets.len() - 1 && self.buckets.len() < 160;
            let b = &mut self.buckets[i];
            if let Some(e) = b.nodes.iter_mut().find(|e| e.info.id == info.id) {
                if e.info.addr != info.addr {
                    return Insert::Rejected;
                }
                e.last_seen = now;
                if responded {
                    e.last_response = Some(now);
                    e.failures = 0;
                }
                b.last_changed = now;
                return Insert::Updated;
            }
            if !responded {
                return Insert::Rejected;
            }
            if b.nodes.len() < K {
                b.nodes.push(Entry::new(info, now, true));
                b.last_changed = now;
                return Insert::Added;
            }
            if let Some(e) = b.nodes.iter_mut().find(|e| e.state(now) == NodeState::Bad) {
                *e = Entry::new(info, now, true);
                b.last_changed = now;
                return Insert::Added;
            }
            if can_split {
                self.split(now);
                continue;
            }
            b.replacements.retain(|e| e.info.id != info.id);
            b.replacements.push(Entry::new(info, now, true));
            if b.replacements.len() > K {
                b.replacements.remove(0);
            }
            let ping = b
                .nodes
                .iter()
                .filter(|e| e.state(now) == NodeState::Questionable)
                .min_by_key(|e| e.last_seen)
                .map(|e| e.info);
            return Insert::Cached(ping);
        }
    }

    fn split(&mut self, now: Instant) {
        let last = self.buckets.len() - 1;
        let mut new = Bucket::new(now);
        let own = self.own;
        let old = &mut self.buckets[last];
        let (stay, go): (Vec<Entry>, Vec<Entry>) = old
            .nodes
            .drain(..)
            .partition(|e| own.common_prefix_len(&e.info.id) == last);
        old.nodes = stay;
        new.nodes = go;
        let (stay, go): (Vec<Entry>, Vec<Entry>) = old
            .replacements
            .drain(..)
            .partition(|e| own.common_prefix_len(&e.info.id) == last);
        old.replacements = stay;
        new.replacements = go;
        self.buckets.push(new);
    }

    /// Records an unanswered query to `id` at `addr`. A node that becomes bad is
    /// replaced by the freshest replacement, if any.
    pub fn failed(&mut self, id: &Id, addr: SocketAddr, now: Instant) {
        let i = self.index(id);
        let b = &mut self.buckets[i];
        let Some(pos) = b
            .nodes
            .iter()
            .position(|e| e.info.id == *id && e.info.addr == addr)
        else {
            return;
        };
        let e = &mut b.nodes[pos];
        e.failures = e.failures.saturating_add(1);
        if e.state(now) == NodeState::Bad {
            if let Some(r) = b.replacements.pop() {
                b.nodes[pos] = r;
                b.last_changed = now;
            }
        }
    }

    /// Removes a node.
    pub fn remove(&mut self, id: &Id) {
        let i = self.index(id);
        self.buckets[i].nodes.retain(|e| e.info.id != *id);
    }

    /// Up to `n` non-bad nodes closest to `target`, closest first.
    pub fn closest(&self, target: &Id, n: usize, now: Instant) -> Vec<NodeInfo> {
        let mut all: Vec<(crate::id::Distance, NodeInfo)> = self
            .buckets
            .iter()
            .flat_map(|b| b.nodes.iter())
            .filter(|e| e.state(now) != NodeState::Bad)
            .map(|e| (e.info.id.distance(target), e.info))
            .collect();
        if all.len() > n {
            all.select_nth_unstable_by_key(n, |x| x.0);
            all.truncate(n);
        }
        all.sort_unstable_by_key(|x| x.0);
        all.into_iter().map(|x| x.1).collect()
    }

    /// Every node in the table.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.buckets.iter().flat_map(|b| b.nodes.iter())
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.nodes.len()).sum()
    }

    /// Whether the table holds no node.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts by state.
    pub fn stats(&self, now: Instant) -> TableStats {
        let mut s = TableStats {
            buckets: self.buckets.len(),
            ..TableStats::default()
        };
        for b in &self.buckets {
            s.replacements += b.replacements.len();
            for e in &b.nodes {
                s.nodes += 1;
                match e.state(now) {
                    NodeState::Good => s.good += 1,
                    NodeState::Questionable => s.questionable += 1,
                    NodeState::Bad => s.bad += 1,
                }
            }
        }
        s
    }

    /// Buckets not changed for [`STALE_AFTER`]: for each, a random id in its range to
    /// look up (BEP 5 refresh). Marks them as refreshed.
    pub fn stale_buckets(&mut self, now: Instant, rng: &mut impl rand::Rng) -> Vec<Id> {
        let mut out = Vec::new();
        let n = self.buckets.len();
        for i in 0..n {
            if now.saturating_duration_since(self.buckets[i].last_changed) >= STALE_AFTER {
                self.buckets[i].last_changed = now;
                out.push(self.random_id_in(i, rng));
            }
        }
        out
    }

    /// A random id that falls in bucket `i`.
    pub fn random_id_in(&self, i: usize, rng: &mut impl rand::Rng) -> Id {
        let mut id = Id::random(rng);
        let last = i == self.buckets.len() - 1;
        // Copy our first `i` bits; for a bucket other than the last, flip bit `i`.
        for bit in 0..i.min(160) {
            set_bit(&mut id, bit, self.own.bit(bit));
        }
        if !last && i < 160 {
            set_bit(&mut id, i, !self.own.bit(i));
        }
        id
    }

    /// Questionable nodes, least recently seen first, at most `max`.
    pub fn questionable(&self, now: Instant, max: usize) -> Vec<NodeInfo> {
        let mut q: Vec<&Entry> = self
            .iter()
            .filter(|e| e.state(now) == NodeState::Questionable)
            .collect();
        q.sort_by_key(|e| e.last_seen);
        q.into_iter().take(max).map(|e| e.info).collect()
    }
}

fn set_bit(id: &mut Id, bit: usize, v: bool) {
    let mask = 0x80u8 >> (bit % 8);
    if v {
        id.0[bit / 8] |= mask;
    } else {
        id.0[bit / 8] &= !mask;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn info(id: Id, port: u16) -> NodeInfo {
        NodeInfo {
            id,
            addr: SocketAddr::from(([10, 0, 0, 1], port)),
        }
    }

    #[test]
    fn splits_own_bucket_and_caches_others() {
        let now = Instant::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let own = Id::random(&mut rng);
        let mut t = RoutingTable::new(own, now);
        for p in 0..2000u16 {
            let id = Id::random(&mut rng);
            t.insert(info(id, p), now, true);
        }
        let s = t.stats(now);
        assert!(s.buckets > 5, "{s:?}");
        assert!(s.nodes <= s.buckets * K);
        // The far half (bucket 0) is full and has a replacement cache.
        assert_eq!(t.buckets[0].nodes.len(), K);
        assert!(!t.buckets[0].replacements.is_empty());
        // Every node sits in the bucket its prefix says.
        for (i, b) in t.buckets.iter().enumerate() {
            for e in &b.nodes {
                assert_eq!(
                    own.common_prefix_len(&e.info.id).min(t.buckets.len() - 1),
                    i
                );
            }
        }
        // closest is sorted and exact.
        let target = Id::random(&mut rng);
        let c = t.closest(&target, 8, now);
        assert_eq!(c.len(), 8);
        let mut all: Vec<_> = t.iter().map(|e| e.info).collect();
        all.sort_by_key(|n| n.id.distance(&target));
        assert_eq!(&all[..8], &c[..]);
    }

    #[test]
    fn states_and_replacement() {
        let now = Instant::now();
        let mut own = [0u8; 20];
        own[0] = 0xff;
        let mut t = RoutingTable::new(Id(own), now);
        // Fill the bucket that does not hold our id: ids starting with 0 bit.
        let mut ids = Vec::new();
        for i in 0..(K as u8 + 1) {
            let mut b = [0u8; 20];
            b[19] = i + 1;
            ids.push(Id(b));
        }
        // The first K go in (the table splits once, the far bucket fills).
        for (p, id) in ids.iter().take(K).enumerate() {
            assert_eq!(t.insert(info(*id, p as u16), now, true), Insert::Added);
        }
        assert_eq!(t.insert(info(ids[0], 0), now, false), Insert::Updated);
        assert_eq!(t.insert(info(ids[0], 99), now, true), Insert::Rejected);
        let later = now + STALE_AFTER + Duration::from_secs(1);
        assert_eq!(
            t.get(&ids[1]).unwrap().state(later),
            NodeState::Questionable
        );
        assert!(matches!(
            t.insert(info(ids[K], 50), later, true),
            Insert::Cached(Some(_))
        ));
        t.failed(&ids[1], info(ids[1], 1).addr, later);
        assert!(t.get(&ids[1]).is_some());
        t.failed(&ids[1], info(ids[1], 1).addr, later);
        assert!(t.get(&ids[1]).is_none());
        assert!(t.get(&ids[K]).is_some());
        let stale = t.stale_buckets(
            later + STALE_AFTER,
            &mut rand::rngs::StdRng::seed_from_u64(2),
        );
        assert!(!stale.is_empty());
    }

    #[test]
    fn random_id_in_bucket() {
        let now = Instant::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let own = Id::random(&mut rng);
        let mut t = RoutingTable::new(own, now);
        for p in 0..500u16 {
            t.insert(info(Id::random(&mut rng), p), now, true);
        }
        for i in 0..t.buckets.len() {
            let id = t.random_id_in(i, &mut rng);
            assert_eq!(t.index(&id), i);
        }
    }
}
