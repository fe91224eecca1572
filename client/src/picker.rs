//! The piece picker, sans-IO: which blocks to request from which peer.
//!
//! The picker knows the torrent's geometry, which pieces we have, how many connected
//! peers have each piece (availability), per-file priorities, and every block request
//! in flight (by peer). It does no I/O and reads no clock; randomness (tie-breaking
//! between equally rare pieces) comes from a seeded RNG.
//!
//! Order of preference when a peer can take more requests:
//! 1. blocks of pieces already started (finish what is begun: fewer partial pieces);
//! 2. new pieces: those in the priority window first (in order), then higher file
//!    priority, then in sequential mode the lowest index, else the rarest among the
//!    peer's pieces with random tie-breaking;
//! 3. endgame: once every wanted block is requested or received, blocks already in
//!    flight with other peers (never twice to the same peer); when a block arrives,
//!    [`Picker::block_received`] says which duplicate requests to cancel.
//!
//! Pieces are cut into blocks of [`BLOCK_SIZE`] bytes (the last block of a short piece
//! may be shorter; in a v2-only torrent the last piece of every file is short). Pieces
//! touching only files of priority 0 are never picked, unless a streaming window
//! ([`Picker::set_windows`]) covers them: a reader of a skipped file gets the pieces it
//! reads, and only those.

use std::collections::HashMap;
use std::ops::Range;

use metainfo::{LayoutMode, PieceLayout};
use peer_wire::{Bitfield, BlockRequest};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Block size: 16 KiB, the size every client requests.
pub const BLOCK_SIZE: u32 = 16 * 1024;

/// The priority of a file: 0 = skip, 1 = low, 4 = normal (default), 7 = top.
pub type Priority = u8;

/// The default file priority.
pub const NORMAL: Priority = 4;

/// Identifies a peer connection to the picker (the driver's own key).
pub type PeerKey = u64;

#[derive(Debug, Clone, Default)]
struct BlockState {
    received: bool,
    /// Peers this block is requested from.
    requested: Vec<PeerKey>,
}

#[derive(Debug, Clone)]
struct Active {
    blocks: Vec<BlockState>,
    received: usize,
}

/// What a received block means.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Received {
    /// Whether the block was new (false for a duplicate or unknown block).
    pub new: bool,
    /// The same block requested from other peers: cancel these (endgame).
    pub cancel: Vec<(PeerKey, BlockRequest)>,
    /// All blocks of this piece are in: check its hash, then call
    /// [`Picker::piece_verified`] or [`Picker::piece_failed`].
    pub piece_complete: Option<u32>,
}

/// The sans-IO piece picker. See the [module docs](self).
#[derive(Debug)]
pub struct Picker {
    piece_len: u32,
    last_piece_len: u32,
    piece_count: u32,
    have: Vec<bool>,
    have_count: u32,
    /// Kept up to date as pieces and priorities change, so status and completion are
    /// O(1) (the driver asks after every event, and a torrent can have 2^21 pieces):
    /// bytes of wanted pieces (priority > 0) in all, those we have, and how many
    /// wanted pieces we still miss.
    wanted_total: u64,
    wanted_have: u64,
    wanted_missing: u32,
    /// Pieces whose blocks are all in, being checked.
    pending_check: Vec<bool>,
    availability: Vec<u32>,
    /// Per piece: the highest priority of the files it touches (0 = skip).
    piece_priority: Vec<Priority>,
    file_pieces: Vec<Range<u32>>,
    file_priority: Vec<Priority>,
    active: HashMap<u32, Active>,
    sequential: bool,
    /// Streaming windows: picked first, in order, even in skipped files.
    windows: Vec<Range<u32>>,
    /// v2-only torrents: the layout, for per-file short pieces.
    v2: Option<PieceLayout>,
    /// Pieces that cannot be checked yet (their v2 hashes are being fetched).
    blocked: Vec<bool>,
    rng: StdRng,
}

impl Picker {
    /// A picker for a torrent laid out as `layout` (v1 geometry: all pieces but the last
    /// have the nominal length; v2: the last piece of each file is short), with all
    /// files at normal priority and nothing had.
    /// `seed` seeds the tie-breaking RNG.
    pub fn new(layout: &PieceLayout, seed: u64) -> Picker {
        let n = layout.piece_count();
        let piece_len = u32::try_from(layout.piece_length()).unwrap_or(u32::MAX);
        let last_piece_len = if n == 0 {
            0
        } else {
            u32::try_from(layout.piece_len(n - 1)).unwrap_or(u32::MAX)
        };
        let file_pieces: Vec<Range<u32>> = (0..layout.file_count())
            .map(|i| layout.file_pieces(i))
            .collect();
        let mut p = Picker {
            piece_len,
            last_piece_len,
            piece_count: n,
            have: vec![false; n as usize],
            have_count: 0,
            wanted_total: 0,
            wanted_have: 0,
            wanted_missing: 0,
            pending_check: vec![false; n as usize],
            availability: vec![0; n as usize],
            piece_priority: vec![NORMAL; n as usize],
            file_priority: vec![NORMAL; file_pieces.len()],
            file_pieces,
            active: HashMap::new(),
            sequential: false,
            windows: Vec::new(),
            v2: (layout.mode() == LayoutMode::V2).then(|| layout.clone()),
            blocked: vec![false; n as usize],
            rng: StdRng::seed_from_u64(seed),
        };
        p.recompute_priorities();
        p
    }

    /// The number of pieces.
    pub fn piece_count(&self) -> u32 {
        self.piece_count
    }

    /// The length of piece `index` (0 if out of range).
    pub fn piece_len(&self, index: u32) -> u32 {
        if index >= self.piece_count {
            0
        } else if let Some(l) = &self.v2 {
            u32::try_from(l.piece_len(index)).unwrap_or(u32::MAX)
        } else if index + 1 == self.piece_count {
            self.last_piece_len
        } else {
            self.piece_len
        }
    }

    fn block_count(&self, index: u32) -> usize {
        self.piece_len(index).div_ceil(BLOCK_SIZE) as usize
    }

    fn block_request(&self, index: u32, block: usize) -> BlockRequest {
        let begin = block as u32 * BLOCK_SIZE;
        BlockRequest {
            index,
            begin,
            length: (self.piece_len(index) - begin).min(BLOCK_SIZE),
        }
    }

    /// Marks the pieces we already have (from [`crate::storage::Storage::verify_existing`]).
    pub fn set_have(&mut self, have: &[bool]) {
        for (i, &h) in have.iter().enumerate().take(self.have.len()) {
            if h && !self.have[i] {
                self.have[i] = true;
                self.have_count += 1;
                self.count_have(i as u32, true);
                self.active.remove(&(i as u32));
            }
        }
    }

    /// Whether we have piece `index`.
    pub fn has(&self, index: u32) -> bool {
        self.have.get(index as usize).copied().unwrap_or(false)
    }

    /// Our pieces as a bitfield.
    pub fn bitfield(&self) -> Bitfield {
        let mut b = Bitfield::new(self.piece_count);
        for (i, _) in self.have.iter().enumerate().filter(|(_, h)| **h) {
            b.set(i as u32);
        }
        b
    }

    /// How many pieces we have.
    pub fn have_count(&self) -> u32 {
        self.have_count
    }

    /// Whether we have every piece we want (every piece of a file with priority > 0).
    pub fn is_complete(&self) -> bool {
        self.wanted_missing == 0
    }

    /// The bytes of wanted pieces we have and in all: `(have, total)`.
    pub fn wanted_bytes(&self) -> (u64, u64) {
        (self.wanted_have, self.wanted_total)
    }

    /// Piece `index` became had (`true`) or not had: the wanted counters follow.
    fn count_have(&mut self, index: u32, had: bool) {
        if self
            .piece_priority
            .get(index as usize)
            .is_some_and(|&p| p > 0)
        {
            let l = u64::from(self.piece_len(index));
            if had {
                self.wanted_have += l;
                self.wanted_missing = self.wanted_missing.saturating_sub(1);
            } else {
                self.wanted_have = self.wanted_have.saturating_sub(l);
                self.wanted_missing += 1;
            }
        }
    }

    /// Recounts the wanted counters from scratch (after priorities changed).
    fn recount_wanted(&mut self) {
        let (mut have, mut total, mut missing) = (0u64, 0u64, 0u32);
        for i in 0..self.piece_count {
            if self.piece_priority[i as usize] == 0 {
                continue;
            }
            let l = u64::from(self.piece_len(i));
            total += l;
            if self.have[i as usize] {
                have += l;
            } else {
                missing += 1;
            }
        }
        (self.wanted_have, self.wanted_total, self.wanted_missing) = (have, total, missing);
    }

    /// Whether we want something `peer` has.
    pub fn interested_in(&self, peer: &Bitfield) -> bool {
        // Nothing wanted (a seed, or every wanted piece had and no streaming window): no
        // scan.
        if self.wanted_missing == 0 && self.windows.is_empty() {
            return false;
        }
        (0..self.piece_count).any(|i| self.wanted(i) && peer.has(i))
    }

    /// Whether we want piece `index` (do not have it, and its files or a streaming
    /// window want it).
    pub fn wants(&self, index: u32) -> bool {
        index < self.piece_count && self.wanted(index)
    }

    fn wanted(&self, i: u32) -> bool {
        !self.have[i as usize]
            && !self.blocked[i as usize]
            && (self.piece_priority[i as usize] > 0 || self.in_window(i))
    }

    /// Blocks (or unblocks) pieces: blocked pieces are still needed for completion but
    /// never picked (their hashes are not known yet).
    pub fn set_blocked(&mut self, pieces: Range<u32>, blocked: bool) {
        let n = self.piece_count;
        for i in pieces.start.min(n)..pieces.end.min(n) {
            self.blocked[i as usize] = blocked;
        }
    }

    fn in_window(&self, i: u32) -> bool {
        self.windows.iter().any(|w| w.contains(&i))
    }

    /// The priority of file `file` (`None` for an unknown file).
    pub fn file_priority(&self, file: usize) -> Option<Priority> {
        self.file_priority.get(file).copied()
    }

    /// Whether piece `index` is wanted by file priority (some file it touches has a
    /// priority above 0); streaming windows aside.
    pub fn piece_wanted(&self, index: u32) -> bool {
        self.piece_priority
            .get(index as usize)
            .is_some_and(|&p| p > 0)
    }

    /// Sets a file's priority (0 = skip). Unknown files are ignored.
    pub fn set_file_priority(&mut self, file: usize, priority: Priority) {
        if let Some(p) = self.file_priority.get_mut(file) {
            *p = priority;
            self.recompute_priorities();
        }
    }

    fn recompute_priorities(&mut self) {
        self.piece_priority.fill(0);
        for (range, &prio) in self.file_pieces.iter().zip(&self.file_priority) {
            for i in range.clone() {
                if let Some(p) = self.piece_priority.get_mut(i as usize) {
                    *p = (*p).max(prio);
                }
            }
        }
        // Pieces only of padding or empty files (none in practice) stay wanted if no
        // file claims them, so the torrent can complete.
        if self.file_pieces.is_empty() {
            self.piece_priority.fill(NORMAL);
        }
        self.recount_wanted();
    }

    /// Sequential mode: new pieces in index order instead of rarest first.
    pub fn set_sequential(&mut self, on: bool) {
        self.sequential = on;
    }

    /// Pieces picked before all others, in order (for streaming: the pieces just ahead
    /// of the reader). An empty range turns the window off. Same as
    /// [`set_windows`](Self::set_windows) with one range.
    pub fn set_window(&mut self, pieces: Range<u32>) {
        self.set_windows(vec![pieces]);
    }

    /// Several streaming windows (one per reader), in order of precedence: their pieces
    /// are picked before all others, window by window and in index order, and are
    /// wanted even if they belong only to skipped files. Empty ranges are dropped.
    pub fn set_windows(&mut self, windows: Vec<Range<u32>>) {
        let n = self.piece_count;
        self.windows = windows
            .into_iter()
            .map(|w| w.start.min(n)..w.end.min(n))
            .filter(|w| !w.is_empty())
            .collect();
    }

    /// A peer announced its pieces (bitfield or `have all`).
    pub fn add_peer_pieces(&mut self, pieces: &Bitfield) {
        for i in 0..self.piece_count {
            if pieces.has(i) {
                self.availability[i as usize] += 1;
            }
        }
    }

    /// A peer announced one more piece.
    pub fn add_peer_have(&mut self, piece: u32) {
        if let Some(a) = self.availability.get_mut(piece as usize) {
            *a += 1;
        }
    }

    /// A peer is gone: forget its pieces and its requests (they can be picked again).
    pub fn remove_peer(&mut self, peer: PeerKey, pieces: &Bitfield) {
        for i in 0..self.piece_count {
            if pieces.has(i) {
                let a = &mut self.availability[i as usize];
                *a = a.saturating_sub(1);
            }
        }
        for a in self.active.values_mut() {
            for b in &mut a.blocks {
                b.requested.retain(|p| *p != peer);
            }
        }
    }

    /// How many connected peers have piece `index`.
    pub fn availability(&self, index: u32) -> u32 {
        self.availability.get(index as usize).copied().unwrap_or(0)
    }

    /// Picks up to `max` blocks to request from `peer`, whose pieces are `peer_has`, and
    /// records them as requested from it.
    pub fn pick(&mut self, peer: PeerKey, peer_has: &Bitfield, max: usize) -> Vec<BlockRequest> {
        let mut out = Vec::new();
        if max == 0 {
            return out;
        }
        // 1. Started pieces, lowest index first (deterministic), window pieces first.
        let mut started: Vec<u32> = self
            .active
            .keys()
            .copied()
            .filter(|&i| peer_has.has(i) && !self.pending_check[i as usize])
            .collect();
        started.sort_unstable_by_key(|&i| (!self.in_window(i), i));
        for i in started {
            self.take_free_blocks(peer, i, max, &mut out);
            if out.len() >= max {
                return out;
            }
        }
        // 2. New pieces.
        while out.len() < max {
            let Some(i) = self.next_new_piece(peer_has) else {
                break;
            };
            let blocks = vec![BlockState::default(); self.block_count(i)];
            self.active.insert(
                i,
                Active {
                    blocks,
                    received: 0,
                },
            );
            self.take_free_blocks(peer, i, max, &mut out);
        }
        if !out.is_empty() {
            return out;
        }
        // 3. Endgame: nothing left unrequested for this peer; duplicate requests in
        // flight elsewhere, least duplicated first.
        if self.any_unrequested_wanted() {
            return out;
        }
        let mut cands: Vec<(usize, u32, usize)> = Vec::new();
        for (&i, a) in &self.active {
            if !peer_has.has(i) || self.pending_check[i as usize] {
                continue;
            }
            for (k, b) in a.blocks.iter().enumerate() {
                if !b.received && !b.requested.contains(&peer) {
                    cands.push((b.requested.len(), i, k));
                }
            }
        }
        cands.sort_unstable();
        for (_, i, k) in cands.into_iter().take(max) {
            if let Some(a) = self.active.get_mut(&i) {
                a.blocks[k].requested.push(peer);
            }
            out.push(self.block_request(i, k));
        }
        out
    }

    /// Whether some wanted block is neither requested nor received (any peer may have it).
    fn any_unrequested_wanted(&self) -> bool {
        for i in 0..self.piece_count {
            if !self.wanted(i) || self.pending_check[i as usize] {
                continue;
            }
            match self.active.get(&i) {
                None => {
                    if self.availability[i as usize] > 0 {
                        return true;
                    }
                }
                Some(a) => {
                    if a.blocks
                        .iter()
                        .any(|b| !b.received && b.requested.is_empty())
                    {
                        return true;
                    }
                }
            }
        }
        false
    }

    fn take_free_blocks(&mut self, peer: PeerKey, i: u32, max: usize, out: &mut Vec<BlockRequest>) {
        let Some(a) = self.active.get_mut(&i) else {
            return;
        };
        let mut picked = Vec::new();
        for (k, b) in a.blocks.iter_mut().enumerate() {
            if out.len() + picked.len() >= max {
                break;
            }
            if !b.received && b.requested.is_empty() {
                b.requested.push(peer);
                picked.push(k);
            }
        }
        for k in picked {
            out.push(self.block_request(i, k));
        }
    }

    fn next_new_piece(&mut self, peer_has: &Bitfield) -> Option<u32> {
        let eligible =
            |p: &Picker, i: u32| p.wanted(i) && peer_has.has(i) && !p.active.contains_key(&i);
        for w in self.windows.clone() {
            for i in w {
                if eligible(self, i) {
                    return Some(i);
                }
            }
        }
        // Best (priority desc, then availability asc / index asc); ties broken at random
        // by reservoir sampling.
        let mut best: Option<(Priority, u32)> = None;
        let mut chosen = None;
        let mut ties = 0u32;
        for i in 0..self.piece_count {
            if !eligible(self, i) {
                continue;
            }
            let prio = self.piece_priority[i as usize];
            let rank = if self.sequential {
                0
            } else {
                self.availability[i as usize]
            };
            let better = match best {
                None => true,
                Some((bp, br)) => prio > bp || (prio == bp && rank < br),
            };
            if better {
                best = Some((prio, rank));
                chosen = Some(i);
                ties = 1;
                if self.sequential {
                    // The lowest index of the highest priority seen so far wins.
                    continue;
                }
            } else if !self.sequential && best == Some((prio, rank)) {
                ties += 1;
                if self.rng.random_range(0..ties) == 0 {
                    chosen = Some(i);
                }
            }
        }
        chosen
    }

    /// A block arrived from `peer`. Returns whether it is new, which duplicate requests
    /// to cancel, and whether its piece is now complete (ready for a hash check).
    pub fn block_received(&mut self, peer: PeerKey, r: &BlockRequest) -> Received {
        let mut out = Received::default();
        if r.begin % BLOCK_SIZE != 0 {
            return out;
        }
        let k = (r.begin / BLOCK_SIZE) as usize;
        let expected = if r.index < self.piece_count && k < self.block_count(r.index) {
            self.block_request(r.index, k)
        } else {
            return out;
        };
        if expected != *r {
            return out;
        }
        let Some(a) = self.active.get_mut(&r.index) else {
            return out;
        };
        let b = &mut a.blocks[k];
        if b.received {
            b.requested.retain(|p| *p != peer);
            return out;
        }
        b.received = true;
        out.new = true;
        for p in std::mem::take(&mut b.requested) {
            if p != peer {
                out.cancel.push((p, *r));
            }
        }
        a.received += 1;
        if a.received == a.blocks.len() {
            self.pending_check[r.index as usize] = true;
            out.piece_complete = Some(r.index);
        }
        out
    }

    /// A request to `peer` will not be answered (rejected, timed out, choked): its block
    /// can be picked again.
    pub fn request_failed(&mut self, peer: PeerKey, r: &BlockRequest) {
        let k = (r.begin / BLOCK_SIZE) as usize;
        if let Some(b) = self
            .active
            .get_mut(&r.index)
            .and_then(|a| a.blocks.get_mut(k))
        {
            b.requested.retain(|p| *p != peer);
        }
    }

    /// The piece passed its hash check and is stored: we have it.
    pub fn piece_verified(&mut self, index: u32) {
        if let Some(h) = self.have.get_mut(index as usize) {
            self.active.remove(&index);
            self.pending_check[index as usize] = false;
            if !*h {
                *h = true;
                self.have_count += 1;
                self.count_have(index, true);
            }
        }
    }

    /// A verified piece was lost before it reached the disk (its write failed): it is
    /// wanted again, like a piece never had.
    pub fn piece_lost(&mut self, index: u32) {
        if let Some(h) = self.have.get_mut(index as usize)
            && *h
        {
            *h = false;
            self.have_count -= 1;
            self.count_have(index, false);
        }
    }

    /// The piece failed its hash check: all its blocks are wanted again.
    pub fn piece_failed(&mut self, index: u32) {
        if (index as usize) < self.pending_check.len() {
            self.pending_check[index as usize] = false;
            self.active.remove(&index);
        }
    }

    /// Blocks currently requested from some peer and not yet received.
    pub fn in_flight(&self) -> usize {
        self.active
            .values()
            .flat_map(|a| &a.blocks)
            .filter(|b| !b.received && !b.requested.is_empty())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn layout(files: &[u64], piece: u64) -> PieceLayout {
        PieceLayout::new(piece, LayoutMode::V1, files.iter().map(|&l| (l, false))).unwrap()
    }

    fn full(n: u32) -> Bitfield {
        Bitfield::full(n)
    }

    fn bits(n: u32, set: &[u32]) -> Bitfield {
        let mut b = Bitfield::new(n);
        for &i in set {
            b.set(i);
        }
        b
    }

    /// Receives every block, verifying pieces as they complete.
    fn deliver(p: &mut Picker, peer: PeerKey, reqs: &[BlockRequest]) {
        for r in reqs {
            let got = p.block_received(peer, r);
            if let Some(i) = got.piece_complete {
                p.piece_verified(i);
            }
        }
    }

    #[test]
    fn blocks_cover_pieces_with_a_short_last_block() {
        let l = layout(&[40_000 + 32768], 32768);
        let mut p = Picker::new(&l, 1);
        p.add_peer_pieces(&full(3));
        let reqs = p.pick(1, &full(3), 100);
        let total: u64 = reqs.iter().map(|r| u64::from(r.length)).sum();
        assert_eq!(total, 72_768);
        assert!(reqs.iter().all(|r| r.length <= BLOCK_SIZE));
        assert!(reqs.contains(&BlockRequest {
            index: 2,
            begin: 0,
            length: 72_768 - 65_536
        }));
        deliver(&mut p, 1, &reqs);
        assert!(p.is_complete());
        assert_eq!(p.wanted_bytes(), (72_768, 72_768));
    }

    #[test]
    fn rarest_first() {
        let l = layout(&[4 * 16384], 16384);
        let mut p = Picker::new(&l, 1);
        p.add_peer_pieces(&full(4));
        p.add_peer_pieces(&bits(4, &[0, 1, 3]));
        p.add_peer_pieces(&bits(4, &[0, 3]));
        // Piece 2 is on one peer, 1 on two, 0 and 3 on three.
        let r = p.pick(9, &full(4), 1);
        assert_eq!(r[0].index, 2);
        let r = p.pick(9, &full(4), 1);
        assert_eq!(r[0].index, 1);
    }

    #[test]
    fn ties_are_broken_at_random_but_reproducibly() {
        let l = layout(&[64 * 16384], 16384);
        let first = |seed| {
            let mut p = Picker::new(&l, seed);
            p.add_peer_pieces(&full(64));
            p.pick(1, &full(64), 1)[0].index
        };
        let picks: std::collections::HashSet<u32> = (0..20).map(first).collect();
        assert!(picks.len() > 1, "{picks:?}");
        assert_eq!(first(5), first(5));
    }

    #[test]
    fn sequential_and_window() {
        let l = layout(&[8 * 16384], 16384);
        let mut p = Picker::new(&l, 3);
        p.add_peer_pieces(&full(8));
        p.set_sequential(true);
        let order: Vec<u32> = (0..3).map(|_| p.pick(1, &full(8), 1)[0].index).collect();
        assert_eq!(order, [0, 1, 2]);
        p.set_window(6..8);
        assert_eq!(p.pick(1, &full(8), 1)[0].index, 6);
        assert_eq!(p.pick(1, &full(8), 1)[0].index, 7);
        assert_eq!(p.pick(1, &full(8), 1)[0].index, 3);
    }

    #[test]
    fn skipped_files_and_priorities() {
        // Three files of two pieces each.
        let l = layout(&[32768, 32768, 32768], 16384);
        let mut p = Picker::new(&l, 3);
        p.add_peer_pieces(&full(6));
        p.set_file_priority(0, 0);
        p.set_file_priority(2, 7);
        let first: Vec<u32> = (0..2).map(|_| p.pick(1, &full(6), 1)[0].index).collect();
        assert!(first.iter().all(|i| (4..6).contains(i)), "{first:?}");
        let mut all = Vec::new();
        loop {
            let r = p.pick(1, &full(6), 10);
            if r.is_empty() {
                break;
            }
            all.extend(r);
        }
        assert!(all.iter().all(|r| r.index >= 2));
    }

    #[test]
    fn a_window_over_a_skipped_file_fetches_only_the_window() {
        // Two files of four pieces each; the first is skipped.
        let l = layout(&[4 * 16384, 4 * 16384], 16384);
        let mut p = Picker::new(&l, 3);
        p.add_peer_pieces(&full(8));
        p.set_file_priority(0, 0);
        assert_eq!(p.wanted_bytes(), (0, 4 * 16384));
        p.set_windows(vec![2..3, 0..0, 7..8]);
        let order: Vec<u32> = (0..3).map(|_| p.pick(1, &full(8), 1)[0].index).collect();
        assert_eq!(order[..2], [2, 7]);
        assert!((4..7).contains(&order[2]), "{order:?}");
        let mut all = Vec::new();
        loop {
            let r = p.pick(1, &full(8), 10);
            if r.is_empty() {
                break;
            }
            all.extend(r);
        }
        assert!(all.iter().all(|r| r.index >= 4), "{all:?}");
        assert_eq!(p.file_priority(0), Some(0));
        assert!(!p.piece_wanted(2) && p.piece_wanted(4));
    }

    #[test]
    fn v2_pieces_end_with_each_file() {
        let l = PieceLayout::new(32768, LayoutMode::V2, [(40_000, false), (100, false)]).unwrap();
        let mut p = Picker::new(&l, 3);
        assert_eq!(p.piece_count(), 3);
        assert_eq!(
            (0..3).map(|i| p.piece_len(i)).collect::<Vec<_>>(),
            [32768, 40_000 - 32768, 100]
        );
        p.add_peer_pieces(&full(3));
        let reqs = p.pick(1, &full(3), 100);
        let total: u64 = reqs.iter().map(|r| u64::from(r.length)).sum();
        assert_eq!(total, 40_100);
        deliver(&mut p, 1, &reqs);
        assert!(p.is_complete());
    }

    #[test]
    fn endgame_duplicates_then_cancels() {
        let l = layout(&[2 * 16384], 16384);
        let mut p = Picker::new(&l, 3);
        p.add_peer_pieces(&full(2));
        p.add_peer_pieces(&full(2));
        let a = p.pick(1, &full(2), 10);
        assert_eq!(a.len(), 2);
        // Everything is requested: peer 2 gets duplicates, never the same one twice.
        let b = p.pick(2, &full(2), 10);
        assert_eq!(b.len(), 2);
        assert!(p.pick(2, &full(2), 10).is_empty());
        let got = p.block_received(2, &b[0]);
        assert!(got.new);
        assert_eq!(got.cancel, vec![(1, b[0])]);
        let dup = p.block_received(1, &b[0]);
        assert!(!dup.new);
    }

    #[test]
    fn failed_requests_and_gone_peers_free_blocks() {
        let l = layout(&[2 * 16384], 16384);
        let mut p = Picker::new(&l, 3);
        p.add_peer_pieces(&full(2));
        let a = p.pick(1, &full(2), 1);
        p.request_failed(1, &a[0]);
        let b = p.pick(2, &full(2), 1);
        assert_eq!(a, b);
        p.remove_peer(2, &full(2));
        assert_eq!(p.in_flight(), 0);
        assert_eq!(p.availability(0), 0);
    }

    #[test]
    fn a_failed_hash_check_makes_the_piece_wanted_again() {
        let l = layout(&[16384], 16384);
        let mut p = Picker::new(&l, 3);
        p.add_peer_pieces(&full(1));
        let a = p.pick(1, &full(1), 4);
        let got = p.block_received(1, &a[0]);
        assert_eq!(got.piece_complete, Some(0));
        assert!(p.pick(1, &full(1), 4).is_empty());
        p.piece_failed(0);
        assert_eq!(p.pick(1, &full(1), 4), a);
        deliver(&mut p, 1, &a);
        assert!(p.is_complete());
    }

    proptest! {
        // The O(1) counters behind `wanted_bytes` and `is_complete` agree with a recount
        // over every piece after any mix of pieces had, lost and priorities changed.
        #[test]
        fn wanted_counters_match_a_recount(
            files in prop::collection::vec(1u64..100_000, 1..6),
            ops in prop::collection::vec((0u8..4, any::<u32>(), 0u8..3), 0..60),
        ) {
            let l = layout(&files, 16384);
            let n = l.piece_count();
            let mut p = Picker::new(&l, 1);
            for (op, x, prio) in ops {
                let i = x % n.max(1);
                match op {
                    0 => p.piece_verified(i),
                    1 => p.piece_lost(i),
                    2 => p.set_file_priority(x as usize % files.len(), prio),
                    _ => {
                        let have: Vec<bool> = (0..n).map(|j| (j ^ x) % 3 == 0).collect();
                        p.set_have(&have);
                    }
                }
                let (mut have, mut total) = (0u64, 0u64);
                for j in 0..n {
                    if p.piece_priority[j as usize] > 0 {
                        total += u64::from(p.piece_len(j));
                        if p.has(j) {
                            have += u64::from(p.piece_len(j));
                        }
                    }
                }
                prop_assert_eq!(p.wanted_bytes(), (have, total));
                let complete = (0..n).all(|j| p.has(j) || p.piece_priority[j as usize] == 0);
                prop_assert_eq!(p.is_complete(), complete);
            }
        }

        #[test]
        fn swarm_completes_and_respects_peers_and_skips(
            files in prop::collection::vec(1u64..100_000, 1..5),
            peers in prop::collection::vec(prop::collection::vec(any::<bool>(), 64), 1..5),
            skip in prop::collection::vec(any::<bool>(), 5),
            sequential in any::<bool>(),
            seed in any::<u64>(),
            batch in 1usize..40,
        ) {
            let l = layout(&files, 16384);
            let n = l.piece_count();
            let mut p = Picker::new(&l, seed);
            p.set_sequential(sequential);
            for (f, s) in skip.iter().enumerate().take(files.len()) {
                if *s {
                    p.set_file_priority(f, 0);
                }
            }
            // The last peer is a seed so the torrent can always complete.
            let mut fields: Vec<Bitfield> = peers
                .iter()
                .map(|bs| {
                    let set: Vec<u32> = (0..n).filter(|&i| bs[i as usize % 64]).collect();
                    bits(n, &set)
                })
                .collect();
            fields.push(full(n));
            for f in &fields {
                p.add_peer_pieces(f);
            }
            let skipped: Vec<u32> = (0..n).filter(|&i| p.piece_priority[i as usize] == 0).collect();
            for _round in 0..10_000 {
                if p.is_complete() {
                    break;
                }
                let mut progress = false;
                for (k, f) in fields.iter().enumerate() {
                    let reqs = p.pick(k as u64, f, batch);
                    for r in &reqs {
                        prop_assert!(f.has(r.index), "picked {r:?} the peer lacks");
                        prop_assert!(!skipped.contains(&r.index), "picked skipped {r:?}");
                    }
                    progress |= !reqs.is_empty();
                    deliver(&mut p, k as u64, &reqs);
                }
                prop_assert!(progress || p.is_complete());
            }
            prop_assert!(p.is_complete());
            prop_assert_eq!(p.in_flight(), 0);
        }
    }
}
