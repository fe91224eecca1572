//! BEP 15 packets, both directions: pure `decode`/`encode`.
//!
//! Layouts (big-endian):
//! - connect request: `protocol_id u64 = 0x41727101980, action u32 = 0, transaction_id u32` (16 bytes)
//! - connect response: `action 0, transaction_id, connection_id u64` (16)
//! - announce request: `connection_id, action 1, transaction_id, info_hash[20], peer_id[20],
//!   downloaded u64, left u64, uploaded u64, event u32, ip u32, key u32, num_want i32, port u16` (98,
//!   BEP 41 options may follow and are ignored)
//! - announce response: `action 1, transaction_id, interval, leechers, seeders`, then 6-byte (IPv4)
//!   or 18-byte (IPv6) peers, the family being the one the request travelled over
//! - scrape request: `connection_id, action 2, transaction_id, info_hash[20] * n` (n ≤ 74)
//! - scrape response: `action 2, transaction_id`, then `seeders, completed, leechers` per hash
//! - error response: `action 3, transaction_id, message`

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::types::{Event, InfoHash, PeerId, ScrapeStats};

/// The magic constant of a connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;
/// The most info hashes one scrape may carry (BEP 15).
pub const MAX_SCRAPE_HASHES: usize = 74;
/// Length of a connect request or response.
pub const CONNECT_LEN: usize = 16;
/// Length of an announce request without BEP 41 options.
pub const ANNOUNCE_REQUEST_LEN: usize = 98;

const ACTION_CONNECT: u32 = 0;
const ACTION_ANNOUNCE: u32 = 1;
const ACTION_SCRAPE: u32 = 2;
const ACTION_ERROR: u32 = 3;

/// The address family of the socket a packet travelled over; it decides the peer entry
/// size of an announce response (BEP 15: 6 bytes over IPv4, 18 over IPv6).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum AddrFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl AddrFamily {
    /// The family of an address; IPv4-mapped IPv6 addresses count as IPv4.
    pub fn of(addr: &SocketAddr) -> AddrFamily {
        match addr.ip() {
            IpAddr::V4(_) => AddrFamily::V4,
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => AddrFamily::V4,
            IpAddr::V6(_) => AddrFamily::V6,
        }
    }
    fn peer_len(self) -> usize {
        match self {
            AddrFamily::V4 => 6,
            AddrFamily::V6 => 18,
        }
    }
}

/// A malformed UDP tracker packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UdpDecodeError {
    /// The packet is shorter than its action needs.
    #[error("packet too short for {what}: need {need} bytes, got {got}")]
    TooShort {
        /// What was being decoded.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        got: usize,
    },
    /// A connect request without the protocol magic.
    #[error("bad protocol id {0:#x} in connect request")]
    BadProtocolId(u64),
    /// An action number this side does not accept.
    #[error("unknown action {0} at offset {1}")]
    UnknownAction(u32, usize),
    /// The body length does not fit the action (peer list or scrape list not a whole number of entries,
    /// or bytes after a fixed-size packet).
    #[error("{what}: length {len} is not valid (entry size {entry})")]
    BadLength {
        /// What was being decoded.
        what: &'static str,
        /// Bytes after the fixed header.
        len: usize,
        /// Size of one entry.
        entry: usize,
    },
    /// A scrape request with no hashes or more than [`MAX_SCRAPE_HASHES`].
    #[error("scrape request with {0} info hashes (1..=74 allowed)")]
    ScrapeCount(usize),
}

/// A client-to-tracker packet.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Request {
    /// Ask for a connection id.
    Connect {
        /// Transaction id.
        transaction_id: u32,
    },
    /// Announce.
    Announce(AnnounceRequest),
    /// Scrape up to 74 swarms.
    Scrape {
        /// Connection id from a connect response.
        connection_id: u64,
        /// Transaction id.
        transaction_id: u32,
        /// The swarms.
        info_hashes: Vec<InfoHash>,
    },
}

/// The fields of a BEP 15 announce request.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AnnounceRequest {
    /// Connection id from a connect response.
    pub connection_id: u64,
    /// Transaction id.
    pub transaction_id: u32,
    /// The swarm.
    pub info_hash: InfoHash,
    /// The announcing peer.
    pub peer_id: PeerId,
    /// Bytes downloaded.
    pub downloaded: u64,
    /// Bytes left.
    pub left: u64,
    /// Bytes uploaded.
    pub uploaded: u64,
    /// Event.
    pub event: Event,
    /// IPv4 address to register (0: the source address). Trackers usually ignore it.
    pub ip: u32,
    /// Key.
    pub key: u32,
    /// Peers wanted; -1 for the tracker default.
    pub num_want: i32,
    /// Port.
    pub port: u16,
}

/// A tracker-to-client packet.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Response {
    /// A new connection id.
    Connect {
        /// Transaction id of the request.
        transaction_id: u32,
        /// The id, valid for one minute.
        connection_id: u64,
    },
    /// The answer to an announce.
    Announce {
        /// Transaction id of the request.
        transaction_id: u32,
        /// Seconds until the next announce.
        interval: u32,
        /// Leechers.
        leechers: u32,
        /// Seeders.
        seeders: u32,
        /// Peers (all of the packet's family).
        peers: Vec<SocketAddr>,
    },
    /// The answer to a scrape, one entry per requested hash, in order.
    Scrape {
        /// Transaction id of the request.
        transaction_id: u32,
        /// Figures per swarm.
        stats: Vec<ScrapeStats>,
    },
    /// The tracker refused a request.
    Error {
        /// Transaction id of the request.
        transaction_id: u32,
        /// Human-readable reason (lossily decoded as UTF-8).
        message: String,
    },
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u32(&mut self) -> u32 {
        let v = u32::from_be_bytes(arr(&self.buf[self.pos..]));
        self.pos += 4;
        v
    }
    fn u64(&mut self) -> u64 {
        let v = u64::from_be_bytes(arr(&self.buf[self.pos..]));
        self.pos += 8;
        v
    }
    fn u16(&mut self) -> u16 {
        let v = u16::from_be_bytes(arr(&self.buf[self.pos..]));
        self.pos += 2;
        v
    }
    fn b20(&mut self) -> [u8; 20] {
        let v = arr(&self.buf[self.pos..]);
        self.pos += 20;
        v
    }
    fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
}

/// The first `N` bytes of `b`; callers check the length first.
fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[..N]);
    out
}

fn need(what: &'static str, buf: &[u8], n: usize) -> Result<(), UdpDecodeError> {
    if buf.len() < n {
        Err(UdpDecodeError::TooShort {
            what,
            need: n,
            got: buf.len(),
        })
    } else {
        Ok(())
    }
}

/// Peek the transaction id a request carries (bytes 12..16), even if the rest is malformed.
pub fn request_transaction_id(buf: &[u8]) -> Option<u32> {
    (buf.len() >= 16).then(|| u32::from_be_bytes(arr(&buf[12..])))
}

impl Request {
    /// Decode a request. Trailing bytes after a connect or scrape are an error; after an
    /// announce they are BEP 41 options and are ignored.
    pub fn decode(buf: &[u8]) -> Result<Request, UdpDecodeError> {
        need("request header", buf, 16)?;
        let mut r = Reader { buf, pos: 0 };
        let first = r.u64();
        let action = r.u32();
        let transaction_id = r.u32();
        match action {
            ACTION_CONNECT => {
                if first != PROTOCOL_ID {
                    return Err(UdpDecodeError::BadProtocolId(first));
                }
                if buf.len() != CONNECT_LEN {
                    return Err(UdpDecodeError::BadLength {
                        what: "connect request",
                        len: buf.len() - 16,
                        entry: 0,
                    });
                }
                Ok(Request::Connect { transaction_id })
            }
            ACTION_ANNOUNCE => {
                need("announce request", buf, ANNOUNCE_REQUEST_LEN)?;
                Ok(Request::Announce(AnnounceRequest {
                    connection_id: first,
                    transaction_id,
                    info_hash: InfoHash(r.b20()),
                    peer_id: PeerId(r.b20()),
                    downloaded: r.u64(),
                    left: r.u64(),
                    uploaded: r.u64(),
                    event: Event::from_udp(r.u32()),
                    ip: r.u32(),
                    key: r.u32(),
                    num_want: r.u32() as i32,
                    port: r.u16(),
                }))
            }
            ACTION_SCRAPE => {
                let rest = r.rest();
                if rest.len() % 20 != 0 {
                    return Err(UdpDecodeError::BadLength {
                        what: "scrape request",
                        len: rest.len(),
                        entry: 20,
                    });
                }
                let n = rest.len() / 20;
                if n == 0 || n > MAX_SCRAPE_HASHES {
                    return Err(UdpDecodeError::ScrapeCount(n));
                }
                let info_hashes = rest.chunks_exact(20).map(|c| InfoHash(arr(c))).collect();
                Ok(Request::Scrape {
                    connection_id: first,
                    transaction_id,
                    info_hashes,
                })
            }
            other => Err(UdpDecodeError::UnknownAction(other, 8)),
        }
    }

    /// The transaction id.
    pub fn transaction_id(&self) -> u32 {
        match self {
            Request::Connect { transaction_id }
            | Request::Scrape { transaction_id, .. }
            | Request::Announce(AnnounceRequest { transaction_id, .. }) => *transaction_id,
        }
    }

    /// Bytes [`Request::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        match self {
            Request::Connect { .. } => CONNECT_LEN,
            Request::Announce(_) => ANNOUNCE_REQUEST_LEN,
            Request::Scrape { info_hashes, .. } => 16 + 20 * info_hashes.len(),
        }
    }

    /// Append the packet to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        match self {
            Request::Connect { transaction_id } => {
                out.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
                out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
            }
            Request::Announce(a) => {
                out.extend_from_slice(&a.connection_id.to_be_bytes());
                out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
                out.extend_from_slice(&a.transaction_id.to_be_bytes());
                out.extend_from_slice(&a.info_hash.0);
                out.extend_from_slice(&a.peer_id.0);
                out.extend_from_slice(&a.downloaded.to_be_bytes());
                out.extend_from_slice(&a.left.to_be_bytes());
                out.extend_from_slice(&a.uploaded.to_be_bytes());
                out.extend_from_slice(&a.event.to_udp().to_be_bytes());
                out.extend_from_slice(&a.ip.to_be_bytes());
                out.extend_from_slice(&a.key.to_be_bytes());
                out.extend_from_slice(&a.num_want.to_be_bytes());
                out.extend_from_slice(&a.port.to_be_bytes());
            }
            Request::Scrape {
                connection_id,
                transaction_id,
                info_hashes,
            } => {
                out.extend_from_slice(&connection_id.to_be_bytes());
                out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                for h in info_hashes {
                    out.extend_from_slice(&h.0);
                }
            }
        }
    }
}

pub(crate) fn encode_peer(out: &mut Vec<u8>, family: AddrFamily, p: &SocketAddr) -> bool {
    match (family, p) {
        (AddrFamily::V4, SocketAddr::V4(a)) => {
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
            true
        }
        (AddrFamily::V4, SocketAddr::V6(a)) => match a.ip().to_ipv4_mapped() {
            Some(v4) => {
                out.extend_from_slice(&v4.octets());
                out.extend_from_slice(&a.port().to_be_bytes());
                true
            }
            None => false,
        },
        (AddrFamily::V6, SocketAddr::V6(a)) => {
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
            true
        }
        (AddrFamily::V6, SocketAddr::V4(a)) => {
            out.extend_from_slice(&a.ip().to_ipv6_mapped().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
            true
        }
    }
}

/// Decode compact peers: 6-byte IPv4 or 18-byte IPv6 entries (BEP 23 / BEP 7). The caller
/// checks that `buf.len()` is a multiple of the entry size; a partial tail is ignored.
pub(crate) fn decode_compact_peers(buf: &[u8], family: AddrFamily, out: &mut Vec<SocketAddr>) {
    match family {
        AddrFamily::V4 => out.extend(buf.chunks_exact(6).map(|c| {
            SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(arr::<4>(c)),
                u16::from_be_bytes(arr(&c[4..])),
            ))
        })),
        AddrFamily::V6 => out.extend(buf.chunks_exact(18).map(|c| {
            SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(arr::<16>(c)),
                u16::from_be_bytes(arr(&c[16..])),
                0,
                0,
            ))
        })),
    }
}

/// Encode compact peers of one family; peers of the other family are skipped. IPv4 entries
/// are IPv4 addresses and IPv4-mapped IPv6 addresses; IPv6 entries are all IPv6 addresses
/// (a mapped one is written as it is). Returns how many were written.
pub(crate) fn encode_compact_peers(
    peers: &[SocketAddr],
    family: AddrFamily,
    out: &mut Vec<u8>,
) -> usize {
    let mut n = 0;
    for p in peers {
        let fits = match family {
            AddrFamily::V4 => AddrFamily::of(p) == AddrFamily::V4,
            AddrFamily::V6 => p.is_ipv6(),
        };
        if fits && encode_peer(out, family, p) {
            n += 1;
        }
    }
    n
}

impl Response {
    /// Decode a response that arrived over a socket of `family`.
    pub fn decode(buf: &[u8], family: AddrFamily) -> Result<Response, UdpDecodeError> {
        need("response header", buf, 8)?;
        let mut r = Reader { buf, pos: 0 };
        let action = r.u32();
        let transaction_id = r.u32();
        match action {
            ACTION_CONNECT => {
                need("connect response", buf, 16)?;
                let connection_id = r.u64();
                if buf.len() != 16 {
                    return Err(UdpDecodeError::BadLength {
                        what: "connect response",
                        len: buf.len() - 8,
                        entry: 8,
                    });
                }
                Ok(Response::Connect {
                    transaction_id,
                    connection_id,
                })
            }
            ACTION_ANNOUNCE => {
                need("announce response", buf, 20)?;
                let interval = r.u32();
                let leechers = r.u32();
                let seeders = r.u32();
                let rest = r.rest();
                let entry = family.peer_len();
                if rest.len() % entry != 0 {
                    return Err(UdpDecodeError::BadLength {
                        what: "announce response peers",
                        len: rest.len(),
                        entry,
                    });
                }
                let mut peers = Vec::with_capacity(rest.len() / entry);
                decode_compact_peers(rest, family, &mut peers);
                Ok(Response::Announce {
                    transaction_id,
                    interval,
                    leechers,
                    seeders,
                    peers,
                })
            }
            ACTION_SCRAPE => {
                let rest = r.rest();
                if rest.len() % 12 != 0 {
                    return Err(UdpDecodeError::BadLength {
                        what: "scrape response",
                        len: rest.len(),
                        entry: 12,
                    });
                }
                let stats = rest
                    .chunks_exact(12)
                    .map(|c| ScrapeStats {
                        complete: u32::from_be_bytes(arr(c)),
                        downloaded: u32::from_be_bytes(arr(&c[4..])),
                        incomplete: u32::from_be_bytes(arr(&c[8..])),
                    })
                    .collect();
                Ok(Response::Scrape {
                    transaction_id,
                    stats,
                })
            }
            ACTION_ERROR => Ok(Response::Error {
                transaction_id,
                message: String::from_utf8_lossy(r.rest()).into_owned(),
            }),
            other => Err(UdpDecodeError::UnknownAction(other, 0)),
        }
    }

    /// The transaction id.
    pub fn transaction_id(&self) -> u32 {
        match self {
            Response::Connect { transaction_id, .. }
            | Response::Announce { transaction_id, .. }
            | Response::Scrape { transaction_id, .. }
            | Response::Error { transaction_id, .. } => *transaction_id,
        }
    }

    /// Append the packet to `out`. Announce peers not of `family` are left out.
    pub fn encode(&self, family: AddrFamily, out: &mut Vec<u8>) {
        match self {
            Response::Connect {
                transaction_id,
                connection_id,
            } => {
                out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(&connection_id.to_be_bytes());
            }
            Response::Announce {
                transaction_id,
                interval,
                leechers,
                seeders,
                peers,
            } => {
                out.reserve(20 + peers.len() * family.peer_len());
                out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(&interval.to_be_bytes());
                out.extend_from_slice(&leechers.to_be_bytes());
                out.extend_from_slice(&seeders.to_be_bytes());
                encode_compact_peers(peers, family, out);
            }
            Response::Scrape {
                transaction_id,
                stats,
            } => {
                out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                for s in stats {
                    out.extend_from_slice(&s.complete.to_be_bytes());
                    out.extend_from_slice(&s.downloaded.to_be_bytes());
                    out.extend_from_slice(&s.incomplete.to_be_bytes());
                }
            }
            Response::Error {
                transaction_id,
                message,
            } => {
                out.extend_from_slice(&ACTION_ERROR.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(message.as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn announce() -> AnnounceRequest {
        AnnounceRequest {
            connection_id: 0x1122_3344_5566_7788,
            transaction_id: 7,
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([2; 20]),
            downloaded: 10,
            left: 20,
            uploaded: 30,
            event: Event::Started,
            ip: 0,
            key: 99,
            num_want: -1,
            port: 6881,
        }
    }

    #[test]
    fn connect_request_bytes() {
        let mut out = vec![];
        Request::Connect { transaction_id: 5 }.encode(&mut out);
        assert_eq!(
            out,
            [
                0, 0, 4, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 0, 0, 0, 5
            ]
        );
        assert_eq!(
            Request::decode(&out),
            Ok(Request::Connect { transaction_id: 5 })
        );
        out[0] = 1;
        assert!(matches!(
            Request::decode(&out),
            Err(UdpDecodeError::BadProtocolId(_))
        ));
    }

    #[test]
    fn announce_request_roundtrip_and_options() {
        let r = Request::Announce(announce());
        let mut out = vec![];
        r.encode(&mut out);
        assert_eq!(out.len(), 98);
        assert_eq!(Request::decode(&out), Ok(r.clone()));
        // BEP 41 options are ignored.
        out.extend_from_slice(&[2, 5, b'/', b'a', b'n', b'n', b'o']);
        assert_eq!(Request::decode(&out), Ok(r));
        assert!(matches!(
            Request::decode(&out[..97]),
            Err(UdpDecodeError::TooShort { need: 98, .. })
        ));
    }

    #[test]
    fn scrape_request_limits() {
        let mut out = vec![];
        Request::Scrape {
            connection_id: 1,
            transaction_id: 2,
            info_hashes: vec![],
        }
        .encode(&mut out);
        assert_eq!(Request::decode(&out), Err(UdpDecodeError::ScrapeCount(0)));
        out.extend_from_slice(&[0; 19]);
        assert!(matches!(
            Request::decode(&out),
            Err(UdpDecodeError::BadLength { .. })
        ));
        out.extend(std::iter::repeat_n(0u8, 20 * 74 + 1));
        assert_eq!(Request::decode(&out), Err(UdpDecodeError::ScrapeCount(75)));
    }

    #[test]
    fn announce_response_v4_v6() {
        let peers = vec![
            "1.2.3.4:5".parse().unwrap(),
            "[::1]:6".parse().unwrap(),
            "[::ffff:9.9.9.9]:7".parse().unwrap(),
        ];
        let r = Response::Announce {
            transaction_id: 1,
            interval: 2,
            leechers: 3,
            seeders: 4,
            peers,
        };
        let mut v4 = vec![];
        r.encode(AddrFamily::V4, &mut v4);
        assert_eq!(v4.len(), 20 + 12);
        match Response::decode(&v4, AddrFamily::V4).unwrap() {
            Response::Announce { peers, .. } => assert_eq!(
                peers,
                vec![
                    "1.2.3.4:5".parse::<SocketAddr>().unwrap(),
                    "9.9.9.9:7".parse().unwrap()
                ]
            ),
            other => panic!("{other:?}"),
        }
        let mut v6 = vec![];
        r.encode(AddrFamily::V6, &mut v6);
        // IPv6 entries: every IPv6 address, a mapped one as it is (so a decoded IPv6 reply
        // re-encodes the same); IPv4 addresses are left out.
        assert_eq!(v6.len(), 20 + 2 * 18);
        match Response::decode(&v6, AddrFamily::V6).unwrap() {
            Response::Announce { peers, .. } => assert_eq!(
                peers,
                vec![
                    "[::1]:6".parse::<SocketAddr>().unwrap(),
                    "[::ffff:9.9.9.9]:7".parse().unwrap()
                ]
            ),
            other => panic!("{other:?}"),
        }
    }

    fn arb_request() -> impl Strategy<Value = Request> {
        prop_oneof![
            any::<u32>().prop_map(|t| Request::Connect { transaction_id: t }),
            (
                any::<(u64, u32, [u8; 20], [u8; 20], u64, u64, u64)>(),
                (0u32..4, any::<(u32, u32, i32, u16)>())
            )
                .prop_map(|((c, t, ih, pid, d, l, u), (e, (ip, key, nw, port)))| {
                    Request::Announce(AnnounceRequest {
                        connection_id: c,
                        transaction_id: t,
                        info_hash: InfoHash(ih),
                        peer_id: PeerId(pid),
                        downloaded: d,
                        left: l,
                        uploaded: u,
                        event: Event::from_udp(e),
                        ip,
                        key,
                        num_want: nw,
                        port,
                    })
                }),
            (
                any::<u64>(),
                any::<u32>(),
                proptest::collection::vec(any::<[u8; 20]>(), 1..=74)
            )
                .prop_map(|(c, t, hs)| Request::Scrape {
                    connection_id: c,
                    transaction_id: t,
                    info_hashes: hs.into_iter().map(InfoHash).collect(),
                }),
        ]
    }

    proptest! {
        #[test]
        fn request_roundtrip(r in arb_request()) {
            let mut out = vec![];
            r.encode(&mut out);
            prop_assert_eq!(out.len(), r.encoded_len());
            prop_assert_eq!(Request::decode(&out), Ok(r));
        }

        #[test]
        fn scrape_response_roundtrip(t in any::<u32>(), s in proptest::collection::vec(any::<(u32, u32, u32)>(), 0..80)) {
            let r = Response::Scrape { transaction_id: t, stats: s.into_iter().map(|(a, b, c)| ScrapeStats { complete: a, downloaded: b, incomplete: c }).collect() };
            let mut out = vec![];
            r.encode(AddrFamily::V4, &mut out);
            prop_assert_eq!(Response::decode(&out, AddrFamily::V4), Ok(r));
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Request::decode(&b);
            let _ = Response::decode(&b, AddrFamily::V4);
            let _ = Response::decode(&b, AddrFamily::V6);
        }
    }
}
