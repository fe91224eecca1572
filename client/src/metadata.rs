//! Fetching a torrent's info dictionary from peers (BEP 9 `ut_metadata` over BEP 10),
//! sans-IO, and serving it once we have it.
//!
//! ```text
//!  peer's extension handshake ──handle_handshake──▶ MetadataFetch ──poll_request()──▶ (peer, piece)
//!  ut_metadata message       ──handle_message───▶               ──poll_timeout()──▶ Instant
//!  peer gone                 ──handle_disconnect─▶              ──take_metadata()─▶ verified bytes
//!  time                      ──handle_timeout───▶
//! ```
//!
//! **Drain rule:** after any `handle_*` call, drain [`MetadataFetch::poll_request`]
//! until it returns `None` and check [`MetadataFetch::take_metadata`]; then wait for
//! input or [`MetadataFetch::poll_timeout`].
//!
//! The size comes from the peers' `metadata_size`; sizes above
//! [`MetadataConfig::max_size`] are refused before anything is allocated, and nothing
//! is allocated up front at all: pieces are kept as they arrive (each exactly 16 KiB,
//! the last one shorter) and joined once all are there. The joined bytes count only
//! if their SHA-1 (v1), SHA-256 (v2) or both (hybrid) match the info hash; otherwise
//! every peer that contributed is no longer asked, and the fetch starts over.
//! Requests go to several peers at once (a few per peer), time out, and are retried
//! elsewhere; a `reject` rests the peer for a while, and a peer that sent
//! [`MAX_REJECTS`] rejects is not asked again (it cannot keep us asking forever).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use metainfo::InfoHash;
use peer_wire::{ExtensionHandshake, METADATA_PIECE_LEN, MetadataMessage, UT_METADATA};
use sha1::{Digest, Sha1};
use sha2::Sha256;

use crate::picker::PeerKey;

/// `reject` messages a peer may send before it is no longer asked for metadata.
pub const MAX_REJECTS: u32 = 64;

/// Limits of a metadata fetch.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct MetadataConfig {
    /// Largest info dictionary accepted (default 16 MiB; libtorrent's default limit is
    /// 30 MiB, real torrents' info dictionaries are rarely above 2 MiB).
    pub max_size: u64,
    /// Requests outstanding per peer at most (default 4).
    pub per_peer: usize,
    /// A request unanswered this long is asked of another peer (default 10 s).
    pub request_timeout: Duration,
    /// A peer that rejected a request is not asked again for this long (default 10 s).
    pub reject_backoff: Duration,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            max_size: 16 << 20,
            per_peer: 4,
            request_timeout: Duration::from_secs(10),
            reject_backoff: Duration::from_secs(10),
        }
    }
}

/// A peer broke the `ut_metadata` protocol; the caller should close the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// A data message for a piece past the end of the metadata.
    #[error("ut_metadata piece {piece} out of range (the metadata has {pieces} pieces)")]
    PieceOutOfRange {
        /// The piece number sent.
        piece: u32,
        /// The number of pieces.
        pieces: u32,
    },
    /// A data message whose length is not the piece's.
    #[error("ut_metadata piece {piece} is {len} bytes, expected {expected}")]
    BadPieceLength {
        /// The piece number.
        piece: u32,
        /// Bytes received.
        len: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// A data message whose `total_size` differs from the size being fetched.
    #[error("ut_metadata total_size {got} differs from the announced {expected}")]
    SizeMismatch {
        /// The size in the message.
        got: u64,
        /// The size being fetched.
        expected: u64,
    },
    /// Metadata data arrived although none was asked of this peer at this size.
    #[error("unsolicited ut_metadata data for piece {piece}")]
    Unsolicited {
        /// The piece number.
        piece: u32,
    },
}

/// Why a peer is not used for the metadata (reported by
/// [`MetadataFetch::handle_handshake`]; the connection may stay for other purposes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerUse {
    /// The peer can serve metadata.
    Usable,
    /// The peer does not support `ut_metadata` or does not say the size.
    NoMetadata,
    /// The announced `metadata_size` is zero or above the limit.
    BadSize(u64),
}

#[derive(Debug, Clone)]
enum Slot {
    Missing,
    Requested { from: PeerKey, until: Instant },
    Have { data: Bytes, from: PeerKey },
}

#[derive(Debug, Default)]
struct FetchPeer {
    /// The id the peer wants `ut_metadata` under.
    ext_id: Option<u8>,
    /// The size it announced (already checked against the limit).
    size: Option<u64>,
    outstanding: HashSet<u32>,
    /// Pieces ever asked of it at the current size (its data for others is refused).
    asked: HashSet<u32>,
    resting_until: Option<Instant>,
    /// It is not asked again: it contributed to metadata that failed the hash check,
    /// or sent [`MAX_REJECTS`] rejects.
    struck: bool,
    /// `reject` messages received from it.
    rejects: u32,
}

/// The sans-IO metadata fetch. See the [module docs](self).
#[derive(Debug)]
pub struct MetadataFetch {
    expected: InfoHash,
    config: MetadataConfig,
    peers: HashMap<PeerKey, FetchPeer>,
    /// The size being fetched, and its pieces.
    size: Option<u64>,
    slots: Vec<Slot>,
    requests: VecDeque<(PeerKey, u32)>,
    done: Option<Vec<u8>>,
    taken: bool,
    hash_failures: u32,
}

impl MetadataFetch {
    /// A fetch of the metadata whose hash is `expected`.
    pub fn new(expected: InfoHash, config: MetadataConfig) -> MetadataFetch {
        MetadataFetch {
            expected,
            config,
            peers: HashMap::new(),
            size: None,
            slots: Vec::new(),
            requests: VecDeque::new(),
            done: None,
            taken: false,
            hash_failures: 0,
        }
    }

    /// The size being fetched, once a usable peer announced one.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// Pieces received and pieces in total (0 while the size is unknown).
    pub fn progress(&self) -> (u32, u32) {
        let have = self
            .slots
            .iter()
            .filter(|s| matches!(s, Slot::Have { .. }))
            .count();
        (have as u32, self.slots.len() as u32)
    }

    /// How many times assembled metadata failed the hash check.
    pub fn hash_failures(&self) -> u32 {
        self.hash_failures
    }

    /// Whether the verified metadata is available (or was taken).
    pub fn is_done(&self) -> bool {
        self.done.is_some() || self.taken
    }

    /// The verified info dictionary, once (later calls return `None`).
    pub fn take_metadata(&mut self) -> Option<Vec<u8>> {
        let d = self.done.take();
        if d.is_some() {
            self.taken = true;
        }
        d
    }

    /// The next request to send: `ut_metadata` request for `piece`, to `peer` under
    /// the extension id `ext_id` it assigned.
    pub fn poll_request(&mut self) -> Option<(PeerKey, u8, MetadataMessage)> {
        while let Some((key, piece)) = self.requests.pop_front() {
            if let Some(id) = self.peers.get(&key).and_then(|p| p.ext_id) {
                return Some((key, id, MetadataMessage::Request { piece }));
            }
        }
        None
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_done() {
            return None;
        }
        let slots = self.slots.iter().filter_map(|s| match s {
            Slot::Requested { until, .. } => Some(*until),
            _ => None,
        });
        let rests = self.peers.values().filter_map(|p| p.resting_until);
        slots.chain(rests).min()
    }

    /// A peer's extension handshake (also a later one, which may change its ids).
    pub fn handle_handshake(
        &mut self,
        now: Instant,
        key: PeerKey,
        hs: &ExtensionHandshake,
    ) -> PeerUse {
        let p = self.peers.entry(key).or_default();
        p.ext_id = hs.id_of(UT_METADATA);
        let verdict = match (p.ext_id, hs.metadata_size) {
            (None, _) | (_, None) => PeerUse::NoMetadata,
            (Some(_), Some(n)) if n == 0 || n > self.config.max_size => PeerUse::BadSize(n),
            (Some(_), Some(n)) => {
                p.size = Some(n);
                PeerUse::Usable
            }
        };
        if verdict != PeerUse::Usable {
            p.size = None;
            // Whatever it was asked is asked elsewhere.
            let pending: Vec<u32> = p.outstanding.drain().collect();
            self.release(&pending);
        }
        if self.size.is_none() {
            self.choose_size();
        }
        self.fill(now);
        verdict
    }

    /// A `ut_metadata` message from a peer. A request is answered with the message
    /// returned (a reject: we have no metadata yet). `Err` means the peer broke the
    /// protocol.
    pub fn handle_message(
        &mut self,
        now: Instant,
        key: PeerKey,
        msg: MetadataMessage,
    ) -> Result<Option<MetadataMessage>, MetadataError> {
        match msg {
            MetadataMessage::Request { piece } => {
                return Ok(Some(MetadataMessage::Reject { piece }));
            }
            MetadataMessage::Reject { piece } => {
                if let Some(p) = self.peers.get_mut(&key) {
                    p.rejects = p.rejects.saturating_add(1);
                    let mut release = Vec::new();
                    if p.outstanding.remove(&piece) {
                        p.resting_until = Some(now + self.config.reject_backoff);
                        release.push(piece);
                    }
                    let give_up = p.rejects >= MAX_REJECTS && !p.struck;
                    if give_up {
                        tracing::debug!(
                            peer = key,
                            "too many ut_metadata rejects: not asked again"
                        );
                        p.struck = true;
                        release.extend(p.outstanding.drain());
                    }
                    self.release(&release);
                    if give_up && self.size.is_some() && !self.is_done() && !self.size_has_peers() {
                        self.choose_size();
                    }
                }
            }
            MetadataMessage::Data {
                piece,
                total_size,
                data,
            } => self.on_data(key, piece, total_size, data)?,
            _ => {}
        }
        self.fill(now);
        Ok(None)
    }

    fn on_data(
        &mut self,
        key: PeerKey,
        piece: u32,
        total_size: u64,
        data: Bytes,
    ) -> Result<(), MetadataError> {
        if self.is_done() {
            return Ok(());
        }
        let Some(size) = self.size else {
            return Err(MetadataError::Unsolicited { piece });
        };
        if total_size != size {
            return Err(MetadataError::SizeMismatch {
                got: total_size,
                expected: size,
            });
        }
        let pieces = self.slots.len() as u32;
        if piece >= pieces {
            return Err(MetadataError::PieceOutOfRange { piece, pieces });
        }
        let expected = piece_len(size, piece);
        if data.len() != expected {
            return Err(MetadataError::BadPieceLength {
                piece,
                len: data.len(),
                expected,
            });
        }
        let Some(p) = self.peers.get_mut(&key) else {
            return Err(MetadataError::Unsolicited { piece });
        };
        if !p.asked.contains(&piece) {
            // Never asked of this peer at this size: not trusted.
            return Err(MetadataError::Unsolicited { piece });
        }
        p.outstanding.remove(&piece);
        let i = piece as usize;
        match &self.slots[i] {
            // A duplicate (a late answer after a timeout, or a second peer's): ignored.
            Slot::Have { .. } => return Ok(()),
            // A late answer to a request that timed out and went to another peer: that
            // peer's answer will be the duplicate.
            Slot::Requested { from, .. } if *from != key => {
                if let Some(other) = self.peers.get_mut(from) {
                    other.outstanding.remove(&piece);
                }
            }
            _ => {}
        }
        self.slots[i] = Slot::Have { data, from: key };
        if self.slots.iter().all(|s| matches!(s, Slot::Have { .. })) {
            self.assemble();
        }
        Ok(())
    }

    /// The connection is gone: its requests go elsewhere.
    pub fn handle_disconnect(&mut self, now: Instant, key: PeerKey) {
        if let Some(p) = self.peers.remove(&key) {
            let pending: Vec<u32> = p.outstanding.into_iter().collect();
            self.release(&pending);
        }
        if self.size.is_some() && !self.is_done() && !self.size_has_peers() {
            // Nobody left who announced this size: keep the pieces (a new peer with the
            // same size continues), but let another size be chosen if one is there.
            self.choose_size();
        }
        self.fill(now);
    }

    /// Time passed: expired requests are asked elsewhere, rested peers are used again.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut expired = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            if let Slot::Requested { from, until } = s
                && *until <= now
            {
                expired.push((*from, i as u32));
            }
        }
        for (from, piece) in expired {
            if let Some(p) = self.peers.get_mut(&from) {
                p.outstanding.remove(&piece);
                // A slow peer rests too, so the retry goes to someone else.
                p.resting_until = Some(now + self.config.reject_backoff);
            }
            self.slots[piece as usize] = Slot::Missing;
        }
        for p in self.peers.values_mut() {
            if p.resting_until.is_some_and(|t| t <= now) {
                p.resting_until = None;
            }
        }
        self.fill(now);
    }

    fn release(&mut self, pieces: &[u32]) {
        for &piece in pieces {
            if let Some(s) = self.slots.get_mut(piece as usize)
                && matches!(s, Slot::Requested { .. })
            {
                *s = Slot::Missing;
            }
        }
    }

    fn size_has_peers(&self) -> bool {
        self.peers
            .values()
            .any(|p| !p.struck && p.size.is_some() && p.size == self.size)
    }

    /// Picks the size most usable peers announce (ties: the smallest), if it differs.
    fn choose_size(&mut self) {
        let mut votes: HashMap<u64, usize> = HashMap::new();
        for p in self.peers.values().filter(|p| !p.struck) {
            if let Some(n) = p.size {
                *votes.entry(n).or_default() += 1;
            }
        }
        let best = votes
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(n, _)| n);
        if let Some(n) = best
            && Some(n) != self.size
        {
            self.size = Some(n);
            let count = n.div_ceil(METADATA_PIECE_LEN as u64) as usize;
            self.slots = vec![Slot::Missing; count];
            self.requests.clear();
            for p in self.peers.values_mut() {
                p.outstanding.clear();
                p.asked.clear();
            }
        }
    }

    /// Hands out missing pieces to usable peers, the least loaded first.
    fn fill(&mut self, now: Instant) {
        if self.is_done() || self.size.is_none() {
            return;
        }
        let size = self.size;
        let timeout = self.config.request_timeout;
        for i in 0..self.slots.len() {
            if !matches!(self.slots[i], Slot::Missing) {
                continue;
            }
            let best = self
                .peers
                .iter()
                .filter(|(_, p)| {
                    !p.struck
                        && p.ext_id.is_some()
                        && p.size == size
                        && p.resting_until.is_none()
                        && p.outstanding.len() < self.config.per_peer
                })
                .min_by_key(|(k, p)| (p.outstanding.len(), **k))
                .map(|(k, _)| *k);
            let Some(key) = best else {
                return;
            };
            if let Some(p) = self.peers.get_mut(&key) {
                p.outstanding.insert(i as u32);
                p.asked.insert(i as u32);
            }
            self.slots[i] = Slot::Requested {
                from: key,
                until: now + timeout,
            };
            self.requests.push_back((key, i as u32));
        }
    }

    fn assemble(&mut self) {
        let mut buf = Vec::with_capacity(self.size.unwrap_or(0) as usize);
        let mut from = HashSet::new();
        for s in &self.slots {
            if let Slot::Have { data, from: k } = s {
                buf.extend_from_slice(data);
                from.insert(*k);
            }
        }
        if matches_hash(&self.expected, &buf) {
            tracing::info!(bytes = buf.len(), peers = from.len(), "metadata verified");
            self.done = Some(buf);
            self.slots.clear();
            self.requests.clear();
            return;
        }
        self.hash_failures += 1;
        tracing::warn!(
            bytes = buf.len(),
            peers = ?from,
            "assembled metadata does not match the info hash: not asking those peers again"
        );
        for k in from {
            if let Some(p) = self.peers.get_mut(&k) {
                p.struck = true;
                p.outstanding.clear();
            }
        }
        self.size = None;
        self.slots.clear();
        self.choose_size();
    }
}

/// The length of metadata piece `piece` of a `size`-byte info dictionary.
fn piece_len(size: u64, piece: u32) -> usize {
    let start = u64::from(piece) * METADATA_PIECE_LEN as u64;
    size.saturating_sub(start).min(METADATA_PIECE_LEN as u64) as usize
}

/// Whether `info` hashes to `expected`: SHA-1 for v1, SHA-256 for v2, both for hybrid.
pub fn matches_hash(expected: &InfoHash, info: &[u8]) -> bool {
    let v1 = || <[u8; 20]>::from(Sha1::digest(info));
    let v2 = || <[u8; 32]>::from(Sha256::digest(info));
    match expected {
        InfoHash::V1(h) => h.0 == v1(),
        InfoHash::V2(h) => h.0 == v2(),
        InfoHash::Hybrid(a, b) => a.0 == v1() && b.0 == v2(),
    }
}

/// Answers a peer's `ut_metadata` request from the info dictionary we have: the piece,
/// or a reject for a piece out of range.
pub fn serve(info: &Bytes, piece: u32) -> MetadataMessage {
    let start = u64::from(piece) * METADATA_PIECE_LEN as u64;
    if start >= info.len() as u64 {
        return MetadataMessage::Reject { piece };
    }
    let start = start as usize;
    let end = (start + METADATA_PIECE_LEN).min(info.len());
    MetadataMessage::Data {
        piece,
        total_size: info.len() as u64,
        data: info.slice(start..end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metainfo::{InfoHashV1, InfoHashV2};

    fn info(len: usize) -> Bytes {
        Bytes::from((0..len).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>())
    }

    fn v1(b: &[u8]) -> InfoHash {
        InfoHash::V1(InfoHashV1(Sha1::digest(b).into()))
    }

    fn hs(size: u64) -> ExtensionHandshake {
        let mut h = ExtensionHandshake::new();
        h.m.insert(UT_METADATA.into(), 7);
        h.metadata_size = Some(size);
        h
    }

    /// Answers every request from `source` (as each peer's copy) until done.
    fn run(f: &mut MetadataFetch, now: Instant, copies: &HashMap<PeerKey, Bytes>) -> usize {
        let mut served = 0;
        for _ in 0..10_000 {
            let Some((k, id, MetadataMessage::Request { piece })) = f.poll_request() else {
                return served;
            };
            assert_eq!(id, 7);
            served += 1;
            let reply = serve(&copies[&k], piece);
            f.handle_message(now, k, reply).unwrap();
        }
        served
    }

    #[test]
    fn fetches_from_several_peers_and_verifies() {
        let data = info(5 * METADATA_PIECE_LEN + 100);
        let config = MetadataConfig {
            per_peer: 2,
            ..MetadataConfig::default()
        };
        let mut f = MetadataFetch::new(v1(&data), config);
        let now = Instant::now();
        let copies: HashMap<PeerKey, Bytes> = (1..=3).map(|k| (k, data.clone())).collect();
        for k in 1..=3 {
            assert_eq!(
                f.handle_handshake(now, k, &hs(data.len() as u64)),
                PeerUse::Usable
            );
        }
        assert_eq!(f.progress(), (0, 6));
        // Requests are spread: each peer has 2 of the 6.
        let mut per: HashMap<PeerKey, usize> = HashMap::new();
        let mut reqs = Vec::new();
        while let Some(r) = f.poll_request() {
            *per.entry(r.0).or_default() += 1;
            reqs.push(r);
        }
        assert_eq!(reqs.len(), 6);
        assert!(per.values().all(|&n| n == 2), "{per:?}");
        for (k, _, m) in reqs {
            let MetadataMessage::Request { piece } = m else {
                panic!()
            };
            f.handle_message(now, k, serve(&copies[&k], piece)).unwrap();
        }
        assert_eq!(f.take_metadata().as_deref(), Some(&data[..]));
        assert!(f.take_metadata().is_none());
        assert!(f.poll_timeout().is_none());
    }

    #[test]
    fn v2_and_hybrid_hashes_are_checked() {
        let data = info(1000);
        let h2 = InfoHashV2(Sha256::digest(&data).into());
        let InfoHash::V1(h1) = v1(&data) else {
            unreachable!()
        };
        assert!(matches_hash(&InfoHash::V2(h2), &data));
        assert!(matches_hash(&InfoHash::Hybrid(h1, h2), &data));
        assert!(!matches_hash(
            &InfoHash::Hybrid(h1, InfoHashV2([0; 32])),
            &data
        ));
        let mut f = MetadataFetch::new(InfoHash::V2(h2), MetadataConfig::default());
        let now = Instant::now();
        f.handle_handshake(now, 1, &hs(1000));
        run(&mut f, now, &HashMap::from([(1, data.clone())]));
        assert_eq!(f.take_metadata().as_deref(), Some(&data[..]));
    }

    #[test]
    fn a_bad_hash_strikes_the_liar_and_an_honest_peer_finishes() {
        let data = info(3 * METADATA_PIECE_LEN);
        let mut bad = data.to_vec();
        bad[5] ^= 1;
        let mut f = MetadataFetch::new(v1(&data), MetadataConfig::default());
        let now = Instant::now();
        f.handle_handshake(now, 1, &hs(data.len() as u64));
        let copies = HashMap::from([(1, Bytes::from(bad)), (2, data.clone())]);
        run(&mut f, now, &copies);
        assert_eq!(f.hash_failures(), 1);
        assert!(!f.is_done());
        // Peer 1 is not asked again; peer 2 is, and completes.
        f.handle_handshake(now, 2, &hs(data.len() as u64));
        let mut asked = Vec::new();
        while let Some((k, _, MetadataMessage::Request { piece })) = f.poll_request() {
            asked.push(k);
            f.handle_message(now, k, serve(&copies[&k], piece)).unwrap();
        }
        assert!(
            asked.iter().all(|&k| k == 2) && asked.len() == 3,
            "{asked:?}"
        );
        assert_eq!(f.take_metadata().as_deref(), Some(&data[..]));
    }

    #[test]
    fn oversized_and_zero_sizes_are_refused_before_allocating() {
        let mut f = MetadataFetch::new(v1(b"x"), MetadataConfig::default());
        let now = Instant::now();
        assert_eq!(
            f.handle_handshake(now, 1, &hs(u64::MAX)),
            PeerUse::BadSize(u64::MAX)
        );
        assert_eq!(
            f.handle_handshake(now, 2, &hs((16 << 20) + 1)),
            PeerUse::BadSize((16 << 20) + 1)
        );
        assert_eq!(f.handle_handshake(now, 3, &hs(0)), PeerUse::BadSize(0));
        assert_eq!(
            f.handle_handshake(now, 4, &ExtensionHandshake::new()),
            PeerUse::NoMetadata
        );
        assert_eq!(f.size(), None);
        assert_eq!(f.progress(), (0, 0));
        assert!(f.poll_request().is_none());
        // Data nobody asked for, at no known size, is refused.
        assert_eq!(
            f.handle_message(
                now,
                1,
                MetadataMessage::Data {
                    piece: 0,
                    total_size: 1,
                    data: Bytes::from_static(b"x")
                }
            ),
            Err(MetadataError::Unsolicited { piece: 0 })
        );
    }

    #[test]
    fn hostile_data_messages_are_errors() {
        let data = info(METADATA_PIECE_LEN + 10);
        let n = data.len() as u64;
        let mut f = MetadataFetch::new(v1(&data), MetadataConfig::default());
        let now = Instant::now();
        f.handle_handshake(now, 1, &hs(n));
        while f.poll_request().is_some() {}
        let msg = |piece, total_size, len: usize| MetadataMessage::Data {
            piece,
            total_size,
            data: Bytes::from(vec![0u8; len]),
        };
        assert_eq!(
            f.handle_message(now, 1, msg(2, n, 10)),
            Err(MetadataError::PieceOutOfRange {
                piece: 2,
                pieces: 2
            })
        );
        assert_eq!(
            f.handle_message(now, 1, msg(u32::MAX, n, 10)),
            Err(MetadataError::PieceOutOfRange {
                piece: u32::MAX,
                pieces: 2
            })
        );
        assert_eq!(
            f.handle_message(now, 1, msg(1, n, 11)),
            Err(MetadataError::BadPieceLength {
                piece: 1,
                len: 11,
                expected: 10
            })
        );
        assert_eq!(
            f.handle_message(now, 1, msg(0, n + 1, METADATA_PIECE_LEN)),
            Err(MetadataError::SizeMismatch {
                got: n + 1,
                expected: n
            })
        );
        // A peer that was never asked may not fill in pieces.
        assert_eq!(
            f.handle_message(now, 9, serve(&data, 0)),
            Err(MetadataError::Unsolicited { piece: 0 })
        );
        // Duplicates are ignored; the right pieces still complete it.
        f.handle_message(now, 1, serve(&data, 0)).unwrap();
        f.handle_message(now, 1, serve(&data, 0)).unwrap();
        assert_eq!(f.progress(), (1, 2));
        f.handle_message(now, 1, serve(&data, 1)).unwrap();
        assert_eq!(f.take_metadata().as_deref(), Some(&data[..]));
        // After completion, anything more is ignored.
        f.handle_message(now, 1, serve(&data, 1)).unwrap();
    }

    #[test]
    fn rejects_and_timeouts_move_requests_to_other_peers() {
        let data = info(2 * METADATA_PIECE_LEN);
        let n = data.len() as u64;
        let config = MetadataConfig {
            per_peer: 8,
            ..MetadataConfig::default()
        };
        let mut f = MetadataFetch::new(v1(&data), config);
        let t0 = Instant::now();
        f.handle_handshake(t0, 1, &hs(n));
        let first: Vec<_> = std::iter::from_fn(|| f.poll_request()).collect();
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|r| r.0 == 1));
        // Peer 1 rejects piece 0; nobody else yet, so piece 0 waits.
        assert_eq!(
            f.handle_message(t0, 1, MetadataMessage::Reject { piece: 0 }),
            Ok(None)
        );
        assert!(f.poll_request().is_none());
        // Peer 2 arrives and gets piece 0.
        let t1 = t0 + Duration::from_secs(5);
        f.handle_handshake(t1, 2, &hs(n));
        let r: Vec<_> = std::iter::from_fn(|| f.poll_request()).collect();
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].0, &r[0].2),
            (2, &MetadataMessage::Request { piece: 0 })
        );
        // Peer 1 never answers piece 1: after the timeout it goes to peer 2.
        let deadline = f.poll_timeout().unwrap();
        f.handle_timeout(deadline);
        let r: Vec<_> = std::iter::from_fn(|| f.poll_request()).collect();
        assert!(
            r.iter()
                .any(|x| x.0 == 2 && x.2 == MetadataMessage::Request { piece: 1 }),
            "{r:?}"
        );
        // Peer 2 answers both; a late answer from peer 1 is a harmless duplicate.
        f.handle_message(deadline, 2, serve(&data, 0)).unwrap();
        f.handle_message(deadline, 2, serve(&data, 1)).unwrap();
        assert_eq!(f.take_metadata().as_deref(), Some(&data[..]));
        // And our answer to a request is a reject (we had nothing to serve).
        assert_eq!(
            f.handle_message(deadline, 1, MetadataMessage::Request { piece: 0 }),
            Ok(Some(MetadataMessage::Reject { piece: 0 }))
        );
    }

    #[test]
    fn a_peer_that_keeps_rejecting_is_given_up() {
        let data = info(2 * METADATA_PIECE_LEN);
        let n = data.len() as u64;
        let mut f = MetadataFetch::new(v1(&data), MetadataConfig::default());
        let mut now = Instant::now();
        f.handle_handshake(now, 1, &hs(n));
        let mut rejected = 0;
        // It rejects whatever it is asked, again and again (each reject rests it, then
        // it is asked again).
        for _ in 0..1000 {
            while let Some((k, _, MetadataMessage::Request { piece })) = f.poll_request() {
                assert_eq!(k, 1);
                f.handle_message(now, k, MetadataMessage::Reject { piece })
                    .unwrap();
                rejected += 1;
            }
            now += Duration::from_secs(11);
            f.handle_timeout(now);
        }
        assert!(rejected <= MAX_REJECTS, "{rejected} rejects, still asked");
        assert!(f.poll_request().is_none());
        // Unsolicited rejects count too, and an honest peer still completes it.
        let mut g = MetadataFetch::new(v1(&data), MetadataConfig::default());
        g.handle_handshake(now, 1, &hs(n));
        while g.poll_request().is_some() {}
        for _ in 0..MAX_REJECTS {
            g.handle_message(now, 1, MetadataMessage::Reject { piece: 7 })
                .unwrap();
        }
        g.handle_handshake(now, 2, &hs(n));
        let asked: Vec<_> = std::iter::from_fn(|| g.poll_request()).collect();
        assert!(
            asked.iter().all(|r| r.0 == 2) && asked.len() == 2,
            "{asked:?}"
        );
        for (k, _, m) in asked {
            let MetadataMessage::Request { piece } = m else {
                panic!()
            };
            g.handle_message(now, k, serve(&data, piece)).unwrap();
        }
        assert_eq!(g.take_metadata().as_deref(), Some(&data[..]));
    }

    #[test]
    fn a_disconnect_frees_its_requests() {
        let data = info(100);
        let mut f = MetadataFetch::new(v1(&data), MetadataConfig::default());
        let now = Instant::now();
        f.handle_handshake(now, 1, &hs(100));
        assert_eq!(f.poll_request().map(|r| r.0), Some(1));
        f.handle_handshake(now, 2, &hs(100));
        assert!(f.poll_request().is_none());
        f.handle_disconnect(now, 1);
        assert_eq!(f.poll_request().map(|r| r.0), Some(2));
        f.handle_message(now, 2, serve(&data, 0)).unwrap();
        assert!(f.is_done());
    }

    #[test]
    fn the_majority_size_wins_and_serving_rejects_out_of_range() {
        let data = info(40_000);
        let mut f = MetadataFetch::new(v1(&data), MetadataConfig::default());
        let now = Instant::now();
        f.handle_handshake(now, 1, &hs(50_000));
        assert_eq!(f.size(), Some(50_000));
        f.handle_handshake(now, 2, &hs(40_000));
        f.handle_handshake(now, 3, &hs(40_000));
        f.handle_disconnect(now, 1);
        assert_eq!(f.size(), Some(40_000));
        assert_eq!(serve(&data, 3), MetadataMessage::Reject { piece: 3 });
        assert_eq!(
            serve(&data, u32::MAX),
            MetadataMessage::Reject { piece: u32::MAX }
        );
        let copies = HashMap::from([(2, data.clone()), (3, data.clone())]);
        while let Some((k, _, MetadataMessage::Request { piece })) = f.poll_request() {
            f.handle_message(now, k, serve(&copies[&k], piece)).unwrap();
        }
        assert_eq!(f.take_metadata().as_deref(), Some(&data[..]));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Handshake(PeerKey, u64),
        Data(PeerKey, u32, u64, usize),
        Reject(PeerKey, u32),
        Request(PeerKey, u32),
        Disconnect(PeerKey),
        Wait(u64),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let key = 0u64..4;
        let size = prop_oneof![1u64..70_000, any::<u64>()];
        prop_oneof![
            (key.clone(), size).prop_map(|(k, n)| Op::Handshake(k, n)),
            (
                key.clone(),
                0u32..6,
                prop_oneof![1u64..70_000, any::<u64>()],
                0usize..17_000
            )
                .prop_map(|(k, p, t, l)| Op::Data(k, p, t, l)),
            (key.clone(), any::<u32>()).prop_map(|(k, p)| Op::Reject(k, p)),
            (key.clone(), any::<u32>()).prop_map(|(k, p)| Op::Request(k, p)),
            key.prop_map(Op::Disconnect),
            (0u64..30).prop_map(Op::Wait),
        ]
    }

    proptest::proptest! {
        /// Whatever peers send, in any order: no panic, nothing beyond the size limit
        /// is ever set up, and random bytes never pass for the metadata.
        #[test]
        fn hostile_peers_never_panic_or_exceed_limits(ops in proptest::collection::vec(op(), 0..60)) {
            let config = MetadataConfig { max_size: 64 * 1024, ..MetadataConfig::default() };
            let mut f = MetadataFetch::new(v1(b"the real info dictionary"), config);
            let mut now = Instant::now();
            for op in ops {
                match op {
                    Op::Handshake(k, n) => {
                        let _ = f.handle_handshake(now, k, &hs(n));
                    }
                    Op::Data(k, piece, total_size, len) => {
                        let data = Bytes::from(vec![0xab; len]);
                        let _ = f.handle_message(now, k, MetadataMessage::Data { piece, total_size, data });
                    }
                    Op::Reject(k, piece) => {
                        let _ = f.handle_message(now, k, MetadataMessage::Reject { piece });
                    }
                    Op::Request(k, piece) => {
                        let r = f.handle_message(now, k, MetadataMessage::Request { piece });
                        proptest::prop_assert_eq!(r, Ok(Some(MetadataMessage::Reject { piece })));
                    }
                    Op::Disconnect(k) => f.handle_disconnect(now, k),
                    Op::Wait(s) => {
                        now += Duration::from_secs(s);
                        f.handle_timeout(now);
                    }
                }
                while let Some((_, _, m)) = f.poll_request() {
                    let MetadataMessage::Request { piece } = m else {
                        proptest::prop_assert!(false, "only requests go out");
                        unreachable!()
                    };
                    proptest::prop_assert!(piece < f.progress().1);
                }
                proptest::prop_assert!(f.size().is_none_or(|n| n > 0 && n <= 64 * 1024));
                proptest::prop_assert!(f.progress().1 <= 4);
                proptest::prop_assert!(!f.is_done());
            }
        }
    }
}
