//! A connection's writer task: it sends what the torrent task queued.
//!
//! The writer sends [`Chunk`]s: bytes in memory (encoded messages, piece payloads read
//! into memory) or ranges of the torrent's files. On a plaintext connection (Linux) the
//! writer owns a second handle on the socket (`dup`) and sends file ranges with
//! `sendfile(2)`, so a piece payload is never copied into our memory; the bytes in
//! front of a file range (a piece message's 13-byte header, small messages) go out in
//! one `sendmsg` with `MSG_MORE`, so the header and its payload leave in the same
//! segments. The reader then owns the whole stream (no lock between the two halves). On
//! an encrypted connection (MSE/RC4) both go through the stream's halves and file
//! ranges are read into memory first. A `sendfile` the file system does not support
//! (`EINVAL`, `ENOSYS`, `EOPNOTSUPP`) turns the connection over to reading too. Once a
//! piece's header is out, its payload must follow: a file range that cannot be read
//! closes the connection.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Buf, Bytes};
use handshake::PeerStream;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::ratelimit::RateLimiter;
use crate::storage::FileSpan;

/// Something a connection's writer sends.
#[derive(Debug, Clone)]
pub(crate) enum Chunk {
    /// Bytes in memory.
    Mem(Bytes),
    /// A range of a file: sent with `sendfile(2)` where the connection allows, else
    /// read first.
    File(FileSpan),
}

impl Chunk {
    /// Bytes still to send.
    pub(crate) fn len(&self) -> usize {
        match self {
            Chunk::Mem(b) => b.len(),
            Chunk::File(s) => usize::try_from(s.len).unwrap_or(usize::MAX),
        }
    }

    /// Drops the first `n` bytes (at most [`len`](Self::len)).
    fn advance(&mut self, n: usize) {
        match self {
            Chunk::Mem(b) => b.advance(n.min(b.len())),
            Chunk::File(s) => {
                let n = (n as u64).min(s.len);
                s.offset += n;
                s.len -= n;
            }
        }
    }
}

/// Where a connection's writer writes.
#[derive(Debug)]
pub(crate) enum Sink<W> {
    /// Through the stream (`W` is the write half of an encrypted connection, or of any
    /// connection elsewhere than Linux): file ranges are read into memory first.
    Stream(W),
    /// Straight to the (plaintext) socket, file ranges with `sendfile(2)`.
    #[cfg(target_os = "linux")]
    Socket(TcpStream),
}

/// A second handle on `stream`'s socket for a writer that sends with `sendfile(2)`:
/// `None` when the stream is encrypted (the bytes must pass through RC4), when the
/// handle cannot be made, or elsewhere than Linux.
pub(crate) fn plain_socket(stream: &PeerStream<TcpStream>) -> Option<TcpStream> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsFd;
        if stream.is_encrypted() {
            return None;
        }
        // The copy shares the socket's file status flags: it is non-blocking too.
        let fd = stream.get_ref().as_fd().try_clone_to_owned().ok()?;
        TcpStream::from_std(std::net::TcpStream::from(fd)).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = stream;
        None
    }
}

/// Bytes one `sendmsg` from mapped files carries at most (more when a single chunk is
/// longer). A rivulet leech on loopback took 0.96-0.97 s for 1 GiB with 1 MiB, 1.00 s
/// with 256 KiB, 1.04-1.08 s with 64 KiB and 1.07-1.09 s with one block per call.
const MAPPED_BATCH: usize = 1 << 20;

/// Buffers the writer gathers into one vectored write at most.
const MAX_IOV: usize = 64;

/// Told when a writer's backlog falls to the low mark.
pub(crate) struct Drained {
    /// Bytes handed to the writer and not yet written (the writer subtracts).
    pub(crate) backlog: Arc<AtomicUsize>,
    /// The low mark.
    pub(crate) low: usize,
    /// Called once each time the backlog falls from above `low` to `low` or below.
    pub(crate) notify: Box<dyn Fn() + Send>,
}

/// A connection's writer: gathers what the torrent task queued and writes it (vectored
/// writes; file ranges with `sendfile(2)` on a [`Sink::Socket`]), after the upload
/// limiter allows it. Ends when the channel closes (after writing what is queued) or a
/// write fails, then shuts the connection's sending side down.
pub(crate) async fn write_loop<W: AsyncWrite + Unpin>(
    mut sink: Sink<W>,
    mut rx: mpsc::UnboundedReceiver<Vec<Chunk>>,
    up: RateLimiter,
    drained: Option<Drained>,
    map_files: bool,
) {
    let mut queue: VecDeque<Chunk> = VecDeque::new();
    // Bytes at the front of the queue already counted by the limiter (after a partial
    // write), so nothing is counted twice.
    let mut paid = 0usize;
    #[cfg(target_os = "linux")]
    let mut sendfile_ok = true;
    // File ranges from mapped windows, many blocks per sendmsg (see `mapped`).
    #[cfg(target_os = "linux")]
    let mut windows =
        (map_files && matches!(sink, Sink::Socket(_))).then(crate::mapped::Windows::default);
    #[cfg(not(target_os = "linux"))]
    let _ = map_files;
    'outer: while let Some(chunks) = rx.recv().await {
        queue.extend(chunks);
        while let Ok(more) = rx.try_recv() {
            queue.extend(more);
        }
        while let Some(front) = queue.front() {
            if front.len() == 0 {
                queue.pop_front();
                continue;
            }
            #[cfg(target_os = "linux")]
            if let (Sink::Socket(sock), Some(w)) = (&sink, windows.as_mut()) {
                // A rate-limited writer pays before it sends: small batches.
                let max = if up.is_limited() {
                    1 << 16
                } else {
                    MAPPED_BATCH
                };
                let sent = {
                    let slices = w.gather(&queue, max);
                    if slices.is_empty() {
                        None
                    } else {
                        let len: usize = slices.iter().map(|s| s.len()).sum();
                        up.consume(len.saturating_sub(paid)).await;
                        paid = paid.max(len);
                        Some(send_vectored(sock, &slices, false).await)
                    }
                };
                match sent {
                    // The front is a range that cannot be mapped: sendfile below.
                    None => {}
                    Some(Ok(0)) => break 'outer,
                    Some(Ok(n)) => {
                        advance(&mut queue, n, &mut paid, drained.as_ref());
                        while let Ok(more) = rx.try_recv() {
                            queue.extend(more);
                        }
                        continue;
                    }
                    Some(Err(e))
                        if e.raw_os_error() == Some(rustix::io::Errno::FAULT.raw_os_error()) =>
                    {
                        // A file shrank under its mapping: sendfile finds out why.
                        tracing::debug!(error = %e, "mapped upload failed: sendfile instead");
                        windows = None;
                        continue;
                    }
                    Some(Err(_)) => break 'outer,
                }
            }
            let written = match (&mut sink, front) {
                #[cfg(target_os = "linux")]
                (Sink::Socket(sock), Chunk::File(span)) if sendfile_ok => {
                    let len = front.len();
                    up.consume(len.saturating_sub(paid)).await;
                    paid = paid.max(len);
                    match send_file(sock, span).await {
                        Ok(n) if n > 0 => n,
                        Ok(_) => {
                            // The file is shorter than it should be: reading tells why.
                            if !read_front(&mut queue).await {
                                break 'outer;
                            }
                            continue;
                        }
                        Err(e) if unsupported(&e) => {
                            tracing::debug!(error = %e, "sendfile unsupported: reading instead");
                            sendfile_ok = false;
                            continue;
                        }
                        Err(_) => break 'outer,
                    }
                }
                (_, Chunk::File(_)) => {
                    if !read_front(&mut queue).await {
                        break 'outer;
                    }
                    continue;
                }
                (sink, Chunk::Mem(_)) => {
                    let mut slices = Vec::with_capacity(queue.len().min(MAX_IOV));
                    let mut before_file = false;
                    for c in queue.iter() {
                        match c {
                            Chunk::Mem(b) if slices.len() < MAX_IOV => {
                                slices.push(std::io::IoSlice::new(b))
                            }
                            Chunk::Mem(_) => break,
                            Chunk::File(_) => {
                                before_file = true;
                                break;
                            }
                        }
                    }
                    let len: usize = slices.iter().map(|s| s.len()).sum();
                    up.consume(len.saturating_sub(paid)).await;
                    paid = paid.max(len);
                    let r = match sink {
                        Sink::Stream(w) => w.write_vectored(&slices).await,
                        #[cfg(target_os = "linux")]
                        Sink::Socket(sock) => send_vectored(sock, &slices, before_file).await,
                    };
                    let _ = before_file;
                    match r {
                        Ok(0) | Err(_) => break 'outer,
                        Ok(n) => n,
                    }
                }
            };
            advance(&mut queue, written, &mut paid, drained.as_ref());
            // Take what arrived meanwhile, so it goes out in the same writes.
            while let Ok(more) = rx.try_recv() {
                queue.extend(more);
            }
        }
    }
    let _ = match &mut sink {
        Sink::Stream(w) => w.shutdown().await,
        #[cfg(target_os = "linux")]
        Sink::Socket(sock) => sock.shutdown().await,
    };
}

/// Accounts for `written` bytes sent from the front of `queue` and drops them (they
/// may end inside a chunk).
fn advance(
    queue: &mut VecDeque<Chunk>,
    written: usize,
    paid: &mut usize,
    drained: Option<&Drained>,
) {
    *paid -= written.min(*paid);
    if let Some(d) = drained {
        let before = d.backlog.fetch_sub(written, Ordering::Relaxed);
        if before > d.low && before.saturating_sub(written) <= d.low {
            (d.notify)();
        }
    }
    let mut n = written;
    while n > 0 {
        let Some(front) = queue.front_mut() else {
            break;
        };
        let l = front.len();
        if l <= n {
            n -= l;
            queue.pop_front();
        } else {
            front.advance(n);
            n = 0;
        }
    }
}

/// Replaces the file range at the front of `queue` by its bytes, read on the blocking
/// pool. `false` if it cannot be read in full.
async fn read_front(queue: &mut VecDeque<Chunk>) -> bool {
    let Some(Chunk::File(span)) = queue.front().cloned() else {
        return true;
    };
    let read = tokio::task::spawn_blocking(move || read_span(&span)).await;
    match read {
        Ok(Ok(data)) => {
            if let Some(front) = queue.front_mut() {
                *front = Chunk::Mem(data);
            }
            true
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "reading a block to upload failed: closing");
            false
        }
        Err(_) => false,
    }
}

/// The bytes of a file range.
fn read_span(span: &FileSpan) -> std::io::Result<Bytes> {
    let len = usize::try_from(span.len).map_err(std::io::Error::other)?;
    let mut buf = vec![0; len];
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        span.file.read_exact_at(&mut buf, span.offset)?;
    }
    #[cfg(not(unix))]
    {
        use std::os::windows::fs::FileExt;
        let mut done = 0;
        while done < len {
            let n = span
                .file
                .seek_read(&mut buf[done..], span.offset + done as u64)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            done += n;
        }
    }
    Ok(Bytes::from(buf))
}

/// Whether a `sendfile` error means "not for this file or socket" (send by reading)
/// rather than a broken connection.
#[cfg(target_os = "linux")]
fn unsupported(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    matches!(
        e.raw_os_error().map(Errno::from_raw_os_error),
        Some(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP)
    )
}

/// Sends what `sendfile(2)` takes of `span` (at most 1 GiB), waiting until the socket
/// is writable.
#[cfg(target_os = "linux")]
async fn send_file(sock: &TcpStream, span: &FileSpan) -> std::io::Result<usize> {
    let count = usize::try_from(span.len).unwrap_or(usize::MAX).min(1 << 30);
    sock.async_io(tokio::io::Interest::WRITABLE, || {
        let mut offset = span.offset;
        rustix::fs::sendfile(sock, &*span.file, Some(&mut offset), count)
            .map_err(std::io::Error::from)
    })
    .await
}

/// One `sendmsg` of `slices`; `more`: a file range follows, so the kernel holds the
/// bytes back for it (`MSG_MORE`) instead of sending a short segment now.
#[cfg(target_os = "linux")]
async fn send_vectored(
    sock: &TcpStream,
    slices: &[std::io::IoSlice<'_>],
    more: bool,
) -> std::io::Result<usize> {
    use rustix::net::{SendAncillaryBuffer, SendFlags, sendmsg};
    let mut flags = SendFlags::NOSIGNAL;
    if more {
        flags |= SendFlags::MORE;
    }
    sock.async_io(tokio::io::Interest::WRITABLE, || {
        sendmsg(sock, slices, &mut SendAncillaryBuffer::default(), flags)
            .map_err(std::io::Error::from)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    fn noise(seed: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 8) as u8)
            .collect()
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    fn span(file: &Arc<File>, offset: u64, len: u64) -> Chunk {
        Chunk::File(FileSpan {
            file: file.clone(),
            offset,
            len,
        })
    }

    /// Piece messages as the torrent task queues them: headers in memory, payloads as
    /// file ranges (one in two files), a small message between; and the bytes the peer
    /// must get. `extra` is appended to the chunks (and not to the expected bytes).
    fn messages(dir: &std::path::Path, extra: Vec<Chunk>) -> (Vec<Chunk>, Vec<u8>) {
        let (a, b) = (noise(1, 100_000), noise(2, 50_000));
        std::fs::write(dir.join("a"), &a).unwrap();
        std::fs::write(dir.join("b"), &b).unwrap();
        let fa = Arc::new(File::open(dir.join("a")).unwrap());
        let fb = Arc::new(File::open(dir.join("b")).unwrap());
        let mem = |x: &[u8]| Chunk::Mem(Bytes::copy_from_slice(x));
        let mut chunks = vec![
            mem(b"header-1"),
            span(&fa, 10, 60_000),
            mem(b"header-2"),
            span(&fa, 90_000, 10_000),
            span(&fb, 0, 20_000),
            mem(b"have"),
            mem(b"header-3"),
            span(&fb, 49_000, 1_000),
        ];
        let mut want = Vec::new();
        want.extend_from_slice(b"header-1");
        want.extend_from_slice(&a[10..60_010]);
        want.extend_from_slice(b"header-2");
        want.extend_from_slice(&a[90_000..]);
        want.extend_from_slice(&b[..20_000]);
        want.extend_from_slice(b"haveheader-3");
        want.extend_from_slice(&b[49_000..]);
        chunks.extend(extra);
        (chunks, want)
    }

    /// Runs a writer over `sink` with `chunks` queued in two handovers, reads
    /// everything the other end gets until the writer shuts its side down; returns the
    /// bytes and how often the writer said its backlog was drained.
    async fn run<W: AsyncWrite + Unpin + Send + 'static>(
        sink: Sink<W>,
        peer: TcpStream,
        chunks: Vec<Chunk>,
    ) -> (Vec<u8>, usize, usize) {
        run_with(sink, peer, chunks, false, |_| {}).await
    }

    /// [`run`], the writer mapping files if `map_files`; `meanwhile` is called once
    /// with the bytes received so far, after the first read.
    async fn run_with<W: AsyncWrite + Unpin + Send + 'static>(
        sink: Sink<W>,
        mut peer: TcpStream,
        mut chunks: Vec<Chunk>,
        map_files: bool,
        meanwhile: impl FnOnce(&[u8]),
    ) -> (Vec<u8>, usize, usize) {
        let total: usize = chunks.iter().map(Chunk::len).sum();
        let backlog = Arc::new(AtomicUsize::new(total));
        let notified = Arc::new(AtomicUsize::new(0));
        let n = notified.clone();
        let drained = Drained {
            backlog: backlog.clone(),
            low: 1000,
            notify: Box::new(move || {
                n.fetch_add(1, Ordering::Relaxed);
            }),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let rest = chunks.split_off(3);
        tx.send(chunks).unwrap();
        let writer = tokio::spawn(write_loop(
            sink,
            rx,
            RateLimiter::new(None),
            Some(drained),
            map_files,
        ));
        // Slow reads in small pieces: the writer meets a full socket many times.
        let mut got = Vec::new();
        let mut buf = [0u8; 1500];
        // The rest is handed over once the writer has started; then the channel
        // closes, and the writer ends after writing everything.
        let mut handover = Some((tx, rest));
        let mut meanwhile = Some(meanwhile);
        loop {
            let n = tokio::time::timeout(std::time::Duration::from_secs(20), peer.read(&mut buf))
                .await
                .expect("the writer stalled")
                .unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if let Some(f) = meanwhile.take() {
                f(&got);
            }
            if let Some((tx, rest)) = handover.take() {
                let _ = tx.send(rest);
            }
            if got.len() % 7 == 0 {
                tokio::task::yield_now().await;
            }
        }
        writer.await.unwrap();
        (
            got,
            backlog.load(Ordering::Relaxed),
            notified.load(Ordering::Relaxed),
        )
    }

    fn small_buffers(a: &TcpStream, b: &TcpStream) {
        socket2::SockRef::from(a)
            .set_send_buffer_size(4096)
            .unwrap();
        socket2::SockRef::from(b)
            .set_recv_buffer_size(4096)
            .unwrap();
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_socket_writer_sends_file_ranges_in_order_through_partial_sends() {
        socket_writer_in_order(false).await;
    }

    /// The messages through a socket writer with small buffers (many partial sends),
    /// file ranges sent with sendfile or from mapped windows.
    #[cfg(target_os = "linux")]
    async fn socket_writer_in_order(map_files: bool) {
        let dir = tempfile::tempdir().unwrap();
        let (chunks, want) = messages(dir.path(), Vec::new());
        let (a, b) = pair().await;
        small_buffers(&a, &b);
        let sink: Sink<tokio::net::tcp::OwnedWriteHalf> = Sink::Socket(a);
        let (got, backlog, notified) = run_with(sink, b, chunks, map_files, |_| {}).await;
        assert_eq!(got.len(), want.len());
        assert!(got == want, "the bytes differ");
        assert_eq!(backlog, 0);
        assert_eq!(notified, 1);
    }

    #[tokio::test]
    async fn the_stream_writer_reads_file_ranges_and_sends_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (chunks, want) = messages(dir.path(), Vec::new());
        let (a, b) = pair().await;
        small_buffers(&a, &b);
        let (_r, w) = a.into_split();
        let (got, backlog, notified) = run(Sink::Stream(w), b, chunks).await;
        assert!(got == want, "the bytes differ");
        assert_eq!(backlog, 0);
        assert_eq!(notified, 1);
    }

    /// A file range the file does not have in full (truncated under us): its header is
    /// out, so the connection is closed after the bytes before it; the peer never gets
    /// made-up bytes, and what follows is not sent.
    async fn a_short_file_closes<W: AsyncWrite + Unpin + Send + 'static>(
        sink: Sink<W>,
        peer: TcpStream,
        map_files: bool,
    ) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("short"), noise(3, 5000)).unwrap();
        let short = Arc::new(File::open(dir.path().join("short")).unwrap());
        let extra = vec![
            Chunk::Mem(Bytes::from_static(b"header-4")),
            span(&short, 4000, 2000),
            Chunk::Mem(Bytes::from_static(b"never")),
        ];
        let (chunks, mut want) = messages(dir.path(), extra);
        want.extend_from_slice(b"header-4");
        let (got, _, _) = run_with(sink, peer, chunks, map_files, |_| {}).await;
        // A partial sendfile may have sent some of the 1000 bytes that exist (a range
        // past the end of its file is never mapped: sendfile's path takes it).
        assert!(
            got.len() >= want.len() && got.len() <= want.len() + 1000,
            "{}",
            got.len()
        );
        assert!(got[..want.len()] == want[..], "the bytes differ");
        let tail = noise(3, 5000);
        assert!(got[want.len()..] == tail[4000..4000 + (got.len() - want.len())]);
    }

    #[tokio::test]
    async fn a_range_past_the_end_of_its_file_closes_a_stream_writer() {
        let (a, b) = pair().await;
        let (_r, w) = a.into_split();
        a_short_file_closes(Sink::Stream(w), b, false).await;
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_range_past_the_end_of_its_file_closes_a_socket_writer() {
        let (a, b) = pair().await;
        a_short_file_closes(Sink::<tokio::net::tcp::OwnedWriteHalf>::Socket(a), b, false).await;
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_mapping_writer_sends_file_ranges_in_order_through_partial_sends() {
        socket_writer_in_order(true).await;
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_range_past_the_end_of_its_file_closes_a_mapping_writer() {
        let (a, b) = pair().await;
        a_short_file_closes(Sink::<tokio::net::tcp::OwnedWriteHalf>::Socket(a), b, true).await;
    }

    /// A file cut short while a mapping writer is sending from it (its window mapped,
    /// the socket full): the process gets no SIGBUS, the peer gets only bytes the
    /// file had, and the connection closes.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_file_truncated_under_a_mapping_writer_closes_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let data = noise(4, 600_000);
        std::fs::write(dir.path().join("big"), &data).unwrap();
        let big = Arc::new(File::open(dir.path().join("big")).unwrap());
        let chunks = vec![
            Chunk::Mem(Bytes::from_static(b"h1")),
            span(&big, 0, 16_384),
            Chunk::Mem(Bytes::from_static(b"h2")),
            span(&big, 16_384, 500_000),
            Chunk::Mem(Bytes::from_static(b"never")),
        ];
        let (a, b) = pair().await;
        small_buffers(&a, &b);
        let sink: Sink<tokio::net::tcp::OwnedWriteHalf> = Sink::Socket(a);
        let path = dir.path().join("big");
        let (got, _, _) = run_with(sink, b, chunks, true, move |_| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(100_000)
                .unwrap();
        })
        .await;
        let mut whole = b"h1".to_vec();
        whole.extend_from_slice(&data[..16_384]);
        whole.extend_from_slice(b"h2");
        whole.extend_from_slice(&data[16_384..516_384]);
        assert!(
            got.len() < whole.len(),
            "{} bytes: the cut went unnoticed",
            got.len()
        );
        assert!(got[..] == whole[..got.len()], "the bytes differ");
        // Nothing past the cut (plus the 4 header bytes) was sent.
        assert!(got.len() <= 100_000 + 4, "{}", got.len());
    }
}
