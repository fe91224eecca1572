//! Per-peer protocol state, sans-IO.
//!
//! [`PeerState`] tracks one connection after the handshake: choking and interest in
//! both directions, the peer's pieces, our outstanding requests (bounded by the peer's
//! `reqq`, with timeouts), the peer's requests to us (bounded by ours), and the BEP 6
//! rules when the fast extension is on. It validates what the peer sends; a
//! [`ProtocolError`] means the connection should be closed, with that reason.
//!
//! ```text
//!   decoded Message ──handle_message(now, msg)──▶ PeerState ──poll_event()──▶ Event
//!   caller actions (request, unchoke, send_block, …) ──▶       ──poll_transmit()──▶ Message
//!   time ──handle_timeout(now)──▶                              ──poll_timeout()──▶ Instant
//! ```
//!
//! **Drain rule:** after any `handle_*` call or action, drain `poll_transmit` and
//! `poll_event` until they return `None`, then wait for input or `poll_timeout`.
//!
//! Choking semantics: without the fast extension, a `choke` from the peer discards all
//! our outstanding requests (each reported as [`Event::Rejected`]) and our choking the
//! peer silently drops its queued requests. With it (BEP 6), requests are only ended by
//! explicit `reject request` messages, and requests for allowed-fast pieces survive
//! choking.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::bitfield::{Bitfield, BitfieldError};
use crate::error::ExtensionError;
use crate::extension::{ExtensionHandshake, HANDSHAKE_ID};
use crate::message::{BLOCK_SIZE, Block, BlockRequest, Message};

/// Torrent geometry and limits for one peer connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerConfig {
    /// Number of pieces in the torrent.
    pub num_pieces: u32,
    /// Piece length in bytes.
    pub piece_len: u32,
    /// Total length of the torrent in bytes (fixes the last piece's length).
    pub total_len: u64,
    /// Whether both sides set the BEP 6 fast-extension bit.
    pub fast: bool,
    /// How many requests from the peer we queue (the `reqq` we advertise).
    pub max_incoming_requests: usize,
    /// How many requests we keep outstanding at most (further capped by the peer's
    /// `reqq`).
    pub max_outgoing_requests: usize,
    /// The largest block the peer may request.
    pub max_request_len: u32,
    /// How long a request may stay unanswered.
    pub request_timeout: Duration,
    /// Send a keep-alive after this long without sending anything.
    pub keepalive_interval: Duration,
    /// Give up on a peer that sent nothing for this long.
    pub idle_timeout: Duration,
}

impl PeerConfig {
    /// Defaults: 250 requests queued each way, 16 KiB blocks, 60 s request timeout,
    /// keep-alive after 90 s of silence, idle timeout 180 s, fast extension off.
    pub fn new(num_pieces: u32, piece_len: u32, total_len: u64) -> Self {
        PeerConfig {
            num_pieces,
            piece_len,
            total_len,
            fast: false,
            max_incoming_requests: 250,
            max_outgoing_requests: 250,
            max_request_len: BLOCK_SIZE,
            request_timeout: Duration::from_secs(60),
            keepalive_interval: Duration::from_secs(90),
            idle_timeout: Duration::from_secs(180),
        }
    }

    /// The length of `piece`, or `None` if it is out of range.
    pub fn piece_length(&self, piece: u32) -> Option<u32> {
        if piece >= self.num_pieces {
            return None;
        }
        let start = u64::from(piece) * u64::from(self.piece_len);
        let len = self
            .total_len
            .saturating_sub(start)
            .min(u64::from(self.piece_len));
        u32::try_from(len).ok()
    }

    fn check_block(&self, r: &BlockRequest) -> bool {
        r.length > 0
            && self
                .piece_length(r.index)
                .is_some_and(|plen| u64::from(r.begin) + u64::from(r.length) <= u64::from(plen))
    }
}

/// The peer broke the protocol; the connection should be closed with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A request (or cancel) beyond the end of its piece, for a piece that does not
    /// exist, or of an invalid length.
    #[error("invalid request {0:?} for this torrent")]
    RequestOutOfRange(BlockRequest),
    /// A block we did not request.
    #[error("unrequested block: piece {index}, offset {begin}, {len} bytes")]
    UnrequestedBlock {
        /// Piece index.
        index: u32,
        /// Offset.
        begin: u32,
        /// Length.
        len: usize,
    },
    /// A `have` (or `suggest`, `allowed fast`) for a piece that does not exist.
    #[error("piece index {index} out of range ({num_pieces} pieces)")]
    PieceOutOfRange {
        /// The index received.
        index: u32,
        /// Pieces in the torrent.
        num_pieces: u32,
    },
    /// A malformed bitfield.
    #[error("bad bitfield: {0}")]
    Bitfield(#[from] BitfieldError),
    /// A bitfield, `have all` or `have none` after piece availability was already
    /// announced.
    #[error("message id {id} must come before any other piece-availability message")]
    AvailabilityNotFirst {
        /// The message id.
        id: u8,
    },
    /// A BEP 6 message although the fast extension was not negotiated.
    #[error("fast-extension message id {id} without the fast extension")]
    FastNotNegotiated {
        /// The message id.
        id: u8,
    },
    /// A `reject request` for a request we never sent.
    #[error("reject for a request we did not send: {0:?}")]
    UnexpectedReject(BlockRequest),
    /// The peer queued more requests than our `reqq` while we cannot reject them.
    #[error("peer exceeded the request queue of {limit}")]
    TooManyRequests {
        /// Our limit.
        limit: usize,
    },
    /// A malformed extension handshake.
    #[error("bad extension handshake: {0}")]
    ExtensionHandshake(#[from] ExtensionError),
    /// The peer sent nothing, not even a keep-alive, for too long.
    #[error("peer silent for {0:?}")]
    Idle(Duration),
}

/// The caller asked for something the state does not allow (not the peer's fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// The peer chokes us and the piece is not allowed-fast.
    #[error("the peer is choking us")]
    Choked,
    /// The peer does not have the piece.
    #[error("the peer does not have piece {0}")]
    PeerLacksPiece(u32),
    /// As many requests are outstanding as allowed.
    #[error("{0} requests already outstanding")]
    QueueFull(usize),
    /// The request is outside the torrent.
    #[error("request {0:?} is outside the torrent")]
    OutOfRange(BlockRequest),
    /// The same request is already outstanding.
    #[error("request {0:?} is already outstanding")]
    Duplicate(BlockRequest),
    /// A block for a request the peer did not make (or cancelled).
    #[error("the peer did not request {0:?}")]
    NotRequested(BlockRequest),
}

/// What happened, for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The peer choked us.
    Choked,
    /// The peer unchoked us.
    Unchoked,
    /// The peer became interested.
    Interested,
    /// The peer lost interest.
    NotInterested,
    /// The peer announced a piece.
    Have(u32),
    /// The peer announced its pieces (bitfield, `have all`, `have none`); see
    /// [`PeerState::peer_pieces`].
    Availability,
    /// The peer requests a block: answer with [`PeerState::send_block`] or
    /// [`PeerState::reject`].
    Request(BlockRequest),
    /// The peer withdrew a request.
    Cancelled(BlockRequest),
    /// A block we requested (or one whose request had timed out).
    Block(Block),
    /// A request of ours will not be answered (reject, or choke without the fast
    /// extension).
    Rejected(BlockRequest),
    /// A request of ours timed out; it is no longer counted as outstanding. A late
    /// block is still delivered.
    RequestTimedOut(BlockRequest),
    /// The peer allows us to request this piece while choked.
    AllowedFast(u32),
    /// The peer suggests this piece.
    Suggest(u32),
    /// The peer's DHT port.
    Port(u16),
    /// The peer's extension handshake.
    ExtensionHandshake(Box<ExtensionHandshake>),
    /// Another extended message (id as we assigned it in our handshake).
    Extended {
        /// Our id for the extension.
        id: u8,
        /// The payload.
        payload: Bytes,
    },
    /// A message this state does not handle (BEP 52 hash messages, unknown ids).
    Other(Message),
}

/// How many timed-out or cancelled requests we remember to accept late blocks.
const MAX_LATE: usize = 512;

/// Allowed-fast pieces accepted from one peer at most; later `allowed fast` messages
/// are ignored (BEP 6 sets are about 10 pieces; without a bound a peer could make us
/// keep one entry per piece of the torrent).
pub const MAX_ALLOWED_FAST_IN: usize = 256;

/// One peer connection's protocol state.
///
/// ```
/// use std::time::Instant;
/// use rivulet_peer_wire::{BlockRequest, Event, Message, PeerConfig, PeerState};
///
/// let now = Instant::now();
/// let mut peer = PeerState::new(PeerConfig::new(4, 32768, 4 * 32768));
/// peer.handle_message(now, Message::HaveAll).unwrap_err(); // fast extension not on
///
/// let mut peer = PeerState::new(PeerConfig::new(4, 32768, 4 * 32768));
/// peer.handle_message(now, Message::Have(2)).unwrap();
/// peer.set_interested(true);
/// assert_eq!(peer.poll_transmit(), Some(Message::Interested));
/// peer.handle_message(now, Message::Unchoke).unwrap();
/// let req = BlockRequest { index: 2, begin: 0, length: 16384 };
/// peer.request(now, req).unwrap();
/// assert_eq!(peer.poll_transmit(), Some(Message::Request(req)));
/// // Beyond the end of the piece: a protocol error if the peer did it.
/// let bad = BlockRequest { index: 0, begin: 30000, length: 16384 };
/// assert!(peer.handle_message(now, Message::Request(bad)).is_err());
/// ```
#[derive(Debug)]
pub struct PeerState {
    config: PeerConfig,
    am_choking: bool,
    am_interested: bool,
    peer_choking: bool,
    peer_interested: bool,
    peer_pieces: Bitfield,
    availability_seen: bool,
    peer_reqq: Option<usize>,
    /// Our requests to the peer, with when they were sent.
    outgoing: Vec<(BlockRequest, Instant)>,
    /// Requests that timed out or that we cancelled: late blocks are accepted.
    late: VecDeque<BlockRequest>,
    /// The peer's requests to us, oldest first.
    incoming: VecDeque<BlockRequest>,
    /// Pieces the peer lets us request while choked.
    allowed_fast_in: HashSet<u32>,
    /// Pieces we let the peer request while we choke it.
    allowed_fast_out: HashSet<u32>,
    transmit: VecDeque<Message>,
    events: VecDeque<Event>,
    /// Messages ever queued, and how many of them `last_sent` accounts for.
    queued: u64,
    queued_seen: u64,
    last_sent: Option<Instant>,
    last_received: Option<Instant>,
}

impl PeerState {
    /// A new connection: both sides choking and not interested, nothing known.
    pub fn new(config: PeerConfig) -> Self {
        PeerState {
            peer_pieces: Bitfield::new(config.num_pieces),
            config,
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            availability_seen: false,
            peer_reqq: None,
            outgoing: Vec::new(),
            late: VecDeque::new(),
            incoming: VecDeque::new(),
            allowed_fast_in: HashSet::new(),
            allowed_fast_out: HashSet::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            queued: 0,
            queued_seen: 0,
            last_sent: None,
            last_received: None,
        }
    }

    fn push(&mut self, m: Message) {
        self.queued += 1;
        self.transmit.push_back(m);
    }

    /// Notes the time: messages queued since the last call count as sent now.
    fn observe(&mut self, now: Instant) {
        if self.queued != self.queued_seen || self.last_sent.is_none() {
            self.queued_seen = self.queued;
            self.last_sent = Some(now);
        }
        if self.last_received.is_none() {
            self.last_received = Some(now);
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PeerConfig {
        &self.config
    }
    /// Whether we choke the peer.
    pub fn am_choking(&self) -> bool {
        self.am_choking
    }
    /// Whether we are interested in the peer.
    pub fn am_interested(&self) -> bool {
        self.am_interested
    }
    /// Whether the peer chokes us.
    pub fn peer_choking(&self) -> bool {
        self.peer_choking
    }
    /// Whether the peer is interested in us.
    pub fn peer_interested(&self) -> bool {
        self.peer_interested
    }
    /// The pieces the peer has.
    pub fn peer_pieces(&self) -> &Bitfield {
        &self.peer_pieces
    }
    /// Our outstanding requests.
    pub fn outstanding(&self) -> impl Iterator<Item = &BlockRequest> + '_ {
        self.outgoing.iter().map(|(r, _)| r)
    }
    /// The peer's requests we have not answered yet, oldest first.
    pub fn peer_requests(&self) -> impl Iterator<Item = &BlockRequest> + '_ {
        self.incoming.iter()
    }
    /// How many more requests we may send now.
    pub fn request_capacity(&self) -> usize {
        let limit = self
            .peer_reqq
            .map_or(self.config.max_outgoing_requests, |q| {
                q.min(self.config.max_outgoing_requests)
            });
        limit.saturating_sub(self.outgoing.len())
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.transmit.pop_front()
    }
    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
    /// When [`handle_timeout`](Self::handle_timeout) should be called next: the
    /// earliest request deadline, keep-alive or idle deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let requests = self
            .outgoing
            .iter()
            .map(|(_, t)| *t + self.config.request_timeout);
        let keepalive = self.last_sent.map(|t| t + self.config.keepalive_interval);
        let idle = self.last_received.map(|t| t + self.config.idle_timeout);
        requests.chain(keepalive).chain(idle).min()
    }

    /// Expires requests older than the request timeout, queues a keep-alive when we
    /// have been silent, and fails with [`ProtocolError::Idle`] when the peer has.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ProtocolError> {
        self.observe(now);
        if let Some(last) = self.last_received {
            let idle = now.saturating_duration_since(last);
            if idle >= self.config.idle_timeout {
                return Err(ProtocolError::Idle(idle));
            }
        }
        if self
            .last_sent
            .is_some_and(|t| now.saturating_duration_since(t) >= self.config.keepalive_interval)
        {
            self.push(Message::KeepAlive);
            self.observe(now);
        }
        let timeout = self.config.request_timeout;
        let mut i = 0;
        while i < self.outgoing.len() {
            if now.saturating_duration_since(self.outgoing[i].1) >= timeout {
                let (r, _) = self.outgoing.remove(i);
                self.remember_late(r);
                self.events.push_back(Event::RequestTimedOut(r));
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    fn remember_late(&mut self, r: BlockRequest) {
        if self.late.len() >= MAX_LATE {
            self.late.pop_front();
        }
        self.late.push_back(r);
    }

    fn check_piece(&self, index: u32) -> Result<(), ProtocolError> {
        if index >= self.config.num_pieces {
            return Err(ProtocolError::PieceOutOfRange {
                index,
                num_pieces: self.config.num_pieces,
            });
        }
        Ok(())
    }

    fn require_fast(&self, msg: &Message) -> Result<(), ProtocolError> {
        if self.config.fast {
            Ok(())
        } else {
            Err(ProtocolError::FastNotNegotiated {
                id: msg.id().unwrap_or(0),
            })
        }
    }

    fn availability_first(&mut self, id: u8) -> Result<(), ProtocolError> {
        if self.availability_seen {
            return Err(ProtocolError::AvailabilityNotFirst { id });
        }
        self.availability_seen = true;
        Ok(())
    }

    /// Processes one message from the peer.
    pub fn handle_message(&mut self, now: Instant, msg: Message) -> Result<(), ProtocolError> {
        self.observe(now);
        self.last_received = Some(now);
        match msg {
            Message::KeepAlive => {}
            Message::Choke => {
                if !self.peer_choking {
                    self.peer_choking = true;
                    self.events.push_back(Event::Choked);
                }
                if !self.config.fast {
                    for (r, _) in std::mem::take(&mut self.outgoing) {
                        self.remember_late(r);
                        self.events.push_back(Event::Rejected(r));
                    }
                }
            }
            Message::Unchoke => {
                if self.peer_choking {
                    self.peer_choking = false;
                    self.events.push_back(Event::Unchoked);
                }
            }
            Message::Interested => {
                if !self.peer_interested {
                    self.peer_interested = true;
                    self.events.push_back(Event::Interested);
                }
            }
            Message::NotInterested => {
                if self.peer_interested {
                    self.peer_interested = false;
                    self.events.push_back(Event::NotInterested);
                }
            }
            Message::Have(i) => {
                self.check_piece(i)?;
                self.availability_seen = true;
                if !self.peer_pieces.has(i) {
                    self.peer_pieces.set(i);
                    self.events.push_back(Event::Have(i));
                }
            }
            Message::Bitfield(b) => {
                self.availability_first(crate::message::id::BITFIELD)?;
                self.peer_pieces = Bitfield::from_bytes(&b, self.config.num_pieces)?;
                self.events.push_back(Event::Availability);
            }
            Message::HaveAll | Message::HaveNone => {
                self.require_fast(&msg)?;
                let all = msg == Message::HaveAll;
                self.availability_first(msg.id().unwrap_or(0))?;
                self.peer_pieces = if all {
                    Bitfield::full(self.config.num_pieces)
                } else {
                    Bitfield::new(self.config.num_pieces)
                };
                self.events.push_back(Event::Availability);
            }
            Message::Request(r) => self.on_request(r)?,
            Message::Cancel(r) => {
                if !self.config.check_block(&r) {
                    return Err(ProtocolError::RequestOutOfRange(r));
                }
                if let Some(pos) = self.incoming.iter().position(|x| *x == r) {
                    self.incoming.remove(pos);
                    if self.config.fast {
                        self.push(Message::Reject(r));
                    }
                    self.events.push_back(Event::Cancelled(r));
                }
            }
            Message::Piece(block) => {
                let r = block.request();
                if let Some(pos) = self.outgoing.iter().position(|(x, _)| *x == r) {
                    self.outgoing.remove(pos);
                } else if let Some(pos) = self.late.iter().position(|x| *x == r) {
                    self.late.remove(pos);
                } else {
                    return Err(ProtocolError::UnrequestedBlock {
                        index: block.index,
                        begin: block.begin,
                        len: block.data.len(),
                    });
                }
                self.events.push_back(Event::Block(block));
            }
            Message::Port(p) => self.events.push_back(Event::Port(p)),
            Message::Suggest(i) => {
                self.require_fast(&msg)?;
                self.check_piece(i)?;
                self.events.push_back(Event::Suggest(i));
            }
            Message::Reject(r) => {
                self.require_fast(&msg)?;
                if let Some(pos) = self.outgoing.iter().position(|(x, _)| *x == r) {
                    self.outgoing.remove(pos);
                    self.events.push_back(Event::Rejected(r));
                } else if let Some(pos) = self.late.iter().position(|x| *x == r) {
                    // A reject answering a cancel or a timed-out request.
                    self.late.remove(pos);
                } else {
                    return Err(ProtocolError::UnexpectedReject(r));
                }
            }
            Message::AllowedFast(i) => {
                self.require_fast(&msg)?;
                self.check_piece(i)?;
                if self.allowed_fast_in.len() < MAX_ALLOWED_FAST_IN
                    && self.allowed_fast_in.insert(i)
                {
                    self.events.push_back(Event::AllowedFast(i));
                }
            }
            Message::Extended { id, payload } => {
                if id == HANDSHAKE_ID {
                    let hs = ExtensionHandshake::parse(&payload)?;
                    if let Some(q) = hs.reqq {
                        self.peer_reqq = Some(q.max(1) as usize);
                    }
                    self.events
                        .push_back(Event::ExtensionHandshake(Box::new(hs)));
                } else {
                    self.events.push_back(Event::Extended { id, payload });
                }
            }
            other => self.events.push_back(Event::Other(other)),
        }
        Ok(())
    }

    fn on_request(&mut self, r: BlockRequest) -> Result<(), ProtocolError> {
        if !self.config.check_block(&r) || r.length > self.config.max_request_len {
            return Err(ProtocolError::RequestOutOfRange(r));
        }
        let allowed = !self.am_choking || self.allowed_fast_out.contains(&r.index);
        if !allowed {
            // Without the fast extension, a request crossing our choke is ignored.
            if self.config.fast {
                self.push(Message::Reject(r));
            }
            return Ok(());
        }
        if self.incoming.len() >= self.config.max_incoming_requests {
            if self.config.fast {
                self.push(Message::Reject(r));
                return Ok(());
            }
            return Err(ProtocolError::TooManyRequests {
                limit: self.config.max_incoming_requests,
            });
        }
        if self.incoming.contains(&r) {
            return Ok(());
        }
        self.incoming.push_back(r);
        self.events.push_back(Event::Request(r));
        Ok(())
    }

    /// Chokes the peer. Its queued requests are dropped (without the fast extension)
    /// or rejected (with it), except those for allowed-fast pieces.
    pub fn choke(&mut self) {
        if self.am_choking {
            return;
        }
        self.am_choking = true;
        self.push(Message::Choke);
        let fast = self.config.fast;
        let mut kept = VecDeque::new();
        for r in std::mem::take(&mut self.incoming) {
            if self.allowed_fast_out.contains(&r.index) {
                kept.push_back(r);
            } else if fast {
                self.push(Message::Reject(r));
            }
        }
        self.incoming = kept;
    }

    /// Unchokes the peer.
    pub fn unchoke(&mut self) {
        if self.am_choking {
            self.am_choking = false;
            self.push(Message::Unchoke);
        }
    }

    /// Tells the peer whether we are interested.
    pub fn set_interested(&mut self, interested: bool) {
        if self.am_interested != interested {
            self.am_interested = interested;
            self.push(if interested {
                Message::Interested
            } else {
                Message::NotInterested
            });
        }
    }

    /// Requests a block.
    pub fn request(&mut self, now: Instant, r: BlockRequest) -> Result<(), UsageError> {
        if !self.config.check_block(&r) {
            return Err(UsageError::OutOfRange(r));
        }
        if !self.peer_pieces.has(r.index) {
            return Err(UsageError::PeerLacksPiece(r.index));
        }
        if self.peer_choking && !self.allowed_fast_in.contains(&r.index) {
            return Err(UsageError::Choked);
        }
        if self.request_capacity() == 0 {
            return Err(UsageError::QueueFull(self.outgoing.len()));
        }
        if self.outgoing.iter().any(|(x, _)| *x == r) {
            return Err(UsageError::Duplicate(r));
        }
        self.outgoing.push((r, now));
        self.push(Message::Request(r));
        self.observe(now);
        Ok(())
    }

    /// Withdraws an outstanding request (a late block is still accepted).
    pub fn cancel(&mut self, r: BlockRequest) {
        if let Some(pos) = self.outgoing.iter().position(|(x, _)| *x == r) {
            self.outgoing.remove(pos);
            self.remember_late(r);
            self.push(Message::Cancel(r));
        }
    }

    /// Answers a request of the peer's with its data.
    pub fn send_block(&mut self, block: Block) -> Result<(), UsageError> {
        let r = block.request();
        let Some(pos) = self.incoming.iter().position(|x| *x == r) else {
            return Err(UsageError::NotRequested(r));
        };
        self.incoming.remove(pos);
        self.push(Message::Piece(block));
        Ok(())
    }

    /// Declines a request of the peer's (a `reject request` with the fast extension;
    /// without it the request is just dropped).
    pub fn reject(&mut self, r: BlockRequest) {
        if let Some(pos) = self.incoming.iter().position(|x| *x == r) {
            self.incoming.remove(pos);
            if self.config.fast {
                self.push(Message::Reject(r));
            }
        }
    }

    /// Announces a piece we completed.
    pub fn have(&mut self, piece: u32) {
        self.push(Message::Have(piece));
    }

    /// Announces our pieces as the first message: `have all` / `have none` when the
    /// fast extension allows, else a bitfield (nothing for an empty bitfield without
    /// it).
    pub fn send_availability(&mut self, ours: &Bitfield) {
        let msg = if self.config.fast && ours.is_full() {
            Message::HaveAll
        } else if self.config.fast && ours.count() == 0 {
            Message::HaveNone
        } else if ours.count() == 0 {
            return;
        } else {
            Message::Bitfield(ours.to_bytes())
        };
        self.push(msg);
    }

    /// Lets the peer request `piece` while we choke it (BEP 6; ignored without the
    /// fast extension).
    pub fn allow_fast(&mut self, piece: u32) {
        if self.config.fast && piece < self.config.num_pieces && self.allowed_fast_out.insert(piece)
        {
            self.push(Message::AllowedFast(piece));
        }
    }

    /// Sends our extension handshake.
    pub fn send_extension_handshake(&mut self, hs: &ExtensionHandshake) {
        self.push(hs.to_message());
    }

    /// Queues any other message.
    pub fn send(&mut self, msg: Message) {
        self.push(msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(fast: bool) -> PeerConfig {
        let mut c = PeerConfig::new(3, 32768, 2 * 32768 + 1000);
        c.fast = fast;
        c.request_timeout = Duration::from_secs(10);
        c
    }
    fn req(index: u32, begin: u32, length: u32) -> BlockRequest {
        BlockRequest {
            index,
            begin,
            length,
        }
    }
    fn drain(p: &mut PeerState) -> (Vec<Message>, Vec<Event>) {
        (
            std::iter::from_fn(|| p.poll_transmit()).collect(),
            std::iter::from_fn(|| p.poll_event()).collect(),
        )
    }

    #[test]
    fn geometry() {
        let c = cfg(false);
        assert_eq!(c.piece_length(0), Some(32768));
        assert_eq!(c.piece_length(2), Some(1000));
        assert_eq!(c.piece_length(3), None);
        assert!(c.check_block(&req(2, 0, 1000)));
        assert!(!c.check_block(&req(2, 0, 1001)));
        assert!(!c.check_block(&req(0, u32::MAX, 16)));
        assert!(!c.check_block(&req(0, 0, 0)));
    }

    #[test]
    fn validation_errors() {
        let now = Instant::now();
        let mut p = PeerState::new(cfg(false));
        assert_eq!(
            p.handle_message(now, Message::Have(3)),
            Err(ProtocolError::PieceOutOfRange {
                index: 3,
                num_pieces: 3
            })
        );
        assert!(matches!(
            p.handle_message(now, Message::Bitfield(Bytes::from_static(&[0xf0]))),
            Err(ProtocolError::Bitfield(BitfieldError::SpareBits { .. }))
        ));
        let mut p = PeerState::new(cfg(false));
        p.handle_message(now, Message::Have(0)).unwrap();
        assert_eq!(
            p.handle_message(now, Message::Bitfield(Bytes::from_static(&[0xe0]))),
            Err(ProtocolError::AvailabilityNotFirst { id: 5 })
        );
        assert!(matches!(
            p.handle_message(now, Message::Request(req(2, 0, 2000))),
            Err(ProtocolError::RequestOutOfRange(_))
        ));
        assert!(matches!(
            p.handle_message(
                now,
                Message::Piece(Block {
                    index: 0,
                    begin: 0,
                    data: Bytes::from_static(b"x")
                })
            ),
            Err(ProtocolError::UnrequestedBlock { .. })
        ));
        assert!(matches!(
            p.handle_message(now, Message::Suggest(0)),
            Err(ProtocolError::FastNotNegotiated { id: 13 })
        ));
        let mut p = PeerState::new(cfg(true));
        assert_eq!(
            p.handle_message(now, Message::Reject(req(0, 0, 16384))),
            Err(ProtocolError::UnexpectedReject(req(0, 0, 16384)))
        );
    }

    #[test]
    fn download_flow_and_timeouts() {
        let t0 = Instant::now();
        let mut p = PeerState::new(cfg(false));
        p.handle_message(t0, Message::Bitfield(Bytes::from_static(&[0xe0])))
            .unwrap();
        assert_eq!(p.request(t0, req(0, 0, 16384)), Err(UsageError::Choked));
        p.set_interested(true);
        p.handle_message(t0, Message::Unchoke).unwrap();
        p.request(t0, req(0, 0, 16384)).unwrap();
        p.request(t0, req(0, 16384, 16384)).unwrap();
        assert_eq!(
            p.request(t0, req(0, 0, 16384)),
            Err(UsageError::Duplicate(req(0, 0, 16384)))
        );
        let (tx, ev) = drain(&mut p);
        assert_eq!(tx.len(), 3);
        assert_eq!(ev, vec![Event::Availability, Event::Unchoked]);
        assert_eq!(p.poll_timeout(), Some(t0 + Duration::from_secs(10)));

        let block = Block {
            index: 0,
            begin: 0,
            data: Bytes::from(vec![1u8; 16384]),
        };
        p.handle_message(t0, Message::Piece(block.clone())).unwrap();
        p.handle_timeout(t0 + Duration::from_secs(11)).unwrap();
        let (_, ev) = drain(&mut p);
        assert_eq!(
            ev,
            vec![
                Event::Block(block),
                Event::RequestTimedOut(req(0, 16384, 16384))
            ]
        );
        assert_eq!(p.outstanding().count(), 0);
        // A late block is still accepted, once.
        let late = Block {
            index: 0,
            begin: 16384,
            data: Bytes::from(vec![2u8; 16384]),
        };
        p.handle_message(t0, Message::Piece(late.clone())).unwrap();
        assert!(p.handle_message(t0, Message::Piece(late)).is_err());

        // Choke without the fast extension drops outstanding requests.
        p.request(t0, req(1, 0, 16384)).unwrap();
        p.handle_message(t0, Message::Choke).unwrap();
        let (_, ev) = drain(&mut p);
        assert!(ev.contains(&Event::Rejected(req(1, 0, 16384))));
        assert_eq!(p.outstanding().count(), 0);
    }

    #[test]
    fn keepalive_and_idle() {
        let t0 = Instant::now();
        let mut p = PeerState::new(cfg(false));
        assert_eq!(p.poll_timeout(), None);
        p.handle_message(t0, Message::KeepAlive).unwrap();
        assert_eq!(p.poll_timeout(), Some(t0 + Duration::from_secs(90)));
        let t1 = t0 + Duration::from_secs(90);
        p.handle_timeout(t1).unwrap();
        assert_eq!(p.poll_transmit(), Some(Message::KeepAlive));
        assert_eq!(p.poll_timeout(), Some(t0 + Duration::from_secs(180)));
        assert_eq!(
            p.handle_timeout(t0 + Duration::from_secs(180)),
            Err(ProtocolError::Idle(Duration::from_secs(180)))
        );
    }

    #[test]
    fn reqq_bounds_requests() {
        let now = Instant::now();
        let mut p = PeerState::new(cfg(true));
        let mut hs = ExtensionHandshake::new();
        hs.reqq = Some(1);
        p.handle_message(now, hs.to_message()).unwrap();
        p.handle_message(now, Message::HaveAll).unwrap();
        p.handle_message(now, Message::Unchoke).unwrap();
        p.request(now, req(0, 0, 16384)).unwrap();
        assert_eq!(
            p.request(now, req(0, 16384, 16384)),
            Err(UsageError::QueueFull(1))
        );
    }

    #[test]
    fn the_allowed_fast_set_taken_from_a_peer_is_bounded() {
        let now = Instant::now();
        let mut c = PeerConfig::new(100_000, 16384, 100_000 * 16384);
        c.fast = true;
        let mut p = PeerState::new(c);
        p.handle_message(now, Message::HaveAll).unwrap();
        for i in 0..1000 {
            p.handle_message(now, Message::AllowedFast(i)).unwrap();
        }
        let allowed = drain(&mut p)
            .1
            .iter()
            .filter(|e| matches!(e, Event::AllowedFast(_)))
            .count();
        assert_eq!(allowed, MAX_ALLOWED_FAST_IN);
        // Pieces past the bound may not be requested while choked.
        let first = MAX_ALLOWED_FAST_IN as u32 - 1;
        p.request(now, req(first, 0, 16384)).unwrap();
        assert_eq!(
            p.request(now, req(first + 1, 0, 16384)),
            Err(UsageError::Choked)
        );
    }

    #[test]
    fn upload_flow_fast() {
        let now = Instant::now();
        let mut c = cfg(true);
        c.max_incoming_requests = 1;
        let mut p = PeerState::new(c);
        // Choked: the request is rejected.
        p.handle_message(now, Message::Request(req(0, 0, 16384)))
            .unwrap();
        assert_eq!(drain(&mut p).0, vec![Message::Reject(req(0, 0, 16384))]);
        // Allowed fast: served while choked.
        p.allow_fast(1);
        p.handle_message(now, Message::Request(req(1, 0, 16384)))
            .unwrap();
        let (tx, ev) = drain(&mut p);
        assert_eq!(tx, vec![Message::AllowedFast(1)]);
        assert_eq!(ev, vec![Event::Request(req(1, 0, 16384))]);
        // Queue full: rejected.
        p.unchoke();
        p.handle_message(now, Message::Request(req(0, 0, 16384)))
            .unwrap();
        assert_eq!(
            drain(&mut p).0,
            vec![Message::Unchoke, Message::Reject(req(0, 0, 16384))]
        );
        let wrong = Block {
            index: 0,
            begin: 0,
            data: Bytes::from(vec![0; 16384]),
        };
        assert!(p.send_block(wrong).is_err());
        p.send_block(Block {
            index: 1,
            begin: 0,
            data: Bytes::from(vec![0; 16384]),
        })
        .unwrap();
        assert!(matches!(p.poll_transmit(), Some(Message::Piece(_))));
        // Choking rejects queued requests.
        p.handle_message(now, Message::Request(req(0, 0, 16384)))
            .unwrap();
        let _ = drain(&mut p);
        p.choke();
        assert_eq!(
            drain(&mut p).0,
            vec![Message::Choke, Message::Reject(req(0, 0, 16384))]
        );
    }
}
