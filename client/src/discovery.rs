//! Peer discovery for one torrent: its trackers (BEP 3/12/15), the session's DHT node
//! (BEP 5) and local service discovery (BEP 14), feeding the addresses they find to the
//! torrent.
//!
//! [`Session::add`](crate::Session::add) starts one discovery task per torrent. The task
//! - drives a [`tracker::TrackerSet`] over the torrent's `announce`/`announce-list`
//!   tiers (BEP 12: every tier at once, one tracker at a time within a tier, fail-over
//!   within it), and a second one over the extra trackers given in
//!   [`AddOptions::trackers`](crate::AddOptions), with the tracker crate's UDP and
//!   HTTP(S) clients. Announces carry
//!   the torrent's real `uploaded`/`downloaded`/`left`, `started` first, `completed` once
//!   when the download finishes (not for a torrent that was complete when added), regular
//!   announces at the tracker's interval (never more often than once a minute), and
//!   `stopped` when the torrent is [removed](crate::TorrentHandle::remove), closed or
//!   shut down, its session [closed](crate::Session::close) or dropped, or the torrent
//!   [paused](crate::TorrentHandle::pause) (after the announces in flight and a pending
//!   `completed` have been answered, so a
//!   download that ends right after completing is still counted by the tracker);
//! - unless the torrent is private (BEP 27), looks the info hash up in the DHT (again
//!   after 5 s, 10 s, ... up to 5 min while it finds nobody, else every 15 min) and
//!   announces our listening port there;
//! - unless the torrent is private, announces it with the session's LSD and hears
//!   others' LSD announces for it.
//!
//! A paused torrent does none of this: one added paused announces nothing until it is
//! [resumed](crate::TorrentHandle::resume); pausing tells the trackers `stopped`, stops
//! the DHT lookups and withdraws the torrent from LSD, and resuming starts over with
//! `started`. A magnet link or bare info hash is taken as public until its metadata
//! arrives: if the info dictionary says private, the DHT lookups end, the torrent is
//! withdrawn from LSD, and peers found there are no longer taken.
//!
//! Every address found goes to the torrent once (deduplicated, at most
//! [`MAX_FOUND`] per torrent, our own listening address skipped), through the same path as
//! [`TorrentHandle::add_peer`](crate::TorrentHandle::add_peer).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use tracker::net::{AnnouncerConfig, UdpTracker, http_announce_with};
use tracker::{
    Announce, AnnounceResponse, Event, Token, TrackerRequest, TrackerSet, TrackerSetEvent,
};

use crate::lsd::LsdRegistrar;
use crate::torrent::{Origin, PeerSink, Phase, Status};

/// Distinct peer addresses handed to a torrent at most; later ones are dropped.
pub const MAX_FOUND: usize = 2000;

/// How long [`TorrentHandle::remove`](crate::TorrentHandle::remove) waits for the trackers
/// to acknowledge `stopped`.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How often progress counters are passed to the trackers.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// DHT lookups while nobody is found: the first retry after this, doubling.
const DHT_RETRY_MIN: Duration = Duration::from_secs(5);
/// DHT lookups while nobody is found: the longest wait.
const DHT_RETRY_MAX: Duration = Duration::from_secs(300);
/// DHT lookups and announces once peers were found (or while seeding).
const DHT_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// The state of one tracker, as the discovery task saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrackerStatus {
    /// The announce URL.
    pub url: String,
    /// Announces it answered.
    pub announces: u32,
    /// Peers it returned, in all.
    pub peers: usize,
    /// The last failure (cleared when it answers again).
    pub error: Option<String>,
    /// The last `warning message`.
    pub warning: Option<String>,
}

/// Where a torrent's peers came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiscoveryStatus {
    /// Every tracker that answered or failed so far.
    pub trackers: Vec<TrackerStatus>,
    /// Distinct addresses from trackers.
    pub from_trackers: usize,
    /// Distinct addresses from the DHT.
    pub from_dht: usize,
    /// Distinct addresses from local service discovery.
    pub from_lsd: usize,
    /// DHT lookups finished.
    pub dht_lookups: u32,
    /// DHT nodes that accepted our last announce.
    pub dht_announced: usize,
    /// Whether every tracker has acknowledged `stopped` (or failed it): after the
    /// torrent left, or was paused (`false` again once it is resumed); `true` at once
    /// for a torrent that never announced.
    pub stopped: bool,
}

impl DiscoveryStatus {
    /// The last error of each tracker that has one, as `url: error` lines joined by `; `.
    pub fn tracker_errors(&self) -> Option<String> {
        let e: Vec<String> = self
            .trackers
            .iter()
            .filter_map(|t| t.error.as_ref().map(|e| format!("{}: {e}", t.url)))
            .collect();
        (!e.is_empty()).then(|| e.join("; "))
    }
}

/// What a torrent's discovery needs.
pub(crate) struct Params {
    pub(crate) info_hash: [u8; 20],
    pub(crate) peer_id: [u8; 20],
    /// Our listening port (0 when not listening: nothing is announced to the DHT).
    pub(crate) port: u16,
    /// Our listening address, to skip when a source returns it.
    pub(crate) listen: Option<SocketAddr>,
    /// The torrent's tiers (BEP 12).
    pub(crate) tiers: Vec<Vec<String>>,
    /// More trackers, announced to as one more, independent, tier.
    pub(crate) extra: Vec<String>,
    pub(crate) announcer: AnnouncerConfig,
    /// `None` for private torrents or without a DHT.
    pub(crate) dht: Option<dht::Dht>,
    /// Local service discovery (`None` for private torrents or without LSD).
    pub(crate) lsd: Option<LsdRegistrar>,
    pub(crate) status: watch::Receiver<Status>,
    pub(crate) sink: PeerSink,
}

/// A running discovery task. Dropping it asks it to stop (announcing `stopped`).
#[derive(Debug)]
pub(crate) struct Discovery {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    status: watch::Receiver<DiscoveryStatus>,
}

impl Discovery {
    pub(crate) fn status(&self) -> DiscoveryStatus {
        self.status.borrow().clone()
    }

    /// Asks the task to announce `stopped` and end.
    pub(crate) fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops and waits for the task (at most [`STOP_TIMEOUT`] plus a little).
    pub(crate) async fn finish(&mut self) {
        self.stop();
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(STOP_TIMEOUT + Duration::from_secs(1), t).await;
        }
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Keeps tracker URLs this client can announce to (`udp://`, `http://`, `https://`;
/// WebSocket trackers serve WebRTC peers), each once.
fn usable(url: &str, seen: &mut HashSet<String>) -> bool {
    let lower = url.to_ascii_lowercase();
    let ok = lower.starts_with("udp://")
        || lower.starts_with("http://")
        || lower.starts_with("https://");
    ok && seen.insert(url.to_string())
}

/// The tracker groups to announce to: the torrent's tiers, then the extra URLs as one
/// more group.
pub(crate) fn tracker_groups(tiers: &[Vec<String>], extra: &[String]) -> Vec<Vec<Vec<String>>> {
    let mut seen = HashSet::new();
    let mut groups = Vec::new();
    let tiers: Vec<Vec<String>> = tiers
        .iter()
        .map(|t| t.iter().filter(|u| usable(u, &mut seen)).cloned().collect())
        .filter(|t: &Vec<String>| !t.is_empty())
        .collect();
    if !tiers.is_empty() {
        groups.push(tiers);
    }
    let extra: Vec<String> = extra
        .iter()
        .filter(|u| usable(u, &mut seen))
        .cloned()
        .collect();
    if !extra.is_empty() {
        groups.push(vec![extra]);
    }
    groups
}

/// Starts discovery for a torrent.
pub(crate) fn spawn(p: Params) -> Discovery {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (status_tx, status_rx) = watch::channel(DiscoveryStatus::default());
    let task = tokio::spawn(run(p, stop_rx, status_tx));
    Discovery {
        stop: stop_tx,
        task: Some(task),
        status: status_rx,
    }
}

/// The deduplicating, bounded feed of addresses into the torrent.
struct Feed {
    seen: HashSet<SocketAddr>,
    listen: Option<SocketAddr>,
    sink: PeerSink,
}

impl Feed {
    /// Hands `addr` (found through `origin`) to the torrent if it is new; returns
    /// whether it was.
    fn offer(&mut self, addr: SocketAddr, origin: Origin) -> bool {
        if addr.port() == 0 || addr.ip().is_unspecified() || addr.ip().is_multicast() {
            return false;
        }
        // Our own listening address, as a tracker or the DHT returns it (a remote address
        // that is ours too is caught by the handshake's self-connection check).
        if let Some(me) = self.listen
            && addr.port() == me.port()
            && (addr.ip() == me.ip() || addr.ip().is_loopback())
        {
            return false;
        }
        if self.seen.len() >= MAX_FOUND || !self.seen.insert(addr) {
            return false;
        }
        self.sink.add(addr, origin);
        true
    }
}

/// What is left to download, for trackers. Before the metadata of a magnet link the size
/// is unknown: one block, so the tracker does not take us for a seed (seeds are given
/// no seeds).
fn left(s: &Status) -> u64 {
    if !s.complete && s.wanted_bytes == 0 {
        return UNKNOWN_LEFT;
    }
    s.wanted_bytes.saturating_sub(s.have_bytes)
}

/// `left` while the size is unknown.
const UNKNOWN_LEFT: u64 = 16 * 1024;

/// What ended an active period of discovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The torrent was paused: trackers were told `stopped`; wait for a resume.
    Paused,
    /// Discovery stops for good (removed, closed, shut down, session gone).
    Stop,
}

/// Discovery state that outlives pauses.
struct Ctx {
    info_hash: [u8; 20],
    peer_id: [u8; 20],
    port: u16,
    tiers: Vec<Vec<String>>,
    extra: Vec<String>,
    config: AnnouncerConfig,
    dht: Option<dht::Dht>,
    lsd: Option<LsdRegistrar>,
    status_rx: watch::Receiver<Status>,
    stop: watch::Receiver<bool>,
    status_tx: watch::Sender<DiscoveryStatus>,
    feed: Feed,
    ds: DiscoveryStatus,
    was_complete: bool,
    /// The metadata says private (BEP 27; a magnet link learns it late): the DHT and
    /// LSD are not used from then on.
    private: bool,
}

impl Ctx {
    fn publish(&self) {
        let ds = &self.ds;
        self.status_tx.send_if_modified(|old| {
            let changed = *old != *ds;
            if changed {
                *old = ds.clone();
            }
            changed
        });
    }

    fn stop_asked(&self) -> bool {
        *self.stop.borrow()
    }

    /// Notes a status that says the torrent is private.
    fn note_private(&mut self, s: &Status) -> bool {
        if s.private && !self.private {
            self.private = true;
            info!("the torrent is private (BEP 27): trackers only from now on");
            return true;
        }
        false
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn run(p: Params, stop: watch::Receiver<bool>, status_tx: watch::Sender<DiscoveryStatus>) {
    let mut status_rx = p.status;
    let first = status_rx.borrow_and_update().clone();
    let mut cx = Ctx {
        info_hash: p.info_hash,
        peer_id: p.peer_id,
        port: p.port,
        tiers: p.tiers,
        extra: p.extra,
        config: p.announcer,
        dht: p.dht,
        lsd: p.lsd,
        status_rx,
        stop,
        status_tx,
        feed: Feed {
            seen: HashSet::new(),
            listen: p.listen,
            sink: p.sink,
        },
        ds: DiscoveryStatus::default(),
        was_complete: first.complete,
        private: first.private,
    };
    let mut ran = false;
    loop {
        // A paused torrent announces nothing and looks nobody up.
        loop {
            if cx.stop_asked() {
                break;
            }
            let s = cx.status_rx.borrow_and_update().clone();
            cx.note_private(&s);
            if s.phase != Phase::Paused {
                break;
            }
            cx.publish();
            tokio::select! {
                r = cx.stop.changed() => if r.is_err() {
                    return;
                },
                r = cx.status_rx.changed() => if r.is_err() {
                    return;
                },
            }
        }
        if cx.stop_asked() {
            break;
        }
        ran = true;
        if active(&mut cx).await == End::Stop {
            break;
        }
    }
    if !ran {
        // Never announced: nothing to take back.
        cx.ds.stopped = true;
        cx.publish();
    }
}

/// Announces to the trackers (`started` first), looks the torrent up in the DHT and
/// hears LSD until the torrent is paused or discovery stops; then tells the trackers
/// `stopped` and waits for their answers (at most [`STOP_TIMEOUT`]).
async fn active(cx: &mut Ctx) -> End {
    let first = cx.status_rx.borrow_and_update().clone();
    if first.phase == Phase::Paused {
        return End::Paused;
    }
    cx.note_private(&first);
    cx.ds.stopped = false;
    debug!("discovery active");

    // Trackers: one TrackerSet per group, requests performed by spawned tasks (their
    // answers come back on this period's channel only).
    let (done_tx, mut done_rx) = mpsc::channel::<Done>(16);
    let mut groups: Vec<Group> = tracker_groups(&cx.tiers, &cx.extra)
        .into_iter()
        .map(|tiers| {
            let mut a = Announce::new(
                tracker::InfoHash(cx.info_hash),
                tracker::PeerId(cx.peer_id),
                cx.port,
            );
            a.uploaded = first.uploaded;
            a.downloaded = first.downloaded;
            a.left = left(&first);
            a.key = Some(rand::random());
            info!(trackers = ?tiers, "announcing");
            Group {
                set: TrackerSet::new(tiers, a, cx.config.set.clone()),
                in_flight: 0,
                completed_wanted: false,
                completed_pending: false,
                stop_wanted: false,
                udp: HashMap::new(),
            }
        })
        .collect();
    if first.complete && !cx.was_complete {
        // Completed while paused (or just before the resume).
        cx.was_complete = true;
        for g in &mut groups {
            g.completed_wanted = true;
        }
    }
    let config = cx.config.clone();

    // DHT and LSD, unless the torrent is private.
    let (found_tx, mut found_rx) = mpsc::channel::<SocketAddr>(256);
    let (dht_stat_tx, mut dht_stat_rx) = mpsc::channel::<(u32, usize)>(8);
    let (seed_tx, seed_rx) = watch::channel(first.complete);
    let mut dht_task = match (&cx.dht, cx.private) {
        (Some(dht), false) => {
            let id = dht::Id(cx.info_hash);
            let port = (cx.port != 0).then_some(cx.port);
            Some(AbortOnDrop(tokio::spawn(dht_loop(
                dht.clone(),
                id,
                port,
                seed_rx,
                found_tx,
                dht_stat_tx,
                cx.ds.dht_lookups,
            ))))
        }
        _ => None,
    };
    let mut lsd = match (&cx.lsd, cx.private) {
        (Some(l), false) => Some(l.register(cx.info_hash)),
        _ => None,
    };

    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.tick().await;
    let mut last_sent = (first.uploaded, first.downloaded, left(&first));
    let end = loop {
        let wake = drive(&mut groups, &config, &done_tx, &mut cx.ds, &mut cx.feed);
        cx.publish();
        let sleep = tokio::time::sleep_until(
            wake.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
                .into(),
        );
        tokio::select! {
            _ = sleep => {}
            Some(d) = done_rx.recv() => on_done(&mut groups, d, &mut cx.ds),
            r = cx.stop.changed() => {
                if r.is_err() || *cx.stop.borrow() {
                    break End::Stop;
                }
            }
            r = cx.status_rx.changed() => {
                if r.is_err() {
                    // The torrent task ended (shut down): leave the swarm.
                    break End::Stop;
                }
                let s = cx.status_rx.borrow_and_update().clone();
                if s.phase == Phase::Paused {
                    break End::Paused;
                }
                if cx.note_private(&s) {
                    // No more lookups or announces there, and nothing more taken from
                    // them (what is queued is dropped).
                    dht_task = None;
                    lsd = None;
                    while found_rx.try_recv().is_ok() {}
                }
                if s.complete && !cx.was_complete {
                    cx.was_complete = true;
                    let _ = seed_tx.send(true);
                    for g in &mut groups {
                        g.set.set_progress(s.uploaded, s.downloaded, 0);
                        g.completed_wanted = true;
                    }
                    last_sent = (s.uploaded, s.downloaded, 0);
                }
            }
            _ = tick.tick() => {
                let s = cx.status_rx.borrow().clone();
                let now = (s.uploaded, s.downloaded, left(&s));
                if now != last_sent {
                    last_sent = now;
                    for g in &mut groups {
                        g.set.set_progress(now.0, now.1, now.2);
                    }
                }
            }
            Some(addr) = found_rx.recv(), if dht_task.is_some() => {
                if cx.feed.offer(addr, Origin::Dht) {
                    cx.ds.from_dht += 1;
                    debug!(%addr, "found a peer through the DHT");
                }
            }
            Some(addr) = recv_opt(&mut lsd) => {
                if cx.feed.offer(addr, Origin::Lsd) {
                    cx.ds.from_lsd += 1;
                    debug!(%addr, "found a peer through LSD");
                }
            }
            Some((lookups, announced)) = dht_stat_rx.recv() => {
                cx.ds.dht_lookups = lookups;
                cx.ds.dht_announced = announced;
            }
        }
    };

    // Leave: DHT lookups end, LSD withdraws the torrent, trackers hear `stopped` with
    // the final counters.
    drop(dht_task);
    drop(lsd);
    let s = cx.status_rx.borrow().clone();
    for g in &mut groups {
        g.set.set_progress(s.uploaded, s.downloaded, left(&s));
        // Completed just before the stop: say so first.
        g.completed_wanted |= s.complete && !cx.was_complete;
        g.stop_wanted = true;
    }
    cx.was_complete |= s.complete;
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        let wake = drive(&mut groups, &config, &done_tx, &mut cx.ds, &mut cx.feed);
        if groups.iter().all(|g| g.set.is_done()) {
            break;
        }
        let wake = wake.map_or(deadline, |w| w.min(deadline));
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {
                if Instant::now() >= deadline {
                    warn!("trackers did not acknowledge `stopped` in time");
                    break;
                }
            }
            Some(d) = done_rx.recv() => on_done(&mut groups, d, &mut cx.ds),
        }
    }
    cx.ds.stopped = groups.iter().all(|g| g.set.is_done());
    cx.publish();
    info!(?end, "discovery ended");
    end
}

/// One [`TrackerSet`] and its driver state.
struct Group {
    set: TrackerSet,
    /// Requests of this set being performed (the set hands out one per tier).
    in_flight: usize,
    /// The download completed: `completed` is given to the set once nothing is in
    /// flight (the answer to an earlier announce would otherwise reset the tier's
    /// pending `completed` to a regular announce: `TrackerSet::handle_response` sets
    /// the event of a tier that answered to `None`).
    completed_wanted: bool,
    /// `completed` was given to the set and its announces are not all answered yet.
    completed_pending: bool,
    /// `stop` is wanted: it is given to the set once nothing is in flight or pending
    /// (the set would otherwise take the answer to an earlier announce of a tier as
    /// that tier's acknowledgement of `stopped`, or replace a pending `completed`).
    stop_wanted: bool,
    /// UDP trackers with their connection ids, while not in use by a request.
    udp: HashMap<String, UdpTracker>,
}

/// A performed request.
struct Done {
    group: usize,
    token: Token,
    event: Event,
    url: String,
    udp: Option<UdpTracker>,
    result: Result<AnnounceResponse, String>,
}

/// Gives the sets time, starts their requests, handles their events; returns when to
/// call again.
fn drive(
    groups: &mut [Group],
    config: &AnnouncerConfig,
    done: &mpsc::Sender<Done>,
    ds: &mut DiscoveryStatus,
    feed: &mut Feed,
) -> Option<Instant> {
    let now = Instant::now();
    let mut wake: Option<Instant> = None;
    for (i, g) in groups.iter_mut().enumerate() {
        if g.completed_wanted && g.in_flight == 0 {
            g.completed_wanted = false;
            g.completed_pending = true;
            g.set.completed(now);
        }
        if g.set.poll_timeout().is_some_and(|t| t <= now) {
            g.set.handle_timeout(now);
        }
        // Every tier's request, concurrently; then `stop` once all are answered (a
        // retry the set queued after a failure goes out first).
        let start = |g: &mut Group| {
            while let Some(req) = g.set.poll_request(now) {
                g.in_flight += 1;
                let udp = g.udp.remove(&req.url);
                tokio::spawn(perform(i, req, udp, config.clone(), done.clone()));
            }
        };
        start(g);
        if g.stop_wanted && g.in_flight == 0 && !g.completed_pending && !g.completed_wanted {
            g.set.stop(now);
            start(g);
        }
        while let Some(ev) = g.set.poll_event() {
            on_tracker_event(ev, ds, feed);
        }
        if let Some(t) = g.set.poll_timeout() {
            wake = Some(wake.map_or(t, |w| w.min(t)));
        }
    }
    wake
}

fn on_done(groups: &mut [Group], d: Done, ds: &mut DiscoveryStatus) {
    let Some(g) = groups.get_mut(d.group) else {
        return;
    };
    g.in_flight = g.in_flight.saturating_sub(1);
    if let Some(u) = d.udp {
        g.udp.insert(d.url.clone(), u);
    }
    // Every request out since `completed` was given has been answered (a tier that
    // failed it and moved on to its next tracker has that request out again after
    // `drive`, which holds `stop` back until it is answered too).
    if g.in_flight == 0 {
        g.completed_pending = false;
    }
    match &d.result {
        Ok(r) => {
            debug!(url = %d.url, event = ?d.event, peers = r.peers.len(), interval = r.interval, "announced")
        }
        Err(e) => debug!(url = %d.url, event = ?d.event, error = %e, "announce failed"),
    }
    // A success with no peers gives no set event: count it here.
    if d.result.is_ok() {
        let t = tracker_entry(ds, &d.url);
        t.announces += 1;
        t.error = None;
    }
    g.set.handle_response(Instant::now(), d.token, d.result);
}

/// Performs one announce with the tracker crate's clients.
async fn perform(
    group: usize,
    req: TrackerRequest,
    udp: Option<UdpTracker>,
    config: AnnouncerConfig,
    done: mpsc::Sender<Done>,
) {
    let lower = req.url.to_ascii_lowercase();
    let (result, udp) = if lower.starts_with("udp://") {
        let t = match udp {
            Some(t) => Ok(t),
            None => UdpTracker::connect(&req.url, config.udp.clone())
                .await
                .map_err(|e| e.to_string()),
        };
        match t {
            Ok(mut t) => {
                let r = t
                    .announce(req.announce.clone())
                    .await
                    .map_err(|e| e.to_string());
                (r, Some(t))
            }
            Err(e) => (Err(e), None),
        }
    } else if lower.starts_with("http://") || lower.starts_with("https://") {
        let r = http_announce_with(&req.url, &req.announce, &config.http)
            .await
            .map_err(|e| e.to_string());
        (r, None)
    } else {
        (Err("unsupported tracker scheme".to_string()), None)
    };
    let _ = done
        .send(Done {
            group,
            token: req.token,
            event: req.announce.event,
            url: req.url,
            udp,
            result,
        })
        .await;
}

fn tracker_entry<'a>(ds: &'a mut DiscoveryStatus, url: &str) -> &'a mut TrackerStatus {
    let i = match ds.trackers.iter().position(|t| t.url == url) {
        Some(i) => i,
        None => {
            ds.trackers.push(TrackerStatus {
                url: url.to_string(),
                ..TrackerStatus::default()
            });
            ds.trackers.len() - 1
        }
    };
    &mut ds.trackers[i]
}

fn on_tracker_event(ev: TrackerSetEvent, ds: &mut DiscoveryStatus, feed: &mut Feed) {
    match ev {
        TrackerSetEvent::Peers { url, peers } => {
            let n = peers
                .iter()
                .filter(|a| feed.offer(**a, Origin::Tracker))
                .count();
            ds.from_trackers += n;
            info!(%url, peers = peers.len(), new = n, "tracker peers");
            let t = tracker_entry(ds, &url);
            t.peers += peers.len();
            t.error = None;
        }
        TrackerSetEvent::Failed { url, error } => {
            warn!(%url, %error, "tracker announce failed");
            tracker_entry(ds, &url).error = Some(error);
        }
        TrackerSetEvent::Warning { url, message } => {
            warn!(%url, %message, "tracker warning");
            tracker_entry(ds, &url).warning = Some(message);
        }
        // `Stopped` is read from the set itself; `Signal` comes from WebSocket
        // trackers, which this driver does not use.
        _ => {}
    }
}

/// Looks `id` up and announces `port` in the DHT, forever (the caller aborts it);
/// `lookups` counts on from the lookups of earlier periods.
async fn dht_loop(
    dht: dht::Dht,
    id: dht::Id,
    port: Option<u16>,
    mut seeding: watch::Receiver<bool>,
    found: mpsc::Sender<SocketAddr>,
    stats: mpsc::Sender<(u32, usize)>,
    mut lookups: u32,
) {
    // No wait for the bootstrap lookup: a lookup on a small table starts from the
    // bootstrap nodes too, and peers arrive as they are found (the bootstrap lookup may
    // wait seconds on nodes that left).
    let mut retry = DHT_RETRY_MIN;
    loop {
        let mut n = 0usize;
        let mut stream = dht.get_peers(id);
        while let Some(addr) = stream.next().await {
            n += 1;
            if found.send(addr).await.is_err() {
                return;
            }
        }
        lookups += 1;
        let seed = *seeding.borrow_and_update();
        let mut announced = 0;
        if let Some(port) = port {
            match dht.announce_as(id, Some(port), seed).await {
                Ok(r) => announced = r.announced,
                Err(e) => {
                    warn!(error = %e, "the DHT stopped");
                    return;
                }
            }
        }
        debug!(peers = n, announced, "DHT lookup done");
        let _ = stats.try_send((lookups, announced));
        let wait = if n > 0 || seed {
            DHT_INTERVAL
        } else {
            let w = retry;
            retry = (retry * 2).min(DHT_RETRY_MAX);
            w
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            // Finishing the download makes us a seed: say so at the next announce.
            _ = seeding.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn groups_keep_tiers_drop_unusable_and_duplicates() {
        let tiers = vec![
            s(&[
                "udp://a:1/announce",
                "wss://w/announce",
                "http://b/announce",
            ]),
            s(&["ws://x"]),
            s(&["https://c/announce", "udp://a:1/announce"]),
        ];
        let extra = s(&["http://b/announce", "udp://d:2", "magnet:?", "UDP://E:3"]);
        let g = tracker_groups(&tiers, &extra);
        assert_eq!(
            g,
            vec![
                vec![
                    s(&["udp://a:1/announce", "http://b/announce"]),
                    s(&["https://c/announce"]),
                ],
                vec![s(&["udp://d:2", "UDP://E:3"])],
            ]
        );
        assert!(tracker_groups(&[], &[]).is_empty());
        assert_eq!(tracker_groups(&[], &s(&["udp://z:1"])).len(), 1);
    }

    /// A fake HTTP tracker: records each announce's query parameters; the first answer
    /// is held back `first_delay`.
    async fn fake_tracker(
        first_delay: Duration,
    ) -> (String, mpsc::UnboundedReceiver<HashMap<String, String>>) {
        fake_tracker_gated(Box::pin(tokio::time::sleep(first_delay))).await
    }

    /// A fake HTTP tracker whose first answer waits for `first`.
    async fn fake_tracker_gated(
        first: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    ) -> (String, mpsc::UnboundedReceiver<HashMap<String, String>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/announce", l.local_addr().unwrap());
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut first = Some(first);
            loop {
                let Ok((mut c, _)) = l.accept().await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&buf).into_owned();
                let query = text
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.split_once('?'))
                    .map(|(_, q)| q.to_string())
                    .unwrap_or_default();
                let params: HashMap<String, String> = query
                    .split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                if let Some(gate) = first.take() {
                    gate.await;
                }
                let _ = tx.send(params);
                let body = b"d8:intervali1800e5:peers0:e";
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = c.write_all(head.as_bytes()).await;
                let _ = c.write_all(body).await;
            }
        });
        (url, rx)
    }

    /// started (with `left`), then completed (even though the download finished while
    /// `started` was still unanswered), then stopped, each with the torrent's counters.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn announces_started_completed_stopped_with_real_counters() {
        let (url, mut seen) = fake_tracker(Duration::from_millis(300)).await;
        let st = |have: u64, down: u64, up: u64| Status {
            have_bytes: have,
            wanted_bytes: 1000,
            downloaded: down,
            uploaded: up,
            complete: have == 1000,
            ..Status::default()
        };
        let (status_tx, status_rx) = watch::channel(st(0, 0, 0));
        let (sink, _peers) = PeerSink::channel();
        let mut d = spawn(Params {
            info_hash: [7; 20],
            peer_id: [8; 20],
            port: 6881,
            listen: None,
            tiers: vec![vec![url.clone()]],
            extra: Vec::new(),
            announcer: AnnouncerConfig::default(),
            dht: None,
            lsd: None,
            status: status_rx,
            sink,
        });
        // Completes while `started` is in flight, then is removed at once.
        tokio::time::sleep(Duration::from_millis(50)).await;
        status_tx.send(st(1000, 1200, 300)).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        d.finish().await;
        let mut got = Vec::new();
        while let Ok(p) = seen.try_recv() {
            got.push(p);
        }
        let events: Vec<&str> = got
            .iter()
            .map(|p| p.get("event").map_or("", String::as_str))
            .collect();
        assert_eq!(events, ["started", "completed", "stopped"], "{got:?}");
        assert_eq!(got[0]["left"], "1000");
        assert_eq!(got[0]["port"], "6881");
        assert_eq!(
            (got[1]["left"].as_str(), got[1]["downloaded"].as_str()),
            ("0", "1200")
        );
        assert_eq!(
            (got[2]["uploaded"].as_str(), got[2]["left"].as_str()),
            ("300", "0")
        );
        let ds = d.status();
        assert!(ds.stopped, "{ds:?}");
        assert_eq!(ds.trackers[0].announces, 3);
        drop(status_tx);
    }

    /// Two tiers are announced to concurrently (the second answers while the first
    /// holds its answer back), and each hears started, completed,
    /// stopped in order, even though the download finishes and the torrent is removed
    /// while the first tier's `started` is unanswered (the set alone would turn that
    /// tier's pending `completed` back into a regular announce and take the answer to
    /// `started` as its `stopped`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_tier_hears_started_completed_stopped() {
        let gate = Arc::new(tokio::sync::Notify::new());
        let g = gate.clone();
        let (slow, mut slow_seen) =
            fake_tracker_gated(Box::pin(async move { g.notified().await })).await;
        let (fast, mut fast_seen) = fake_tracker(Duration::ZERO).await;
        let st = |have: u64| Status {
            have_bytes: have,
            wanted_bytes: 1000,
            downloaded: have,
            complete: have == 1000,
            ..Status::default()
        };
        let (status_tx, status_rx) = watch::channel(st(0));
        let (sink, _peers) = PeerSink::channel();
        let mut d = spawn(Params {
            info_hash: [7; 20],
            peer_id: [8; 20],
            port: 6881,
            listen: None,
            tiers: vec![vec![slow.clone()], vec![fast.clone()]],
            extra: Vec::new(),
            announcer: AnnouncerConfig::default(),
            dht: None,
            lsd: None,
            status: status_rx,
            sink,
        });
        let first = tokio::time::timeout(Duration::from_secs(5), fast_seen.recv())
            .await
            .expect("the second tier is announced while the first is unanswered")
            .unwrap();
        assert_eq!(first["event"], "started");
        status_tx.send(st(1000)).unwrap();
        d.stop();
        gate.notify_one();
        d.finish().await;
        let events = |rx: &mut mpsc::UnboundedReceiver<HashMap<String, String>>| {
            let mut got = Vec::new();
            while let Ok(p) = rx.try_recv() {
                got.push(p.get("event").cloned().unwrap_or_default());
            }
            got
        };
        assert_eq!(events(&mut slow_seen), ["started", "completed", "stopped"]);
        assert_eq!(events(&mut fast_seen), ["completed", "stopped"]);
        assert!(d.status().stopped);
        drop(status_tx);
    }

    #[tokio::test]
    async fn feed_dedups_skips_self_and_bounds() {
        let (sink, mut rx) = PeerSink::channel();
        let me: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let mut feed = Feed {
            seen: HashSet::new(),
            listen: Some(me),
            sink,
        };
        assert!(!feed.offer(me, Origin::Dht), "our own address");
        assert!(
            !feed.offer("127.0.0.2:7000".parse().unwrap(), Origin::Dht),
            "loopback us"
        );
        let mut any = Feed {
            seen: HashSet::new(),
            listen: Some("0.0.0.0:7000".parse().unwrap()),
            sink: feed.sink.clone(),
        };
        assert!(
            !any.offer("127.0.0.1:7000".parse().unwrap(), Origin::Dht),
            "loopback us"
        );
        assert!(
            any.offer("10.9.9.9:7000".parse().unwrap(), Origin::Dht),
            "a remote peer on our port"
        );
        assert!(!feed.offer("0.0.0.0:1".parse().unwrap(), Origin::Dht));
        assert!(!feed.offer("10.0.0.1:0".parse().unwrap(), Origin::Dht));
        assert!(!feed.offer("239.1.1.1:5".parse().unwrap(), Origin::Dht));
        assert!(feed.offer("127.0.0.1:7001".parse().unwrap(), Origin::Dht));
        assert!(
            !feed.offer("127.0.0.1:7001".parse().unwrap(), Origin::Dht),
            "duplicate"
        );
        for i in 0..(MAX_FOUND as u32 + 10) {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            feed.offer(SocketAddr::new(ip.into(), 1), Origin::Dht);
        }
        assert_eq!(feed.seen.len(), MAX_FOUND);
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, MAX_FOUND + 1);
    }
}
