//! The byte stream of an established connection: replays bytes read during the
//! handshake, and applies RC4 if MSE selected it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::mse::Cipher;

/// Largest chunk encrypted into the write buffer per `poll_write`.
const MAX_WRITE_CHUNK: usize = 64 * 1024;

/// An established connection's transport: `AsyncRead + AsyncWrite` over `T`, first
/// yielding any bytes that arrived with the handshake, and encrypting/decrypting with
/// RC4 when MSE negotiated it.
#[derive(Debug)]
pub struct PeerStream<T> {
    inner: T,
    cipher: Option<Cipher>,
    /// Received, already decrypted, not yet read.
    prefix: BytesMut,
    /// Encrypted, accepted from the caller, not yet written to `inner`.
    pending: BytesMut,
}

impl<T> PeerStream<T> {
    pub(crate) fn new(inner: T, cipher: Option<Cipher>, prefix: BytesMut) -> Self {
        PeerStream {
            inner,
            cipher,
            prefix,
            pending: BytesMut::new(),
        }
    }

    /// Puts bytes back in front of what is still to be read.
    pub(crate) fn unread(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let mut b = BytesMut::with_capacity(data.len() + self.prefix.len());
        b.extend_from_slice(data);
        b.extend_from_slice(&self.prefix);
        self.prefix = b;
    }

    /// Whether the stream is RC4-encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.cipher.is_some()
    }

    /// The underlying transport.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Bytes received during the handshake that have not been read yet.
    pub fn buffered(&self) -> &[u8] {
        &self.prefix
    }
}

impl<T: AsyncWrite + Unpin> PeerStream<T> {
    /// Writes out `pending`; `Ready(Ok)` once it is empty.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for PeerStream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if let Some(c) = this.cipher.as_mut() {
            c.decrypt.apply(&mut buf.filled_mut()[before..]);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for PeerStream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.cipher.is_none() {
            return Pin::new(&mut this.inner).poll_write(cx, data);
        }
        ready!(this.poll_drain(cx))?;
        let n = data.len().min(MAX_WRITE_CHUNK);
        let start = this.pending.len();
        this.pending.extend_from_slice(&data[..n]);
        if let Some(c) = this.cipher.as_mut() {
            c.encrypt.apply(&mut this.pending[start..]);
        }
        // Start writing now; what does not fit is written by the next call or flush.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    /// Plaintext: the transport's own vectored write (one `writev` for many buffers).
    /// Encrypted: the first non-empty buffer, as `poll_write`.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.cipher.is_none() {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &**b);
        Pin::new(this).poll_write(cx, first)
    }

    fn is_write_vectored(&self) -> bool {
        self.cipher.is_none() && self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
