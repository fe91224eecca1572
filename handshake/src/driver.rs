//! The tokio driver: runs the handshake (and MSE) over any `AsyncRead + AsyncWrite`,
//! and a TCP listener that routes incoming connections by info hash.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::BytesMut;
use metainfo::InfoHashV1;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::error::HandshakeError;
use crate::machine::{Config, Established, Incoming, Outgoing, Step};
use crate::mse::{self, CRYPTO_PLAINTEXT, CRYPTO_RC4, Initiator, MseStep, Responder};
use crate::stream::PeerStream;
use crate::wire::PROTOCOL;

/// Whether connections use Message Stream Encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncryptionPolicy {
    /// Plaintext only: never start MSE, refuse incoming MSE.
    Disabled,
    /// Plaintext out; accept incoming MSE, selecting plaintext when offered.
    #[default]
    Enabled,
    /// MSE out offering RC4 and plaintext; accept both in, selecting RC4.
    Preferred,
    /// MSE with RC4 only, both ways; refuse plaintext handshakes.
    Required,
}

/// Everything the driver needs to handshake.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Our peer id and extension bits.
    pub config: Config,
    /// The MSE policy.
    pub encryption: EncryptionPolicy,
    /// Deadline for the whole handshake (TCP connect included where it applies).
    pub timeout: Duration,
}

impl Options {
    /// Options with [`EncryptionPolicy::Enabled`] and a 20-second timeout.
    pub fn new(config: Config) -> Self {
        Options {
            config,
            encryption: EncryptionPolicy::Enabled,
            timeout: Duration::from_secs(20),
        }
    }
}

/// Why the driver could not establish a connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The peer's handshake was wrong.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The peer sent a plaintext handshake but our policy requires encryption.
    #[error("peer sent a plaintext handshake, but encryption is required")]
    PlaintextRefused,
    /// The handshake did not complete in time.
    #[error("handshake timed out after {0:?}")]
    Timeout(Duration),
    /// The peer closed the connection mid-handshake.
    #[error("connection closed during the handshake after {received} bytes")]
    Closed {
        /// Bytes received before the close.
        received: usize,
    },
    /// The transport failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

impl From<mse::MseError> for ConnectError {
    fn from(e: mse::MseError) -> Self {
        ConnectError::Handshake(e.into())
    }
}

/// An established, identified peer connection.
#[derive(Debug)]
pub struct PeerConnection<T> {
    /// The transport, positioned after the handshake (bytes that arrived with it are
    /// replayed first); decrypts and encrypts if MSE selected RC4.
    pub stream: PeerStream<T>,
    /// Who the peer is.
    pub established: Established,
    /// The peer's address, when the transport has one.
    pub peer_addr: Option<SocketAddr>,
}

/// The torrents a node serves, looked up by info hash and by MSE's obfuscated hash.
pub trait Served {
    /// Whether this node serves `info_hash`.
    fn serves(&self, info_hash: &InfoHashV1) -> bool;
    /// The torrent whose `HASH('req2', info_hash)` is `req2` (see [`mse::req2_hash`]).
    fn find_req2(&self, req2: &[u8; 20]) -> Option<InfoHashV1>;
}

/// A set of info hashes implementing [`Served`].
#[derive(Debug, Clone, Default)]
pub struct InfoHashSet {
    by_req2: HashMap<[u8; 20], InfoHashV1>,
}

impl InfoHashSet {
    /// An empty set.
    pub fn new() -> Self {
        InfoHashSet::default()
    }
    /// Adds a torrent.
    pub fn insert(&mut self, info_hash: InfoHashV1) {
        self.by_req2.insert(mse::req2_hash(&info_hash), info_hash);
    }
    /// Removes a torrent.
    pub fn remove(&mut self, info_hash: &InfoHashV1) {
        self.by_req2.remove(&mse::req2_hash(info_hash));
    }
}

impl FromIterator<InfoHashV1> for InfoHashSet {
    fn from_iter<I: IntoIterator<Item = InfoHashV1>>(iter: I) -> Self {
        let mut s = InfoHashSet::new();
        for ih in iter {
            s.insert(ih);
        }
        s
    }
}

impl Served for InfoHashSet {
    fn serves(&self, info_hash: &InfoHashV1) -> bool {
        self.by_req2.get(&mse::req2_hash(info_hash)) == Some(info_hash)
    }
    fn find_req2(&self, req2: &[u8; 20]) -> Option<InfoHashV1> {
        self.by_req2.get(req2).copied()
    }
}

const READ_CHUNK: usize = 4096;

/// Reads more bytes into `buf`; a clean close is an error mid-handshake.
async fn read_more<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    received: &mut usize,
) -> Result<(), ConnectError> {
    buf.reserve(READ_CHUNK);
    let n = r.read_buf(buf).await?;
    if n == 0 {
        return Err(ConnectError::Closed {
            received: *received,
        });
    }
    *received += n;
    Ok(())
}

/// Most bytes buffered from the peer while one of our writes is blocked.
const MAX_BUFFERED: usize = 64 * 1024;

/// Writes `data` while reading whatever the peer sends meanwhile into `buf`, so that a
/// transport with small buffers cannot deadlock with both sides writing (MSE has both
/// sides send up to 608 bytes at once).
async fn write_reading<T: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut T,
    mut data: &[u8],
    buf: &mut BytesMut,
    received: &mut usize,
) -> Result<(), ConnectError> {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut eof = false;
    while !data.is_empty() {
        if buf.capacity() == buf.len() {
            buf.reserve(READ_CHUNK);
        }
        tokio::select! {
            n = wr.write(data) => {
                let n = n?;
                if n == 0 {
                    return Err(io::Error::from(io::ErrorKind::WriteZero).into());
                }
                data = &data[n..];
            }
            n = rd.read_buf(buf), if !eof && buf.len() < MAX_BUFFERED => {
                let n = n?;
                eof = n == 0;
                *received += n;
            }
        }
    }
    wr.flush().await?;
    Ok(())
}

async fn with_timeout<F, O>(d: Duration, f: F) -> Result<O, ConnectError>
where
    F: Future<Output = Result<O, ConnectError>>,
{
    tokio::time::timeout(d, f)
        .await
        .unwrap_or(Err(ConnectError::Timeout(d)))
}

/// Runs our side of a connection we opened, over `stream`, for `info_hash`.
///
/// With [`EncryptionPolicy::Preferred`] or [`Required`](EncryptionPolicy::Required) it
/// starts with MSE (sending our handshake as the initial payload); otherwise it sends a
/// plaintext handshake.
pub async fn connect<T>(
    stream: T,
    options: &Options,
    info_hash: InfoHashV1,
) -> Result<PeerConnection<T>, ConnectError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    with_timeout(
        options.timeout,
        connect_inner(stream, options, info_hash, None),
    )
    .await
}

async fn connect_inner<T>(
    mut stream: T,
    options: &Options,
    info_hash: InfoHashV1,
    expected: Option<crate::wire::PeerId>,
) -> Result<PeerConnection<T>, ConnectError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut out = Outgoing::new(&options.config, info_hash);
    if let Some(id) = expected {
        out = out.expect_peer_id(id);
    }
    let ours = out.poll_transmit().unwrap_or([0; 68]);
    let mut received = 0;
    let mut stream = match options.encryption {
        EncryptionPolicy::Disabled | EncryptionPolicy::Enabled => {
            let mut buf = BytesMut::new();
            write_reading(&mut stream, &ours, &mut buf, &mut received).await?;
            PeerStream::new(stream, None, buf)
        }
        EncryptionPolicy::Preferred | EncryptionPolicy::Required => {
            let provide = if options.encryption == EncryptionPolicy::Required {
                CRYPTO_RC4
            } else {
                CRYPTO_RC4 | CRYPTO_PLAINTEXT
            };
            let mut init = Initiator::new(info_hash, provide, &ours, &mut rand::rng());
            let mut buf = BytesMut::new();
            loop {
                if let Some(t) = init.poll_transmit() {
                    write_reading(&mut stream, &t, &mut buf, &mut received).await?;
                }
                if buf.is_empty() {
                    read_more(&mut stream, &mut buf, &mut received).await?;
                }
                let (step, used) = init.handle_input(&buf)?;
                let _ = buf.split_to(used);
                match step {
                    MseStep::NeedMore(i) => init = i,
                    MseStep::Done(mut n) => {
                        if let Some(c) = n.cipher.as_mut() {
                            c.decrypt.apply(&mut buf);
                        }
                        break PeerStream::new(stream, n.cipher, buf);
                    }
                }
            }
        }
    };
    let mut buf = BytesMut::new();
    loop {
        if buf.is_empty() {
            read_more(&mut stream, &mut buf, &mut received).await?;
        }
        let (step, used) = out.handle_input(&buf)?;
        let _ = buf.split_to(used);
        match step {
            Step::NeedMore(o) => out = o,
            Step::Done(established) => {
                stream.unread(&buf);
                return Ok(PeerConnection {
                    stream,
                    established,
                    peer_addr: None,
                });
            }
        }
    }
}

/// Runs our side of a connection a peer opened, accepting the torrents in `served`.
///
/// Detects MSE by the first 20 bytes, and applies the encryption policy.
pub async fn accept<T, S>(
    stream: T,
    options: &Options,
    served: &S,
) -> Result<PeerConnection<T>, ConnectError>
where
    T: AsyncRead + AsyncWrite + Unpin,
    S: Served + ?Sized,
{
    with_timeout(options.timeout, accept_inner(stream, options, served)).await
}

async fn accept_inner<T, S>(
    mut stream: T,
    options: &Options,
    served: &S,
) -> Result<PeerConnection<T>, ConnectError>
where
    T: AsyncRead + AsyncWrite + Unpin,
    S: Served + ?Sized,
{
    let mut received = 0;
    let mut buf = BytesMut::new();
    while buf.len() < 20 {
        read_more(&mut stream, &mut buf, &mut received).await?;
    }
    let plaintext = buf[0] == 19 && &buf[1..20] == PROTOCOL;
    let mut stream = if plaintext || options.encryption == EncryptionPolicy::Disabled {
        if plaintext && options.encryption == EncryptionPolicy::Required {
            return Err(ConnectError::PlaintextRefused);
        }
        PeerStream::new(stream, None, buf)
    } else {
        let (allowed, prefer_rc4) = match options.encryption {
            EncryptionPolicy::Required => (CRYPTO_RC4, true),
            EncryptionPolicy::Preferred => (CRYPTO_RC4 | CRYPTO_PLAINTEXT, true),
            _ => (CRYPTO_RC4 | CRYPTO_PLAINTEXT, false),
        };
        let mut resp = Responder::new(allowed, prefer_rc4, &mut rand::rng());
        loop {
            if buf.is_empty() {
                read_more(&mut stream, &mut buf, &mut received).await?;
            }
            let (step, used) = resp.handle_input(&buf, |r| served.find_req2(r))?;
            let _ = buf.split_to(used);
            match step {
                MseStep::NeedMore(mut r) => {
                    if let Some(t) = r.poll_transmit() {
                        write_reading(&mut stream, &t, &mut buf, &mut received).await?;
                    }
                    resp = r;
                }
                MseStep::Done(mut n) => {
                    write_reading(&mut stream, &n.to_send, &mut buf, &mut received).await?;
                    if let Some(c) = n.cipher.as_mut() {
                        c.decrypt.apply(&mut buf);
                    }
                    let mut prefix = BytesMut::from(&n.initial_payload[..]);
                    prefix.extend_from_slice(&buf);
                    break PeerStream::new(stream, n.cipher, prefix);
                }
            }
        }
    };
    let mut inc = Incoming::new(&options.config);
    let mut buf = BytesMut::new();
    loop {
        if buf.is_empty() {
            read_more(&mut stream, &mut buf, &mut received).await?;
        }
        let (step, used) = inc.handle_input(&buf, |ih| served.serves(ih))?;
        let _ = buf.split_to(used);
        match step {
            Step::NeedMore(mut i) => {
                if let Some(t) = i.poll_transmit() {
                    write_reading(&mut stream, &t, &mut buf, &mut received).await?;
                }
                inc = i;
            }
            Step::Done(established) => {
                stream.unread(&buf);
                return Ok(PeerConnection {
                    stream,
                    established,
                    peer_addr: None,
                });
            }
        }
    }
}

/// Opens a TCP connection to `addr` and handshakes for `info_hash`, all within the
/// timeout. `expected` is the peer id a tracker announced, if any.
pub async fn connect_tcp(
    addr: SocketAddr,
    options: &Options,
    info_hash: InfoHashV1,
    expected: Option<crate::wire::PeerId>,
) -> Result<PeerConnection<TcpStream>, ConnectError> {
    with_timeout(options.timeout, async {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let mut c = connect_inner(tcp, options, info_hash, expected).await?;
        c.peer_addr = Some(addr);
        Ok(c)
    })
    .await
}

type Route = mpsc::Sender<PeerConnection<TcpStream>>;

#[derive(Debug, Default)]
struct Routes {
    by_hash: HashMap<InfoHashV1, Route>,
    set: InfoHashSet,
}

#[derive(Debug, Clone, Default)]
struct SharedRoutes(Arc<RwLock<Routes>>);

impl Served for SharedRoutes {
    fn serves(&self, info_hash: &InfoHashV1) -> bool {
        self.0
            .read()
            .is_ok_and(|r| r.by_hash.contains_key(info_hash))
    }
    fn find_req2(&self, req2: &[u8; 20]) -> Option<InfoHashV1> {
        self.0.read().ok().and_then(|r| r.set.find_req2(req2))
    }
}

/// Accepts TCP peers, handshakes with them, and hands each established connection to
/// the torrent it asked for.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use metainfo::InfoHashV1;
/// use rivulet_handshake::{Config, Listener, Options, PeerId, connect_tcp};
///
/// let ih = InfoHashV1([3; 20]);
/// let listener = Listener::bind("127.0.0.1:0".parse()?, Options::new(Config::new(PeerId([b's'; 20])))).await?;
/// let mut incoming = listener.register(ih, 8);
/// let addr = listener.local_addr()?;
/// tokio::spawn(listener.run());
///
/// let client = Options::new(Config::new(PeerId([b'c'; 20])));
/// let out = connect_tcp(addr, &client, ih, None).await?;
/// assert_eq!(out.established.peer_id, PeerId([b's'; 20]));
/// let inc = incoming.recv().await.unwrap();
/// assert_eq!(inc.established.peer_id, PeerId([b'c'; 20]));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
    options: Options,
    routes: SharedRoutes,
    max_pending: usize,
}

/// How many incoming handshakes a [`Listener`] runs at once by default; further
/// connections wait in the accept queue.
pub const DEFAULT_MAX_PENDING: usize = 128;

impl Listener {
    /// Binds a TCP listener.
    pub async fn bind(addr: SocketAddr, options: Options) -> io::Result<Listener> {
        Ok(Listener {
            tcp: TcpListener::bind(addr).await?,
            options,
            routes: SharedRoutes::default(),
            max_pending: DEFAULT_MAX_PENDING,
        })
    }

    /// Sets how many incoming handshakes run at once (default [`DEFAULT_MAX_PENDING`]).
    pub fn max_pending(mut self, n: usize) -> Self {
        self.max_pending = n.max(1);
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Serves `info_hash` from now on: its established connections arrive on the
    /// returned channel (connections are dropped when it is full or closed).
    pub fn register(
        &self,
        info_hash: InfoHashV1,
        capacity: usize,
    ) -> mpsc::Receiver<PeerConnection<TcpStream>> {
        self.registrar().register(info_hash, capacity)
    }

    /// Stops serving `info_hash`.
    pub fn unregister(&self, info_hash: &InfoHashV1) {
        self.registrar().unregister(info_hash)
    }

    /// A handle that can register torrents after [`run`](Self::run) took the listener.
    pub fn registrar(&self) -> Registrar {
        Registrar {
            routes: self.routes.clone(),
        }
    }

    /// Accepts connections until the listening socket fails; each handshake runs in its
    /// own task. Failed handshakes are dropped.
    pub async fn run(self) -> io::Result<()> {
        let permits = Arc::new(tokio::sync::Semaphore::new(self.max_pending));
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return Ok(());
            };
            let (tcp, addr) = self.tcp.accept().await?;
            let routes = self.routes.clone();
            let options = self.options;
            tokio::spawn(async move {
                let _permit = permit;
                let _ = tcp.set_nodelay(true);
                let Ok(mut conn) = accept(tcp, &options, &routes).await else {
                    return;
                };
                conn.peer_addr = Some(addr);
                let tx = routes
                    .0
                    .read()
                    .ok()
                    .and_then(|r| r.by_hash.get(&conn.established.info_hash).cloned());
                if let Some(tx) = tx {
                    let _ = tx.try_send(conn);
                }
            });
        }
    }
}

/// Registers torrents with a running [`Listener`].
#[derive(Debug, Clone)]
pub struct Registrar {
    routes: SharedRoutes,
}

impl Registrar {
    /// See [`Listener::register`].
    pub fn register(
        &self,
        info_hash: InfoHashV1,
        capacity: usize,
    ) -> mpsc::Receiver<PeerConnection<TcpStream>> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        if let Ok(mut r) = self.routes.0.write() {
            r.by_hash.insert(info_hash, tx);
            r.set.insert(info_hash);
        }
        rx
    }
    /// See [`Listener::unregister`].
    pub fn unregister(&self, info_hash: &InfoHashV1) {
        if let Ok(mut r) = self.routes.0.write() {
            r.by_hash.remove(info_hash);
            r.set.remove(info_hash);
        }
    }
}

/// A peer found by a discovery service, for [`BtHandshaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerContact {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The torrent to ask for.
    pub info_hash: InfoHashV1,
    /// The peer id a tracker announced, to be checked.
    pub peer_id: Option<crate::wire::PeerId>,
}

/// The standard BitTorrent [`Handshaker`](crate::Handshaker) over TCP.
#[derive(Debug, Clone, Copy)]
pub struct BtHandshaker {
    /// Our handshake options.
    pub options: Options,
}

impl crate::Handshaker for BtHandshaker {
    type Contact = PeerContact;
    type Connection = PeerConnection<TcpStream>;
    type Error = ConnectError;

    async fn handshake(&self, c: PeerContact) -> Result<Self::Connection, ConnectError> {
        connect_tcp(c.addr, &self.options, c.info_hash, c.peer_id).await
    }
}

/// The receiving end of [`spawn_handshaker`]: one result per contact.
pub type HandshakeResults<H> =
    mpsc::Receiver<Result<<H as crate::Handshaker>::Connection, <H as crate::Handshaker>::Error>>;

/// Runs `handshaker` in a task: contacts sent on the returned sender are handshaken, at
/// most `max_in_flight` at a time, and the results arrive on the returned receiver.
/// The task ends when every sender is dropped and all handshakes are done.
pub fn spawn_handshaker<H: crate::Handshaker>(
    handshaker: H,
    max_in_flight: usize,
) -> (mpsc::Sender<H::Contact>, HandshakeResults<H>) {
    let max = max_in_flight.max(1);
    let (contact_tx, mut contact_rx) = mpsc::channel::<H::Contact>(max);
    let (conn_tx, conn_rx) = mpsc::channel(max);
    let handshaker = Arc::new(handshaker);
    let permits = Arc::new(tokio::sync::Semaphore::new(max));
    tokio::spawn(async move {
        while let Some(contact) = contact_rx.recv().await {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let h = handshaker.clone();
            let tx = conn_tx.clone();
            tokio::spawn(async move {
                let result = h.handshake(contact).await;
                let _ = tx.send(result).await;
                drop(permit);
            });
        }
    });
    (contact_tx, conn_rx)
}
