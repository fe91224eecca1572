//! The tokio driver of one torrent: it moves bytes, time and disk work for the
//! sans-IO [`TorrentCore`].
//!
//! One task per torrent owns the core. It accepts incoming connections (from the
//! session's listener), dials the peer addresses it was given (again, every few seconds,
//! while they are not connected), feeds the core every decoded message, timeout and
//! disk result, executes the core's [`Action`]s, and publishes a [`Status`] after each
//! step. Per connection, a reader task decodes every message of a socket read and hands
//! them over as one batch (bounded channel to the core: back-pressure reaches TCP),
//! and a writer task sends what the core queued with vectored writes, piece payloads
//! uncopied. Both go through the session's [rate limiters](crate::ratelimit). What a
//! peer makes us send is bounded too: uploads wait while its writer holds 4 MiB, its
//! reader stops at 8 MiB (so a peer that sends requests but never reads fills its own
//! socket, not our memory) and goes on at 1 MiB, and the connection is dropped at
//! 32 MiB or when the backlog stops shrinking for 60 s.
//! Hash checks and writes run on the torrent's two disk threads (a hasher and a
//! flusher, started with the first complete piece; see `disk.rs`): received blocks are
//! hashed as they arrived, never joined, and verified pieces wait in the storage's
//! [write-back cache](crate::storage) to be written in coalesced writes. Reads for
//! uploads of cached pieces are answered at once from memory; other reads run on
//! `spawn_blocking` (at most one batch per peer at a time, one read per run of contiguous
//! blocks), never on a task that reads sockets. Dropping or
//! [shutting down](TorrentHandle::shutdown) the torrent closes everything (the disk
//! threads write the cache out before they exit).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use handshake::{Options, PeerConnection, PeerStream, connect_tcp};
use metainfo::{Info, InfoHash, InfoHashV1, LayoutMode, Torrent};
use peer_wire::{Block, BlockRequest, Decoder, Message, PeerConfig};
use tokio::io::{AsyncReadExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::conn::{self, Chunk, Drained, Sink, write_loop};
use crate::core::{Action, CoreConfig, NewPeer, PieceCheck, PieceData, TorrentCore};
use crate::discovery::{Discovery, DiscoveryStatus};
use crate::picker::{BLOCK_SIZE, NORMAL, PeerKey, Picker, Priority};
use crate::reader::FileReader;
use crate::resume;
use crate::session::{Config, Limits, Membership, Uploads};
use crate::storage::{Allocation, FileSpan, Storage, StorageError};

/// Why a torrent could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TorrentError {
    /// The storage failed (creating the directory, checking existing data).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The torrent uses something this engine does not do yet.
    #[error("not yet supported: {0}")]
    Unsupported(&'static str),
    /// The background check of existing data was cancelled.
    #[error("checking existing data was interrupted")]
    Interrupted,
    /// The file index does not exist in this torrent (or is a padding file).
    #[error("no file {0} in this torrent")]
    NoSuchFile(usize),
    /// The torrent's metadata is still being fetched (a magnet link or bare hash).
    #[error("the metadata is not known yet")]
    NoMetadata,
    /// The session already runs a torrent with this info hash ([`Session::get`]
    /// gives its handle).
    ///
    /// [`Session::get`]: crate::Session::get
    #[error("the session already has torrent {}", .0.wire_id())]
    Duplicate(InfoHash),
    /// The session has no torrent with this info hash.
    #[error("no torrent {} in the session", .0.wire_id())]
    NotInSession(InfoHash),
    /// Deleting the torrent's files failed (the path and the reason).
    #[error("deleting {0}: {1}")]
    Delete(PathBuf, std::io::Error),
}

/// A snapshot of a torrent's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// Bytes of wanted pieces we have, verified.
    pub have_bytes: u64,
    /// Bytes of all wanted pieces.
    pub wanted_bytes: u64,
    /// Pieces we have.
    pub pieces_have: u32,
    /// Pieces in the torrent.
    pub piece_count: u32,
    /// Payload bytes received from peers (duplicates and failed pieces included).
    pub downloaded: u64,
    /// Payload bytes sent to peers.
    pub uploaded: u64,
    /// Connected peers.
    pub peers: usize,
    /// Pieces that failed their hash check.
    pub hash_failures: u64,
    /// Peers banned for sending data that failed hash checks.
    pub peers_banned: usize,
    /// Every wanted piece is verified and stored.
    pub complete: bool,
    /// The torrent stopped on a storage error (the message), if it did: a piece could
    /// not be written or the files not flushed (disk full, no permission). It is then
    /// paused ([`Phase::Paused`]); [`TorrentHandle::resume`] clears this and tries again.
    pub error: Option<String>,
    /// What the torrent is doing: fetching metadata, checking, transferring.
    pub phase: Phase,
    /// While fetching metadata: pieces of it received and in total (0 while its size
    /// is unknown).
    pub metadata_pieces: (u32, u32),
    /// The info dictionary says the torrent is private (BEP 27): its peers come from
    /// its trackers and the peers given to it only. `false` until the metadata is
    /// known.
    pub private: bool,
    /// The most bytes that were ever queued for one peer and not yet written to its
    /// socket (messages and piece payloads), since the torrent started. Back-pressure
    /// keeps it near a few MiB: uploads wait while a peer has 4 MiB queued, we stop
    /// reading from a peer that has 8 MiB queued (its requests and other messages then
    /// wait in its own send buffer), and drop one that reaches 32 MiB.
    pub send_backlog_peak: u64,
}

/// What a torrent is doing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Fetching the info dictionary from peers (a magnet link or bare info hash;
    /// BEP 9).
    Metadata,
    /// Checking the data already on disk.
    Checking,
    /// Downloading and/or seeding pieces ([`Status::complete`] says which).
    #[default]
    Transfer,
    /// Paused ([`TorrentHandle::pause`]): no connections, nothing requested or
    /// served; verified pieces are kept.
    Paused,
}

/// Where a torrent's fast-resume file lives (see [`crate::resume`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resume {
    /// `DIR/.rivulet/<info hash>.resume` in the download directory (the default).
    #[default]
    InDir,
    /// This file.
    At(PathBuf),
    /// No resume file: every start checks the data in full.
    Off,
}

/// What to do with a torrent.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AddOptions {
    /// Peers to dial (and re-dial while they are not connected).
    pub peers: Vec<SocketAddr>,
    /// Initial file priorities by file index (0 = skip, 4 = normal, 7 = top); files
    /// past the end of the list are normal. Change them later with
    /// [`TorrentHandle::set_file_priority`].
    pub file_priorities: Vec<Priority>,
    /// Sequential mode from the start (see [`TorrentHandle::set_sequential`]).
    pub sequential: bool,
    /// The fast-resume file.
    pub resume: Resume,
    /// How often the resume file is written while pieces arrive (default 30 s); it is
    /// also written when the download completes and on [`TorrentHandle::close`].
    pub resume_interval: Option<Duration>,
    /// Sparse files (the default) or disk space reserved at start for every wanted
    /// file.
    pub allocation: Allocation,
    /// Start paused ([`Phase::Paused`] once the data is checked; for a magnet link,
    /// before fetching the metadata): nothing is connected, announced to trackers or
    /// looked up (DHT, LSD) until [`TorrentHandle::resume`].
    pub paused: bool,
    /// Trackers to announce to besides the torrent's own (`udp://`, `http://`), as one
    /// more tier announced independently of the torrent's tiers.
    pub trackers: Vec<String>,
}

impl AddOptions {
    /// Options dialing `peers`.
    pub fn with_peers(peers: Vec<SocketAddr>) -> Self {
        AddOptions {
            peers,
            ..AddOptions::default()
        }
    }
}

/// The progress and priority of one file of a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileStatus {
    /// The path under the download directory ([`metainfo::FileEntry::safe_path`]).
    pub path: PathBuf,
    /// The file's length.
    pub length: u64,
    /// Bytes of the file in verified pieces.
    pub done: u64,
    /// The file's priority (0 = skipped).
    pub priority: Priority,
    /// A BEP 47 padding file (never stored).
    pub padding: bool,
}

pub(crate) enum TorrentCmd {
    AddPeer(SocketAddr, Origin),
    Priority(usize, Priority),
    Sequential(bool),
    /// A reader's streaming window (`None`: the reader is gone).
    Window(u64, Option<Range<u32>>),
    Close(oneshot::Sender<()>),
    Pause,
    Resume,
}

/// What the handle, its readers and the torrent task share.
pub(crate) struct Shared {
    pub(crate) storage: Arc<Storage>,
    /// Verified pieces, one bit each; set by the torrent task before it publishes the
    /// status that counts them.
    have: Vec<AtomicU64>,
    priorities: Mutex<Vec<Priority>>,
    next_reader: AtomicU64,
    fast_resumed: bool,
    /// Set when the torrent is removed with its files: no disk write starts after.
    /// Writers hold the read side while they write.
    pub(crate) removed: RwLock<bool>,
    /// The fast-resume file, if any.
    resume_path: Option<PathBuf>,
}

impl Shared {
    pub(crate) fn has(&self, piece: u32) -> bool {
        let i = piece as usize;
        self.have
            .get(i / 64)
            .is_some_and(|w| w.load(Ordering::Acquire) & (1 << (i % 64)) != 0)
    }

    fn set(&self, piece: u32) {
        let i = piece as usize;
        if let Some(w) = self.have.get(i / 64) {
            w.fetch_or(1 << (i % 64), Ordering::Release);
        }
    }

    fn unset(&self, piece: u32) {
        let i = piece as usize;
        if let Some(w) = self.have.get(i / 64) {
            w.fetch_and(!(1 << (i % 64)), Ordering::Release);
        }
    }
}

/// Where a peer address came from: a private torrent (BEP 27) takes only those its
/// trackers and its user gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Given: [`AddOptions::peers`], a magnet link's `x.pe`,
    /// [`TorrentHandle::add_peer`].
    Given,
    /// One of the torrent's trackers.
    Tracker,
    /// The DHT (BEP 5).
    Dht,
    /// Local service discovery (BEP 14).
    Lsd,
}

impl Origin {
    /// Whether a private torrent may use an address of this origin.
    pub(crate) fn private_ok(self) -> bool {
        matches!(self, Origin::Given | Origin::Tracker)
    }
}

/// Where discovery hands the addresses it finds: the torrent's command channel, the
/// path [`TorrentHandle::add_peer`] uses.
#[derive(Clone, Debug)]
pub(crate) struct PeerSink(mpsc::UnboundedSender<TorrentCmd>);

impl PeerSink {
    pub(crate) fn add(&self, addr: SocketAddr, origin: Origin) {
        let _ = self.0.send(TorrentCmd::AddPeer(addr, origin));
    }

    #[cfg(test)]
    pub(crate) fn channel() -> (PeerSink, mpsc::UnboundedReceiver<TorrentCmd>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (PeerSink(tx), rx)
    }
}

/// A torrent of a [`Session`](crate::Session): a cheap, cloneable view of it.
///
/// The session owns the torrent: dropping handles does not stop it;
/// [`remove`](Self::remove), [`close`](Self::close) and [`shutdown`](Self::shutdown)
/// do (and take it out of the session, telling its trackers `stopped`), as does
/// dropping the session. A torrent whose session is gone stops when its last handle is
/// dropped.
#[derive(Clone)]
pub struct TorrentHandle {
    inner: Arc<HandleInner>,
}

pub(crate) struct HandleInner {
    info_hash: InfoHash,
    status: watch::Receiver<Status>,
    cmd: mpsc::UnboundedSender<TorrentCmd>,
    /// Set once the metadata is known: at once for a .torrent, after the metadata
    /// phase for a magnet link or a bare hash.
    shared: Arc<OnceLock<Arc<Shared>>>,
    abort: tokio::task::AbortHandle,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    trackers: Vec<Vec<String>>,
    membership: OnceLock<Membership>,
    /// Its peer discovery (trackers, DHT, LSD), set by the session right after the
    /// torrent starts; taken out when the torrent is removed.
    discovery: Mutex<Option<Discovery>>,
}

impl Drop for HandleInner {
    fn drop(&mut self) {
        self.abort.abort();
    }
}

impl std::fmt::Debug for TorrentCmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TorrentCmd::AddPeer(a, o) => write!(f, "AddPeer({a}, {o:?})"),
            TorrentCmd::Priority(i, p) => write!(f, "Priority({i}, {p})"),
            TorrentCmd::Sequential(on) => write!(f, "Sequential({on})"),
            TorrentCmd::Window(id, w) => write!(f, "Window({id}, {w:?})"),
            TorrentCmd::Close(_) => write!(f, "Close"),
            TorrentCmd::Pause => write!(f, "Pause"),
            TorrentCmd::Resume => write!(f, "Resume"),
        }
    }
}

impl std::fmt::Debug for TorrentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorrentHandle")
            .field("info_hash", &self.inner.info_hash)
            .finish_non_exhaustive()
    }
}

impl TorrentHandle {
    pub(crate) fn new(
        info_hash: InfoHash,
        status: watch::Receiver<Status>,
        cmd: mpsc::UnboundedSender<TorrentCmd>,
        shared: Arc<OnceLock<Arc<Shared>>>,
        task: tokio::task::JoinHandle<()>,
        trackers: Vec<Vec<String>>,
    ) -> TorrentHandle {
        TorrentHandle {
            inner: Arc::new(HandleInner {
                info_hash,
                status,
                cmd,
                shared,
                abort: task.abort_handle(),
                task: Mutex::new(Some(task)),
                trackers,
                membership: OnceLock::new(),
                discovery: Mutex::new(None),
            }),
        }
    }

    /// Records the session the torrent belongs to.
    pub(crate) fn join(&self, membership: Membership) {
        let _ = self.inner.membership.set(membership);
    }

    /// Stops the torrent's task (the session is going away).
    pub(crate) fn stop_task(&self) {
        self.inner.abort.abort();
        self.stop_discovery();
    }

    fn leave(&self) {
        if let Some(m) = self.inner.membership.get() {
            m.leave();
        }
    }

    /// Stops the torrent and waits until its task has ended.
    async fn stop_and_wait(&self) {
        self.inner.abort.abort();
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Pauses the torrent: closes every connection, stops dialing and refuses
    /// incoming peers (nothing is requested or served), keeps the verified pieces and
    /// writes the resume file. [`Status::phase`] becomes [`Phase::Paused`] once done;
    /// then its trackers are told `stopped`, and its DHT lookups end and LSD
    /// withdraws it (see [`crate::discovery`]). Pausing a paused torrent does nothing.
    pub fn pause(&self) {
        let _ = self.inner.cmd.send(TorrentCmd::Pause);
    }

    /// Resumes a paused torrent: dials the peers it knows again (those it was
    /// connected to included) and accepts incoming ones; its trackers hear `started`
    /// again, and the DHT lookups and LSD announces start over. A torrent that stopped
    /// on a storage error ([`Status::error`]) is paused too: this clears the error and
    /// tries again.
    pub fn resume(&self) {
        let _ = self.inner.cmd.send(TorrentCmd::Resume);
    }

    /// Takes the torrent out of its session and stops it. With `delete_files`, also
    /// deletes the files of the torrent under the download directory (only those:
    /// paths from the torrent's file list, confined to the directory; directories the
    /// torrent's files leave empty; its resume file); without, writes the resume file
    /// first, like [`close`](Self::close). Either way, it then waits (at most
    /// [`STOP_TIMEOUT`](crate::discovery::STOP_TIMEOUT)) until its trackers have been
    /// told `stopped`.
    pub async fn remove(&self, delete_files: bool) -> Result<(), TorrentError> {
        self.leave();
        let result = if delete_files {
            self.remove_with_files().await
        } else {
            self.close().await;
            Ok(())
        };
        self.finish_discovery().await;
        result
    }

    /// Stops the torrent, then deletes its files.
    async fn remove_with_files(&self) -> Result<(), TorrentError> {
        let shared = self.inner.shared.get().cloned();
        if let Some(shared) = &shared {
            // No write starts after this (and none is under way once we hold it).
            *shared.removed.write().unwrap_or_else(|e| e.into_inner()) = true;
        }
        self.stop_and_wait().await;
        let Some(shared) = shared else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || delete_files_of(&shared))
            .await
            .map_err(|_| TorrentError::Interrupted)?
    }

    /// The info hash(es) the torrent was added by.
    pub fn info_hash(&self) -> InfoHash {
        self.inner.info_hash
    }

    /// The info dictionary, once known: at once for a .torrent, after the metadata
    /// phase ([`Phase::Metadata`]) for a magnet link or a bare info hash.
    pub fn info(&self) -> Option<&Info> {
        self.inner.shared.get().map(|s| s.storage.info())
    }

    /// Tracker tiers from the source (the torrent's announce list, a magnet link's
    /// `tr`), for whoever announces the torrent.
    pub fn trackers(&self) -> &[Vec<String>] {
        &self.inner.trackers
    }

    /// The current status (published after every event the torrent handles).
    pub fn status(&self) -> Status {
        self.inner.status.borrow().clone()
    }

    /// A receiver that sees every status update.
    pub fn subscribe(&self) -> watch::Receiver<Status> {
        self.inner.status.clone()
    }

    /// Dials another peer.
    pub fn add_peer(&self, addr: SocketAddr) {
        let _ = self
            .inner
            .cmd
            .send(TorrentCmd::AddPeer(addr, Origin::Given));
    }

    /// Waits until every wanted piece is verified and stored. Fails with the storage
    /// error's message if the torrent stopped on one.
    pub async fn wait_complete(&self) -> Result<(), String> {
        let mut rx = self.inner.status.clone();
        loop {
            {
                let s = rx.borrow_and_update();
                if let Some(e) = &s.error {
                    return Err(e.clone());
                }
                if s.complete {
                    return Ok(());
                }
            }
            if rx.changed().await.is_err() {
                return Err("the torrent stopped".into());
            }
        }
    }

    /// Where its peers came from (trackers, DHT, LSD); `None` if the torrent was not
    /// added through a [`Session`](crate::Session).
    pub fn discovery(&self) -> Option<DiscoveryStatus> {
        self.lock_discovery().as_ref().map(Discovery::status)
    }

    fn lock_discovery(&self) -> std::sync::MutexGuard<'_, Option<Discovery>> {
        self.inner
            .discovery
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Tells discovery to leave: the trackers hear `stopped` in the background.
    fn stop_discovery(&self) {
        if let Some(d) = self.lock_discovery().as_ref() {
            d.stop();
        }
    }

    /// Tells the trackers `stopped` and waits (at most
    /// [`STOP_TIMEOUT`](crate::discovery::STOP_TIMEOUT)) for their answers.
    async fn finish_discovery(&self) {
        let d = self.lock_discovery().take();
        if let Some(mut d) = d {
            d.finish().await;
        }
    }

    pub(crate) fn peer_sink(&self) -> PeerSink {
        PeerSink(self.inner.cmd.clone())
    }

    pub(crate) fn set_discovery(&self, d: Discovery) {
        *self.lock_discovery() = Some(d);
    }

    /// Stops the torrent and closes its connections at once (no resume file is
    /// written), and takes it out of its session. Its trackers are told `stopped` in
    /// the background (use [`remove`](Self::remove) to wait for that).
    pub fn shutdown(&self) {
        self.inner.abort.abort();
        self.stop_discovery();
        self.leave();
    }

    /// Writes the resume file (after flushing the data), then stops the torrent,
    /// closes its connections and takes it out of its session. Returns when that is
    /// done (at once if it already stopped). Its trackers are told `stopped` in the
    /// background (use [`remove`](Self::remove) to wait for that).
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.cmd.send(TorrentCmd::Close(tx)).is_ok() {
            let _ = rx.await;
        }
        self.inner.abort.abort();
        self.stop_discovery();
        self.leave();
    }

    /// Sets the priority of file `file` (index as in the torrent's file list): 0 skips
    /// it (no piece only it needs is fetched, the file is not created unless a piece
    /// shared with a wanted file writes part of it), 1 low, 4 normal, 7 top. The
    /// torrent is complete once every file with a priority above 0 is. Unknown and
    /// padding files are ignored.
    ///
    /// Before the metadata of a magnet link is known, the priority is kept and applied
    /// when it arrives.
    pub fn set_file_priority(&self, file: usize, priority: Priority) {
        let Some(shared) = self.inner.shared.get() else {
            let _ = self.inner.cmd.send(TorrentCmd::Priority(file, priority));
            return;
        };
        let mut p = shared.priorities.lock().unwrap_or_else(|e| e.into_inner());
        let padding = shared
            .storage
            .info()
            .files
            .get(file)
            .is_some_and(|f| f.is_padding());
        if let (Some(slot), false) = (p.get_mut(file), padding) {
            *slot = priority;
            let _ = self.inner.cmd.send(TorrentCmd::Priority(file, priority));
        }
    }

    /// Sequential mode: new pieces in index order instead of rarest first.
    pub fn set_sequential(&self, on: bool) {
        let _ = self.inner.cmd.send(TorrentCmd::Sequential(on));
    }

    /// Every file's length, verified bytes and priority, in torrent order (none while
    /// the metadata is not known).
    pub fn files(&self) -> Vec<FileStatus> {
        let Some(shared) = self.inner.shared.get() else {
            return Vec::new();
        };
        let storage = &shared.storage;
        let layout = storage.layout();
        let pl = layout.piece_length();
        let prio = shared
            .priorities
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        storage
            .info()
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let start = layout.file_offset(i).unwrap_or(0);
                let end = start + f.length;
                let done = layout
                    .file_pieces(i)
                    .filter(|&p| shared.has(p))
                    .map(|p| {
                        let ps = u64::from(p) * pl;
                        let pe = ps + layout.piece_len(p);
                        pe.min(end).saturating_sub(ps.max(start))
                    })
                    .sum();
                FileStatus {
                    path: f.safe_path().to_path_buf(),
                    length: f.length,
                    done,
                    priority: prio.get(i).copied().unwrap_or(NORMAL),
                    padding: f.is_padding(),
                }
            })
            .collect()
    }

    /// Whether the start trusted the fast-resume file instead of checking the data.
    pub fn fast_resumed(&self) -> bool {
        self.inner.shared.get().is_some_and(|s| s.fast_resumed)
    }

    /// An async reader (`AsyncRead + AsyncSeek`) over file `file` of the torrent. It
    /// returns only verified data: a read waits for the piece under the read position,
    /// and asks for it and the pieces just ahead before all others (a streaming
    /// window, which also fetches pieces of a skipped file). See [`FileReader`].
    /// Fails with [`TorrentError::NoMetadata`] while the metadata is not known.
    pub fn reader(&self, file: usize) -> Result<FileReader, TorrentError> {
        let shared = self.inner.shared.get().ok_or(TorrentError::NoMetadata)?;
        let info = shared.storage.info();
        match info.files.get(file) {
            Some(f) if !f.is_padding() => {}
            _ => return Err(TorrentError::NoSuchFile(file)),
        }
        let id = shared.next_reader.fetch_add(1, Ordering::Relaxed);
        Ok(FileReader::new(
            shared.clone(),
            self.inner.cmd.clone(),
            self.inner.status.clone(),
            id,
            file,
        ))
    }
}

/// Dials `addr` as a task on `tasks`: TCP connect plus handshake for `info_hash` with
/// the session's handshake settings. The half-open slot is held until the handshake
/// ends; an established connection goes to `utx` through `connected` with its
/// connection `slot`, and `done(addr)` follows either way (the metadata phase and the
/// torrent driver dial alike, each with its own input type).
#[allow(clippy::too_many_arguments)] // each is a distinct part of the dial
pub(crate) fn spawn_dial<I: Send + 'static>(
    tasks: &mut JoinSet<()>,
    config: &Config,
    addr: SocketAddr,
    info_hash: InfoHashV1,
    (slot, half_open): (OwnedSemaphorePermit, OwnedSemaphorePermit),
    utx: &mpsc::UnboundedSender<I>,
    connected: fn(Box<PeerConnection<TcpStream>>, OwnedSemaphorePermit) -> I,
    done: fn(SocketAddr) -> I,
) {
    let mut options = Options::new(config.handshake_config());
    options.encryption = config.encryption;
    options.timeout = config.handshake_timeout;
    let utx = utx.clone();
    tasks.spawn(async move {
        let r = connect_tcp(addr, &options, info_hash, None).await;
        drop(half_open);
        match r {
            Ok(conn) => {
                let _ = utx.send(connected(Box::new(conn), slot));
            }
            Err(e) => debug!(%addr, error = %e, "connecting failed"),
        }
        let _ = utx.send(done(addr));
    });
}

/// Deletes the torrent's files (never padding, never outside the root, never through
/// a symlink), then the directories they leave empty (not the root), then the resume
/// file.
fn delete_files_of(shared: &Shared) -> Result<(), TorrentError> {
    // Nothing cached is written after this (not even when the storage is dropped).
    shared.storage.discard_cache();
    let root = shared.storage.root();
    let info = shared.storage.info();
    let remove = |path: &std::path::Path| match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(TorrentError::Delete(path.to_path_buf(), e))
        }
        _ => Ok(()),
    };
    let mut dirs = Vec::new();
    for f in info.files.iter().filter(|f| !f.is_padding()) {
        let path = root.join(f.safe_path());
        let Some(parent) = path.parent() else {
            continue;
        };
        let inside = parent
            .canonicalize()
            .is_ok_and(|real| real.starts_with(root));
        let is_file = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file());
        if !inside || !is_file {
            continue;
        }
        remove(&path)?;
        let mut d = parent;
        while d != root && d.starts_with(root) {
            if !dirs.iter().any(|x: &PathBuf| x == d) {
                dirs.push(d.to_path_buf());
            }
            match d.parent() {
                Some(p) => d = p,
                None => break,
            }
        }
    }
    // Deepest first; a directory with anything else in it stays.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        let _ = std::fs::remove_dir(&d);
    }
    let resume = shared.resume_path.clone();
    if let Some(p) = resume {
        remove(&p)?;
        if let Some(dir) = p.parent().filter(|d| d.ends_with(".rivulet")) {
            let _ = std::fs::remove_dir(dir);
        }
    }
    Ok(())
}

/// What the torrent task hears from its helper tasks.
enum Input {
    /// A connection, whether we dialed it, and its slot if one was taken for the dial.
    Connected(
        Box<PeerConnection<TcpStream>>,
        bool,
        Option<OwnedSemaphorePermit>,
    ),
    DialDone(SocketAddr),
    Messages(PeerKey, Vec<Message>),
    Closed(PeerKey, String),
    Checked(u32, PieceCheck),
    /// Writing these cached pieces out failed (the message).
    FlushFailed(Vec<u32>, String),
    Read(PeerKey, Vec<Option<Block>>),
    Finished(Result<(), String>),
    /// A writer's backlog fell to [`BACKLOG_LOW`]: deferred uploads may go on.
    Drained(PeerKey),
}

/// Starts a torrent: checks what is on disk under `dir`, then downloads what is
/// missing and serves what it has. `incoming` delivers connections the session's
/// listener accepted for this torrent.
pub(crate) async fn start(
    config: Config,
    limits: Limits,
    torrent: &Torrent,
    dir: &std::path::Path,
    options: AddOptions,
    incoming: Option<mpsc::Receiver<PeerConnection<TcpStream>>>,
) -> Result<TorrentHandle, TorrentError> {
    let (status_tx, status_rx) = watch::channel(Status {
        phase: Phase::Checking,
        ..Status::default()
    });
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let driver = prepare(
        config,
        limits,
        &torrent.info,
        torrent.info_hash,
        dir,
        options,
        status_tx,
    )
    .await?;
    let shared = Arc::new(OnceLock::from(driver.shared.clone()));
    let task = tokio::spawn(driver.run(incoming, cmd_rx, Vec::new()));
    Ok(TorrentHandle::new(
        torrent.info_hash,
        status_rx,
        cmd_tx,
        shared,
        task,
        torrent.announce_tiers(),
    ))
}

/// Checks what is on disk under `dir` (or trusts the resume file) and sets up the
/// driver that downloads what is missing and serves what it has, publishing on
/// `status`; run it with [`Driver::run`]. `info_hash` names the swarm on the wire.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn prepare(
    config: Config,
    limits: Limits,
    info: &Info,
    info_hash: InfoHash,
    dir: &std::path::Path,
    options: AddOptions,
    status: watch::Sender<Status>,
) -> Result<Driver, TorrentError> {
    let piece_len = u32::try_from(info.piece_length)
        .map_err(|_| TorrentError::Unsupported("pieces of 4 GiB or more"))?;
    let storage = Arc::new(Storage::new(info, dir)?.with_cache(config.cache_size));
    let resume_path = match &options.resume {
        Resume::InDir => Some(resume::default_path(storage.root(), info)),
        Resume::At(p) => Some(p.clone()),
        Resume::Off => None,
    };
    let (check, path) = (storage.clone(), resume_path.clone());
    let (have, fast_resumed) = tokio::task::spawn_blocking(move || {
        check.check_access()?;
        if let Some(path) = &path {
            match resume::load(check.info(), check.root(), path) {
                Ok(have) => return Ok((have, true)),
                Err(e) => info!(reason = %e, "checking existing data in full"),
            }
        }
        check
            .verify_existing()
            .map(|b| (b.as_slice().to_vec(), false))
    })
    .await
    .map_err(|_| TorrentError::Interrupted)??;
    info!(
        name = %info.name,
        have = have.iter().filter(|h| **h).count(),
        pieces = info.piece_count(),
        fast_resumed,
        "checked existing data"
    );
    let mut picker = Picker::new(info.layout(), rand::random());
    picker.set_have(&have);
    let mut priorities = vec![NORMAL; info.files.len()];
    for (i, f) in info.files.iter().enumerate() {
        let p = if f.is_padding() {
            0
        } else {
            options.file_priorities.get(i).copied().unwrap_or(NORMAL)
        };
        priorities[i] = p;
    }
    if priorities.iter().any(|&p| p != NORMAL) {
        picker.set_file_priorities(&priorities);
    }
    picker.set_sequential(options.sequential);
    if options.allocation == Allocation::Full {
        let wanted: Vec<bool> = priorities.iter().map(|&p| p > 0).collect();
        let st = storage.clone();
        tokio::task::spawn_blocking(move || st.preallocate(&wanted))
            .await
            .map_err(|_| TorrentError::Interrupted)??;
    }
    let words = (info.piece_count() as usize).div_ceil(64);
    let shared = Arc::new(Shared {
        storage: storage.clone(),
        have: (0..words).map(|_| AtomicU64::new(0)).collect(),
        priorities: Mutex::new(priorities),
        next_reader: AtomicU64::new(0),
        fast_resumed,
        removed: RwLock::new(false),
        resume_path: resume_path.clone(),
    });
    for (i, _) in have.iter().enumerate().filter(|(_, h)| **h) {
        shared.set(i as u32);
    }
    // The wire geometry: in a v2-only torrent every file's last piece is short, which
    // the peer-wire layer (one total length) cannot express; it checks against whole
    // pieces and the picker and storage hold the exact lengths.
    let wire_len = match info.layout_mode() {
        LayoutMode::V1 => info.total_length(),
        LayoutMode::V2 => u64::from(info.piece_count()) * info.piece_length,
    };
    let mut peer_config = PeerConfig::new(info.piece_count(), piece_len, wire_len);
    peer_config.max_outgoing_requests = config.max_outstanding;
    let mut core = TorrentCore::new(
        CoreConfig {
            peer_id: config.peer_id,
            reserved: config.reserved(),
            max_unchoked: config.max_unchoked,
            max_outstanding: config.max_outstanding,
            max_unchecked: config.max_unchecked,
            listen_port: config.listen.map(|a| a.port()),
            dht_port: config.dht_port,
        },
        peer_config,
        picker,
    );
    core.set_seed_algorithm(config.seed_algorithm);
    core.set_info(Bytes::copy_from_slice(info.raw()), info.private);
    // v2 piece layers the torrent lacks come from peers (BEP 52 hash requests).
    let needs: Vec<_> = crate::hashes::missing_layers(info)
        .into_iter()
        .map(|(file, req)| {
            let fp = info.layout().file_pieces(file);
            let start = fp.start.saturating_add(req.index).min(fp.end);
            let end = start.saturating_add(req.length).min(fp.end);
            (req, start..end)
        })
        .filter(|(_, pieces)| {
            pieces
                .clone()
                .any(|p| !have.get(p as usize).copied().unwrap_or(false))
        })
        .collect();
    if !needs.is_empty() {
        info!(
            requests = needs.len(),
            "fetching v2 piece layers from peers"
        );
        core.set_hash_needs(needs);
    }
    // The check is done: the handle shows what is there from now on.
    let mut first = core.status();
    first.private = info.private;
    if options.paused {
        first.phase = Phase::Paused;
    }
    status.send_replace(first);
    let info_hash = info_hash.wire_id();
    let mut known = options.peers;
    known.truncate(MAX_KNOWN);
    let resume_interval = options
        .resume_interval
        .unwrap_or(Duration::from_secs(30))
        .max(Duration::from_millis(100));
    let saved = core.picker().have_count();
    Ok(Driver {
        core,
        config,
        limits,
        paused: options.paused,
        info_hash,
        storage,
        shared,
        status,
        io: HashMap::new(),
        tasks: JoinSet::new(),
        dialing: HashSet::new(),
        last_dial: HashMap::new(),
        redial: false,
        known,
        windows: BTreeMap::new(),
        resume_path,
        resume_interval,
        saved,
        save_lock: Arc::new(Mutex::new(0)),
        saves: 0,
        hashes: crate::hashes::HashServer::new(),
        hash_budget: crate::hashes::HashBudget::for_torrent(info),
        deferred: HashMap::new(),
        notify: None,
        send_backlog_peak: 0,
        disk: None,
    })
}

/// A connection the metadata phase hands to the torrent driver (BEP 9 done): the
/// stream's halves, bytes read and not decoded yet, and the peer's messages the core
/// has to see (its extension handshake, availability, choke state) in order.
pub(crate) struct Adopted {
    pub(crate) read: ReadHalf<PeerStream<TcpStream>>,
    pub(crate) write: WriteHalf<PeerStream<TcpStream>>,
    pub(crate) buf: BytesMut,
    pub(crate) peer: NewPeer,
    pub(crate) replay: Vec<Message>,
    pub(crate) permit: OwnedSemaphorePermit,
}

/// A connection's I/O tasks, as the torrent task holds them.
struct PeerIo {
    writer: mpsc::UnboundedSender<Vec<Chunk>>,
    /// The writer task: aborted [`LINGER`] after the connection is closed, so a peer
    /// that reads nothing cannot keep it (and what it holds) alive.
    writer_task: tokio::task::AbortHandle,
    reader: tokio::task::AbortHandle,
    /// Small messages being encoded.
    out: BytesMut,
    /// BEP 52 hash work this peer may still cause.
    hash_budget: crate::hashes::HashBudget,
    /// The connection's slot in the session's budget, freed with it.
    _permit: OwnedSemaphorePermit,
    /// Encoded chunks (piece payloads uncopied) for the writer's next vectored write.
    chunks: Vec<Chunk>,
    /// Bytes handed to the writer and not yet written.
    backlog: Arc<AtomicUsize>,
    /// The writer sends file ranges with `sendfile(2)` (a plaintext connection).
    sendfile: bool,
    /// Where on disk the payloads of the piece messages the core is about to queue lie,
    /// for blocks answered from the files ([`Driver::answer_from_files`]); emptied after
    /// each round of actions.
    files: HashMap<BlockRequest, Vec<FileSpan>>,
}

/// Stands in for the payload of a block answered from the files (the core only needs
/// its length): [`PeerIo::push`] queues the block's file ranges instead.
static PLACEHOLDER: [u8; BLOCK_SIZE as usize] = [0; BLOCK_SIZE as usize];

impl PeerIo {
    /// Encodes `msg`; a piece's payload is queued as is (not copied) or as the file
    /// ranges it is to be sent from.
    fn push(&mut self, msg: Message) {
        match msg {
            Message::Piece(block) => {
                let from_file = !block.data.is_empty()
                    && std::ptr::eq(block.data.as_ptr(), PLACEHOLDER.as_ptr());
                let spans = if from_file {
                    let Some(spans) = self.files.remove(&block.request()) else {
                        // Never happens: the core queues a block's message in the round
                        // its read was answered. Zeros must not go out as data.
                        warn!(?block, "no file range for a block: not sent");
                        return;
                    };
                    Some(spans)
                } else {
                    None
                };
                let len = u32::try_from(block.data.len() + 9).unwrap_or(u32::MAX);
                self.out.reserve(13);
                self.out.extend_from_slice(&len.to_be_bytes());
                self.out.extend_from_slice(&[7]);
                self.out.extend_from_slice(&block.index.to_be_bytes());
                self.out.extend_from_slice(&block.begin.to_be_bytes());
                self.chunks.push(Chunk::Mem(self.out.split().freeze()));
                match spans {
                    Some(spans) => self.chunks.extend(spans.into_iter().map(Chunk::File)),
                    None => self.chunks.push(Chunk::Mem(block.data)),
                }
            }
            other => other.encode(&mut self.out),
        }
    }

    /// Everything encoded so far, for the writer.
    fn take(&mut self) -> Option<Vec<Chunk>> {
        if !self.out.is_empty() {
            self.chunks.push(Chunk::Mem(self.out.split().freeze()));
        }
        if self.chunks.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.chunks))
        }
    }

    /// Bytes queued for the writer or about to be.
    fn queued(&self) -> usize {
        let pending: usize = self.chunks.iter().map(Chunk::len).sum();
        self.backlog.load(Ordering::Relaxed) + pending + self.out.len()
    }

    /// Ends the connection: the reader at once; the writer after what is queued
    /// (`flush`), for at most [`LINGER`], or at once.
    fn close(mut self, flush: bool) {
        self.reader.abort();
        if !flush {
            self.writer_task.abort();
            return;
        }
        // Dropping the writer's channel ends it after what is queued.
        if let Some(chunks) = self.take() {
            let _ = self.writer.send(chunks);
        }
        let writer = self.writer_task;
        tokio::spawn(async move {
            tokio::time::sleep(LINGER).await;
            writer.abort();
        });
    }
}

/// Stops a connection's reader while the connection's writer has more than
/// [`READ_PAUSE`] bytes queued: a peer that sends requests (or anything else we answer)
/// but does not read its socket then fills its own send buffer instead of our memory,
/// as TCP's flow control holds its bytes back. Reading resumes when the writer is down
/// to [`BACKLOG_LOW`]. A backlog that does not shrink for [`SEND_STALL`] while the
/// reader waits ends the connection.
struct ReadGate {
    /// Bytes handed to the writer and not yet written.
    backlog: Arc<AtomicUsize>,
    /// Woken by the writer when its backlog falls to [`BACKLOG_LOW`].
    drained: Arc<Notify>,
    /// The backlog above which the reader waits.
    high: usize,
    /// How long the backlog may stay above `high` without shrinking.
    stall: Duration,
}

impl ReadGate {
    /// Returns once the backlog is at most `high`, or the reason to close if it stopped
    /// shrinking.
    async fn wait(&self) -> Result<(), String> {
        let mut last = self.backlog.load(Ordering::Relaxed);
        while last > self.high {
            // `notify_one` keeps a permit: a wake-up between the load and here is not
            // lost.
            let woken = tokio::time::timeout(self.stall, self.drained.notified()).await;
            let now = self.backlog.load(Ordering::Relaxed);
            if woken.is_err() && now >= last {
                return Err(format!(
                    "the peer reads nothing: {now} bytes queued for it did not shrink in {:?}",
                    self.stall
                ));
            }
            last = now;
        }
        Ok(())
    }
}

pub(crate) struct Driver {
    core: TorrentCore,
    config: Config,
    limits: Limits,
    /// Paused: no connections, no dialing ([`TorrentHandle::pause`]).
    pub(crate) paused: bool,
    info_hash: InfoHashV1,
    storage: Arc<Storage>,
    pub(crate) shared: Arc<Shared>,
    status: watch::Sender<Status>,
    io: HashMap<PeerKey, PeerIo>,
    tasks: JoinSet<()>,
    dialing: HashSet<SocketAddr>,
    /// When each known address was last dialed (not again within half the reconnect
    /// interval).
    last_dial: HashMap<SocketAddr, Instant>,
    /// A dial ended: its half-open slot may take another address at once.
    redial: bool,
    known: Vec<SocketAddr>,
    /// Streaming windows by reader id.
    windows: BTreeMap<u64, Range<u32>>,
    resume_path: Option<PathBuf>,
    resume_interval: Duration,
    /// Pieces had when the resume file was last written.
    saved: u32,
    /// Held while a resume file is written; holds the number of the last save written.
    save_lock: Arc<Mutex<u64>>,
    /// Saves started (each numbered): a save that starts late (the blocking pool is
    /// busy) must not overwrite a newer one with fewer pieces.
    saves: u64,
    /// Answers peers' hash requests (a tree per file, built once).
    hashes: crate::hashes::HashServer,
    /// The hash work each peer may cause (see [`Driver::hash_answer`]).
    hash_budget: crate::hashes::HashBudget,
    /// Upload reads held back while the peer's writer has [`BACKLOG_HIGH`] queued (a
    /// peer that requests but does not read cannot make us buffer without bound).
    deferred: HashMap<PeerKey, Vec<BlockRequest>>,
    /// The unbounded input channel, for writers' [`Input::Drained`] notices.
    notify: Option<mpsc::UnboundedSender<Input>>,
    /// The most bytes ever queued for one connection's writer ([`Status::send_backlog_peak`]).
    send_backlog_peak: usize,
    /// The disk threads, started with the first piece to check (a seed needs none).
    disk: Option<crate::disk::Disk>,
}

/// Bytes queued for a connection's writer above which no more blocks are read for it.
const BACKLOG_HIGH: usize = 4 << 20;

/// Bytes queued for a writer at which deferred reads resume, and a paused reader
/// ([`READ_PAUSE`]) reads again.
const BACKLOG_LOW: usize = 1 << 20;

/// Bytes queued for a connection's writer above which its reader stops reading
/// ([`ReadGate`]). Above what uploads alone can queue ([`BACKLOG_HIGH`] plus one batch
/// of reads), so a peer that reads what we send is never paused: two peers uploading to
/// each other cannot both stop reading and wait on each other.
const READ_PAUSE: usize = 8 << 20;

/// Bytes queued for a connection's writer at which the connection is dropped at once
/// (what was decoded before its reader paused may still ask for answers: hashes and
/// metadata pieces are budgeted per peer, but only this bounds them together).
const BACKLOG_CAP: usize = 32 << 20;

/// How long a paused reader waits for its writer's backlog to shrink before the
/// connection is closed.
const SEND_STALL: Duration = Duration::from_secs(60);

/// How long a closed connection's writer may go on sending what was queued.
const LINGER: Duration = Duration::from_secs(10);

/// How many batches of decoded messages (one socket read each, at most
/// [`READ_BUF`] bytes) may wait for the torrent task before readers pause.
const INPUT_QUEUE: usize = 64;

/// Messages handed to the torrent task in one batch at most.
const MAX_BATCH: usize = 256;

/// Bytes a connection's reader asks the socket for at once.
const READ_BUF: usize = 256 * 1024;

/// Peer addresses remembered for dialing at most (given, added, learned through PEX).
pub(crate) const MAX_KNOWN: usize = 1000;

impl Driver {
    /// Runs the torrent; `adopted` are connections the metadata phase hands over.
    pub(crate) async fn run(
        mut self,
        mut incoming: Option<mpsc::Receiver<PeerConnection<TcpStream>>>,
        mut cmds: mpsc::UnboundedReceiver<TorrentCmd>,
        adopted: Vec<Adopted>,
    ) {
        let (tx, mut rx) = mpsc::channel::<Input>(INPUT_QUEUE);
        // Disk results and dial outcomes must never wait behind a full queue.
        let (utx, mut urx) = mpsc::unbounded_channel::<Input>();
        // Before the adopted connections: their writers say when they drained too.
        self.notify = Some(utx.clone());
        for a in adopted {
            self.adopt(a, &tx);
        }
        let mut dial_tick = tokio::time::interval(self.config.reconnect_interval);
        let mut resume_tick = tokio::time::interval(self.resume_interval);
        resume_tick.tick().await;
        loop {
            self.execute(&utx);
            self.publish();
            let deadline = self
                .core
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                Some(input) = urx.recv() => {
                    self.handle(input, &tx);
                    if std::mem::take(&mut self.redial) {
                        self.dial(&utx);
                    }
                }
                Some(input) = rx.recv() => {
                    self.handle(input, &tx);
                    // Take what is already queued before executing actions.
                    for _ in 0..64 {
                        match rx.try_recv() {
                            Ok(input) => self.handle(input, &tx),
                            Err(_) => break,
                        }
                    }
                }
                conn = recv_incoming(&mut incoming) => match conn {
                    Some(conn) => self.handle(Input::Connected(Box::new(conn), false, None), &tx),
                    None => incoming = None,
                },
                cmd = cmds.recv() => match cmd {
                    Some(TorrentCmd::AddPeer(addr, origin)) => {
                        if self.storage.info().private && !origin.private_ok() {
                            // Found before discovery saw the metadata say private.
                            debug!(%addr, ?origin, "private torrent: not dialing");
                        } else {
                            self.remember(addr);
                            self.dial(&utx);
                        }
                    }
                    Some(TorrentCmd::Priority(file, prio)) => {
                        self.core.set_file_priority(Instant::now(), file, prio);
                    }
                    Some(TorrentCmd::Sequential(on)) => self.core.set_sequential(on),
                    Some(TorrentCmd::Window(id, w)) => {
                        match w {
                            Some(w) => self.windows.insert(id, w),
                            None => self.windows.remove(&id),
                        };
                        let ws = self.windows.values().cloned().collect();
                        self.core.set_windows(Instant::now(), ws);
                    }
                    Some(TorrentCmd::Close(done)) => {
                        let _ = self.save_resume().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(TorrentCmd::Pause) => self.pause(),
                    Some(TorrentCmd::Resume) => {
                        if std::mem::take(&mut self.paused) {
                            // A storage error is tried again.
                            self.core.clear_error();
                            info!("resumed");
                            self.dial(&utx);
                        }
                    }
                    None => return,
                },
                _ = dial_tick.tick() => self.dial(&utx),
                _ = resume_tick.tick() => {
                    if self.resume_path.is_some() && self.core.picker().have_count() != self.saved {
                        // Detached: the write goes on in the background.
                        drop(self.save_resume());
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.core.handle_timeout(Instant::now());
                }
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => {}
            }
        }
    }

    /// The answer to a peer's hash request, from a cached tree of the file, within the
    /// peer's budget ([`crate::hashes::HashBudget::for_torrent`]; refused requests
    /// cost too): a peer cannot make us build trees, look up or queue answers without
    /// end.
    fn hash_answer(&mut self, key: PeerKey, req: &peer_wire::HashRequest) -> Option<Vec<[u8; 32]>> {
        let io = self.io.get_mut(&key)?;
        self.hashes
            .answer(self.storage.info(), &mut io.hash_budget, req)
    }

    /// Syncs the data (the write-back cache written out, then `fsync`) and, if that
    /// worked, writes the resume file (if there is one), in the background. The pieces
    /// listed are those verified now: all stored before the sync starts, so none is
    /// listed that is only in the cache.
    fn save_resume(&mut self) -> tokio::task::JoinHandle<()> {
        let path = self.resume_path.clone();
        let picker = self.core.picker();
        let have: Vec<bool> = (0..picker.piece_count()).map(|i| picker.has(i)).collect();
        self.saved = picker.have_count();
        let (storage, lock) = (self.storage.clone(), self.save_lock.clone());
        let shared = self.shared.clone();
        self.saves += 1;
        let number = self.saves;
        tokio::task::spawn_blocking(move || {
            let mut last = lock.lock().unwrap_or_else(|e| e.into_inner());
            let removed = shared.removed.read().unwrap_or_else(|e| e.into_inner());
            if *removed || *last > number {
                return;
            }
            *last = number;
            if let Err(e) = storage.sync() {
                warn!(error = %e, "syncing the data failed: no resume file written");
                return;
            }
            let Some(path) = path else {
                return;
            };
            match resume::save(storage.info(), storage.root(), &path, &have) {
                Ok(()) => debug!(path = %path.display(), "resume file written"),
                Err(e) => {
                    warn!(error = %e, path = %path.display(), "writing the resume file failed")
                }
            }
        })
    }

    fn remember(&mut self, addr: SocketAddr) {
        if !self.known.contains(&addr) && self.known.len() < MAX_KNOWN {
            self.known.push(addr);
        }
    }

    /// Closes every connection and stops dialing; keeps what is verified and writes
    /// the resume file.
    fn pause(&mut self) {
        if self.paused {
            return;
        }
        self.paused = true;
        // Dial them again on resume.
        for a in self.core.peer_listen_addrs() {
            self.remember(a);
        }
        self.core.disconnect_all(Instant::now(), "paused");
        // Detached: the write goes on in the background.
        drop(self.save_resume());
        info!("paused");
    }

    /// A write or the final flush failed (disk full, no permission): the torrent pauses
    /// (its status keeps the error) rather than fetch pieces it cannot store; the
    /// session and its other torrents go on. [`TorrentHandle::resume`] tries again.
    fn stop_on_error(&mut self) {
        self.drop_unwritten();
        if !self.paused {
            warn!("paused on a storage error (resume tries again)");
            self.pause();
        }
    }

    /// Verified pieces not yet written are not had any more: the status (and the
    /// resume file) claim only pieces on disk; they are fetched again on resume.
    fn drop_unwritten(&mut self) {
        let lost = self.storage.discard_cache();
        if !lost.is_empty() {
            warn!(
                pieces = lost.len(),
                "dropping verified pieces that could not be written"
            );
            for &p in &lost {
                self.shared.unset(p);
            }
            self.core.handle_pieces_lost(&lost);
        }
    }

    fn publish(&self) {
        let mut s = self.core.status();
        s.private = self.storage.info().private;
        s.send_backlog_peak = self.send_backlog_peak as u64;
        if self.paused {
            s.phase = Phase::Paused;
        }
        self.status.send_if_modified(|old| {
            let changed = *old != s;
            *old = s;
            changed
        });
    }

    fn dial(&mut self, utx: &mpsc::UnboundedSender<Input>) {
        if self.paused {
            return;
        }
        for &addr in &self.known {
            if self.core.peer_count() + self.dialing.len() >= self.config.max_peers {
                return;
            }
            let recent = self
                .last_dial
                .get(&addr)
                .is_some_and(|t| t.elapsed() < self.config.reconnect_interval / 2);
            if !self.core.should_dial(addr) || self.dialing.contains(&addr) || recent {
                continue;
            }
            // The session's budget: a connection slot and a half-open slot.
            let Some((slot, half_open)) = self.limits.dial() else {
                debug!("session connection or half-open limit reached: dialing later");
                return;
            };
            self.dialing.insert(addr);
            self.last_dial.insert(addr, Instant::now());
            spawn_dial(
                &mut self.tasks,
                &self.config,
                addr,
                self.info_hash,
                (slot, half_open),
                utx,
                |conn, slot| Input::Connected(conn, true, Some(slot)),
                Input::DialDone,
            );
        }
    }

    fn handle(&mut self, input: Input, tx: &mpsc::Sender<Input>) {
        let now = Instant::now();
        match input {
            Input::Connected(conn, outgoing, slot) => {
                self.connected(now, *conn, outgoing, slot, tx)
            }
            Input::DialDone(addr) => {
                self.redial = true;
                self.dialing.remove(&addr);
            }
            Input::Messages(key, msgs) => {
                for msg in msgs {
                    self.core.handle_message(now, key, msg);
                }
            }
            Input::Closed(key, reason) => {
                self.deferred.remove(&key);
                if let Some(io) = self.io.remove(&key) {
                    info!(peer = key, %reason, "peer closed");
                    io.close(true);
                }
                self.core.handle_disconnect(now, key);
            }
            Input::Checked(index, result) => {
                let stored = result == PieceCheck::Stored;
                if stored {
                    self.shared.set(index);
                }
                let failed = matches!(result, PieceCheck::StorageFailed(_));
                self.core.handle_piece_checked(now, index, result);
                if failed {
                    self.stop_on_error();
                } else if stored && self.core.storage_error().is_some() {
                    // Stopped on a storage error (until resumed), checked before the
                    // stop: it went into a cache that cannot be written out now (the
                    // flusher reports a failure only once), or the stop's discard
                    // already took it from there before this report came in. Either
                    // way it is not had (fetched again on resume).
                    self.drop_unwritten();
                    self.shared.unset(index);
                    self.core.handle_pieces_lost(&[index]);
                }
            }
            Input::FlushFailed(pieces, e) => {
                self.core.handle_flush_failed(&pieces, e);
                self.stop_on_error();
            }
            Input::Read(key, blocks) => self.core.handle_blocks_read(now, key, blocks),
            Input::Drained(key) => {
                if let (Some(reqs), Some(utx)) = (self.deferred.remove(&key), self.notify.clone()) {
                    self.serve_read(key, reqs, &utx);
                }
            }
            Input::Finished(r) => {
                let ok = r.is_ok();
                self.core.handle_finished(r);
                if ok {
                    // Detached: the write goes on in the background.
                    drop(self.save_resume());
                } else {
                    self.stop_on_error();
                }
            }
        }
    }

    fn connected(
        &mut self,
        now: Instant,
        conn: PeerConnection<TcpStream>,
        outgoing: bool,
        slot: Option<OwnedSemaphorePermit>,
        tx: &mpsc::Sender<Input>,
    ) {
        if self.paused {
            debug!(addr = ?conn.peer_addr, "paused: dropping a connection");
            return;
        }
        if !outgoing && self.core.peer_count() >= self.config.max_peers {
            debug!("connection limit reached: dropping an incoming peer");
            return;
        }
        let Some(slot) = slot.or_else(|| self.limits.connection()) else {
            debug!(addr = ?conn.peer_addr, "session connection limit reached: dropping a peer");
            return;
        };
        let new = NewPeer {
            peer_id: conn.established.peer_id,
            reserved: conn.established.reserved,
            addr: conn.peer_addr,
            outgoing,
        };
        let Some(key) = self.core.handle_connect(now, new) else {
            debug!(addr = ?conn.peer_addr, "refused: banned or already connected");
            return;
        };
        info!(
            peer = key,
            addr = ?conn.peer_addr,
            id = %conn.established.peer_id,
            encrypted = conn.stream.is_encrypted(),
            "peer connected"
        );
        self.attach(key, conn.stream, BytesMut::new(), slot, tx);
    }

    /// Takes over a connection from the metadata phase: no new handshake, the peer's
    /// earlier messages replayed to the core.
    fn adopt(&mut self, a: Adopted, tx: &mpsc::Sender<Input>) {
        let now = Instant::now();
        if self.paused {
            debug!(addr = ?a.peer.addr, "paused: dropping a connection from the metadata phase");
            return;
        }
        let addr = a.peer.addr;
        let Some(key) = self.core.handle_connect(now, a.peer) else {
            debug!(?addr, "refused: banned or already connected");
            return;
        };
        info!(
            peer = key,
            ?addr,
            replayed = a.replay.len(),
            "peer kept from the metadata phase"
        );
        if !a.read.is_pair_of(&a.write) {
            // Never happens: the metadata phase hands over the halves of one stream.
            warn!(?addr, "halves of different streams handed over: dropped");
            self.core.handle_disconnect(now, key);
            return;
        }
        self.attach(key, a.read.unsplit(a.write), a.buf, a.permit, tx);
        for msg in a.replay {
            self.core.handle_message(now, key, msg);
        }
    }

    /// Starts the reader and writer tasks of connection `key`; `buf` holds bytes
    /// already read and not yet decoded.
    fn attach(
        &mut self,
        key: PeerKey,
        stream: PeerStream<TcpStream>,
        buf: BytesMut,
        slot: OwnedSemaphorePermit,
        tx: &mpsc::Sender<Input>,
    ) {
        let (wtx, wrx) = mpsc::unbounded_channel::<Vec<Chunk>>();
        let (up, down) = (self.limits.up.clone(), self.limits.down.clone());
        let backlog = Arc::new(AtomicUsize::new(0));
        let wake = Arc::new(Notify::new());
        let gate = ReadGate {
            backlog: backlog.clone(),
            drained: wake.clone(),
            high: READ_PAUSE,
            stall: SEND_STALL,
        };
        let notify = self.notify.clone();
        let drained = Some(Drained {
            backlog: backlog.clone(),
            low: BACKLOG_LOW,
            notify: Box::new(move || {
                wake.notify_one();
                if let Some(n) = &notify {
                    let _ = n.send(Input::Drained(key));
                }
            }),
        });
        let tx = tx.clone();
        // Plaintext: the writer sends on its own handle of the socket (file ranges with
        // sendfile) and the reader keeps the stream whole; else the stream is split.
        let (sendfile, reader_task, writer_task) = match conn::plain_socket(&stream) {
            #[cfg(target_os = "linux")]
            Some(sock) => {
                let w = self.tasks.spawn(write_loop(
                    Sink::<TcpStream>::Socket(sock),
                    wrx,
                    up,
                    drained,
                    self.config.uploads == Uploads::Mapped,
                ));
                let task = self
                    .tasks
                    .spawn(read_loop(stream, buf, key, down, tx, gate));
                (true, task, w)
            }
            _ => {
                let (reader, writer) = tokio::io::split(stream);
                let w = self
                    .tasks
                    .spawn(write_loop(Sink::Stream(writer), wrx, up, drained, false));
                let task = self
                    .tasks
                    .spawn(read_loop(reader, buf, key, down, tx, gate));
                (false, task, w)
            }
        };
        self.io.insert(
            key,
            PeerIo {
                writer: wtx,
                writer_task,
                reader: reader_task,
                out: BytesMut::new(),
                hash_budget: self.hash_budget,
                _permit: slot,
                chunks: Vec::new(),
                backlog,
                sendfile,
                files: HashMap::new(),
            },
        );
    }

    /// Executes the core's actions; messages are batched per peer. A connection whose
    /// writer reaches [`BACKLOG_CAP`] is dropped (and the core's actions after that
    /// executed too).
    fn execute(&mut self, utx: &mpsc::UnboundedSender<Input>) {
        while self.execute_once(utx) {}
    }

    /// One round of [`execute`](Self::execute): `true` if a connection was dropped.
    fn execute_once(&mut self, utx: &mpsc::UnboundedSender<Input>) -> bool {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Send(key, msg) => {
                    if let Some(io) = self.io.get_mut(&key) {
                        io.push(msg);
                    }
                }
                Action::Close(key, reason) => {
                    self.deferred.remove(&key);
                    if let Some(io) = self.io.remove(&key) {
                        info!(peer = key, %reason, "closing");
                        io.close(true);
                    }
                }
                Action::CheckPiece(index, data) => self.check_piece(index, data, utx),
                Action::Read(key, reqs) => {
                    let queued = self.io.get(&key).map_or(0, PeerIo::queued);
                    if queued > BACKLOG_HIGH {
                        // The writer says when it is down to BACKLOG_LOW.
                        self.deferred.insert(key, reqs);
                    } else {
                        self.serve_read(key, reqs, utx);
                    }
                }
                Action::HashRequest(key, req) => {
                    let hashes = self.hash_answer(key, &req);
                    let reply = match hashes {
                        Some(hashes) => Message::Hashes(peer_wire::Hashes {
                            request: req,
                            hashes: hashes.concat().into(),
                        }),
                        None => {
                            debug!(peer = key, ?req, "rejecting a hash request");
                            Message::HashReject(req)
                        }
                    };
                    if let Some(io) = self.io.get_mut(&key) {
                        reply.encode(&mut io.out);
                    }
                }
                Action::CheckHashes(key, h) => {
                    let info = self.storage.info();
                    let ok = match crate::hashes::check_answer(info, &h.request, &h.hashes) {
                        Some(run) => {
                            let first = h.request.index as usize;
                            self.storage
                                .add_piece_hashes(&h.request.pieces_root, first, &run);
                            true
                        }
                        None => false,
                    };
                    self.core
                        .handle_hashes_checked(Instant::now(), key, h.request, ok);
                }
                Action::DhtNode(addr) => {
                    if let Some(tx) = &self.config.dht_nodes {
                        let _ = tx.try_send(addr);
                    }
                }
                Action::Finish => {
                    let (storage, utx) = (self.storage.clone(), utx.clone());
                    let picker = self.core.picker();
                    let wanted: Vec<bool> = (0..storage.info().files.len())
                        .map(|i| picker.file_priority(i).is_none_or(|p| p > 0))
                        .collect();
                    let shared = self.shared.clone();
                    tokio::task::spawn_blocking(move || {
                        let removed = shared.removed.read().unwrap_or_else(|e| e.into_inner());
                        if *removed {
                            return;
                        }
                        let r = storage.finish_files(&wanted).map_err(|e| e.to_string());
                        let _ = utx.send(Input::Finished(r));
                    });
                }
                Action::Connect(addr) => {
                    debug!(%addr, "learned through PEX");
                    self.remember(addr);
                    self.dial(utx);
                }
            }
        }
        let mut over = Vec::new();
        for (&key, io) in self.io.iter_mut() {
            if let Some(chunks) = io.take() {
                let len: usize = chunks.iter().map(Chunk::len).sum();
                let queued = io.backlog.fetch_add(len, Ordering::Relaxed) + len;
                self.send_backlog_peak = self.send_backlog_peak.max(queued);
                if queued >= BACKLOG_CAP {
                    over.push((key, queued));
                }
                let _ = io.writer.send(chunks);
            }
            // Blocks the core did not send after all (cancelled meanwhile).
            io.files.clear();
        }
        for &(key, queued) in &over {
            self.deferred.remove(&key);
            if let Some(io) = self.io.remove(&key) {
                warn!(
                    peer = key,
                    queued, "dropping a peer that does not read what we send"
                );
                io.close(false);
            }
            self.core.handle_disconnect(Instant::now(), key);
        }
        !over.is_empty()
    }

    /// Hands a complete piece to the disk threads (started on first use).
    fn check_piece(&mut self, index: u32, data: PieceData, utx: &mpsc::UnboundedSender<Input>) {
        if self.disk.is_none() {
            let utx = utx.clone();
            let report = move |d: crate::disk::Done| {
                let _ = utx.send(match d {
                    crate::disk::Done::Checked(i, r) => Input::Checked(i, r),
                    crate::disk::Done::FlushFailed(p, e) => Input::FlushFailed(p, e),
                });
            };
            match crate::disk::Disk::start(self.shared.clone(), self.config.cache_age, report) {
                Ok(d) => self.disk = Some(d),
                Err(e) => {
                    let e = format!("starting the disk threads: {e}");
                    self.core.handle_piece_checked(
                        Instant::now(),
                        index,
                        PieceCheck::StorageFailed(e),
                    );
                    return;
                }
            }
        }
        if let Some(disk) = &self.disk
            && disk.check(index, data).is_err()
        {
            let e = "the disk threads stopped".to_string();
            self.core
                .handle_piece_checked(Instant::now(), index, PieceCheck::StorageFailed(e));
        }
    }

    /// The blocks for `reqs` if every one is in the write-back cache (slices of the
    /// received buffers, no disk access), else `None`.
    fn read_cached(&self, reqs: &[BlockRequest]) -> Option<Vec<Option<Block>>> {
        reqs.iter()
            .map(|r| {
                let data =
                    self.storage
                        .cached_block(r.index, u64::from(r.begin), u64::from(r.length))?;
                Some(Some(Block {
                    index: r.index,
                    begin: r.begin,
                    data,
                }))
            })
            .collect()
    }

    /// Answers a read for a peer's requests: from the write-back cache when every block
    /// is there, from the files (sent with sendfile, no read, no thread) when
    /// [`answer_from_files`](Self::answer_from_files) can, else read on the blocking pool.
    fn serve_read(
        &mut self,
        key: PeerKey,
        reqs: Vec<BlockRequest>,
        utx: &mpsc::UnboundedSender<Input>,
    ) {
        if let Some(blocks) = self.read_cached(&reqs) {
            self.core.handle_blocks_read(Instant::now(), key, blocks);
        } else if let Some(blocks) = self.answer_from_files(key, &reqs) {
            self.core.handle_blocks_read(Instant::now(), key, blocks);
        } else {
            self.spawn_read(key, reqs, utx);
        }
    }

    /// The blocks for `reqs` with [`PLACEHOLDER`] payloads, their file ranges noted for
    /// [`PeerIo::push`]; `None` (nothing noted) unless the peer's writer sends with
    /// sendfile and every block lies in the files as is (no padding, nothing in a
    /// cache, every block at most [`BLOCK_SIZE`]).
    fn answer_from_files(
        &mut self,
        key: PeerKey,
        reqs: &[BlockRequest],
    ) -> Option<Vec<Option<Block>>> {
        let io = self.io.get_mut(&key)?;
        if self.config.uploads == Uploads::Read
            || !io.sendfile
            || reqs.iter().any(|r| r.length > BLOCK_SIZE)
        {
            return None;
        }
        let mut noted: Vec<(BlockRequest, Vec<FileSpan>)> = Vec::with_capacity(reqs.len());
        for run in contiguous_runs(reqs) {
            let first = run[0];
            let at = u64::from(first.begin);
            let len: u64 = run.iter().map(|r| u64::from(r.length)).sum();
            let mut spans: VecDeque<FileSpan> = match self.storage.file_spans(first.index, at, len)
            {
                Ok(Some(spans)) => spans.into(),
                Ok(None) => return None,
                Err(e) => {
                    debug!(error = %e, "no file range for blocks to upload: reading");
                    return None;
                }
            };
            // Cut the run's ranges at the block boundaries.
            for r in run {
                let mut need = u64::from(r.length);
                let mut parts = Vec::with_capacity(1);
                while need > 0 {
                    let front = spans.front_mut()?;
                    let n = need.min(front.len);
                    parts.push(FileSpan {
                        file: front.file.clone(),
                        offset: front.offset,
                        len: n,
                    });
                    front.offset += n;
                    front.len -= n;
                    need -= n;
                    if front.len == 0 {
                        spans.pop_front();
                    }
                }
                noted.push((*r, parts));
            }
        }
        let mut blocks = Vec::with_capacity(noted.len());
        for (r, parts) in noted {
            blocks.push(Some(Block {
                index: r.index,
                begin: r.begin,
                data: Bytes::from_static(&PLACEHOLDER[..r.length as usize]),
            }));
            io.files.insert(r, parts);
        }
        Some(blocks)
    }

    /// Reads blocks for a peer's requests on the blocking pool.
    fn spawn_read(
        &self,
        key: PeerKey,
        reqs: Vec<BlockRequest>,
        utx: &mpsc::UnboundedSender<Input>,
    ) {
        let (storage, utx) = (self.storage.clone(), utx.clone());
        tokio::task::spawn_blocking(move || {
            let blocks = read_blocks(&storage, &reqs);
            let _ = utx.send(Input::Read(key, blocks));
        });
    }
}

/// One receiver of incoming connections fed by several registrations (a hybrid
/// torrent is reachable under its v1 hash and its truncated v2 hash, BEP 52). The
/// forwarding tasks end with their sources or when the receiver is dropped.
pub(crate) fn merge_incoming(
    sources: Vec<mpsc::Receiver<PeerConnection<TcpStream>>>,
    capacity: usize,
) -> mpsc::Receiver<PeerConnection<TcpStream>> {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    for mut src in sources {
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    conn = src.recv() => match conn {
                        Some(c) => {
                            if tx.send(c).await.is_err() {
                                return;
                            }
                        }
                        None => return,
                    },
                    _ = tx.closed() => return,
                }
            }
        });
    }
    rx
}

/// Reads the blocks for `reqs`, one read per run of contiguous requests in a piece;
/// each block is a slice of its run's buffer. `None` for blocks whose read failed.
/// `reqs` cut into runs of requests that follow each other in one piece.
fn contiguous_runs(reqs: &[BlockRequest]) -> impl Iterator<Item = &[BlockRequest]> {
    reqs.chunk_by(|a, b| {
        a.index == b.index && u64::from(a.begin) + u64::from(a.length) == u64::from(b.begin)
    })
}

fn read_blocks(storage: &Storage, reqs: &[BlockRequest]) -> Vec<Option<Block>> {
    let mut out = Vec::with_capacity(reqs.len());
    let mut i = 0;
    while i < reqs.len() {
        let first = reqs[i];
        let mut end = u64::from(first.begin) + u64::from(first.length);
        let mut j = i + 1;
        while let Some(r) = reqs.get(j)
            && r.index == first.index
            && u64::from(r.begin) == end
        {
            end += u64::from(r.length);
            j += 1;
        }
        let at = u64::from(first.begin);
        let read = match storage.cached_block(first.index, at, end - at) {
            Some(b) => Ok(b),
            None => storage
                .read_block(first.index, at, end - at)
                .map(Bytes::from),
        };
        match read {
            Ok(mut data) => {
                for r in &reqs[i..j] {
                    out.push(Some(Block {
                        index: r.index,
                        begin: r.begin,
                        data: data.split_to(r.length as usize),
                    }));
                }
            }
            Err(e) => {
                warn!(error = %e, "reading blocks to upload failed");
                out.extend(std::iter::repeat_n(None, j - i));
            }
        }
        i = j;
    }
    out
}

/// A connection's reader: decodes every message of a socket read (after the bytes
/// already in `buf`) and hands them to the torrent task as one batch (at most
/// [`MAX_BATCH`] messages), after the download limiter allows it; then the reason it
/// ended. It reads nothing while `gate` says the connection's writer is too far behind.
async fn read_loop<R: tokio::io::AsyncRead + Unpin>(
    mut reader: R,
    mut buf: BytesMut,
    key: PeerKey,
    down: crate::ratelimit::RateLimiter,
    tx: mpsc::Sender<Input>,
    gate: ReadGate,
) {
    let decoder = Decoder::new();
    buf.reserve(READ_BUF);
    let reason = loop {
        if let Err(reason) = gate.wait().await {
            break reason;
        }
        if buf.capacity() - buf.len() < READ_BUF / 4 {
            buf.reserve(READ_BUF);
        }
        match reader.read_buf(&mut buf).await {
            Ok(0) => break "end of stream".to_string(),
            Ok(n) => down.consume(n).await,
            Err(e) => break format!("read: {e}"),
        }
        let mut batch = Vec::new();
        let mut failed = None;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(msg)) => {
                    batch.push(msg);
                    // Many tiny messages (keep-alives are 4 bytes) must not make one
                    // huge batch: the queue bounds batches, not messages.
                    if batch.len() >= MAX_BATCH {
                        let full = std::mem::take(&mut batch);
                        if tx.send(Input::Messages(key, full)).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        if !batch.is_empty() && tx.send(Input::Messages(key, batch)).await.is_err() {
            return;
        }
        if let Some(e) = failed {
            break e;
        }
    };
    let _ = tx.send(Input::Closed(key, reason)).await;
}

async fn recv_incoming(
    rx: &mut Option<mpsc::Receiver<PeerConnection<TcpStream>>>,
) -> Option<PeerConnection<TcpStream>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(backlog: usize) -> ReadGate {
        ReadGate {
            backlog: Arc::new(AtomicUsize::new(backlog)),
            drained: Arc::new(Notify::new()),
            high: 1000,
            stall: Duration::from_millis(100),
        }
    }

    // Paused time: the clock moves only when every task waits, so the steps below are
    // exact.
    #[tokio::test(start_paused = true)]
    async fn a_reader_waits_for_its_writer_to_drain() {
        // Under the mark: no wait.
        gate(1000).wait().await.unwrap();
        // Over it: waits until the writer has drained and says so.
        let g = Arc::new(gate(5000));
        let waiter = tokio::spawn({
            let g = g.clone();
            async move { g.wait().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        // Shrinking but still over the mark (no notice): still waiting, not closed.
        for left in [4000, 3000, 2000] {
            tokio::time::sleep(Duration::from_millis(60)).await;
            g.backlog.store(left, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(!waiter.is_finished());
        g.backlog.store(500, Ordering::Relaxed);
        g.drained.notify_one();
        waiter.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_backlog_that_does_not_shrink_closes_the_connection() {
        let e = gate(5000).wait().await.unwrap_err();
        assert!(e.contains("reads nothing: 5000 bytes"), "{e}");
    }
}
