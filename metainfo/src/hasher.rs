//! The parallel piece-hashing engine shared by the builder and the verifier.
//!
//! The content is a list of files (pad files stand for zeros and are never read). Pieces
//! are handed out to worker threads in batches of consecutive pieces through an atomic
//! counter, so threads stay busy until the end whatever the file sizes; each thread reads
//! its pieces with positioned reads into one reused buffer small enough to stay in cache,
//! and feeds the same bytes to SHA-1 (v1) and per-16 KiB SHA-256 (v2).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use sha1::{Digest, Sha1};

use crate::merkle::{self, BLOCK_SIZE, Hash256};

/// Read size: a multiple of 16 KiB, small enough to stay in L2 while it is hashed.
const CHUNK: usize = 256 * 1024;
/// Aim for batches of about this many bytes per atomic hand-out.
const BATCH_BYTES: u64 = 4 * 1024 * 1024;

/// A file of the content, in torrent order.
#[derive(Clone, Debug)]
pub(crate) struct PlanFile {
    /// Where to read it (ignored for pad files).
    pub(crate) path: PathBuf,
    pub(crate) length: u64,
    /// A BEP 47 pad file: zeros, never read.
    pub(crate) pad: bool,
}

/// How pieces map onto files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// v1: pieces run over the concatenation of all files (v1 hashes only).
    Stream,
    /// v2 / hybrid: every non-empty, non-pad file starts its own pieces. The v1 hash of a
    /// file's last piece continues into the pad file that follows it, if any.
    Aligned,
}

pub(crate) struct Plan<'p> {
    pub(crate) files: &'p [PlanFile],
    pub(crate) piece_length: u64,
    pub(crate) mode: Mode,
    pub(crate) want_v1: bool,
    pub(crate) want_v2: bool,
    pub(crate) threads: usize,
    pub(crate) progress: Option<&'p (dyn Fn(u64, u64) + Sync)>,
    /// Stop at the first I/O error and return it (builder); else mark the piece bad.
    pub(crate) fail_fast: bool,
    /// If set, refuse to open any file whose canonical path is not under this directory.
    pub(crate) confine_to: Option<PathBuf>,
}

/// One piece's hashes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PieceOut {
    /// False if the data could not be read in full.
    pub(crate) ok: bool,
    pub(crate) sha1: [u8; 20],
    /// The v2 subtree root for this piece (the `pieces root` for a one-piece file).
    pub(crate) v2: Hash256,
}

/// An I/O error on one file.
#[derive(Debug)]
pub(crate) struct PlanIoError {
    pub(crate) path: PathBuf,
    pub(crate) source: io::Error,
}

/// Where each piece comes from.
pub(crate) struct PieceMap {
    /// Stream: start offset of every file. Aligned: first piece index of every file.
    starts: Vec<u64>,
    pub(crate) num_pieces: usize,
    /// All bytes, pad files included.
    pub(crate) total: u64,
    /// The bytes progress is reported against: what is read or, in stream mode, hashed.
    progress_total: u64,
}

impl PieceMap {
    pub(crate) fn new(files: &[PlanFile], piece_length: u64, mode: Mode) -> PieceMap {
        let mut starts = Vec::with_capacity(files.len());
        let mut acc = 0u64;
        let mut total = 0u64;
        let mut content = 0u64;
        for f in files {
            starts.push(acc);
            total += f.length;
            if !f.pad {
                content += f.length;
            }
            acc += match mode {
                Mode::Stream => f.length,
                Mode::Aligned if f.pad => 0,
                Mode::Aligned => f.length.div_ceil(piece_length),
            };
        }
        let num_pieces = match mode {
            Mode::Stream => acc.div_ceil(piece_length),
            Mode::Aligned => acc,
        } as usize;
        PieceMap {
            starts,
            num_pieces,
            total,
            progress_total: if mode == Mode::Stream { total } else { content },
        }
    }

    /// Aligned mode: the file a piece belongs to and the piece's index within it.
    pub(crate) fn aligned_file(&self, files: &[PlanFile], piece: usize) -> (usize, u64) {
        let p = piece as u64;
        // The last file whose first piece is <= p and that has pieces.
        let mut f = self.starts.partition_point(|&s| s <= p) - 1;
        while files[f].pad || files[f].length == 0 {
            f -= 1;
        }
        (f, p - self.starts[f])
    }

    /// Aligned mode: the first piece of file `f`.
    pub(crate) fn first_piece(&self, f: usize) -> usize {
        self.starts[f] as usize
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(not(any(unix, windows)))]
fn read_at(mut file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.read(buf)
}

fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match read_at(file, buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file is shorter than the torrent says",
                ));
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Per-thread state: the buffer, the leaf scratch and the open file.
struct Worker<'p> {
    plan: &'p Plan<'p>,
    map: &'p PieceMap,
    buf: Vec<u8>,
    leaves: Vec<Hash256>,
    open: Option<(usize, Result<File, io::ErrorKind>)>,
}

impl Worker<'_> {
    fn file(&mut self, idx: usize) -> Result<&File, PlanIoError> {
        if self.open.as_ref().map(|(i, _)| *i) != Some(idx) {
            let path = &self.plan.files[idx].path;
            self.open = Some((idx, open_confined(path, self.plan.confine_to.as_deref())));
        }
        match &self.open {
            Some((_, Ok(f))) => Ok(f),
            Some((_, Err(kind))) => Err(PlanIoError {
                path: self.plan.files[idx].path.clone(),
                source: io::Error::from(*kind),
            }),
            None => unreachable!("just set"),
        }
    }

    /// Reads `len` bytes of file `idx` from `offset` in chunks, calling `sink` on each.
    fn read_range(
        &mut self,
        idx: usize,
        offset: u64,
        len: u64,
        sink: &mut dyn FnMut(&[u8], &mut Vec<Hash256>),
    ) -> Result<(), PlanIoError> {
        let mut buf = std::mem::take(&mut self.buf);
        let mut leaves = std::mem::take(&mut self.leaves);
        let r = (|| {
            let mut done = 0u64;
            while done < len {
                let n = ((len - done) as usize).min(buf.len());
                let file = self.file(idx)?;
                read_exact_at(file, &mut buf[..n], offset + done).map_err(|e| PlanIoError {
                    path: self.plan.files[idx].path.clone(),
                    source: e,
                })?;
                sink(&buf[..n], &mut leaves);
                done += n as u64;
            }
            Ok(())
        })();
        self.buf = buf;
        self.leaves = leaves;
        r
    }

    fn piece(&mut self, piece: usize) -> Result<PieceOut, PlanIoError> {
        match self.plan.mode {
            Mode::Stream => self.stream_piece(piece),
            Mode::Aligned => self.aligned_piece(piece),
        }
    }

    fn stream_piece(&mut self, piece: usize) -> Result<PieceOut, PlanIoError> {
        let pl = self.plan.piece_length;
        let start = piece as u64 * pl;
        let end = (start + pl).min(self.map.total);
        let mut sha = Sha1::new();
        let files = self.plan.files;
        let mut f = self.map.starts.partition_point(|&s| s <= start) - 1;
        let mut pos = start;
        while pos < end && f < files.len() {
            let fstart = self.map.starts[f];
            let fend = fstart + files[f].length;
            if fend > pos {
                let take = fend.min(end) - pos;
                if files[f].pad {
                    feed_zeros(&mut sha, take);
                } else {
                    self.read_range(f, pos - fstart, take, &mut |d, _| sha.update(d))?;
                }
                pos += take;
            }
            f += 1;
        }
        Ok(PieceOut {
            ok: true,
            sha1: sha.finalize().into(),
            v2: [0; 32],
        })
    }

    fn aligned_piece(&mut self, piece: usize) -> Result<PieceOut, PlanIoError> {
        let pl = self.plan.piece_length;
        let files = self.plan.files;
        let (f, k) = self.map.aligned_file(files, piece);
        let flen = files[f].length;
        let off = k * pl;
        let len = pl.min(flen - off);
        let (want_v1, want_v2) = (self.plan.want_v1, self.plan.want_v2);
        let mut sha = Sha1::new();
        self.leaves.clear();
        self.read_range(f, off, len, &mut |d, leaves| {
            if want_v1 {
                sha.update(d);
            }
            if want_v2 {
                // Chunks start 16 KiB-aligned within the file, so blocks never straddle.
                leaves.extend(d.chunks(BLOCK_SIZE as usize).map(merkle::block_hash));
            }
        })?;
        let mut out = PieceOut {
            ok: true,
            ..PieceOut::default()
        };
        if want_v1 {
            if off + len == flen {
                if let Some(next) = files.get(f + 1).filter(|n| n.pad) {
                    feed_zeros(&mut sha, next.length);
                }
            }
            out.sha1 = sha.finalize().into();
        }
        if want_v2 {
            let w = merkle::piece_width(flen, pl);
            out.v2 = merkle::fold_in_place(&mut self.leaves, w, [0; 32]);
        }
        Ok(out)
    }
}

fn feed_zeros(sha: &mut Sha1, mut n: u64) {
    static ZEROS: [u8; 16384] = [0; 16384];
    while n > 0 {
        let k = (n as usize).min(ZEROS.len());
        sha.update(&ZEROS[..k]);
        n -= k as u64;
    }
}

fn open_confined(path: &Path, confine_to: Option<&Path>) -> Result<File, io::ErrorKind> {
    if let Some(base) = confine_to {
        let real = path.canonicalize().map_err(|e| e.kind())?;
        if !real.starts_with(base) {
            return Err(io::ErrorKind::PermissionDenied);
        }
    }
    File::open(path).map_err(|e| e.kind())
}

/// Hashes every piece of the plan. Returns the pieces in order (those that failed to read
/// have `ok == false`), or the first I/O error when `fail_fast` is set.
pub(crate) fn hash_all(plan: &Plan<'_>, map: &PieceMap) -> Result<Vec<PieceOut>, PlanIoError> {
    let n = map.num_pieces;
    let pl = plan.piece_length;
    let batch = (BATCH_BYTES / pl).max(1) as usize;
    let batches = n.div_ceil(batch);
    let threads = plan.threads.max(1).min(batches.max(1));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let first_err: Mutex<Option<PlanIoError>> = Mutex::new(None);
    let chunk = (pl as usize).clamp(BLOCK_SIZE as usize, CHUNK);

    let work = || {
        let mut w = Worker {
            plan,
            map,
            buf: vec![0u8; chunk],
            leaves: Vec::new(),
            open: None,
        };
        let mut out: Vec<(usize, PieceOut)> = Vec::new();
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let b = next.fetch_add(1, Ordering::Relaxed);
            if b >= batches {
                break;
            }
            let mut bytes = 0u64;
            for i in b * batch..((b + 1) * batch).min(n) {
                match w.piece(i) {
                    Ok(p) => out.push((i, p)),
                    Err(e) => {
                        if plan.fail_fast {
                            stop.store(true, Ordering::Relaxed);
                            let mut slot = first_err.lock().unwrap_or_else(|p| p.into_inner());
                            slot.get_or_insert(e);
                            return out;
                        }
                        out.push((i, PieceOut::default()));
                    }
                }
                bytes += piece_bytes(plan, map, i);
            }
            let d = done.fetch_add(bytes, Ordering::Relaxed) + bytes;
            if let Some(cb) = plan.progress {
                cb(d, map.progress_total);
            }
        }
        out
    };

    let parts: Vec<Vec<(usize, PieceOut)>> = if threads == 1 {
        vec![work()]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|_| s.spawn(work)).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
    if let Some(e) = first_err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let mut result = vec![PieceOut::default(); n];
    for part in parts {
        for (i, p) in part {
            result[i] = p;
        }
    }
    Ok(result)
}

/// The number of content bytes piece `i` covers (for progress).
fn piece_bytes(plan: &Plan<'_>, map: &PieceMap, i: usize) -> u64 {
    let pl = plan.piece_length;
    match plan.mode {
        Mode::Stream => (map.total - i as u64 * pl).min(pl),
        Mode::Aligned => {
            let (f, k) = map.aligned_file(plan.files, i);
            (plan.files[f].length - k * pl).min(pl)
        }
    }
}
