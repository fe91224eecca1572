//! The tokio driver of [`TrackerSet`]: one task announcing a torrent to all its trackers.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{HttpClientConfig, UdpTracker, WsTracker, http_announce_with};
use crate::multi::{Token, TrackerRequest, TrackerSet, TrackerSetConfig, TrackerSetEvent};
use crate::types::{Announce, AnnounceResponse, InfoHash};
use crate::udp::UdpClientConfig;
use crate::ws::{ClientMessage, ServerMessage, WsAnnounce};

/// Settings of an [`Announcer`].
#[derive(Clone, Debug)]
pub struct AnnouncerConfig {
    /// Backoff and intervals.
    pub set: TrackerSetConfig,
    /// UDP retransmission (the default gives up after 8 retransmissions, over an hour; a
    /// multi-tracker client usually wants fewer, e.g. `max_retransmits: 2`).
    pub udp: UdpClientConfig,
    /// HTTP limits.
    pub http: HttpClientConfig,
    /// How long a WebSocket tracker may take to answer an announce (default 30 s).
    pub ws_timeout: Duration,
}

impl Default for AnnouncerConfig {
    fn default() -> Self {
        AnnouncerConfig {
            set: TrackerSetConfig::default(),
            udp: UdpClientConfig::default(),
            http: HttpClientConfig::default(),
            ws_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
enum Control {
    Progress(u64, u64, u64),
    Completed,
    Stop,
    Ws(String, ClientMessage),
}

/// Handle to a running announce task. Events arrive on the receiver returned by
/// [`Announcer::spawn`]: the torrent's peers as a stream ([`TrackerSetEvent::Peers`] from
/// every tracker as it answers), failures, warnings, WebRTC offers and answers relayed by
/// `ws://` trackers ([`TrackerSetEvent::Signal`]) and finally
/// [`TrackerSetEvent::Stopped`]. Dropping the receiver, or the handle while the task waits,
/// ends the task without a `stopped` announce: call [`stop`](Self::stop) and wait for
/// `Stopped` to leave cleanly.
///
/// Trackers of different tiers are announced to concurrently, failover inside a tier
/// follows BEP 12 (see [`TrackerSet`]). Schemes: `udp://`, `http://`, `ws://`, and with the
/// `tls` feature `https://` and `wss://` (TLS settings from [`HttpClientConfig`]). A `ws://`
/// tracker keeps one WebSocket open; the task's announces there carry no WebRTC offers (it
/// has none to make): they count the peer and keep it reachable for offers from others, which
/// arrive as `Signal` events; answer them, or announce with offers, with
/// [`send_ws`](Self::send_ws).
#[derive(Debug)]
pub struct Announcer {
    control: mpsc::UnboundedSender<Control>,
    task: JoinHandle<()>,
}

impl Announcer {
    /// Start announcing `announce` to `tiers` of tracker URLs.
    pub fn spawn(
        tiers: Vec<Vec<String>>,
        announce: Announce,
        config: AnnouncerConfig,
    ) -> (Announcer, mpsc::Receiver<TrackerSetEvent>) {
        let (ctx, crx) = mpsc::unbounded_channel();
        let (etx, erx) = mpsc::channel(64);
        let set = TrackerSet::new(tiers, announce, config.set.clone());
        let task = tokio::spawn(run(set, config, crx, etx));
        (Announcer { control: ctx, task }, erx)
    }

    /// Update the counters sent with later announces.
    pub fn set_progress(&self, uploaded: u64, downloaded: u64, left: u64) {
        let _ = self
            .control
            .send(Control::Progress(uploaded, downloaded, left));
    }

    /// The download finished: announce `completed`.
    pub fn completed(&self) {
        let _ = self.control.send(Control::Completed);
    }

    /// Announce `stopped`; the task then sends [`TrackerSetEvent::Stopped`] and ends.
    pub fn stop(&self) {
        let _ = self.control.send(Control::Stop);
    }

    /// Send a message (an answer to a relayed offer, an announce with offers) on the
    /// WebSocket of tracker `url`, once it is connected; dropped if it is not one of this
    /// torrent's `ws://` trackers or its connection is down.
    pub fn send_ws(&self, url: &str, message: ClientMessage) {
        let _ = self.control.send(Control::Ws(url.to_owned(), message));
    }

    /// Whether the task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// What the connection task of one `ws://` tracker is asked to do.
enum WsCommand {
    Announce(
        ClientMessage,
        oneshot::Sender<Result<AnnounceResponse, String>>,
    ),
    Send(ClientMessage),
}

/// One WebSocket per `ws://` tracker, owned by a task that forwards what arrives.
struct WsLink {
    commands: mpsc::Sender<WsCommand>,
    task: JoinHandle<()>,
}

impl Drop for WsLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn ws_link(
    url: String,
    info_hash: InfoHash,
    mut ws: WsTracker,
    mut commands: mpsc::Receiver<WsCommand>,
    events: mpsc::Sender<TrackerSetEvent>,
) {
    let mut pending: Option<oneshot::Sender<Result<AnnounceResponse, String>>> = None;
    loop {
        tokio::select! {
            c = commands.recv() => match c {
                None => break,
                Some(WsCommand::Announce(m, reply)) => {
                    if let Err(e) = ws.send(&m).await {
                        let _ = reply.send(Err(e.to_string()));
                        break;
                    }
                    pending = Some(reply);
                }
                Some(WsCommand::Send(m)) => {
                    if ws.send(&m).await.is_err() {
                        break;
                    }
                }
            },
            m = ws.recv() => match m {
                None => break,
                // A message that does not decode: skip it, the connection stays usable.
                Some(Err(_)) => {}
                Some(Ok(m)) => match m {
                    ServerMessage::AnnounceReply { info_hash: ih, complete, incomplete, interval }
                        if ih == info_hash =>
                    {
                        if let Some(p) = pending.take() {
                            let _ = p.send(Ok(AnnounceResponse {
                                interval,
                                complete: Some(complete),
                                incomplete: Some(incomplete),
                                ..Default::default()
                            }));
                        }
                    }
                    ServerMessage::Failure { info_hash: ih, reason }
                        if ih.is_none_or(|h| h == info_hash) =>
                    {
                        if let Some(p) = pending.take() {
                            let _ = p.send(Err(format!("tracker failure: {reason}")));
                        }
                    }
                    m @ (ServerMessage::Offer { info_hash: ih, .. }
                    | ServerMessage::Answer { info_hash: ih, .. })
                        if ih == info_hash =>
                    {
                        let ev = TrackerSetEvent::Signal { url: url.clone(), message: m };
                        if events.send(ev).await.is_err() {
                            break;
                        }
                    }
                    // Other swarms' messages and scrapes are not ours.
                    _ => {}
                },
            },
        }
    }
    if let Some(p) = pending.take() {
        let _ = p.send(Err("websocket closed".into()));
    }
}

type Pending = Pin<Box<dyn Future<Output = Done> + Send>>;

/// A finished request, with the UDP connection to keep.
struct Done {
    token: Token,
    url: String,
    result: Result<AnnounceResponse, String>,
    udp: Option<UdpTracker>,
}

struct Drivers {
    config: AnnouncerConfig,
    udp: HashMap<String, UdpTracker>,
    ws: HashMap<String, WsLink>,
    events: mpsc::Sender<TrackerSetEvent>,
}

impl Drivers {
    /// Start one request; it runs concurrently with the others.
    async fn start(&mut self, req: TrackerRequest) -> Pending {
        let TrackerRequest {
            token,
            url,
            announce,
        } = req;
        if url.starts_with("udp://") {
            let cached = self.udp.remove(&url);
            let cfg = self.config.udp.clone();
            Box::pin(async move {
                let mut t = match cached {
                    Some(t) => t,
                    None => match UdpTracker::connect(&url, cfg).await {
                        Ok(t) => t,
                        Err(e) => {
                            return Done {
                                token,
                                url,
                                result: Err(e.to_string()),
                                udp: None,
                            };
                        }
                    },
                };
                let result = t.announce(announce).await.map_err(|e| e.to_string());
                Done {
                    token,
                    url,
                    result,
                    udp: Some(t),
                }
            })
        } else if url.starts_with("http://") || url.starts_with("https://") {
            let cfg = self.config.http.clone();
            Box::pin(async move {
                let result = http_announce_with(&url, &announce, &cfg)
                    .await
                    .map_err(|e| e.to_string());
                Done {
                    token,
                    url,
                    result,
                    udp: None,
                }
            })
        } else if url.starts_with("ws://") || url.starts_with("wss://") {
            let rx = self.ws_announce(&url, &announce).await;
            let timeout = self.config.ws_timeout;
            Box::pin(async move {
                let result = match rx {
                    Err(e) => Err(e),
                    Ok(rx) => match tokio::time::timeout(timeout, rx).await {
                        Ok(Ok(r)) => r,
                        Ok(Err(_)) => Err("websocket closed".into()),
                        Err(_) => Err("timed out".into()),
                    },
                };
                Done {
                    token,
                    url,
                    result,
                    udp: None,
                }
            })
        } else {
            Box::pin(async move {
                Done {
                    token,
                    url,
                    result: Err("unsupported tracker scheme".into()),
                    udp: None,
                }
            })
        }
    }

    /// Hand an announce to the `ws://` tracker's connection task, connecting first if needed.
    async fn ws_announce(
        &mut self,
        url: &str,
        a: &Announce,
    ) -> Result<oneshot::Receiver<Result<AnnounceResponse, String>>, String> {
        if self.ws.get(url).is_none_or(|l| l.task.is_finished()) {
            self.ws.remove(url);
            #[cfg(feature = "tls")]
            let connecting = WsTracker::connect_with(url, self.config.http.tls.clone());
            #[cfg(not(feature = "tls"))]
            let connecting = WsTracker::connect(url);
            let ws = tokio::time::timeout(self.config.ws_timeout, connecting)
                .await
                .map_err(|_| "timed out connecting".to_owned())?
                .map_err(|e| e.to_string())?;
            let (tx, rx) = mpsc::channel(16);
            let task = tokio::spawn(ws_link(
                url.to_owned(),
                a.info_hash,
                ws,
                rx,
                self.events.clone(),
            ));
            self.ws
                .insert(url.to_owned(), WsLink { commands: tx, task });
        }
        let msg = ClientMessage::Announce(WsAnnounce {
            info_hash: a.info_hash,
            peer_id: a.peer_id,
            uploaded: a.uploaded,
            downloaded: a.downloaded,
            left: Some(a.left),
            event: a.event,
            numwant: 0,
            offers: Vec::new(),
        });
        let (reply, rx) = oneshot::channel();
        let link = self.ws.get(url).ok_or("websocket closed")?;
        link.commands
            .send(WsCommand::Announce(msg, reply))
            .await
            .map_err(|_| "websocket closed".to_owned())?;
        Ok(rx)
    }
}

async fn run(
    mut set: TrackerSet,
    config: AnnouncerConfig,
    mut control: mpsc::UnboundedReceiver<Control>,
    events: mpsc::Sender<TrackerSetEvent>,
) {
    let mut drivers = Drivers {
        config,
        udp: HashMap::new(),
        ws: HashMap::new(),
        events: events.clone(),
    };
    let mut in_flight: FuturesUnordered<Pending> = FuturesUnordered::new();
    loop {
        while let Some(ev) = set.poll_event() {
            if events.send(ev).await.is_err() {
                return;
            }
        }
        if set.is_done() {
            return;
        }
        while let Some(req) = set.poll_request(Instant::now()) {
            let f = drivers.start(req).await;
            in_flight.push(f);
        }
        let wake = set
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                if let Some(t) = done.udp {
                    drivers.udp.insert(done.url, t);
                }
                set.handle_response(Instant::now(), done.token, done.result);
            }
            _ = tokio::time::sleep_until(wake.into()) => set.handle_timeout(Instant::now()),
            c = control.recv() => match c {
                Some(Control::Progress(u, d, l)) => set.set_progress(u, d, l),
                Some(Control::Completed) => set.completed(Instant::now()),
                Some(Control::Stop) => set.stop(Instant::now()),
                Some(Control::Ws(url, m)) => {
                    if let Some(l) = drivers.ws.get(&url) {
                        let _ = l.commands.try_send(WsCommand::Send(m));
                    }
                }
                // The handle is gone: stop announcing, without a `stopped`.
                None => return,
            },
        }
    }
}
