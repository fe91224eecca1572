//! The tokio driver: one task owns the UDP socket and the [`Node`], moving bytes and
//! time; [`Dht`] handles talk to it over channels.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::id::Id;
use crate::item::{Item, ItemError};
use crate::krpc::NodeInfo;
use crate::lookup::{LookupId, LookupStats};
use crate::node::{Config, Event, Node, NodeStats, ScrapeEstimate};
use crate::routing::TableStats;
use crate::state::SavedState;

/// Public bootstrap routers used when the builder is given none.
pub const DEFAULT_BOOTSTRAP: [&str; 3] = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
];

/// How often the state file is rewritten while running.
const SAVE_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Errors of the [`Dht`] driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Binding, sending, or reading/writing the state file failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// No bootstrap address could be resolved.
    #[error("could not resolve any bootstrap node")]
    NoBootstrap,
    /// The BEP 44 item is invalid.
    #[error("invalid item: {0}")]
    Item(#[from] ItemError),
    /// The driver task has stopped.
    #[error("the DHT task has stopped")]
    Stopped,
}

/// Configures and starts a [`Dht`].
#[derive(Debug, Clone)]
pub struct Builder {
    bind: SocketAddr,
    bootstrap: Option<Vec<String>>,
    id: Option<Id>,
    state_file: Option<PathBuf>,
    config: Config,
    seed: Option<u64>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            bind: SocketAddr::from(([0, 0, 0, 0], 0)),
            bootstrap: None,
            id: None,
            state_file: None,
            config: Config::default(),
            seed: None,
        }
    }
}

impl Builder {
    /// The UDP address to bind (default `0.0.0.0:0`, any port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }
    /// Bootstrap nodes. Without this call the public routers in [`DEFAULT_BOOTSTRAP`]
    /// are used; an empty list starts a node that waits to be contacted.
    pub fn bootstrap<I: IntoIterator<Item = SocketAddr>>(mut self, nodes: I) -> Self {
        self.bootstrap = Some(nodes.into_iter().map(|a| a.to_string()).collect());
        self
    }
    /// Bootstrap nodes as `host:port` names, resolved when the node starts.
    pub fn bootstrap_hosts<I: IntoIterator<Item = S>, S: Into<String>>(mut self, hosts: I) -> Self {
        self.bootstrap = Some(hosts.into_iter().map(Into::into).collect());
        self
    }
    /// The node id (default: from the state file, else random).
    pub fn id(mut self, id: Id) -> Self {
        self.id = Some(id);
        self
    }
    /// BEP 43 read-only mode: query others, answer nobody.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.config.read_only = read_only;
        self
    }
    /// Where to save the id and routing table (loaded at start, saved every 5 minutes
    /// and at shutdown).
    pub fn state_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.state_file = Some(path.into());
        self
    }
    /// BEP 42: switch to an id derived from our external address once it is learnt
    /// (see [`Config::secure_id`]); [`Dht::id`] follows.
    pub fn secure_id(mut self, secure: bool) -> Self {
        self.config.secure_id = secure;
        self
    }
    /// BEP 42: only add nodes whose id matches their public address.
    pub fn enforce_bep42(mut self, enforce: bool) -> Self {
        self.config.enforce_bep42 = enforce;
        self
    }
    /// Lookup parallelism (default 3).
    pub fn alpha(mut self, alpha: usize) -> Self {
        self.config.alpha = alpha.max(1);
        self
    }
    /// Replaces the whole node configuration (bootstrap nodes set here are kept and
    /// added to those of [`Builder::bootstrap`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }
    /// Seed for the node's RNG (default: from the system).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Binds the socket, loads the state file, resolves the bootstrap nodes and starts
    /// the node (it bootstraps in the background; see [`Dht::bootstrapped`]).
    pub async fn build(self) -> Result<Dht, Error> {
        let socket = UdpSocket::bind(self.bind).await?;
        let local_addr = socket.local_addr()?;
        let saved = match &self.state_file {
            Some(p) => match tokio::fs::read(p).await {
                Ok(b) => SavedState::from_bytes(&b).ok(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let hosts: Vec<String> = match self.bootstrap {
            Some(h) => h,
            None => DEFAULT_BOOTSTRAP.iter().map(|s| s.to_string()).collect(),
        };
        let mut config = self.config;
        config.ipv6 = local_addr.is_ipv6();
        let had_hosts = !hosts.is_empty();
        for h in hosts {
            if let Ok(addrs) = tokio::net::lookup_host(h.as_str()).await {
                config
                    .bootstrap
                    .extend(addrs.filter(|a| a.is_ipv6() == local_addr.is_ipv6()));
            }
        }
        if had_hosts
            && config.bootstrap.is_empty()
            && saved.as_ref().is_none_or(|s| s.nodes.is_empty())
        {
            return Err(Error::NoBootstrap);
        }
        let seed = self.seed.unwrap_or_else(rand::random);
        let id = self
            .id
            .or(saved.as_ref().map(|s| s.id))
            .unwrap_or_else(|| Id::random(&mut rand::rng()));
        let now = Instant::now();
        let mut node = Node::new(config, id, now, seed);
        if let Some(s) = &saved {
            for n in &s.nodes {
                node.add_node(*n, now);
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let (boot_tx, boot_rx) = tokio::sync::watch::channel(false);
        let boot = node.bootstrap(now);
        let shared_id = Arc::new(std::sync::Mutex::new(id));
        let driver = Driver {
            id: shared_id.clone(),
            node,
            socket,
            rx,
            waiters: HashMap::new(),
            boot: Some(boot),
            boot_tx,
            state_file: self.state_file,
        };
        let task = tokio::spawn(driver.run());
        Ok(Dht {
            inner: Arc::new(Inner {
                tx,
                local_addr,
                id: shared_id,
                task: std::sync::Mutex::new(Some(task)),
            }),
            boot_rx,
        })
    }
}

/// What a finished lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupResult {
    /// The closest nodes that answered, closest first.
    pub closest: Vec<NodeInfo>,
    /// For `announce`: how many nodes accepted it.
    pub announced: usize,
    /// Message counts.
    pub stats: LookupStats,
    /// For `get`: the verified item found (the highest `seq` for mutable items).
    pub item: Option<Item>,
    /// For `scrape`: the estimated swarm size (BEP 33).
    pub scrape: Option<ScrapeEstimate>,
}

/// A node's answer to `sample_infohashes` (BEP 51).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Samples {
    /// False if the node did not answer.
    pub ok: bool,
    /// A sample of the info hashes it stores.
    pub samples: Vec<Id>,
    /// How many it stores in total.
    pub num: Option<i64>,
    /// Seconds to wait before asking it again.
    pub interval: Option<i64>,
    /// Nodes close to the target.
    pub nodes: Vec<NodeInfo>,
}

/// Routing table and message counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhtStats {
    /// Routing table counts.
    pub table: TableStats,
    /// Message counters.
    pub node: NodeStats,
    /// Our external address as voted by other nodes (BEP 42), once known.
    pub external_ip: Option<std::net::IpAddr>,
}

enum Command {
    GetPeers(Id, mpsc::UnboundedSender<SocketAddr>),
    Announce(Id, Option<u16>, bool, oneshot::Sender<LookupResult>),
    Scrape(Id, oneshot::Sender<LookupResult>),
    FindNode(Id, oneshot::Sender<LookupResult>),
    Get(Id, Vec<u8>, oneshot::Sender<LookupResult>),
    Put(Box<Item>, Option<i64>, oneshot::Sender<LookupResult>),
    Stats(oneshot::Sender<DhtStats>),
    Ping(SocketAddr),
    ReadOnly(bool),
    Sample(SocketAddr, Id, oneshot::Sender<Samples>),
    Save(oneshot::Sender<io::Result<()>>),
    Shutdown(oneshot::Sender<()>),
}

struct Waiter {
    peers: Option<mpsc::UnboundedSender<SocketAddr>>,
    done: Option<oneshot::Sender<LookupResult>>,
    item: Option<Item>,
    scrape: Option<ScrapeEstimate>,
    sample: Option<oneshot::Sender<Samples>>,
}

impl Waiter {
    fn done(done: oneshot::Sender<LookupResult>) -> Waiter {
        Waiter {
            peers: None,
            done: Some(done),
            item: None,
            scrape: None,
            sample: None,
        }
    }
}

struct Inner {
    tx: mpsc::UnboundedSender<Command>,
    local_addr: SocketAddr,
    id: Arc<std::sync::Mutex<Id>>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A running DHT node on a UDP socket. Cheap to clone; the node stops (saving its
/// state) when every handle is dropped or [`Dht::shutdown`] is called.
///
/// ```no_run
/// # async fn f() -> Result<(), rivulet_dht::Error> {
/// use rivulet_dht::{Dht, Hash};
/// let dht = Dht::builder().build().await?; // public bootstrap routers
/// dht.bootstrapped().await;
/// let room = Hash::from_name("my chat room");
/// dht.announce(room, Some(4000)).await?;
/// let mut peers = dht.get_peers(room);
/// while let Some(peer) = peers.next().await {
///     println!("{peer}");
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Dht {
    inner: Arc<Inner>,
    boot_rx: tokio::sync::watch::Receiver<bool>,
}

impl std::fmt::Debug for Dht {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dht")
            .field("local_addr", &self.inner.local_addr)
            .field("id", &self.id())
            .finish()
    }
}

/// Peers found by [`Dht::get_peers`], delivered while the lookup runs; ends when the
/// lookup has converged. Dropping it cancels the lookup.
#[derive(Debug)]
pub struct PeerStream {
    rx: mpsc::UnboundedReceiver<SocketAddr>,
}

impl PeerStream {
    /// The next peer, or `None` when the lookup is over.
    pub async fn next(&mut self) -> Option<SocketAddr> {
        self.rx.recv().await
    }
    /// Poll form of [`PeerStream::next`] (the `Stream::poll_next` contract).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<SocketAddr>> {
        self.rx.poll_recv(cx)
    }
    /// Collects every peer until the lookup ends.
    pub async fn collect(mut self) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        while let Some(p) = self.next().await {
            out.push(p);
        }
        out
    }
}

impl futures_core::Stream for PeerStream {
    type Item = SocketAddr;
    fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SocketAddr>> {
        self.get_mut().rx.poll_recv(cx)
    }
}

impl Dht {
    /// A builder with defaults: bind `0.0.0.0:0`, public bootstrap routers, random id.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The node id (it may change once, with [`Builder::secure_id`]).
    pub fn id(&self) -> Id {
        self.inner.id.lock().map_or(Id::ZERO, |g| *g)
    }

    fn send(&self, c: Command) -> Result<(), Error> {
        self.inner.tx.send(c).map_err(|_| Error::Stopped)
    }

    /// Waits until the initial bootstrap lookup has finished.
    pub async fn bootstrapped(&self) {
        let mut rx = self.boot_rx.clone();
        let _ = rx.wait_for(|b| *b).await;
    }

    /// Looks up peers for `info_hash`, streaming them as they arrive.
    pub fn get_peers(&self, info_hash: Id) -> PeerStream {
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = self.send(Command::GetPeers(info_hash, tx));
        PeerStream { rx }
    }

    /// Announces us for `info_hash` on `port` (or, with `None`, on this socket's port as
    /// the others see it: `implied_port`), after a `get_peers` lookup.
    pub async fn announce(&self, info_hash: Id, port: Option<u16>) -> Result<LookupResult, Error> {
        self.announce_as(info_hash, port, false).await
    }

    /// Like [`Dht::announce`], saying whether we are a seed (BEP 33 `seed`).
    pub async fn announce_as(
        &self,
        info_hash: Id,
        port: Option<u16>,
        seed: bool,
    ) -> Result<LookupResult, Error> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Announce(info_hash, port, seed, tx))?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// BEP 33: estimates how many seeds and downloaders `info_hash` has.
    pub async fn scrape(&self, info_hash: Id) -> Result<ScrapeEstimate, Error> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Scrape(info_hash, tx))?;
        Ok(rx
            .await
            .map_err(|_| Error::Stopped)?
            .scrape
            .unwrap_or_default())
    }

    /// Finds the nodes closest to `target`.
    pub async fn find_node(&self, target: Id) -> Result<LookupResult, Error> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::FindNode(target, tx))?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Stores a BEP 44 item (see [`Item::immutable`], [`Item::mutable`]) on the nodes
    /// closest to its target, with optional compare-and-swap on the previous `seq`.
    pub async fn put(&self, item: Item, cas: Option<i64>) -> Result<LookupResult, Error> {
        item.check()?;
        let (tx, rx) = oneshot::channel();
        self.send(Command::Put(Box::new(item), cas, tx))?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Stores an immutable item holding the bencoded value `v`; returns its target.
    pub async fn put_immutable(&self, v: Vec<u8>) -> Result<(Id, LookupResult), Error> {
        let item = Item::immutable(v)?;
        let target = item.target();
        Ok((target, self.put(item, None).await?))
    }

    /// Signs and stores a mutable item (ed25519 seed `secret`, bencoded `v`, `seq`,
    /// `salt`); returns its target.
    pub async fn put_mutable(
        &self,
        secret: &[u8; 32],
        v: Vec<u8>,
        seq: i64,
        salt: &[u8],
    ) -> Result<(Id, LookupResult), Error> {
        let item = Item::mutable(secret, v, seq, salt)?;
        let target = item.target();
        Ok((target, self.put(item, None).await?))
    }

    /// Looks up a BEP 44 item: an immutable one by its target, a mutable one by
    /// [`Item::mutable_target`] with its `salt`. Returns the verified item (the highest
    /// `seq` seen for mutable ones), if any node had it.
    pub async fn get(&self, target: Id, salt: &[u8]) -> Result<Option<Item>, Error> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Get(target, salt.to_vec(), tx))?;
        Ok(rx.await.map_err(|_| Error::Stopped)?.item)
    }

    /// BEP 51: asks the node at `addr` for a sample of the info hashes it stores.
    pub async fn sample_infohashes(&self, addr: SocketAddr, target: Id) -> Result<Samples, Error> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Sample(addr, target, tx))?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// BEP 43: switches read-only mode on or off.
    pub fn set_read_only(&self, read_only: bool) -> Result<(), Error> {
        self.send(Command::ReadOnly(read_only))
    }

    /// Pings `addr`; if it answers it joins the routing table.
    pub fn ping(&self, addr: SocketAddr) -> Result<(), Error> {
        self.send(Command::Ping(addr))
    }

    /// Routing table and message counters.
    pub async fn stats(&self) -> Result<DhtStats, Error> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Stats(tx))?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Writes the state file now (no-op without one).
    pub async fn save(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Save(tx))?;
        Ok(rx.await.map_err(|_| Error::Stopped)??)
    }

    /// Stops the node, saving its state; other handles see [`Error::Stopped`].
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
        let task = self.inner.task.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

struct Driver {
    id: Arc<std::sync::Mutex<Id>>,
    node: Node,
    socket: UdpSocket,
    rx: mpsc::UnboundedReceiver<Command>,
    waiters: HashMap<LookupId, Waiter>,
    boot: Option<LookupId>,
    boot_tx: tokio::sync::watch::Sender<bool>,
    state_file: Option<PathBuf>,
}

impl Driver {
    async fn run(mut self) {
        let mut buf = vec![0u8; 65_536];
        let mut next_save = Instant::now() + SAVE_INTERVAL;
        loop {
            while let Some(t) = self.node.poll_transmit() {
                // A send error (unreachable host, full buffer) is a lost datagram.
                let _ = self.socket.send_to(&t.bytes, t.to).await;
            }
            while let Some(e) = self.node.poll_event() {
                self.dispatch(e);
            }
            let deadline = self
                .node
                .poll_timeout()
                .map_or(next_save, |t| t.min(next_save));
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => {
                    if let Ok((n, from)) = r {
                        self.node.handle_datagram(Instant::now(), from, &buf[..n]);
                    }
                }
                c = self.rx.recv() => match c {
                    None => break,
                    Some(Command::Shutdown(done)) => {
                        let _ = self.save().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(c) => self.command(c).await,
                },
                () = tokio::time::sleep_until(deadline.into()) => {
                    let now = Instant::now();
                    self.node.handle_timeout(now);
                    if now >= next_save {
                        next_save = now + SAVE_INTERVAL;
                        let _ = self.save().await;
                    }
                }
            }
        }
        let _ = self.save().await;
    }

    async fn command(&mut self, c: Command) {
        let now = Instant::now();
        match c {
            Command::GetPeers(hash, tx) => {
                let lid = self.node.get_peers(now, hash);
                self.waiters.insert(
                    lid,
                    Waiter {
                        peers: Some(tx),
                        done: None,
                        item: None,
                        scrape: None,
                        sample: None,
                    },
                );
            }
            Command::Announce(hash, port, seed, done) => {
                let lid = self.node.announce(now, hash, port, seed);
                self.waiters.insert(lid, Waiter::done(done));
            }
            Command::Scrape(hash, done) => {
                let lid = self.node.scrape(now, hash);
                self.waiters.insert(lid, Waiter::done(done));
            }
            Command::FindNode(target, done) => {
                let lid = self.node.find_node(now, target);
                self.waiters.insert(lid, Waiter::done(done));
            }
            Command::Get(target, salt, done) => {
                let lid = self.node.get_item(now, target, &salt);
                self.waiters.insert(lid, Waiter::done(done));
            }
            Command::Put(item, cas, done) => {
                let lid = self.node.put_item(now, *item, cas);
                self.waiters.insert(lid, Waiter::done(done));
            }
            Command::Stats(tx) => {
                let _ = tx.send(DhtStats {
                    table: self.node.table_stats(now),
                    node: self.node.stats(),
                    external_ip: self.node.external_ip(),
                });
            }
            Command::Ping(addr) => self.node.ping(now, addr),
            Command::ReadOnly(ro) => self.node.set_read_only(ro),
            Command::Sample(addr, target, tx) => {
                let lid = self.node.sample_infohashes(now, addr, target);
                self.waiters.insert(
                    lid,
                    Waiter {
                        peers: None,
                        done: None,
                        item: None,
                        scrape: None,
                        sample: Some(tx),
                    },
                );
            }
            Command::Save(tx) => {
                let r = self.save().await;
                let _ = tx.send(r);
            }
            Command::Shutdown(_) => {}
        }
    }

    fn dispatch(&mut self, e: Event) {
        match e {
            Event::Peers { lookup, peers } => {
                let Some(w) = self.waiters.get_mut(&lookup) else {
                    return;
                };
                if let Some(tx) = &w.peers {
                    if peers.into_iter().any(|p| tx.send(p).is_err()) {
                        // The stream was dropped: stop the lookup.
                        self.waiters.remove(&lookup);
                        self.node.cancel(lookup);
                    }
                }
            }
            Event::LookupDone {
                lookup,
                closest,
                announced,
                stats,
                ..
            } => {
                if self.boot == Some(lookup) {
                    self.boot = None;
                    let _ = self.boot_tx.send(true);
                }
                if let Some(w) = self.waiters.remove(&lookup) {
                    if let Some(done) = w.done {
                        let _ = done.send(LookupResult {
                            closest,
                            announced,
                            stats,
                            item: w.item,
                            scrape: w.scrape,
                        });
                    }
                }
            }
            Event::Samples {
                lookup,
                ok,
                samples,
                num,
                interval,
                nodes,
                ..
            } => {
                if let Some(tx) = self.waiters.remove(&lookup).and_then(|w| w.sample) {
                    let _ = tx.send(Samples {
                        ok,
                        samples,
                        num,
                        interval,
                        nodes,
                    });
                }
            }
            Event::Scrape { lookup, estimate } => {
                if let Some(w) = self.waiters.get_mut(&lookup) {
                    w.scrape = Some(estimate);
                }
            }
            Event::IdChanged(id) => {
                if let Ok(mut g) = self.id.lock() {
                    *g = id;
                }
            }
            Event::Item { lookup, item } => {
                if let Some(w) = self.waiters.get_mut(&lookup) {
                    w.item = Some(item);
                }
            }
            _ => {}
        }
    }

    async fn save(&self) -> io::Result<()> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let state = SavedState {
            id: self.node.id(),
            nodes: self.node.routing_table().iter().map(|e| e.info).collect(),
        };
        let tmp = path.with_extension("tmp");
        tokio::fs::write(&tmp, state.to_bytes()).await?;
        tokio::fs::rename(&tmp, path).await
    }
}
