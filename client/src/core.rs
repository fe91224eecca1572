//! The torrent core, sans-IO: every peer's protocol state, the piece picker, the
//! choker, endgame, bans and progress counters, with no sockets, no clock, no disk.
//!
//! ```text
//!  peer connected / message / gone ──handle_*(now, …)──▶ TorrentCore ──poll_action()──▶ Action
//!  piece checked / blocks read / files finished ──▶                   ──poll_timeout()──▶ Instant
//!  time ──handle_timeout(now)──▶
//! ```
//!
//! **Drain rule:** after any `handle_*` call, drain [`TorrentCore::poll_action`] until it
//! returns `None`, then wait for input or [`TorrentCore::poll_timeout`].
//!
//! The driver ([`crate::torrent`]) executes actions: [`Action::Send`] writes a message,
//! [`Action::Close`] drops a connection (the core has already forgotten it),
//! [`Action::CheckPiece`] hashes and stores a complete piece and answers with
//! [`TorrentCore::handle_piece_checked`], [`Action::Read`] reads blocks for a peer's
//! requests and answers with [`TorrentCore::handle_blocks_read`], [`Action::Finish`]
//! completes the files and answers with [`TorrentCore::handle_finished`],
//! [`Action::Connect`] asks to dial an address learned through PEX (BEP 11), limits
//! permitting. Serving the info dictionary (BEP 9) and PEX live in `ext.rs`, the core
//! only routes extension messages there.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use handshake::{PeerId, Reserved};
use peer_wire::{
    Bitfield, Block, BlockRequest, Event, ExtensionHandshake, Message, PeerConfig, PeerState,
};

use crate::choker::{Choker, ChokerConfig, SeedAlgorithm};
use crate::ext::Extensions;
use crate::pex::PexEntry;
use crate::picker::{BLOCK_SIZE, PeerKey, Picker, Priority};
use crate::torrent::Status;

/// Blocks read from disk per batch for one peer's requests (512 KiB).
const READ_BATCH: usize = 32;

/// How long a peer may take to answer a hash request before another is asked.
const HASH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// How long a peer that refused a hash request (or did not answer) is not asked again.
const HASH_REFUSAL: std::time::Duration = std::time::Duration::from_secs(60);

/// `hash reject`s a peer may send before it is no longer asked for hashes (each
/// refusal rests it for a minute; without a bound it would be asked forever).
pub const MAX_HASH_REJECTS: u32 = 64;

/// A peer that alone sent this many pieces that failed their hash check is banned.
/// A peer whose block is shown wrong by a good copy of the piece is banned at once.
const MAX_STRIKES: u32 = 2;

/// Failed pieces with several senders whose blocks are kept (as digests) until a good
/// copy of the piece arrives.
const MAX_SUSPECT_PIECES: usize = 256;

/// Block records kept per suspect piece (a piece failing again and again with new
/// senders cannot grow this without bound).
const MAX_SUSPECTS_PER_PIECE: usize = 1024;

/// Limits and what we announce.
#[derive(Debug, Clone, Copy)]
pub struct CoreConfig {
    /// Our peer id (breaks ties between simultaneous connections).
    pub peer_id: PeerId,
    /// Our extension bits.
    pub reserved: Reserved,
    /// Peers we upload to at once (the choker's upload slots).
    pub max_unchoked: usize,
    /// Block requests outstanding per peer at most.
    pub max_outstanding: usize,
    /// Our listening port, announced in the extension handshake.
    pub listen_port: Option<u16>,
    /// Our DHT node's UDP port: sent in a BEP 5 `port` message to peers that set the
    /// DHT bit, and peers' `port` messages become [`Action::DhtNode`]. `None`: no DHT.
    pub dht_port: Option<u16>,
    /// Bytes of complete pieces waiting for their hash check ([`Action::CheckPiece`]
    /// not answered yet) at or above which no more blocks are requested: when blocks
    /// arrive faster than they can be hashed, the backlog (and memory) stays bounded
    /// instead of growing towards the whole torrent.
    pub max_unchecked: usize,
}

/// A connection the driver established.
#[derive(Debug, Clone, Copy)]
pub struct NewPeer {
    /// The peer's id from the handshake.
    pub peer_id: PeerId,
    /// The peer's extension bits from the handshake.
    pub reserved: Reserved,
    /// The remote address.
    pub addr: Option<SocketAddr>,
    /// Whether we dialed it.
    pub outgoing: bool,
}

/// Something for the driver to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum Action {
    /// Send a message to a peer.
    Send(PeerKey, Message),
    /// Close the connection; the core has forgotten the peer.
    Close(PeerKey, String),
    /// Hash piece `index` and, if good, store it; then call
    /// [`TorrentCore::handle_piece_checked`].
    CheckPiece(u32, PieceData),
    /// Read these blocks for the peer; then call [`TorrentCore::handle_blocks_read`].
    Read(PeerKey, Vec<BlockRequest>),
    /// A peer's DHT node (from its BEP 5 `port` message): ping it, add it to the table.
    DhtNode(SocketAddr),
    /// Every wanted piece is stored: complete the files (create empty ones, flush), then
    /// call [`TorrentCore::handle_finished`].
    Finish,
    /// The peer asks for v2 merkle hashes (BEP 52): send `hashes` or `hash reject`
    /// ([`crate::hashes::answer`]).
    HashRequest(PeerKey, peer_wire::HashRequest),
    /// Dial this address (learned through PEX) if the connection limits allow.
    Connect(SocketAddr),
    /// The peer answered one of our hash requests: check the hashes against the file's
    /// root ([`crate::hashes::check_answer`]), store them if good, then call
    /// [`TorrentCore::handle_hashes_checked`].
    CheckHashes(PeerKey, peer_wire::Hashes),
}

/// Piece-layer hashes we still need from peers (BEP 52), and who was asked.
#[derive(Debug)]
struct HashNeed {
    req: peer_wire::HashRequest,
    pieces: std::ops::Range<u32>,
    /// The peer asked, and when.
    asked: Option<PeerKey>,
    asked_at: Option<Instant>,
    /// Peers that rejected it, sent bad hashes or did not answer in time, and when.
    refused: Vec<(PeerKey, Instant)>,
}

/// A complete piece as it arrived: its blocks in order, each the received payload
/// itself (no copy into a piece buffer).
#[derive(Debug, Clone, Default)]
pub struct PieceData {
    blocks: Vec<Bytes>,
}

impl PieceData {
    /// A piece made of these blocks, in order.
    pub fn new(blocks: Vec<Bytes>) -> Self {
        PieceData { blocks }
    }

    /// The blocks, in order.
    pub fn blocks(&self) -> &[Bytes] {
        &self.blocks
    }

    /// The blocks, in order, taken out (for [`crate::storage::Storage::store_piece`]).
    pub fn into_blocks(self) -> Vec<Bytes> {
        self.blocks
    }

    /// The piece's length.
    pub fn len(&self) -> usize {
        self.blocks.iter().map(|b| b.len()).sum()
    }

    /// Whether the piece is empty.
    pub fn is_empty(&self) -> bool {
        self.blocks.iter().all(|b| b.is_empty())
    }

    /// The piece in one buffer (a copy).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        for b in &self.blocks {
            v.extend_from_slice(b);
        }
        v
    }
}

/// The outcome of [`Action::CheckPiece`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PieceCheck {
    /// The hash matched and the piece is stored.
    Stored,
    /// The hash did not match.
    BadHash,
    /// Storing failed (the message): the torrent stops.
    StorageFailed(String),
}

/// One block of a failed piece with several senders: who sent it and its digest.
#[derive(Debug, Clone)]
struct Suspect {
    block: usize,
    key: PeerKey,
    peer_id: PeerId,
    addr: Option<SocketAddr>,
    digest: [u8; 20],
}

fn block_digest(data: &[u8]) -> [u8; 20] {
    use sha1::{Digest, Sha1};
    Sha1::digest(data).into()
}

struct CorePeer {
    state: PeerState,
    peer_id: PeerId,
    addr: Option<SocketAddr>,
    listen_addr: Option<SocketAddr>,
    /// Whether the peer's BEP 5 `port` was passed on (once per connection: a peer
    /// cannot make us ping a stream of addresses).
    dht_port_seen: bool,
    outgoing: bool,
    strikes: u32,
    /// The pieces of this peer counted in the picker's availability.
    counted: Bitfield,
    to_read: Vec<BlockRequest>,
    reading: bool,
    interest_dirty: bool,
    /// `hash reject`s received (at [`MAX_HASH_REJECTS`] it is not asked again).
    hash_rejects: u32,
}

/// The sans-IO torrent core. See the [module docs](self).
pub struct TorrentCore {
    config: CoreConfig,
    peer_config: PeerConfig,
    picker: Picker,
    peers: HashMap<PeerKey, CorePeer>,
    by_id: HashMap<PeerId, PeerKey>,
    next_key: PeerKey,
    /// Blocks received of the pieces in progress, by block index.
    buffers: HashMap<u32, Vec<Bytes>>,
    /// Who sent each block of [`Self::buffers`] (same indices).
    senders: HashMap<u32, Vec<Option<PeerKey>>>,
    /// Pieces being hash-checked: their blocks (shared, not copied) and senders, kept
    /// to attribute a failure to the blocks that were wrong.
    checking: HashMap<u32, (Vec<Bytes>, Vec<Option<PeerKey>>)>,
    /// The bytes of the pieces in `checking`.
    checking_bytes: usize,
    /// Blocks of failed pieces that had several senders, until a good copy of the
    /// piece shows which of them lied (at most [`MAX_SUSPECT_PIECES`] pieces).
    suspects: HashMap<u32, Vec<Suspect>>,
    banned_ids: HashSet<PeerId>,
    banned_addrs: HashSet<SocketAddr>,
    choker: Choker<PeerKey>,
    downloaded: u64,
    uploaded: u64,
    hash_failures: u64,
    finishing: bool,
    complete: bool,
    error: Option<String>,
    actions: VecDeque<Action>,
    ext: Extensions,
    hash_needs: Vec<HashNeed>,
    /// A hash request became free to ask elsewhere while handling the current input.
    hash_freed: bool,
}

impl std::fmt::Debug for TorrentCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorrentCore")
            .field("peers", &self.peers.len())
            .field("have", &self.picker.have_count())
            .finish_non_exhaustive()
    }
}

impl TorrentCore {
    /// A core over `picker` (whose pieces we have are already marked); `peer_config`
    /// gives the torrent's geometry to every peer.
    pub fn new(config: CoreConfig, peer_config: PeerConfig, picker: Picker) -> TorrentCore {
        let complete = picker.is_complete();
        TorrentCore {
            config,
            peer_config,
            picker,
            peers: HashMap::new(),
            by_id: HashMap::new(),
            next_key: 1,
            buffers: HashMap::new(),
            senders: HashMap::new(),
            checking: HashMap::new(),
            checking_bytes: 0,
            suspects: HashMap::new(),
            banned_ids: HashSet::new(),
            banned_addrs: HashSet::new(),
            choker: {
                let mut c = Choker::new(ChokerConfig {
                    upload_slots: config.max_unchoked,
                    ..ChokerConfig::default()
                });
                c.set_seeding(complete);
                c
            },
            downloaded: 0,
            uploaded: 0,
            hash_failures: 0,
            finishing: false,
            complete,
            error: None,
            actions: VecDeque::new(),
            ext: Extensions::new(),
            hash_needs: Vec::new(),
            hash_freed: false,
        }
    }

    /// The torrent's raw info dictionary, served to peers that ask (BEP 9), and whether
    /// the torrent is private (BEP 27: no PEX). Call before peers connect.
    pub fn set_info(&mut self, info: bytes::Bytes, private: bool) {
        self.ext.set_info(info, private);
    }

    /// v2 piece-layer hashes the torrent lacks (a magnet link's info dictionary has
    /// none): each request and the pieces it covers. Those pieces are not requested
    /// until a peer's answer to the request is checked
    /// ([`handle_hashes_checked`](Self::handle_hashes_checked)); the requests go to
    /// peers as they connect, one peer per request, another after a `hash reject`.
    pub fn set_hash_needs(&mut self, needs: Vec<(peer_wire::HashRequest, std::ops::Range<u32>)>) {
        for (req, pieces) in needs {
            self.picker.set_blocked(pieces.clone(), true);
            self.hash_needs.push(HashNeed {
                req,
                pieces,
                asked: None,
                asked_at: None,
                refused: Vec::new(),
            });
        }
    }

    /// The outcome of [`Action::CheckHashes`]: `ok` if the hashes proved against the
    /// root and are stored (their pieces can be fetched now); a peer sending bad hashes
    /// gets a strike, and another peer is asked.
    pub fn handle_hashes_checked(
        &mut self,
        now: Instant,
        key: PeerKey,
        req: peer_wire::HashRequest,
        ok: bool,
    ) {
        let Some(i) = self
            .hash_needs
            .iter()
            .position(|n| n.req == req && n.asked == Some(key))
        else {
            return;
        };
        if ok {
            let need = self.hash_needs.swap_remove(i);
            self.picker.set_blocked(need.pieces, false);
        } else {
            tracing::warn!(
                peer = key,
                ?req,
                "hashes that do not prove against the root"
            );
            let need = &mut self.hash_needs[i];
            need.asked = None;
            need.asked_at = None;
            need.refused.push((key, now));
            self.strike(&[key], now);
        }
        self.after_all(now);
    }

    /// How upload slots are shared once seeding (the default is round robin).
    pub fn set_seed_algorithm(&mut self, algorithm: SeedAlgorithm) {
        self.choker.set_seed_algorithm(algorithm);
    }

    /// The progress counters.
    pub fn status(&self) -> Status {
        let (have_bytes, wanted_bytes) = self.picker.wanted_bytes();
        Status {
            have_bytes,
            wanted_bytes,
            pieces_have: self.picker.have_count(),
            piece_count: self.picker.piece_count(),
            downloaded: self.downloaded,
            uploaded: self.uploaded,
            peers: self.peers.len(),
            hash_failures: self.hash_failures,
            peers_banned: self.banned_ids.len(),
            complete: self.complete,
            error: self.error.clone(),
            ..Status::default()
        }
    }

    /// The piece picker (which pieces we have, file priorities).
    pub fn picker(&self) -> &Picker {
        &self.picker
    }

    /// Sets a file's priority (0 = skip, [`crate::picker::NORMAL`] = default); the
    /// torrent may become complete (the files are then finished) or incomplete again.
    pub fn set_file_priority(&mut self, now: Instant, file: usize, priority: Priority) {
        self.picker.set_file_priority(file, priority);
        self.wanted_changed(now);
    }

    /// Sequential mode: new pieces in index order instead of rarest first.
    pub fn set_sequential(&mut self, on: bool) {
        self.picker.set_sequential(on);
    }

    /// Streaming windows, in order of precedence (see [`Picker::set_windows`]): their
    /// pieces are requested before all others, even from skipped files.
    pub fn set_windows(&mut self, now: Instant, windows: Vec<std::ops::Range<u32>>) {
        self.picker.set_windows(windows);
        self.wanted_changed(now);
    }

    /// What we want changed: re-evaluate completion and interest, request more.
    fn wanted_changed(&mut self, now: Instant) {
        let done = self.picker.is_complete();
        if done && !self.complete && !self.finishing {
            self.finishing = true;
            self.actions.push_back(Action::Finish);
        } else if !done {
            self.complete = false;
        }
        self.after_all(now);
    }

    /// The number of connected peers.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Closes every connection (the torrent is paused); see [`Action::Close`].
    pub fn disconnect_all(&mut self, now: Instant, reason: &str) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.drop_peer(key, reason.to_string(), now);
        }
    }

    /// Where the connected peers can be dialed: the addresses we dialed and the
    /// listen ports incoming peers announced.
    pub fn peer_listen_addrs(&self) -> Vec<SocketAddr> {
        self.peers.values().filter_map(|p| p.listen_addr).collect()
    }

    /// Whether dialing `addr` makes sense: not banned, not already connected.
    pub fn should_dial(&self, addr: SocketAddr) -> bool {
        !self.banned_addrs.contains(&addr)
            && !self.peers.values().any(|p| p.listen_addr == Some(addr))
    }

    /// The next action.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let hashes = self.hash_needs.iter().filter_map(|n| match n.asked_at {
            Some(t) => Some(t + HASH_TIMEOUT),
            None => n.refused.iter().map(|(_, t)| *t + HASH_REFUSAL).min(),
        });
        self.peers
            .values()
            .filter_map(|p| p.state.poll_timeout())
            .chain(self.ext.poll_timeout())
            .chain(hashes)
            .chain(self.choker.poll_timeout())
            .min()
    }

    /// A connection is established. Returns its key, or `None` if it is refused (a
    /// banned peer, or a duplicate of a connection that is kept: when both sides dial
    /// each other, the connection initiated by the lower peer id survives on both).
    pub fn handle_connect(&mut self, now: Instant, p: NewPeer) -> Option<PeerKey> {
        if self.banned_ids.contains(&p.peer_id) {
            return None;
        }
        let ours = self.config.peer_id;
        let initiator = |out: bool| if out { ours } else { p.peer_id };
        if let Some(&old) = self.by_id.get(&p.peer_id) {
            let old_out = self.peers.get(&old).is_some_and(|x| x.outgoing);
            if initiator(old_out) <= initiator(p.outgoing) {
                return None;
            }
            self.drop_peer(old, "another connection to this peer is kept".into(), now);
        }
        let key = self.next_key;
        self.next_key += 1;
        let both = self.config.reserved.intersection(p.reserved);
        let mut cfg = self.peer_config;
        cfg.fast = both.fast();
        let mut state = PeerState::new(cfg);
        if both.extension_protocol() {
            let mut hs = ExtensionHandshake::new();
            hs.v = Some(concat!("rivulet ", env!("CARGO_PKG_VERSION")).to_string());
            hs.reqq = u32::try_from(cfg.max_incoming_requests).ok();
            hs.p = self.config.listen_port;
            self.ext.advertise(&mut hs);
            state.send_extension_handshake(&hs);
        }
        if let Some(port) = self.config.dht_port
            && both.dht()
        {
            state.send(Message::Port(port));
        }
        state.send_availability(&self.picker.bitfield());
        let _ = state.handle_timeout(now);
        self.peers.insert(
            key,
            CorePeer {
                state,
                peer_id: p.peer_id,
                addr: p.addr,
                listen_addr: if p.outgoing { p.addr } else { None },
                dht_port_seen: false,
                outgoing: p.outgoing,
                strikes: 0,
                counted: Bitfield::new(cfg.num_pieces),
                to_read: Vec::new(),
                reading: false,
                interest_dirty: true,
                hash_rejects: 0,
            },
        );
        self.by_id.insert(p.peer_id, key);
        self.choker.add_peer(now, key);
        self.after(key, now);
        Some(key)
    }

    /// A message from a peer.
    pub fn handle_message(&mut self, now: Instant, key: PeerKey, msg: Message) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if let Err(e) = p.state.handle_message(now, msg) {
            self.drop_peer(key, e.to_string(), now);
            return;
        }
        self.drain_events(key, now);
        self.after(key, now);
        if std::mem::take(&mut self.hash_freed) {
            // A hash request is free: a waiting peer may take it.
            self.after_all(now);
        }
    }

    /// The connection closed (read error, end of stream).
    pub fn handle_disconnect(&mut self, now: Instant, key: PeerKey) {
        if self.peers.contains_key(&key) {
            self.forget(key, now);
        }
    }

    /// Time passed: request timeouts, keep-alives, idle peers, rechokes.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.choker.handle_timeout(now);
        self.apply_choker();
        // Hash requests unanswered for too long go to another peer; refusals expire.
        let mut freed = false;
        for n in &mut self.hash_needs {
            if let (Some(k), Some(t)) = (n.asked, n.asked_at)
                && t + HASH_TIMEOUT <= now
            {
                n.asked = None;
                n.asked_at = None;
                n.refused.push((k, now));
                freed = true;
            }
            let before = n.refused.len();
            n.refused.retain(|(_, t)| *t + HASH_REFUSAL > now);
            freed |= n.refused.len() != before;
        }
        if freed {
            self.after_all(now);
        }
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            let Some(p) = self.peers.get_mut(&key) else {
                continue;
            };
            if p.state.poll_timeout().is_some_and(|t| t <= now) {
                if let Err(e) = p.state.handle_timeout(now) {
                    self.drop_peer(key, e.to_string(), now);
                    continue;
                }
                self.drain_events(key, now);
                self.after(key, now);
            }
        }
        self.poll_pex(now);
    }

    /// Queues the PEX messages due at `now`.
    fn poll_pex(&mut self, now: Instant) {
        if self.ext.poll_timeout().is_none_or(|t| t > now) {
            return;
        }
        let connected: Vec<PexEntry> = self
            .peers
            .iter()
            .filter_map(|(&key, p)| {
                let addr = p.listen_addr?;
                let mut flags = 0;
                if p.state.peer_pieces().is_full() {
                    flags |= peer_wire::PexFlags::SEED;
                }
                if p.outgoing {
                    flags |= peer_wire::PexFlags::REACHABLE;
                }
                Some(PexEntry {
                    key,
                    addr,
                    flags: peer_wire::PexFlags(flags),
                })
            })
            .collect();
        for (key, msg) in self.ext.poll_pex(now, &connected) {
            if let Some(p) = self.peers.get_mut(&key) {
                p.state.send(msg);
            }
            self.flush(key);
        }
    }

    /// The outcome of [`Action::CheckPiece`].
    pub fn handle_piece_checked(&mut self, now: Instant, index: u32, result: PieceCheck) {
        let (blocks, senders) = self.checking.remove(&index).unwrap_or_default();
        let len: usize = blocks.iter().map(Bytes::len).sum();
        self.checking_bytes = self.checking_bytes.saturating_sub(len);
        match result {
            PieceCheck::Stored => {
                if let Some(suspects) = self.suspects.remove(&index) {
                    self.convict(&blocks, suspects, now);
                }
                self.picker.piece_verified(index);
                for p in self.peers.values_mut() {
                    p.state.have(index);
                }
                if !self.complete && !self.finishing && self.picker.is_complete() {
                    self.choker.set_seeding(true);
                    self.finishing = true;
                    self.actions.push_back(Action::Finish);
                }
            }
            PieceCheck::BadHash => {
                self.hash_failures += 1;
                self.picker.piece_failed(index);
                tracing::warn!(piece = index, "piece failed its hash check");
                self.attribute_failure(index, &blocks, &senders, now);
            }
            PieceCheck::StorageFailed(e) => {
                self.picker.piece_failed(index);
                // The first failure says it; those already under way are the same.
                if self.error.is_none() {
                    tracing::warn!(piece = index, error = %e, "storing a piece failed");
                    self.error = Some(e);
                } else {
                    tracing::debug!(piece = index, error = %e, "storing a piece failed");
                }
            }
        }
        self.after_all(now);
    }

    /// The outcome of [`Action::Read`]: one entry per block asked for (`None`: the read
    /// failed).
    pub fn handle_blocks_read(&mut self, now: Instant, key: PeerKey, blocks: Vec<Option<Block>>) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        p.reading = false;
        for block in blocks.into_iter().flatten() {
            let len = block.data.len() as u64;
            if p.state.send_block(block).is_ok() {
                self.uploaded += len;
                self.choker.record_upload(key, len);
            }
        }
        self.after(key, now);
    }

    /// The storage error that stopped the torrent, until [`clear_error`](Self::clear_error).
    pub fn storage_error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Forgets the storage error (the caller tries again); if every wanted piece is
    /// already verified, the files are finished again ([`Action::Finish`]).
    pub fn clear_error(&mut self) {
        if self.error.take().is_some()
            && !self.complete
            && !self.finishing
            && self.picker.is_complete()
        {
            self.finishing = true;
            self.actions.push_back(Action::Finish);
        }
    }

    /// Writing verified pieces out of the write-back cache failed (the message, as for
    /// [`PieceCheck::StorageFailed`]): the torrent stops on the error. The pieces are not
    /// durable (no resume file lists them: the storage cannot be synced); the driver
    /// drops them with [`handle_pieces_lost`](Self::handle_pieces_lost) once it paused.
    pub fn handle_flush_failed(&mut self, pieces: &[u32], error: String) {
        tracing::warn!(pieces = pieces.len(), first = ?pieces.first(), error = %error, "writing cached pieces failed");
        self.error = Some(error);
    }

    /// Verified pieces that never reached the disk (dropped from the write-back cache
    /// after a storage error): they are no longer had, and are fetched again. Call it
    /// while no peer is connected (the torrent paused on the error), so no peer was
    /// told otherwise on this connection.
    pub fn handle_pieces_lost(&mut self, pieces: &[u32]) {
        for &p in pieces {
            self.picker.piece_lost(p);
        }
        if !pieces.is_empty() && !self.picker.is_complete() {
            self.complete = false;
            self.choker.set_seeding(false);
        }
    }

    /// The outcome of [`Action::Finish`].
    pub fn handle_finished(&mut self, result: Result<(), String>) {
        self.finishing = false;
        match result {
            Ok(()) => {
                // Priorities may have been raised while the files were finished.
                self.complete = self.picker.is_complete();
                if self.complete {
                    tracing::info!("download complete");
                }
            }
            Err(e) => self.error = Some(e),
        }
    }

    /// A piece failed its check. With one sender, that sender lied: a strike. With
    /// several, which one lied is unknown until a good copy arrives: their blocks'
    /// digests are kept (bounded) and [`Self::convict`] compares them then, so an
    /// honest peer that shared a piece with a liar is never punished.
    fn attribute_failure(
        &mut self,
        index: u32,
        blocks: &[Bytes],
        senders: &[Option<PeerKey>],
        now: Instant,
    ) {
        let mut distinct: Vec<PeerKey> = senders.iter().flatten().copied().collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() <= 1 {
            self.strike(&distinct, now);
            return;
        }
        if !self.suspects.contains_key(&index) && self.suspects.len() >= MAX_SUSPECT_PIECES {
            tracing::debug!(
                piece = index,
                "too many suspect pieces: failure not attributed"
            );
            return;
        }
        let records = self.suspects.entry(index).or_default();
        for (block, (data, sender)) in blocks.iter().zip(senders).enumerate() {
            let Some(key) = sender else { continue };
            let Some(p) = self.peers.get(key) else {
                continue;
            };
            if records.len() >= MAX_SUSPECTS_PER_PIECE {
                break;
            }
            records.push(Suspect {
                block,
                key: *key,
                peer_id: p.peer_id,
                addr: p.listen_addr.or(p.addr),
                digest: block_digest(data),
            });
        }
    }

    /// A good copy of a piece that failed before: every peer whose block differs from
    /// the good one is banned (it is proven to have sent wrong data).
    fn convict(&mut self, good: &[Bytes], suspects: Vec<Suspect>, now: Instant) {
        let mut liars: Vec<Suspect> = Vec::new();
        for s in suspects {
            let Some(data) = good.get(s.block) else {
                continue;
            };
            if block_digest(data) != s.digest && !liars.iter().any(|l| l.peer_id == s.peer_id) {
                liars.push(s);
            }
        }
        for l in liars {
            tracing::warn!(addr = ?l.addr, id = %l.peer_id, block = l.block, "a good copy of a failed piece shows this peer sent a wrong block");
            self.banned_ids.insert(l.peer_id);
            if let Some(a) = l.addr {
                self.banned_addrs.insert(a);
            }
            if self
                .peers
                .get(&l.key)
                .is_some_and(|p| p.peer_id == l.peer_id)
            {
                self.drop_peer(
                    l.key,
                    "banned: sent data that failed hash checks".into(),
                    now,
                );
            }
        }
    }

    fn strike(&mut self, contributors: &[PeerKey], now: Instant) {
        let mut banned = Vec::new();
        for key in contributors {
            if let Some(p) = self.peers.get_mut(key) {
                p.strikes += 1;
                if p.strikes >= MAX_STRIKES {
                    banned.push(*key);
                }
            }
        }
        for key in banned {
            if let Some(p) = self.peers.get(&key) {
                tracing::warn!(addr = ?p.addr, id = %p.peer_id, "banning a peer that sent corrupt data");
                self.banned_ids.insert(p.peer_id);
                if let Some(a) = p.listen_addr.or(p.addr) {
                    self.banned_addrs.insert(a);
                }
            }
            self.drop_peer(key, "banned: sent data that failed hash checks".into(), now);
        }
    }

    /// Closes a connection on our side.
    fn drop_peer(&mut self, key: PeerKey, reason: String, now: Instant) {
        if self.peers.contains_key(&key) {
            self.forget(key, now);
            self.actions.push_back(Action::Close(key, reason));
        }
    }

    fn forget(&mut self, key: PeerKey, now: Instant) {
        let Some(p) = self.peers.remove(&key) else {
            return;
        };
        self.ext.handle_disconnect(key);
        self.picker.remove_peer(key, &p.counted);
        if self.by_id.get(&p.peer_id) == Some(&key) {
            self.by_id.remove(&p.peer_id);
        }
        self.choker.remove_peer(now, key);
        for n in &mut self.hash_needs {
            n.refused.retain(|(k, _)| *k != key);
            if n.asked == Some(key) {
                n.asked = None;
                n.asked_at = None;
            }
        }
        // Its requests are free again and an upload slot may be: let others take them.
        self.after_all(now);
    }

    fn drain_events(&mut self, key: PeerKey, now: Instant) {
        loop {
            let Some(p) = self.peers.get_mut(&key) else {
                return;
            };
            let Some(ev) = p.state.poll_event() else {
                return;
            };
            match ev {
                Event::Availability => {
                    let pieces = p.state.peer_pieces().clone();
                    self.picker.remove_peer(key, &p.counted);
                    self.picker.add_peer_pieces(&pieces);
                    p.counted = pieces;
                    p.interest_dirty = true;
                }
                Event::Have(i) => {
                    // One new piece can only make us interested, and only in itself: no
                    // scan of the whole bitfield per `have` (quadratic over a download
                    // for a seed of a torrent with many pieces).
                    if !p.state.am_interested() && self.picker.wants(i) {
                        p.interest_dirty = true;
                    }
                    if !p.counted.has(i) {
                        p.counted.set(i);
                        self.picker.add_peer_have(i);
                    }
                }
                Event::Interested => self.choker.set_interested(now, key, true),
                Event::NotInterested => self.choker.set_interested(now, key, false),
                Event::Request(r) => {
                    if !self.picker.has(r.index) || p.state.am_choking() {
                        p.state.reject(r);
                    } else {
                        p.to_read.push(r);
                    }
                }
                Event::Block(b) => self.on_block(key, b),
                Event::Rejected(r) | Event::RequestTimedOut(r) => {
                    self.picker.request_failed(key, &r);
                }
                Event::ExtensionHandshake(hs) => {
                    // An incoming peer's listen port; a peer we dialed is reachable
                    // where we dialed it (through a relay or NAT, its own idea of its
                    // port may not be).
                    if let (Some(port), Some(a), false) = (hs.p, p.addr, p.outgoing)
                        && port != 0
                    {
                        p.listen_addr = Some(SocketAddr::new(a.ip(), port));
                    }
                    self.ext.handle_handshake(now, key, &hs);
                }
                Event::Extended { id, payload } => {
                    let out = self.ext.handle_message(now, key, id, &payload);
                    if let Some(e) = out.error {
                        self.drop_peer(key, e, now);
                        return;
                    }
                    if let Some(m) = out.reply {
                        p.state.send(m);
                    }
                    for addr in out.dial {
                        if self.should_dial(addr) {
                            self.actions.push_back(Action::Connect(addr));
                        }
                    }
                }
                Event::Port(port) => {
                    if let (true, Some(a)) = (self.config.dht_port.is_some(), p.addr)
                        && port != 0
                        && !std::mem::replace(&mut p.dht_port_seen, true)
                    {
                        self.actions
                            .push_back(Action::DhtNode(SocketAddr::new(a.ip(), port)));
                    }
                }
                Event::Choked | Event::Unchoked => {}
                Event::Other(Message::Hashes(h)) => {
                    if self
                        .hash_needs
                        .iter()
                        .any(|n| n.req == h.request && n.asked == Some(key))
                    {
                        self.actions.push_back(Action::CheckHashes(key, h));
                    }
                }
                Event::Other(Message::HashReject(r)) => {
                    p.hash_rejects = p.hash_rejects.saturating_add(1);
                    if let Some(n) = self
                        .hash_needs
                        .iter_mut()
                        .find(|n| n.req == r && n.asked == Some(key))
                    {
                        n.asked = None;
                        n.asked_at = None;
                        n.refused.push((key, now));
                        self.hash_freed = true;
                    }
                }
                Event::Other(Message::HashRequest(r)) => {
                    // Flush first: the answer goes after what the state queued.
                    while let Some(m) = p.state.poll_transmit() {
                        self.actions.push_back(Action::Send(key, m));
                    }
                    self.actions.push_back(Action::HashRequest(key, r));
                }
                other => tracing::debug!(event = ?other, "ignored"),
            }
        }
    }

    fn on_block(&mut self, key: PeerKey, b: Block) {
        let r = b.request();
        self.downloaded += b.data.len() as u64;
        self.choker.record_download(key, b.data.len() as u64);
        let got = self.picker.block_received(key, &r);
        if !got.new {
            return;
        }
        for (peer, req) in &got.cancel {
            if let Some(p) = self.peers.get_mut(peer) {
                p.state.cancel(*req);
            }
        }
        let plen = self.picker.piece_len(r.index);
        let count = plen.div_ceil(BLOCK_SIZE) as usize;
        let blocks = self
            .buffers
            .entry(r.index)
            .or_insert_with(|| vec![Bytes::new(); count]);
        let senders = self
            .senders
            .entry(r.index)
            .or_insert_with(|| vec![None; count]);
        // The picker accepted it: a block of this piece, at a block boundary, with the
        // length it asked for.
        let at = (r.begin / BLOCK_SIZE) as usize;
        if let Some(slot) = blocks.get_mut(at) {
            *slot = b.data;
        }
        if let Some(slot) = senders.get_mut(at) {
            *slot = Some(key);
        }
        if let Some(index) = got.piece_complete {
            let senders = self.senders.remove(&index).unwrap_or_default();
            match self.buffers.remove(&index) {
                Some(blocks) => {
                    // Shared handles, not copies: kept only until the check answers.
                    self.checking_bytes += blocks.iter().map(Bytes::len).sum::<usize>();
                    if let Some((old, _)) = self.checking.insert(index, (blocks.clone(), senders)) {
                        let len: usize = old.iter().map(Bytes::len).sum();
                        self.checking_bytes = self.checking_bytes.saturating_sub(len);
                    }
                    self.actions
                        .push_back(Action::CheckPiece(index, PieceData::new(blocks)))
                }
                None => self.picker.piece_failed(index),
            }
        }
        // Cancels go out now, to the other peers.
        for (peer, _) in got.cancel {
            self.flush(peer);
        }
    }

    /// Sends the choker's decisions.
    fn apply_choker(&mut self) {
        while let Some((k, unchoke)) = self.choker.poll_change() {
            if let Some(p) = self.peers.get_mut(&k) {
                if unchoke {
                    p.state.unchoke();
                } else {
                    p.state.choke();
                }
                self.flush(k);
            }
        }
    }

    fn after_all(&mut self, now: Instant) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            if let Some(p) = self.peers.get_mut(&k) {
                p.interest_dirty = true;
            }
            self.after(k, now);
        }
    }

    /// After any input concerning a peer: upload slot, reads, interest, requests, and
    /// its outgoing messages.
    fn after(&mut self, key: PeerKey, now: Instant) {
        self.apply_choker();
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        // Reads for its requests, one batch at a time.
        if !p.reading && !p.to_read.is_empty() {
            // Drop the ones cancelled meanwhile (sorted: both lists hold up to `reqq`).
            let mut live: Vec<BlockRequest> = p.state.peer_requests().copied().collect();
            live.sort_unstable();
            p.to_read.retain(|r| live.binary_search(r).is_ok());
            let n = p.to_read.len().min(READ_BATCH);
            if n > 0 {
                let batch: Vec<BlockRequest> = p.to_read.drain(..n).collect();
                p.reading = true;
                self.actions.push_back(Action::Read(key, batch));
            }
        }
        if std::mem::take(&mut p.interest_dirty) {
            let want = self.picker.interested_in(p.state.peer_pieces());
            p.state.set_interested(want);
        }
        // Hash requests nobody is answering, to this peer (a few at a time), unless it
        // refused too often.
        let mut asked = self
            .hash_needs
            .iter()
            .filter(|n| n.asked == Some(key))
            .count();
        if p.hash_rejects >= MAX_HASH_REJECTS {
            asked = usize::MAX;
        }
        for n in &mut self.hash_needs {
            if asked >= 4 {
                break;
            }
            if n.asked.is_none() && !n.refused.iter().any(|(k, _)| *k == key) {
                n.asked = Some(key);
                n.asked_at = Some(now);
                asked += 1;
                self.actions
                    .push_back(Action::Send(key, Message::HashRequest(n.req)));
            }
        }
        self.refill_and_flush(key, now);
    }

    fn refill_and_flush(&mut self, key: PeerKey, now: Instant) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        // While too much waits for its hash check, nothing new is asked for; the
        // checks' answers top every peer up again (`after_all`).
        let hashing_behind = self.checking_bytes >= self.config.max_unchecked;
        if !p.state.peer_choking() && p.state.am_interested() && !hashing_behind {
            let cap = p.state.request_capacity();
            let outstanding = p.state.outstanding().count();
            // Top up in batches, so a pipeline of N is refilled every N/4 blocks.
            let batch = (self.config.max_outstanding / 4).max(1);
            if cap > 0 && (outstanding == 0 || cap >= batch) {
                for r in self.picker.pick(key, p.state.peer_pieces(), cap) {
                    if p.state.request(now, r).is_err() {
                        self.picker.request_failed(key, &r);
                    }
                }
            }
        }
        self.flush(key);
    }

    fn flush(&mut self, key: PeerKey) {
        if let Some(p) = self.peers.get_mut(&key) {
            while let Some(m) = p.state.poll_transmit() {
                self.actions.push_back(Action::Send(key, m));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Two cores wired together in memory, with storage done in memory: the whole
    //! exchange runs without sockets, threads or a clock.

    use super::*;
    use metainfo::{LayoutMode, PieceLayout};
    use sha1::{Digest, Sha1};

    const PIECE: u32 = 32768;

    fn content(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    struct Node {
        core: TorrentCore,
        data: Vec<u8>,
        hashes: Vec<[u8; 20]>,
        key_of_other: Option<PeerKey>,
    }

    fn node(id: u8, data: Vec<u8>, have_all: bool, total: usize) -> Node {
        let layout =
            PieceLayout::new(u64::from(PIECE), LayoutMode::V1, [(total as u64, false)]).unwrap();
        let content = content(total);
        let hashes = content
            .chunks(PIECE as usize)
            .map(|c| Sha1::digest(c).into())
            .collect();
        let mut picker = Picker::new(&layout, u64::from(id));
        if have_all {
            picker.set_have(&vec![true; layout.piece_count() as usize]);
        }
        let config = CoreConfig {
            peer_id: PeerId([id; 20]),
            reserved: Reserved::STANDARD,
            max_unchoked: 4,
            max_outstanding: 16,
            max_unchecked: usize::MAX,
            listen_port: None,
            dht_port: None,
        };
        let pc = PeerConfig::new(layout.piece_count(), PIECE, total as u64);
        Node {
            core: TorrentCore::new(config, pc, picker),
            data,
            hashes,
            key_of_other: None,
        }
    }

    /// Runs `a`'s actions: messages go to `b` (possibly corrupted), disk work is done
    /// at once. Returns whether anything happened.
    fn step(a: &mut Node, b: &mut Node, now: Instant, corrupt: bool) -> bool {
        let mut any = false;
        while let Some(act) = a.core.poll_action() {
            any = true;
            match act {
                Action::Send(_, mut msg) => {
                    if corrupt && let Message::Piece(blk) = &mut msg {
                        let mut d = blk.data.to_vec();
                        d[0] ^= 1;
                        blk.data = d.into();
                    }
                    if let Some(k) = b.key_of_other {
                        b.core.handle_message(now, k, msg);
                    }
                }
                Action::Close(..) => {
                    if let Some(k) = b.key_of_other.take() {
                        b.core.handle_disconnect(now, k);
                    }
                }
                Action::CheckPiece(i, d) => {
                    let d = d.to_vec();
                    let ok: [u8; 20] = Sha1::digest(&d).into();
                    let r = if ok == a.hashes[i as usize] {
                        let s = i as usize * PIECE as usize;
                        a.data[s..s + d.len()].copy_from_slice(&d);
                        PieceCheck::Stored
                    } else {
                        PieceCheck::BadHash
                    };
                    a.core.handle_piece_checked(now, i, r);
                }
                Action::Read(k, reqs) => {
                    let blocks = reqs
                        .iter()
                        .map(|r| {
                            let s = r.index as usize * PIECE as usize + r.begin as usize;
                            Some(Block {
                                index: r.index,
                                begin: r.begin,
                                data: a.data[s..s + r.length as usize].to_vec().into(),
                            })
                        })
                        .collect();
                    a.core.handle_blocks_read(now, k, blocks);
                }
                Action::Finish => a.core.handle_finished(Ok(())),
                Action::HashRequest(..) | Action::CheckHashes(..) => {}
                Action::Connect(_) => {}
                Action::DhtNode(_) => {}
            }
        }
        any
    }

    /// A plain peer (standard extension bits, no address) with id bytes `id`.
    fn new_peer(id: u8, outgoing: bool) -> NewPeer {
        NewPeer {
            peer_id: PeerId([id; 20]),
            reserved: Reserved::STANDARD,
            addr: None,
            outgoing,
        }
    }

    fn connect(a: &mut Node, b: &mut Node, now: Instant) {
        let pa = NewPeer {
            peer_id: b.core.config.peer_id,
            reserved: Reserved::STANDARD,
            addr: None,
            outgoing: true,
        };
        let pb = NewPeer {
            peer_id: a.core.config.peer_id,
            reserved: Reserved::STANDARD,
            addr: None,
            outgoing: false,
        };
        a.key_of_other = a.core.handle_connect(now, pa);
        b.key_of_other = b.core.handle_connect(now, pb);
    }

    /// Drains `n`'s actions, returning whether it sent `interested`.
    fn sent_interested(n: &mut Node) -> bool {
        let mut sent = false;
        while let Some(a) = n.core.poll_action() {
            sent |= matches!(a, Action::Send(_, Message::Interested));
        }
        sent
    }

    #[test]
    fn a_have_makes_us_interested_only_in_a_piece_we_want() {
        let total = 8 * PIECE as usize;
        let now = Instant::now();
        // A leech missing everything: the peer's empty bitfield is of no interest, its
        // `have 3` is.
        let mut leech = node(2, vec![0; total], false, total);
        let mut other = node(3, vec![0; total], false, total);
        connect(&mut leech, &mut other, now);
        let k = leech.key_of_other.unwrap();
        leech.core.handle_message(now, k, Message::HaveNone);
        assert!(!sent_interested(&mut leech));
        leech.core.handle_message(now, k, Message::Have(3));
        assert!(sent_interested(&mut leech));
        // A seed wants nothing: the leech's haves never make it interested.
        let mut seed = node(1, content(total), true, total);
        let mut peer = node(4, vec![0; total], false, total);
        connect(&mut seed, &mut peer, now);
        let k = seed.key_of_other.unwrap();
        seed.core.handle_message(now, k, Message::HaveNone);
        for i in 0..8 {
            seed.core.handle_message(now, k, Message::Have(i));
        }
        assert!(!sent_interested(&mut seed));
    }

    #[test]
    fn a_seed_and_a_leech_in_memory() {
        let total = 5 * PIECE as usize + 1234;
        let mut seed = node(1, content(total), true, total);
        let mut leech = node(2, vec![0; total], false, total);
        let now = Instant::now();
        connect(&mut leech, &mut seed, now);
        for _ in 0..10_000 {
            let x = step(&mut seed, &mut leech, now, false);
            let y = step(&mut leech, &mut seed, now, false);
            if !x && !y {
                break;
            }
        }
        let s = leech.core.status();
        assert!(s.complete, "{s:?}");
        assert_eq!(leech.data, content(total));
        assert_eq!(seed.core.status().uploaded, total as u64);
    }

    /// Runs seed and leech until quiet, the leech's hash checks held back (as if its
    /// hasher were slow); returns the checks it asked for.
    fn run_holding_checks(
        seed: &mut Node,
        leech: &mut Node,
        now: Instant,
        held: &mut Vec<(u32, Vec<u8>)>,
    ) {
        for _ in 0..10_000 {
            let x = step(seed, leech, now, false);
            let mut y = false;
            while let Some(act) = leech.core.poll_action() {
                y = true;
                match act {
                    Action::Send(_, msg) => {
                        if let Some(k) = seed.key_of_other {
                            seed.core.handle_message(now, k, msg);
                        }
                    }
                    Action::CheckPiece(i, d) => held.push((i, d.to_vec())),
                    Action::Finish => leech.core.handle_finished(Ok(())),
                    _ => {}
                }
            }
            if !x && !y {
                break;
            }
        }
    }

    /// A slow hasher: once `max_unchecked` bytes wait for their check, the leech asks
    /// for nothing more; each answered check lets it go on, and it completes.
    #[test]
    fn requests_stop_while_too_much_waits_for_its_hash_check() {
        let pieces = 20;
        let total = pieces * PIECE as usize;
        for (limit, most) in [(2 * PIECE as usize, 3), (usize::MAX, pieces)] {
            let mut seed = node(1, content(total), true, total);
            let mut leech = node(2, vec![0; total], false, total);
            leech.core.config.max_unchecked = limit;
            // Two blocks outstanding: one piece in flight at a time.
            leech.core.peer_config.max_outgoing_requests = 2;
            leech.core.config.max_outstanding = 2;
            let now = Instant::now();
            connect(&mut leech, &mut seed, now);
            let mut held = Vec::new();
            run_holding_checks(&mut seed, &mut leech, now, &mut held);
            // At most the limit (two pieces) plus what was already asked for (one
            // piece); without a limit, the whole torrent.
            assert!(held.len() <= most, "limit {limit}: {} waiting", held.len());
            if limit == usize::MAX {
                assert_eq!(held.len(), pieces);
            }
            // Answer the checks one at a time, as a hasher would.
            let mut checked = 0;
            while let Some((i, d)) = held.pop() {
                let s = i as usize * PIECE as usize;
                leech.data[s..s + d.len()].copy_from_slice(&d);
                leech.core.handle_piece_checked(now, i, PieceCheck::Stored);
                checked += 1;
                run_holding_checks(&mut seed, &mut leech, now, &mut held);
                assert!(held.len() <= most, "limit {limit}: {} waiting", held.len());
            }
            assert_eq!(checked, pieces);
            run(&mut seed, &mut leech, now);
            assert!(leech.core.status().complete);
            assert_eq!(leech.data, content(total));
        }
    }

    fn run(seed: &mut Node, leech: &mut Node, now: Instant) {
        for _ in 0..10_000 {
            let x = step(seed, leech, now, false);
            let y = step(leech, seed, now, false);
            if !x && !y {
                break;
            }
        }
    }

    #[test]
    fn skipping_windows_and_raising_priorities_change_what_is_fetched_and_completion() {
        let total = 6 * PIECE as usize;
        let mut seed = node(1, content(total), true, total);
        let mut leech = node(2, vec![0; total], false, total);
        let now = Instant::now();
        // Skip the only file: nothing is wanted, the files are finished at once.
        leech.core.set_file_priority(now, 0, 0);
        assert!(matches!(leech.core.poll_action(), Some(Action::Finish)));
        leech.core.handle_finished(Ok(()));
        assert!(leech.core.status().complete);
        connect(&mut leech, &mut seed, now);
        run(&mut seed, &mut leech, now);
        assert_eq!(leech.core.status().pieces_have, 0);
        // A streaming window fetches exactly its pieces, and stays complete.
        leech.core.set_windows(now, std::iter::once(2..4).collect());
        run(&mut seed, &mut leech, now);
        let s = leech.core.status();
        assert_eq!((s.pieces_have, s.downloaded), (2, 2 * u64::from(PIECE)));
        assert!(s.complete);
        assert!(leech.core.picker().has(2) && leech.core.picker().has(3));
        let (a, b) = (2 * PIECE as usize, 4 * PIECE as usize);
        assert_eq!(leech.data[a..b], content(total)[a..b]);
        // Raising the file: incomplete, then everything.
        leech.core.set_windows(now, Vec::new());
        leech.core.set_file_priority(now, 0, 4);
        assert!(!leech.core.status().complete);
        run(&mut seed, &mut leech, now);
        let s = leech.core.status();
        assert!(s.complete, "{s:?}");
        assert_eq!(s.downloaded, total as u64);
        assert_eq!(leech.data, content(total));
    }

    /// Drains `core`'s actions: (peer, hash request) sent, and whether any block
    /// request went out.
    fn drain(core: &mut TorrentCore) -> (Vec<(PeerKey, peer_wire::HashRequest)>, bool) {
        let (mut hashes, mut requests) = (Vec::new(), false);
        while let Some(a) = core.poll_action() {
            match a {
                Action::Send(k, Message::HashRequest(r)) => hashes.push((k, r)),
                Action::Send(_, Message::Request(_)) => requests = true,
                _ => {}
            }
        }
        (hashes, requests)
    }

    /// A leech of 6 pieces that lacks the hashes of all of them (one request covers
    /// them), and that request.
    fn leech_missing_hashes() -> (Node, peer_wire::HashRequest) {
        let total = 6 * PIECE as usize;
        let mut leech = node(2, vec![0; total], false, total);
        let req = peer_wire::HashRequest {
            pieces_root: [5; 32],
            base_layer: 1,
            index: 0,
            length: 8,
            proof_layers: 2,
        };
        leech.core.set_hash_needs(vec![(req, 0..6)]);
        (leech, req)
    }

    #[test]
    fn missing_hashes_are_asked_of_one_peer_then_another_and_block_their_pieces() {
        let (mut leech, req) = leech_missing_hashes();
        let t0 = Instant::now();
        let peer = |id: u8| new_peer(id, true);
        let a = leech.core.handle_connect(t0, peer(7)).unwrap();
        let b = leech.core.handle_connect(t0, peer(8)).unwrap();
        for k in [a, b] {
            leech.core.handle_message(t0, k, Message::HaveAll);
            leech.core.handle_message(t0, k, Message::Unchoke);
        }
        // Asked once, of the first peer; no piece is requested while blocked.
        let (asked, requested) = drain(&mut leech.core);
        assert_eq!(asked, vec![(a, req)]);
        assert!(!requested);
        // A rejection sends it to the other peer.
        leech.core.handle_message(t0, a, Message::HashReject(req));
        assert_eq!(drain(&mut leech.core).0, vec![(b, req)]);
        // No answer in time: asked again once a's refusal expired.
        let due = leech.core.poll_timeout().unwrap();
        assert!(due <= t0 + HASH_TIMEOUT);
        leech.core.handle_timeout(t0 + HASH_TIMEOUT);
        assert!(drain(&mut leech.core).0.is_empty(), "both peers refused");
        let later = t0 + HASH_REFUSAL + std::time::Duration::from_secs(1);
        leech.core.handle_timeout(later);
        let (asked, _) = drain(&mut leech.core);
        assert_eq!(asked.len(), 1);
        let (k, _) = asked[0];
        // Unsolicited or bad answers do not unblock; a checked one does.
        let other = if k == a { b } else { a };
        leech.core.handle_hashes_checked(later, other, req, true);
        assert!(!drain(&mut leech.core).1);
        leech.core.handle_hashes_checked(later, k, req, true);
        assert!(
            drain(&mut leech.core).1,
            "pieces are requested once the hashes are in"
        );
    }

    #[test]
    fn a_peer_that_keeps_refusing_hashes_is_no_longer_asked() {
        let (mut leech, req) = leech_missing_hashes();
        let mut now = Instant::now();
        let a = leech.core.handle_connect(now, new_peer(7, true)).unwrap();
        leech.core.handle_message(now, a, Message::HaveAll);
        // It refuses every time it is asked, and sends refusals nobody asked for.
        let mut asked = 0;
        for _ in 0..200 {
            asked += drain(&mut leech.core).0.len();
            leech.core.handle_message(now, a, Message::HashReject(req));
            leech.core.handle_message(now, a, Message::KeepAlive);
            now += HASH_REFUSAL + std::time::Duration::from_secs(1);
            leech.core.handle_timeout(now);
        }
        assert!(
            asked <= MAX_HASH_REJECTS as usize,
            "asked {asked} times after as many refusals"
        );
        assert!(drain(&mut leech.core).0.is_empty());
        // Another peer is asked.
        let b = leech.core.handle_connect(now, new_peer(8, true)).unwrap();
        leech.core.handle_message(now, b, Message::HaveAll);
        assert_eq!(drain(&mut leech.core).0, vec![(b, req)]);
    }

    /// BEP 5: with the DHT on, each side sends its DHT port to a peer that set the DHT
    /// bit; the other side turns it into a node address. Without the bit, nothing.
    #[test]
    fn port_messages_when_both_set_the_dht_bit() {
        let total = 2 * PIECE as usize;
        let now = Instant::now();
        for (bit, expect) in [(true, true), (false, false)] {
            let mut a = node(1, content(total), true, total);
            let mut b = node(2, vec![0; total], false, total);
            a.core.config.dht_port = Some(6881);
            b.core.config.dht_port = Some(7777);
            let reserved = Reserved::STANDARD.with_dht(bit);
            let ka = a.core.handle_connect(
                now,
                NewPeer {
                    peer_id: PeerId([2; 20]),
                    reserved,
                    addr: Some("10.0.0.2:50000".parse().unwrap()),
                    outgoing: true,
                },
            );
            let mut sent_port = None;
            while let Some(act) = a.core.poll_action() {
                if let Action::Send(_, Message::Port(p)) = act {
                    sent_port = Some(p);
                }
            }
            assert_eq!(sent_port, expect.then_some(6881));
            // b's PORT message reaches a.
            a.core.handle_message(now, ka.unwrap(), Message::Port(7777));
            let mut node_addr = None;
            while let Some(act) = a.core.poll_action() {
                if let Action::DhtNode(addr) = act {
                    node_addr = Some(addr);
                }
            }
            assert_eq!(node_addr, Some("10.0.0.2:7777".parse().unwrap()));
            // Only the first per connection.
            a.core.handle_message(now, ka.unwrap(), Message::Port(7778));
            while let Some(act) = a.core.poll_action() {
                assert!(!matches!(act, Action::DhtNode(_)), "a second port message");
            }
            let _ = &mut b;
        }
    }

    #[test]
    fn a_seed_with_one_upload_slot_rotates_it_on_the_rechoke_timer() {
        let total = 4 * PIECE as usize;
        let mut seed = node(1, content(total), true, total);
        seed.core.choker = Choker::new(ChokerConfig {
            upload_slots: 1,
            ..ChokerConfig::default()
        });
        seed.core.choker.set_seeding(true);
        let t0 = Instant::now();
        let peer = |id: u8| new_peer(id, false);
        let a = seed.core.handle_connect(t0, peer(7)).unwrap();
        let b = seed.core.handle_connect(t0, peer(8)).unwrap();
        for k in [a, b] {
            seed.core.handle_message(t0, k, Message::HaveNone);
            seed.core.handle_message(t0, k, Message::Interested);
        }
        // (un)choke messages sent since the last call, as (peer, unchoked).
        let chokes = |core: &mut TorrentCore| {
            let mut out = Vec::new();
            while let Some(act) = core.poll_action() {
                match act {
                    Action::Send(k, Message::Unchoke) => out.push((k, true)),
                    Action::Send(k, Message::Choke) => out.push((k, false)),
                    _ => {}
                }
            }
            out
        };
        assert_eq!(chokes(&mut seed.core), vec![(a, true)]);
        // The rechoke timer is what the driver sleeps on; a's 30 s turn lasts three
        // rechokes, then the slot moves to b, which waited.
        let mut now = t0;
        let mut log = Vec::new();
        for _ in 0..6 {
            now = seed.core.poll_timeout().expect("a rechoke is due");
            seed.core.handle_timeout(now);
            log.extend(chokes(&mut seed.core));
        }
        assert_eq!(
            log,
            vec![(a, false), (b, true), (b, false), (a, true)],
            "{log:?}"
        );
        assert!(now >= t0 + std::time::Duration::from_secs(60));
    }

    #[test]
    fn a_lying_seed_is_banned() {
        let total = 3 * PIECE as usize;
        let mut seed = node(1, content(total), true, total);
        let mut leech = node(2, vec![0; total], false, total);
        let now = Instant::now();
        connect(&mut leech, &mut seed, now);
        for _ in 0..10_000 {
            let x = step(&mut seed, &mut leech, now, true);
            let y = step(&mut leech, &mut seed, now, false);
            if !x && !y {
                break;
            }
        }
        let s = leech.core.status();
        assert!(!s.complete);
        assert!(s.hash_failures >= 2, "{s:?}");
        assert_eq!(s.peers, 0);
        assert_eq!(s.peers_banned, 1);
        // It may not come back.
        connect(&mut leech, &mut seed, now);
        assert_eq!(leech.key_of_other, None);
    }

    #[test]
    fn a_liar_sharing_pieces_with_an_honest_peer_is_found_by_its_blocks() {
        // One piece of two blocks; one request per peer at a time, so the two peers
        // each send one block of it.
        let total = PIECE as usize;
        let good = content(total);
        let mut leech = node(2, vec![0; total], false, total);
        leech.core.config.max_outstanding = 1;
        leech.core.peer_config.max_outgoing_requests = 1;
        let now = Instant::now();
        let np = |id: u8| new_peer(id, true);
        let honest = leech.core.handle_connect(now, np(10)).unwrap();
        let liar = leech.core.handle_connect(now, np(11)).unwrap();
        for k in [honest, liar] {
            leech.core.handle_message(now, k, Message::HaveAll);
            leech.core.handle_message(now, k, Message::Unchoke);
        }
        let mut liar_connected = true;
        for _ in 0..1000 {
            let mut blocks = Vec::new();
            let mut checks = Vec::new();
            while let Some(act) = leech.core.poll_action() {
                match act {
                    Action::Send(k, Message::Request(r)) => {
                        let s = r.begin as usize;
                        let mut d = good[s..s + r.length as usize].to_vec();
                        if k == liar {
                            d[0] ^= 1;
                        }
                        let b = Block {
                            index: r.index,
                            begin: r.begin,
                            data: d.into(),
                        };
                        blocks.push((k, b));
                    }
                    Action::CheckPiece(i, d) => checks.push((i, d.to_vec())),
                    Action::Finish => leech.core.handle_finished(Ok(())),
                    _ => {}
                }
            }
            if blocks.is_empty() && checks.is_empty() {
                break;
            }
            for (i, d) in checks {
                let ok: [u8; 20] = Sha1::digest(&d).into();
                let r = if ok == leech.hashes[i as usize] {
                    PieceCheck::Stored
                } else {
                    PieceCheck::BadHash
                };
                leech.core.handle_piece_checked(now, i, r);
                let s = leech.core.status();
                if liar_connected && s.hash_failures == 2 {
                    // Two failed pieces, each with both peers' blocks: under "every
                    // contributor gets a strike" both would be banned now.
                    assert_eq!((s.peers, s.peers_banned), (2, 0), "{s:?}");
                    leech.core.handle_disconnect(now, liar);
                    liar_connected = false;
                }
            }
            // The liar's block lands first, so each piece it takes part in fails.
            blocks.sort_by_key(|(k, _)| *k != liar);
            for (k, b) in blocks {
                if k != liar || liar_connected {
                    leech.core.handle_message(now, k, Message::Piece(b));
                }
            }
        }
        let s = leech.core.status();
        assert!(s.complete, "{s:?}");
        assert_eq!(s.hash_failures, 2);
        // The good copy shows whose block was wrong: the liar is banned, the honest
        // peer is still connected.
        assert_eq!((s.peers, s.peers_banned), (1, 1), "{s:?}");
        assert!(leech.core.handle_connect(now, np(11)).is_none());
    }

    /// Several cores with in-memory links; messages from `mute` nodes' pieces are lost.
    struct Net {
        nodes: Vec<Node>,
        links: Vec<HashMap<PeerKey, (usize, PeerKey)>>,
        mute: HashSet<usize>,
    }

    impl Net {
        fn new(nodes: Vec<Node>) -> Net {
            let n = nodes.len();
            Net {
                nodes,
                links: vec![HashMap::new(); n],
                mute: HashSet::new(),
            }
        }

        fn link(&mut self, a: usize, b: usize, now: Instant) {
            let (ida, idb) = (
                self.nodes[a].core.config.peer_id,
                self.nodes[b].core.config.peer_id,
            );
            let np = |peer_id, outgoing| NewPeer {
                peer_id,
                reserved: Reserved::STANDARD,
                addr: None,
                outgoing,
            };
            let ka = self.nodes[a]
                .core
                .handle_connect(now, np(idb, true))
                .unwrap();
            let kb = self.nodes[b]
                .core
                .handle_connect(now, np(ida, false))
                .unwrap();
            self.links[a].insert(ka, (b, kb));
            self.links[b].insert(kb, (a, ka));
        }

        /// Delivers messages and does disk work until nothing moves.
        fn run(&mut self, now: Instant) {
            loop {
                let mut moved = false;
                for i in 0..self.nodes.len() {
                    let mut out = Vec::new();
                    while let Some(act) = self.nodes[i].core.poll_action() {
                        moved = true;
                        match act {
                            Action::Send(k, msg) => {
                                let lost =
                                    self.mute.contains(&i) && matches!(msg, Message::Piece(_));
                                if let (Some(&(j, kj)), false) = (self.links[i].get(&k), lost) {
                                    out.push((j, kj, msg));
                                }
                            }
                            Action::Close(k, _) => {
                                if let Some((j, kj)) = self.links[i].remove(&k) {
                                    self.links[j].remove(&kj);
                                    self.nodes[j].core.handle_disconnect(now, kj);
                                }
                            }
                            Action::CheckPiece(idx, d) => {
                                let d = d.to_vec();
                                let node = &mut self.nodes[i];
                                let ok: [u8; 20] = Sha1::digest(&d).into();
                                let r = if ok == node.hashes[idx as usize] {
                                    let st = idx as usize * PIECE as usize;
                                    node.data[st..st + d.len()].copy_from_slice(&d);
                                    PieceCheck::Stored
                                } else {
                                    PieceCheck::BadHash
                                };
                                node.core.handle_piece_checked(now, idx, r);
                            }
                            Action::Read(k, reqs) => {
                                let node = &mut self.nodes[i];
                                let blocks = reqs
                                    .iter()
                                    .map(|r| {
                                        let st =
                                            r.index as usize * PIECE as usize + r.begin as usize;
                                        Some(Block {
                                            index: r.index,
                                            begin: r.begin,
                                            data: node.data[st..st + r.length as usize]
                                                .to_vec()
                                                .into(),
                                        })
                                    })
                                    .collect();
                                node.core.handle_blocks_read(now, k, blocks);
                            }
                            Action::Finish => self.nodes[i].core.handle_finished(Ok(())),
                            Action::HashRequest(..) | Action::CheckHashes(..) => {}
                            Action::Connect(_) => {}
                            Action::DhtNode(_) => {}
                        }
                    }
                    for (j, kj, msg) in out {
                        if self.links[j].contains_key(&kj) {
                            self.nodes[j].core.handle_message(now, kj, msg);
                        }
                    }
                }
                if !moved {
                    return;
                }
            }
        }
    }

    #[test]
    fn requests_to_a_silent_peer_time_out_on_virtual_time_and_another_peer_finishes() {
        let total = 4 * PIECE as usize + 99;
        let mut net = Net::new(vec![
            node(1, vec![0; total], false, total),
            node(2, content(total), true, total),
            node(3, content(total), true, total),
        ]);
        let t0 = Instant::now();
        // The first seed swallows its piece messages.
        net.mute.insert(1);
        net.link(0, 1, t0);
        net.run(t0);
        assert_eq!(net.nodes[0].core.status().pieces_have, 0);
        // A second seed arrives; all blocks are still requested from the silent one, so
        // it gets only endgame duplicates... which complete the download.
        net.link(0, 2, t0);
        net.run(t0);
        let s = net.nodes[0].core.status();
        assert!(s.complete, "{s:?}");
        assert_eq!(net.nodes[0].data, content(total));

        // Fresh leech, silent seed only: the requests expire on virtual time (a timer is
        // due 60 s on), and a seed that connects later completes the download.
        let mut net = Net::new(vec![
            node(4, vec![0; total], false, total),
            node(5, content(total), true, total),
            node(6, content(total), true, total),
        ]);
        net.mute.insert(1);
        net.link(0, 1, t0);
        net.run(t0);
        let later = t0 + std::time::Duration::from_secs(61);
        assert!(net.nodes[0].core.poll_timeout().is_some_and(|t| t <= later));
        net.nodes[0].core.handle_timeout(later);
        net.run(later);
        net.link(0, 2, later);
        net.run(later);
        assert!(net.nodes[0].core.status().complete);
    }
}
