//! The session: our identity, the listening socket, and the torrents it runs.
//!
//! The CLI (and later the daemon API) call these methods; no protocol logic lives in
//! either.
//!
//! The session owns discovery: an optional DHT node ([`Config::dht`]) shared by every
//! torrent, optional local service discovery ([`Config::lsd`]), and per torrent a
//! tracker announcer (see [`crate::discovery`]).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use handshake::{
    Config as HsConfig, EncryptionPolicy, Listener, Options, PeerId, Registrar, Reserved,
};
use metainfo::{InfoHash, InfoHashV1};
use tokio::sync::{Semaphore, mpsc};
use tracker::net::AnnouncerConfig;

use crate::choker::SeedAlgorithm;
use crate::discovery;
use crate::lsd::{Lsd, LsdConfig};
use crate::metadata::MetadataConfig;
use crate::ratelimit::RateLimiter;
use crate::source::TorrentSource;
use crate::torrent::{self, AddOptions, TorrentError, TorrentHandle};

/// The session's DHT node.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DhtConfig {
    /// The UDP address (default: the listening address's IP and port, so peers'
    /// `port` messages and our announces agree; `0.0.0.0:0` when not listening; an
    /// ephemeral port if that one is taken).
    pub bind: Option<SocketAddr>,
    /// Bootstrap nodes as `host:port` (default `None`: the public routers in
    /// [`dht::DEFAULT_BOOTSTRAP`]; an empty list waits to be contacted).
    pub bootstrap: Option<Vec<String>>,
    /// Where to keep the node id and routing table across runs (default: nowhere).
    pub state_file: Option<PathBuf>,
}

/// Session settings. Every default is documented on its field.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Our peer id (default: `-RV0100-` and 12 random bytes).
    pub peer_id: PeerId,
    /// Where to accept peers (default: none). [`Session::config`] shows the bound
    /// address.
    pub listen: Option<SocketAddr>,
    /// MSE policy for both directions (default: [`EncryptionPolicy::Enabled`]:
    /// plaintext out, both accepted in).
    pub encryption: EncryptionPolicy,
    /// Connected peers per torrent at most (default 50).
    pub max_peers: usize,
    /// Connected peers across all the session's torrents at most (default 200), on top
    /// of [`max_peers`](Self::max_peers). Outgoing connects in progress count too.
    pub max_connections: usize,
    /// Outgoing connects in progress (TCP connect plus handshake) across the session at
    /// most (default 20); more wait for the next dial round.
    pub max_half_open: usize,
    /// Peers we upload to at once, per torrent: the choker's upload slots (default 8).
    pub max_unchoked: usize,
    /// How a seeding torrent shares its upload slots (default
    /// [`SeedAlgorithm::RoundRobin`]); downloading torrents use tit-for-tat.
    pub seed_algorithm: SeedAlgorithm,
    /// Block requests outstanding per peer at most (default 128; the peer's `reqq`
    /// caps it further).
    pub max_outstanding: usize,
    /// Bytes of complete pieces waiting for their hash check at or above which a
    /// torrent requests no more blocks (default 16 MiB; a piece larger than that is
    /// still fetched, one at a time). Hashing runs on one thread per torrent; without
    /// this, a download faster than that thread queued pieces in memory without bound
    /// (a 1 GiB download over loopback peaked at 267 MiB resident).
    pub max_unchecked: usize,
    /// Deadline for TCP connect plus handshake (default 10 s).
    pub handshake_timeout: Duration,
    /// How often unconnected peer addresses are dialed again (default 3 s).
    pub reconnect_interval: Duration,
    /// Limits of fetching metadata for magnet links and bare info hashes (BEP 9;
    /// default: info dictionaries up to 16 MiB, see [`MetadataConfig`]).
    pub metadata: MetadataConfig,
    /// What an info dictionary fetched from peers may claim (default
    /// [`metainfo::Limits::default`]: 2^21 pieces, 2^20 files, 100 path components,
    /// 512 MiB pieces); one over a limit stops the torrent with an error naming it.
    /// A [`Torrent`](metainfo::Torrent) given to [`Session::add`] was parsed by the
    /// caller, within the limits it chose.
    pub metainfo_limits: metainfo::Limits,
    /// The Mainline DHT (default `None`: off; the `rivulet` CLI turns it on unless
    /// `--no-dht`). Never used for private torrents.
    pub dht: Option<DhtConfig>,
    /// BEP 14 local service discovery (default `None`: off; needs [`Config::listen`]).
    /// Never used for private torrents.
    pub lsd: Option<LsdConfig>,
    /// Tracker timing: backoff, intervals, UDP retransmissions (default: the tracker
    /// crate's defaults, with at most 2 UDP retransmissions per announce).
    pub trackers: AnnouncerConfig,
    /// The running DHT node's UDP port (set by the session).
    pub(crate) dht_port: Option<u16>,
    /// Where torrents send peers' DHT nodes (set by the session).
    pub(crate) dht_nodes: Option<mpsc::Sender<SocketAddr>>,
    /// Session-wide upload limit in bytes per second, all torrents and connections
    /// together, protocol overhead included (default `None`: unlimited).
    pub upload_limit: Option<u64>,
    /// Session-wide download limit in bytes per second (default `None`: unlimited).
    pub download_limit: Option<u64>,
    /// Bytes of verified pieces each torrent may hold in memory before writing them
    /// (its write-back cache, see [`crate::storage`]; default
    /// [`DEFAULT_CACHE_SIZE`](crate::storage::DEFAULT_CACHE_SIZE), 32 MiB; 0 writes
    /// every piece at once). The cache is written out when more than half full.
    pub cache_size: usize,
    /// How long a verified piece may wait in the write-back cache (default
    /// [`DEFAULT_CACHE_AGE`](crate::storage::DEFAULT_CACHE_AGE), 2 s).
    pub cache_age: Duration,
    /// How plaintext connections send piece payloads that lie in the files (Linux;
    /// default [`Uploads::Mapped`]). Encrypted connections, padding and pieces still
    /// in the write-back cache are sent from memory.
    pub uploads: Uploads,
}

/// How a plaintext connection sends piece payloads that lie in the files
/// ([`Config::uploads`]; Linux, elsewhere they are read into memory).
///
/// Figures on loopback, 1 GiB from a rivulet seed to a rivulet leech on a quiet
/// machine (BENCHMARKS.md, session 5, 5 rounds): `Mapped` 932-1090 MB/s with the
/// seed at 0.36-0.51 CPU s/GiB; `Sendfile` 943-1058 at 0.42-0.46; `Read` 835-1068 at
/// 0.47-0.67. A libtorrent leech on the same host can do worse on `Mapped`: with
/// libtorrent's high-performance preset its 7 MiB disk queue fills (BENCHMARKS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Uploads {
    /// The writer maps windows of the files read-only and hands the kernel up to
    /// 1 MiB of queued messages, headers and payloads, in one `sendmsg`: one syscall
    /// and one copy per byte, full-sized segments. A connection keeps at most 4
    /// windows of about 1 MiB mapped.
    #[default]
    Mapped,
    /// One `sendfile(2)` per block after its header (`MSG_MORE`): no copy, two
    /// syscalls per block, a short segment per block.
    Sendfile,
    /// Blocks are read into memory on the blocking pool, then sent.
    Read,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            peer_id: PeerId::generate(b"-RV0100-", &mut rand::rng()),
            listen: None,
            encryption: EncryptionPolicy::Enabled,
            max_peers: 50,
            max_connections: 200,
            max_half_open: 20,
            max_unchoked: 8,
            seed_algorithm: SeedAlgorithm::RoundRobin,
            max_outstanding: 128,
            max_unchecked: 16 << 20,
            handshake_timeout: Duration::from_secs(10),
            reconnect_interval: Duration::from_secs(3),
            metadata: MetadataConfig::default(),
            metainfo_limits: metainfo::Limits::default(),
            dht: None,
            lsd: None,
            trackers: {
                let mut t = AnnouncerConfig::default();
                t.udp.max_retransmits = 2;
                t
            },
            dht_port: None,
            dht_nodes: None,
            upload_limit: None,
            download_limit: None,
            cache_size: crate::storage::DEFAULT_CACHE_SIZE,
            cache_age: crate::storage::DEFAULT_CACHE_AGE,
            uploads: Uploads::default(),
        }
    }
}

impl Config {
    /// The extension bits we set: BEP 10 extensions, BEP 6 fast, and BEP 5 DHT when
    /// [`Config::dht`] is on.
    pub fn reserved(&self) -> Reserved {
        Reserved::STANDARD.with_dht(self.dht.is_some())
    }

    pub(crate) fn handshake_config(&self) -> HsConfig {
        let mut c = HsConfig::new(self.peer_id);
        c.reserved = self.reserved();
        c
    }
}

/// Peers' DHT nodes (from `port` messages) queued for a ping at most.
const DHT_NODE_QUEUE: usize = 256;

/// The session-wide connection budget and rate limiters every torrent draws from.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// One permit per connection (established, or being dialed).
    pub(crate) connections: Arc<Semaphore>,
    /// One permit per outgoing connect in progress.
    pub(crate) half_open: Arc<Semaphore>,
    /// Bytes we send (cloned into every connection's writer).
    pub(crate) up: RateLimiter,
    /// Bytes we receive (cloned into every connection's reader).
    pub(crate) down: RateLimiter,
}

impl Limits {
    pub(crate) fn new(config: &Config) -> Limits {
        Limits {
            connections: Arc::new(Semaphore::new(config.max_connections)),
            half_open: Arc::new(Semaphore::new(config.max_half_open)),
            up: RateLimiter::new(config.upload_limit),
            down: RateLimiter::new(config.download_limit),
        }
    }

    /// A connection slot, if one is free.
    pub(crate) fn connection(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.connections.clone().try_acquire_owned().ok()
    }

    /// A connection slot and a half-open slot for a dial, if both are free.
    pub(crate) fn dial(
        &self,
    ) -> Option<(
        tokio::sync::OwnedSemaphorePermit,
        tokio::sync::OwnedSemaphorePermit,
    )> {
        let conn = self.connection()?;
        let half = self.half_open.clone().try_acquire_owned().ok()?;
        Some((conn, half))
    }
}

/// One torrent of a session.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) id: u64,
    /// The wire ids it is registered under (v1 hash, truncated v2 hash).
    pub(crate) keys: Vec<InfoHashV1>,
    /// `None` while the torrent is being added (checking existing data).
    pub(crate) handle: Option<TorrentHandle>,
}

/// The torrents of a session, shared with their handles (which leave it on
/// [`TorrentHandle::remove`], [`close`](TorrentHandle::close) and
/// [`shutdown`](TorrentHandle::shutdown)).
#[derive(Debug, Default)]
pub(crate) struct Torrents {
    pub(crate) entries: Mutex<Vec<Entry>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Torrents {
    /// Takes torrent `id` out of the session; returns its wire ids (to unregister).
    pub(crate) fn take(&self, id: u64) -> Option<Entry> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let i = entries.iter().position(|e| e.id == id)?;
        Some(entries.swap_remove(i))
    }
}

/// How a torrent left the session, for [`TorrentHandle`].
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    pub(crate) id: u64,
    pub(crate) torrents: std::sync::Weak<Torrents>,
    pub(crate) registrar: Option<Registrar>,
}

impl Membership {
    /// Leaves the session: forgets the torrent and stops routing its incoming peers.
    pub(crate) fn leave(&self) {
        let Some(torrents) = self.torrents.upgrade() else {
            return;
        };
        let Some(entry) = torrents.take(self.id) else {
            return;
        };
        if let Some(r) = &self.registrar {
            for k in &entry.keys {
                r.unregister(k);
            }
        }
        // Dropped outside the lock: it may be the last handle.
        drop(entry);
    }
}

/// Gives up a claimed info hash when dropped while armed.
struct Claim(Option<Membership>);

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(m) = self.0.take() {
            m.leave();
        }
    }
}

/// The wire ids a torrent is reachable under: its v1 hash and its truncated v2 hash.
fn wire_keys(hash: InfoHash) -> Vec<InfoHashV1> {
    let mut keys: Vec<InfoHashV1> = hash.v1().into_iter().collect();
    keys.extend(hash.v2().map(|h| h.truncated()));
    keys
}

/// A BitTorrent session: a peer id, an optional listening socket, the DHT node, LSD,
/// and the torrents it runs.
///
/// The session owns its torrents: a [`TorrentHandle`] is a cheap, cloneable view of
/// one, and dropping handles does not stop it. [`Session::torrents`] lists them,
/// [`Session::get`] finds one by info hash, [`TorrentHandle::remove`] (or
/// [`Session::remove`]) takes one out, optionally deleting its files. Dropping the
/// session stops every torrent it runs. Connections count against the torrent's
/// [`Config::max_peers`] and the session's [`Config::max_connections`]; outgoing
/// connects in progress against [`Config::max_half_open`]. Each torrent's peers are
/// found through its trackers, the session's DHT node and LSD (see
/// [`crate::discovery`]); removing, closing, pausing or shutting down a torrent tells
/// its trackers `stopped`, and [`Session::close`] does for every torrent, waiting
/// (bounded) for the answers.
#[derive(Debug)]
pub struct Session {
    config: Config,
    listen_addr: Option<SocketAddr>,
    registrar: Option<Registrar>,
    listener_task: Option<tokio::task::JoinHandle<()>>,
    torrents: Arc<Torrents>,
    limits: Limits,
    dht: Option<dht::Dht>,
    dht_task: Option<tokio::task::JoinHandle<()>>,
    lsd: Option<Lsd>,
}

impl Session {
    /// Starts a session, binding the listening socket if `config.listen` is set.
    pub async fn new(config: Config) -> std::io::Result<Session> {
        let (mut listen_addr, mut registrar, mut listener_task) = (None, None, None);
        if let Some(addr) = config.listen {
            let mut options = Options::new(config.handshake_config());
            options.encryption = config.encryption;
            options.timeout = config.handshake_timeout;
            let listener = Listener::bind(addr, options).await?;
            listen_addr = Some(listener.local_addr()?);
            registrar = Some(listener.registrar());
            listener_task = Some(tokio::spawn(async move {
                if let Err(e) = listener.run().await {
                    tracing::warn!(error = %e, "the listening socket failed");
                }
            }));
        }
        let mut config = config;
        // The bound address (the port, when 0 was asked for), announced to peers.
        config.listen = listen_addr;
        let (mut dht, mut dht_task) = (None, None);
        if let Some(d) = &config.dht {
            match start_dht(d, listen_addr).await {
                Ok(node) => {
                    tracing::info!(addr = %node.local_addr(), id = %node.id(), "DHT node started");
                    let (tx, rx) = mpsc::channel(DHT_NODE_QUEUE);
                    config.dht_port = Some(node.local_addr().port());
                    config.dht_nodes = Some(tx);
                    dht_task = Some(tokio::spawn(ping_nodes(node.clone(), rx)));
                    dht = Some(node);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the DHT could not start; going on without it")
                }
            }
        }
        let lsd = match (&config.lsd, listen_addr) {
            (Some(c), Some(addr)) => match Lsd::start(c.clone(), addr.port()).await {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!(error = %e, "local service discovery could not start");
                    None
                }
            },
            (Some(_), None) => {
                tracing::warn!("local service discovery needs a listening socket: off");
                None
            }
            _ => None,
        };
        Ok(Session {
            limits: Limits::new(&config),
            config,
            listen_addr,
            registrar,
            listener_task,
            torrents: Arc::default(),
            dht,
            dht_task,
            lsd,
        })
    }

    /// The session's DHT node, if it runs.
    pub fn dht(&self) -> Option<&dht::Dht> {
        self.dht.as_ref()
    }

    /// The local service discovery socket's address, if LSD runs.
    pub fn lsd_addr(&self) -> Option<SocketAddr> {
        self.lsd.as_ref().map(Lsd::local_addr)
    }

    /// The bound listening address, if listening.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen_addr
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Adds a torrent whose data lives (or will live) under `dir`, from a .torrent
    /// (`&Torrent` or [`Torrent`](metainfo::Torrent)), a
    /// [`MagnetLink`](magnet::MagnetLink) or a bare [`InfoHash`]
    /// (see [`TorrentSource`]).
    ///
    /// With the metadata known, it checks existing data before returning, then
    /// downloads what is missing from the given peers and whoever connects, and serves
    /// what it has. For a magnet link or a hash it returns at once: the torrent starts
    /// in [`Phase::Metadata`](crate::torrent::Phase::Metadata), fetching the info
    /// dictionary from peers (the link's `x.pe`, `options.peers`,
    /// [`TorrentHandle::add_peer`], incoming ones; BEP 9), then checks and downloads.
    ///
    /// A torrent is in a session once: adding one that shares an info hash (v1, or v2)
    /// with a torrent the session runs fails with [`TorrentError::Duplicate`], and
    /// [`Session::get`] gives that torrent's handle.
    /// The peers its trackers (the torrent's or the link's, and [`AddOptions::trackers`]), the DHT and
    /// LSD find are dialed too; a private torrent (BEP 27) uses its trackers and the
    /// given peers only.
    pub async fn add(
        &self,
        source: impl Into<TorrentSource>,
        dir: impl AsRef<Path>,
        options: AddOptions,
    ) -> Result<TorrentHandle, TorrentError> {
        let source = source.into();
        let hash = source.info_hash();
        let keys = wire_keys(hash);
        // Claim the hashes before the (possibly long) check of existing data, so a
        // concurrent add of the same torrent fails.
        let id = {
            let mut entries = self
                .torrents
                .entries
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if entries
                .iter()
                .any(|e| e.keys.iter().any(|k| keys.contains(k)))
            {
                return Err(TorrentError::Duplicate(hash));
            }
            let id = self
                .torrents
                .next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            entries.push(Entry {
                id,
                keys: keys.clone(),
                handle: None,
            });
            id
        };
        let membership = Membership {
            id,
            torrents: Arc::downgrade(&self.torrents),
            registrar: self.registrar.clone(),
        };
        // If this future is dropped before the torrent runs, the hash is free again.
        let mut claim = Claim(Some(membership.clone()));
        let info_hash = hash.wire_id();
        // Privacy is known with the metadata; a magnet link is treated as public.
        let private = source.torrent().is_some_and(|t| t.info.private);
        let incoming = self.registrar.as_ref().map(|r| {
            let rx = r.register(info_hash, 64);
            match hash {
                // Peers that know only the v2 hash reach a hybrid torrent too.
                InfoHash::Hybrid(_, v2) => {
                    torrent::merge_incoming(vec![rx, r.register(v2.truncated(), 64)], 64)
                }
                _ => rx,
            }
        });
        let mut config = self.config.clone();
        if private {
            config.dht = None;
            config.dht_port = None;
            config.dht_nodes = None;
        }
        let extra = options.trackers.clone();
        let started = match source.torrent() {
            Some(torrent) => {
                torrent::start(
                    config,
                    self.limits.clone(),
                    torrent,
                    dir.as_ref(),
                    options,
                    incoming,
                )
                .await
            }
            None => Ok(crate::fetch::start(
                config,
                self.limits.clone(),
                &source,
                dir.as_ref().to_path_buf(),
                options,
                incoming,
            )),
        };
        claim.0 = None;
        match started {
            Ok(handle) => {
                handle.join(membership);
                let params = discovery::Params {
                    info_hash: info_hash.0,
                    peer_id: self.config.peer_id.0,
                    port: self.listen_addr.map_or(0, |a| a.port()),
                    listen: self.listen_addr,
                    tiers: source.trackers(),
                    extra,
                    announcer: self.config.trackers.clone(),
                    dht: if private { None } else { self.dht.clone() },
                    lsd: match (&self.lsd, private) {
                        (Some(l), false) => Some(l.registrar()),
                        _ => None,
                    },
                    status: handle.subscribe(),
                    sink: handle.peer_sink(),
                };
                handle.set_discovery(discovery::spawn(params));
                let mut entries = self
                    .torrents
                    .entries
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if let Some(e) = entries.iter_mut().find(|e| e.id == id) {
                    e.handle = Some(handle.clone());
                }
                Ok(handle)
            }
            Err(e) => {
                membership.leave();
                Err(e)
            }
        }
    }

    /// The torrents the session runs, in the order they were added (one still in
    /// [`Session::add`] is not listed yet).
    pub fn torrents(&self) -> Vec<TorrentHandle> {
        let mut entries: Vec<(u64, TorrentHandle)> = self
            .torrents
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|e| Some((e.id, e.handle.clone()?)))
            .collect();
        entries.sort_by_key(|(id, _)| *id);
        entries.into_iter().map(|(_, h)| h).collect()
    }

    /// The torrent with this info hash: one whose v1 or v2 hash is among `info_hash`'s
    /// (a hybrid torrent is found by either).
    pub fn get(&self, info_hash: InfoHash) -> Option<TorrentHandle> {
        let keys = wire_keys(info_hash);
        self.torrents
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|e| e.keys.iter().any(|k| keys.contains(k)))
            .and_then(|e| e.handle.clone())
    }

    /// Removes the torrent with this info hash (see [`TorrentHandle::remove`]).
    pub async fn remove(
        &self,
        info_hash: InfoHash,
        delete_files: bool,
    ) -> Result<(), TorrentError> {
        let handle = self
            .get(info_hash)
            .ok_or(TorrentError::NotInSession(info_hash))?;
        handle.remove(delete_files).await
    }

    /// Closes the session: every torrent writes its resume file, closes its
    /// connections and tells its trackers `stopped`, all torrents at once; returns once
    /// the trackers have answered, or at the latest
    /// [`STOP_TIMEOUT`](crate::discovery::STOP_TIMEOUT) (plus a second) after the
    /// torrents have stopped, whatever the number of torrents and however unreachable
    /// their trackers are. Then the listening socket, the DHT node and LSD stop.
    ///
    /// Dropping the session instead stops the torrents at once and tells the trackers
    /// `stopped` in the background: the answers are not waited for (and are lost if the
    /// runtime ends first).
    pub async fn close(self) {
        let handles: Vec<TorrentHandle> = self.torrents();
        let mut closing = tokio::task::JoinSet::new();
        for h in handles {
            // `remove` without files: leave, write the resume file, stop, then wait
            // (bounded) for the trackers' answers to `stopped`.
            closing.spawn(async move {
                let _ = h.remove(false).await;
            });
        }
        while closing.join_next().await.is_some() {}
        tracing::debug!("session closed");
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(t) = &self.listener_task {
            t.abort();
        }
        if let Some(t) = &self.dht_task {
            t.abort();
        }
        let entries = std::mem::take(
            &mut *self
                .torrents
                .entries
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for h in entries.iter().filter_map(|e| e.handle.as_ref()) {
            h.stop_task();
        }
    }
}

/// Binds and starts the DHT node.
async fn start_dht(c: &DhtConfig, listen: Option<SocketAddr>) -> Result<dht::Dht, dht::Error> {
    let any = SocketAddr::from(([0, 0, 0, 0], 0));
    let bind = c.bind.or(listen).unwrap_or(any);
    let builder = |bind: SocketAddr| {
        let mut b = dht::Dht::builder().bind(bind);
        if let Some(nodes) = &c.bootstrap {
            b = b.bootstrap_hosts(nodes.clone());
        }
        if let Some(f) = &c.state_file {
            b = b.state_file(f.clone());
        }
        b
    };
    match builder(bind).build().await {
        Err(dht::Error::Io(e)) if bind.port() != 0 => {
            tracing::debug!(%bind, error = %e, "DHT port taken; using another");
            builder(SocketAddr::new(bind.ip(), 0)).build().await
        }
        r => r,
    }
}

/// Pings the DHT nodes peers told us about (BEP 5 `port`), each once.
async fn ping_nodes(dht: dht::Dht, mut rx: mpsc::Receiver<SocketAddr>) {
    let mut seen = HashSet::new();
    while let Some(addr) = rx.recv().await {
        if seen.len() >= 4096 {
            seen.clear();
        }
        if seen.insert(addr) {
            tracing::debug!(%addr, "pinging a peer's DHT node");
            if dht.ping(addr).is_err() {
                return;
            }
        }
    }
}
