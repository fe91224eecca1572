//! Read-only memory maps of the parts of files a connection uploads from, so its writer
//! hands the kernel many piece messages (headers and payloads) in one `sendmsg`.
//!
//! Sending a block with `sendfile(2)` costs two syscalls (the 13-byte header, then the
//! payload), and each leaves as its own short segment. Pointing one `sendmsg` at up to
//! 1 MiB of queued headers and mapped payloads costs one syscall and one copy per
//! byte instead. Measured on loopback (1 GiB, rivulet -> rivulet, BENCHMARKS.md): the
//! seed spent 0.35-0.41 CPU s/GiB against 0.41-0.52 with sendfile (interleaved
//! rounds), and over 10 rounds of the swarm benchmark the leech received at a median
//! of 1043 MB/s against 958.
//!
//! Only the kernel reads the mapped bytes (while copying them into the socket); this
//! process never does, so a file truncated behind our back makes `sendmsg` fail with
//! `EFAULT` instead of raising `SIGBUS`. A connection maps at most [`WINDOWS`] windows
//! of about 1 MiB each, so what uploads add to the resident set stays small.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::ptr::NonNull;

use crate::conn::Chunk;
use crate::storage::FileSpan;

/// Bytes a window covers from its (aligned) start.
const WINDOW: u64 = 1 << 20;
/// Mapped past a window's end, so a span that starts in the window and crosses its
/// end still lies in it (spans are at most one block).
const SLACK: u64 = 64 << 10;
/// Windows a connection keeps mapped at most.
pub(crate) const WINDOWS: usize = 8;
/// Buffers one `sendmsg` takes at most (`IOV_MAX` is 1024).
const MAX_IOV: usize = 1024;

/// One mapping: `len` bytes of a file from `start`.
struct Window {
    dev: u64,
    ino: u64,
    start: u64,
    len: usize,
    ptr: NonNull<std::ffi::c_void>,
    /// The batch that last used it: it is not unmapped while that batch is out.
    batch: u64,
}

// SAFETY: the mapping is owned by the window alone (unmapped in its Drop) and is
// read-only; nothing ties it to the thread that made it.
unsafe impl Send for Window {}

impl Window {
    fn covers(&self, dev: u64, ino: u64, offset: u64, len: u64) -> bool {
        self.dev == dev
            && self.ino == ino
            && offset >= self.start
            && offset + len <= self.start + self.len as u64
    }

    fn bytes(&self, offset: u64, len: usize) -> &[u8] {
        let at = usize::try_from(offset - self.start).unwrap_or(usize::MAX);
        debug_assert!(at.saturating_add(len) <= self.len);
        // SAFETY: `at + len <= self.len` (checked by `covers` before this is called),
        // so the range lies inside a live mapping of `self.len` bytes that stays mapped
        // while `self` is borrowed. Only the kernel reads it.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<u8>().add(at), len) }
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what `mmap` returned, and no slice of the
        // mapping outlives the window (they borrow it).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr(), self.len) };
    }
}

/// What one entry of a batch points at.
enum Part<'q> {
    Mem(&'q [u8]),
    File {
        window: usize,
        offset: u64,
        len: usize,
    },
}

/// A connection's mapped windows.
#[derive(Default)]
pub(crate) struct Windows {
    open: Vec<Window>,
    batch: u64,
}

impl Windows {
    /// The front of `queue` as buffers for one `sendmsg`: bytes in memory as they are,
    /// file ranges from mapped windows, at most `max_bytes` (at least the first
    /// chunk). Stops before the first file range that cannot be mapped (it must be
    /// sent another way); empty when that is the front.
    pub(crate) fn gather<'a>(
        &'a mut self,
        queue: &'a VecDeque<Chunk>,
        max_bytes: usize,
    ) -> Vec<IoSlice<'a>> {
        self.batch += 1;
        let mut parts: Vec<Part<'a>> = Vec::with_capacity(queue.len().min(MAX_IOV));
        let mut total = 0usize;
        for chunk in queue {
            if parts.len() >= MAX_IOV || (total >= max_bytes && !parts.is_empty()) {
                break;
            }
            match chunk {
                Chunk::Mem(b) => parts.push(Part::Mem(b)),
                Chunk::File(span) => match self.locate(span) {
                    Some((window, len)) => parts.push(Part::File {
                        window,
                        offset: span.offset,
                        len,
                    }),
                    None => break,
                },
            }
            total = total.saturating_add(chunk.len());
        }
        let open = &self.open;
        parts
            .into_iter()
            .map(|p| match p {
                Part::Mem(b) => IoSlice::new(b),
                Part::File {
                    window,
                    offset,
                    len,
                } => IoSlice::new(open[window].bytes(offset, len)),
            })
            .collect()
    }

    /// The window holding `span` (mapped now if need be) and the span's length.
    fn locate(&mut self, span: &FileSpan) -> Option<(usize, usize)> {
        let len = usize::try_from(span.len).ok()?;
        if span.len > SLACK || len == 0 {
            return None;
        }
        let st = rustix::fs::fstat(&*span.file).ok()?;
        let (dev, ino) = (st.st_dev, st.st_ino);
        let size = u64::try_from(st.st_size).ok()?;
        let end = span.offset.checked_add(span.len)?;
        if end > size {
            // Past the end of the file: sendfile's path finds out why.
            return None;
        }
        if let Some(i) = self
            .open
            .iter()
            .position(|w| w.covers(dev, ino, span.offset, span.len))
        {
            self.open[i].batch = self.batch;
            return Some((i, len));
        }
        let start = span.offset - span.offset % WINDOW;
        let map_len = usize::try_from((WINDOW + SLACK).min(size - start)).ok()?;
        // A slot: a free one, else the least recently used window this batch does not
        // point into.
        let slot = if self.open.len() < WINDOWS {
            None
        } else {
            let (i, _) = self
                .open
                .iter()
                .enumerate()
                .filter(|(_, w)| w.batch != self.batch)
                .min_by_key(|(_, w)| w.batch)?;
            Some(i)
        };
        // SAFETY: a fresh shared read-only mapping of an open file; the file handle may
        // close afterwards (the mapping keeps its own reference).
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                map_len,
                rustix::mm::ProtFlags::READ,
                rustix::mm::MapFlags::SHARED,
                &*span.file,
                start,
            )
        }
        .ok()?;
        let window = Window {
            dev,
            ino,
            start,
            len: map_len,
            ptr: NonNull::new(ptr)?,
            batch: self.batch,
        };
        match slot {
            Some(i) => {
                self.open[i] = window;
                Some((i, len))
            }
            None => {
                self.open.push(window);
                Some((self.open.len() - 1, len))
            }
        }
    }

    /// Windows mapped now.
    #[cfg(test)]
    pub(crate) fn mapped(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::fs::File;
    use std::sync::Arc;

    const MIB: u64 = 1 << 20;

    /// A sparse file of 12 MiB with 100 KB of known bytes at each MiB, and those bytes.
    fn file(dir: &std::path::Path) -> (Arc<File>, Vec<Vec<u8>>) {
        use std::os::unix::fs::FileExt;
        let f = File::create(dir.join("f")).unwrap();
        f.set_len(12 * MIB).unwrap();
        let mut marks = Vec::new();
        for i in 0..12u64 {
            let bytes: Vec<u8> = (0..100_000u32)
                .map(|j| (j as u8).wrapping_mul(7) ^ i as u8)
                .collect();
            f.write_all_at(&bytes, i * MIB).unwrap();
            marks.push(bytes);
        }
        (Arc::new(File::open(dir.join("f")).unwrap()), marks)
    }

    fn span(file: &Arc<File>, offset: u64, len: u64) -> Chunk {
        Chunk::File(FileSpan {
            file: file.clone(),
            offset,
            len,
        })
    }

    fn joined(slices: &[IoSlice<'_>]) -> Vec<u8> {
        slices.iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn a_batch_holds_memory_and_mapped_ranges_in_queue_order() {
        let dir = tempfile::tempdir().unwrap();
        let (f, marks) = file(dir.path());
        let queue: VecDeque<Chunk> = vec![
            Chunk::Mem(Bytes::from_static(b"head")),
            span(&f, 100, 16_384),
            Chunk::Mem(Bytes::from_static(b"mid")),
            // Starts in the window at 2 MiB and ends past it (in its slack).
            span(&f, 3 * MIB - 10, 20),
            span(&f, 5 * MIB, 20_480),
        ]
        .into();
        let mut w = Windows::default();
        let got = joined(&w.gather(&queue, 1 << 20));
        let mut want = b"head".to_vec();
        want.extend_from_slice(&marks[0][100..16_484]);
        want.extend_from_slice(b"mid");
        want.extend_from_slice(&[0; 10]);
        want.extend_from_slice(&marks[3][..10]);
        want.extend_from_slice(&marks[5][..20_480]);
        assert!(got == want, "the bytes differ");
        assert_eq!(w.mapped(), 3);
    }

    #[test]
    fn a_batch_stops_at_its_byte_budget_and_before_a_range_that_cannot_be_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let (f, marks) = file(dir.path());
        let queue: VecDeque<Chunk> = vec![
            span(&f, 0, 16_384),
            span(&f, 16_384, 4_096),
            span(&f, MIB, 16),
        ]
        .into();
        let mut w = Windows::default();
        // The budget is met after the first range: the batch ends there.
        assert_eq!(joined(&w.gather(&queue, 10_000)), marks[0][..16_384]);
        // Past the end of the file: not mapped, the batch stops before it.
        let queue: VecDeque<Chunk> = vec![
            Chunk::Mem(Bytes::from_static(b"h")),
            span(&f, 12 * MIB - 8, 16),
            Chunk::Mem(Bytes::from_static(b"x")),
        ]
        .into();
        assert_eq!(joined(&w.gather(&queue, 1 << 20)), b"h");
        let queue: VecDeque<Chunk> = vec![span(&f, 12 * MIB - 8, 16)].into();
        assert!(w.gather(&queue, 1 << 20).is_empty());
        // Longer than a window's slack: never mapped.
        let queue: VecDeque<Chunk> = vec![span(&f, 0, SLACK + 1)].into();
        assert!(w.gather(&queue, 1 << 20).is_empty());
    }

    #[test]
    fn a_connection_maps_a_bounded_number_of_windows_and_a_batch_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let (f, marks) = file(dir.path());
        let mut w = Windows::default();
        // One range in each of 12 windows (past the slack of the window before), in one
        // batch: the batch stops once every window is in use by it (none may be
        // unmapped while it is out).
        let at = SLACK + 100;
        let queue: VecDeque<Chunk> = (0..12u64).map(|i| span(&f, i * MIB + at, 8)).collect();
        let got = joined(&w.gather(&queue, 1 << 20));
        let at = at as usize;
        let want: Vec<u8> = marks[..WINDOWS]
            .iter()
            .flat_map(|m| m[at..at + 8].to_vec())
            .collect();
        assert_eq!(got, want);
        assert_eq!(w.mapped(), WINDOWS);
        // Batch after batch, windows are reused, never more than WINDOWS.
        for i in (0..12u64).rev() {
            let queue: VecDeque<Chunk> = vec![span(&f, i * MIB + 4, 8)].into();
            assert_eq!(joined(&w.gather(&queue, 1 << 20)), marks[i as usize][4..12]);
            assert!(w.mapped() <= WINDOWS);
        }
    }

    #[test]
    fn a_file_that_grew_is_mapped_again() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("g"), vec![1u8; 4096]).unwrap();
        let f = Arc::new(File::open(dir.path().join("g")).unwrap());
        let mut w = Windows::default();
        let queue: VecDeque<Chunk> = vec![span(&f, 0, 4096)].into();
        assert_eq!(joined(&w.gather(&queue, 1 << 20)), vec![1u8; 4096]);
        let g = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("g"))
            .unwrap();
        g.write_all_at(&[2u8; 8192], 4096).unwrap();
        let queue: VecDeque<Chunk> = vec![span(&f, 2048, 8192)].into();
        let mut want = vec![1u8; 2048];
        want.extend_from_slice(&[2u8; 6144]);
        assert_eq!(joined(&w.gather(&queue, 1 << 20)), want);
        assert!(w.mapped() <= 2);
    }
}
