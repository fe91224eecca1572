//! A torrent's data on disk under a download directory.
//!
//! Files live at `DIR/<safe path>` ([`metainfo::FileEntry::safe_path`]: `DIR/name` for a
//! single-file torrent, `DIR/name/...` for a multi-file one); every path is checked to
//! stay inside `DIR` (symbolic links in between included) before a file is opened.
//! Padding files (BEP 47) are never written and read back as zeros. Files are created
//! lazily on their first write and extended sparsely with `set_len`.
//!
//! All methods block (file I/O, hashing): call them from `spawn_blocking` or a worker
//! thread, never from a task that reads sockets.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use metainfo::{Info, LayoutMode, PieceBitfield, PieceLayout, Verifier, merkle};
use sha1::{Digest, Sha1};

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

struct Slot {
    path: PathBuf,
    length: u64,
    padding: bool,
    /// The open file and whether it is writable.
    handle: Mutex<Option<(File, bool)>>,
}

/// A torrent's files under a download directory.
pub struct Storage {
    root: PathBuf,
    info: Info,
    slots: Vec<Slot>,
    /// Piece-layer hashes fetched from peers (BEP 52) for files whose layer the
    /// torrent lacks, by `pieces root`: one slot per piece of the file.
    fetched: Mutex<HashMap<[u8; 32], Vec<Option<merkle::Hash256>>>>,
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
        })
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
    /// Missing files are simply bad pieces.
    pub fn verify_existing(&self) -> Result<PieceBitfield, StorageError> {
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

    /// Creates the empty files and any file not written yet (sparse), so a complete
    /// download has every file of the torrent; flushes written data to disk.
    pub fn finish(&self) -> Result<(), StorageError> {
        self.finish_files(&[])
    }

    /// Like [`finish`](Self::finish), for the files whose flag in `wanted` is true (files
    /// past the end of `wanted` count as wanted): a skipped file is not created, but
    /// if pieces shared with wanted files wrote part of it, that part is flushed.
    pub fn finish_files(&self, wanted: &[bool]) -> Result<(), StorageError> {
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

    /// Makes everything written so far durable (`fsync` of every open file). A resume
    /// file may list a piece only after this ran following the piece's write; any
    /// write-back cache must be written out here too.
    pub fn sync(&self) -> Result<(), StorageError> {
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
            let before = to.verify_existing().unwrap();
            assert_eq!(before.count_good(), 0);
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
