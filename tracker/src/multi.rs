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
}

#[derive(Debug)]
struct Tracker {
    url: String,
    fails: u32,
    retry_at: Option<Instant>,
    tracker_id: Option<Vec<u8>>,
}

/// The trackers of one torrent, in BEP 12 tiers.
///
/// Each tier is shuffled once. An announce goes to the first tracker, in tier order, that is
/// not backing off; a failure makes that tracker back off (`min_backoff * 2^(fails-1)` up to
/// `max_backoff`) and the next one is tried at once; a success moves the tracker to the front
/// of its tier and schedules the next announce after the tracker's interval.
///
/// Sans-IO: after any call, drain [`poll_request`](Self::poll_request) (perform each, then
/// call [`handle_response`](Self::handle_response)) and [`poll_event`](Self::poll_event),
/// then wait until [`poll_timeout`](Self::poll_timeout) and call
/// [`handle_timeout`](Self::handle_timeout). One request is in flight at a time.
#[derive(Debug)]
pub struct TrackerSet {
    config: TrackerSetConfig,
    tiers: Vec<Vec<Tracker>>,
    announce: Announce,
    /// The event the next announce carries (`Started` first, `Completed` once, `Stopped` last).
    event: Event,
    next_at: Option<Instant>,
    in_flight: Option<(Token, usize, usize)>,
    ready: Option<TrackerRequest>,
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
                t.into_iter()
                    .map(|url| Tracker {
                        url,
                        fails: 0,
                        retry_at: None,
                        tracker_id: None,
                    })
                    .collect()
            })
            .collect();
        TrackerSet {
            config,
            tiers,
            announce,
            event: Event::Started,
            next_at: None,
            in_flight: None,
            ready: None,
            next_token: 0,
            stopping: false,
            done: false,
            events: VecDeque::new(),
        }
    }

    /// The tracker URLs in the order they would be tried.
    pub fn order(&self) -> Vec<&str> {
        self.tiers
            .iter()
            .flatten()
            .map(|t| t.url.as_str())
            .collect()
    }

    /// Update the transfer counters sent with the next announces.
    pub fn set_progress(&mut self, uploaded: u64, downloaded: u64, left: u64) {
        self.announce.uploaded = uploaded;
        self.announce.downloaded = downloaded;
        self.announce.left = left;
    }

    /// The download finished: announce `completed` now.
    pub fn completed(&mut self, now: Instant) {
        if !self.stopping {
            self.announce.left = 0;
            self.event = Event::Completed;
            self.next_at = Some(now);
            self.schedule(now);
        }
    }

    /// Leave: announce `stopped` now, then report [`TrackerSetEvent::Stopped`].
    pub fn stop(&mut self, now: Instant) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.event = Event::Stopped;
        self.next_at = Some(now);
        self.schedule(now);
    }

    /// Whether the set has finished (after [`stop`](Self::stop)).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The next request to perform.
    pub fn poll_request(&mut self, now: Instant) -> Option<TrackerRequest> {
        self.schedule(now);
        self.ready.take()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<TrackerSetEvent> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.done || self.in_flight.is_some() || self.ready.is_some() {
            return None;
        }
        let first_retry = self
            .tiers
            .iter()
            .flatten()
            .map(|t| t.retry_at)
            .min()
            .flatten();
        match self.next_at {
            None => first_retry,
            Some(at) => Some(match self.first_available(at) {
                Some(_) => at,
                None => first_retry.map_or(at, |r| r.max(at)),
            }),
        }
    }

    /// Time passed: announce if due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.schedule(now);
    }

    fn first_available(&self, now: Instant) -> Option<(usize, usize)> {
        for (ti, tier) in self.tiers.iter().enumerate() {
            for (i, t) in tier.iter().enumerate() {
                if t.retry_at.is_none_or(|r| r <= now) {
                    return Some((ti, i));
                }
            }
        }
        None
    }

    fn schedule(&mut self, now: Instant) {
        if self.done || self.in_flight.is_some() || self.ready.is_some() {
            return;
        }
        if self.tiers.is_empty() {
            if self.stopping {
                self.done = true;
                self.events.push_back(TrackerSetEvent::Stopped);
            }
            return;
        }
        let due = match self.next_at {
            None => true,
            Some(at) => at <= now,
        };
        if !due {
            return;
        }
        let Some((ti, i)) = self.first_available(now) else {
            if self.stopping {
                // Nobody to tell: we are done.
                self.done = true;
                self.events.push_back(TrackerSetEvent::Stopped);
            }
            return;
        };
        self.next_token += 1;
        let token = Token(self.next_token);
        let t = &self.tiers[ti][i];
        let mut announce = self.announce.clone();
        announce.event = self.event;
        announce.tracker_id = t.tracker_id.clone();
        self.in_flight = Some((token, ti, i));
        self.ready = Some(TrackerRequest {
            token,
            url: t.url.clone(),
            announce,
        });
    }

    /// The outcome of a request from [`poll_request`](Self::poll_request).
    pub fn handle_response(
        &mut self,
        now: Instant,
        token: Token,
        result: Result<AnnounceResponse, String>,
    ) {
        let Some((tok, ti, i)) = self.in_flight else {
            return;
        };
        if tok != token {
            return;
        }
        self.in_flight = None;
        let url = self.tiers[ti][i].url.clone();
        match result {
            Ok(r) => {
                let mut t = self.tiers[ti].remove(i);
                t.fails = 0;
                t.retry_at = None;
                if r.tracker_id.is_some() {
                    t.tracker_id = r.tracker_id.clone();
                }
                self.tiers[ti].insert(0, t);
                if let Some(w) = r.warning {
                    self.events.push_back(TrackerSetEvent::Warning {
                        url: url.clone(),
                        message: w,
                    });
                }
                if self.stopping {
                    self.done = true;
                    self.events.push_back(TrackerSetEvent::Stopped);
                    return;
                }
                if !r.peers.is_empty() {
                    self.events.push_back(TrackerSetEvent::Peers {
                        url,
                        peers: r.peers,
                    });
                }
                let interval =
                    Duration::from_secs(r.interval.max(r.min_interval.unwrap_or(0)).into());
                let interval = if r.interval == 0 {
                    self.config.default_interval
                } else {
                    interval.max(self.config.min_interval)
                };
                self.event = Event::None;
                self.next_at = Some(now + interval);
            }
            Err(error) => {
                let t = &mut self.tiers[ti][i];
                t.fails = t.fails.saturating_add(1);
                let backoff = self
                    .config
                    .min_backoff
                    .saturating_mul(1u32 << (t.fails - 1).min(16))
                    .min(self.config.max_backoff);
                t.retry_at = Some(now + backoff);
                self.events
                    .push_back(TrackerSetEvent::Failed { url, error });
                // Fail over at once (next tracker, then next tier).
                self.schedule(now);
            }
        }
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
    fn failover_within_and_across_tiers_then_promote() {
        let t0 = Instant::now();
        let mut s = set(&[&["a", "b"], &["c"]]);
        let first_tier: Vec<String> = s.order()[..2].iter().map(|x| x.to_string()).collect();
        let r = s.poll_request(t0).unwrap();
        assert_eq!(r.url, first_tier[0]);
        assert_eq!(r.announce.event, Event::Started);
        assert!(s.poll_request(t0).is_none(), "one at a time");
        s.handle_response(t0, r.token, Err("down".into()));
        let r = s.poll_request(t0).unwrap();
        assert_eq!(r.url, first_tier[1]);
        s.handle_response(t0, r.token, Err("down".into()));
        let r = s.poll_request(t0).unwrap();
        assert_eq!(r.url, "c");
        assert_eq!(r.announce.event, Event::Started);
        s.handle_response(t0, r.token, ok(100));
        assert!(matches!(
            s.poll_event(),
            Some(TrackerSetEvent::Failed { .. })
        ));
        assert!(matches!(
            s.poll_event(),
            Some(TrackerSetEvent::Failed { .. })
        ));
        assert!(matches!(s.poll_event(), Some(TrackerSetEvent::Peers { url, .. }) if url == "c"));
        // Next announce after the interval: the first tier's backoff (15 s) is over by then, so
        // it is tried first again.
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(100)));
        let r = s.poll_request(t0 + Duration::from_secs(100)).unwrap();
        assert_eq!(r.url, first_tier[0]);
        assert_eq!(r.announce.event, Event::None);
        s.handle_response(t0 + Duration::from_secs(100), r.token, ok(100));
        // Leaving.
        s.stop(t0 + Duration::from_secs(101));
        let r = s.poll_request(t0 + Duration::from_secs(101)).unwrap();
        assert_eq!(r.announce.event, Event::Stopped);
        s.handle_response(t0 + Duration::from_secs(101), r.token, ok(100));
        while let Some(e) = s.poll_event() {
            if e == TrackerSetEvent::Stopped {
                assert!(s.is_done());
                return;
            }
        }
        panic!("no Stopped event");
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
