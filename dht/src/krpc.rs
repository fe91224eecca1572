//! The KRPC codec (BEP 5, with the fields of BEPs 32, 33, 42, 43, 44 and 51).
//!
//! Pure: bytes in, typed [`Message`]s out, and back. Messages borrow byte strings
//! (transaction ids, tokens, BEP 44 values) from the packet they were decoded from.
//! Decoding is lenient about bencode form (many implementations emit unsorted keys)
//! but strict about the fields the protocol needs; encoding is canonical.
//!
//! Responses do not name the query they answer, so [`Response`] holds every field any
//! response may carry; the querying side knows what it asked for from the transaction.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use bencode::{Decoder, Dict, Value};

use crate::id::Id;

/// Nesting limit used when decoding packets; BEP 44 values may nest, KRPC itself does not.
const MAX_DEPTH: usize = 32;

/// A node's id and its UDP address, as carried in `nodes` / `nodes6` (26 or 38 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    /// The node's id.
    pub id: Id,
    /// The node's UDP address.
    pub addr: SocketAddr,
}

/// One KRPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The transaction id (`t`), echoed by the response.
    pub tid: &'a [u8],
    /// The sender's client version (`v`), if given.
    pub version: Option<&'a [u8]>,
    /// BEP 42: the requester's address as the responder sees it (`ip`).
    pub ip: Option<SocketAddr>,
    /// BEP 43: the sender is read-only (`ro: 1`) and must not be added to routing tables.
    pub read_only: bool,
    /// The query, response or error.
    pub body: Body<'a>,
}

/// The three kinds of KRPC message (`y` = `q`, `r`, `e`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body<'a> {
    /// A query (`y: q`).
    Query(Query<'a>),
    /// A response (`y: r`).
    Response(Response<'a>),
    /// An error (`y: e`).
    Error(ErrorBody<'a>),
}

/// BEP 32 `want`: which address families the querier wants nodes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
    /// `n4`: IPv4 nodes.
    pub v4: bool,
    /// `n6`: IPv6 nodes.
    pub v6: bool,
}

/// A query: the sender's id, BEP 32 `want`, and the method with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query<'a> {
    /// The querying node's id (`a.id`).
    pub id: Id,
    /// BEP 32 `want`; both false when absent.
    pub want: Want,
    /// The method (`q`) and its arguments.
    pub method: Method<'a>,
}

/// The query methods and their arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method<'a> {
    /// `ping`.
    Ping,
    /// `find_node`.
    FindNode {
        /// The id looked for.
        target: Id,
    },
    /// `get_peers`.
    GetPeers {
        /// The torrent.
        info_hash: Id,
        /// BEP 33: ask for non-seeds only.
        noseed: bool,
        /// BEP 33: ask for the bloom filters.
        scrape: bool,
    },
    /// `announce_peer`.
    AnnouncePeer {
        /// The torrent.
        info_hash: Id,
        /// The port the peer listens on.
        port: u16,
        /// Use the source port of the packet instead of `port`.
        implied_port: bool,
        /// The token from an earlier `get_peers` response.
        token: &'a [u8],
        /// BEP 33: the announcing peer is a seed.
        seed: bool,
    },
    /// BEP 44 `get`.
    Get {
        /// SHA-1 of the value (immutable) or of key and salt (mutable).
        target: Id,
        /// Only return a mutable item newer than this.
        seq: Option<i64>,
    },
    /// BEP 44 `put`.
    Put(Put<'a>),
    /// BEP 51 `sample_infohashes`.
    SampleInfohashes {
        /// Where in the keyspace to return nodes for.
        target: Id,
    },
    /// A method this codec does not know; answered with nodes near `target` if given.
    Other {
        /// The method name.
        name: &'a [u8],
        /// `target` or `info_hash`, if the arguments had one.
        target: Option<Id>,
    },
}

/// BEP 44 `put` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put<'a> {
    /// The write token from an earlier `get`.
    pub token: &'a [u8],
    /// The bencoded value, as it was sent.
    pub v: Cow<'a, [u8]>,
    /// Mutable items: the ed25519 public key.
    pub k: Option<[u8; 32]>,
    /// Mutable items: the signature.
    pub sig: Option<[u8; 64]>,
    /// Mutable items: the sequence number.
    pub seq: Option<i64>,
    /// Mutable items: compare-and-swap on this sequence number.
    pub cas: Option<i64>,
    /// Mutable items: the salt.
    pub salt: Option<&'a [u8]>,
}

/// A response: every field any response may carry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response<'a> {
    /// The responding node's id.
    pub id: Id,
    /// `nodes`: IPv4 nodes close to the target.
    pub nodes: Vec<NodeInfo>,
    /// BEP 32 `nodes6`: IPv6 nodes close to the target.
    pub nodes6: Vec<NodeInfo>,
    /// `values`: peers for the info hash.
    pub values: Vec<SocketAddr>,
    /// `token` for a later `announce_peer` or `put`.
    pub token: Option<&'a [u8]>,
    /// BEP 44 `v`: the bencoded value.
    pub v: Option<Cow<'a, [u8]>>,
    /// BEP 44 `k`: the public key of a mutable item.
    pub k: Option<[u8; 32]>,
    /// BEP 44 `sig`.
    pub sig: Option<[u8; 64]>,
    /// BEP 44 `seq`.
    pub seq: Option<i64>,
    /// BEP 51 `samples`.
    pub samples: Vec<Id>,
    /// BEP 51 `interval` (seconds).
    pub interval: Option<i64>,
    /// BEP 51 `num`: how many info hashes the node stores.
    pub num: Option<i64>,
    /// BEP 33 `BFsd`: seeds bloom filter.
    pub bf_seeds: Option<&'a [u8]>,
    /// BEP 33 `BFpe`: peers bloom filter.
    pub bf_peers: Option<&'a [u8]>,
}

/// An error message: code and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody<'a> {
    /// 201 generic, 202 server, 203 protocol, 204 method unknown; BEP 44 adds 205-302.
    pub code: i64,
    /// Human-readable text (bytes; usually ASCII).
    pub message: Cow<'a, [u8]>,
}

/// Error codes of BEP 5 and BEP 44.
pub mod error_code {
    /// Generic error.
    pub const GENERIC: i64 = 201;
    /// Server error.
    pub const SERVER: i64 = 202;
    /// Protocol error: malformed packet, invalid arguments or bad token.
    pub const PROTOCOL: i64 = 203;
    /// Method unknown.
    pub const METHOD_UNKNOWN: i64 = 204;
    /// BEP 44: message (`v`) too big.
    pub const MESSAGE_TOO_BIG: i64 = 205;
    /// BEP 44: invalid signature.
    pub const INVALID_SIGNATURE: i64 = 206;
    /// BEP 44: salt too big.
    pub const SALT_TOO_BIG: i64 = 207;
    /// BEP 44: CAS mismatch.
    pub const CAS_MISMATCH: i64 = 301;
    /// BEP 44: sequence number less than current.
    pub const SEQ_TOO_LOW: i64 = 302;
}

/// Why a packet is not a valid KRPC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not bencode.
    #[error("not bencode: {0}")]
    Bencode(#[from] bencode::DecodeError),
    /// The top-level value (or `a`, `r`) is not a dictionary.
    #[error("{field} is not a dictionary")]
    NotADict {
        /// Which value (`message`, `a`, `r`).
        field: &'static str,
    },
    /// A required field is missing.
    #[error("missing field `{field}`")]
    Missing {
        /// The field.
        field: &'static str,
    },
    /// A field has the wrong type or an invalid value.
    #[error("invalid field `{field}`: {why}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What was wrong.
        why: &'static str,
    },
    /// `y` is not `q`, `r` or `e`.
    #[error("unknown message type `y`")]
    UnknownType,
}

type Result<T> = std::result::Result<T, DecodeError>;

impl<'a> Message<'a> {
    /// Decodes one datagram.
    pub fn decode(packet: &'a [u8]) -> Result<Message<'a>> {
        let value = Decoder::new()
            .lenient()
            .max_depth(MAX_DEPTH)
            .decode(packet)?;
        let Value::Dict(top) = value else {
            return Err(DecodeError::NotADict { field: "message" });
        };
        let tid = bytes(&top, b"t", "t")?.ok_or(DecodeError::Missing { field: "t" })?;
        let version = bytes(&top, b"v", "v").ok().flatten();
        let ip = match bytes(&top, b"ip", "ip")? {
            Some(b) => Some(compact_addr(b).ok_or(DecodeError::Invalid {
                field: "ip",
                why: "not a 6 or 18 byte compact address",
            })?),
            None => None,
        };
        let read_only = int(&top, b"ro", "ro")?.is_some_and(|i| i != 0);
        let y = bytes(&top, b"y", "y")?.ok_or(DecodeError::Missing { field: "y" })?;
        let body = match y {
            b"q" => Body::Query(decode_query(&top)?),
            b"r" => Body::Response(decode_response(&top)?),
            b"e" => Body::Error(decode_error(&top)?),
            _ => return Err(DecodeError::UnknownType),
        };
        Ok(Message {
            tid,
            version,
            ip,
            read_only,
            body,
        })
    }

    /// Encodes the message canonically (sorted keys) and appends it to `out`.
    pub fn encode_to(&self, out: &mut Vec<u8>) {
        let mut top = DictW::default();
        top.bytes(b"t", self.tid);
        if let Some(v) = self.version {
            top.bytes(b"v", v);
        }
        if let Some(ip) = self.ip {
            let mut b = Vec::with_capacity(18);
            push_compact_addr(&mut b, &ip);
            top.bytes(b"ip", &b);
        }
        if self.read_only {
            top.int(b"ro", 1);
        }
        match &self.body {
            Body::Query(q) => {
                top.bytes(b"y", b"q");
                let start = top.begin();
                let name = encode_query(q, &mut top.buf);
                top.end(b"a", start);
                top.bytes(b"q", name);
            }
            Body::Response(r) => {
                top.bytes(b"y", b"r");
                let start = top.begin();
                encode_response(r, &mut top.buf);
                top.end(b"r", start);
            }
            Body::Error(e) => {
                top.bytes(b"y", b"e");
                let start = top.begin();
                top.buf.push(b'l');
                write_int(&mut top.buf, e.code);
                write_bytes(&mut top.buf, &e.message);
                top.buf.push(b'e');
                top.end(b"e", start);
            }
        }
        top.finish(out);
    }

    /// The encoded message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.encode_to(&mut out);
        out
    }
}

/// Reads just the transaction id and whether the packet is a query, for answering a
/// query that failed to decode with a protocol error.
pub fn peek_query_tid(packet: &[u8]) -> Option<&[u8]> {
    let v = Decoder::new()
        .lenient()
        .max_depth(MAX_DEPTH)
        .decode(packet)
        .ok()?;
    let d = v.as_dict()?;
    if d.get(b"y")?.as_bytes()? != b"q" {
        return None;
    }
    d.get(b"t")?.as_bytes()
}

fn bytes<'a>(d: &Dict<'a>, key: &[u8], field: &'static str) -> Result<Option<&'a [u8]>> {
    match d.get(key) {
        None => Ok(None),
        Some(Value::Bytes(b)) => Ok(Some(b)),
        Some(_) => Err(DecodeError::Invalid {
            field,
            why: "not a byte string",
        }),
    }
}

fn int(d: &Dict<'_>, key: &[u8], field: &'static str) -> Result<Option<i64>> {
    match d.get(key) {
        None => Ok(None),
        Some(Value::Int(i)) => Ok(Some(*i)),
        Some(_) => Err(DecodeError::Invalid {
            field,
            why: "not an integer",
        }),
    }
}

fn id_field(d: &Dict<'_>, key: &[u8], field: &'static str) -> Result<Option<Id>> {
    match bytes(d, key, field)? {
        None => Ok(None),
        Some(b) => Id::from_slice(b).map(Some).ok_or(DecodeError::Invalid {
            field,
            why: "not 20 bytes",
        }),
    }
}

fn req_id(d: &Dict<'_>, key: &[u8], field: &'static str) -> Result<Id> {
    id_field(d, key, field)?.ok_or(DecodeError::Missing { field })
}

fn fixed<const N: usize>(d: &Dict<'_>, key: &[u8], field: &'static str) -> Result<Option<[u8; N]>> {
    match bytes(d, key, field)? {
        None => Ok(None),
        Some(b) => b.try_into().map(Some).map_err(|_| DecodeError::Invalid {
            field,
            why: "wrong length",
        }),
    }
}

/// The bencoded bytes of a value found inside a decoded packet.
fn raw_value<'a>(v: &Value<'a>) -> Cow<'a, [u8]> {
    match v.raw() {
        Some(r) => Cow::Borrowed(r),
        None => Cow::Owned(v.to_bytes()),
    }
}

fn decode_query<'a>(top: &Dict<'a>) -> Result<Query<'a>> {
    let name = bytes(top, b"q", "q")?.ok_or(DecodeError::Missing { field: "q" })?;
    let a = match top.get(b"a") {
        Some(Value::Dict(a)) => a,
        Some(_) => return Err(DecodeError::NotADict { field: "a" }),
        None => return Err(DecodeError::Missing { field: "a" }),
    };
    let id = req_id(a, b"id", "a.id")?;
    let mut want = Want::default();
    if let Some(Value::List(l)) = a.get(b"want") {
        for w in l.iter() {
            match w.as_bytes() {
                Some(b"n4") => want.v4 = true,
                Some(b"n6") => want.v6 = true,
                _ => {}
            }
        }
    }
    let flag =
        |k: &[u8], f: &'static str| -> Result<bool> { Ok(int(a, k, f)?.is_some_and(|i| i != 0)) };
    let method = match name {
        b"ping" => Method::Ping,
        b"find_node" => Method::FindNode {
            target: req_id(a, b"target", "a.target")?,
        },
        b"get_peers" => Method::GetPeers {
            info_hash: req_id(a, b"info_hash", "a.info_hash")?,
            noseed: flag(b"noseed", "a.noseed")?,
            scrape: flag(b"scrape", "a.scrape")?,
        },
        b"announce_peer" => {
            let port = int(a, b"port", "a.port")?;
            let implied_port = flag(b"implied_port", "a.implied_port")?;
            let port = match port {
                Some(p) => u16::try_from(p).map_err(|_| DecodeError::Invalid {
                    field: "a.port",
                    why: "not a port number",
                })?,
                None if implied_port => 0,
                None => return Err(DecodeError::Missing { field: "a.port" }),
            };
            Method::AnnouncePeer {
                info_hash: req_id(a, b"info_hash", "a.info_hash")?,
                port,
                implied_port,
                token: bytes(a, b"token", "a.token")?
                    .ok_or(DecodeError::Missing { field: "a.token" })?,
                seed: flag(b"seed", "a.seed")?,
            }
        }
        b"get" => Method::Get {
            target: req_id(a, b"target", "a.target")?,
            seq: int(a, b"seq", "a.seq")?,
        },
        b"put" => Method::Put(Put {
            token: bytes(a, b"token", "a.token")?
                .ok_or(DecodeError::Missing { field: "a.token" })?,
            v: raw_value(a.get(b"v").ok_or(DecodeError::Missing { field: "a.v" })?),
            k: fixed(a, b"k", "a.k")?,
            sig: fixed(a, b"sig", "a.sig")?,
            seq: int(a, b"seq", "a.seq")?,
            cas: int(a, b"cas", "a.cas")?,
            salt: bytes(a, b"salt", "a.salt")?,
        }),
        b"sample_infohashes" => Method::SampleInfohashes {
            target: req_id(a, b"target", "a.target")?,
        },
        other => Method::Other {
            name: other,
            target: match id_field(a, b"target", "a.target")? {
                Some(t) => Some(t),
                None => id_field(a, b"info_hash", "a.info_hash")?,
            },
        },
    };
    Ok(Query { id, want, method })
}

fn decode_response<'a>(top: &Dict<'a>) -> Result<Response<'a>> {
    let r = match top.get(b"r") {
        Some(Value::Dict(r)) => r,
        Some(_) => return Err(DecodeError::NotADict { field: "r" }),
        None => return Err(DecodeError::Missing { field: "r" }),
    };
    let mut out = Response {
        id: req_id(r, b"id", "r.id")?,
        ..Response::default()
    };
    if let Some(b) = bytes(r, b"nodes", "r.nodes")? {
        out.nodes = compact_nodes(b, 4);
    }
    if let Some(b) = bytes(r, b"nodes6", "r.nodes6")? {
        out.nodes6 = compact_nodes(b, 16);
    }
    match r.get(b"values") {
        None => {}
        Some(Value::List(l)) => {
            out.values = l
                .iter()
                .filter_map(|v| v.as_bytes().and_then(compact_addr))
                .collect();
        }
        Some(_) => {
            return Err(DecodeError::Invalid {
                field: "r.values",
                why: "not a list",
            });
        }
    }
    out.token = bytes(r, b"token", "r.token")?;
    out.v = r.get(b"v").map(raw_value);
    out.k = fixed(r, b"k", "r.k")?;
    out.sig = fixed(r, b"sig", "r.sig")?;
    out.seq = int(r, b"seq", "r.seq")?;
    if let Some(b) = bytes(r, b"samples", "r.samples")? {
        out.samples = b.chunks_exact(20).filter_map(Id::from_slice).collect();
    }
    out.interval = int(r, b"interval", "r.interval")?;
    out.num = int(r, b"num", "r.num")?;
    out.bf_seeds = bytes(r, b"BFsd", "r.BFsd")?;
    out.bf_peers = bytes(r, b"BFpe", "r.BFpe")?;
    Ok(out)
}

fn decode_error<'a>(top: &Dict<'a>) -> Result<ErrorBody<'a>> {
    let Some(Value::List(l)) = top.get(b"e") else {
        return Err(DecodeError::Invalid {
            field: "e",
            why: "not a list",
        });
    };
    let code = l
        .get(0)
        .and_then(Value::as_int)
        .ok_or(DecodeError::Invalid {
            field: "e",
            why: "no integer code",
        })?;
    let message = l.get(1).and_then(Value::as_bytes).unwrap_or(b"");
    Ok(ErrorBody {
        code,
        message: Cow::Borrowed(message),
    })
}

/// Parses a 6-byte (IPv4) or 18-byte (IPv6) compact address.
pub fn compact_addr(b: &[u8]) -> Option<SocketAddr> {
    match b.len() {
        6 => {
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be_bytes([b[4], b[5]]),
            )))
        }
        18 => {
            let o: [u8; 16] = b[..16].try_into().ok()?;
            let port = u16::from_be_bytes([b[16], b[17]]);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(o),
                port,
                0,
                0,
            )))
        }
        _ => None,
    }
}

/// Appends the compact form of `addr` (6 or 18 bytes).
pub fn push_compact_addr(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// Parses compact node infos with `ip_len`-byte addresses; a trailing partial entry
/// is ignored.
fn compact_nodes(b: &[u8], ip_len: usize) -> Vec<NodeInfo> {
    b.chunks_exact(20 + ip_len + 2)
        .filter_map(|c| {
            Some(NodeInfo {
                id: Id::from_slice(&c[..20])?,
                addr: compact_addr(&c[20..])?,
            })
        })
        .collect()
}

fn encode_query<'a>(q: &Query<'a>, out: &mut Vec<u8>) -> &'a [u8] {
    let mut a = DictW::default();
    a.bytes(b"id", &q.id.0);
    if q.want.v4 || q.want.v6 {
        let start = a.begin();
        a.buf.push(b'l');
        if q.want.v4 {
            write_bytes(&mut a.buf, b"n4");
        }
        if q.want.v6 {
            write_bytes(&mut a.buf, b"n6");
        }
        a.buf.push(b'e');
        a.end(b"want", start);
    }
    let name: &'a [u8] = match &q.method {
        Method::Ping => b"ping",
        Method::FindNode { target } => {
            a.bytes(b"target", &target.0);
            b"find_node"
        }
        Method::GetPeers {
            info_hash,
            noseed,
            scrape,
        } => {
            a.bytes(b"info_hash", &info_hash.0);
            if *noseed {
                a.int(b"noseed", 1);
            }
            if *scrape {
                a.int(b"scrape", 1);
            }
            b"get_peers"
        }
        Method::AnnouncePeer {
            info_hash,
            port,
            implied_port,
            token,
            seed,
        } => {
            a.bytes(b"info_hash", &info_hash.0);
            a.int(b"port", i64::from(*port));
            if *implied_port {
                a.int(b"implied_port", 1);
            }
            a.bytes(b"token", token);
            if *seed {
                a.int(b"seed", 1);
            }
            b"announce_peer"
        }
        Method::Get { target, seq } => {
            a.bytes(b"target", &target.0);
            if let Some(s) = seq {
                a.int(b"seq", *s);
            }
            b"get"
        }
        Method::Put(p) => {
            a.bytes(b"token", p.token);
            a.raw(b"v", &p.v);
            if let Some(k) = &p.k {
                a.bytes(b"k", k);
            }
            if let Some(sig) = &p.sig {
                a.bytes(b"sig", sig);
            }
            if let Some(s) = p.seq {
                a.int(b"seq", s);
            }
            if let Some(c) = p.cas {
                a.int(b"cas", c);
            }
            if let Some(salt) = p.salt {
                a.bytes(b"salt", salt);
            }
            b"put"
        }
        Method::SampleInfohashes { target } => {
            a.bytes(b"target", &target.0);
            b"sample_infohashes"
        }
        Method::Other { name, target } => {
            if let Some(t) = target {
                a.bytes(b"target", &t.0);
            }
            name
        }
    };
    a.finish(out);
    name
}

fn encode_response(r: &Response<'_>, out: &mut Vec<u8>) {
    let mut d = DictW::default();
    d.buf
        .reserve(64 + r.nodes.len() * 26 + r.nodes6.len() * 38 + r.values.len() * 20);
    d.bytes(b"id", &r.id.0);
    for (key, list, v6, len) in [
        (&b"nodes"[..], &r.nodes, false, 26),
        (b"nodes6", &r.nodes6, true, 38),
    ] {
        let n = list.iter().filter(|n| n.addr.is_ipv6() == v6).count();
        if n == 0 {
            continue;
        }
        let start = d.begin();
        write_uint(&mut d.buf, (n * len) as u64);
        d.buf.push(b':');
        for node in list.iter().filter(|n| n.addr.is_ipv6() == v6) {
            d.buf.extend_from_slice(&node.id.0);
            push_compact_addr(&mut d.buf, &node.addr);
        }
        d.end(key, start);
    }
    if !r.values.is_empty() {
        let start = d.begin();
        d.buf.push(b'l');
        for v in &r.values {
            d.buf
                .extend_from_slice(if v.is_ipv4() { b"6:" } else { b"18:" });
            push_compact_addr(&mut d.buf, v);
        }
        d.buf.push(b'e');
        d.end(b"values", start);
    }
    if let Some(t) = r.token {
        d.bytes(b"token", t);
    }
    if let Some(v) = &r.v {
        d.raw(b"v", v);
    }
    if let Some(k) = &r.k {
        d.bytes(b"k", k);
    }
    if let Some(sig) = &r.sig {
        d.bytes(b"sig", sig);
    }
    if let Some(s) = r.seq {
        d.int(b"seq", s);
    }
    if !r.samples.is_empty() {
        let b: Vec<u8> = r.samples.iter().flat_map(|s| s.0).collect();
        d.bytes(b"samples", &b);
    }
    if let Some(i) = r.interval {
        d.int(b"interval", i);
    }
    if let Some(n) = r.num {
        d.int(b"num", n);
    }
    if let Some(b) = r.bf_seeds {
        d.bytes(b"BFsd", b);
    }
    if let Some(b) = r.bf_peers {
        d.bytes(b"BFpe", b);
    }
    d.finish(out);
}

/// A dictionary writer: values are encoded into one buffer as they come; `finish`
/// writes the entries sorted by key (a KRPC dictionary has at most a dozen).
#[derive(Default)]
struct DictW {
    buf: Vec<u8>,
    entries: Vec<(&'static [u8], usize, usize)>,
}

impl DictW {
    fn push(&mut self, k: &'static [u8], start: usize) {
        self.entries.push((k, start, self.buf.len()));
    }
    fn bytes(&mut self, k: &'static [u8], v: &[u8]) {
        let start = self.buf.len();
        write_bytes(&mut self.buf, v);
        self.push(k, start);
    }
    fn int(&mut self, k: &'static [u8], v: i64) {
        let start = self.buf.len();
        write_int(&mut self.buf, v);
        self.push(k, start);
    }
    fn raw(&mut self, k: &'static [u8], encoded: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(encoded);
        self.push(k, start);
    }
    /// Starts a value written directly into the buffer; close with [`DictW::end`].
    fn begin(&mut self) -> usize {
        self.buf.len()
    }
    fn end(&mut self, k: &'static [u8], start: usize) {
        self.push(k, start);
    }
    fn finish(mut self, out: &mut Vec<u8>) {
        self.entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        out.reserve(self.buf.len() + self.entries.len() * 8 + 2);
        out.push(b'd');
        for (k, start, end) in &self.entries {
            write_bytes(out, k);
            out.extend_from_slice(&self.buf[*start..*end]);
        }
        out.push(b'e');
    }
}

fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_uint(out, b.len() as u64);
    out.push(b':');
    out.extend_from_slice(b);
}

fn write_uint(out: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

fn write_int(out: &mut Vec<u8>, i: i64) {
    out.push(b'i');
    if i < 0 {
        out.push(b'-');
    }
    write_uint(out, i.unsigned_abs());
    out.push(b'e');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(c: u8) -> Id {
        Id([c; 20])
    }

    // The examples of BEP 5 (ids "abcdefghij0123456789" etc.).
    const AID: &[u8; 20] = b"abcdefghij0123456789";
    const BID: &[u8; 20] = b"mnopqrstuvwxyz123456";

    #[test]
    fn bep5_ping() {
        let q = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        let m = Message::decode(q).unwrap();
        assert_eq!(m.tid, b"aa");
        let Body::Query(query) = &m.body else {
            panic!()
        };
        assert_eq!(query.id, Id(*AID));
        assert_eq!(query.method, Method::Ping);
        assert_eq!(m.encode(), q);
        let r = b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re";
        let m = Message::decode(r).unwrap();
        let Body::Response(resp) = &m.body else {
            panic!()
        };
        assert_eq!(resp.id, Id(*BID));
        assert_eq!(m.encode(), r);
    }

    #[test]
    fn bep5_find_node_get_peers_announce() {
        let q = b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe";
        let m = Message::decode(q).unwrap();
        let Body::Query(query) = &m.body else {
            panic!()
        };
        assert_eq!(query.method, Method::FindNode { target: Id(*BID) });
        assert_eq!(m.encode(), q);

        let q = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe";
        let m = Message::decode(q).unwrap();
        assert_eq!(m.encode(), q);

        let r = b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re";
        let m = Message::decode(r).unwrap();
        let Body::Response(resp) = &m.body else {
            panic!()
        };
        assert_eq!(resp.token, Some(&b"aoeusnth"[..]));
        assert_eq!(resp.values.len(), 2);
        assert_eq!(resp.values[0], "97.120.106.101:11893".parse().unwrap());
        assert_eq!(m.encode(), r);

        let q = b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe";
        let m = Message::decode(q).unwrap();
        let Body::Query(query) = &m.body else {
            panic!()
        };
        assert_eq!(
            query.method,
            Method::AnnouncePeer {
                info_hash: Id(*BID),
                port: 6881,
                implied_port: true,
                token: b"aoeusnth",
                seed: false
            }
        );
        assert_eq!(m.encode(), q);
    }

    #[test]
    fn bep5_error() {
        let e = b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee";
        let m = Message::decode(e).unwrap();
        assert_eq!(
            m.body,
            Body::Error(ErrorBody {
                code: 201,
                message: Cow::Borrowed(b"A Generic Error Ocurred")
            })
        );
        assert_eq!(m.encode(), e);
    }

    #[test]
    fn lenient_unsorted_and_unknown_fields() {
        let q = b"d1:y1:q1:q4:ping1:t2:aa1:ad2:id20:abcdefghij01234567895:extrai1eee";
        let m = Message::decode(q).unwrap();
        assert!(matches!(m.body, Body::Query(_)));
    }

    #[test]
    fn rejects() {
        assert!(Message::decode(b"").is_err());
        assert!(Message::decode(b"le").is_err());
        assert!(matches!(
            Message::decode(b"d1:t2:aa1:y1:qe"),
            Err(DecodeError::Missing { field: "q" })
        ));
        assert!(matches!(
            Message::decode(b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe"),
            Err(DecodeError::Invalid { field: "a.id", .. })
        ));
        assert_eq!(
            peek_query_tid(b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe"),
            Some(&b"aa"[..])
        );
        assert!(Message::decode(b"d1:t2:aa1:y1:xe").is_err());
    }

    #[test]
    fn nodes_and_ip() {
        let m = Message {
            tid: b"xy",
            version: Some(b"RV01"),
            ip: Some("1.2.3.4:5".parse().unwrap()),
            read_only: true,
            body: Body::Response(Response {
                id: id(1),
                nodes: vec![NodeInfo {
                    id: id(2),
                    addr: "10.0.0.1:6881".parse().unwrap(),
                }],
                nodes6: vec![NodeInfo {
                    id: id(3),
                    addr: "[::1]:6881".parse().unwrap(),
                }],
                ..Default::default()
            }),
        };
        let b = m.encode();
        // Canonical: the strict decoder accepts it.
        bencode::decode(&b).unwrap();
        assert_eq!(Message::decode(&b).unwrap(), m);
    }
}
