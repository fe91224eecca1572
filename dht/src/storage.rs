//! What a node stores for others: announced peers (bounded, expiring) and the secrets
//! behind `announce_peer` / `put` tokens.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

use crate::bloom::ScrapeBloom;
use crate::id::Id;

/// How long an announced peer is kept.
pub const PEER_TTL: Duration = Duration::from_secs(30 * 60);
/// How often the token secret rotates; the previous secret stays valid one more period.
pub const TOKEN_ROTATION: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone)]
struct StoredPeer {
    addr: SocketAddr,
    expires: Instant,
    seed: bool,
}

/// Announced peers per info hash, with expiry and caps on both dimensions.
#[derive(Debug, Clone)]
pub(crate) struct PeerStore {
    swarms: HashMap<Id, Vec<StoredPeer>>,
    max_hashes: usize,
    max_peers: usize,
}

impl PeerStore {
    pub(crate) fn new(max_hashes: usize, max_peers: usize) -> PeerStore {
        PeerStore {
            swarms: HashMap::new(),
            max_hashes,
            max_peers,
        }
    }

    /// Stores (or refreshes) a peer. Returns false if a cap refused it.
    pub(crate) fn announce(
        &mut self,
        hash: Id,
        addr: SocketAddr,
        seed: bool,
        now: Instant,
    ) -> bool {
        let expires = now + PEER_TTL;
        if !self.swarms.contains_key(&hash) && self.swarms.len() >= self.max_hashes {
            self.expire(now);
            if self.swarms.len() >= self.max_hashes {
                return false;
            }
        }
        let peers = self.swarms.entry(hash).or_default();
        if let Some(p) = peers.iter_mut().find(|p| p.addr == addr) {
            p.expires = expires;
            p.seed = seed;
            return true;
        }
        if peers.len() >= self.max_peers {
            // Replace the one closest to expiry.
            if let Some(p) = peers.iter_mut().min_by_key(|p| p.expires) {
                *p = StoredPeer {
                    addr,
                    expires,
                    seed,
                };
            }
            return true;
        }
        peers.push(StoredPeer {
            addr,
            expires,
            seed,
        });
        true
    }

    /// Up to `max` live peers for `hash` of the given address family, starting at a
    /// caller-chosen offset so that repeated answers rotate through a large swarm.
    pub(crate) fn get(
        &self,
        hash: &Id,
        now: Instant,
        max: usize,
        v6: bool,
        offset: usize,
        noseed: bool,
    ) -> Vec<SocketAddr> {
        let Some(peers) = self.swarms.get(hash) else {
            return Vec::new();
        };
        let n = peers.len();
        (0..n)
            .map(|i| &peers[(i + offset) % n])
            .filter(|p| p.expires > now && p.addr.is_ipv6() == v6 && !(noseed && p.seed))
            .take(max)
            .map(|p| p.addr)
            .collect()
    }

    /// BEP 33 bloom filters of the live seeds and downloaders for `hash`.
    pub(crate) fn blooms(&self, hash: &Id, now: Instant) -> (ScrapeBloom, ScrapeBloom) {
        let mut seeds = ScrapeBloom::new();
        let mut peers = ScrapeBloom::new();
        for p in self.swarms.get(hash).into_iter().flatten() {
            if p.expires > now {
                if p.seed {
                    seeds.insert(p.addr.ip());
                } else {
                    peers.insert(p.addr.ip());
                }
            }
        }
        (seeds, peers)
    }

    /// Drops expired peers and empty swarms.
    pub(crate) fn expire(&mut self, now: Instant) {
        self.swarms.retain(|_, peers| {
            peers.retain(|p| p.expires > now);
            !peers.is_empty()
        });
    }

    /// Number of info hashes stored.
    pub(crate) fn len(&self) -> usize {
        self.swarms.len()
    }

    /// Up to `max` stored info hashes (BEP 51 samples), starting at `offset`.
    pub(crate) fn sample(&self, max: usize, offset: usize) -> Vec<Id> {
        let n = self.swarms.len();
        if n == 0 {
            return Vec::new();
        }
        self.swarms
            .keys()
            .cycle()
            .skip(offset % n)
            .take(max.min(n))
            .copied()
            .collect()
    }
}

/// Token secrets: a token is the first 8 bytes of SHA-1(secret, requester IP).
/// Stateless: nothing is stored per requester.
#[derive(Debug, Clone)]
pub(crate) struct Tokens {
    current: [u8; 16],
    previous: [u8; 16],
    rotated: Instant,
}

impl Tokens {
    pub(crate) fn new(rng: &mut impl rand::Rng, now: Instant) -> Tokens {
        let mut current = [0u8; 16];
        let mut previous = [0u8; 16];
        rng.fill(&mut current);
        rng.fill(&mut previous);
        Tokens {
            current,
            previous,
            rotated: now,
        }
    }

    /// When the next rotation is due.
    pub(crate) fn next_rotation(&self) -> Instant {
        self.rotated + TOKEN_ROTATION
    }

    /// Rotates if due.
    pub(crate) fn maybe_rotate(&mut self, now: Instant, rng: &mut impl rand::Rng) {
        if now >= self.next_rotation() {
            self.previous = self.current;
            rng.fill(&mut self.current);
            self.rotated = now;
        }
    }

    fn make(secret: &[u8; 16], ip: IpAddr) -> [u8; 8] {
        let mut h = Sha1::new();
        h.update(secret);
        match ip {
            IpAddr::V4(v4) => h.update(v4.octets()),
            IpAddr::V6(v6) => h.update(v6.octets()),
        }
        let d = h.finalize();
        let mut out = [0u8; 8];
        out.copy_from_slice(&d[..8]);
        out
    }

    /// The token to hand to `ip`.
    pub(crate) fn issue(&self, ip: IpAddr) -> [u8; 8] {
        Tokens::make(&self.current, ip)
    }

    /// Whether `token` was issued to `ip` under the current or previous secret.
    pub(crate) fn verify(&self, ip: IpAddr, token: &[u8]) -> bool {
        token == Tokens::make(&self.current, ip) || token == Tokens::make(&self.previous, ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn tokens_bound_to_ip_and_rotate() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let now = Instant::now();
        let mut t = Tokens::new(&mut rng, now);
        let a: IpAddr = "1.2.3.4".parse().unwrap();
        let b: IpAddr = "1.2.3.5".parse().unwrap();
        let tok = t.issue(a);
        assert!(t.verify(a, &tok));
        assert!(!t.verify(b, &tok));
        t.maybe_rotate(now + TOKEN_ROTATION, &mut rng);
        assert!(t.verify(a, &tok), "previous secret accepted");
        t.maybe_rotate(now + TOKEN_ROTATION * 2, &mut rng);
        assert!(!t.verify(a, &tok), "two rotations later it is gone");
    }

    #[test]
    fn peer_store_caps_and_expiry() {
        let now = Instant::now();
        let mut s = PeerStore::new(2, 3);
        let h1 = Id([1; 20]);
        for p in 0..10u16 {
            assert!(s.announce(h1, SocketAddr::from(([1, 1, 1, 1], p)), false, now));
        }
        assert_eq!(s.get(&h1, now, 100, false, 0, false).len(), 3);
        assert!(s.announce(Id([2; 20]), SocketAddr::from(([1, 1, 1, 1], 1)), false, now));
        assert!(!s.announce(Id([3; 20]), SocketAddr::from(([1, 1, 1, 1], 1)), false, now));
        assert_eq!(s.sample(10, 5).len(), 2);
        let later = now + PEER_TTL;
        assert!(s.get(&h1, later, 100, false, 0, false).is_empty());
        assert!(s.announce(
            Id([3; 20]),
            SocketAddr::from(([1, 1, 1, 1], 1)),
            true,
            later
        ));
        assert_eq!(s.len(), 1);
        assert!(s.get(&Id([3; 20]), later, 100, false, 0, true).is_empty());
    }
}
