//! Streaming: an async reader over one file of a torrent that is still downloading.
//!
//! [`FileReader`] implements tokio's `AsyncRead` and `AsyncSeek`. A read returns data
//! only from verified pieces: when the piece under the read position is missing, the
//! reader sets a streaming window (that piece and the next few, requested before all
//! others, even if the file is skipped) and waits until the piece is verified. Reads
//! run on `spawn_blocking` ([`Storage::read_block`](crate::storage::Storage::read_block):
//! a piece still in the write-back cache is read from memory, others from disk).
//! Dropping the reader removes its window.

use std::future::Future;
use std::io::{self, SeekFrom};
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncSeek, ReadBuf};
use tokio::sync::{mpsc, watch};

use crate::torrent::{Shared, Status, TorrentCmd};

/// Bytes read from disk at most per read call.
const MAX_READ: u64 = 256 * 1024;

/// How far ahead of the read position the window reaches, in bytes (at least 2
/// pieces); see [`FileReader::set_readahead`].
const DEFAULT_READAHEAD: u64 = 4 << 20;

type Pending<T> = Pin<Box<dyn Future<Output = T> + Send>>;

enum State {
    Idle,
    /// Waiting for a status update (a piece may have been verified).
    Waiting(Pending<bool>),
    /// Reading from disk.
    Reading(Pending<io::Result<Vec<u8>>>),
}

/// An `AsyncRead + AsyncSeek` over one file of a torrent, from
/// [`TorrentHandle::reader`](crate::TorrentHandle::reader). See the [module docs](self).
pub struct FileReader {
    shared: Arc<Shared>,
    cmd: mpsc::UnboundedSender<TorrentCmd>,
    status: watch::Receiver<Status>,
    id: u64,
    file: usize,
    /// The file's offset in the layout's byte stream and its length.
    start: u64,
    len: u64,
    pos: u64,
    seek_to: Option<u64>,
    readahead: u64,
    window: Option<Range<u32>>,
    state: State,
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("file", &self.file)
            .field("pos", &self.pos)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl FileReader {
    pub(crate) fn new(
        shared: Arc<Shared>,
        cmd: mpsc::UnboundedSender<TorrentCmd>,
        status: watch::Receiver<Status>,
        id: u64,
        file: usize,
    ) -> FileReader {
        let layout = shared.storage.layout();
        let start = layout.file_offset(file).unwrap_or(0);
        let len = shared
            .storage
            .info()
            .files
            .get(file)
            .map_or(0, |f| f.length);
        FileReader {
            shared,
            cmd,
            status,
            id,
            file,
            start,
            len,
            pos: 0,
            seek_to: None,
            readahead: DEFAULT_READAHEAD,
            window: None,
            state: State::Idle,
        }
    }

    /// The file's length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The read position.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// How many bytes ahead of the read position the streaming window reaches (default
    /// 4 MiB; at least two pieces are always in it).
    pub fn set_readahead(&mut self, bytes: u64) {
        self.readahead = bytes;
    }

    /// The piece holding byte `pos` of the file, and the offset in it.
    fn locate(&self, pos: u64) -> (u32, u64) {
        let pl = self.shared.storage.layout().piece_length();
        let s = self.start + pos;
        ((s / pl) as u32, s % pl)
    }

    fn set_window(&mut self, first: u32) {
        let layout = self.shared.storage.layout();
        let pieces = layout.file_pieces(self.file);
        let pl = layout.piece_length();
        let n = (self.readahead.div_ceil(pl)).max(2);
        let end = u64::from(first)
            .saturating_add(n)
            .min(u64::from(pieces.end)) as u32;
        let w = first..end.max(first + 1);
        if self.window.as_ref() != Some(&w) {
            self.window = Some(w.clone());
            let _ = self.cmd.send(TorrentCmd::Window(self.id, Some(w)));
        }
    }
}

impl Drop for FileReader {
    fn drop(&mut self) {
        if self.window.is_some() {
            let _ = self.cmd.send(TorrentCmd::Window(self.id, None));
        }
    }
}

impl AsyncRead for FileReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Reading(fut) => {
                    let r = ready!(fut.as_mut().poll(cx));
                    this.state = State::Idle;
                    let data = r?;
                    let n = data.len().min(buf.remaining());
                    buf.put_slice(&data[..n]);
                    this.pos += n as u64;
                    return Poll::Ready(Ok(()));
                }
                State::Waiting(fut) => {
                    let alive = ready!(fut.as_mut().poll(cx));
                    this.state = State::Idle;
                    if !alive {
                        return Poll::Ready(Err(io::Error::other("the torrent stopped")));
                    }
                }
                State::Idle => {
                    if this.pos >= this.len || buf.remaining() == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    let (piece, offset) = this.locate(this.pos);
                    // Mark the current status seen before looking at the pieces: a
                    // piece verified after the look publishes a newer status.
                    let status = this.status.borrow_and_update().clone();
                    if !this.shared.has(piece) {
                        if let Some(e) = status.error {
                            return Poll::Ready(Err(io::Error::other(e)));
                        }
                        this.set_window(piece);
                        let mut rx = this.status.clone();
                        this.state =
                            State::Waiting(Box::pin(async move { rx.changed().await.is_ok() }));
                        continue;
                    }
                    // Keep the window just ahead: the first missing piece after this one.
                    let shared = this.shared.clone();
                    let layout = shared.storage.layout();
                    let ahead = (piece..layout.file_pieces(this.file).end)
                        .take(64)
                        .find(|&p| !this.shared.has(p));
                    match ahead {
                        Some(p) => this.set_window(p),
                        None => {
                            if this.window.take().is_some() {
                                let _ = this.cmd.send(TorrentCmd::Window(this.id, None));
                            }
                        }
                    }
                    let plen = layout.piece_len(piece);
                    let n = (plen - offset)
                        .min(this.len - this.pos)
                        .min(buf.remaining() as u64)
                        .min(MAX_READ);
                    let storage = this.shared.storage.clone();
                    this.state = State::Reading(Box::pin(async move {
                        tokio::task::spawn_blocking(move || {
                            storage
                                .read_block(piece, offset, n)
                                .map_err(|e| io::Error::other(e.to_string()))
                        })
                        .await
                        .map_err(io::Error::other)?
                    }));
                }
            }
        }
    }
}

impl AsyncSeek for FileReader {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        let target = match position {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => this.len.checked_add_signed(d),
            SeekFrom::Current(d) => this.pos.checked_add_signed(d),
        };
        let Some(target) = target else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            ));
        };
        this.seek_to = Some(target);
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let this = self.get_mut();
        if let Some(p) = this.seek_to.take() {
            // A read in flight is for the old position: drop it.
            this.state = State::Idle;
            this.pos = p;
        }
        Poll::Ready(Ok(this.pos))
    }
}
