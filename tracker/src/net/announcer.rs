//! The tokio driver of [`TrackerSet`]: one task announcing a torrent to all its trackers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{HttpClientConfig, UdpTracker, http_announce_with};
use crate::multi::{TrackerRequest, TrackerSet, TrackerSetConfig, TrackerSetEvent};
use crate::types::{Announce, AnnounceResponse};
use crate::udp::UdpClientConfig;

/// Settings of an [`Announcer`].
#[derive(Clone, Debug, Default)]
pub struct AnnouncerConfig {
    /// Tier order, backoff and intervals.
    pub set: TrackerSetConfig,
    /// UDP retransmission (the default gives up after 8 retransmissions, over an hour; a
    /// multi-tracker client usually wants fewer, e.g. `max_retransmits: 2`).
    pub udp: UdpClientConfig,
    /// HTTP limits.
    pub http: HttpClientConfig,
}

#[derive(Debug)]
enum Control {
    Progress(u64, u64, u64),
    Completed,
    Stop,
}

/// Handle to a running announce task. Events (peers, failures, `Stopped`) arrive on the
/// receiver returned by [`Announcer::spawn`]: the torrent's peers as a stream. Dropping the
/// receiver, or the handle while the task waits, ends the task without a `stopped` announce:
/// call [`stop`](Self::stop) and wait for [`TrackerSetEvent::Stopped`] to leave cleanly.
#[derive(Debug)]
pub struct Announcer {
    control: mpsc::UnboundedSender<Control>,
    task: JoinHandle<()>,
}

impl Announcer {
    /// Start announcing `announce` to `tiers` of tracker URLs (`http://` and `udp://`).
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

    /// Whether the task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

async fn perform(
    udp: &mut HashMap<String, UdpTracker>,
    config: &AnnouncerConfig,
    req: &TrackerRequest,
) -> Result<AnnounceResponse, String> {
    if req.url.starts_with("udp://") {
        let mut t = match udp.remove(&req.url) {
            Some(t) => t,
            None => UdpTracker::connect(&req.url, config.udp.clone())
                .await
                .map_err(|e| e.to_string())?,
        };
        let r = t
            .announce(req.announce.clone())
            .await
            .map_err(|e| e.to_string());
        udp.insert(req.url.clone(), t);
        r
    } else if req.url.starts_with("http://") {
        http_announce_with(&req.url, &req.announce, &config.http)
            .await
            .map_err(|e| e.to_string())
    } else {
        Err("unsupported tracker scheme".into())
    }
}

async fn run(
    mut set: TrackerSet,
    config: AnnouncerConfig,
    mut control: mpsc::UnboundedReceiver<Control>,
    events: mpsc::Sender<TrackerSetEvent>,
) {
    let mut udp = HashMap::new();
    loop {
        while let Some(ev) = set.poll_event() {
            if events.send(ev).await.is_err() {
                return;
            }
        }
        if set.is_done() {
            return;
        }
        if let Some(req) = set.poll_request(Instant::now()) {
            let r = perform(&mut udp, &config, &req).await;
            set.handle_response(Instant::now(), req.token, r);
            continue;
        }
        let wake = set
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => set.handle_timeout(Instant::now()),
            c = control.recv() => match c {
                Some(Control::Progress(u, d, l)) => set.set_progress(u, d, l),
                Some(Control::Completed) => set.completed(Instant::now()),
                Some(Control::Stop) => set.stop(Instant::now()),
                // The handle is gone: stop announcing, without a `stopped`.
                None => return,
            },
        }
    }
}
