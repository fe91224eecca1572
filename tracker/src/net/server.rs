//! The tracker server driver: UDP and HTTP front ends on one shared [`Swarms`].

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use crate::http::{
    encode_announce_reply, encode_failure, encode_scrape_reply, parse_announce_query,
    parse_scrape_query,
};
use crate::server::{PeerAnnounce, Reach, ServerConfig, Swarms};
use crate::udp::UdpServer;

use super::ws::{Io, WsShared, serve_upgraded, upgrade_key};

/// Where the server listens; `None` leaves a front end off. Port 0 picks a free port.
#[derive(Clone, Debug, Default)]
pub struct Listen {
    /// BEP 15 UDP.
    pub udp: Option<SocketAddr>,
    /// HTTP announce/scrape (`/announce`, `/scrape`; any path whose last segment is one of
    /// them) and, on the same port and any path, the WebSocket (WebTorrent) tracker.
    pub http: Option<SocketAddr>,
}

/// The failure reason sent to a client over [`ServerConfig::rate_limit`].
pub(crate) const RATE_LIMITED: &str = "rate limited: too many requests from this IP";

/// Most bytes of an HTTP request head the server reads.
pub const MAX_HTTP_REQUEST: usize = 8192;
/// How long an HTTP client may take to send its request.
pub const HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A running tracker server. Dropping it stops every task.
#[derive(Debug)]
pub struct TrackerServer {
    swarms: Arc<Mutex<Swarms>>,
    udp: Option<SocketAddr>,
    http: Option<SocketAddr>,
    tls: bool,
    tasks: Vec<JoinHandle<()>>,
}

#[cfg(feature = "tls")]
type Acceptor = tokio_rustls::TlsAcceptor;
#[cfg(not(feature = "tls"))]
type Acceptor = std::convert::Infallible;

fn lock(s: &Mutex<Swarms>) -> MutexGuard<'_, Swarms> {
    // A panic while holding the lock cannot leave the swarm state half-updated in a way that
    // matters more than stopping the tracker would: keep serving.
    s.lock().unwrap_or_else(|e| e.into_inner())
}

impl TrackerServer {
    /// Bind the listed sockets and start serving.
    pub async fn bind(config: ServerConfig, listen: Listen) -> io::Result<Self> {
        Self::start(config, listen, None).await
    }

    /// As [`bind`](Self::bind), with TLS on the HTTP listener: it then serves `https://`
    /// announces and scrapes and `wss://` (see [`server_config`](super::server_config) to
    /// load a PEM certificate and key). A TLS handshake gets [`HTTP_REQUEST_TIMEOUT`].
    #[cfg(feature = "tls")]
    pub async fn bind_tls(
        config: ServerConfig,
        listen: Listen,
        tls: Arc<rustls::ServerConfig>,
    ) -> io::Result<Self> {
        Self::start(config, listen, Some(tokio_rustls::TlsAcceptor::from(tls))).await
    }

    async fn start(
        config: ServerConfig,
        listen: Listen,
        tls: Option<Acceptor>,
    ) -> io::Result<Self> {
        let expire_every =
            (config.peer_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
        let max_connections = config.max_connections.max(1);
        let swarms = Arc::new(Mutex::new(Swarms::new(config)));
        let ws = Arc::new(WsShared::new(swarms.clone()));
        let has_tls = tls.is_some();
        let mut tasks = Vec::new();
        let mut udp = None;
        let mut http = None;
        if let Some(addr) = listen.udp {
            let socket = UdpSocket::bind(addr).await?;
            udp = Some(socket.local_addr()?);
            let secret: [u8; 16] = rand::rng().random();
            let front = UdpServer::new(Instant::now(), secret);
            tasks.push(tokio::spawn(serve_udp(socket, front, swarms.clone())));
        }
        if let Some(addr) = listen.http {
            let listener = TcpListener::bind(addr).await?;
            http = Some(listener.local_addr()?);
            tasks.push(tokio::spawn(serve_http(
                listener,
                swarms.clone(),
                ws.clone(),
                Arc::new(tokio::sync::Semaphore::new(max_connections)),
                tls,
            )));
        }
        let w = ws.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(expire_every);
            loop {
                tick.tick().await;
                w.expire(Instant::now());
            }
        }));
        Ok(TrackerServer {
            swarms,
            tls: has_tls,
            udp,
            http,
            tasks,
        })
    }

    /// The UDP address, if listening.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp
    }

    /// The HTTP address, if listening.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http
    }

    /// The WebSocket tracker URL (`ws://` on the HTTP port, `wss://` with TLS), if HTTP is on.
    pub fn ws_url(&self) -> Option<String> {
        let scheme = if self.tls { "wss" } else { "ws" };
        self.http.map(|a| format!("{scheme}://{a}/announce"))
    }

    /// The announce URL of the HTTP listener (`http://` or, with TLS, `https://`), if on.
    pub fn http_url(&self) -> Option<String> {
        let scheme = if self.tls { "https" } else { "http" };
        self.http.map(|a| format!("{scheme}://{a}/announce"))
    }

    /// Peers reachable over WebSocket, over all swarms.
    pub fn ws_peer_count(&self) -> usize {
        lock(&self.swarms).ws_peer_count()
    }

    /// The shared swarm state (for statistics; hold the lock briefly).
    pub fn swarms(&self) -> Arc<Mutex<Swarms>> {
        self.swarms.clone()
    }
}

impl Drop for TrackerServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Datagrams answered in a row before the UDP task lets other tasks run; also the most
/// datagrams taken or sent by one `recvmmsg`/`sendmmsg` call.
const UDP_BATCH: usize = 32;

/// Largest datagram read: anything longer is cut (and then fails to decode as a request).
const UDP_BUF: usize = 2048;

/// Linux: take up to [`UDP_BATCH`] datagrams per `recvmmsg` and send the replies with one
/// `sendmmsg`, through nix's safe wrappers: far fewer system calls per announce.
#[cfg(target_os = "linux")]
async fn serve_udp(socket: UdpSocket, front: UdpServer, swarms: Arc<Mutex<Swarms>>) {
    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
    use std::io::{IoSlice, IoSliceMut};
    use std::os::fd::AsRawFd;
    use tokio::io::Interest;

    let fd = socket.as_raw_fd();
    let mut bufs = vec![[0u8; UDP_BUF]; UDP_BATCH];
    let mut replies: Vec<Vec<u8>> = (0..UDP_BATCH)
        .map(|_| Vec::with_capacity(UDP_BUF))
        .collect();
    let mut received: Vec<(usize, Option<SocketAddr>)> = Vec::with_capacity(UDP_BATCH);
    let mut to_send: Vec<(usize, SocketAddr)> = Vec::with_capacity(UDP_BATCH);
    loop {
        if socket.readable().await.is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        received.clear();
        let got = socket.try_io(Interest::READABLE, || {
            // nix's headers hold raw pointers (not Send): made per call, never across an await.
            let mut recv_headers = MultiHeaders::<SockaddrStorage>::preallocate(UDP_BATCH, None);
            let mut slices: Vec<[IoSliceMut<'_>; 1]> =
                bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
            let r = recvmmsg(
                fd,
                &mut recv_headers,
                slices.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            )?;
            for m in r {
                let from = m.address.and_then(|a: SockaddrStorage| {
                    if let Some(v4) = a.as_sockaddr_in() {
                        Some(SocketAddr::V4((*v4).into()))
                    } else {
                        a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
                    }
                });
                received.push((m.bytes, from));
            }
            Ok(())
        });
        match got {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            // ICMP errors from earlier sends and the like: keep going.
            Err(_) => continue,
        }
        to_send.clear();
        {
            let now = Instant::now();
            let mut s = lock(&swarms);
            for (i, &(n, from)) in received.iter().enumerate() {
                let Some(from) = from else { continue };
                let out = &mut replies[i];
                out.clear();
                front.handle_datagram(&mut s, now, from, &bufs[i][..n.min(UDP_BUF)], out);
                if !out.is_empty() {
                    to_send.push((i, from));
                }
            }
        }
        let mut sent = 0;
        while sent < to_send.len() {
            let batch = &to_send[sent..];
            let r = socket.try_io(Interest::WRITABLE, || {
                let addrs: Vec<Option<SockaddrStorage>> = batch
                    .iter()
                    .map(|(_, a)| Some(SockaddrStorage::from(*a)))
                    .collect();
                let slices: Vec<[IoSlice<'_>; 1]> = batch
                    .iter()
                    .map(|(i, _)| [IoSlice::new(&replies[*i])])
                    .collect();
                let mut send_headers =
                    MultiHeaders::<SockaddrStorage>::preallocate(batch.len(), None);
                let n = sendmmsg(
                    fd,
                    &mut send_headers,
                    &slices,
                    &addrs,
                    [],
                    MsgFlags::empty(),
                )?
                .count();
                Ok(n)
            });
            match r {
                Ok(0) => break,
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The send buffer is full: wait for room, one datagram at a time.
                    let (i, to) = to_send[sent];
                    let _ = socket.send_to(&replies[i], to).await;
                    sent += 1;
                }
                // A reply that cannot be sent is a lost datagram: the client retries. Skip
                // the one the kernel refused.
                Err(_) => sent += 1,
            }
        }
        tokio::task::yield_now().await;
    }
}

/// Other systems: one datagram per system call.
#[cfg(not(target_os = "linux"))]
async fn serve_udp(socket: UdpSocket, front: UdpServer, swarms: Arc<Mutex<Swarms>>) {
    let mut buf = vec![0u8; UDP_BUF];
    let mut out = Vec::with_capacity(UDP_BUF);
    loop {
        if socket.readable().await.is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        // Drain what the socket holds without going back to the reactor per datagram.
        for _ in 0..UDP_BATCH {
            let (n, from) = match socket.try_recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // ICMP errors from earlier sends, or a truncated datagram: keep going.
                Err(_) => continue,
            };
            out.clear();
            front.handle_datagram(
                &mut lock(&swarms),
                Instant::now(),
                from,
                &buf[..n],
                &mut out,
            );
            if out.is_empty() {
                continue;
            }
            match socket.try_send_to(&out, from) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let _ = socket.send_to(&out, from).await;
                }
                // A reply that cannot be sent is a lost datagram: the client retries.
                _ => {}
            }
        }
        tokio::task::yield_now().await;
    }
}

async fn serve_http(
    listener: TcpListener,
    swarms: Arc<Mutex<Swarms>>,
    ws: Arc<WsShared>,
    slots: Arc<tokio::sync::Semaphore>,
    tls: Option<Acceptor>,
) {
    loop {
        // Never closed, so acquiring only waits.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, from)) = listener.accept().await else {
            // Out of file descriptors and the like: back off a little.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let swarms = swarms.clone();
        let ws = ws.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => {
                    let _ = http_connection(stream, from, swarms, ws).await;
                }
                #[cfg(feature = "tls")]
                Some(acceptor) => {
                    let accepted =
                        tokio::time::timeout(HTTP_REQUEST_TIMEOUT, acceptor.accept(stream)).await;
                    if let Ok(Ok(stream)) = accepted {
                        let _ = http_connection(stream, from, swarms, ws).await;
                    }
                }
                #[cfg(not(feature = "tls"))]
                Some(never) => match never {},
            }
            drop(slot);
        });
    }
}

async fn http_connection<S: Io + 'static>(
    mut stream: S,
    from: SocketAddr,
    swarms: Arc<Mutex<Swarms>>,
    ws: Arc<WsShared>,
) -> io::Result<()> {
    let read_head = async {
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 2048];
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok::<_, io::Error>(None);
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                return Ok(Some((buf, end + 4)));
            }
            if buf.len() > MAX_HTTP_REQUEST {
                return Ok(Some((buf, 0)));
            }
        }
    };
    let Ok(head) = tokio::time::timeout(HTTP_REQUEST_TIMEOUT, read_head).await else {
        return Ok(());
    };
    let Some((buf, end)) = head? else {
        return Ok(());
    };
    if end == 0 {
        return respond(&mut stream, 431, b"request too large").await;
    }
    let key = std::str::from_utf8(&buf[..end])
        .ok()
        .and_then(upgrade_key)
        .map(str::to_owned);
    if let Some(key) = key {
        let rest = buf[end..].to_vec();
        return serve_upgraded(stream, from, &key, rest, ws).await;
    }
    let (status, body) = handle_http_request(&buf[..end], from, &swarms);
    tokio::time::timeout(HTTP_REQUEST_TIMEOUT, respond(&mut stream, status, &body))
        .await
        .unwrap_or(Ok(()))
}

/// Answer one HTTP request head: `(status, body)`. Tracker-level problems are a 200 with a
/// `failure reason`; only a request that is not HTTP gets 400 and an unknown path 404.
fn handle_http_request(head: &[u8], from: SocketAddr, swarms: &Mutex<Swarms>) -> (u16, Vec<u8>) {
    let line_end = head.iter().position(|&b| b == b'\r').unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return (400, encode_failure("request line is not UTF-8"));
    };
    let mut parts = line.split(' ');
    let (Some("GET"), Some(target)) = (parts.next(), parts.next()) else {
        return (400, encode_failure("only GET is supported"));
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let last = path.rsplit('/').next().unwrap_or("");
    if !lock(swarms).check_rate(Instant::now(), from.ip()) {
        return (200, encode_failure(RATE_LIMITED));
    }
    match last {
        "announce" => {
            let q = match parse_announce_query(query) {
                Ok(q) => q,
                Err(e) => return (200, encode_failure(&e.to_string())),
            };
            let req = PeerAnnounce {
                info_hash: q.info_hash,
                peer_id: q.peer_id,
                reach: Reach::Addr(SocketAddr::new(from.ip().to_canonical(), q.port)),
                left: q.left,
                event: q.event,
                numwant: q.numwant.map(|n| n as usize),
                key: q.key,
                family: None,
            };
            let r = lock(swarms).announce(Instant::now(), &req);
            match r {
                Ok(r) => (200, encode_announce_reply(&r, q.compact, q.no_peer_id)),
                Err(e) => (200, encode_failure(&e.to_string())),
            }
        }
        "scrape" => match parse_scrape_query(query) {
            Ok(hashes) => {
                let s = lock(swarms);
                let files: Vec<_> = hashes.iter().map(|h| (*h, s.stats(h))).collect();
                drop(s);
                (200, encode_scrape_reply(&files))
            }
            Err(e) => (200, encode_failure(&e.to_string())),
        },
        _ => (404, encode_failure("not found: use /announce or /scrape")),
    }
}

async fn respond<S: Io>(stream: &mut S, status: u16, body: &[u8]) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Request Header Fields Too Large",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_http_requests_get_failures() {
        let swarms = Mutex::new(Swarms::new(ServerConfig::default()));
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap();
        for (head, status) in [
            (&b"POST / HTTP/1.1\r\n\r\n"[..], 400),
            (b"GET /x HTTP/1.1\r\n\r\n", 404),
            (b"GET /announce?info_hash=%zz HTTP/1.1\r\n\r\n", 200),
            (b"\xff\xfe\r\n\r\n", 400),
            (b"GET /scrape?info_hash=1 HTTP/1.1\r\n\r\n", 200),
        ] {
            let (s, body) = handle_http_request(head, from, &swarms);
            assert_eq!(s, status);
            assert!(matches!(
                crate::http::parse_announce_response(&body),
                Err(crate::http::HttpResponseError::Failure(_))
            ));
        }
    }
}
