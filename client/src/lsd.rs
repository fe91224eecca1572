//! Local service discovery (BEP 14): finding peers of the same torrents on the local
//! network by UDP multicast.
//!
//! Every [`LsdConfig::interval`] (and soon after a torrent is added), the session sends,
//! for each of its public torrents, a datagram to the multicast group
//! (`239.192.152.143:6771`, and `[ff15::efc0:988f]:6771` when IPv6 multicast works):
//!
//! ```text
//! BT-SEARCH * HTTP/1.1\r\n
//! Host: 239.192.152.143:6771\r\n
//! Port: 6881\r\n
//! Infohash: 0123456789abcdef0123456789abcdef01234567\r\n
//! cookie: 5f3a9c\r\n
//! \r\n
//! \r\n
//! ```
//!
//! and it hears others' announces on the group: the sender's IP with the `Port` header is
//! a peer of each announced torrent it runs. Announces carrying our own cookie are
//! ignored. Input is hostile: a datagram is parsed only if it is at most
//! [`MAX_DATAGRAM`] bytes, at most [`MAX_INFO_HASHES`] info hashes are read from one,
//! datagrams are rate-limited (a token bucket, [`MAX_PER_SECOND`]), and a (peer,
//! torrent) pair is reported at most once a minute. Outgoing, a torrent is announced at
//! most once a minute however often the timer or registrations fire.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// The BEP 14 IPv4 multicast group.
pub const GROUP_V4: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(239, 192, 152, 143)), 6771);

/// The BEP 14 IPv6 multicast group.
pub const GROUP_V6: SocketAddr = SocketAddr::new(
    IpAddr::V6(Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0xefc0, 0x988f)),
    6771,
);

/// Longest datagram parsed (larger ones are dropped unread).
pub const MAX_DATAGRAM: usize = 1400;

/// Info hashes read from one announce at most.
pub const MAX_INFO_HASHES: usize = 16;

/// Datagrams handled per second at most (burst: twice that).
pub const MAX_PER_SECOND: f64 = 20.0;

/// The same torrent is announced at most this often.
const MIN_ANNOUNCE_GAP: Duration = Duration::from_secs(60);

/// A (peer, torrent) pair is reported again only after this.
const REPORT_GAP: Duration = Duration::from_secs(60);

/// Distinct (peer, torrent) pairs remembered for [`REPORT_GAP`] at most.
pub(crate) const MAX_REPORTED: usize = 4096;

/// Local service discovery settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LsdConfig {
    /// The IPv4 group and port (default [`GROUP_V4`]); `None`: no IPv4 LSD.
    pub group_v4: Option<SocketAddr>,
    /// The IPv6 group and port (default [`GROUP_V6`]); `None`: no IPv6 LSD. It is
    /// skipped, with a warning, where IPv6 multicast does not work.
    pub group_v6: Option<SocketAddr>,
    /// The IPv4 interface to join the group on and send from (default
    /// `0.0.0.0`: the system's choice). `127.0.0.1` keeps LSD on this host.
    pub interface_v4: Ipv4Addr,
    /// The IPv6 interface index (default 0: the system's choice).
    pub interface_v6: u32,
    /// How often each torrent is announced (default 5 min; at least 1 min).
    pub interval: Duration,
}

impl Default for LsdConfig {
    fn default() -> Self {
        LsdConfig {
            group_v4: Some(GROUP_V4),
            group_v6: Some(GROUP_V6),
            interface_v4: Ipv4Addr::UNSPECIFIED,
            interface_v6: 0,
            interval: Duration::from_secs(300),
        }
    }
}

/// Why a datagram is not a BEP 14 announce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LsdError {
    /// Longer than [`MAX_DATAGRAM`].
    #[error("LSD datagram of {0} bytes is longer than {MAX_DATAGRAM}")]
    TooLong(usize),
    /// It does not start with `BT-SEARCH * HTTP/1.1`.
    #[error("not a BT-SEARCH request")]
    NotSearch,
    /// Not text.
    #[error("LSD datagram is not UTF-8")]
    NotText,
    /// No `Port` header, or one that is not a port number 1..=65535.
    #[error("LSD announce without a valid Port header")]
    BadPort,
    /// No `Infohash` header with 40 hex digits.
    #[error("LSD announce without a valid Infohash header")]
    NoInfoHash,
}

/// A parsed announce.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LsdAnnounce {
    /// The sender's peer port.
    pub port: u16,
    /// The torrents it announces (v1 info hashes or truncated v2 ones).
    pub info_hashes: Vec<[u8; 20]>,
    /// Its cookie, if any (to recognise our own announces).
    pub cookie: Option<String>,
}

/// Encodes an announce of `info_hashes` (at most [`MAX_INFO_HASHES`] are written) for
/// peers on `port`, sent to `group`.
pub fn encode(group: SocketAddr, port: u16, info_hashes: &[[u8; 20]], cookie: &str) -> Vec<u8> {
    let mut s = format!("BT-SEARCH * HTTP/1.1\r\nHost: {group}\r\nPort: {port}\r\n");
    for ih in info_hashes.iter().take(MAX_INFO_HASHES) {
        s.push_str("Infohash: ");
        for b in ih {
            s.push_str(&format!("{b:02x}"));
        }
        s.push_str("\r\n");
    }
    if !cookie.is_empty() {
        s.push_str(&format!("cookie: {cookie}\r\n"));
    }
    s.push_str("\r\n\r\n");
    s.into_bytes()
}

fn hex20(s: &str) -> Option<[u8; 20]> {
    let b = s.as_bytes();
    if b.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// Parses an announce. Header names are case-insensitive, lines may end in `\r\n` or
/// `\n`, unknown headers are ignored, invalid `Infohash` values are skipped.
pub fn parse(datagram: &[u8]) -> Result<LsdAnnounce, LsdError> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(LsdError::TooLong(datagram.len()));
    }
    let text = std::str::from_utf8(datagram).map_err(|_| LsdError::NotText)?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().unwrap_or("");
    let mut words = first.split_ascii_whitespace();
    if !(words.next() == Some("BT-SEARCH")
        && words.next() == Some("*")
        && words.next().is_some_and(|v| v.starts_with("HTTP/1.")))
    {
        return Err(LsdError::NotSearch);
    }
    let (mut port, mut info_hashes, mut cookie) = (None, Vec::new(), None);
    for line in lines {
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.trim().eq_ignore_ascii_case("port") {
            port = value.parse::<u16>().ok().filter(|p| *p != 0);
            if port.is_none() {
                return Err(LsdError::BadPort);
            }
        } else if name.trim().eq_ignore_ascii_case("infohash") {
            if info_hashes.len() < MAX_INFO_HASHES
                && let Some(ih) = hex20(value)
                && !info_hashes.contains(&ih)
            {
                info_hashes.push(ih);
            }
        } else if name.trim().eq_ignore_ascii_case("cookie") && value.len() <= 64 {
            cookie = Some(value.to_string());
        }
    }
    let port = port.ok_or(LsdError::BadPort)?;
    if info_hashes.is_empty() {
        return Err(LsdError::NoInfoHash);
    }
    Ok(LsdAnnounce {
        port,
        info_hashes,
        cookie,
    })
}

/// A token bucket: `rate` per second, `burst` at most.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    rate: f64,
    burst: f64,
}

impl Bucket {
    fn new(rate: f64, now: Instant) -> Self {
        Bucket {
            tokens: rate * 2.0,
            at: now,
            rate,
            burst: rate * 2.0,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The torrents registered with LSD and what was heard, shared by the session and the
/// LSD task.
#[derive(Debug, Default)]
struct Registry {
    torrents: HashMap<[u8; 20], Registered>,
}

#[derive(Debug)]
struct Registered {
    peers: mpsc::Sender<SocketAddr>,
    last_announced: Option<Instant>,
}

/// The sans-IO part of LSD: what to announce when, and what to report.
#[derive(Debug)]
pub(crate) struct State {
    cookie: String,
    bucket: Bucket,
    reported: HashMap<(SocketAddr, [u8; 20]), Instant>,
}

impl State {
    /// A receiver whose own announces carry `cookie`.
    pub(crate) fn new(cookie: String, now: Instant) -> State {
        State {
            cookie,
            bucket: Bucket::new(MAX_PER_SECOND, now),
            reported: HashMap::new(),
        }
    }

    /// (peer, torrent) pairs remembered as reported.
    pub(crate) fn reported_len(&self) -> usize {
        self.reported.len()
    }

    /// A datagram from `from`: the (peer, torrent) pairs to report.
    pub(crate) fn receive(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
        known: impl Fn(&[u8; 20]) -> bool,
    ) -> Vec<(SocketAddr, [u8; 20])> {
        if !self.bucket.take(now) {
            return Vec::new();
        }
        let a = match parse(datagram) {
            Ok(a) => a,
            Err(e) => {
                debug!(%from, error = %e, "ignoring an LSD datagram");
                return Vec::new();
            }
        };
        if a.cookie.as_deref() == Some(self.cookie.as_str()) {
            return Vec::new();
        }
        let peer = SocketAddr::new(from.ip(), a.port);
        if self.reported.len() >= MAX_REPORTED {
            self.reported
                .retain(|_, t| now.saturating_duration_since(*t) < REPORT_GAP);
            if self.reported.len() >= MAX_REPORTED {
                return Vec::new();
            }
        }
        let mut out = Vec::new();
        for ih in a.info_hashes.into_iter().filter(|ih| known(ih)) {
            let fresh = self
                .reported
                .get(&(peer, ih))
                .is_none_or(|t| now.saturating_duration_since(*t) >= REPORT_GAP);
            // A new pair needs room: the map never goes past MAX_REPORTED.
            let room =
                self.reported.len() < MAX_REPORTED || self.reported.contains_key(&(peer, ih));
            if fresh && room {
                self.reported.insert((peer, ih), now);
                out.push((peer, ih));
            }
        }
        out
    }
}

/// The session's LSD service: sockets and a task.
#[derive(Debug)]
pub(crate) struct Lsd {
    registry: Arc<Mutex<Registry>>,
    wake: mpsc::Sender<()>,
    local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Lsd {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn bind_v4(c: &LsdConfig, group: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let IpAddr::V4(g) = group.ip() else {
        return Err(std::io::Error::other(
            "the IPv4 group is not an IPv4 address",
        ));
    };
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    #[cfg(unix)]
    s.set_reuse_port(true)?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, group.port())).into())?;
    if g.is_multicast() {
        s.join_multicast_v4(&g, &c.interface_v4)?;
        s.set_multicast_if_v4(&c.interface_v4)?;
        s.set_multicast_loop_v4(true)?;
        s.set_multicast_ttl_v4(1)?;
    }
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s.into())
}

fn bind_v6(c: &LsdConfig, group: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let IpAddr::V6(g) = group.ip() else {
        return Err(std::io::Error::other(
            "the IPv6 group is not an IPv6 address",
        ));
    };
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_only_v6(true)?;
    s.set_reuse_address(true)?;
    #[cfg(unix)]
    s.set_reuse_port(true)?;
    s.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, group.port())).into())?;
    s.join_multicast_v6(&g, c.interface_v6)?;
    s.set_multicast_if_v6(c.interface_v6)?;
    s.set_multicast_loop_v6(true)?;
    s.set_multicast_hops_v6(1)?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s.into())
}

impl Lsd {
    /// Joins the groups and starts announcing our peer `port`.
    pub(crate) async fn start(c: LsdConfig, port: u16) -> std::io::Result<Lsd> {
        let mut sockets = Vec::new();
        if let Some(g) = c.group_v4 {
            sockets.push((bind_v4(&c, g)?, g));
        }
        if let Some(g) = c.group_v6 {
            match bind_v6(&c, g) {
                Ok(s) => sockets.push((s, g)),
                Err(e) => warn!(error = %e, "IPv6 local service discovery is off"),
            }
        }
        let Some(local_addr) = sockets.first().and_then(|(s, _)| s.local_addr().ok()) else {
            return Err(std::io::Error::other("no LSD group configured"));
        };
        let registry = Arc::new(Mutex::new(Registry::default()));
        let (wake, wake_rx) = mpsc::channel(1);
        let cookie = format!("{:08x}", rand::random::<u32>());
        let task = tokio::spawn(run(sockets, c, port, cookie, registry.clone(), wake_rx));
        Ok(Lsd {
            registry,
            wake,
            local_addr,
            task,
        })
    }

    /// The address the (first) group socket is bound to.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that registers torrents (a torrent's discovery registers again on
    /// resume).
    pub(crate) fn registrar(&self) -> LsdRegistrar {
        LsdRegistrar {
            registry: self.registry.clone(),
            wake: self.wake.clone(),
        }
    }
}

/// Registers torrents with the session's LSD (cloneable; does not keep LSD running).
#[derive(Debug, Clone)]
pub(crate) struct LsdRegistrar {
    registry: Arc<Mutex<Registry>>,
    wake: mpsc::Sender<()>,
}

impl LsdRegistrar {
    /// Announces `info_hash` from now on; its peers arrive on the receiver. Dropping the
    /// receiver withdraws the torrent.
    pub(crate) fn register(&self, info_hash: [u8; 20]) -> mpsc::Receiver<SocketAddr> {
        let (tx, rx) = mpsc::channel(64);
        if let Ok(mut r) = self.registry.lock() {
            r.torrents.insert(
                info_hash,
                Registered {
                    peers: tx,
                    last_announced: None,
                },
            );
        }
        let _ = self.wake.try_send(());
        rx
    }
}

async fn run(
    sockets: Vec<(UdpSocket, SocketAddr)>,
    c: LsdConfig,
    port: u16,
    cookie: String,
    registry: Arc<Mutex<Registry>>,
    mut wake: mpsc::Receiver<()>,
) {
    let interval = c.interval.max(MIN_ANNOUNCE_GAP);
    let mut state = State::new(cookie.clone(), Instant::now());
    let (tx, mut rx) = mpsc::channel::<(SocketAddr, Vec<u8>)>(64);
    let sockets: Vec<(Arc<UdpSocket>, SocketAddr)> =
        sockets.into_iter().map(|(s, g)| (Arc::new(s), g)).collect();
    for (s, _) in &sockets {
        let (s, tx) = (s.clone(), tx.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM + 1];
            loop {
                match s.recv_from(&mut buf).await {
                    Ok((n, from)) => {
                        if tx.try_send((from, buf[..n].to_vec())).is_err() && tx.is_closed() {
                            return;
                        }
                    }
                    Err(e) => {
                        debug!(error = %e, "LSD receive failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }
    drop(tx);
    // Announce shortly after start and registration (collecting several torrents).
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(()) = wake.recv() => continue,
            Some((from, data)) = rx.recv() => {
                let Ok(reg) = registry.lock() else { return };
                let found = state.receive(Instant::now(), from, &data, |ih| reg.torrents.contains_key(ih));
                for (peer, ih) in found {
                    if let Some(t) = reg.torrents.get(&ih) {
                        debug!(%peer, "LSD peer");
                        let _ = t.peers.try_send(peer);
                    }
                }
                continue;
            }
        }
        // Due announces, batched into datagrams of up to MAX_INFO_HASHES.
        let now = Instant::now();
        let due: Vec<[u8; 20]> = {
            let Ok(mut reg) = registry.lock() else { return };
            reg.torrents.retain(|_, t| !t.peers.is_closed());
            reg.torrents
                .iter_mut()
                .filter(|(_, t)| {
                    t.last_announced
                        .is_none_or(|at| now.saturating_duration_since(at) >= interval)
                })
                .map(|(ih, t)| {
                    t.last_announced = Some(now);
                    *ih
                })
                .collect()
        };
        for chunk in due.chunks(MAX_INFO_HASHES) {
            for (s, group) in &sockets {
                let msg = encode(*group, port, chunk, &cookie);
                if let Err(e) = s.send_to(&msg, group).await {
                    debug!(%group, error = %e, "LSD announce failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const IH: [u8; 20] = [0xab; 20];

    #[test]
    fn encode_parse_round_trip() {
        let m = encode(GROUP_V4, 6881, &[IH, [1; 20]], "c00k1e");
        let text = String::from_utf8(m.clone()).unwrap();
        assert!(text.starts_with("BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\n"));
        assert!(text.contains("Port: 6881\r\n"));
        assert!(text.contains(&format!("Infohash: {}\r\n", "ab".repeat(20))));
        assert!(text.ends_with("\r\n\r\n\r\n"));
        let a = parse(&m).unwrap();
        assert_eq!(a.port, 6881);
        assert_eq!(a.info_hashes, vec![IH, [1; 20]]);
        assert_eq!(a.cookie.as_deref(), Some("c00k1e"));
        let v6 = String::from_utf8(encode(GROUP_V6, 1, &[IH], "")).unwrap();
        assert!(v6.contains("Host: [ff15::efc0:988f]:6771\r\n"), "{v6}");
        assert!(!v6.contains("cookie"));
    }

    /// What libtorrent (`lsd.cpp`) sends: the same layout, upper-case hex accepted.
    #[test]
    fn parses_other_clients_forms() {
        let lt = b"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 51413\r\n\
Infohash: ABABABABABABABABABABABABABABABABABABABAB\r\ncookie: 1a2b\r\n\r\n\r\n";
        let a = parse(lt).unwrap();
        assert_eq!((a.port, a.info_hashes[0]), (51413, IH));
        let bare =
            b"BT-SEARCH * HTTP/1.1\nport:7\ninfohash: abababababababababababababababababababab\n\n";
        assert_eq!(parse(bare).unwrap().port, 7);
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            parse(b"M-SEARCH * HTTP/1.1\r\n\r\n"),
            Err(LsdError::NotSearch)
        );
        assert_eq!(parse(&[0xff; 10]), Err(LsdError::NotText));
        assert_eq!(
            parse(&vec![b'a'; MAX_DATAGRAM + 1]),
            Err(LsdError::TooLong(MAX_DATAGRAM + 1))
        );
        let no_port = format!(
            "BT-SEARCH * HTTP/1.1\r\nInfohash: {}\r\n\r\n",
            "ab".repeat(20)
        );
        assert_eq!(parse(no_port.as_bytes()), Err(LsdError::BadPort));
        for p in ["0", "65536", "-1", "x"] {
            let m = format!(
                "BT-SEARCH * HTTP/1.1\r\nPort: {p}\r\nInfohash: {}\r\n\r\n",
                "ab".repeat(20)
            );
            assert_eq!(parse(m.as_bytes()), Err(LsdError::BadPort), "{p}");
        }
        let bad_ih = b"BT-SEARCH * HTTP/1.1\r\nPort: 1\r\nInfohash: xyz\r\nInfohash: abab\r\n\r\n";
        assert_eq!(parse(bad_ih), Err(LsdError::NoInfoHash));
        // Headers after the blank line are not read.
        let late = format!(
            "BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n\r\nInfohash: {}\r\n",
            "ab".repeat(20)
        );
        assert_eq!(parse(late.as_bytes()), Err(LsdError::NoInfoHash));
    }

    #[test]
    fn caps_info_hashes_per_datagram() {
        let many: Vec<[u8; 20]> = (0..25u8).map(|i| [i; 20]).collect();
        let mut m = String::from("BT-SEARCH * HTTP/1.1\r\nPort: 9\r\n");
        for ih in &many {
            m.push_str("Infohash: ");
            m.push_str(&ih.iter().map(|b| format!("{b:02x}")).collect::<String>());
            m.push_str("\r\n");
        }
        m.push_str("\r\n\r\n");
        let a = parse(m.as_bytes()).unwrap();
        assert_eq!(a.info_hashes.len(), MAX_INFO_HASHES);
        assert_eq!(
            parse(&encode(GROUP_V4, 9, &many, ""))
                .unwrap()
                .info_hashes
                .len(),
            MAX_INFO_HASHES
        );
    }

    /// The reported map stops at MAX_REPORTED: a datagram arriving when it is one short
    /// of full reports one new pair, not its 16.
    #[test]
    fn the_reported_map_never_goes_past_its_cap() {
        let t0 = Instant::now();
        let mut st = State::new("me".into(), t0);
        let from: SocketAddr = "192.168.1.5:6771".parse().unwrap();
        let hashes = |port: u16| -> Vec<[u8; 20]> {
            (0..MAX_INFO_HASHES as u8)
                .map(|i| {
                    let mut h = [i; 20];
                    h[..2].copy_from_slice(&port.to_be_bytes());
                    h
                })
                .collect()
        };
        // The first `n` hashes of `port`'s set, announced from that port.
        let announce = |st: &mut State, now: Instant, port: u16, n: usize| {
            let m = encode(GROUP_V4, port, &hashes(port)[..n], "x");
            st.receive(now, from, &m, |_| true)
        };
        let mut now = t0;
        // One pair first, so the cap is not a multiple of a full datagram away.
        assert_eq!(announce(&mut st, now, 999, 1).len(), 1);
        // Fill to less than a datagram short of the cap (announces 60 ms apart: under
        // the rate limit, well within the minute a pair is remembered).
        let mut port = 1000u16;
        while st.reported_len() + MAX_INFO_HASHES < MAX_REPORTED {
            now += Duration::from_millis(60);
            let got = announce(&mut st, now, port, MAX_INFO_HASHES);
            assert_eq!(got.len(), MAX_INFO_HASHES);
            port += 1;
        }
        let short = MAX_REPORTED - st.reported_len();
        assert!(short > 0 && short < MAX_INFO_HASHES, "{short}");
        now += Duration::from_millis(60);
        assert_eq!(announce(&mut st, now, port, MAX_INFO_HASHES).len(), short);
        assert_eq!(st.reported_len(), MAX_REPORTED);
        now += Duration::from_millis(60);
        let got = announce(&mut st, now, port + 1, MAX_INFO_HASHES);
        assert!(got.is_empty());
        assert_eq!(st.reported_len(), MAX_REPORTED);
    }

    #[test]
    fn state_skips_own_cookie_unknown_torrents_repeats_and_floods() {
        let t0 = Instant::now();
        let mut st = State {
            cookie: "me".into(),
            bucket: Bucket::new(MAX_PER_SECOND, t0),
            reported: HashMap::new(),
        };
        let from: SocketAddr = "192.168.1.5:6771".parse().unwrap();
        let known = |ih: &[u8; 20]| *ih == IH;
        assert!(
            st.receive(t0, from, &encode(GROUP_V4, 1000, &[IH], "me"), known)
                .is_empty()
        );
        let other = encode(GROUP_V4, 1000, &[IH, [2; 20]], "them");
        let peer: SocketAddr = "192.168.1.5:1000".parse().unwrap();
        assert_eq!(st.receive(t0, from, &other, known), vec![(peer, IH)]);
        assert!(
            st.receive(t0, from, &other, known).is_empty(),
            "repeat within a minute"
        );
        let later = t0 + REPORT_GAP;
        assert_eq!(st.receive(later, from, &other, known), vec![(peer, IH)]);
        // A flood: at most the burst is handled at one instant.
        let mut handled = 0;
        for i in 0..1000u16 {
            let m = encode(GROUP_V4, 2000 + i, &[IH], "x");
            handled += st.receive(later, from, &m, known).len();
        }
        assert!(handled <= (MAX_PER_SECOND * 2.0) as usize, "{handled}");
    }

    proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = parse(&data);
        }

        #[test]
        fn parse_never_panics_on_text(
            lines in proptest::collection::vec("[ -~]{0,60}", 0..30),
        ) {
            let mut m = String::from("BT-SEARCH * HTTP/1.1\r\n");
            for l in lines {
                m.push_str(&l);
                m.push_str("\r\n");
            }
            let _ = parse(m.as_bytes());
        }

        #[test]
        fn round_trip(port in 1u16.., ihs in proptest::collection::vec(any::<[u8; 20]>(), 1..16)) {
            let mut uniq = ihs.clone();
            uniq.dedup();
            let a = parse(&encode(GROUP_V4, port, &uniq, "k")).unwrap();
            prop_assert_eq!(a.port, port);
            let mut want = Vec::new();
            for ih in uniq { if !want.contains(&ih) { want.push(ih); } }
            prop_assert_eq!(a.info_hashes, want);
        }
    }
}
