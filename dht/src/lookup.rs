//! Iterative lookups (BEP 5 / Kademlia): query the `alpha` closest unqueried
//! candidates, learn closer nodes from the answers, stop when the `k` closest
//! candidates that did not fail have all answered.

use std::collections::HashSet;
use std::net::SocketAddr;

use crate::id::{Distance, Id};
use crate::krpc::NodeInfo;

/// Identifies a lookup started on a [`Node`](crate::Node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupId(pub u64);

/// Counts for one lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LookupStats {
    /// Queries sent (the lookup phase, plus `announce_peer` / `put` if any).
    pub queries: u32,
    /// Responses received.
    pub responses: u32,
    /// Queries that timed out or were answered with an error.
    pub failures: u32,
}

/// Candidates kept per lookup; further ones are dropped (bounded memory).
const MAX_CANDIDATES: usize = 128;
/// Peers remembered per lookup to report each only once.
const MAX_PEERS_SEEN: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CandState {
    Fresh,
    InFlight,
    Responded,
    Failed,
}

#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub(crate) id: Option<Id>,
    pub(crate) addr: SocketAddr,
    pub(crate) dist: Distance,
    pub(crate) state: CandState,
    pub(crate) token: Option<Vec<u8>>,
    /// Queries sent to it so far.
    attempts: u8,
    /// In flight past the soft timeout: no longer holds a parallelism slot.
    slow: bool,
    /// Queries to it still waiting for an answer (a retransmission is a second one).
    outstanding: u8,
}

/// Queries a candidate gets before it counts as failed (a lost datagram is retried).
const MAX_ATTEMPTS: u8 = 3;

/// The state of one iterative lookup. Pure: the node sends what [`Lookup::next`]
/// returns and reports answers back.
#[derive(Debug, Clone)]
pub(crate) struct Lookup {
    pub(crate) target: Id,
    cands: Vec<Candidate>,
    addrs: HashSet<SocketAddr>,
    alpha: usize,
    k: usize,
    in_flight: usize,
    slow_in_flight: usize,
    pub(crate) stats: LookupStats,
    peers_seen: HashSet<SocketAddr>,
}

impl Lookup {
    pub(crate) fn new(target: Id, alpha: usize, k: usize) -> Lookup {
        Lookup {
            target,
            cands: Vec::new(),
            addrs: HashSet::new(),
            alpha: alpha.max(1),
            k: k.max(1),
            in_flight: 0,
            slow_in_flight: 0,
            stats: LookupStats::default(),
            peers_seen: HashSet::new(),
        }
    }

    /// Adds a candidate; an unknown id (a bootstrap address) sorts first.
    pub(crate) fn add(&mut self, id: Option<Id>, addr: SocketAddr) {
        if self.addrs.contains(&addr) {
            return;
        }
        if let Some(id) = id {
            if self.cands.iter().any(|c| c.id == Some(id)) {
                return;
            }
        }
        let dist = id.map_or(Distance([0; 20]), |i| i.distance(&self.target));
        let pos = self.cands.partition_point(|c| c.dist <= dist);
        if pos >= MAX_CANDIDATES {
            return;
        }
        self.cands.insert(
            pos,
            Candidate {
                id,
                addr,
                dist,
                state: CandState::Fresh,
                token: None,
                attempts: 0,
                slow: false,
                outstanding: 0,
            },
        );
        self.addrs.insert(addr);
        if self.cands.len() > MAX_CANDIDATES {
            // Drop the farthest candidate that has no query in flight.
            if let Some(i) = self
                .cands
                .iter()
                .rposition(|c| c.state != CandState::InFlight)
            {
                let c = self.cands.remove(i);
                self.addrs.remove(&c.addr);
            }
        }
    }

    fn next_index(&self) -> Option<usize> {
        if self.in_flight >= self.alpha {
            return None;
        }
        let mut live = 0;
        for (i, c) in self.cands.iter().enumerate() {
            if c.state == CandState::Failed {
                continue;
            }
            if live >= self.k {
                return None;
            }
            live += 1;
            if c.state == CandState::Fresh {
                return Some(i);
            }
        }
        None
    }

    /// The next candidate to query, marked in flight; `None` when `alpha` queries are
    /// outstanding or no candidate among the `k` closest is left to ask.
    pub(crate) fn next(&mut self) -> Option<(SocketAddr, Option<Id>)> {
        let i = self.next_index()?;
        let c = &mut self.cands[i];
        c.state = CandState::InFlight;
        c.attempts += 1;
        c.slow = false;
        c.outstanding = 1;
        self.in_flight += 1;
        self.stats.queries += 1;
        Some((c.addr, c.id))
    }

    /// Whether the lookup has converged: nothing in flight and nothing left to ask.
    pub(crate) fn is_done(&self) -> bool {
        self.in_flight == 0 && self.slow_in_flight == 0 && self.next_index().is_none()
    }

    /// A query to `addr` passed its soft timeout: free its parallelism slot so the
    /// lookup goes on, but still accept its answer. Returns true if the caller should
    /// send it the query once more now (the datagram may have been lost), keeping the
    /// first one open.
    pub(crate) fn on_slow(&mut self, addr: SocketAddr) -> bool {
        let Some(i) = self.find(addr) else {
            return false;
        };
        if !self.cands[i].slow {
            self.cands[i].slow = true;
            self.in_flight -= 1;
            self.slow_in_flight += 1;
        }
        let c = &mut self.cands[i];
        if c.attempts < MAX_ATTEMPTS {
            c.attempts += 1;
            c.outstanding += 1;
            self.stats.queries += 1;
            true
        } else {
            false
        }
    }

    fn release(&mut self, i: usize) {
        if self.cands[i].slow {
            self.slow_in_flight -= 1;
        } else {
            self.in_flight -= 1;
        }
    }

    fn find(&mut self, addr: SocketAddr) -> Option<usize> {
        self.cands
            .iter()
            .position(|c| c.addr == addr && c.state == CandState::InFlight)
    }

    /// `addr` answered as `id`, with an optional token.
    pub(crate) fn on_response(&mut self, addr: SocketAddr, id: Id, token: Option<&[u8]>) {
        let Some(i) = self.find(addr) else { return };
        self.release(i);
        self.stats.responses += 1;
        let mut c = self.cands.remove(i);
        c.state = CandState::Responded;
        c.token = token.map(<[u8]>::to_vec);
        if c.id != Some(id) {
            // A bootstrap node (or one that changed id): re-sort under its real id,
            // unless that id is already a candidate.
            if self.cands.iter().any(|x| x.id == Some(id)) {
                self.addrs.remove(&c.addr);
                return;
            }
            c.id = Some(id);
            c.dist = id.distance(&self.target);
        }
        let pos = self.cands.partition_point(|x| x.dist <= c.dist);
        self.cands.insert(pos, c);
    }

    /// A query to `addr` failed: timed out (`retry`: it may have been a lost
    /// datagram, so ask again unless every attempt is used), answered with an error, or
    /// could not be sent. A timeout while a retransmission is still open only counts.
    pub(crate) fn on_failure(&mut self, addr: SocketAddr, retry: bool) {
        let Some(i) = self.find(addr) else { return };
        self.stats.failures += 1;
        let c = &mut self.cands[i];
        c.outstanding = c.outstanding.saturating_sub(1);
        if retry && c.outstanding > 0 {
            return;
        }
        self.release(i);
        let c = &mut self.cands[i];
        c.slow = false;
        c.state = if retry && c.attempts < MAX_ATTEMPTS {
            CandState::Fresh
        } else {
            CandState::Failed
        };
    }

    /// Filters peers not reported before.
    pub(crate) fn new_peers(&mut self, values: &[SocketAddr]) -> Vec<SocketAddr> {
        values
            .iter()
            .filter(|p| self.peers_seen.len() < MAX_PEERS_SEEN && self.peers_seen.insert(**p))
            .copied()
            .collect()
    }

    /// The `n` closest nodes that answered, with their tokens.
    pub(crate) fn closest_responded(&self, n: usize) -> Vec<(NodeInfo, Option<Vec<u8>>)> {
        self.cands
            .iter()
            .filter(|c| c.state == CandState::Responded)
            .filter_map(|c| {
                Some((
                    NodeInfo {
                        id: c.id?,
                        addr: c.addr,
                    },
                    c.token.clone(),
                ))
            })
            .take(n)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], p))
    }

    #[test]
    fn converges_on_k_closest() {
        let target = Id([0; 20]);
        let mut l = Lookup::new(target, 2, 2);
        for i in 1..=5u8 {
            let mut b = [0u8; 20];
            b[0] = i;
            l.add(Some(Id(b)), addr(u16::from(i)));
        }
        let (a1, _) = l.next().unwrap();
        let (a2, _) = l.next().unwrap();
        assert!(l.next().is_none(), "alpha = 2");
        assert_eq!((a1, a2), (addr(1), addr(2)));
        l.on_failure(a1, false);
        let (a3, _) = l.next().unwrap();
        assert_eq!(a3, addr(3));
        l.on_response(
            a2,
            Id([0, 2]
                .iter()
                .copied()
                .chain([0; 18])
                .collect::<Vec<_>>()
                .try_into()
                .unwrap()),
            Some(b"tok"),
        );
        l.on_response(
            a3,
            {
                let mut b = [0u8; 20];
                b[0] = 3;
                Id(b)
            },
            None,
        );
        // The 2 closest live candidates (2 and 3) have answered.
        assert!(l.is_done());
        let c = l.closest_responded(8);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].1.as_deref(), Some(&b"tok"[..]));
        assert_eq!(l.stats.queries, 3);
        assert_eq!(l.stats.failures, 1);
    }

    #[test]
    fn bootstrap_nodes_resort_and_peers_dedupe() {
        let mut l = Lookup::new(Id([0; 20]), 3, 8);
        l.add(None, addr(9));
        let (a, id) = l.next().unwrap();
        assert_eq!((a, id), (addr(9), None));
        l.on_response(a, Id([0xff; 20]), None);
        assert!(l.is_done());
        assert_eq!(l.new_peers(&[addr(1), addr(1), addr(2)]).len(), 2);
        assert!(l.new_peers(&[addr(1)]).is_empty());
    }

    #[test]
    fn soft_timeout_retransmits_and_frees_the_slot() {
        let mut l = Lookup::new(Id([0; 20]), 1, 8);
        l.add(Some(Id([1; 20])), addr(1));
        l.add(Some(Id([2; 20])), addr(2));
        let (a, _) = l.next().unwrap();
        assert!(l.next().is_none(), "alpha = 1");
        // Soft timeout: resend, and the slot is free for the next candidate.
        assert!(l.on_slow(a));
        assert_eq!(l.next().unwrap().0, addr(2));
        // The first transaction times out while the retransmission is open: still waiting.
        l.on_failure(a, true);
        assert!(!l.is_done());
        // The retransmission is answered.
        l.on_response(a, Id([1; 20]), None);
        l.on_response(addr(2), Id([2; 20]), None);
        assert!(l.is_done());
        assert_eq!(l.stats.queries, 3);
        assert_eq!(l.closest_responded(8).len(), 2);
        // A late answer to a finished candidate is ignored.
        l.on_failure(a, true);
        assert_eq!(l.closest_responded(8).len(), 2);
    }
}
