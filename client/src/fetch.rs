//! The tokio driver of a torrent added by magnet link or bare info hash: the
//! metadata phase, then the normal torrent.
//!
//! One task per torrent. While the metadata is unknown it connects to the peers it has
//! (the link's `x.pe`, [`AddOptions::peers`], [`TorrentHandle::add_peer`], incoming
//! connections), sends our BEP 10 extension handshake (`ut_metadata`, our listen
//! port), and runs the sans-IO [`MetadataFetch`]: it moves its requests out and the
//! peers' `ut_metadata` messages in. Peers without the extension protocol are closed
//! (they cannot help yet). We announce no pieces in this phase (no bitfield, no
//! `have none`), and keep every other message a peer sends (its extension handshake,
//! availability, choke state; bounded).
//!
//! Once the info dictionary is verified, every connection is handed over, not
//! re-dialed: each reader stops after the message it is decoding and gives back its
//! half of the stream with the bytes it has not decoded, the writer gives back the
//! other half once what is queued is sent, and the task becomes the normal torrent
//! driver ([`crate::torrent`]), which checks the disk, takes the connections (our
//! extension handshake and availability go out then; the peer's kept messages are
//! replayed to the torrent core) and dials the other peers it knows. Peers that only
//! dialed us, without announcing a listen port, stay connected this way.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use handshake::{PeerConnection, PeerId, Reserved};
use metainfo::{InfoHash, InfoHashV1};
use peer_wire::{Decoder, ExtensionHandshake, Message, MetadataMessage, UT_METADATA};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::core::NewPeer;
use crate::ext::OUR_UT_METADATA;
use crate::metadata::{MetadataFetch, PeerUse};
use crate::picker::{NORMAL, PeerKey, Priority};
use crate::session::{Config, Limits};
use crate::source::TorrentSource;
use crate::torrent::{
    self, AddOptions, Adopted, MAX_KNOWN, Phase, Shared, Status, TorrentCmd, TorrentHandle,
};

/// The stream type of a connection.
type Stream = handshake::PeerStream<TcpStream>;

/// Messages kept per connection for the torrent core at most; a peer that sends more
/// before the metadata is there is closed at the handover (and dialed again, if we
/// can).
pub(crate) const MAX_REPLAY: usize = 4096;

/// Bytes (as encoded) of the messages kept per connection for the torrent core at
/// most: 4096 messages of up to a frame each would be gigabytes. A real peer's
/// bitfield, extension handshake and a few `have`s are far below (1 MiB is the
/// bitfield of 8 million pieces).
pub(crate) const MAX_REPLAY_BYTES: usize = 1 << 20;

/// A connection's messages kept for the torrent core until the handover, bounded in
/// number ([`MAX_REPLAY`]) and bytes ([`MAX_REPLAY_BYTES`]). Past either bound nothing
/// more is kept, what was is dropped, and the connection is not handed over.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    msgs: Vec<Message>,
    bytes: usize,
    overflowed: bool,
}

impl Replay {
    /// Keeps `msg` for the torrent core, if the bounds allow.
    pub(crate) fn keep(&mut self, msg: &Message) {
        if self.overflowed {
            return;
        }
        let len = msg.encoded_len();
        if self.msgs.len() >= MAX_REPLAY || self.bytes.saturating_add(len) > MAX_REPLAY_BYTES {
            self.overflowed = true;
            self.msgs = Vec::new();
            self.bytes = 0;
            return;
        }
        self.bytes += len;
        self.msgs.push(msg.clone());
    }

    /// Whether every message was kept (the connection can be handed over).
    pub(crate) fn is_complete(&self) -> bool {
        !self.overflowed
    }

    /// Messages and encoded bytes held now.
    pub(crate) fn held(&self) -> (usize, usize) {
        (self.msgs.len(), self.bytes)
    }

    fn into_messages(self) -> Vec<Message> {
        self.msgs
    }
}

/// How long the handover may wait for the readers and writers to stop.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(5);

type Incoming = Option<mpsc::Receiver<PeerConnection<TcpStream>>>;

/// File priorities remembered before the file list is known, at most.
const MAX_PENDING_PRIORITIES: usize = 10_000;

/// Starts a torrent known only by its info hash(es); returns at once.
pub(crate) fn start(
    config: Config,
    limits: Limits,
    source: &TorrentSource,
    dir: PathBuf,
    mut options: AddOptions,
    incoming: Incoming,
) -> TorrentHandle {
    let info_hash = source.info_hash();
    let trackers = source.trackers();
    for a in source.peers() {
        if !options.peers.contains(&a) {
            options.peers.push(a);
        }
    }
    let (status_tx, status_rx) = watch::channel(Status {
        phase: if options.paused {
            Phase::Paused
        } else {
            Phase::Metadata
        },
        ..Status::default()
    });
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let slot = Arc::new(OnceLock::new());
    let job = Job {
        config,
        limits,
        info_hash,
        dir,
        options,
        hosts: source.peer_hosts(),
        status: status_tx,
        slot: slot.clone(),
    };
    let task = tokio::spawn(job.run(incoming, cmd_rx));
    TorrentHandle::new(info_hash, status_rx, cmd_tx, slot, task, trackers)
}

struct Job {
    config: Config,
    limits: Limits,
    info_hash: InfoHash,
    dir: PathBuf,
    options: AddOptions,
    hosts: Vec<(String, u16)>,
    status: watch::Sender<Status>,
    slot: Arc<OnceLock<Arc<Shared>>>,
}

impl Job {
    async fn run(self, mut incoming: Incoming, mut cmds: mpsc::UnboundedReceiver<TorrentCmd>) {
        let mut phase = Phase1::new(&self);
        let Some((info, known, adopted)) = phase.run(&mut incoming, &mut cmds).await else {
            return;
        };
        let (priorities, sequential) = (std::mem::take(&mut phase.priorities), phase.sequential);
        let paused = phase.paused;
        let trusted = std::mem::take(&mut phase.trusted);
        drop(phase);
        let (mut known, mut adopted) = (known, adopted);
        let fail = |e: String| {
            warn!(error = %e, "the torrent cannot start");
            self.status.send_modify(|s| s.error = Some(e));
        };
        // Verified against the info hash; a hybrid torrent's piece layers are not
        // needed: its v1 piece hashes check the data.
        let info = match metainfo::Info::from_bytes_with_limits(&info, &self.config.metainfo_limits)
        {
            Ok(i) => Arc::new(i),
            Err(e) => return fail(format!("the fetched metadata is unusable: {e}")),
        };
        info!(name = %info.name, peers = known.len(), "metadata fetched");
        if info.private {
            // BEP 27, learnt only now: peers found through the DHT or LSD are dropped
            // (discovery stops using both once the torrent's status says private). Peers
            // that dialed us are kept: they may have found us through the trackers.
            known.retain(|a| trusted.contains(a));
            let before = adopted.len();
            adopted
                .retain(|a| !a.peer.outgoing || a.peer.addr.is_some_and(|x| trusted.contains(&x)));
            info!(
                dropped = before - adopted.len(),
                kept = adopted.len(),
                "the torrent is private: only its trackers' and the given peers are used"
            );
        }
        // A v2 torrent's piece layers (outside the info dictionary) come from peers
        // with BEP 52 hash requests once the torrent starts (see `crate::hashes`).
        self.status.send_modify(|s| {
            s.phase = Phase::Checking;
            s.metadata_pieces = (0, 0);
        });
        let mut options = self.options.clone();
        options.peers = known;
        options.paused = paused;
        // What the handle asked for before the file list was known.
        let files = info.files.len();
        if !priorities.is_empty() {
            options.file_priorities.resize(files, NORMAL);
            for (i, p) in priorities.into_iter().filter(|(i, _)| *i < files) {
                options.file_priorities[i] = p;
            }
        }
        if let Some(on) = sequential {
            options.sequential = on;
        }
        let driver = match torrent::prepare(
            self.config,
            self.limits.clone(),
            &info,
            // The hash we were given names the swarm on the wire (libtorrent answers
            // a hybrid torrent's peer with the hash that peer first used).
            self.info_hash,
            &self.dir,
            options,
            self.status.clone(),
        )
        .await
        {
            Ok(d) => d,
            Err(e) => return fail(e.to_string()),
        };
        let _ = self.slot.set(driver.shared.clone());
        driver.run(incoming, cmds, adopted).await;
    }
}

/// A metadata-phase connection.
struct Conn {
    /// Its slot in the session's connection budget.
    _permit: OwnedSemaphorePermit,
    writer: mpsc::UnboundedSender<Bytes>,
    reader: tokio::task::AbortHandle,
    /// Asks the reader to stop and give its half back (the handover).
    stop: Option<oneshot::Sender<()>>,
    /// The writer's half, once its channel is closed.
    writer_back: oneshot::Receiver<WriteHalf<Stream>>,
    peer_id: PeerId,
    reserved: Reserved,
    outgoing: bool,
    /// The peer's messages for the torrent core, in order.
    replay: Replay,
    addr: Option<SocketAddr>,
    /// Where it can be dialed: the address we dialed, or its IP and announced port.
    listen: Option<SocketAddr>,
    /// The id it wants `ut_metadata` under.
    metadata_id: Option<u8>,
}

enum Input {
    Connected(
        Box<PeerConnection<TcpStream>>,
        bool,
        Option<OwnedSemaphorePermit>,
    ),
    DialDone(SocketAddr),
    Resolved(Vec<SocketAddr>),
    Message(PeerKey, Message),
    Closed(PeerKey, String),
    /// A reader stopped for the handover: its half and the bytes not decoded yet.
    Stopped(PeerKey, Box<(ReadHalf<Stream>, BytesMut)>),
}

/// The metadata phase.
struct Phase1<'a> {
    job: &'a Job,
    wire_hash: InfoHashV1,
    fetch: MetadataFetch,
    conns: HashMap<PeerKey, Conn>,
    next_key: PeerKey,
    known: Vec<SocketAddr>,
    dialing: HashSet<SocketAddr>,
    /// Peers without the extension protocol: not dialed again in this phase.
    useless: HashSet<SocketAddr>,
    tasks: JoinSet<()>,
    /// File priorities set through the handle before the file list is known.
    priorities: BTreeMap<usize, Priority>,
    sequential: Option<bool>,
    /// Paused through the handle: no connections, no dialing.
    paused: bool,
    /// Addresses given (the link's `x.pe`, [`AddOptions::peers`],
    /// [`TorrentHandle::add_peer`]) or from the torrent's trackers: all that a private
    /// torrent keeps once its metadata says so (BEP 27).
    trusted: HashSet<SocketAddr>,
}

impl<'a> Phase1<'a> {
    fn new(job: &'a Job) -> Phase1<'a> {
        let mut known = job.options.peers.clone();
        known.truncate(MAX_KNOWN);
        Phase1 {
            job,
            wire_hash: job.info_hash.wire_id(),
            fetch: MetadataFetch::new(job.info_hash, job.config.metadata),
            conns: HashMap::new(),
            next_key: 1,
            dialing: HashSet::new(),
            useless: HashSet::new(),
            tasks: JoinSet::new(),
            priorities: BTreeMap::new(),
            sequential: None,
            paused: job.options.paused,
            trusted: known.iter().copied().collect(),
            known,
        }
    }

    /// Runs until the metadata is verified: returns it and the peers to dial next.
    /// `None` if the handle was dropped.
    async fn run(
        &mut self,
        incoming: &mut Incoming,
        cmds: &mut mpsc::UnboundedReceiver<TorrentCmd>,
    ) -> Option<(Vec<u8>, Vec<SocketAddr>, Vec<Adopted>)> {
        let (tx, mut rx) = mpsc::channel::<Input>(256);
        let (utx, mut urx) = mpsc::unbounded_channel::<Input>();
        for (host, port) in self.job.hosts.clone() {
            let utx = utx.clone();
            self.tasks.spawn(async move {
                match tokio::net::lookup_host((host.as_str(), port)).await {
                    Ok(addrs) => {
                        let _ = utx.send(Input::Resolved(addrs.collect()));
                    }
                    Err(e) => debug!(%host, error = %e, "resolving an x.pe host failed"),
                }
            });
        }
        let mut dial_tick = tokio::time::interval(self.job.config.reconnect_interval);
        let mut keepalive = tokio::time::interval(Duration::from_secs(60));
        loop {
            self.flush();
            if let Some(info) = self.fetch.take_metadata() {
                let known = self.peers_to_keep();
                let adopted = self.hand_over(&mut rx).await;
                return Some((info, known, adopted));
            }
            self.publish();
            let deadline = self
                .fetch
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                Some(input) = urx.recv() => self.handle(input, &tx, &utx),
                Some(input) = rx.recv() => self.handle(input, &tx, &utx),
                conn = recv_incoming(incoming) => match conn {
                    Some(c) => self.handle(Input::Connected(Box::new(c), false, None), &tx, &utx),
                    None => *incoming = None,
                },
                cmd = cmds.recv() => match cmd {
                    Some(TorrentCmd::AddPeer(addr, origin)) => {
                        if origin.private_ok() {
                            self.trust(addr);
                        }
                        self.remember(addr);
                        self.dial(&utx);
                    }
                    Some(TorrentCmd::Priority(file, p)) => {
                        if self.priorities.len() < MAX_PENDING_PRIORITIES
                            || self.priorities.contains_key(&file)
                        {
                            self.priorities.insert(file, p);
                        }
                    }
                    Some(TorrentCmd::Sequential(on)) => self.sequential = Some(on),
                    // No reader exists before the metadata.
                    Some(TorrentCmd::Window(..)) => {}
                    Some(TorrentCmd::Close(done)) => {
                        let _ = done.send(());
                        return None;
                    }
                    Some(TorrentCmd::Pause) => self.pause(),
                    Some(TorrentCmd::Resume) => {
                        if std::mem::take(&mut self.paused) {
                            self.job.status.send_modify(|s| s.phase = Phase::Metadata);
                            self.dial(&utx);
                        }
                    }
                    None => return None,
                },
                _ = dial_tick.tick() => self.dial(&utx),
                _ = keepalive.tick() => {
                    for c in self.conns.values() {
                        let _ = c.writer.send(Bytes::from_static(&[0, 0, 0, 0]));
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.fetch.handle_timeout(Instant::now());
                }
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => {}
            }
        }
    }

    /// Stops every connection's reader and writer and returns what the torrent driver
    /// needs to take them over; connections that cannot be handed over are closed.
    async fn hand_over(&mut self, rx: &mut mpsc::Receiver<Input>) -> Vec<Adopted> {
        let now = Instant::now();
        let mut waiting = HashSet::new();
        for (&key, c) in self.conns.iter_mut() {
            if c.replay.is_complete()
                && let Some(stop) = c.stop.take()
                && stop.send(()).is_ok()
            {
                waiting.insert(key);
            }
        }
        let deadline = tokio::time::Instant::now() + HANDOVER_TIMEOUT;
        let mut halves = HashMap::new();
        while !waiting.is_empty() {
            let Ok(Some(input)) = tokio::time::timeout_at(deadline, rx.recv()).await else {
                break;
            };
            match input {
                Input::Message(key, msg) => self.message(now, key, msg),
                Input::Closed(key, _) => {
                    self.conns.remove(&key);
                }
                Input::Stopped(key, half) => {
                    waiting.remove(&key);
                    halves.insert(key, *half);
                }
                _ => {}
            }
            waiting.retain(|k| self.conns.contains_key(k));
        }
        let mut out = Vec::new();
        for (key, (read, buf)) in halves {
            let Some(c) = self.conns.remove(&key) else {
                continue;
            };
            if !c.replay.is_complete() {
                debug!(
                    peer = key,
                    "too many messages before the metadata: not handed over"
                );
                continue;
            }
            // Closing its channel makes the writer send what is queued, then give back
            // its half.
            drop(c.writer);
            let Ok(Ok(write)) = tokio::time::timeout_at(deadline, c.writer_back).await else {
                continue;
            };
            out.push(Adopted {
                read,
                write,
                buf,
                peer: NewPeer {
                    peer_id: c.peer_id,
                    reserved: c.reserved,
                    addr: c.addr,
                    outgoing: c.outgoing,
                },
                replay: c.replay.into_messages(),
                permit: c._permit,
            });
        }
        info!(
            peers = out.len(),
            "connections handed over to the transfer phase"
        );
        out
    }

    /// Closes every connection and stops dialing until resumed.
    fn pause(&mut self) {
        if self.paused {
            return;
        }
        self.paused = true;
        let now = Instant::now();
        for a in self.peers_to_keep() {
            self.remember(a);
        }
        let keys: Vec<PeerKey> = self.conns.keys().copied().collect();
        for key in keys {
            self.close(now, key, "paused");
        }
        self.job.status.send_modify(|s| s.phase = Phase::Paused);
    }

    fn publish(&self) {
        let peers = self.conns.len();
        let progress = self.fetch.progress();
        self.job.status.send_if_modified(|s| {
            let changed = s.peers != peers || s.metadata_pieces != progress;
            s.peers = peers;
            s.metadata_pieces = progress;
            changed
        });
    }

    fn remember(&mut self, addr: SocketAddr) {
        if !self.known.contains(&addr) && self.known.len() < MAX_KNOWN {
            self.known.push(addr);
        }
    }

    fn trust(&mut self, addr: SocketAddr) {
        if self.trusted.len() < MAX_KNOWN {
            self.trusted.insert(addr);
        }
    }

    /// The addresses to dial once the metadata is there.
    fn peers_to_keep(&self) -> Vec<SocketAddr> {
        let mut out = self.known.clone();
        for c in self.conns.values() {
            if let Some(a) = c.listen
                && !out.contains(&a)
                && out.len() < MAX_KNOWN
            {
                out.push(a);
            }
        }
        out
    }

    fn dial(&mut self, utx: &mpsc::UnboundedSender<Input>) {
        if self.paused {
            return;
        }
        let config = &self.job.config;
        for &addr in &self.known {
            if self.conns.len() + self.dialing.len() >= config.max_peers {
                return;
            }
            if self.useless.contains(&addr)
                || self
                    .conns
                    .values()
                    .any(|c| c.listen == Some(addr) || c.addr == Some(addr))
                || self.dialing.contains(&addr)
            {
                continue;
            }
            let Some((slot, half_open)) = self.job.limits.dial() else {
                debug!("session connection or half-open limit reached: dialing later");
                return;
            };
            self.dialing.insert(addr);
            torrent::spawn_dial(
                &mut self.tasks,
                config,
                addr,
                self.wire_hash,
                (slot, half_open),
                utx,
                |conn, slot| Input::Connected(conn, true, Some(slot)),
                Input::DialDone,
            );
        }
    }

    fn handle(
        &mut self,
        input: Input,
        tx: &mpsc::Sender<Input>,
        utx: &mpsc::UnboundedSender<Input>,
    ) {
        let now = Instant::now();
        match input {
            Input::Connected(conn, outgoing, slot) => self.connected(*conn, outgoing, slot, tx),
            Input::DialDone(addr) => {
                self.dialing.remove(&addr);
            }
            Input::Resolved(addrs) => {
                for a in addrs {
                    self.trust(a);
                    self.remember(a);
                }
                self.dial(utx);
            }
            Input::Message(key, msg) => self.message(now, key, msg),
            Input::Closed(key, reason) => {
                if self.conns.remove(&key).is_some() {
                    debug!(peer = key, %reason, "peer closed");
                }
                self.fetch.handle_disconnect(now, key);
            }
            // Only during the handover.
            Input::Stopped(..) => {}
        }
    }

    fn close(&mut self, now: Instant, key: PeerKey, reason: &str) {
        if let Some(c) = self.conns.remove(&key) {
            info!(peer = key, %reason, "closing");
            c.reader.abort();
        }
        self.fetch.handle_disconnect(now, key);
    }

    fn send(&self, key: PeerKey, msg: &Message) {
        if let Some(c) = self.conns.get(&key) {
            let mut buf = BytesMut::new();
            msg.encode(&mut buf);
            let _ = c.writer.send(buf.freeze());
        }
    }

    fn message(&mut self, now: Instant, key: PeerKey, msg: Message) {
        // Everything but ut_metadata is for the torrent core, after the handover.
        let for_core = match &msg {
            Message::KeepAlive => false,
            Message::Extended { id, .. } => *id != OUR_UT_METADATA,
            _ => true,
        };
        if for_core && let Some(c) = self.conns.get_mut(&key) {
            c.replay.keep(&msg);
        }
        let Message::Extended { id, payload } = msg else {
            // Availability, choking, requests: kept for the torrent core.
            return;
        };
        match id {
            peer_wire::HANDSHAKE_ID => match ExtensionHandshake::parse(&payload) {
                Ok(hs) => {
                    if let Some(c) = self.conns.get_mut(&key) {
                        c.metadata_id = hs.id_of(UT_METADATA);
                    }
                    if let (Some(c), Some(p)) = (self.conns.get_mut(&key), hs.p)
                        && p != 0
                        && c.listen.is_none()
                        && let Some(a) = c.addr
                    {
                        c.listen = Some(SocketAddr::new(a.ip(), p));
                    }
                    match self.fetch.handle_handshake(now, key, &hs) {
                        PeerUse::Usable => {}
                        PeerUse::NoMetadata => debug!(peer = key, "peer has no ut_metadata"),
                        PeerUse::BadSize(n) => {
                            warn!(peer = key, size = n, "refusing the announced metadata size")
                        }
                    }
                }
                Err(e) => self.close(now, key, &e.to_string()),
            },
            OUR_UT_METADATA => {
                let parsed = MetadataMessage::parse(&payload);
                match parsed.map_err(|e| e.to_string()).and_then(|m| {
                    self.fetch
                        .handle_message(now, key, m)
                        .map_err(|e| e.to_string())
                }) {
                    Ok(Some(reply)) => {
                        // A request: we have nothing to serve yet.
                        if let Some(id) = self.conns.get(&key).and_then(|c| c.metadata_id) {
                            self.send(key, &reply.to_message(id));
                        }
                    }
                    Ok(None) => {}
                    Err(e) => self.close(now, key, &e),
                }
            }
            _ => debug!(
                peer = key,
                id, "extended message ignored in the metadata phase"
            ),
        }
    }

    fn flush(&mut self) {
        while let Some((key, id, msg)) = self.fetch.poll_request() {
            self.send(key, &msg.to_message(id));
        }
    }

    fn connected(
        &mut self,
        conn: PeerConnection<TcpStream>,
        outgoing: bool,
        slot: Option<OwnedSemaphorePermit>,
        tx: &mpsc::Sender<Input>,
    ) {
        if self.paused {
            debug!(addr = ?conn.peer_addr, "paused: dropping a connection");
            return;
        }
        let id = conn.established.peer_id;
        let config = &self.job.config;
        if id == config.peer_id || self.conns.values().any(|c| c.peer_id == id) {
            debug!(addr = ?conn.peer_addr, "refused: ourselves or already connected");
            return;
        }
        if !outgoing && self.conns.len() >= config.max_peers {
            debug!("connection limit reached: dropping an incoming peer");
            return;
        }
        let both = config.reserved().intersection(conn.established.reserved);
        if !both.extension_protocol() {
            debug!(addr = ?conn.peer_addr, "peer without the extension protocol: no metadata from it");
            if let (true, Some(a)) = (outgoing, conn.peer_addr)
                && self.useless.len() < MAX_KNOWN
            {
                self.useless.insert(a);
            }
            return;
        }
        let Some(slot) = slot.or_else(|| self.job.limits.connection()) else {
            debug!(addr = ?conn.peer_addr, "session connection limit reached: dropping a peer");
            return;
        };
        let key = self.next_key;
        self.next_key += 1;
        info!(peer = key, addr = ?conn.peer_addr, id = %id, "peer connected (metadata phase)");
        let mut hs = ExtensionHandshake::new();
        hs.m.insert(UT_METADATA.into(), OUR_UT_METADATA);
        hs.v = Some(concat!("rivulet ", env!("CARGO_PKG_VERSION")).to_string());
        hs.p = config.listen.map(|a| a.port());
        // No availability yet: the torrent core sends it after the handover (a peer
        // may see it only once).
        let mut first = BytesMut::new();
        hs.to_message().encode(&mut first);
        let (mut reader, mut writer) = tokio::io::split(conn.stream);
        let (wtx, mut wrx) = mpsc::unbounded_channel::<Bytes>();
        let _ = wtx.send(first.freeze());
        let (back_tx, back_rx) = oneshot::channel();
        self.tasks.spawn(async move {
            while let Some(buf) = wrx.recv().await {
                if writer.write_all(&buf).await.is_err() {
                    return;
                }
            }
            // Handed over, or closed (nobody takes the half back).
            if let Err(mut writer) = back_tx.send(writer) {
                let _ = writer.shutdown().await;
            }
        });
        let tx = tx.clone();
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let reader_task = self.tasks.spawn(async move {
            let decoder = Decoder::new();
            let mut buf = BytesMut::with_capacity(16 * 1024);
            let reason = 'outer: loop {
                tokio::select! {
                    biased;
                    stop = &mut stop_rx => {
                        if stop.is_ok() {
                            // Everything decoded went out before: the rest is the
                            // torrent driver's.
                            let half = Box::new((reader, buf));
                            let _ = tx.send(Input::Stopped(key, half)).await;
                        }
                        return;
                    }
                    r = reader.read_buf(&mut buf) => match r {
                        Ok(0) => break "end of stream".to_string(),
                        Ok(_) => {}
                        Err(e) => break format!("read: {e}"),
                    },
                }
                loop {
                    match decoder.decode(&mut buf) {
                        Ok(Some(msg)) => {
                            if tx.send(Input::Message(key, msg)).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => break 'outer e.to_string(),
                    }
                }
            };
            let _ = tx.send(Input::Closed(key, reason)).await;
        });
        self.conns.insert(
            key,
            Conn {
                _permit: slot,
                writer: wtx,
                reader: reader_task,
                stop: Some(stop_tx),
                writer_back: back_rx,
                peer_id: id,
                reserved: conn.established.reserved,
                outgoing,
                replay: Replay::default(),
                addr: conn.peer_addr,
                listen: if outgoing { conn.peer_addr } else { None },
                metadata_id: None,
            },
        );
    }
}

async fn recv_incoming(rx: &mut Incoming) -> Option<PeerConnection<TcpStream>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_is_bounded_in_bytes_not_only_in_messages() {
        let mut r = Replay::default();
        r.keep(&Message::Bitfield(Bytes::from(vec![0xff; 1000])));
        r.keep(&Message::Have(3));
        assert!(r.is_complete());
        assert_eq!(r.held().0, 2);
        // Large extended messages for an extension we did not announce: far fewer than
        // MAX_REPLAY, but more than MAX_REPLAY_BYTES.
        let big = Message::Extended {
            id: 9,
            payload: Bytes::from(vec![b'x'; 16 * 1024]),
        };
        for _ in 0..100 {
            r.keep(&big);
            assert!(r.held().1 <= MAX_REPLAY_BYTES);
        }
        assert!(!r.is_complete(), "1.6 MiB kept for the core");
        assert_eq!(r.held(), (0, 0), "what was kept is dropped");
        // The count bound still holds.
        let mut r = Replay::default();
        for i in 0..=MAX_REPLAY as u32 {
            r.keep(&Message::Have(i));
        }
        assert!(!r.is_complete());
    }
}
