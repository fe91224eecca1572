//! Multi-tracker announcing (BEP 12), sans-IO: which tracker to ask next, and when.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::types::{Announce, AnnounceResponse, Event};

/// Timing of a [`TrackerSet`].
#[derive(Clone, Debug)]
pub struct TrackerSetConfig {
    /// Wait after a tracker's first failure before asking it again; doubles per failure (15 s).
    pub min_backoff: Duration,
    /// Longest wait after failures (30 min).
    pub max_backoff: Duration,
    /// Re-announce interval when a reply gives none usable (30 min).
    pub default_interval: Duration,
    /// Shortest re-announce interval accepted from a tracker (60 s).
    pub min_interval: Duration,
}

impl Default for TrackerSetConfig {
    fn default() -> Self {
        TrackerSetConfig {
            min_backoff: Duration::from_secs(15),
            max_backoff: Duration::from_secs(1800),
            default_interval: Duration::from_secs(1800),
            min_interval: Duration::from_secs(60),
        }
    }
}

/// Identifies a request handed out by [`TrackerSet::poll_request`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Token(u64);

/// A request the driver must perform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackerRequest {
    /// Pass back to [`TrackerSet::handle_response`].
    pub token: Token,
    /// The tracker URL (`http://`, `udp://`, ...).
    pub url: String,
    /// What to announce.
    pub announce: Announce,
}

/// What a [`TrackerSet`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrackerSetEvent {
    /// A tracker gave peers.
    Peers {
        /// Which tracker.
        url: String,
        /// The peers.
        peers: Vec<SocketAddr>,
    },
    /// A tracker failed; the set moves on to the next one.
    Failed {
        /// Which tracker.
        url: String,
        /// Why.
        error: String,
    },
    /// A tracker sent a `warning message`.
    Warning {
        /// Which tracker.
        url: String,
        /// The warning.
        message: String,
    },
    /// The `stopped` announce was made (or every tracker failed it): the set is done.
    Stopped,
    /// A WebSocket tracker relayed a WebRTC offer or answer for this torrent. Only the
    /// tokio `Announcer` driver reports these (the sans-IO set performs no requests); a
    /// WebRTC layer answers offers through it.
    Signal {
        /// Which tracker.
        url: String,
        /// The offer or answer.
        message: crate::ws::ServerMessage,
    },
}

#[derive(Debug)]
struct Tracker {
    url: String,
    fails: u32,
    retry_at: Option<Instant>,
    tracker_id: Option<Vec<u8>>,
}

/// One tier: its trackers in BEP 12 order and its own announce schedule.
#[derive(Debug)]
struct Tier {
    trackers: Vec<Tracker>,
    /// The event this tier's next announce carries (`Started` until one got through).
    event: Event,
    /// When the next announce is due; `None`: now.
    next_at: Option<Instant>,
    /// The request out, which tracker it went to, and the event it carries (the tier's
    /// `event` may change while it is out: its answer acknowledges only what it carried).
    in_flight: Option<(Token, usize, Event)>,
    /// `completed` came while a `started` (with bytes left) was out: send `completed`
    /// once that `started` got through.
    completed_pending: bool,
    /// The tier has nothing more to do (it announced `stopped`, or gave up on it).
    done: bool,
}

impl Tier {
    fn available(&self, now: Instant) -> Option<usize> {
        self.trackers
            .iter()
            .position(|t| t.retry_at.is_none_or(|r| r <= now))
    }
}

/// The trackers of one torrent, in BEP 12 tiers, announced to concurrently.
///
/// Every tier is announced to independently and at the same time, one request per tier in
/// flight (as libtorrent's `announce_to_all_tiers`): so a torrent with trackers in three
/// tiers gets peers from three trackers at once. Within a tier, BEP 12: the tier is shuffled
/// once; an announce goes to its first tracker that is not backing off; a failure makes that
/// tracker back off (`min_backoff * 2^(fails-1)` up to `max_backoff`) and the next one in the
/// tier is tried at once; a success moves the tracker to the front of its tier and schedules
/// the tier's next announce after the tracker's interval. Each tier sends `started` until
/// one of its trackers took it, `completed` once, and `stopped` when leaving (only to tiers
/// that got a `started`).
///
/// Sans-IO: after any call, drain [`poll_request`](Self::poll_request) (perform each, in
/// any order and concurrently, then call [`handle_response`](Self::handle_response)) and
/// [`poll_event`](Self::poll_event), then wait until [`poll_timeout`](Self::poll_timeout)
/// and call [`handle_timeout`](Self::handle_timeout).
#[derive(Debug)]
pub struct TrackerSet {
    config: TrackerSetConfig,
    tiers: Vec<Tier>,
    announce: Announce,
    ready: VecDeque<TrackerRequest>,
    next_token: u64,
    stopping: bool,
    done: bool,
    events: VecDeque<TrackerSetEvent>,
}

impl TrackerSet {
    /// A set announcing `announce` (its `event` is ignored: the set sends `started` first)
    /// to `tiers` of tracker URLs, shuffled with OS randomness.
    pub fn new(tiers: Vec<Vec<String>>, announce: Announce, config: TrackerSetConfig) -> Self {
        Self::with_rng(tiers, announce, config, StdRng::from_os_rng())
    }

    /// As [`new`](Self::new) with an injected random source for the shuffle.
    pub fn with_rng(
        tiers: Vec<Vec<String>>,
        announce: Announce,
        config: TrackerSetConfig,
        mut rng: StdRng,
    ) -> Self {
        let tiers = tiers
            .into_iter()
            .filter(|t| !t.is_empty())
            .map(|mut t| {
                t.shuffle(&mut rng);
                Tier {
                    trackers: t
                        .into_iter()
                        .map(|url| Tracker {
                            url,
                            fails: 0,
                            retry_at: None,
                            tracker_id: None,
                        })
                        .collect(),
                    event: Event::Started,
                    next_at: None,
                    in_flight: None,
                    completed_pending: false,
                    done: false,
                }
            })
            .collect();
        TrackerSet {
            config,
            tiers,
            announce,
            ready: VecDeque::new(),
            next_token: 0,
            stopping: false,
            done: false,
            events: VecDeque::new(),
        }
    }

    /// The tracker URLs in the order they would be tried, tier by tier.
    pub fn order(&self) -> Vec<&str> {
        self.tiers
            .iter()
            .flat_map(|t| &t.trackers)
            .map(|t| t.url.as_str())
            .collect()
    }

    /// Update the transfer counters sent with the next announces.
    pub fn set_progress(&mut self, uploaded: u64, downloaded: u64, left: u64) {
        self.announce.uploaded = uploaded;
        self.announce.downloaded = downloaded;
        self.announce.left = left;
    }

    /// The download finished: announce `completed` now (to tiers that have not taken a
    /// `started` yet, a `started` with nothing left).
    pub fn completed(&mut self, now: Instant) {
        if self.stopping {
            return;
        }
        self.announce.left = 0;
        for t in &mut self.tiers {
            match (t.event, t.in_flight) {
                // A `started` with bytes left is out: `completed` follows its answer.
                (Event::Started, Some(_)) => t.completed_pending = true,
                // Not announced yet: its `started` goes out with nothing left.
                (Event::Started, None) => {}
                _ => t.event = Event::Completed,
            }
            if t.in_flight.is_none() {
                t.next_at = Some(now);
            }
        }
        self.schedule(now);
    }

    /// Leave: announce `stopped` now to every tier that took a `started`, then report
    /// [`TrackerSetEvent::Stopped`].
    pub fn stop(&mut self, now: Instant) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        for t in &mut self.tiers {
            if t.event == Event::Started && t.in_flight.is_none() {
                // Never announced there: nothing to take back.
                t.done = true;
            } else {
                t.event = Event::Stopped;
                t.next_at = Some(now);
            }
        }
        self.schedule(now);
    }

    /// Whether the set has finished (after [`stop`](Self::stop)).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The next request to perform. Several may be out at once (one per tier).
    pub fn poll_request(&mut self, now: Instant) -> Option<TrackerRequest> {
        self.schedule(now);
        self.ready.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<TrackerSetEvent> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.done || !self.ready.is_empty() {
            return None;
        }
        self.tiers
            .iter()
            .filter(|t| !t.done && t.in_flight.is_none())
            .filter_map(|t| {
                let first_retry = t.trackers.iter().filter_map(|x| x.retry_at).min();
                match t.next_at {
                    Some(at)
                        if t.trackers
                            .iter()
                            .any(|x| x.retry_at.is_none_or(|r| r <= at)) =>
                    {
                        Some(at)
                    }
                    Some(at) => first_retry.map(|r| r.max(at)),
                    // Due already, but every tracker is backing off.
                    None => first_retry,
                }
            })
            .min()
    }

    /// Time passed: announce if due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.schedule(now);
    }

    fn schedule(&mut self, now: Instant) {
        if self.done {
            return;
        }
        for ti in 0..self.tiers.len() {
            let tier = &mut self.tiers[ti];
            if tier.done || tier.in_flight.is_some() || tier.next_at.is_some_and(|at| at > now) {
                continue;
            }
            let Some(i) = tier.available(now) else {
                if self.stopping {
                    // Every tracker of the tier is failing: give up on telling it.
                    tier.done = true;
                }
                continue;
            };
            self.next_token += 1;
            let token = Token(self.next_token);
            let t = &tier.trackers[i];
            let mut announce = self.announce.clone();
            announce.event = tier.event;
            announce.tracker_id = t.tracker_id.clone();
            tier.in_flight = Some((token, i, tier.event));
            self.ready.push_back(TrackerRequest {
                token,
                url: t.url.clone(),
                announce,
            });
        }
        if self.stopping && self.tiers.iter().all(|t| t.done) {
            self.done = true;
            self.ready.clear();
            self.events.push_back(TrackerSetEvent::Stopped);
        }
    }

    /// The outcome of a request from [`poll_request`](Self::poll_request).
    pub fn handle_response(
        &mut self,
        now: Instant,
        token: Token,
        result: Result<AnnounceResponse, String>,
    ) {
        let Some(ti) = self
            .tiers
            .iter()
            .position(|t| t.in_flight.is_some_and(|(tok, _, _)| tok == token))
        else {
            return;
        };
        let stopping = self.stopping;
        let tier = &mut self.tiers[ti];
        let Some((_, i, sent)) = tier.in_flight.take() else {
            return;
        };
        let url = tier.trackers[i].url.clone();
        match result {
            Ok(r) => {
                let mut t = tier.trackers.remove(i);
                t.fails = 0;
                t.retry_at = None;
                if r.tracker_id.is_some() {
                    t.tracker_id = r.tracker_id.clone();
                }
                tier.trackers.insert(0, t);
                if let Some(w) = r.warning {
                    self.events.push_back(TrackerSetEvent::Warning {
                        url: url.clone(),
                        message: w,
                    });
                }
                if sent == Event::Stopped {
                    tier.done = true;
                } else if stopping {
                    // A `started` that got through after `stop`: take it back now.
                    tier.event = Event::Stopped;
                    tier.next_at = Some(now);
                } else {
                    let interval =
                        Duration::from_secs(r.interval.max(r.min_interval.unwrap_or(0)).into());
                    let interval = if r.interval == 0 {
                        self.config.default_interval
                    } else {
                        interval.max(self.config.min_interval)
                    };
                    if sent == Event::Started && tier.completed_pending {
                        // The download finished while `started` was out.
                        tier.completed_pending = false;
                        tier.event = Event::Completed;
                        tier.next_at = Some(now);
                    } else if sent == Event::Started || tier.event == sent {
                        tier.event = Event::None;
                        tier.next_at = Some(now + interval);
                    } else {
                        // `completed` was asked for while a regular announce was out.
                        tier.next_at = Some(now);
                    }
                }
                if !r.peers.is_empty() && !stopping {
                    self.events.push_back(TrackerSetEvent::Peers {
                        url,
                        peers: r.peers,
                    });
                }
            }
            Err(error) => {
                let t = &mut tier.trackers[i];
                t.fails = t.fails.saturating_add(1);
                let backoff = self
                    .config
                    .min_backoff
                    .saturating_mul(1u32 << (t.fails - 1).min(16))
                    .min(self.config.max_backoff);
                t.retry_at = Some(now + backoff);
                if stopping && sent == Event::Started {
                    // A `started` that failed after `stop`: nothing to take back.
                    tier.done = true;
                }
                self.events
                    .push_back(TrackerSetEvent::Failed { url, error });
            }
        }
        // Fail over at once (next tracker of the tier), or finish.
        self.schedule(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{InfoHash, PeerId};

    fn set(tiers: &[&[&str]]) -> TrackerSet {
        TrackerSet::with_rng(
            tiers
                .iter()
                .map(|t| t.iter().map(|s| s.to_string()).collect())
                .collect(),
            Announce::new(InfoHash([1; 20]), PeerId([2; 20]), 1),
            TrackerSetConfig::default(),
            StdRng::seed_from_u64(5),
        )
    }

    fn ok(interval: u32) -> Result<AnnounceResponse, String> {
        Ok(AnnounceResponse {
            interval,
            peers: vec!["1.2.3.4:5".parse().unwrap()],
            ..Default::default()
        })
    }

    #[test]
    fn tiers_are_announced_concurrently_with_failover_inside_each() {
        let t0 = Instant::now();
        let mut s = set(&[&["a", "b"], &["c"]]);
        let first_tier: Vec<String> = s.order()[..2].iter().map(|x| x.to_string()).collect();
        // Both tiers at once.
        let r0 = s.poll_request(t0).unwrap();
        let r1 = s.poll_request(t0).unwrap();
        assert_eq!(
            (r0.url.as_str(), r1.url.as_str()),
            (first_tier[0].as_str(), "c")
        );
        assert_eq!(r0.announce.event, Event::Started);
        assert!(s.poll_request(t0).is_none(), "one request per tier");
        // Tier 1 answers first; tier 0's first tracker fails and fails over inside its tier.
        s.handle_response(t0, r1.token, ok(100));
        assert!(matches!(s.poll_event(), Some(TrackerSetEvent::Peers { url, .. }) if url == "c"));
        s.handle_response(t0, r0.token, Err("down".into()));
        assert!(matches!(
            s.poll_event(),
            Some(TrackerSetEvent::Failed { .. })
        ));
        let r = s.poll_request(t0).unwrap();
        assert_eq!(r.url, first_tier[1]);
        assert_eq!(r.announce.event, Event::Started);
        s.handle_response(t0, r.token, ok(200));
        assert_eq!(
            s.order()[0],
            first_tier[1],
            "the working tracker is promoted"
        );
        // Each tier keeps its own interval.
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(100)));
        let r = s.poll_request(t0 + Duration::from_secs(100)).unwrap();
        assert_eq!((r.url.as_str(), r.announce.event), ("c", Event::None));
        assert!(s.poll_request(t0 + Duration::from_secs(100)).is_none());
        s.handle_response(t0 + Duration::from_secs(100), r.token, ok(100));
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(200)));
        // Completed goes to every tier; then leaving sends stopped to both.
        let t = t0 + Duration::from_secs(150);
        s.completed(t);
        let a = s.poll_request(t).unwrap();
        let b = s.poll_request(t).unwrap();
        assert_eq!(
            (a.announce.event, b.announce.event),
            (Event::Completed, Event::Completed)
        );
        assert_eq!(a.announce.left, 0);
        s.handle_response(t, a.token, ok(100));
        s.handle_response(t, b.token, ok(100));
        s.stop(t);
        let a = s.poll_request(t).unwrap();
        let b = s.poll_request(t).unwrap();
        assert_eq!(
            (a.announce.event, b.announce.event),
            (Event::Stopped, Event::Stopped)
        );
        s.handle_response(t, a.token, ok(100));
        assert!(!s.is_done());
        s.handle_response(t, b.token, Err("gone".into()));
        // The failed stop fails over to the tier's other tracker.
        let c = s.poll_request(t);
        if let Some(c) = c {
            assert_eq!(c.announce.event, Event::Stopped);
            s.handle_response(t, c.token, ok(100));
        }
        assert!(s.is_done());
        assert!(std::iter::from_fn(|| s.poll_event()).any(|e| e == TrackerSetEvent::Stopped));
    }

    #[test]
    fn answers_acknowledge_only_the_event_they_carried() {
        let t0 = Instant::now();
        let mut s = set(&[&["a"]]);
        // `completed` while `started` (with bytes left) is out: it follows the answer.
        let r = s.poll_request(t0).unwrap();
        assert_eq!(r.announce.event, Event::Started);
        s.completed(t0);
        assert!(s.poll_request(t0).is_none());
        s.handle_response(t0, r.token, ok(100));
        let r = s.poll_request(t0).unwrap();
        assert_eq!((r.announce.event, r.announce.left), (Event::Completed, 0));
        s.handle_response(t0, r.token, ok(100));
        // `stop` while a regular announce is out: its answer is not the `stopped`
        // acknowledgement; `stopped` goes out after it.
        let t = t0 + Duration::from_secs(100);
        let r = s.poll_request(t).unwrap();
        assert_eq!(r.announce.event, Event::None);
        s.stop(t);
        assert!(s.poll_request(t).is_none());
        s.handle_response(t, r.token, ok(100));
        assert!(!s.is_done());
        let r = s.poll_request(t).unwrap();
        assert_eq!(r.announce.event, Event::Stopped);
        s.handle_response(t, r.token, ok(100));
        assert!(s.is_done());
    }

    #[test]
    fn completed_during_a_regular_announce_is_sent_after_it() {
        let t0 = Instant::now();
        let mut s = set(&[&["a"]]);
        let r = s.poll_request(t0).unwrap();
        s.handle_response(t0, r.token, ok(100));
        let t = t0 + Duration::from_secs(100);
        let r = s.poll_request(t).unwrap();
        assert_eq!(r.announce.event, Event::None);
        s.completed(t);
        s.handle_response(t, r.token, ok(100));
        let r = s.poll_request(t).unwrap();
        assert_eq!(r.announce.event, Event::Completed);
    }

    #[test]
    fn stop_skips_tiers_that_never_took_a_start() {
        let t0 = Instant::now();
        let mut s = set(&[&["a"], &["b"]]);
        let a = s.poll_request(t0).unwrap();
        let b = s.poll_request(t0).unwrap();
        s.handle_response(t0, a.token, ok(100));
        s.handle_response(t0, b.token, Err("down".into()));
        s.stop(t0);
        let r = s.poll_request(t0).unwrap();
        assert_eq!(
            (r.url.as_str(), r.announce.event),
            (a.url.as_str(), Event::Stopped)
        );
        assert!(s.poll_request(t0).is_none());
        s.handle_response(t0, r.token, ok(100));
        assert!(s.is_done());
    }

    #[test]
    fn backoff_doubles_when_everything_fails() {
        let t0 = Instant::now();
        let mut s = set(&[&["a"]]);
        let mut now = t0;
        let mut waits = vec![];
        for _ in 0..4 {
            let r = s.poll_request(now).unwrap();
            s.handle_response(now, r.token, Err("x".into()));
            let next = s.poll_timeout().unwrap();
            waits.push((next - now).as_secs());
            now = next;
        }
        assert_eq!(waits, vec![15, 30, 60, 120]);
    }

    #[test]
    fn promotes_working_tracker_to_front_of_tier() {
        let t0 = Instant::now();
        let mut s = set(&[&["a", "b", "c"]]);
        let order: Vec<String> = s.order().iter().map(|x| x.to_string()).collect();
        let r = s.poll_request(t0).unwrap();
        s.handle_response(t0, r.token, Err("x".into()));
        let r = s.poll_request(t0).unwrap();
        assert_eq!(r.url, order[1]);
        s.handle_response(t0, r.token, ok(60));
        assert_eq!(s.order()[0], order[1]);
    }
}
