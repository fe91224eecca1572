//! A torrent's data on disk under a download directory.
//!
//! Files live at `DIR/<safe path>` ([`metainfo::FileEntry::safe_path`]: `DIR/name` for a
//! single-file torrent, `DIR/name/...` for a multi-file one); every path is checked to
//! stay inside `DIR` (symbolic links in between included) before a file is opened.
//! Padding files (BEP 47) are never written and read back as zeros. Files are created
//! lazily on their first write and extended sparsely with `set_len`.
//!
//! # Write-back cache
//!
//! [`Storage::store_piece`] keeps a verified piece in memory (the received block
//! buffers themselves, no copy) up to [`Storage::with_cache`]'s byte cap, instead of
//! writing it at once. [`Storage::flush`] writes cached pieces out in large coalesced
//! writes (adjacent pieces become one vectored write per file run); the torrent driver
//! flushes when the cache is over half full, when its oldest piece reached the flush
//! age, and always before the torrent reports complete, before a resume file is written,
//! on pause, close and remove. [`Storage::sync`] and [`Storage::finish_files`] flush
//! first, so a piece is durable exactly when it was flushed and synced; a resume file is
//! written only after a successful [`Storage::sync`]. Every read
//! ([`Storage::read_block`], [`Storage::cached_block`]) sees cached pieces, so a
//! verified piece can be served before it reaches the disk. A failed flush keeps its
//! pieces in the cache (still readable, never durable) and returns the error. Dropping
//! the storage flushes what is left (errors are logged).
//!
//! All methods block (file I/O, hashing): call them from `spawn_blocking` or a worker
//! thread, never from a task that reads sockets. [`Storage::cached_block`] and
//! [`Storage::is_cached`] only take a lock and never touch the disk.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use metainfo::{Info, LayoutMode, PieceBitfield, PieceLayout, Verifier, merkle};
use sha1::{Digest, Sha1};
use tracing::{debug, warn};

/// The default write-back cache size: 32 MiB (libtorrent 1.2's `cache_size` default,
/// 2048 blocks of 16 KiB).
pub const DEFAULT_CACHE_SIZE: usize = 32 << 20;

/// The default flush age: a cached piece is written out at most this long after it was
/// verified.
pub const DEFAULT_CACHE_AGE: Duration = Duration::from_secs(2);

/// How files get their disk space.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Allocation {
    /// Files are sized at once but take disk blocks only as data is written (the
    /// default): fast to start, but a full disk shows only when a write fails.
    #[default]
    Sparse,
    /// Every wanted file's blocks are reserved when the torrent starts (`fallocate` on
    /// Linux; elsewhere this is the same as sparse): a full disk shows at once, and the
    /// files fragment less. Data already in the files is kept.
    Full,
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// Reading or writing a file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file would resolve outside the download directory.
    #[error("{0} resolves outside the download directory")]
    Escapes(PathBuf),
    /// The piece index or range does not exist in this torrent.
    #[error("piece {piece}, offset {offset}, length {len}: out of range")]
    OutOfRange {
        /// Piece index.
        piece: u32,
        /// Offset in the piece.
        offset: u64,
        /// Length asked for.
        len: u64,
    },
    /// Checking existing data failed.
    #[error("verifying existing data: {0}")]
    Verify(#[from] metainfo::VerifyError),
}

/// A range of one of a torrent's files ([`Storage::file_spans`]).
#[derive(Debug, Clone)]
pub struct FileSpan {
    /// A handle on the file (shared by the spans of one call that lie in it).
    pub file: Arc<File>,
    /// Where the range starts in the file.
    pub offset: u64,
    /// The range's length.
    pub len: u64,
}

struct Slot {
    path: PathBuf,
    length: u64,
    padding: bool,
    /// The open file and whether it is writable.
    handle: Mutex<Option<(File, bool)>>,
}

/// A verified piece held in the write-back cache.
struct Cached {
    /// The piece's consecutive chunks (the received blocks).
    blocks: Vec<Bytes>,
    len: usize,
    /// When it entered the cache.
    since: Instant,
}

/// The write-back cache: verified pieces not yet written.
#[derive(Default)]
struct Cache {
    pieces: BTreeMap<u32, Cached>,
    /// Bytes of all cached pieces.
    bytes: usize,
}

/// Which cached pieces [`Storage::flush`] writes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Flush {
    /// Every cached piece.
    All,
    /// Every cached piece if the cache is more than half full or its oldest piece has
    /// been cached for `max_age`; else nothing.
    Due {
        /// The flush age.
        max_age: Duration,
    },
}

/// What a [`Storage::flush`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlushStats {
    /// Pieces written.
    pub pieces: usize,
    /// Bytes written.
    pub bytes: u64,
    /// Vectored writes issued (one per contiguous run in a file; a run longer than the
    /// system's iovec limit takes more).
    pub writes: usize,
}

/// A failed [`Storage::flush`]: the error and the pieces it left in the cache (not
/// durable).
#[derive(Debug, thiserror::Error)]
#[error("writing {} cached piece(s) failed: {error}", pieces.len())]
#[non_exhaustive]
pub struct FlushError {
    /// The pieces not written (still cached).
    pub pieces: Vec<u32>,
    /// The cause.
    #[source]
    pub error: StorageError,
}

/// A torrent's files under a download directory.
pub struct Storage {
    root: PathBuf,
    info: Info,
    slots: Vec<Slot>,
    /// Piece-layer hashes fetched from peers (BEP 52) for files whose layer the
    /// torrent lacks, by `pieces root`: one slot per piece of the file.
    fetched: Mutex<HashMap<[u8; 32], Vec<Option<merkle::Hash256>>>>,
    /// The write-back cache's byte cap (0: every piece is written at once).
    cache_cap: usize,
    cache: Mutex<Cache>,
    /// Held while a flush writes: one flush at a time, and pieces leave the cache only
    /// once their bytes are in the files.
    flushing: Mutex<()>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("root", &self.root)
            .field("name", &self.info.name)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// Storage for `info` under `dir` (created if missing).
    pub fn new(info: &Info, dir: impl AsRef<Path>) -> Result<Storage, StorageError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| StorageError::Io {
            op: "creating",
            path: dir.to_path_buf(),
            source,
        })?;
        let root = dir.canonicalize().map_err(|source| StorageError::Io {
            op: "resolving",
            path: dir.to_path_buf(),
            source,
        })?;
        let slots = info
            .files
            .iter()
            .map(|f| Slot {
                path: root.join(f.safe_path()),
                length: f.length,
                padding: f.is_padding(),
                handle: Mutex::new(None),
            })
            .collect();
        Ok(Storage {
            root,
            info: info.clone(),
            slots,
            fetched: Mutex::new(HashMap::new()),
            cache_cap: 0,
            cache: Mutex::new(Cache::default()),
            flushing: Mutex::new(()),
        })
    }

    /// The same storage with a write-back cache of `bytes` at most (0, the default of
    /// [`Storage::new`]: [`store_piece`](Self::store_piece) writes at once). See the
    /// [module docs](self).
    pub fn with_cache(mut self, bytes: usize) -> Storage {
        self.cache_cap = bytes;
        self
    }

    /// The write-back cache's byte cap.
    pub fn cache_capacity(&self) -> usize {
        self.cache_cap
    }

    /// Bytes of verified pieces held in the cache, not yet written.
    pub fn cached_bytes(&self) -> usize {
        self.lock_cache().bytes
    }

    /// Whether the cache is more than half full (time to flush).
    pub fn cache_over_watermark(&self) -> bool {
        self.cache_cap > 0 && self.lock_cache().bytes > self.cache_cap / 2
    }

    /// Whether piece `piece` is in the cache (verified, not yet written).
    pub fn is_cached(&self, piece: u32) -> bool {
        self.lock_cache().pieces.contains_key(&piece)
    }

    /// Bytes `offset..offset + len` of piece `piece` if the piece is in the write-back
    /// cache, from memory (a slice of the received block when the range lies in one,
    /// else a copy); `None` if the piece is not cached (its data is in the files, or
    /// missing) or the range is out of the piece. Never touches the disk: a sender that
    /// can send from the files directly (sendfile) asks this first and sends from the
    /// file only on `None`. A piece leaves the cache only after its bytes are in the
    /// files, so a `None` for a piece the torrent has means the file holds it.
    pub fn cached_block(&self, piece: u32, offset: u64, len: u64) -> Option<Bytes> {
        let cache = self.lock_cache();
        let c = cache.pieces.get(&piece)?;
        let end = offset.checked_add(len)?;
        if end > c.len as u64 || len == 0 {
            return None;
        }
        let (offset, end) = (offset as usize, end as usize);
        let mut at = 0usize;
        let mut out: Option<Vec<u8>> = None;
        for b in &c.blocks {
            let (bs, be) = (at, at + b.len());
            at = be;
            if be <= offset {
                continue;
            }
            if bs >= end {
                break;
            }
            let (s, e) = (offset.max(bs) - bs, end.min(be) - bs);
            if out.is_none() && bs <= offset && end <= be {
                return Some(b.slice(s..e));
            }
            out.get_or_insert_with(|| Vec::with_capacity(end - offset))
                .extend_from_slice(&b[s..e]);
        }
        out.map(Bytes::from)
    }

    /// Stores verified piece `index`, given as its consecutive chunks (the received
    /// blocks, kept as they are): into the write-back cache, or straight to the files
    /// when there is no cache or the piece is larger than it. When the cache is full,
    /// flushes it first (and waits for a flush under way). A flush failure is returned
    /// and the piece is not stored. The caller checked the hash
    /// ([`Storage::check_piece_blocks`]).
    pub fn store_piece(&self, index: u32, blocks: Vec<Bytes>) -> Result<(), StorageError> {
        let len: usize = blocks.iter().map(|b| b.len()).sum();
        let plen = self.info.layout().piece_len(index);
        if plen == 0 || len as u64 != plen {
            return Err(StorageError::OutOfRange {
                piece: index,
                offset: 0,
                len: len as u64,
            });
        }
        if self.cache_cap == 0 || len > self.cache_cap {
            return self.write_piece_blocks(index, &blocks);
        }
        loop {
            {
                let mut cache = self.lock_cache();
                if cache.bytes + len <= self.cache_cap || cache.pieces.contains_key(&index) {
                    if let Some(old) = cache.pieces.insert(
                        index,
                        Cached {
                            blocks,
                            len,
                            since: Instant::now(),
                        },
                    ) {
                        cache.bytes -= old.len;
                    }
                    cache.bytes += len;
                    return Ok(());
                }
            }
            // Full: write everything out (after any flush under way), then retry.
            self.flush(Flush::All, "full").map_err(|e| e.error)?;
        }
    }

    /// Writes cached pieces out (which ones: `which`), coalesced: the pieces in index
    /// order, every contiguous run of bytes in a file as one vectored write. Pieces
    /// leave the cache once written; on an error, the pieces not written stay cached
    /// and are listed in the [`FlushError`]. `reason` names the trigger in the debug
    /// event. Does not `fsync` (see [`Storage::sync`]).
    pub fn flush(&self, which: Flush, reason: &str) -> Result<FlushStats, FlushError> {
        let _one = self.flushing.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let batch: Vec<(u32, Vec<Bytes>)> = {
            let cache = self.lock_cache();
            let due = match which {
                Flush::All => true,
                Flush::Due { max_age } => {
                    cache.bytes > self.cache_cap / 2
                        || cache
                            .pieces
                            .values()
                            .any(|c| started.duration_since(c.since) >= max_age)
                }
            };
            if !due || cache.pieces.is_empty() {
                return Ok(FlushStats::default());
            }
            // Cheap clones (reference counts): reads keep finding the pieces in the
            // cache while they are written.
            cache
                .pieces
                .iter()
                .map(|(&i, c)| (i, c.blocks.clone()))
                .collect()
        };
        let (stats, failed) = self.write_coalesced(&batch);
        let written = match &failed {
            Some((from, _)) => *from,
            None => batch.len(),
        };
        {
            let mut cache = self.lock_cache();
            for (i, _) in &batch[..written] {
                if let Some(c) = cache.pieces.remove(i) {
                    cache.bytes -= c.len;
                }
            }
        }
        match failed {
            None => {
                debug!(
                    reason,
                    pieces = stats.pieces,
                    bytes = stats.bytes,
                    writes = stats.writes,
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "flushed the write-back cache"
                );
                Ok(stats)
            }
            Some((from, error)) => {
                let pieces: Vec<u32> = batch[from..].iter().map(|(i, _)| *i).collect();
                warn!(reason, error = %error, unwritten = pieces.len(), "flushing the write-back cache failed");
                Err(FlushError { pieces, error })
            }
        }
    }

    /// Drops every cached piece unwritten (the torrent's files are being deleted, or
    /// writing failed and the pieces are to be fetched again); returns their indices.
    pub fn discard_cache(&self) -> Vec<u32> {
        let _one = self.flushing.lock().unwrap_or_else(|e| e.into_inner());
        let mut cache = self.lock_cache();
        cache.bytes = 0;
        std::mem::take(&mut cache.pieces).into_keys().collect()
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `batch` (pieces in index order) with one vectored write per contiguous
    /// run of a file. On an error: the position in `batch` of the first piece not
    /// (entirely) written, and the error.
    fn write_coalesced(
        &self,
        batch: &[(u32, Vec<Bytes>)],
    ) -> (FlushStats, Option<(usize, StorageError)>) {
        let layout = self.info.layout();
        let mut stats = FlushStats::default();
        // The run being gathered: file, its start offset, the slices, its end, and the
        // position of its first piece in `batch`.
        let mut run: Option<(usize, u64, Vec<io::IoSlice<'_>>, u64, usize)> = None;
        // Which piece (position in `batch`) each slice of the run belongs to.
        let mut owners: Vec<usize> = Vec::new();
        let submit = |run: (usize, u64, Vec<io::IoSlice<'_>>, u64, usize),
                      owners: &mut Vec<usize>,
                      stats: &mut FlushStats|
         -> Result<(), (usize, StorageError)> {
            let (file, start, slices, _, first) = run;
            let lens: Vec<u64> = slices.iter().map(|s| s.len() as u64).collect();
            let slot = &self.slots[file];
            let mut written = 0u64;
            let r = self.with_file(slot, true, |f| {
                write_all_vectored_at(f, slices, start, &mut written)
            });
            let own = std::mem::take(owners);
            match r {
                Ok(n) => {
                    stats.writes += n;
                    Ok(())
                }
                Err(e) => {
                    // Pieces entirely in the part written before the error are written
                    // (a disk that fills up takes the pieces that fit).
                    let mut end = 0u64;
                    let from = lens
                        .iter()
                        .zip(&own)
                        .find_map(|(len, &pos)| {
                            end += len;
                            (end > written).then_some(pos)
                        })
                        .unwrap_or(first);
                    Err((from.max(first).min(own.last().copied().unwrap_or(first)), e))
                }
            }
        };
        for (pos, (index, blocks)) in batch.iter().enumerate() {
            let plen = layout.piece_len(*index);
            let (mut ci, mut co) = (0usize, 0usize);
            for span in layout.spans(*index, 0, plen) {
                let mut left = span.len as usize;
                let mut at = span.file_offset;
                while left > 0 {
                    let Some(chunk) = blocks.get(ci) else {
                        break;
                    };
                    let n = (chunk.len() - co).min(left);
                    if !span.padding && n > 0 {
                        let part = &chunk[co..co + n];
                        match &mut run {
                            Some((f, _, slices, end, _)) if *f == span.file_index && *end == at => {
                                slices.push(io::IoSlice::new(part));
                                owners.push(pos);
                                *end += n as u64;
                            }
                            _ => {
                                if let Some(done) = run.take()
                                    && let Err((from, e)) = submit(done, &mut owners, &mut stats)
                                {
                                    stats.pieces = from;
                                    return (stats, Some((from, e)));
                                }
                                run = Some((
                                    span.file_index,
                                    at,
                                    vec![io::IoSlice::new(part)],
                                    at + n as u64,
                                    pos,
                                ));
                                owners.push(pos);
                            }
                        }
                    }
                    at += n as u64;
                    left -= n;
                    co += n;
                    if co == chunk.len() {
                        ci += 1;
                        co = 0;
                    }
                }
            }
            stats.pieces += 1;
            stats.bytes += plen;
        }
        if let Some(done) = run.take()
            && let Err(e) = submit(done, &mut owners, &mut stats)
        {
            // The pieces of the failed run and after it are not written.
            let (from, e) = e;
            stats.pieces = from;
            return (stats, Some((from, e)));
        }
        (stats, None)
    }

    /// The (canonical) download directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The torrent's info dictionary.
    pub fn info(&self) -> &Info {
        &self.info
    }

    /// The piece layout.
    pub fn layout(&self) -> &PieceLayout {
        self.info.layout()
    }

    /// Fails on the first of the torrent's files that exists but may not be read (no
    /// permission on it or on a directory above it): [`verify_existing`](Self::verify_existing)
    /// would count its pieces as missing, and a seed would serve nothing without saying
    /// why. Missing files are fine; nothing is read.
    pub fn check_access(&self) -> Result<(), StorageError> {
        for slot in self.slots.iter().filter(|s| !s.padding) {
            let denied = |source: io::Error| StorageError::Io {
                op: "opening",
                path: slot.path.clone(),
                source,
            };
            match std::fs::symlink_metadata(&slot.path) {
                // Only regular files are opened (a FIFO would block).
                Ok(meta) if meta.is_file() => {
                    if let Err(e) = File::open(&slot.path)
                        && e.kind() == io::ErrorKind::PermissionDenied
                    {
                        return Err(denied(e));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Err(denied(e)),
                _ => {}
            }
        }
        Ok(())
    }

    /// Hashes what is already on disk: one flag per piece, true where the data is good.
    /// Missing files are simply bad pieces. When no file with data exists (a new
    /// download) nothing is read or planned: the check's plan takes about 120 bytes a
    /// piece, 250 MB for a torrent of 2 million pieces that may be a stranger's claim.
    pub fn verify_existing(&self) -> Result<PieceBitfield, StorageError> {
        let nothing = self
            .slots
            .iter()
            .all(|s| s.padding || s.length == 0 || std::fs::symlink_metadata(&s.path).is_err());
        if nothing {
            let none = vec![false; self.info.piece_count() as usize];
            return Ok(PieceBitfield::from_bools(none));
        }
        Ok(Verifier::new(&self.info).run(&self.root)?)
    }

    /// Whether `data` is piece `index` as the torrent's hashes say (v1 SHA-1 when the
    /// torrent has v1 hashes, else the BEP 52 merkle hashes, from the torrent's piece
    /// layers or those [fetched from peers](Self::add_piece_hashes)).
    pub fn check_piece(&self, index: u32, data: &[u8]) -> bool {
        let fetched = self.fetched.lock().unwrap_or_else(|e| e.into_inner());
        check_piece_with(&self.info, index, data, |root, k| {
            fetched.get(root).and_then(|l| l.get(k).copied().flatten())
        })
    }

    /// Stores piece-layer hashes of the file with `pieces_root`, checked by the caller
    /// against the root ([`crate::hashes::check_answer`]): `hashes[i]` is the hash of
    /// the file's piece `first + i` (entries past the file's last piece are padding and
    /// dropped).
    pub fn add_piece_hashes(
        &self,
        pieces_root: &[u8; 32],
        first: usize,
        hashes: &[merkle::Hash256],
    ) {
        let Some(f) = self
            .info
            .files
            .iter()
            .find(|f| f.pieces_root.as_ref() == Some(pieces_root))
        else {
            return;
        };
        let pieces = f.length.div_ceil(self.info.piece_length) as usize;
        let mut fetched = self.fetched.lock().unwrap_or_else(|e| e.into_inner());
        let layer = fetched
            .entry(*pieces_root)
            .or_insert_with(|| vec![None; pieces]);
        for (i, h) in hashes.iter().enumerate() {
            if let Some(slot) = layer.get_mut(first + i) {
                *slot = Some(*h);
            }
        }
    }

    /// Writes a whole piece whose hash the caller has checked ([`Storage::check_piece`]).
    pub fn write_piece(&self, index: u32, data: &[u8]) -> Result<(), StorageError> {
        let layout = self.info.layout();
        let plen = layout.piece_len(index);
        if plen == 0 || data.len() as u64 != plen {
            return Err(StorageError::OutOfRange {
                piece: index,
                offset: 0,
                len: data.len() as u64,
            });
        }
        let mut pos = 0usize;
        for span in layout.spans(index, 0, plen) {
            let len = span.len as usize;
            let chunk = &data[pos..pos + len];
            pos += len;
            if span.padding {
                continue;
            }
            let slot = &self.slots[span.file_index];
            self.with_file(slot, true, |f| write_at(f, chunk, span.file_offset))?;
        }
        Ok(())
    }

    /// [`Storage::check_piece`] for a piece given as its consecutive chunks (the
    /// blocks as received), hashed without joining them for v1 and hybrid torrents.
    pub fn check_piece_blocks(&self, index: u32, chunks: &[impl AsRef<[u8]>]) -> bool {
        if self.info.pieces.is_empty() {
            // v2 only: merkle leaves over the joined piece, with fetched layers.
            let joined: Vec<u8> = chunks.iter().flat_map(|c| c.as_ref()).copied().collect();
            return self.check_piece(index, &joined);
        }
        let len: u64 = chunks.iter().map(|c| c.as_ref().len() as u64).sum();
        if len != self.info.layout().piece_len(index) || len == 0 {
            return false;
        }
        let Some(want) = self.info.pieces.get(index as usize) else {
            return false;
        };
        let mut h = Sha1::new();
        for c in chunks {
            h.update(c.as_ref());
        }
        let got: [u8; 20] = h.finalize().into();
        &got == want
    }

    /// [`Storage::write_piece`] for a piece given as its consecutive chunks: each chunk
    /// is written where it belongs (no joined copy of the piece).
    pub fn write_piece_blocks(
        &self,
        index: u32,
        chunks: &[impl AsRef<[u8]>],
    ) -> Result<(), StorageError> {
        let layout = self.info.layout();
        let plen = layout.piece_len(index);
        let total: u64 = chunks.iter().map(|c| c.as_ref().len() as u64).sum();
        if plen == 0 || total != plen {
            return Err(StorageError::OutOfRange {
                piece: index,
                offset: 0,
                len: total,
            });
        }
        // Walk the spans and the chunks together.
        let (mut ci, mut co) = (0usize, 0usize);
        for span in layout.spans(index, 0, plen) {
            let mut left = span.len as usize;
            let mut at = span.file_offset;
            let slot = &self.slots[span.file_index];
            while left > 0 {
                let Some(chunk) = chunks.get(ci).map(|c| c.as_ref()) else {
                    break;
                };
                let n = (chunk.len() - co).min(left);
                if !span.padding {
                    let part = &chunk[co..co + n];
                    self.with_file(slot, true, |f| write_at(f, part, at))?;
                }
                at += n as u64;
                left -= n;
                co += n;
                if co == chunk.len() {
                    ci += 1;
                    co = 0;
                }
            }
        }
        Ok(())
    }

    /// Reads `len` bytes at `offset` of piece `piece`.
    pub fn read_block(&self, piece: u32, offset: u64, len: u64) -> Result<Vec<u8>, StorageError> {
        let layout = self.info.layout();
        let plen = layout.piece_len(piece);
        if offset.checked_add(len).is_none_or(|end| end > plen) || len == 0 {
            return Err(StorageError::OutOfRange { piece, offset, len });
        }
        if let Some(b) = self.cached_block(piece, offset, len) {
            return Ok(b.to_vec());
        }
        // Filled by appending (file data read straight into the spare capacity, padding
        // as zeros): the buffer is never zeroed first.
        let mut out = Vec::with_capacity(len as usize);
        for span in layout.spans(piece, offset, len) {
            if span.padding {
                out.resize(out.len() + span.len as usize, 0);
            } else {
                let slot = &self.slots[span.file_index];
                self.with_file(slot, false, |f| {
                    append_at(f, &mut out, span.len, span.file_offset)
                })?;
            }
        }
        Ok(out)
    }

    /// Where `len` bytes at `offset` of piece `piece` lie on disk, for sending them
    /// straight from the files (`sendfile(2)`): one entry per file the range touches,
    /// each with a new handle on the file (`dup`), so the caller may send after this
    /// returns. `Ok(None)` when some of the range is not plain file data (padding) or
    /// the piece is in the write-back cache (its bytes may not be in the files yet):
    /// read it with [`read_block`](Self::read_block) instead. On Linux
    /// the kernel is asked to read the range ahead (`posix_fadvise(WILLNEED)`), so a
    /// later send seldom waits for the disk. Cheap once the file is open (no data is
    /// read).
    pub fn file_spans(
        &self,
        piece: u32,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<FileSpan>>, StorageError> {
        let plen = self.info.layout().piece_len(piece);
        if offset.checked_add(len).is_none_or(|end| end > plen) || len == 0 {
            return Err(StorageError::OutOfRange { piece, offset, len });
        }
        // A piece leaves the cache only once its bytes are in the files, so one that is
        // not cached now is on disk.
        if self.is_cached(piece) {
            return Ok(None);
        }
        let mut out: Vec<FileSpan> = Vec::new();
        for span in self.info.layout().spans(piece, offset, len) {
            if span.padding {
                return Ok(None);
            }
            let slot = &self.slots[span.file_index];
            let file = self.with_file(slot, false, |f| {
                #[cfg(target_os = "linux")]
                {
                    // Advice only: a failure changes nothing but speed.
                    let _ = rustix::fs::fadvise(
                        &*f,
                        span.file_offset,
                        std::num::NonZeroU64::new(span.len),
                        rustix::fs::Advice::WillNeed,
                    );
                }
                f.try_clone()
            })?;
            out.push(FileSpan {
                file: Arc::new(file),
                offset: span.file_offset,
                len: span.len,
            });
        }
        Ok(Some(out))
    }

    /// Creates the empty files and any file not written yet (sparse), so a complete
    /// download has every file of the torrent; writes the cache out and flushes written
    /// data to disk.
    pub fn finish(&self) -> Result<(), StorageError> {
        self.finish_files(&[])
    }

    /// Like [`finish`](Self::finish), for the files whose flag in `wanted` is true (files
    /// past the end of `wanted` count as wanted): a skipped file is not created, but
    /// if pieces shared with wanted files wrote part of it, that part is flushed.
    pub fn finish_files(&self, wanted: &[bool]) -> Result<(), StorageError> {
        self.flush(Flush::All, "finish").map_err(|e| e.error)?;
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.padding {
                continue;
            }
            let open = slot
                .handle
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .is_some();
            if wanted.get(i).copied().unwrap_or(true) || open {
                self.with_file(slot, true, |f| f.sync_data())?;
            }
        }
        Ok(())
    }

    /// Reserves the disk blocks of every wanted file (`wanted` as in
    /// [`finish_files`](Self::finish_files); padding files never) without touching data
    /// already there; see [`Allocation::Full`].
    pub fn preallocate(&self, wanted: &[bool]) -> Result<(), StorageError> {
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.padding || slot.length == 0 || !wanted.get(i).copied().unwrap_or(true) {
                continue;
            }
            let len = slot.length;
            self.with_file(slot, true, |f| allocate(f, len))?;
        }
        Ok(())
    }

    /// Makes every stored piece durable: writes the cache out ([`Flush::All`]), then
    /// `fsync`s every open file. A resume file may list a piece only after this
    /// succeeded following the piece's [`store_piece`](Self::store_piece).
    pub fn sync(&self) -> Result<(), StorageError> {
        self.flush(Flush::All, "sync").map_err(|e| e.error)?;
        for slot in &self.slots {
            let guard = slot
                .handle
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some((f, true)) = &*guard {
                f.sync_data().map_err(|source| StorageError::Io {
                    op: "syncing",
                    path: slot.path.clone(),
                    source,
                })?;
            }
        }
        Ok(())
    }

    fn with_file<R>(
        &self,
        slot: &Slot,
        write: bool,
        op: impl FnOnce(&mut File) -> io::Result<R>,
    ) -> Result<R, StorageError> {
        let io_err = |op: &'static str| {
            let path = slot.path.clone();
            move |source| StorageError::Io { op, path, source }
        };
        let mut guard = slot
            .handle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let reopen = match &*guard {
            None => true,
            Some((_, writable)) => write && !writable,
        };
        if reopen {
            *guard = None;
            self.confine(&slot.path, write)?;
            let file = if write {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&slot.path)
                    .map_err(io_err("opening"))?;
                let len = f.metadata().map_err(io_err("reading metadata of"))?.len();
                if len != slot.length {
                    // Sparse: no blocks are allocated until data is written.
                    f.set_len(slot.length).map_err(io_err("sizing"))?;
                }
                f
            } else {
                File::open(&slot.path).map_err(io_err("opening"))?
            };
            *guard = Some((file, write));
        }
        let Some((file, _)) = guard.as_mut() else {
            unreachable!("the handle was opened above");
        };
        op(file).map_err(io_err(if write { "writing" } else { "reading" }))
    }

    /// Checks that `path`'s parent (created when writing) resolves inside the root.
    fn confine(&self, path: &Path, create: bool) -> Result<(), StorageError> {
        let parent = path.parent().unwrap_or(&self.root);
        if create {
            std::fs::create_dir_all(parent).map_err(|source| StorageError::Io {
                op: "creating",
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let real = parent.canonicalize().map_err(|source| StorageError::Io {
            op: "resolving",
            path: parent.to_path_buf(),
            source,
        })?;
        if !real.starts_with(&self.root) {
            return Err(StorageError::Escapes(path.to_path_buf()));
        }
        if let Ok(meta) = std::fs::symlink_metadata(path)
            && meta.file_type().is_symlink()
        {
            return Err(StorageError::Escapes(path.to_path_buf()));
        }
        Ok(())
    }
}

/// Whether `data` is piece `index` of the torrent described by `info`: v1 SHA-1 if the
/// torrent has v1 piece hashes (v1 and hybrid), else the v2 merkle hashes (BEP 52).
pub fn check_piece(info: &Info, index: u32, data: &[u8]) -> bool {
    check_piece_with(info, index, data, |_, _| None)
}

/// [`check_piece`], with `fetched(root, k)` giving piece `k`'s hash of a file whose
/// piece layer the torrent lacks.
fn check_piece_with(
    info: &Info,
    index: u32,
    data: &[u8],
    fetched: impl Fn(&[u8; 32], usize) -> Option<merkle::Hash256>,
) -> bool {
    let layout = info.layout();
    if data.len() as u64 != layout.piece_len(index) || data.is_empty() {
        return false;
    }
    if !info.pieces.is_empty() {
        let Some(want) = info.pieces.get(index as usize) else {
            return false;
        };
        let got: [u8; 20] = Sha1::digest(data).into();
        return &got == want;
    }
    if layout.mode() != LayoutMode::V2 {
        return false;
    }
    // v2: the piece belongs to exactly one file.
    let Some(span) = layout.spans(index, 0, 1).next() else {
        return false;
    };
    let Some(file) = info.files.get(span.file_index) else {
        return false;
    };
    let Some(root) = file.pieces_root else {
        return false;
    };
    let leaves: Vec<merkle::Hash256> = data
        .chunks(merkle::BLOCK_SIZE as usize)
        .map(merkle::block_hash)
        .collect();
    let pl = info.piece_length;
    if file.length <= pl {
        return merkle::merkle_root(&leaves, leaves.len()) == root;
    }
    let k = (span.file_offset / pl) as usize;
    let width = (pl / merkle::BLOCK_SIZE) as usize;
    let want = match info.piece_layer(&root) {
        Some(layer) => layer.get(k).copied(),
        None => fetched(&root, k),
    };
    want.is_some_and(|want| merkle::merkle_root(&leaves, width) == want)
}

/// Reserves blocks for bytes `0..len` of `f`, keeping its data.
#[cfg(target_os = "linux")]
fn allocate(f: &mut File, len: u64) -> io::Result<()> {
    rustix::fs::fallocate(&*f, rustix::fs::FallocateFlags::empty(), 0, len).map_err(io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn allocate(_: &mut File, _: u64) -> io::Result<()> {
    Ok(())
}

impl Drop for Storage {
    /// Writes out what is left in the cache (errors are logged: nothing can be told).
    fn drop(&mut self) {
        if self.lock_cache().pieces.is_empty() {
            return;
        }
        if let Err(e) = self.flush(Flush::All, "drop") {
            warn!(error = %e, "pieces lost: the write-back cache could not be written");
        }
    }
}

/// Writes `slices` at `offset` of `f` completely; returns the number of write calls.
#[cfg(target_os = "linux")]
fn write_all_vectored_at(
    f: &mut File,
    mut slices: Vec<io::IoSlice<'_>>,
    mut offset: u64,
    written: &mut u64,
) -> io::Result<usize> {
    // The kernel takes at most IOV_MAX (1024) buffers per call.
    const IOV_MAX: usize = 1024;
    let mut bufs: &mut [io::IoSlice<'_>] = &mut slices;
    let mut calls = 0;
    while !bufs.is_empty() {
        let n = match rustix::io::pwritev(&*f, &bufs[..bufs.len().min(IOV_MAX)], offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        calls += 1;
        offset += n as u64;
        *written += n as u64;
        io::IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(calls)
}

#[cfg(not(target_os = "linux"))]
fn write_all_vectored_at(
    f: &mut File,
    slices: Vec<io::IoSlice<'_>>,
    mut offset: u64,
    written: &mut u64,
) -> io::Result<usize> {
    for s in &slices {
        write_at(f, s, offset)?;
        offset += s.len() as u64;
        *written += s.len() as u64;
    }
    Ok(slices.len())
}

#[cfg(unix)]
fn write_at(f: &mut File, data: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, data, offset)
}

/// Appends exactly `len` bytes read at `offset` to `out`, reading into its spare
/// capacity (no zeroing; `File` reads into uninitialized memory).
fn append_at(f: &mut File, out: &mut Vec<u8>, len: u64, offset: u64) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    f.seek(SeekFrom::Start(offset))?;
    let before = out.len();
    f.take(len).read_to_end(out)?;
    if (out.len() - before) as u64 != len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

#[cfg(not(unix))]
fn write_at(f: &mut File, data: &[u8], offset: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use metainfo::{Torrent, TorrentBuilder, Version};

    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Makes content under `src/content` and its torrent.
    fn make(src: &Path, version: Version, files: &[(&str, usize)]) -> Torrent {
        let dir = src.join("content");
        for (i, (name, len)) in files.iter().enumerate() {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, noise(i as u64 + 1, *len)).unwrap();
        }
        let made = TorrentBuilder::new(&dir)
            .version(version)
            .piece_length(32768)
            .build()
            .unwrap();
        Torrent::from_bytes(made.bytes()).unwrap()
    }

    const FILES: &[(&str, usize)] = &[
        ("a", 100),
        ("b.bin", 70_000),
        ("empty", 0),
        ("sub/y", 16_384),
        ("sub/z", 40_001),
    ];

    #[test]
    fn copies_piece_by_piece_and_verifies_for_every_version() {
        for version in [Version::V1, Version::V2, Version::Hybrid] {
            let src = tempfile::tempdir().unwrap();
            let dst = tempfile::tempdir().unwrap();
            let t = make(src.path(), version, FILES);
            let from = Storage::new(&t.info, src.path()).unwrap();
            assert!(from.verify_existing().unwrap().all_good(), "{version:?}");
            let to = Storage::new(&t.info, dst.path()).unwrap();
            // Nothing there: nothing read, every piece missing.
            let before = to.verify_existing().unwrap();
            assert_eq!(before.count_good(), 0);
            assert_eq!(before.len(), t.info.piece_count() as usize);
            for p in 0..t.info.piece_count() {
                let len = t.info.layout().piece_len(p);
                let data = from.read_block(p, 0, len).unwrap();
                assert!(to.check_piece(p, &data), "{version:?} piece {p}");
                let mut bad = data.clone();
                bad[0] ^= 1;
                assert!(!to.check_piece(p, &bad));
                to.write_piece(p, &data).unwrap();
            }
            to.finish().unwrap();
            assert!(to.verify_existing().unwrap().all_good(), "{version:?}");
            for (name, _) in FILES {
                let a = std::fs::read(src.path().join("content").join(name)).unwrap();
                let b = std::fs::read(dst.path().join("content").join(name)).unwrap();
                assert_eq!(a, b, "{version:?} {name}");
            }
        }
    }

    #[test]
    fn pieces_given_as_blocks_check_and_write_like_whole_pieces() {
        for version in [Version::V1, Version::V2, Version::Hybrid] {
            let src = tempfile::tempdir().unwrap();
            let dst = tempfile::tempdir().unwrap();
            let t = make(src.path(), version, FILES);
            let from = Storage::new(&t.info, src.path()).unwrap();
            let to = Storage::new(&t.info, dst.path()).unwrap();
            for p in 0..t.info.piece_count() {
                let data = from.read_block(p, 0, t.info.layout().piece_len(p)).unwrap();
                // 16 KiB blocks for even pieces, odd-sized chunks (straddling file
                // and padding boundaries) for odd ones.
                let size = if p % 2 == 0 { 16384 } else { 7777 };
                let chunks: Vec<&[u8]> = data.chunks(size).collect();
                assert!(to.check_piece_blocks(p, &chunks), "{version:?} piece {p}");
                let mut bad = data.clone();
                *bad.last_mut().unwrap() ^= 1;
                let bad_chunks: Vec<&[u8]> = bad.chunks(size).collect();
                assert!(!to.check_piece_blocks(p, &bad_chunks));
                assert!(!to.check_piece_blocks(p, &chunks[1..]));
                assert!(to.write_piece_blocks(p, &chunks[1..]).is_err());
                to.write_piece_blocks(p, &chunks).unwrap();
            }
            to.finish().unwrap();
            assert!(to.verify_existing().unwrap().all_good(), "{version:?}");
            for f in t.info.files.iter().filter(|f| f.is_padding()) {
                assert!(!dst.path().join(f.safe_path()).exists(), "{f:?}");
            }
        }
    }

    #[test]
    fn padding_files_are_never_written() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let t = make(src.path(), Version::Hybrid, FILES);
        assert!(t.info.files.iter().any(|f| f.is_padding()));
        let from = Storage::new(&t.info, src.path()).unwrap();
        let to = Storage::new(&t.info, dst.path()).unwrap();
        for p in 0..t.info.piece_count() {
            let data = from.read_block(p, 0, t.info.layout().piece_len(p)).unwrap();
            to.write_piece(p, &data).unwrap();
        }
        to.finish().unwrap();
        for f in t.info.files.iter().filter(|f| f.is_padding()) {
            assert!(!dst.path().join(f.safe_path()).exists(), "{f:?}");
        }
    }

    #[test]
    fn partial_data_gives_a_partial_bitfield_and_blocks_read_back() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let t = make(src.path(), Version::V1, FILES);
        let from = Storage::new(&t.info, src.path()).unwrap();
        let to = Storage::new(&t.info, dst.path()).unwrap();
        let data = from.read_block(2, 0, 32768).unwrap();
        to.write_piece(2, &data).unwrap();
        let have = to.verify_existing().unwrap();
        assert_eq!(have.count_good(), 1);
        assert!(have.get(2));
        assert_eq!(to.read_block(2, 100, 50).unwrap(), data[100..150]);
        assert!(to.read_block(2, 32760, 50).is_err());
        assert!(to.read_block(99, 0, 1).is_err());
        assert!(to.write_piece(2, &data[1..]).is_err());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn full_preallocation_reserves_blocks_and_keeps_data() {
        use std::os::unix::fs::MetadataExt;
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let t = make(src.path(), Version::V1, FILES);
        let from = Storage::new(&t.info, src.path()).unwrap();
        let to = Storage::new(&t.info, dst.path()).unwrap();
        let data = from.read_block(1, 0, 32768).unwrap();
        to.write_piece(1, &data).unwrap();
        let b = dst.path().join("content/b.bin");
        let sparse = std::fs::metadata(&b).unwrap().blocks() * 512;
        assert!(sparse < 70_000, "{sparse}");
        // Skip sub/z: it stays absent.
        let wanted: Vec<bool> = t
            .info
            .files
            .iter()
            .map(|f| !f.path.ends_with(&["z".to_string()]))
            .collect();
        to.preallocate(&wanted).unwrap();
        let full = std::fs::metadata(&b).unwrap().blocks() * 512;
        assert!(full >= 70_000, "{full}");
        assert_eq!(std::fs::metadata(&b).unwrap().len(), 70_000);
        assert_eq!(to.read_block(1, 0, 32768).unwrap(), data);
        assert!(!dst.path().join("content/sub/z").exists());
        assert!(dst.path().join("content/sub/y").exists());
    }

    /// Piece `p` of `from` as 16 KiB blocks (as received).
    fn blocks_of(from: &Storage, p: u32) -> Vec<Bytes> {
        let data = from.read_block(p, 0, from.layout().piece_len(p)).unwrap();
        data.chunks(16384).map(Bytes::copy_from_slice).collect()
    }

    /// One file of `pieces` pieces of 32 KiB (the last one short).
    fn single(src: &Path, pieces: usize) -> Torrent {
        make(src, Version::V1, &[("one.bin", pieces * 32768 - 1000)])
    }

    /// A torrent made by `torrent` in a new source directory, the storage over that
    /// content (`from`) and over a new empty directory (`to`, with a write-back cache of
    /// `cache` bytes; 0: none). The directories live as long as the fixture.
    struct Copy {
        t: Torrent,
        from: Storage,
        to: Storage,
        _src: tempfile::TempDir,
        dst: tempfile::TempDir,
    }

    fn copy(torrent: impl FnOnce(&Path) -> Torrent, cache: usize) -> Copy {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let t = torrent(src.path());
        let from = Storage::new(&t.info, src.path()).unwrap();
        let mut to = Storage::new(&t.info, dst.path()).unwrap();
        if cache > 0 {
            to = to.with_cache(cache);
        }
        Copy {
            t,
            from,
            to,
            _src: src,
            dst,
        }
    }

    #[test]
    fn without_a_cache_a_piece_is_written_at_once() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let t = single(src.path(), 4);
        let from = Storage::new(&t.info, src.path()).unwrap();
        let to = Storage::new(&t.info, dst.path()).unwrap();
        to.store_piece(1, blocks_of(&from, 1)).unwrap();
        assert_eq!(to.cached_bytes(), 0);
        assert!(!to.is_cached(1));
        assert!(to.verify_existing().unwrap().get(1));
    }

    #[test]
    fn the_cache_never_holds_more_than_its_cap() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let t = single(src.path(), 20);
        let from = Storage::new(&t.info, src.path()).unwrap();
        let cap = 3 * 32768 + 100;
        let to = Storage::new(&t.info, dst.path()).unwrap().with_cache(cap);
        let mut max = 0;
        for p in 0..t.info.piece_count() {
            to.store_piece(p, blocks_of(&from, p)).unwrap();
            max = max.max(to.cached_bytes());
            assert!(to.cached_bytes() <= cap, "piece {p}: {}", to.cached_bytes());
            assert!(to.is_cached(p));
        }
        // It filled up before it was written out.
        assert_eq!(max, 3 * 32768);
        // The pieces it wrote to make room are on disk already.
        let on_disk = to.verify_existing().unwrap().count_good();
        assert_eq!(on_disk as usize, 20 - to.lock_cache().pieces.len());
        to.sync().unwrap();
        assert_eq!(to.cached_bytes(), 0);
        assert!(to.verify_existing().unwrap().all_good());
    }

    #[test]
    fn adjacent_pieces_are_written_in_one_vectored_write_per_file_run() {
        let c = copy(|s| single(s, 10), 64 << 20);
        let Copy { from, to, .. } = &c;
        // 0..=3 and 5..=9: two runs; stored out of order.
        for p in [3, 1, 0, 2, 9, 5, 7, 6, 8] {
            to.store_piece(p, blocks_of(from, p)).unwrap();
        }
        assert_eq!(to.verify_existing().unwrap().count_good(), 0);
        let stats = to.flush(Flush::All, "test").unwrap();
        assert_eq!(stats.pieces, 9);
        assert_eq!(stats.bytes, 9 * 32768 - 1000);
        assert_eq!(stats.writes, 2);
        let have = to.verify_existing().unwrap();
        assert_eq!(have.count_good(), 9);
        assert!(!have.get(4));
        // Nothing left: flushing again writes nothing.
        assert_eq!(to.flush(Flush::All, "test").unwrap(), FlushStats::default());

        // Several files: one write per file the pieces cover (padding and the empty
        // file take none), whatever the piece boundaries.
        let c = copy(|s| make(s, Version::V1, FILES), 64 << 20);
        let Copy { t, from, to, .. } = &c;
        for p in 0..t.info.piece_count() {
            to.store_piece(p, blocks_of(from, p)).unwrap();
        }
        let stats = to.flush(Flush::All, "test").unwrap();
        assert_eq!(stats.writes, 4, "{stats:?}");
        to.finish().unwrap();
        assert!(to.verify_existing().unwrap().all_good());
    }

    #[test]
    fn a_due_flush_waits_for_the_age_or_the_watermark() {
        let c = copy(|s| single(s, 8), 4 * 32768);
        let Copy { from, to, .. } = &c;
        let long = Flush::Due {
            max_age: Duration::from_secs(3600),
        };
        to.store_piece(0, blocks_of(from, 0)).unwrap();
        to.store_piece(1, blocks_of(from, 1)).unwrap();
        assert!(!to.cache_over_watermark());
        assert_eq!(to.flush(long, "test").unwrap().pieces, 0);
        to.store_piece(2, blocks_of(from, 2)).unwrap();
        assert!(to.cache_over_watermark());
        assert_eq!(to.flush(long, "test").unwrap().pieces, 3);
        to.store_piece(3, blocks_of(from, 3)).unwrap();
        let now = Flush::Due {
            max_age: Duration::ZERO,
        };
        assert_eq!(to.flush(now, "test").unwrap().pieces, 1);
        assert_eq!(to.verify_existing().unwrap().count_good(), 4);
    }

    #[test]
    fn reads_see_cached_pieces_before_they_are_written() {
        let c = copy(|s| single(s, 4), 1 << 20);
        let Copy { from, to, dst, .. } = &c;
        let blocks = blocks_of(from, 2);
        let data = from.read_block(2, 0, 32768).unwrap();
        to.store_piece(2, blocks.clone()).unwrap();
        // Nothing on disk yet.
        assert!(!dst.path().join("content").exists());
        assert!(to.is_cached(2));
        assert_eq!(to.read_block(2, 0, 32768).unwrap(), data);
        assert_eq!(to.read_block(2, 16000, 1000).unwrap(), data[16000..17000]);
        // Inside one block: a slice of the received buffer itself.
        let b = to.cached_block(2, 100, 16000).unwrap();
        assert_eq!(b, data[100..16100]);
        assert_eq!(b.as_ptr(), blocks[0][100..].as_ptr());
        let b = to.cached_block(2, 16384, 16384).unwrap();
        assert_eq!(b.as_ptr(), blocks[1].as_ptr());
        // Across blocks: a copy, right bytes.
        assert_eq!(to.cached_block(2, 16000, 1000).unwrap(), data[16000..17000]);
        assert!(to.cached_block(2, 32000, 1000).is_none());
        assert!(to.cached_block(2, 0, 0).is_none());
        assert!(to.cached_block(1, 0, 100).is_none());
        // Once written, the same reads come from the file.
        to.sync().unwrap();
        assert!(!to.is_cached(2));
        assert!(to.cached_block(2, 0, 100).is_none());
        assert_eq!(to.read_block(2, 16000, 1000).unwrap(), data[16000..17000]);
    }

    #[test]
    fn sync_and_finish_write_the_cache_out() {
        let c = copy(|s| make(s, Version::Hybrid, FILES), 64 << 20);
        let Copy { t, from, to, .. } = &c;
        let n = t.info.piece_count();
        for p in 0..n / 2 {
            to.store_piece(p, blocks_of(from, p)).unwrap();
        }
        assert_eq!(to.verify_existing().unwrap().count_good(), 0);
        to.sync().unwrap();
        assert_eq!(to.cached_bytes(), 0);
        assert_eq!(to.verify_existing().unwrap().count_good(), (n / 2) as usize);
        for p in n / 2..n {
            to.store_piece(p, blocks_of(from, p)).unwrap();
        }
        to.finish().unwrap();
        assert_eq!(to.cached_bytes(), 0);
        assert!(to.verify_existing().unwrap().all_good());
        // Dropping a storage writes what is left.
        let dst = tempfile::tempdir().unwrap();
        let to = Storage::new(&t.info, dst.path())
            .unwrap()
            .with_cache(64 << 20);
        to.store_piece(1, blocks_of(from, 1)).unwrap();
        drop(to);
        let check = Storage::new(&t.info, dst.path()).unwrap();
        assert!(check.verify_existing().unwrap().get(1));
    }

    #[test]
    fn a_failed_flush_keeps_its_pieces_cached_and_not_durable() {
        let c = copy(|s| single(s, 6), 64 << 20);
        let Copy {
            t, from, to, dst, ..
        } = &c;
        for p in 0..6 {
            to.store_piece(p, blocks_of(from, p)).unwrap();
        }
        // A directory where the file goes: opening it for writing fails.
        let target = dst.path().join("content/one.bin");
        std::fs::create_dir_all(&target).unwrap();
        let e = to.flush(Flush::All, "test").unwrap_err();
        assert_eq!(e.pieces, vec![0, 1, 2, 3, 4, 5]);
        assert!(
            matches!(&e.error, StorageError::Io { path, .. } if path.ends_with("one.bin")),
            "{e}"
        );
        // sync fails the same way: no resume file may be written after it.
        assert!(to.sync().is_err());
        for p in 0..6 {
            assert!(to.is_cached(p), "piece {p}");
        }
        assert_eq!(to.cached_bytes(), 6 * 32768 - 1000);
        // Still served from memory.
        let data = from.read_block(4, 0, 32768).unwrap();
        assert_eq!(to.read_block(4, 0, 32768).unwrap(), data);
        // A full cache cannot take more: storing reports the flush error.
        let small = Storage::new(&t.info, dst.path())
            .unwrap()
            .with_cache(2 * 32768);
        small.store_piece(0, blocks_of(from, 0)).unwrap();
        small.store_piece(1, blocks_of(from, 1)).unwrap();
        assert!(small.store_piece(2, blocks_of(from, 2)).is_err());
        assert!(!small.is_cached(2));
        small.discard_cache();
        // Once the path is writable, the same pieces go out.
        std::fs::remove_dir(&target).unwrap();
        to.sync().unwrap();
        assert_eq!(to.cached_bytes(), 0);
        assert!(to.verify_existing().unwrap().all_good());
    }

    #[cfg(unix)]
    #[test]
    fn refuses_to_write_through_a_symlink_out_of_the_directory() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let t = make(src.path(), Version::V1, FILES);
        std::os::unix::fs::symlink(outside.path(), dst.path().join("content")).unwrap();
        let from = Storage::new(&t.info, src.path()).unwrap();
        let to = Storage::new(&t.info, dst.path()).unwrap();
        let data = from.read_block(0, 0, 32768).unwrap();
        assert!(matches!(
            to.write_piece(0, &data),
            Err(StorageError::Escapes(_))
        ));
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
