//! The HTTP tracker protocol (BEP 3, BEP 23 compact peers, BEP 7 `peers6`, BEP 48 scrape):
//! pure query building/parsing and bencoded reply encoding/parsing. No I/O here.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use bencode::{Decoder, Dict, List, Value};

use crate::server::AnnounceReply;
use crate::types::{Announce, AnnounceResponse, Event, InfoHash, PeerId, ScrapeStats};
use crate::udp::{AddrFamily, decode_compact_peers, encode_compact_peers};

/// Most info hashes accepted in one scrape query.
pub const MAX_SCRAPE_HASHES: usize = 100;
/// Most peers kept from one announce reply (the rest are ignored).
pub const MAX_REPLY_PEERS: usize = 10_000;

/// A reply the client could not use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpResponseError {
    /// The tracker refused: `failure reason`.
    #[error("tracker failure: {0}")]
    Failure(String),
    /// The body is not bencode.
    #[error("reply is not bencode: {0}")]
    Bencode(#[from] bencode::DecodeError),
    /// The body is bencode of the wrong shape.
    #[error("malformed reply: {0}")]
    Malformed(String),
}

/// A query the server could not use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// A required parameter is absent.
    #[error("missing parameter {0}")]
    Missing(&'static str),
    /// A parameter has a bad value.
    #[error("invalid parameter {name}: {why}")]
    Invalid {
        /// The parameter.
        name: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// Bad percent-encoding at a byte offset of the query.
    #[error("bad percent-encoding at offset {0}")]
    Encoding(usize),
    /// Too many `info_hash` parameters in a scrape.
    #[error("too many info hashes ({0}, at most {MAX_SCRAPE_HASHES})")]
    TooMany(usize),
}

/// Percent-encode raw bytes for a query string (unreserved characters kept).
pub fn percent_encode(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Decode a percent-encoded query component (`+` is a space). `base` is its offset in the
/// whole query, for errors.
pub fn percent_decode(s: &str, base: usize) -> Result<Vec<u8>, QueryError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let (Some(h), Some(l)) = (
                    b.get(i + 1).and_then(|&c| hex(c)),
                    b.get(i + 2).and_then(|&c| hex(c)),
                ) else {
                    return Err(QueryError::Encoding(base + i));
                };
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The announce URL: `base` (the tracker's announce URL, which may already have a query)
/// plus every BEP 3 parameter, `compact=1`, and `numwant`/`key`/`trackerid` when set.
pub fn announce_url(base: &str, a: &Announce) -> String {
    let mut u = String::with_capacity(base.len() + 200);
    u.push_str(base);
    u.push(if base.contains('?') { '&' } else { '?' });
    u.push_str("info_hash=");
    percent_encode(&a.info_hash.0, &mut u);
    u.push_str("&peer_id=");
    percent_encode(&a.peer_id.0, &mut u);
    let _ = write!(
        u,
        "&port={}&uploaded={}&downloaded={}&left={}&compact=1",
        a.port, a.uploaded, a.downloaded, a.left
    );
    if let Some(e) = a.event.as_str() {
        let _ = write!(u, "&event={e}");
    }
    if let Some(n) = a.numwant {
        let _ = write!(u, "&numwant={n}");
    }
    if let Some(k) = a.key {
        let _ = write!(u, "&key={k:08X}");
    }
    if let Some(t) = &a.tracker_id {
        u.push_str("&trackerid=");
        percent_encode(t, &mut u);
    }
    u
}

/// The scrape URL of an announce URL (BEP 48): the last path segment must start with
/// `announce`, which becomes `scrape`. `None` if the tracker has no scrape convention.
pub fn scrape_url(announce: &str) -> Option<String> {
    let (path, query) = match announce.find('?') {
        Some(q) => announce.split_at(q),
        None => (announce, ""),
    };
    let slash = path.rfind('/')?;
    let last = &path[slash + 1..];
    let rest = last.strip_prefix("announce")?;
    Some(format!("{}scrape{rest}{query}", &path[..=slash]))
}

/// A scrape URL for `hashes` on top of a scrape base URL from [`scrape_url`].
pub fn scrape_query_url(scrape_base: &str, hashes: &[InfoHash]) -> String {
    let mut u = scrape_base.to_owned();
    let mut sep = if scrape_base.contains('?') { '&' } else { '?' };
    for h in hashes {
        u.push(sep);
        sep = '&';
        u.push_str("info_hash=");
        percent_encode(&h.0, &mut u);
    }
    u
}

fn malformed(s: impl Into<String>) -> HttpResponseError {
    HttpResponseError::Malformed(s.into())
}

fn u32_field(d: &Dict<'_>, key: &[u8]) -> Result<Option<u32>, HttpResponseError> {
    match d.get(key) {
        None => Ok(None),
        Some(Value::Int(i)) => Ok(Some((*i).clamp(0, u32::MAX as i64) as u32)),
        Some(v) => Err(malformed(format!(
            "{} is a {}, not an integer",
            String::from_utf8_lossy(key),
            v.type_name()
        ))),
    }
}

fn string_field(d: &Dict<'_>, key: &[u8]) -> Option<String> {
    d.get(key)
        .and_then(Value::as_bytes)
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

fn dict_peers(list: &List<'_>, out: &mut Vec<SocketAddr>) {
    for p in list.iter().take(MAX_REPLY_PEERS) {
        let Some(d) = p.as_dict() else { continue };
        let ip = d
            .get(b"ip")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<IpAddr>().ok());
        let port = d
            .get(b"port")
            .and_then(Value::as_int)
            .and_then(|p| u16::try_from(p).ok());
        if let (Some(ip), Some(port)) = (ip, port) {
            out.push(SocketAddr::new(ip, port));
        }
    }
}

/// Parse an announce reply body. Accepts compact (`peers` string, `peers6` string) and
/// dictionary (`peers` list) forms; non-canonical bencode is tolerated.
pub fn parse_announce_response(body: &[u8]) -> Result<AnnounceResponse, HttpResponseError> {
    let v = Decoder::new().lenient().max_depth(16).decode(body)?;
    let d = v
        .as_dict()
        .ok_or_else(|| malformed(format!("top level is a {}, not a dict", v.type_name())))?;
    if let Some(reason) = string_field(d, b"failure reason") {
        return Err(HttpResponseError::Failure(reason));
    }
    let interval = u32_field(d, b"interval")?.ok_or_else(|| malformed("no interval"))?;
    let mut peers = Vec::new();
    match d.get(b"peers") {
        Some(Value::Bytes(b)) => {
            let b = &b[..(b.len() / 6 * 6).min(MAX_REPLY_PEERS * 6)];
            decode_compact_peers(b, AddrFamily::V4, &mut peers)
        }
        Some(Value::List(l)) => dict_peers(l, &mut peers),
        Some(other) => {
            return Err(malformed(format!(
                "peers is a {}, not a string or list",
                other.type_name()
            )));
        }
        None => {}
    }
    if let Some(b) = d.get(b"peers6").and_then(Value::as_bytes) {
        let b = &b[..(b.len() / 18 * 18).min(MAX_REPLY_PEERS * 18)];
        decode_compact_peers(b, AddrFamily::V6, &mut peers);
    }
    Ok(AnnounceResponse {
        interval,
        min_interval: u32_field(d, b"min interval")?,
        complete: u32_field(d, b"complete")?,
        incomplete: u32_field(d, b"incomplete")?,
        peers,
        warning: string_field(d, b"warning message"),
        tracker_id: d
            .get(b"tracker id")
            .and_then(Value::as_bytes)
            .map(<[u8]>::to_vec),
    })
}

/// Parse a scrape reply: the `files` dictionary, in the tracker's order.
pub fn parse_scrape_response(
    body: &[u8],
) -> Result<Vec<(InfoHash, ScrapeStats)>, HttpResponseError> {
    let v = Decoder::new().lenient().max_depth(16).decode(body)?;
    let d = v
        .as_dict()
        .ok_or_else(|| malformed(format!("top level is a {}, not a dict", v.type_name())))?;
    if let Some(reason) = string_field(d, b"failure reason") {
        return Err(HttpResponseError::Failure(reason));
    }
    let files = d
        .get(b"files")
        .and_then(Value::as_dict)
        .ok_or_else(|| malformed("no files dictionary"))?;
    let mut out = Vec::with_capacity(files.len());
    for (k, v) in files.iter() {
        let Some(h) = scrape_key(k) else {
            return Err(malformed(format!("files key of {} bytes", k.len())));
        };
        let f = v
            .as_dict()
            .ok_or_else(|| malformed("files entry is not a dict"))?;
        out.push((
            InfoHash(h),
            ScrapeStats {
                complete: u32_field(f, b"complete")?.unwrap_or(0),
                downloaded: u32_field(f, b"downloaded")?.unwrap_or(0),
                incomplete: u32_field(f, b"incomplete")?.unwrap_or(0),
            },
        ));
    }
    Ok(out)
}

/// A `files` key: 20 raw bytes; or, as some trackers send, 40 hex digits or the UTF-8
/// encoding of a latin-1 string of 20 characters (npm `bittorrent-tracker` 11).
fn scrape_key(k: &[u8]) -> Option<[u8; 20]> {
    if let Ok(h) = <[u8; 20]>::try_from(k) {
        return Some(h);
    }
    let s = std::str::from_utf8(k).ok()?;
    if s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut h = [0u8; 20];
        for (i, o) in h.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        return Some(h);
    }
    let bytes: Vec<u8> = s
        .chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<_>>()?;
    bytes.try_into().ok()
}

/// An announce query as a server parses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceQuery {
    /// The swarm.
    pub info_hash: InfoHash,
    /// The peer.
    pub peer_id: PeerId,
    /// Port.
    pub port: u16,
    /// Bytes uploaded.
    pub uploaded: u64,
    /// Bytes downloaded.
    pub downloaded: u64,
    /// Bytes left.
    pub left: u64,
    /// Event.
    pub event: Event,
    /// `compact=1` (the default when absent, as most trackers do).
    pub compact: bool,
    /// `no_peer_id=1`.
    pub no_peer_id: bool,
    /// Peers wanted.
    pub numwant: Option<u32>,
    /// The key, as 32 bits (hex keys parsed, other strings hashed).
    pub key: Option<u32>,
}

fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str, usize)> {
    let mut offset = 0;
    query.split('&').map(move |pair| {
        let at = offset;
        offset += pair.len() + 1;
        match pair.split_once('=') {
            Some((k, v)) => (k, v, at + k.len() + 1),
            None => (pair, "", at + pair.len()),
        }
    })
}

fn twenty(v: &str, at: usize, name: &'static str) -> Result<[u8; 20], QueryError> {
    percent_decode(v, at)?
        .try_into()
        .map_err(|_| QueryError::Invalid {
            name,
            why: "not 20 bytes",
        })
}

fn number<T: std::str::FromStr>(v: &str, name: &'static str) -> Result<T, QueryError> {
    v.parse().map_err(|_| QueryError::Invalid {
        name,
        why: "not a number",
    })
}

fn key_u32(raw: &[u8]) -> u32 {
    if let Some(k) = std::str::from_utf8(raw)
        .ok()
        .filter(|s| !s.is_empty() && s.len() <= 8)
        .and_then(|s| u32::from_str_radix(s, 16).ok())
    {
        return k;
    }
    // FNV-1a: a stable 32-bit fingerprint of an arbitrary key.
    raw.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

/// Parse the query string (after `?`) of an announce request.
pub fn parse_announce_query(query: &str) -> Result<AnnounceQuery, QueryError> {
    let (mut ih, mut pid, mut port) = (None, None, None);
    let mut q = AnnounceQuery {
        info_hash: InfoHash::default(),
        peer_id: PeerId::default(),
        port: 0,
        uploaded: 0,
        downloaded: 0,
        left: 0,
        event: Event::None,
        compact: true,
        no_peer_id: false,
        numwant: None,
        key: None,
    };
    for (k, v, at) in query_pairs(query) {
        match k {
            "info_hash" => ih = Some(twenty(v, at, "info_hash")?),
            "peer_id" => pid = Some(twenty(v, at, "peer_id")?),
            "port" => port = Some(number::<u16>(v, "port")?),
            "uploaded" => q.uploaded = number(v, "uploaded")?,
            "downloaded" => q.downloaded = number(v, "downloaded")?,
            "left" => q.left = number(v, "left")?,
            "event" => q.event = Event::from_name(&percent_decode(v, at)?),
            "compact" => q.compact = v != "0",
            "no_peer_id" => q.no_peer_id = v == "1",
            "numwant" => {
                q.numwant = number::<i64>(v, "numwant")
                    .ok()
                    .map(|n| n.clamp(0, u32::MAX as i64) as u32)
            }
            "key" => q.key = Some(key_u32(&percent_decode(v, at)?)),
            _ => {}
        }
    }
    q.info_hash = InfoHash(ih.ok_or(QueryError::Missing("info_hash"))?);
    q.peer_id = PeerId(pid.ok_or(QueryError::Missing("peer_id"))?);
    q.port = port.ok_or(QueryError::Missing("port"))?;
    if q.port == 0 {
        return Err(QueryError::Invalid {
            name: "port",
            why: "port 0",
        });
    }
    Ok(q)
}

/// Parse the query string of a scrape request: its `info_hash` parameters.
pub fn parse_scrape_query(query: &str) -> Result<Vec<InfoHash>, QueryError> {
    let mut out = Vec::new();
    for (k, v, at) in query_pairs(query) {
        if k == "info_hash" {
            if out.len() == MAX_SCRAPE_HASHES {
                return Err(QueryError::TooMany(out.len() + 1));
            }
            out.push(InfoHash(twenty(v, at, "info_hash")?));
        }
    }
    Ok(out)
}

/// A `failure reason` reply.
pub fn encode_failure(reason: &str) -> Vec<u8> {
    let mut d = Dict::new();
    d.insert(b"failure reason", Value::Bytes(reason.as_bytes()));
    Value::Dict(d).to_bytes()
}

/// An announce reply: compact `peers` (IPv4) and `peers6` (IPv6), or the dictionary list
/// (with peer ids unless `no_peer_id`).
pub fn encode_announce_reply(reply: &AnnounceReply, compact: bool, no_peer_id: bool) -> Vec<u8> {
    let addrs: Vec<SocketAddr> = reply.peers.iter().map(|p| p.1).collect();
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    let ips: Vec<String> = if compact {
        encode_compact_peers(&addrs, AddrFamily::V4, &mut v4);
        encode_compact_peers(&addrs, AddrFamily::V6, &mut v6);
        Vec::new()
    } else {
        addrs
            .iter()
            .map(|a| a.ip().to_canonical().to_string())
            .collect()
    };
    let mut d = Dict::new();
    d.insert(b"interval", Value::Int(reply.interval.into()));
    d.insert(b"min interval", Value::Int(reply.min_interval.into()));
    d.insert(b"complete", Value::Int(reply.complete.into()));
    d.insert(b"incomplete", Value::Int(reply.incomplete.into()));
    if compact {
        d.insert(b"peers", Value::Bytes(&v4));
        if !v6.is_empty() {
            d.insert(b"peers6", Value::Bytes(&v6));
        }
    } else {
        let mut l = List::new();
        for ((id, addr), ip) in reply.peers.iter().zip(&ips) {
            let mut p = Dict::new();
            p.insert(b"ip", Value::Bytes(ip.as_bytes()));
            p.insert(b"port", Value::Int(addr.port().into()));
            if !no_peer_id {
                p.insert(b"peer id", Value::Bytes(&id.0));
            }
            l.push(Value::Dict(p));
        }
        d.insert(b"peers", Value::List(l));
    }
    Value::Dict(d).to_bytes()
}

/// A scrape reply (BEP 48): `files` keyed by raw info hash.
pub fn encode_scrape_reply(files: &[(InfoHash, ScrapeStats)]) -> Vec<u8> {
    let mut fd = Dict::new();
    for (h, s) in files {
        let mut e = Dict::new();
        e.insert(b"complete", Value::Int(s.complete.into()));
        e.insert(b"downloaded", Value::Int(s.downloaded.into()));
        e.insert(b"incomplete", Value::Int(s.incomplete.into()));
        fd.insert(&h.0, Value::Dict(e));
    }
    let mut d = Dict::new();
    d.insert(b"files", Value::Dict(fd));
    Value::Dict(d).to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn announce_url_roundtrips_through_query_parser() {
        let a = Announce {
            uploaded: 1,
            downloaded: 2,
            left: 3,
            event: Event::Started,
            numwant: Some(30),
            key: Some(0xdead_beef),
            tracker_id: Some(b"t 1".to_vec()),
            ..Announce::new(InfoHash([0xff; 20]), PeerId(*b"-RV0001-abc%&=+ 1234"), 6881)
        };
        let url = announce_url("http://t.example/announce?passkey=x", &a);
        assert!(url.starts_with("http://t.example/announce?passkey=x&info_hash=%FF%FF"));
        let q = parse_announce_query(url.split_once('?').unwrap().1).unwrap();
        assert_eq!(q.info_hash, a.info_hash);
        assert_eq!(q.peer_id, a.peer_id);
        assert_eq!((q.port, q.uploaded, q.downloaded, q.left), (6881, 1, 2, 3));
        assert_eq!(q.event, Event::Started);
        assert_eq!(q.numwant, Some(30));
        assert_eq!(q.key, Some(0xdead_beef));
        assert!(q.compact);
    }

    #[test]
    fn query_errors() {
        assert_eq!(
            parse_announce_query("peer_id=12345678901234567890&port=1"),
            Err(QueryError::Missing("info_hash"))
        );
        assert!(matches!(
            parse_announce_query("info_hash=%zz"),
            Err(QueryError::Encoding(10))
        ));
        assert!(matches!(
            parse_announce_query("info_hash=abc"),
            Err(QueryError::Invalid { .. })
        ));
    }

    #[test]
    fn scrape_urls() {
        assert_eq!(
            scrape_url("http://x/announce").as_deref(),
            Some("http://x/scrape")
        );
        assert_eq!(
            scrape_url("http://x/a/announce.php?k=1").as_deref(),
            Some("http://x/a/scrape.php?k=1")
        );
        assert_eq!(scrape_url("http://x/a"), None);
        assert_eq!(scrape_url("http://x/announce/x"), None);
        let u = scrape_query_url("http://x/scrape", &[InfoHash([1; 20]), InfoHash([2; 20])]);
        assert_eq!(
            parse_scrape_query(u.split_once('?').unwrap().1).unwrap(),
            vec![InfoHash([1; 20]), InfoHash([2; 20])]
        );
    }

    fn reply() -> AnnounceReply {
        AnnounceReply {
            interval: 120,
            min_interval: 60,
            complete: 1,
            incomplete: 2,
            peers: vec![
                (PeerId([1; 20]), "1.2.3.4:5".parse().unwrap()),
                (PeerId([2; 20]), "[2001:db8::1]:6".parse().unwrap()),
            ],
        }
    }

    #[test]
    fn compact_and_dict_replies_parse_back() {
        for compact in [true, false] {
            let body = encode_announce_reply(&reply(), compact, false);
            let r = parse_announce_response(&body).unwrap();
            assert_eq!(r.interval, 120);
            assert_eq!(r.min_interval, Some(60));
            assert_eq!((r.complete, r.incomplete), (Some(1), Some(2)));
            assert_eq!(
                r.peers,
                reply().peers.iter().map(|p| p.1).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn failure_and_warning() {
        assert_eq!(
            parse_announce_response(&encode_failure("nope")),
            Err(HttpResponseError::Failure("nope".into()))
        );
        let r = parse_announce_response(
            b"d8:intervali5e15:warning message4:slow5:peers6:\x01\x02\x03\x04\x00\x05e",
        )
        .unwrap();
        assert_eq!(r.warning.as_deref(), Some("slow"));
        assert_eq!(r.peers, vec!["1.2.3.4:5".parse::<SocketAddr>().unwrap()]);
        assert!(matches!(
            parse_announce_response(b"le"),
            Err(HttpResponseError::Malformed(_))
        ));
    }

    #[test]
    fn scrape_reply_roundtrip() {
        let files = vec![(
            InfoHash([3; 20]),
            ScrapeStats {
                complete: 1,
                downloaded: 2,
                incomplete: 3,
            },
        )];
        assert_eq!(
            parse_scrape_response(&encode_scrape_reply(&files)).unwrap(),
            files
        );
    }

    #[test]
    fn scrape_keys_in_other_forms() {
        let h = [0xab; 20];
        assert_eq!(scrape_key(&h), Some(h));
        assert_eq!(scrape_key("ab".repeat(20).as_bytes()), Some(h));
        assert_eq!(scrape_key("\u{ab}".repeat(20).as_bytes()), Some(h));
        assert_eq!(scrape_key(b"short"), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_announce_response(&b);
            let _ = parse_scrape_response(&b);
        }

        #[test]
        fn arbitrary_queries_never_panic(s in "[a-z_=&%0-9A-F+]{0,200}") {
            let _ = parse_announce_query(&s);
            let _ = parse_scrape_query(&s);
        }

        #[test]
        fn percent_roundtrip(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut s = String::new();
            percent_encode(&b, &mut s);
            prop_assert_eq!(percent_decode(&s, 0).unwrap(), b);
        }
    }
}
