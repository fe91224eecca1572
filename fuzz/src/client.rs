//! Fuzz entry points for the client's (`rivulet`) network-facing state machines: the
//! BEP 9 metadata fetch, PEX, the resume file, LSD, the torrent core and the BEP 52
//! hash exchange.
//!
//! Each target reads its input as a script of operations (see [`Script`]): a byte
//! picks the operation, the next bytes its arguments, so that libFuzzer's mutations
//! stay meaningful. Every target runs with a fixed torrent, fake peers and virtual
//! time, and checks the state machine's invariants after each operation. The
//! `encode_*` helpers write the seed corpora (`fuzz/tests/replay.rs`, `write_client_seeds`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use handshake::{PeerId, Reserved};
use metainfo::{Info, InfoHash, InfoHashV1, Torrent};
use peer_wire::{
    Block, BlockRequest, Decoder, ExtensionHandshake, HashRequest, Hashes, Message,
    MetadataMessage, PexFlags, PexMessage,
};
use rivulet::core::{Action, CoreConfig, NewPeer, PieceCheck, TorrentCore};
use rivulet::metadata::{MetadataConfig, MetadataFetch};
use rivulet::picker::{PeerKey, Picker};
use sha1::{Digest, Sha1};

/// Reads a fuzz input as a script: bytes and small integers, zero past the end.
#[derive(Debug)]
pub struct Script<'a> {
    data: &'a [u8],
}

impl<'a> Script<'a> {
    /// A script over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Script { data }
    }

    /// Whether the input is used up.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// The next two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// The next four bytes, big-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.data.split_at(n.min(self.data.len()));
        self.data = b;
        a
    }

    /// A chunk: a two-byte length, then that many bytes (fewer at the end).
    pub fn chunk(&mut self) -> &'a [u8] {
        let n = self.u16() as usize;
        self.take(n)
    }
}

/// Writes scripts for the seed corpora.
#[derive(Debug, Default)]
pub struct ScriptWriter(pub Vec<u8>);

impl ScriptWriter {
    /// Appends bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }

    /// Appends a two-byte length and the bytes.
    pub fn chunk(&mut self, b: &[u8]) -> &mut Self {
        let n = b.len().min(u16::MAX as usize);
        self.0.extend_from_slice(&(n as u16).to_be_bytes());
        self.0.extend_from_slice(&b[..n]);
        self
    }
}

/// Bencoded byte string.
fn bstr(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{}:", s.len()).as_bytes());
    out.extend_from_slice(s);
}

fn content(len: usize, salt: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + salt) % 251) as u8).collect()
}

// ---------------------------------------------------------------------------------
// metadata_fetch

/// The info dictionary the `metadata_fetch` target fetches: 40 000 bytes, 3 pieces.
pub fn metadata_info() -> &'static Bytes {
    static INFO: OnceLock<Bytes> = OnceLock::new();
    INFO.get_or_init(|| Bytes::from(content(40_000, 7)))
}

fn metadata_hash() -> InfoHash {
    InfoHash::V1(InfoHashV1(Sha1::digest(metadata_info()).into()))
}

/// `metadata_fetch` operations.
pub mod metadata_op {
    /// Extension handshake: peer, flags (1: true size, 2: ut_metadata), size (u32).
    pub const HANDSHAKE: u8 = 0;
    /// A raw `ut_metadata` payload from a peer: peer, chunk.
    pub const MESSAGE: u8 = 1;
    /// The peer answers its oldest request with the true piece: peer.
    pub const SERVE: u8 = 2;
    /// The peer answers its oldest request with a corrupted piece: peer.
    pub const LIE: u8 = 3;
    /// The peer rejects its oldest request: peer.
    pub const REJECT: u8 = 4;
    /// The connection closes: peer.
    pub const DISCONNECT: u8 = 5;
    /// Time passes: seconds (u8).
    pub const WAIT: u8 = 6;
    /// Another message for the torrent core, kept until the handover: peer, chunk
    /// (a peer-wire frame), or with an empty chunk a 64 KiB extended message.
    pub const OTHER: u8 = 7;
    /// A raw extension handshake payload: peer, chunk.
    pub const RAW_HANDSHAKE: u8 = 8;
    /// Operations.
    pub const COUNT: u8 = 9;
}

/// Feeds BEP 9 `ut_metadata` messages from four fake peers into the metadata fetch
/// for a fixed info hash (and their other messages into the metadata phase's replay
/// buffer); must never panic. Requests go only to peers that announced a usable size,
/// for pieces that exist; a peer that sent [`rivulet::metadata::MAX_REJECTS`] rejects
/// is not asked again; completed metadata is exactly the true info dictionary; the
/// replay buffer stays within its bounds.
pub fn metadata_fetch(data: &[u8]) {
    use metadata_op as op;
    let info = metadata_info();
    let mut s = Script::new(data);
    let mut f = MetadataFetch::new(metadata_hash(), MetadataConfig::default());
    let mut now = Instant::now();
    let mut peers = MetaPeers::default();
    let mut replays: HashMap<PeerKey, rivulet::fuzzing::Replay> = HashMap::new();
    let max_pieces = (MetadataConfig::default().max_size / 16384) as u32;
    let decoder = Decoder::with_max_frame_len(1 << 17);
    let mut ops = 0;
    while !s.is_empty() && ops < 2000 {
        ops += 1;
        let code = s.u8() % op::COUNT;
        let key = PeerKey::from(s.u8() % 4);
        match code {
            op::HANDSHAKE | op::RAW_HANDSHAKE => {
                let hs = if code == op::HANDSHAKE {
                    let flags = s.u8();
                    let size = s.u32();
                    let mut hs = ExtensionHandshake::new();
                    if flags & 2 != 0 {
                        hs.m.insert(peer_wire::UT_METADATA.into(), 3);
                    }
                    hs.metadata_size = Some(if flags & 1 != 0 {
                        info.len() as u64
                    } else {
                        u64::from(size)
                    });
                    hs
                } else {
                    match ExtensionHandshake::parse(s.chunk()) {
                        Ok(hs) => hs,
                        Err(_) => continue,
                    }
                };
                peers.known.insert(key);
                match f.handle_handshake(now, key, &hs) {
                    rivulet::metadata::PeerUse::Usable => peers.usable.insert(key),
                    _ => peers.usable.remove(&key),
                };
            }
            op::MESSAGE => {
                let payload = Bytes::copy_from_slice(s.chunk());
                if let Ok(msg) = MetadataMessage::parse(&payload) {
                    peers.send(&mut f, now, key, msg);
                }
            }
            op::SERVE | op::LIE | op::REJECT => {
                let Some(piece) = peers.pending.get_mut(&key).and_then(|q| q.pop_front()) else {
                    continue;
                };
                let msg = match (code, rivulet::metadata::serve(info, piece)) {
                    (op::REJECT, _) => MetadataMessage::Reject { piece },
                    (
                        op::LIE,
                        MetadataMessage::Data {
                            piece,
                            total_size,
                            data,
                        },
                    ) => {
                        let mut d = data.to_vec();
                        if let Some(b) = d.first_mut() {
                            *b ^= 1;
                        }
                        MetadataMessage::Data {
                            piece,
                            total_size,
                            data: d.into(),
                        }
                    }
                    (_, m) => m,
                };
                peers.send(&mut f, now, key, msg);
            }
            op::DISCONNECT => {
                f.handle_disconnect(now, key);
                peers.forget(key);
                replays.remove(&key);
            }
            op::WAIT => {
                now += Duration::from_secs(u64::from(s.u8()));
                f.handle_timeout(now);
            }
            _ => {
                let chunk = s.chunk();
                let replay = replays.entry(key).or_default();
                if chunk.is_empty() {
                    replay.keep(&Message::Extended {
                        id: 9,
                        payload: Bytes::from(vec![0x61; 1 << 16]),
                    });
                } else {
                    let mut rest = chunk;
                    while let Ok(Some((m, used))) = decoder.decode_slice(rest) {
                        replay.keep(&m);
                        rest = &rest[used..];
                    }
                }
                let (n, bytes) = replay.held();
                assert!(n <= rivulet::fuzzing::MAX_REPLAY, "{n} messages kept");
                assert!(
                    bytes <= rivulet::fuzzing::MAX_REPLAY_BYTES,
                    "{bytes} bytes kept"
                );
            }
        }
        while let Some((to, id, msg)) = f.poll_request() {
            let MetadataMessage::Request { piece } = msg else {
                panic!("only requests go out: {msg:?}");
            };
            assert_eq!(id, 3, "the id the peer announced");
            assert!(
                peers.usable.contains(&to),
                "request to peer {to} without a usable size"
            );
            let rejects = peers.rejects.get(&to).copied().unwrap_or(0);
            assert!(
                rejects < rivulet::metadata::MAX_REJECTS,
                "peer {to} asked again after {rejects} rejects"
            );
            assert!(
                piece < f.progress().1,
                "piece {piece} of {:?}",
                f.progress()
            );
            let q = peers.pending.entry(to).or_default();
            if q.len() < 64 {
                q.push_back(piece);
            }
        }
        assert!(f.progress().1 <= max_pieces);
        if let Some(m) = f.take_metadata() {
            assert_eq!(
                &m[..],
                &info[..],
                "metadata that is not the info dictionary"
            );
        }
    }
}

/// What the `metadata_fetch` target knows of its fake peers.
#[derive(Debug, Default)]
struct MetaPeers {
    /// Requests each peer has not answered, oldest first.
    pending: HashMap<PeerKey, VecDeque<u32>>,
    /// Peers whose size the fetch found usable.
    usable: HashSet<PeerKey>,
    /// Peers that sent an extension handshake (the fetch knows them).
    known: HashSet<PeerKey>,
    /// Rejects each known peer sent.
    rejects: HashMap<PeerKey, u32>,
}

impl MetaPeers {
    /// A `ut_metadata` message from `key`; a protocol error closes the connection.
    fn send(&mut self, f: &mut MetadataFetch, now: Instant, key: PeerKey, msg: MetadataMessage) {
        if let MetadataMessage::Reject { .. } = msg
            && self.known.contains(&key)
        {
            *self.rejects.entry(key).or_default() += 1;
        }
        match f.handle_message(now, key, msg) {
            Ok(Some(answer)) => {
                assert!(
                    matches!(answer, MetadataMessage::Reject { .. }),
                    "{answer:?}"
                )
            }
            Ok(None) => {}
            Err(_) => {
                f.handle_disconnect(now, key);
                self.forget(key);
            }
        }
    }

    fn forget(&mut self, key: PeerKey) {
        self.known.remove(&key);
        self.usable.remove(&key);
        self.rejects.remove(&key);
        self.pending.remove(&key);
    }
}

/// A `metadata_fetch` script: `peers` honest peers fetch the metadata, one of them
/// rejecting now and then.
pub fn encode_metadata_fetch(peers: u8, rejecting: bool, liar: bool) -> Vec<u8> {
    use metadata_op as op;
    let mut w = ScriptWriter::default();
    for k in 0..peers {
        w.bytes(&[op::HANDSHAKE, k, 3, 0, 0, 0, 0]);
    }
    w.bytes(&[op::OTHER, 0]).chunk(&Message::Have(1).to_bytes());
    w.bytes(&[op::OTHER, 0])
        .chunk(&Message::Bitfield(Bytes::from_static(&[0xf0])).to_bytes());
    if rejecting {
        w.bytes(&[op::REJECT, 0, op::WAIT, 0, 11]);
    }
    if liar {
        for _ in 0..3 {
            w.bytes(&[op::LIE, 0]);
        }
    }
    for _ in 0..3 {
        for k in 0..peers {
            w.bytes(&[op::SERVE, k]);
        }
    }
    w.0
}

// ---------------------------------------------------------------------------------
// pex

/// `pex` operations.
pub mod pex_op {
    /// Extension handshake: peer, flags (1: with ut_pex), ut_pex id.
    pub const HANDSHAKE: u8 = 0;
    /// A raw `ut_pex` payload: peer, chunk.
    pub const MESSAGE: u8 = 1;
    /// A well-formed `ut_pex` message: peer, count, then per entry 4 address bytes, a
    /// two-byte port and flags.
    pub const ADDED: u8 = 2;
    /// The connection closes: peer.
    pub const DISCONNECT: u8 = 3;
    /// Time passes: seconds (u8).
    pub const WAIT: u8 = 4;
    /// Our messages due: count of connected entries (peer, port each).
    pub const POLL: u8 = 5;
    /// Operations.
    pub const COUNT: u8 = 6;
}

/// Feeds `ut_pex` payloads from eight fake peers into a torrent's PEX state; must never
/// panic. Peers that did not announce `ut_pex` are not heard; no message yields more
/// than [`rivulet::pex::PexConfig::max_per_message`] addresses, never port 0,
/// unspecified or multicast ones; our messages go only to peers that announced
/// `ut_pex`, under their id, with bounded lists.
pub fn pex(data: &[u8]) {
    use pex_op as op;
    use rivulet::pex::{Pex, PexConfig, PexEntry};
    let config = PexConfig::default();
    let mut pex = Pex::new(false, config);
    let mut s = Script::new(data);
    let mut now = Instant::now();
    let mut ids: HashMap<PeerKey, u8> = HashMap::new();
    let mut ops = 0;
    while !s.is_empty() && ops < 2000 {
        ops += 1;
        let code = s.u8() % op::COUNT;
        let key = PeerKey::from(s.u8() % 8);
        let payload = match code {
            op::HANDSHAKE => {
                let flags = s.u8();
                let id = s.u8();
                let mut hs = ExtensionHandshake::new();
                if flags & 1 != 0 {
                    hs.m.insert(peer_wire::UT_PEX.into(), id);
                }
                pex.handle_handshake(now, key, &hs);
                match hs.id_of(peer_wire::UT_PEX) {
                    Some(id) => ids.insert(key, id),
                    None => ids.remove(&key),
                };
                None
            }
            op::MESSAGE => Some(Bytes::copy_from_slice(s.chunk())),
            op::ADDED => {
                let mut m = PexMessage::default();
                for _ in 0..s.u8() {
                    let ip = Ipv4Addr::from(s.u32());
                    let port = s.u16();
                    m.added
                        .push((SocketAddr::from((ip, port)), PexFlags(s.u8())));
                }
                Some(Bytes::from(m.to_bytes()))
            }
            op::DISCONNECT => {
                pex.handle_disconnect(key);
                ids.remove(&key);
                None
            }
            op::WAIT => {
                now += Duration::from_secs(u64::from(s.u8()));
                None
            }
            _ => {
                let connected: Vec<PexEntry> = (0..s.u8() % 16)
                    .map(|_| PexEntry {
                        key: PeerKey::from(s.u8() % 8),
                        addr: SocketAddr::from(([10, 0, 0, s.u8()], s.u16())),
                        flags: PexFlags(s.u8()),
                    })
                    .collect();
                for (to, msg) in pex.poll_messages(now, &connected) {
                    let Message::Extended { id, payload } = msg else {
                        panic!("PEX sends extended messages: {msg:?}");
                    };
                    assert_eq!(Some(&id), ids.get(&to), "message to {to} under id {id}");
                    let m = PexMessage::parse(&payload).expect("our ut_pex message parses");
                    assert!(m.added.len() <= config.max_per_message);
                    assert!(m.dropped.len() <= config.max_per_message);
                }
                None
            }
        };
        if let Some(payload) = payload {
            if let Ok(fresh) = pex.handle_message(now, key, &payload) {
                if !ids.contains_key(&key) {
                    assert!(fresh.is_empty(), "peer {key} without ut_pex was heard");
                }
                assert!(fresh.len() <= config.max_per_message);
                for a in fresh {
                    assert!(a.port() != 0 && !a.ip().is_unspecified() && !a.ip().is_multicast());
                }
            }
        }
    }
}

/// A `pex` script: two peers announce `ut_pex` and tell us about a few others.
pub fn encode_pex(v6: bool) -> Vec<u8> {
    use pex_op as op;
    let mut w = ScriptWriter::default();
    w.bytes(&[op::HANDSHAKE, 0, 1, 1, op::HANDSHAKE, 1, 1, 9]);
    let mut m = PexMessage::default();
    for i in 0..5u8 {
        m.added.push((
            SocketAddr::from(([192, 168, 0, i + 1], 6881)),
            PexFlags(PexFlags::REACHABLE),
        ));
    }
    if v6 {
        m.added.push((
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 51413),
            PexFlags(PexFlags::SEED),
        ));
        m.dropped
            .push(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 6881));
    }
    m.dropped.push(SocketAddr::from(([192, 168, 0, 9], 6881)));
    w.bytes(&[op::MESSAGE, 0]).chunk(&m.to_bytes());
    w.bytes(&[
        op::ADDED,
        1,
        2,
        10,
        0,
        0,
        7,
        0x1a,
        0xe1,
        0x10,
        10,
        0,
        0,
        8,
        0,
        0,
        0,
    ]);
    w.bytes(&[
        op::WAIT,
        0,
        3,
        op::POLL,
        0,
        2,
        0,
        5,
        0x1a,
        0xe1,
        0x10,
        1,
        6,
        0x1a,
        0xe1,
        2,
    ]);
    w.bytes(&[op::DISCONNECT, 1, op::MESSAGE, 1])
        .chunk(&m.to_bytes());
    w.0
}

// ---------------------------------------------------------------------------------
// resume_check

/// The torrent of the `resume_check` target: v1, a 50 000-byte file, a padding file to
/// the next 64 KiB, a 20 000-byte file; 16 KiB pieces.
pub fn resume_info() -> &'static Info {
    static INFO: OnceLock<Info> = OnceLock::new();
    INFO.get_or_init(|| {
        let pieces = 85_536usize.div_ceil(16384);
        let mut d = Vec::new();
        d.extend_from_slice(b"d5:filesl");
        d.extend_from_slice(b"d6:lengthi50000e4:pathl1:aee");
        d.extend_from_slice(b"d4:attr1:p6:lengthi15536e4:pathl4:.pad5:15536ee");
        d.extend_from_slice(b"d6:lengthi20000e4:pathl1:bee");
        d.extend_from_slice(b"e4:name1:c12:piece lengthi16384e6:pieces");
        bstr(&mut d, &content(20 * pieces, 3));
        d.push(b'e');
        Info::from_bytes(&d).expect("the resume target's torrent parses")
    })
}

/// File stamps the `resume_check` target uses as the files on disk, by selector.
fn resume_stamps(sel: u8) -> Vec<Option<rivulet::resume::FileStamp>> {
    let info = resume_info();
    info.files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if f.is_padding() || sel & (1 << i) != 0 {
                return None;
            }
            Some(rivulet::resume::FileStamp {
                size: if sel & (8 << i) != 0 { 1 } else { f.length },
                mtime_secs: 1_700_000_000 + i as i64,
                mtime_nanos: 5,
            })
        })
        .collect()
}

/// Checks arbitrary bytes as a resume file against a small torrent and file stamps
/// chosen by the first byte; must never panic. A resume file that is accepted has
/// one entry per piece, every piece it claims lies in files that exist at full size,
/// and it encodes back to a file that is accepted the same.
pub fn resume_check(data: &[u8]) {
    use rivulet::resume::{check, encode};
    let info = resume_info();
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    let mut current = resume_stamps(sel);
    if sel & 0x80 != 0 {
        current.pop();
    }
    let Ok(have) = check(info, bytes, &current) else {
        return;
    };
    assert_eq!(current.len(), info.files.len());
    assert_eq!(have.len(), info.piece_count() as usize);
    let layout = info.layout();
    for (i, _) in have.iter().enumerate().filter(|(_, h)| **h) {
        for span in layout.spans(i as u32, 0, layout.piece_len(i as u32)) {
            if !span.padding {
                assert!(
                    current[span.file_index]
                        .is_some_and(|s| s.size == info.files[span.file_index].length),
                    "piece {i} claimed in a missing file"
                );
            }
        }
    }
    let again = encode(info, &have, &current);
    assert_eq!(check(info, &again, &current), Ok(have));
}

/// A `resume_check` input: a resume file written for stamps `sel`, pieces `have`.
pub fn encode_resume_check(sel: u8, have: &[bool]) -> Vec<u8> {
    let mut out = vec![sel];
    out.extend(rivulet::resume::encode(
        resume_info(),
        have,
        &resume_stamps(sel),
    ));
    out
}

// ---------------------------------------------------------------------------------
// lsd

/// The torrents the `lsd` target's session has.
const LSD_KNOWN: [[u8; 20]; 3] = [[0xab; 20], [1; 20], [0x10; 20]];

/// Feeds datagrams to the LSD receiver (BEP 14), from a few senders over virtual time;
/// must never panic. Input: records of sender (u8), milliseconds to wait (u16), a
/// datagram (chunk). Reports name only our torrents, at the sender's IP with a port
/// that is not 0, at most [`rivulet::lsd::MAX_INFO_HASHES`] per datagram, never for our
/// own cookie, never a (peer, torrent) twice within a minute; what is remembered stays
/// bounded. A parsed announce re-encodes to one with the same port and info hashes.
pub fn lsd(data: &[u8]) {
    use rivulet::lsd::{GROUP_V4, MAX_INFO_HASHES, encode, parse};
    let t0 = Instant::now();
    let mut now = t0;
    let cookie = "c00k1e";
    let mut rx = rivulet::fuzzing::LsdReceiver::new(cookie, t0);
    let mut last: HashMap<(SocketAddr, [u8; 20]), Instant> = HashMap::new();
    let mut s = Script::new(data);
    while !s.is_empty() {
        let who = s.u8();
        now += Duration::from_millis(u64::from(s.u16()));
        let datagram = s.chunk();
        let ip = if who & 0x80 != 0 {
            IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, u16::from(who)))
        } else {
            IpAddr::V4(Ipv4Addr::new(192, 168, 1, who))
        };
        let from = SocketAddr::new(ip, 6771);
        let parsed = parse(datagram);
        if let Ok(a) = &parsed {
            assert!(a.info_hashes.len() <= MAX_INFO_HASHES && a.port != 0);
            let again = parse(&encode(GROUP_V4, a.port, &a.info_hashes, "x"))
                .expect("an encoded announce parses");
            assert_eq!((again.port, &again.info_hashes), (a.port, &a.info_hashes));
        }
        let out = rx.receive(now, from, datagram, |ih| LSD_KNOWN.contains(ih));
        assert!(out.len() <= MAX_INFO_HASHES);
        if !out.is_empty() {
            let a = parsed
                .as_ref()
                .expect("reported from an unparsable datagram");
            assert_ne!(
                a.cookie.as_deref(),
                Some(cookie),
                "our own announce reported"
            );
        }
        for (peer, ih) in out {
            assert!(LSD_KNOWN.contains(&ih));
            assert_eq!(peer.ip(), ip);
            assert_ne!(peer.port(), 0);
            if let Some(t) = last.insert((peer, ih), now) {
                assert!(
                    now.duration_since(t) >= Duration::from_secs(60),
                    "{peer} reported twice within a minute"
                );
            }
        }
        assert!(rx.reported() <= rivulet::fuzzing::LSD_MAX_REPORTED);
    }
}

/// An `lsd` input: announces as rivulet and libtorrent send them, our own, a repeat.
pub fn encode_lsd() -> Vec<u8> {
    use rivulet::lsd::{GROUP_V4, GROUP_V6, encode};
    let mut w = ScriptWriter::default();
    w.bytes(&[5, 0, 10])
        .chunk(&encode(GROUP_V4, 6881, &LSD_KNOWN[..2], "them"));
    w.bytes(&[5, 0, 10])
        .chunk(&encode(GROUP_V4, 6881, &LSD_KNOWN[..2], "them"));
    w.bytes(&[6, 0, 10])
        .chunk(&encode(GROUP_V4, 6882, &LSD_KNOWN, "c00k1e"));
    w.bytes(&[0x81, 0, 10])
        .chunk(&encode(GROUP_V6, 51413, &[LSD_KNOWN[2], [7; 20]], ""));
    w.bytes(&[7, 0xea, 0x60]).chunk(
        b"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 51413\r\n\
Infohash: ABABABABABABABABABABABABABABABABABABABAB\r\ncookie: 1a2b\r\n\r\n\r\n",
    );
    w.0
}

// ---------------------------------------------------------------------------------
// core_session and hash_exchange: a torrent core with fake peers

/// `core_session` (and `hash_exchange`) operations.
pub mod core_op {
    /// A peer connects: slot, reserved flags (1: fast, 2: extension protocol, 4: DHT,
    /// 8: incoming).
    pub const CONNECT: u8 = 0;
    /// Raw peer-wire frames from a peer: slot, chunk.
    pub const FRAMES: u8 = 1;
    /// The peer answers our oldest request to it with the true block: slot.
    pub const SERVE: u8 = 2;
    /// The peer answers our oldest request to it with a corrupted block: slot.
    pub const LIE: u8 = 3;
    /// A typical message: slot, kind, then its arguments (see `typical_message`).
    pub const MESSAGE: u8 = 4;
    /// The connection closes: slot.
    pub const DISCONNECT: u8 = 5;
    /// Time passes: seconds (u8).
    pub const WAIT: u8 = 6;
    /// The disk answers the oldest piece check: (slot byte unused).
    pub const DISK: u8 = 7;
    /// Operations.
    pub const COUNT: u8 = 8;
}

/// A torrent for a core: its info, content, and the info without piece layers.
struct CoreTorrent {
    info: Info,
    bare: Info,
    data: Vec<u8>,
}

fn v1_torrent() -> &'static CoreTorrent {
    static T: OnceLock<CoreTorrent> = OnceLock::new();
    T.get_or_init(|| {
        let data = content(5 * 32768 + 1234, 11);
        let pieces: Vec<u8> = data
            .chunks(32768)
            .flat_map(|c| <[u8; 20]>::from(Sha1::digest(c)))
            .collect();
        let mut d = Vec::new();
        d.extend_from_slice(format!("d6:lengthi{}e4:name4:data", data.len()).as_bytes());
        d.extend_from_slice(b"12:piece lengthi32768e6:pieces");
        bstr(&mut d, &pieces);
        d.push(b'e');
        let info = Info::from_bytes(&d).expect("the v1 torrent parses");
        CoreTorrent {
            bare: info.clone(),
            info,
            data,
        }
    })
}

/// The v2 torrent of `hash_exchange`: one 1 000 000-byte file, 32 KiB pieces (31
/// pieces, 62 blocks: a tree 6 high, the piece layer at 1).
fn v2_torrent() -> &'static CoreTorrent {
    static T: OnceLock<CoreTorrent> = OnceLock::new();
    T.get_or_init(|| {
        let data = content(1_000_000, 13);
        let h = metainfo::merkle::file_hashes(&data, 32768);
        let root = h.root.expect("a non-empty file has a root");
        let mut info = Vec::new();
        info.extend_from_slice(b"d9:file treed4:datad0:d");
        info.extend_from_slice(format!("6:lengthi{}e11:pieces root", data.len()).as_bytes());
        bstr(&mut info, &root);
        info.extend_from_slice(b"eee12:meta versioni2e4:name4:data12:piece lengthi32768ee");
        let mut t = b"d4:info".to_vec();
        t.extend_from_slice(&info);
        t.extend_from_slice(b"12:piece layersd");
        bstr(&mut t, &root);
        bstr(&mut t, &h.piece_layer_bytes());
        t.extend_from_slice(b"ee");
        let torrent = Torrent::from_bytes(&t).expect("the v2 torrent parses");
        let bare = Info::from_bytes(&info).expect("the bare v2 info parses");
        CoreTorrent {
            info: torrent.info,
            bare,
            data,
        }
    })
}

/// The fake driver around a core: plays the peers, the disk and the hash checks.
struct Harness {
    t: &'static CoreTorrent,
    core: TorrentCore,
    now: Instant,
    slots: [Option<PeerKey>; 4],
    /// Our block requests to each peer, oldest first.
    requested: HashMap<PeerKey, VecDeque<BlockRequest>>,
    /// Piece checks the disk has not answered.
    checks: VecDeque<(u32, Vec<u8>)>,
    /// Pieces the disk stored (hash good).
    stored: HashSet<u32>,
    /// Hash requests we sent each peer.
    hash_asked: HashMap<PeerKey, VecDeque<HashRequest>>,
    /// Hash rejects each peer sent.
    hash_rejects: HashMap<PeerKey, u32>,
    /// Hash needs whose answers were checked good, by the pieces they cover.
    layers_in: HashSet<u32>,
    /// Pieces blocked until their hashes are in.
    blocked: HashSet<u32>,
    server: rivulet::hashes::HashServer,
    budgets: HashMap<PeerKey, rivulet::hashes::HashBudget>,
    decoder: Decoder,
}

impl Harness {
    fn new(t: &'static CoreTorrent, have: u8, hash_needs: bool) -> Harness {
        let layout = t.bare.layout();
        let mut picker = Picker::new(layout, 7);
        let n = layout.piece_count();
        let had: Vec<bool> = (0..n).map(|i| have & (1 << (i % 8)) != 0).collect();
        picker.set_have(&had);
        let config = CoreConfig {
            peer_id: PeerId([0xee; 20]),
            reserved: Reserved::STANDARD.with_fast(true),
            max_unchoked: 2,
            max_outstanding: 8,
            max_unchecked: 64 << 10,
            listen_port: Some(6881),
            dht_port: Some(6881),
        };
        let piece_len = u32::try_from(t.bare.piece_length).unwrap_or(u32::MAX);
        let mut pc = peer_wire::PeerConfig::new(n, piece_len, layout.total_length());
        pc.max_incoming_requests = 16;
        pc.max_outgoing_requests = 8;
        let mut core = TorrentCore::new(config, pc, picker);
        core.set_info(Bytes::copy_from_slice(t.bare.raw()), false);
        let mut blocked = HashSet::new();
        if hash_needs {
            let needs: Vec<_> = rivulet::hashes::missing_layers(&t.bare)
                .into_iter()
                .map(|(file, req)| {
                    let fp = layout.file_pieces(file);
                    let start = fp.start.saturating_add(req.index).min(fp.end);
                    let end = start.saturating_add(req.length).min(fp.end);
                    (req, start..end)
                })
                .filter(|(_, p)| p.clone().any(|p| !had[p as usize]))
                .collect();
            for (_, p) in &needs {
                blocked.extend(p.clone());
            }
            core.set_hash_needs(needs);
        }
        let stored = (0..n).filter(|&i| had[i as usize]).collect();
        Harness {
            t,
            core,
            now: Instant::now(),
            slots: [None; 4],
            requested: HashMap::new(),
            checks: VecDeque::new(),
            stored,
            hash_asked: HashMap::new(),
            hash_rejects: HashMap::new(),
            layers_in: HashSet::new(),
            blocked,
            server: rivulet::hashes::HashServer::new(),
            budgets: HashMap::new(),
            decoder: Decoder::with_max_frame_len(1 << 17),
        }
    }

    fn piece(&self, i: u32) -> &[u8] {
        let plen = self.t.bare.piece_length as usize;
        let s = i as usize * plen;
        &self.t.data[s.min(self.t.data.len())..(s + plen).min(self.t.data.len())]
    }

    fn forget(&mut self, key: PeerKey) {
        for s in &mut self.slots {
            if *s == Some(key) {
                *s = None;
            }
        }
        self.requested.remove(&key);
        self.hash_asked.remove(&key);
        self.hash_rejects.remove(&key);
        self.budgets.remove(&key);
    }

    fn message(&mut self, key: PeerKey, m: Message) {
        match &m {
            Message::HashReject(_) => *self.hash_rejects.entry(key).or_default() += 1,
            Message::Piece(b) => {
                if let Some(q) = self.requested.get_mut(&key) {
                    q.retain(|r| *r != b.request());
                }
            }
            _ => {}
        }
        self.core.handle_message(self.now, key, m);
        self.drain();
    }

    /// Runs the core's actions like the driver does, checking them.
    fn drain(&mut self) {
        let mut count = 0usize;
        let mut sends: HashMap<PeerKey, usize> = HashMap::new();
        while let Some(a) = self.core.poll_action() {
            count += 1;
            assert!(count <= 20_000, "the core keeps producing actions");
            if let Action::Send(k, _) = &a {
                let n = sends.entry(*k).or_default();
                *n += 1;
                // Requests (8), cancels, rejects of its requests (16), haves (31), PEX...
                assert!(*n <= 256, "{n} messages to peer {k} for one input");
            }
            match a {
                Action::Send(k, m) => match m {
                    Message::Request(r) => {
                        assert!(
                            !self.blocked.contains(&r.index) || self.layers_in.contains(&r.index),
                            "piece {} requested before its hashes are in",
                            r.index
                        );
                        // Our view of what is outstanding (requests that timed out or
                        // were dropped by a choke are asked again): the latest 64.
                        let q = self.requested.entry(k).or_default();
                        q.retain(|x| *x != r);
                        if q.len() >= 64 {
                            q.pop_front();
                        }
                        q.push_back(r);
                    }
                    Message::Cancel(r) => {
                        if let Some(q) = self.requested.get_mut(&k) {
                            q.retain(|x| *x != r);
                        }
                    }
                    Message::HashRequest(r) => {
                        assert!(
                            self.hash_rejects.get(&k).copied().unwrap_or(0)
                                < rivulet::core::MAX_HASH_REJECTS,
                            "hashes asked of {k} after it refused {} times",
                            self.hash_rejects[&k]
                        );
                        let q = self.hash_asked.entry(k).or_default();
                        q.retain(|x| *x != r);
                        if q.len() >= 64 {
                            q.pop_front();
                        }
                        q.push_back(r);
                    }
                    _ => {}
                },
                Action::Close(k, _) => self.forget(k),
                Action::CheckPiece(i, d) => {
                    assert!(!self.core.picker().has(i), "piece {i} checked though had");
                    assert!(
                        self.checks.iter().all(|c| c.0 != i),
                        "piece {i} checked twice at once"
                    );
                    let d = d.to_vec();
                    assert_eq!(
                        d.len(),
                        self.piece(i).len(),
                        "piece {i} checked at a wrong length"
                    );
                    self.checks.push_back((i, d));
                    assert!(self.checks.len() <= 64);
                }
                Action::Read(k, reqs) => {
                    let blocks = reqs
                        .iter()
                        .map(|r| {
                            assert!(self.stored.contains(&r.index), "read of a piece we lack");
                            let p = self.piece(r.index);
                            let s = r.begin as usize;
                            let e = s + r.length as usize;
                            assert!(e <= p.len(), "read past the piece: {r:?}");
                            Some(Block {
                                index: r.index,
                                begin: r.begin,
                                data: Bytes::copy_from_slice(&p[s..e]),
                            })
                        })
                        .collect();
                    self.core.handle_blocks_read(self.now, k, blocks);
                }
                Action::Finish => {
                    assert!(
                        (0..self.core.picker().piece_count()).all(|i| self.stored.contains(&i)),
                        "finished without every piece stored"
                    );
                    self.core.handle_finished(Ok(()));
                }
                Action::HashRequest(k, req) => {
                    let budget = self
                        .budgets
                        .entry(k)
                        .or_insert_with(|| rivulet::hashes::HashBudget::new(64 << 10));
                    let before = budget.left();
                    let got = self.server.answer(&self.t.info, budget, &req);
                    assert!(budget.left() <= before);
                    if let Some(h) = &got {
                        assert!(h.len() <= (rivulet::hashes::MAX_HASHES + 64) as usize);
                        assert_eq!(
                            Some(h),
                            rivulet::hashes::answer(&self.t.info, &req).as_ref()
                        );
                    }
                }
                Action::CheckHashes(k, h) => {
                    let ok = rivulet::hashes::check_answer(&self.t.bare, &h.request, &h.hashes);
                    if let Some(run) = &ok {
                        let layer = self
                            .t
                            .info
                            .piece_layer(&h.request.pieces_root)
                            .expect("a layer of our torrent");
                        let start = h.request.index as usize;
                        for (i, got) in run.iter().enumerate() {
                            let want = layer
                                .get(start + i)
                                .copied()
                                .unwrap_or(metainfo::merkle::pad_hash(h.request.base_layer));
                            assert_eq!(*got, want, "hashes that prove but are wrong");
                        }
                        let end = (start + run.len()).min(layer.len());
                        self.layers_in.extend(start as u32..end as u32);
                    }
                    self.core
                        .handle_hashes_checked(self.now, k, h.request, ok.is_some());
                }
                Action::Connect(_) | Action::DhtNode(_) => {}
                _ => {}
            }
        }
        let picker = self.core.picker();
        for i in 0..picker.piece_count() {
            if picker.has(i) {
                assert!(
                    self.stored.contains(&i),
                    "piece {i} had without a good check"
                );
            }
        }
        if self.core.status().complete {
            assert!((0..picker.piece_count()).all(|i| picker.has(i)));
        }
        assert!(self.core.peer_count() <= 4);
    }

    fn disk(&mut self) {
        let Some((i, d)) = self.checks.pop_front() else {
            return;
        };
        let good = d == self.piece(i);
        if good {
            self.stored.insert(i);
        }
        let r = if good {
            PieceCheck::Stored
        } else {
            PieceCheck::BadHash
        };
        self.core.handle_piece_checked(self.now, i, r);
        self.drain();
    }

    /// One typical message of kind `kind`, arguments from the script.
    fn typical_message(&mut self, key: PeerKey, kind: u8, s: &mut Script<'_>) -> Message {
        let n = self.core.picker().piece_count();
        let piece = |s: &mut Script<'_>| {
            let b = s.u8();
            if b == 0xff {
                s.u32()
            } else {
                u32::from(b) % (n + 1)
            }
        };
        match kind % 20 {
            0 => Message::HaveAll,
            1 => Message::HaveNone,
            2 => Message::Have(piece(s)),
            3 => {
                let mut bits = vec![0u8; (n as usize).div_ceil(8)];
                for b in &mut bits {
                    *b = s.u8();
                }
                Message::Bitfield(bits.into())
            }
            4 => Message::Unchoke,
            5 => Message::Choke,
            6 => Message::Interested,
            7 => Message::NotInterested,
            8 | 9 => {
                let index = piece(s);
                let begin = u32::from(s.u8() % 3) * 16384;
                let length = if s.u8() & 1 == 0 { 16384 } else { s.u32() };
                let r = BlockRequest {
                    index,
                    begin,
                    length,
                };
                if kind % 20 == 8 {
                    Message::Request(r)
                } else {
                    Message::Cancel(r)
                }
            }
            10 => {
                // A reject of our oldest request, or of one never made.
                let r = match self.requested.get_mut(&key).and_then(|q| q.pop_front()) {
                    Some(r) if s.u8() & 1 == 0 => r,
                    _ => BlockRequest {
                        index: piece(s),
                        begin: 0,
                        length: 16384,
                    },
                };
                Message::Reject(r)
            }
            11 => Message::AllowedFast(piece(s)),
            12 => Message::Suggest(piece(s)),
            13 => Message::Port(s.u16()),
            14 => {
                let mut hs = ExtensionHandshake::new();
                let flags = s.u8();
                if flags & 1 != 0 {
                    hs.m.insert(peer_wire::UT_METADATA.into(), 3);
                }
                if flags & 2 != 0 {
                    hs.m.insert(peer_wire::UT_PEX.into(), 4);
                }
                if flags & 4 != 0 {
                    hs.p = Some(s.u16());
                }
                if flags & 8 != 0 {
                    hs.reqq = Some(s.u32());
                }
                hs.to_message()
            }
            15 => {
                // ut_metadata (our id 2) or ut_pex (our id 1), well-formed.
                if s.u8() & 1 == 0 {
                    MetadataMessage::Request { piece: s.u32() % 4 }.to_message(2)
                } else {
                    let mut m = PexMessage::default();
                    for _ in 0..s.u8() % 8 {
                        m.added.push((
                            SocketAddr::from((Ipv4Addr::from(s.u32()), s.u16())),
                            PexFlags(0),
                        ));
                    }
                    m.to_message(1)
                }
            }
            16 => Message::HashRequest(self.hash_request(s)),
            17 => Message::HashReject(self.asked_or_random(key, s)),
            18 => {
                // The true answer to a request we sent, or junk.
                let req = self.asked_or_random(key, s);
                let hashes = match rivulet::hashes::answer(&self.t.info, &req) {
                    Some(h) if s.u8() & 1 == 0 => Bytes::from(h.concat()),
                    _ => Bytes::from(vec![s.u8(); 32 * (usize::from(s.u8()) + 1)]),
                };
                Message::Hashes(Hashes {
                    request: req,
                    hashes,
                })
            }
            _ => Message::KeepAlive,
        }
    }

    fn hash_request(&self, s: &mut Script<'_>) -> HashRequest {
        let root = self
            .t
            .bare
            .files
            .first()
            .and_then(|f| f.pieces_root)
            .unwrap_or([0; 32]);
        let flags = s.u8();
        HashRequest {
            pieces_root: if flags & 1 == 0 { root } else { [s.u8(); 32] },
            base_layer: u32::from(s.u8() % 8),
            index: u32::from(s.u8()),
            length: if flags & 2 == 0 {
                1 << (s.u8() % 14)
            } else {
                s.u32()
            },
            proof_layers: u32::from(s.u8() % 8),
        }
    }

    fn asked_or_random(&mut self, key: PeerKey, s: &mut Script<'_>) -> HashRequest {
        match self.hash_asked.get_mut(&key).and_then(|q| q.pop_front()) {
            Some(r) if s.u8() & 1 == 0 => r,
            _ => self.hash_request(s),
        }
    }

    fn run(&mut self, s: &mut Script<'_>) {
        use core_op as op;
        let mut ops = 0;
        self.drain();
        while !s.is_empty() && ops < 3000 {
            ops += 1;
            let code = s.u8() % op::COUNT;
            let slot = usize::from(s.u8() % 4);
            let key = self.slots[slot];
            match (code, key) {
                (op::CONNECT, None) => {
                    let flags = s.u8();
                    let reserved = Reserved::NONE
                        .with_fast(flags & 1 != 0)
                        .with_extension_protocol(flags & 2 != 0)
                        .with_dht(flags & 4 != 0);
                    let p = NewPeer {
                        peer_id: PeerId([slot as u8 + 1; 20]),
                        reserved,
                        addr: Some(SocketAddr::from(([10, 0, 0, slot as u8 + 1], 6881))),
                        outgoing: flags & 8 == 0,
                    };
                    self.slots[slot] = self.core.handle_connect(self.now, p);
                    self.drain();
                }
                (op::FRAMES, Some(k)) => {
                    let mut rest = s.chunk();
                    while let Ok(Some((m, used))) = self.decoder.decode_slice(rest) {
                        rest = &rest[used..];
                        self.message(k, m);
                        if self.slots[slot] != Some(k) {
                            break;
                        }
                    }
                }
                (op::SERVE | op::LIE, Some(k)) => {
                    let Some(r) = self.requested.get_mut(&k).and_then(|q| q.pop_front()) else {
                        continue;
                    };
                    let p = self.piece(r.index);
                    let (b, e) = (r.begin as usize, (r.begin + r.length) as usize);
                    let mut data = p[b.min(p.len())..e.min(p.len())].to_vec();
                    if code == op::LIE
                        && let Some(x) = data.first_mut()
                    {
                        *x ^= 0x40;
                    }
                    let block = Block {
                        index: r.index,
                        begin: r.begin,
                        data: data.into(),
                    };
                    self.message(k, Message::Piece(block));
                }
                (op::MESSAGE, Some(k)) => {
                    let kind = s.u8();
                    let m = self.typical_message(k, kind, s);
                    self.message(k, m);
                }
                (op::DISCONNECT, Some(k)) => {
                    self.core.handle_disconnect(self.now, k);
                    self.forget(k);
                    self.drain();
                }
                (op::WAIT, _) => {
                    self.now += Duration::from_secs(u64::from(s.u8()));
                    self.core.handle_timeout(self.now);
                    self.drain();
                }
                (op::DISK, _) => self.disk(),
                _ => {}
            }
        }
        while !self.checks.is_empty() {
            self.disk();
        }
    }
}

/// Drives the sans-IO torrent core (v1, 6 pieces) with up to four fake peers sending
/// peer-wire messages (raw frames, typical messages, true and corrupted blocks), a
/// fake disk that answers piece checks late, and virtual time. The first byte picks
/// which pieces we start with. Must never panic; the core's actions per input stay
/// bounded, requests to a peer do not pile up, a piece is had only after a good hash
/// check, reads are only of pieces we have, and the files are finished only when
/// every piece is stored.
pub fn core_session(data: &[u8]) {
    let mut s = Script::new(data);
    let have = s.u8();
    let mut h = Harness::new(v1_torrent(), have, false);
    h.run(&mut s);
}

/// Drives the BEP 52 hash exchange: a core for a v2 torrent without its piece layers
/// asks peers for them while peers send hash requests, hashes (true or junk) and hash
/// rejects, answered through [`rivulet::hashes::HashServer`] within per-peer budgets.
/// Must never panic; the pieces of a layer are requested only once its hashes proved
/// against the root (and are the true ones), a peer that refused
/// [`rivulet::core::MAX_HASH_REJECTS`] times is not asked again, answers agree with
/// [`rivulet::hashes::answer`], and the work done stays within the budgets.
pub fn hash_exchange(data: &[u8]) {
    let mut s = Script::new(data);
    let have = s.u8();
    let mut h = Harness::new(v2_torrent(), have, true);
    h.run(&mut s);
    let peers = h.budgets.len() as u64 + 4;
    assert!(
        h.server.looked_up() <= peers * ((64 << 10) / rivulet::hashes::REQUEST_COST as u64),
        "{} lookups",
        h.server.looked_up()
    );
    // Straight checks of the pure functions on a request from the rest of the input.
    let t = v2_torrent();
    let req = h.hash_request(&mut s);
    if let Some(got) = rivulet::hashes::answer(&t.info, &req) {
        assert!(got.len() >= req.length as usize);
        let bytes = got.concat();
        if let Some(run) = rivulet::hashes::check_answer(&t.bare, &req, &bytes) {
            assert_eq!(run, got[..req.length as usize]);
        }
    }
    let junk = s.take(32 * 300);
    if let Some(run) = rivulet::hashes::check_answer(&t.bare, &req, junk) {
        assert_eq!(run.len(), req.length as usize);
    }
}

/// A `core_session` or `hash_exchange` script: peers connect; one serves the pieces
/// (and in `hash_exchange` the hashes) truly, one lies, one asks for data.
pub fn encode_core_session(have: u8, fast: bool, lie: bool, hashes: bool) -> Vec<u8> {
    use core_op as op;
    let flags = if fast { 0b111 } else { 0b110 };
    let mut w = ScriptWriter::default();
    w.bytes(&[have]);
    for slot in 0..3u8 {
        w.bytes(&[op::CONNECT, slot, flags]);
    }
    // Extension handshakes with ut_metadata and ut_pex, then availability.
    for slot in 0..3u8 {
        w.bytes(&[op::MESSAGE, slot, 14, 0b11]);
    }
    let avail = if fast {
        Message::HaveAll
    } else {
        Message::Bitfield(Bytes::from_static(&[0xfc]))
    };
    w.bytes(&[op::FRAMES, 0])
        .chunk(&[avail.to_bytes(), Message::Unchoke.to_bytes()].concat());
    if hashes {
        // True answers to the hash requests we sent.
        w.bytes(&[op::MESSAGE, 0, 18, 0, 0]);
        w.bytes(&[op::MESSAGE, 0, 18, 0, 0]);
    }
    if lie {
        w.bytes(&[op::FRAMES, 1])
            .chunk(&[avail.to_bytes(), Message::Unchoke.to_bytes()].concat());
        for _ in 0..4 {
            w.bytes(&[op::LIE, 1]);
        }
    }
    for _ in 0..16 {
        w.bytes(&[op::SERVE, 0, op::DISK, 0]);
    }
    w.bytes(&[op::WAIT, 0, 30]);
    // Peer 2 is interested and asks for a block, allowed fast, a hash request.
    w.bytes(&[op::MESSAGE, 2, 6, op::MESSAGE, 2, 8, 0, 0, 0]);
    w.bytes(&[op::MESSAGE, 2, 11, 1, op::MESSAGE, 2, 16, 0, 1, 0, 5, 7]);
    for _ in 0..16 {
        w.bytes(&[op::SERVE, 0, op::DISK, 0]);
    }
    w.bytes(&[op::MESSAGE, 2, 17, 0, op::DISCONNECT, 1, op::WAIT, 0, 200]);
    w.0
}
