//! Extension messages carried in BEP 10 `extended` frames: the extension handshake
//! (BEP 10), `ut_metadata` (BEP 9) and `ut_pex` (BEP 11).
//!
//! Parsing is lenient where real clients are sloppy (unsorted keys, unknown keys,
//! optional fields of the wrong type are ignored) and strict where a mistake would be
//! acted on (message types, piece numbers, compact address lengths).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use bencode::{Dict, Value};
use bytes::{BufMut, Bytes};

use crate::error::ExtensionError;
use crate::message::Message;

/// The extended message id of the extension handshake.
pub const HANDSHAKE_ID: u8 = 0;
/// The conventional name of the BEP 9 metadata extension in `m`.
pub const UT_METADATA: &str = "ut_metadata";
/// The conventional name of the BEP 11 peer-exchange extension in `m`.
pub const UT_PEX: &str = "ut_pex";
/// The size of a metadata piece (BEP 9).
pub const METADATA_PIECE_LEN: usize = 16 * 1024;

fn decode_dict<'a>(
    message: &'static str,
    payload: &'a [u8],
) -> Result<(Dict<'a>, usize), ExtensionError> {
    let (v, used) = bencode::Decoder::new()
        .lenient()
        .max_depth(16)
        .decode_prefix(payload)
        .map_err(|source| ExtensionError::Bencode { message, source })?;
    match v {
        Value::Dict(d) => Ok((d, used)),
        other => Err(ExtensionError::NotADict {
            message,
            found: other.type_name(),
        }),
    }
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(|a| IpAddr::V4(a.into())),
        16 => <[u8; 16]>::try_from(b).ok().map(|a| IpAddr::V6(a.into())),
        _ => None,
    }
}

fn ip_octets(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The BEP 10 extension handshake dictionary (extended message id 0).
///
/// ```
/// use rivulet_peer_wire::ExtensionHandshake;
///
/// let mut hs = ExtensionHandshake::new();
/// hs.m.insert("ut_metadata".into(), 3);
/// hs.metadata_size = Some(31_235);
/// hs.reqq = Some(250);
/// let bytes = hs.to_bytes();
/// assert_eq!(&bytes[..], b"d1:md11:ut_metadatai3ee13:metadata_sizei31235e4:reqqi250ee");
/// assert_eq!(ExtensionHandshake::parse(&bytes).unwrap(), hs);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExtensionHandshake {
    /// Extension name → the id the sender wants to receive it under (0 = disabled).
    pub m: BTreeMap<String, u8>,
    /// The sender's listen port (`p`).
    pub p: Option<u16>,
    /// Client name and version (`v`).
    pub v: Option<String>,
    /// The receiver's address as the sender sees it (`yourip`).
    pub yourip: Option<IpAddr>,
    /// The sender's IPv4 address (`ipv4`).
    pub ipv4: Option<Ipv4Addr>,
    /// The sender's IPv6 address (`ipv6`).
    pub ipv6: Option<Ipv6Addr>,
    /// How many outstanding requests the sender queues (`reqq`).
    pub reqq: Option<u32>,
    /// The size of the info dictionary in bytes (`metadata_size`, BEP 9).
    pub metadata_size: Option<u64>,
    /// The sender only uploads (`upload_only`, BEP 21).
    pub upload_only: bool,
}

impl ExtensionHandshake {
    /// An empty handshake.
    pub fn new() -> Self {
        ExtensionHandshake::default()
    }

    /// The id the sender assigned to extension `name`, if enabled.
    pub fn id_of(&self, name: &str) -> Option<u8> {
        self.m.get(name).copied().filter(|&id| id != 0)
    }

    /// Parses the payload of an extended message with id 0.
    pub fn parse(payload: &[u8]) -> Result<Self, ExtensionError> {
        const MSG: &str = "extension handshake";
        let (d, _) = decode_dict(MSG, payload)?;
        let mut hs = ExtensionHandshake::new();
        if let Some(m) = d.get(b"m") {
            let m = m.as_dict().ok_or(ExtensionError::BadKey {
                message: MSG,
                key: "m",
                expected: "a dictionary",
            })?;
            for (k, v) in m.iter() {
                let id = v.as_int().ok_or(ExtensionError::BadKey {
                    message: MSG,
                    key: "m",
                    expected: "a dictionary of integers",
                })?;
                let id = u8::try_from(id).map_err(|_| ExtensionError::OutOfRange {
                    message: MSG,
                    key: "m",
                    value: id,
                })?;
                hs.m.insert(String::from_utf8_lossy(k).into_owned(), id);
            }
        }
        let int = |k: &[u8]| d.get(k).and_then(Value::as_int);
        hs.p = int(b"p").and_then(|p| u16::try_from(p).ok());
        hs.v = d
            .get(b"v")
            .and_then(Value::as_bytes)
            .map(|b| String::from_utf8_lossy(b).into_owned());
        hs.yourip = d
            .get(b"yourip")
            .and_then(Value::as_bytes)
            .and_then(ip_from_bytes);
        hs.ipv4 = d
            .get(b"ipv4")
            .and_then(Value::as_bytes)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(Ipv4Addr::from);
        hs.ipv6 = d
            .get(b"ipv6")
            .and_then(Value::as_bytes)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .map(Ipv6Addr::from);
        hs.reqq = int(b"reqq").and_then(|v| u32::try_from(v).ok());
        hs.metadata_size = int(b"metadata_size").and_then(|v| u64::try_from(v).ok());
        hs.upload_only = int(b"upload_only").is_some_and(|v| v != 0);
        Ok(hs)
    }

    /// Encodes the dictionary (keys sorted, absent fields omitted).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut m = Dict::new();
        for (k, v) in &self.m {
            m.insert(k.as_bytes(), Value::Int(i64::from(*v)));
        }
        let yourip = self.yourip.as_ref().map(ip_octets);
        let ipv4 = self.ipv4.map(|a| a.octets());
        let ipv6 = self.ipv6.map(|a| a.octets());
        let mut d = Dict::new();
        if let Some(ip) = &ipv4 {
            d.insert(b"ipv4", Value::Bytes(ip));
        }
        if let Some(ip) = &ipv6 {
            d.insert(b"ipv6", Value::Bytes(ip));
        }
        d.insert(b"m", Value::Dict(m));
        if let Some(n) = self.metadata_size {
            d.insert(
                b"metadata_size",
                Value::Int(i64::try_from(n).unwrap_or(i64::MAX)),
            );
        }
        if let Some(p) = self.p {
            d.insert(b"p", Value::Int(i64::from(p)));
        }
        if let Some(n) = self.reqq {
            d.insert(b"reqq", Value::Int(i64::from(n)));
        }
        if self.upload_only {
            d.insert(b"upload_only", Value::Int(1));
        }
        if let Some(v) = &self.v {
            d.insert(b"v", Value::Bytes(v.as_bytes()));
        }
        if let Some(ip) = &yourip {
            d.insert(b"yourip", Value::Bytes(ip));
        }
        Value::Dict(d).to_bytes()
    }

    /// The handshake as an `extended` message with id 0.
    pub fn to_message(&self) -> Message {
        Message::Extended {
            id: HANDSHAKE_ID,
            payload: Bytes::from(self.to_bytes()),
        }
    }
}

/// A BEP 9 `ut_metadata` message.
///
/// ```
/// use bytes::Bytes;
/// use rivulet_peer_wire::MetadataMessage;
///
/// let msg = MetadataMessage::Data { piece: 0, total_size: 5, data: Bytes::from_static(b"d1:xe") };
/// let wire = msg.to_bytes();
/// assert_eq!(&wire[..], b"d8:msg_typei1e5:piecei0e10:total_sizei5eed1:xe");
/// assert_eq!(MetadataMessage::parse(&Bytes::from(wire)).unwrap(), msg);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetadataMessage {
    /// `msg_type` 0: asks for a metadata piece.
    Request {
        /// The piece number (16 KiB pieces of the info dictionary).
        piece: u32,
    },
    /// `msg_type` 1: a metadata piece.
    Data {
        /// The piece number.
        piece: u32,
        /// The size of the whole info dictionary.
        total_size: u64,
        /// The piece's bytes (at most 16 KiB), sharing the message buffer.
        data: Bytes,
    },
    /// `msg_type` 2: the sender will not serve this piece.
    Reject {
        /// The piece number.
        piece: u32,
    },
}

impl MetadataMessage {
    /// Parses the payload of a `ut_metadata` extended message.
    pub fn parse(payload: &Bytes) -> Result<Self, ExtensionError> {
        const MSG: &str = "ut_metadata";
        let (d, used) = decode_dict(MSG, payload)?;
        let int = |key: &'static str| {
            d.get(key.as_bytes())
                .and_then(Value::as_int)
                .ok_or(ExtensionError::BadKey {
                    message: MSG,
                    key,
                    expected: "an integer",
                })
        };
        let msg_type = int("msg_type")?;
        let piece = int("piece")?;
        let piece = u32::try_from(piece).map_err(|_| ExtensionError::OutOfRange {
            message: MSG,
            key: "piece",
            value: piece,
        })?;
        Ok(match msg_type {
            0 => MetadataMessage::Request { piece },
            1 => {
                let total = int("total_size")?;
                let total_size = u64::try_from(total).map_err(|_| ExtensionError::OutOfRange {
                    message: MSG,
                    key: "total_size",
                    value: total,
                })?;
                let data = payload.slice(used..);
                if data.len() > METADATA_PIECE_LEN {
                    return Err(ExtensionError::MetadataPieceTooLong { len: data.len() });
                }
                MetadataMessage::Data {
                    piece,
                    total_size,
                    data,
                }
            }
            2 => MetadataMessage::Reject { piece },
            other => {
                return Err(ExtensionError::OutOfRange {
                    message: MSG,
                    key: "msg_type",
                    value: other,
                });
            }
        })
    }

    /// Writes the payload (dictionary, then the data for a `Data` message).
    pub fn encode(&self, dst: &mut impl BufMut) {
        let (t, piece) = match self {
            MetadataMessage::Request { piece } => (0, piece),
            MetadataMessage::Data { piece, .. } => (1, piece),
            MetadataMessage::Reject { piece } => (2, piece),
        };
        let mut d = Dict::new();
        d.insert(b"msg_type", Value::Int(t));
        d.insert(b"piece", Value::Int(i64::from(*piece)));
        if let MetadataMessage::Data { total_size, .. } = self {
            d.insert(
                b"total_size",
                Value::Int(i64::try_from(*total_size).unwrap_or(i64::MAX)),
            );
        }
        dst.put_slice(&Value::Dict(d).to_bytes());
        if let MetadataMessage::Data { data, .. } = self {
            dst.put_slice(data);
        }
    }

    /// The payload in a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }

    /// This message as an `extended` frame under the id the receiver assigned.
    pub fn to_message(&self, ext_id: u8) -> Message {
        Message::Extended {
            id: ext_id,
            payload: Bytes::from(self.to_bytes()),
        }
    }
}

/// BEP 11 peer flags (`added.f`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PexFlags(pub u8);

impl PexFlags {
    /// The peer prefers encryption.
    pub const PREFERS_ENCRYPTION: u8 = 0x01;
    /// The peer is a seed or upload-only.
    pub const SEED: u8 = 0x02;
    /// The peer supports uTP.
    pub const UTP: u8 = 0x04;
    /// The peer supports the holepunch extension.
    pub const HOLEPUNCH: u8 = 0x08;
    /// The peer was reachable (outgoing connection).
    pub const REACHABLE: u8 = 0x10;

    /// Whether all bits of `flag` are set.
    pub fn contains(self, flag: u8) -> bool {
        self.0 & flag == flag
    }
}

/// A BEP 11 `ut_pex` message: peers added and dropped since the last one.
///
/// ```
/// use rivulet_peer_wire::{PexFlags, PexMessage};
///
/// let mut pex = PexMessage::default();
/// pex.added.push(("10.0.0.1:6881".parse().unwrap(), PexFlags(PexFlags::SEED)));
/// pex.dropped.push("[::1]:51413".parse().unwrap());
/// let bytes = pex.to_bytes();
/// assert_eq!(PexMessage::parse(&bytes).unwrap(), pex);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PexMessage {
    /// Peers connected since the last message, with their flags (IPv4 first, then IPv6
    /// after a round trip).
    pub added: Vec<(SocketAddr, PexFlags)>,
    /// Peers disconnected since the last message.
    pub dropped: Vec<SocketAddr>,
}

fn compact_peers(
    d: &Dict<'_>,
    key: &'static str,
    v6: bool,
) -> Result<Vec<SocketAddr>, ExtensionError> {
    let Some(b) = d.get(key.as_bytes()).and_then(Value::as_bytes) else {
        return Ok(Vec::new());
    };
    let entry = if v6 { 18 } else { 6 };
    if b.len() % entry != 0 {
        return Err(ExtensionError::BadCompactLength {
            key,
            len: b.len(),
            entry,
        });
    }
    Ok(b.chunks_exact(entry)
        .map(|c| {
            let (ip, port) = c.split_at(entry - 2);
            let port = u16::from_be_bytes([port[0], port[1]]);
            match <[u8; 16]>::try_from(ip) {
                Ok(a) => SocketAddr::V6(SocketAddrV6::new(a.into(), port, 0, 0)),
                Err(_) => {
                    let a: [u8; 4] = [ip[0], ip[1], ip[2], ip[3]];
                    SocketAddr::V4(SocketAddrV4::new(a.into(), port))
                }
            }
        })
        .collect())
}

fn put_compact(out: &mut Vec<u8>, a: &SocketAddr) {
    match a {
        SocketAddr::V4(a) => out.extend_from_slice(&a.ip().octets()),
        SocketAddr::V6(a) => out.extend_from_slice(&a.ip().octets()),
    }
    out.extend_from_slice(&a.port().to_be_bytes());
}

impl PexMessage {
    /// Parses the payload of a `ut_pex` extended message. Missing flags count as none.
    pub fn parse(payload: &[u8]) -> Result<Self, ExtensionError> {
        const MSG: &str = "ut_pex";
        let (d, _) = decode_dict(MSG, payload)?;
        let mut pex = PexMessage::default();
        for (key, fkey, v6) in [("added", "added.f", false), ("added6", "added6.f", true)] {
            let peers = compact_peers(&d, key, v6)?;
            let flags = d
                .get(fkey.as_bytes())
                .and_then(Value::as_bytes)
                .unwrap_or(&[]);
            pex.added.extend(
                peers
                    .into_iter()
                    .enumerate()
                    .map(|(i, a)| (a, PexFlags(flags.get(i).copied().unwrap_or(0)))),
            );
        }
        pex.dropped.extend(compact_peers(&d, "dropped", false)?);
        pex.dropped.extend(compact_peers(&d, "dropped6", true)?);
        Ok(pex)
    }

    /// Encodes the dictionary; empty lists are omitted except `added` and `dropped`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (mut a4, mut f4, mut a6, mut f6, mut d4, mut d6) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        for (a, f) in &self.added {
            if a.is_ipv4() {
                put_compact(&mut a4, a);
                f4.push(f.0);
            } else {
                put_compact(&mut a6, a);
                f6.push(f.0);
            }
        }
        for a in &self.dropped {
            put_compact(if a.is_ipv4() { &mut d4 } else { &mut d6 }, a);
        }
        let mut d = Dict::new();
        d.insert(b"added", Value::Bytes(&a4));
        d.insert(b"added.f", Value::Bytes(&f4));
        if !a6.is_empty() {
            d.insert(b"added6", Value::Bytes(&a6));
            d.insert(b"added6.f", Value::Bytes(&f6));
        }
        d.insert(b"dropped", Value::Bytes(&d4));
        if !d6.is_empty() {
            d.insert(b"dropped6", Value::Bytes(&d6));
        }
        Value::Dict(d).to_bytes()
    }

    /// This message as an `extended` frame under the id the receiver assigned.
    pub fn to_message(&self, ext_id: u8) -> Message {
        Message::Extended {
            id: ext_id,
            payload: Bytes::from(self.to_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_from_libtorrent_shape() {
        let raw = b"d12:complete_agoi-1e1:md11:lt_donthavei7e10:share_modei8e11:upload_onlyi3e12:ut_holepunchi4e11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei1234e4:reqqi500e11:upload_onlyi0e1:v18:libtorrent/2.1.1.06:yourip4:\x7f\x00\x00\x01e";
        let hs = ExtensionHandshake::parse(raw).unwrap();
        assert_eq!(hs.id_of(UT_METADATA), Some(2));
        assert_eq!(hs.id_of(UT_PEX), Some(1));
        assert_eq!(hs.reqq, Some(500));
        assert_eq!(hs.metadata_size, Some(1234));
        assert_eq!(hs.v.as_deref(), Some("libtorrent/2.1.1.0"));
        assert_eq!(hs.yourip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert!(!hs.upload_only);
    }

    #[test]
    fn handshake_errors() {
        assert!(matches!(
            ExtensionHandshake::parse(b"le"),
            Err(ExtensionError::NotADict { .. })
        ));
        assert!(matches!(
            ExtensionHandshake::parse(b"d1:md1:xi300eee"),
            Err(ExtensionError::OutOfRange { value: 300, .. })
        ));
        assert!(matches!(
            ExtensionHandshake::parse(b"d1:m"),
            Err(ExtensionError::Bencode { .. })
        ));
    }

    #[test]
    fn metadata_errors() {
        let p = |s: &'static [u8]| MetadataMessage::parse(&Bytes::from_static(s));
        assert_eq!(
            p(b"d8:msg_typei0e5:piecei3ee").unwrap(),
            MetadataMessage::Request { piece: 3 }
        );
        assert!(matches!(
            p(b"d8:msg_typei9e5:piecei3ee"),
            Err(ExtensionError::OutOfRange {
                key: "msg_type",
                ..
            })
        ));
        assert!(matches!(
            p(b"d8:msg_typei1e5:piecei3ee"),
            Err(ExtensionError::BadKey {
                key: "total_size",
                ..
            })
        ));
        assert!(matches!(
            p(b"d8:msg_typei0e5:piecei-1ee"),
            Err(ExtensionError::OutOfRange { key: "piece", .. })
        ));
    }

    #[test]
    fn pex_errors_and_flags() {
        assert!(matches!(
            PexMessage::parse(b"d5:added5:abcdee"),
            Err(ExtensionError::BadCompactLength { key: "added", .. })
        ));
        let pex = PexMessage::parse(b"d5:added6:\x7f\x00\x00\x01\x1a\xe1e").unwrap();
        assert_eq!(
            pex.added,
            vec![("127.0.0.1:6881".parse().unwrap(), PexFlags(0))]
        );
    }
}
