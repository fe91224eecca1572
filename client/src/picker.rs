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
    /// Blocks neither received nor requested (for the O(1) endgame check).
    free: usize,
}

impl Active {
    fn new(blocks: usize) -> Active {
        Active {
            blocks: vec![BlockState::default(); blocks],
            received: 0,
            free: blocks,
        }
    }

    /// Records block `k` as requested from `peer`.
    fn request(&mut self, k: usize, peer: PeerKey) {
        let b = &mut self.blocks[k];
        if !b.received && b.requested.is_empty() {
            self.free -= 1;
        }
        b.requested.push(peer);
    }

    /// Forgets `peer`'s request of block `k` (if any).
    fn unrequest(&mut self, k: usize, peer: PeerKey) {
        let b = &mut self.blocks[k];
        let before = b.requested.len();
        b.requested.retain(|p| *p != peer);
        if !b.received && before > 0 && b.requested.is_empty() {
            self.free += 1;
        }
    }
}

/// A peer's bitfield with more than 1/`REBUILD_FRACTION` of the pieces makes the levels
/// rebuilt rather than updated piece by piece (see `Picker::many_move`).
const REBUILD_FRACTION: u64 = 4;

/// Marks a piece that is not in the buckets.
const NONE: u32 = u32::MAX;

/// The free pieces of one priority (see [`Picker`]'s `levels`): sorted by availability
/// into buckets, in random order within a bucket.
#[derive(Debug, Clone, Default)]
struct Level {
    /// The pieces, bucket after bucket (availability 0, 1, ...).
    order: Vec<u32>,
    /// `ends[a]`: where the bucket of availability `a` ends in `order` (exclusive). The
    /// last equals `order.len()`, and the last bucket is never empty (empty if `order`
    /// is).
    ends: Vec<u32>,
    /// Sequential mode: no piece of this level has a lower index.
    cursor: u32,
}

impl Level {
    fn start(&self, a: usize) -> usize {
        if a == 0 { 0 } else { self.ends[a - 1] as usize }
    }

    fn swap(&mut self, pos: &mut [u32], x: usize, y: usize) {
        if x != y {
            self.order.swap(x, y);
            pos[self.order[x] as usize] = x as u32;
            pos[self.order[y] as usize] = y as u32;
        }
    }

    /// Swaps the piece at `p` (in bucket `a`) with a random piece of its bucket, so a
    /// bucket stays a random permutation however pieces come in.
    fn scatter(&mut self, pos: &mut [u32], rng: &mut StdRng, p: usize, a: usize) {
        let (s, e) = (self.start(a), self.ends[a] as usize);
        if e - s > 1 {
            let r = rng.random_range(s..e);
            self.swap(pos, p, r);
        }
    }

    /// Drops empty buckets at the top.
    fn trim(&mut self) {
        while let [.., x, y] = self.ends[..]
            && x == y
        {
            self.ends.pop();
        }
        if self.order.is_empty() {
            self.ends.clear();
        }
    }

    /// Adds piece `i` of availability `a`: appended, walked down bucket by bucket (one
    /// swap each), then put at a random place in its bucket.
    fn insert(&mut self, pos: &mut [u32], rng: &mut StdRng, i: u32, a: usize) {
        if self.ends.len() <= a {
            self.ends.resize(a + 1, self.order.len() as u32);
        }
        let mut p = self.order.len();
        self.order.push(i);
        pos[i as usize] = p as u32;
        let top = self.ends.len() - 1;
        self.ends[top] += 1;
        for c in (a + 1..=top).rev() {
            let first = self.ends[c - 1] as usize;
            self.swap(pos, p, first);
            p = first;
            self.ends[c - 1] += 1;
        }
        self.scatter(pos, rng, p, a);
        self.cursor = self.cursor.min(i);
    }

    /// Removes piece `i` of availability `a`: walked up to the end (one swap per bucket)
    /// and popped.
    fn remove(&mut self, pos: &mut [u32], i: u32, a: usize) {
        let mut p = pos[i as usize] as usize;
        for c in a..self.ends.len() {
            let last = self.ends[c] as usize - 1;
            self.swap(pos, p, last);
            p = last;
            self.ends[c] -= 1;
        }
        self.order.pop();
        pos[i as usize] = NONE;
        self.trim();
    }

    /// Piece `i`'s availability went from `a` to `a + 1`: it moves to the next bucket.
    fn raise(&mut self, pos: &mut [u32], rng: &mut StdRng, i: u32, a: usize) {
        if self.ends.len() <= a + 1 {
            self.ends.push(self.order.len() as u32);
        }
        let last = self.ends[a] as usize - 1;
        self.swap(pos, pos[i as usize] as usize, last);
        self.ends[a] -= 1;
        self.scatter(pos, rng, last, a + 1);
    }

    /// Piece `i`'s availability went from `a` (> 0) to `a - 1`: it moves to the bucket
    /// before.
    fn lower(&mut self, pos: &mut [u32], rng: &mut StdRng, i: u32, a: usize) {
        let first = self.ends[a - 1] as usize;
        self.swap(pos, pos[i as usize] as usize, first);
        self.ends[a - 1] += 1;
        self.scatter(pos, rng, first, a - 1);
        self.trim();
    }
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
    /// The free pieces (wanted by priority, not had, not blocked, not started), as in
    /// libtorrent's piece_picker: per priority, one vector ordered by availability with
    /// bucket boundaries, and each piece's position in it (`pos`, [`NONE`] if not free).
    /// A piece whose availability changes moves to the next bucket with one swap; one
    /// that starts or comes back costs a swap per bucket (per distinct availability).
    /// Rarest first is then the first piece of the best level that the peer has.
    /// Indexed by priority.
    levels: Vec<Level>,
    pos: Vec<u32>,
    /// The priorities of pieces (> 0), highest first.
    prios: Vec<Priority>,
    /// The levels no longer match the pieces (priorities changed): rebuilt when next
    /// needed, and not maintained until then.
    stale: bool,
    /// [`REBUILD_FRACTION`] (tests set 0: never rebuild for a bitfield).
    rebuild_fraction: u64,
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
            levels: vec![Level::default(); usize::from(Priority::MAX) + 1],
            pos: vec![NONE; n as usize],
            prios: Vec::new(),
            stale: true,
            rebuild_fraction: REBUILD_FRACTION,
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
                self.refresh(i as u32);
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
            self.refresh(i);
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

    /// Sets every file's priority at once (`priorities[i]` for file `i`; files past
    /// its end keep theirs): one recount for the whole torrent, where a call of
    /// [`set_file_priority`](Self::set_file_priority) per file recounts each time (a
    /// torrent can have 2^20 files, padding files included).
    pub fn set_file_priorities(&mut self, priorities: &[Priority]) {
        for (p, &q) in self.file_priority.iter_mut().zip(priorities) {
            *p = q;
        }
        self.recompute_priorities();
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
        self.stale = true;
    }

    /// Whether piece `i` belongs in the levels: wanted by priority, not had, not
    /// blocked, not started (pieces being checked are started).
    fn free(&self, i: u32) -> bool {
        let u = i as usize;
        !self.have[u]
            && !self.blocked[u]
            && self.piece_priority[u] > 0
            && !self.active.contains_key(&i)
    }

    /// Puts piece `i` in or takes it out of the levels after its state changed (not
    /// its availability or priority).
    fn refresh(&mut self, i: u32) {
        if self.stale {
            return;
        }
        let (free, listed) = (self.free(i), self.pos[i as usize] != NONE);
        if free == listed {
            return;
        }
        let u = i as usize;
        let a = self.availability[u] as usize;
        let l = &mut self.levels[usize::from(self.piece_priority[u])];
        if free {
            l.insert(&mut self.pos, &mut self.rng, i, a);
        } else {
            l.remove(&mut self.pos, i, a);
        }
    }

    /// Piece `i`'s availability goes up (`up`) or down by one.
    fn change_availability(&mut self, i: u32, up: bool) {
        let u = i as usize;
        let a = self.availability[u];
        if !up && a == 0 {
            return;
        }
        if !self.stale && self.pos[u] != NONE {
            let l = &mut self.levels[usize::from(self.piece_priority[u])];
            if up {
                l.raise(&mut self.pos, &mut self.rng, i, a as usize);
            } else {
                l.lower(&mut self.pos, &mut self.rng, i, a as usize);
            }
        }
        self.availability[u] = if up { a + 1 } else { a - 1 };
    }

    /// Builds the levels from scratch: O(pieces), after priorities changed.
    fn rebuild(&mut self) {
        self.stale = false;
        for l in &mut self.levels {
            *l = Level::default();
        }
        // Started pieces are marked in `pos` while building (no hash lookup per piece).
        const STARTED: u32 = NONE - 1;
        self.pos.fill(NONE);
        for &i in self.active.keys() {
            self.pos[i as usize] = STARTED;
        }
        let free = |p: &Picker, u: usize| {
            !p.have[u] && !p.blocked[u] && p.piece_priority[u] > 0 && p.pos[u] != STARTED
        };
        let mut present = [false; 256];
        for u in 0..self.piece_count as usize {
            present[usize::from(self.piece_priority[u])] = true;
            if !free(self, u) {
                continue;
            }
            // Count the bucket sizes first (in `ends`).
            let a = self.availability[u] as usize;
            let l = &mut self.levels[usize::from(self.piece_priority[u])];
            if l.ends.len() <= a {
                l.ends.resize(a + 1, 0);
            }
            l.ends[a] += 1;
        }
        self.prios = (1..=Priority::MAX)
            .rev()
            .filter(|&p| present[usize::from(p)])
            .collect();
        // Where each bucket's next piece goes.
        let mut next: Vec<Vec<u32>> = vec![Vec::new(); self.levels.len()];
        for (l, next) in self.levels.iter_mut().zip(&mut next) {
            let mut sum = 0;
            for e in &mut l.ends {
                next.push(sum);
                sum += *e;
                *e = sum;
            }
            l.order = vec![0; sum as usize];
        }
        // Fill the buckets in index order, then shuffle each (Fisher-Yates; measured 4x
        // faster than shuffling while filling, inside-out).
        for u in 0..self.piece_count as usize {
            if !free(self, u) {
                continue;
            }
            let (prio, a) = (
                usize::from(self.piece_priority[u]),
                self.availability[u] as usize,
            );
            let p = &mut next[prio][a];
            self.levels[prio].order[*p as usize] = u as u32;
            self.pos[u] = *p;
            *p += 1;
        }
        for l in &mut self.levels {
            for a in 0..l.ends.len() {
                let (s, e) = (l.start(a), l.ends[a] as usize);
                for k in (s + 1..e).rev() {
                    let r = self.rng.random_range(s..=k);
                    l.swap(&mut self.pos, k, r);
                }
            }
        }
        for &i in self.active.keys() {
            self.pos[i as usize] = NONE;
        }
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
        if self.covers_all(pieces) {
            // A seed: every free piece goes one bucket up, the buckets as they are (no
            // piece moves).
            for l in &mut self.levels {
                if !l.ends.is_empty() {
                    l.ends.insert(0, 0);
                }
            }
            for a in &mut self.availability {
                *a += 1;
            }
            return;
        }
        self.many_move(pieces);
        for i in 0..self.piece_count {
            if pieces.has(i) {
                self.change_availability(i, true);
            }
        }
    }

    /// Before the availability of `pieces` changes: if they are many, moving each to a
    /// random place of its new bucket (cache misses, ~0.1 µs each on 2^21 pieces) costs
    /// more than rebuilding the levels once when next needed (~25 ns a piece; libtorrent
    /// does the same), and several peers connecting at once share that rebuild.
    fn many_move(&mut self, pieces: &Bitfield) {
        if !self.stale
            && u64::from(pieces.count()) * self.rebuild_fraction > u64::from(self.piece_count)
        {
            self.stale = true;
        }
    }

    /// Whether `pieces` has every piece of the torrent.
    fn covers_all(&self, pieces: &Bitfield) -> bool {
        pieces.len() >= self.piece_count && pieces.is_full()
    }

    /// A peer announced one more piece.
    pub fn add_peer_have(&mut self, piece: u32) {
        if piece < self.piece_count {
            self.change_availability(piece, true);
        }
    }

    /// A peer is gone: forget its pieces and its requests (they can be picked again).
    pub fn remove_peer(&mut self, peer: PeerKey, pieces: &Bitfield) {
        // A seed leaving, with no free piece at availability 0 (there is none unless
        // counts went wrong): every free piece goes one bucket down, no piece moves.
        if self.covers_all(pieces)
            && (self.stale
                || self
                    .levels
                    .iter()
                    .all(|l| l.ends.first().is_none_or(|&e| e == 0)))
        {
            for l in &mut self.levels {
                if !l.ends.is_empty() {
                    l.ends.remove(0);
                }
            }
            for a in &mut self.availability {
                *a = a.saturating_sub(1);
            }
        } else {
            self.many_move(pieces);
            for i in 0..self.piece_count {
                if pieces.has(i) {
                    self.change_availability(i, false);
                }
            }
        }
        for a in self.active.values_mut() {
            for k in 0..a.blocks.len() {
                a.unrequest(k, peer);
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
            self.active.insert(i, Active::new(self.block_count(i)));
            self.refresh(i);
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
                a.request(k, peer);
            }
            out.push(self.block_request(i, k));
        }
        out
    }

    /// Whether some wanted block is neither requested nor received (any peer may have
    /// it). O(levels + window pieces + started pieces), not O(pieces).
    fn any_unrequested_wanted(&mut self) -> bool {
        if self.stale {
            self.rebuild();
        }
        // Free pieces some peer has: those past the levels' availability-0 buckets.
        let free = self.prios.iter().any(|&p| {
            let l = &self.levels[usize::from(p)];
            l.ends
                .first()
                .is_some_and(|&e| (e as usize) < l.order.len())
        });
        free || self.windows.iter().flat_map(|w| w.clone()).any(|i| {
            self.wanted(i) && !self.active.contains_key(&i) && self.availability[i as usize] > 0
        }) || self
            .active
            .iter()
            .any(|(&i, a)| a.free > 0 && !self.pending_check[i as usize] && self.wanted(i))
    }

    fn take_free_blocks(&mut self, peer: PeerKey, i: u32, max: usize, out: &mut Vec<BlockRequest>) {
        let Some(a) = self.active.get_mut(&i) else {
            return;
        };
        let mut picked = Vec::new();
        for k in 0..a.blocks.len() {
            if out.len() + picked.len() >= max || a.free == 0 {
                break;
            }
            let b = &a.blocks[k];
            if !b.received && b.requested.is_empty() {
                a.request(k, peer);
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
        if self.stale {
            self.rebuild();
        }
        // The highest priority first; within it the lowest index (sequential) or the
        // first piece the peer has in availability order (rarest first, ties at random:
        // buckets are kept shuffled).
        for k in 0..self.prios.len() {
            let prio = self.prios[k];
            let l = &mut self.levels[usize::from(prio)];
            if l.order.is_empty() {
                continue;
            }
            if !self.sequential {
                if let Some(&i) = l.order.iter().find(|&&i| peer_has.has(i)) {
                    return Some(i);
                }
                continue;
            }
            let listed =
                |i: u32| self.pos[i as usize] != NONE && self.piece_priority[i as usize] == prio;
            while l.cursor < self.piece_count && !listed(l.cursor) {
                l.cursor += 1;
            }
            let (mut seen, mut i) = (0, l.cursor);
            while seen < l.order.len() && i < self.piece_count {
                if listed(i) {
                    if peer_has.has(i) {
                        return Some(i);
                    }
                    seen += 1;
                }
                i += 1;
            }
        }
        None
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
        if b.requested.is_empty() {
            a.free -= 1;
        }
        let b = &mut a.blocks[k];
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
        if let Some(a) = self.active.get_mut(&r.index)
            && k < a.blocks.len()
        {
            a.unrequest(k, peer);
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
            self.refresh(index);
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
            self.refresh(index);
        }
    }

    /// The piece failed its hash check: all its blocks are wanted again.
    pub fn piece_failed(&mut self, index: u32) {
        if (index as usize) < self.pending_check.len() {
            self.pending_check[index as usize] = false;
            self.active.remove(&index);
            self.refresh(index);
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

    /// Checks the levels against the pieces' state, and the endgame shortcut against a
    /// scan of every piece (the old check).
    fn check_structure(p: &mut Picker) {
        let n = p.piece_count;
        let endgame_scan = (0..n).any(|i| {
            p.wanted(i)
                && !p.pending_check[i as usize]
                && match p.active.get(&i) {
                    None => p.availability[i as usize] > 0,
                    Some(a) => a
                        .blocks
                        .iter()
                        .any(|b| !b.received && b.requested.is_empty()),
                }
        });
        for a in p.active.values() {
            let free = a
                .blocks
                .iter()
                .filter(|b| !b.received && b.requested.is_empty());
            assert_eq!(a.free, free.count());
        }
        assert_eq!(p.any_unrequested_wanted(), endgame_scan);
        assert!(!p.stale);
        for (prio, l) in p.levels.iter().enumerate() {
            if l.order.is_empty() {
                assert!(l.ends.is_empty());
                continue;
            }
            assert!(p.prios.contains(&(prio as Priority)));
            assert_eq!(l.ends.last().copied(), Some(l.order.len() as u32));
            assert!(l.ends.windows(2).all(|w| w[0] <= w[1]));
            if let [.., x, y] = l.ends[..] {
                assert!(x < y, "empty top bucket {:?}", l.ends);
            }
            for (k, &i) in l.order.iter().enumerate() {
                assert_eq!(p.pos[i as usize] as usize, k);
                assert_eq!(usize::from(p.piece_priority[i as usize]), prio);
                let a = p.availability[i as usize] as usize;
                assert!(
                    l.start(a) <= k && k < l.ends[a] as usize,
                    "piece {i} misplaced"
                );
            }
        }
        for i in 0..n {
            assert_eq!(p.free(i), p.pos[i as usize] != NONE, "piece {i}");
        }
    }

    /// The pieces a picker may start for a peer having `peer` while `active` are started:
    /// the first eligible window piece, else among eligible pieces of the highest
    /// priority, the lowest index (sequential) or all those of the lowest availability.
    fn reference_best(p: &Picker, peer: &Bitfield, active: &[u32], avail: &[u32]) -> Vec<u32> {
        let eligible = |i: u32| p.wanted(i) && peer.has(i) && !active.contains(&i);
        for w in &p.windows {
            if let Some(i) = w.clone().find(|&i| eligible(i)) {
                return vec![i];
            }
        }
        let prio = |i: u32| p.piece_priority[i as usize];
        let cands: Vec<u32> = (0..p.piece_count)
            .filter(|&i| eligible(i) && prio(i) > 0)
            .collect();
        let Some(top) = cands.iter().map(|&i| prio(i)).max() else {
            return Vec::new();
        };
        let cands: Vec<u32> = cands.into_iter().filter(|&i| prio(i) == top).collect();
        if p.sequential {
            return cands[..1].to_vec();
        }
        let rarest = cands.iter().map(|&i| avail[i as usize]).min();
        cands
            .into_iter()
            .filter(|&i| Some(avail[i as usize]) == rarest)
            .collect()
    }

    #[test]
    fn buckets_follow_availability_and_state() {
        let l = layout(&[16 * 16384], 16384);
        let mut p = Picker::new(&l, 9);
        p.add_peer_pieces(&full(16));
        p.add_peer_pieces(&bits(16, &[1, 2, 3]));
        // Each piece 1..4 starts, is verified or fails: the rarest (avail 1) come first.
        let mut firsts = Vec::new();
        for _ in 0..13 {
            firsts.push(p.pick(1, &full(16), 1)[0].index);
            check_structure(&mut p);
        }
        assert!(
            firsts[..13].iter().all(|&i| !(1..4).contains(&i)),
            "{firsts:?}"
        );
        p.remove_peer(7, &full(16));
        check_structure(&mut p);
        // Piece 1..4 are left, now on one peer and 0 elsewhere: one starts and fails, and
        // comes back with the two others.
        let r = p.pick(1, &full(16), 1)[0];
        assert!((1..4).contains(&r.index));
        p.block_received(1, &r);
        p.piece_failed(r.index);
        check_structure(&mut p);
        let mut last: Vec<u32> = (0..3).map(|_| p.pick(1, &full(16), 1)[0].index).collect();
        last.sort_unstable();
        assert_eq!(last, [1, 2, 3]);
        check_structure(&mut p);
        // Every block is requested from peer 1: no endgame duplicate to it.
        assert!(!p.any_unrequested_wanted());
        assert!(p.pick(1, &full(16), 1).is_empty());
    }

    #[test]
    fn setting_all_file_priorities_at_once_equals_one_by_one() {
        let l = layout(&[40_000, 16_384, 70_000, 5, 33_000], 16384);
        let prios = [0, 7, 1, 0, 4];
        let mut a = Picker::new(&l, 1);
        let mut b = Picker::new(&l, 1);
        for (f, &p) in prios.iter().enumerate() {
            a.set_file_priority(f, p);
        }
        b.set_file_priorities(&prios);
        assert_eq!(a.piece_priority, b.piece_priority);
        assert_eq!(a.wanted_bytes(), b.wanted_bytes());
        assert_eq!(
            (0..5).map(|f| b.file_priority(f)).collect::<Vec<_>>(),
            prios.iter().map(|&p| Some(p)).collect::<Vec<_>>()
        );
    }

    proptest! {
        // After any mix of events, every piece the picker starts is one a brute-force
        // reference ranks best for that peer, and the buckets match the pieces' state.
        #[test]
        fn new_pieces_are_the_best_for_the_peer(
            files in prop::collection::vec(1u64..200_000, 1..5),
            ops in prop::collection::vec((0u8..14, any::<u32>(), any::<u32>()), 0..120),
            seed in any::<u64>(),
        ) {
            let l = layout(&files, 16384);
            let n = l.piece_count();
            let mut p = Picker::new(&l, seed);
            // Bitfields move pieces one by one, or (most of them, as n is small) make
            // the levels rebuilt.
            p.rebuild_fraction = if seed % 2 == 0 { 0 } else { REBUILD_FRACTION };
            let mut avail = vec![0u32; n as usize];
            let mut peers: Vec<Option<Bitfield>> = vec![None; 4];
            let mut outstanding: Vec<(PeerKey, BlockRequest)> = Vec::new();
            for (op, x, y) in ops {
                let k = (x % 4) as usize;
                let i = y % n;
                match op {
                    0 => {
                        if peers[k].is_none() {
                            let f = if y % 4 == 0 {
                                full(n)
                            } else {
                                let set: Vec<u32> = (0..n)
                                    .filter(|&j| (j.wrapping_mul(2_654_435_761) ^ y) % 3 == 0)
                                    .collect();
                                bits(n, &set)
                            };
                            p.add_peer_pieces(&f);
                            for j in 0..n {
                                avail[j as usize] += u32::from(f.has(j));
                            }
                            peers[k] = Some(f);
                        }
                    }
                    1 => {
                        if let Some(f) = peers[k].take() {
                            p.remove_peer(k as u64, &f);
                            for j in 0..n {
                                avail[j as usize] -= u32::from(f.has(j));
                            }
                            outstanding.retain(|(q, _)| *q != k as u64);
                        }
                    }
                    2 => {
                        if let Some(f) = &mut peers[k]
                            && f.set(i)
                        {
                            p.add_peer_have(i);
                            avail[i as usize] += 1;
                        }
                    }
                    3 | 4 => {
                        let Some(f) = peers[k].clone() else { continue };
                        let mut active: Vec<u32> = p.active.keys().copied().collect();
                        let reqs = p.pick(k as u64, &f, (y % 8 + 1) as usize);
                        for r in &reqs {
                            prop_assert!(f.has(r.index));
                            if !active.contains(&r.index) {
                                let best = reference_best(&p, &f, &active, &avail);
                                prop_assert!(
                                    best.contains(&r.index),
                                    "started {} not in {best:?}", r.index
                                );
                                active.push(r.index);
                            }
                            outstanding.push((k as u64, *r));
                        }
                    }
                    5 | 6 => {
                        if outstanding.is_empty() {
                            continue;
                        }
                        let (q, r) = outstanding.remove(y as usize % outstanding.len());
                        if op == 6 {
                            p.request_failed(q, &r);
                            continue;
                        }
                        let got = p.block_received(q, &r);
                        outstanding.retain(|o| !got.cancel.contains(o));
                        if let Some(c) = got.piece_complete {
                            if x % 3 == 0 {
                                p.piece_failed(c);
                            } else {
                                p.piece_verified(c);
                            }
                        }
                    }
                    7 => p.piece_lost(i),
                    8 => p.set_file_priority(y as usize % files.len(), [0, 1, 4, 7][(x % 4) as usize]),
                    9 => p.set_sequential(x % 2 == 0),
                    10 => {
                        // One or two windows (a second reader).
                        let j = (x / 4) % n;
                        let w = match x % 3 {
                            0 => Vec::new(),
                            1 => vec![i..i + x % 4, j..j + 2],
                            _ => std::iter::once(i..i + x % 4).collect(),
                        };
                        p.set_windows(w);
                    }
                    11 => p.set_blocked(i..i + x % 5, x % 2 == 0),
                    12 => {
                        let have: Vec<bool> = (0..n).map(|j| (j ^ x) % 7 == 0).collect();
                        p.set_have(&have);
                    }
                    _ => {
                        if x % 2 == 0 {
                            p.piece_verified(i);
                        }
                    }
                }
                for j in 0..n {
                    prop_assert_eq!(p.availability(j), avail[j as usize]);
                }
                check_structure(&mut p);
            }
        }

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
