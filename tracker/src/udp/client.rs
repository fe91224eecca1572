//! The sans-IO BEP 15 client for one tracker address.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::wire::{AddrFamily, AnnounceRequest, Request, Response};
use crate::types::{Announce, AnnounceResponse, InfoHash, ScrapeStats};

/// Timing of the UDP client. The defaults are BEP 15's.
#[derive(Clone, Debug)]
pub struct UdpClientConfig {
    /// The first retransmission timeout; attempt `n` waits `retransmit_base * 2^n` (15 s).
    pub retransmit_base: Duration,
    /// Retransmissions before a request fails (8: the last one waits 3840 s).
    pub max_retransmits: u32,
    /// How long a connection id may be used (60 s).
    pub connection_id_ttl: Duration,
}

impl Default for UdpClientConfig {
    fn default() -> Self {
        UdpClientConfig {
            retransmit_base: Duration::from_secs(15),
            max_retransmits: 8,
            connection_id_ttl: Duration::from_secs(60),
        }
    }
}

/// Identifies a request made with [`UdpClient::announce`] or [`UdpClient::scrape`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UdpRequestError {
    /// The tracker answered with an error packet.
    #[error("tracker error: {0}")]
    Tracker(String),
    /// No answer after every retransmission.
    #[error("no answer after {attempts} attempts")]
    TimedOut {
        /// Packets sent.
        attempts: u32,
    },
    /// The tracker answered with a packet of the wrong kind or size.
    #[error("tracker protocol violation: {0}")]
    Protocol(String),
    /// The request was invalid before it was sent (a scrape of 0 or more than 74 hashes).
    #[error("invalid request: {0}")]
    Invalid(&'static str),
}

/// What the client reports; drain with [`UdpClient::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpClientEvent {
    /// An announce succeeded.
    Announced {
        /// Which request.
        id: RequestId,
        /// The answer (`complete`/`incomplete` set, no HTTP-only fields).
        response: AnnounceResponse,
    },
    /// A scrape succeeded; one entry per requested hash.
    Scraped {
        /// Which request.
        id: RequestId,
        /// Figures in request order.
        stats: Vec<ScrapeStats>,
    },
    /// A request failed.
    Failed {
        /// Which request.
        id: RequestId,
        /// Why.
        error: UdpRequestError,
    },
}

#[derive(Debug)]
enum Kind {
    Announce(Announce),
    Scrape(Vec<InfoHash>),
}

#[derive(Debug)]
enum State {
    WaitConnect,
    Sent { tid: u32, deadline: Instant },
}

#[derive(Debug)]
struct Pending {
    id: RequestId,
    kind: Kind,
    attempt: u32,
    state: State,
}

#[derive(Debug)]
struct Connecting {
    tid: u32,
    attempt: u32,
    deadline: Instant,
}

/// A BEP 15 client talking to one tracker address.
///
/// Sans-IO: it owns no socket and reads no clock. Feed it received datagrams with
/// [`handle_datagram`](Self::handle_datagram) and expired timers with
/// [`handle_timeout`](Self::handle_timeout); after **any** call (including
/// [`announce`](Self::announce)/[`scrape`](Self::scrape)), drain
/// [`poll_transmit`](Self::poll_transmit) (send each payload to the tracker) and
/// [`poll_event`](Self::poll_event), then sleep until [`poll_timeout`](Self::poll_timeout).
///
/// It obtains a connection id first and caches it for
/// [`connection_id_ttl`](UdpClientConfig::connection_id_ttl); requests made meanwhile wait
/// for it. Every packet carries a fresh random transaction id and answers with any other id are
/// dropped. A request unanswered after `retransmit_base * 2^n` is sent again (reconnecting first
/// if the connection id expired) until `max_retransmits`, then fails.
#[derive(Debug)]
pub struct UdpClient {
    config: UdpClientConfig,
    family: AddrFamily,
    rng: StdRng,
    conn: Option<(u64, Instant)>,
    connecting: Option<Connecting>,
    pending: Vec<Pending>,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<UdpClientEvent>,
    next_id: u64,
}

impl UdpClient {
    /// A client for a tracker reached over `family`, with OS randomness.
    pub fn new(config: UdpClientConfig, family: AddrFamily) -> Self {
        Self::with_rng(config, family, StdRng::from_os_rng())
    }

    /// A client with an injected random source (for deterministic tests).
    pub fn with_rng(config: UdpClientConfig, family: AddrFamily, rng: StdRng) -> Self {
        UdpClient {
            config,
            family,
            rng,
            conn: None,
            connecting: None,
            pending: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_id: 0,
        }
    }

    /// Queue an announce.
    pub fn announce(&mut self, now: Instant, announce: Announce) -> RequestId {
        self.push(now, Kind::Announce(announce))
    }

    /// Queue a scrape of 1 to 74 swarms (more or none fail at once).
    pub fn scrape(&mut self, now: Instant, info_hashes: Vec<InfoHash>) -> RequestId {
        if info_hashes.is_empty() || info_hashes.len() > super::wire::MAX_SCRAPE_HASHES {
            let id = self.alloc_id();
            self.events.push_back(UdpClientEvent::Failed {
                id,
                error: UdpRequestError::Invalid("scrape needs 1 to 74 info hashes"),
            });
            return id;
        }
        self.push(now, Kind::Scrape(info_hashes))
    }

    /// Requests not answered or failed yet.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Forget the cached connection id (e.g. after the tracker's address changed).
    pub fn reset_connection(&mut self) {
        self.conn = None;
    }

    fn alloc_id(&mut self) -> RequestId {
        self.next_id += 1;
        RequestId(self.next_id)
    }

    fn push(&mut self, now: Instant, kind: Kind) -> RequestId {
        let id = self.alloc_id();
        self.pending.push(Pending {
            id,
            kind,
            attempt: 0,
            state: State::WaitConnect,
        });
        self.drive(now);
        id
    }

    fn timeout_for(&self, attempt: u32) -> Duration {
        backoff(self.config.retransmit_base, attempt)
    }

    fn valid_conn(&self, now: Instant) -> Option<u64> {
        self.conn.filter(|&(_, exp)| now < exp).map(|(id, _)| id)
    }

    fn fresh_tid(&mut self) -> u32 {
        loop {
            let t: u32 = self.rng.random();
            let used = self.connecting.as_ref().is_some_and(|c| c.tid == t)
                || self
                    .pending
                    .iter()
                    .any(|p| matches!(p.state, State::Sent { tid, .. } if tid == t));
            if !used {
                return t;
            }
        }
    }

    fn send_request(&mut self, idx: usize, conn_id: u64, tid: u32) {
        let p = &self.pending[idx];
        let req = match &p.kind {
            Kind::Announce(a) => Request::Announce(AnnounceRequest {
                connection_id: conn_id,
                transaction_id: tid,
                info_hash: a.info_hash,
                peer_id: a.peer_id,
                downloaded: a.downloaded,
                left: a.left,
                uploaded: a.uploaded,
                event: a.event,
                ip: 0,
                key: a.key.unwrap_or(0),
                num_want: a
                    .numwant
                    .map(|n| i32::try_from(n).unwrap_or(i32::MAX))
                    .unwrap_or(-1),
                port: a.port,
            }),
            Kind::Scrape(h) => Request::Scrape {
                connection_id: conn_id,
                transaction_id: tid,
                info_hashes: h.clone(),
            },
        };
        let mut out = Vec::with_capacity(req.encoded_len());
        req.encode(&mut out);
        self.transmits.push_back(out);
    }

    fn send_connect(&mut self, tid: u32) {
        let mut out = Vec::with_capacity(16);
        Request::Connect {
            transaction_id: tid,
        }
        .encode(&mut out);
        self.transmits.push_back(out);
    }

    /// Send whatever can be sent now.
    fn drive(&mut self, now: Instant) {
        if let Some(conn_id) = self.valid_conn(now) {
            for i in 0..self.pending.len() {
                if matches!(self.pending[i].state, State::WaitConnect) {
                    let tid = self.fresh_tid();
                    let deadline = now + self.timeout_for(self.pending[i].attempt);
                    self.pending[i].state = State::Sent { tid, deadline };
                    self.send_request(i, conn_id, tid);
                }
            }
        } else if self.connecting.is_none()
            && self
                .pending
                .iter()
                .any(|p| matches!(p.state, State::WaitConnect))
        {
            let tid = self.fresh_tid();
            self.connecting = Some(Connecting {
                tid,
                attempt: 0,
                deadline: now + self.timeout_for(0),
            });
            self.send_connect(tid);
        }
    }

    fn fail_waiting(&mut self, error: UdpRequestError) {
        let mut i = 0;
        while i < self.pending.len() {
            if matches!(self.pending[i].state, State::WaitConnect) {
                let p = self.pending.remove(i);
                self.events.push_back(UdpClientEvent::Failed {
                    id: p.id,
                    error: error.clone(),
                });
            } else {
                i += 1;
            }
        }
    }

    /// Process a datagram from the tracker. Packets that do not decode or whose transaction
    /// id matches nothing in flight are dropped (the error says why, for logging).
    pub fn handle_datagram(&mut self, now: Instant, packet: &[u8]) -> Result<(), UdpClientError> {
        let resp = Response::decode(packet, self.family).map_err(UdpClientError::Decode)?;
        let tid = resp.transaction_id();
        if self.connecting.as_ref().is_some_and(|c| c.tid == tid) {
            self.connecting = None;
            match resp {
                Response::Connect { connection_id, .. } => {
                    self.conn = Some((connection_id, now + self.config.connection_id_ttl));
                }
                Response::Error { message, .. } => {
                    self.fail_waiting(UdpRequestError::Tracker(message));
                }
                other => self.fail_waiting(UdpRequestError::Protocol(format!(
                    "expected connect response, got {}",
                    kind_name(&other)
                ))),
            }
            self.drive(now);
            return Ok(());
        }
        let Some(idx) = self
            .pending
            .iter()
            .position(|p| matches!(p.state, State::Sent { tid: t, .. } if t == tid))
        else {
            return Err(UdpClientError::UnknownTransaction(tid));
        };
        let p = self.pending.remove(idx);
        let event = match (p.kind, resp) {
            (
                Kind::Announce(_),
                Response::Announce {
                    interval,
                    leechers,
                    seeders,
                    peers,
                    ..
                },
            ) => UdpClientEvent::Announced {
                id: p.id,
                response: AnnounceResponse {
                    interval,
                    complete: Some(seeders),
                    incomplete: Some(leechers),
                    peers,
                    ..AnnounceResponse::default()
                },
            },
            (Kind::Scrape(h), Response::Scrape { stats, .. }) => {
                if stats.len() != h.len() {
                    UdpClientEvent::Failed {
                        id: p.id,
                        error: UdpRequestError::Protocol(format!(
                            "scrape answer has {} entries for {} hashes",
                            stats.len(),
                            h.len()
                        )),
                    }
                } else {
                    UdpClientEvent::Scraped { id: p.id, stats }
                }
            }
            (_, Response::Error { message, .. }) => {
                // The tracker may have forgotten our connection id: get a new one next time.
                self.conn = None;
                UdpClientEvent::Failed {
                    id: p.id,
                    error: UdpRequestError::Tracker(message),
                }
            }
            (_, other) => UdpClientEvent::Failed {
                id: p.id,
                error: UdpRequestError::Protocol(format!(
                    "unexpected {} response",
                    kind_name(&other)
                )),
            },
        };
        self.events.push_back(event);
        Ok(())
    }

    /// Process expired timers (retransmissions, give-ups). Harmless to call early.
    pub fn handle_timeout(&mut self, now: Instant) {
        let base = self.config.retransmit_base;
        if let Some(c) = &mut self.connecting {
            if now >= c.deadline {
                c.attempt += 1;
                if c.attempt > self.config.max_retransmits {
                    let attempts = c.attempt;
                    self.connecting = None;
                    self.fail_waiting(UdpRequestError::TimedOut { attempts });
                } else {
                    let (tid, attempt) = (c.tid, c.attempt);
                    c.deadline = now + backoff(base, attempt);
                    self.send_connect(tid);
                }
            }
        }
        let conn = self.valid_conn(now);
        let mut i = 0;
        while i < self.pending.len() {
            let expired =
                matches!(self.pending[i].state, State::Sent { deadline, .. } if now >= deadline);
            if !expired {
                i += 1;
                continue;
            }
            self.pending[i].attempt += 1;
            let attempt = self.pending[i].attempt;
            if attempt > self.config.max_retransmits {
                let p = self.pending.remove(i);
                self.events.push_back(UdpClientEvent::Failed {
                    id: p.id,
                    error: UdpRequestError::TimedOut { attempts: attempt },
                });
                continue;
            }
            match conn {
                Some(conn_id) => {
                    let tid = self.fresh_tid();
                    self.pending[i].state = State::Sent {
                        tid,
                        deadline: now + self.timeout_for(attempt),
                    };
                    self.send_request(i, conn_id, tid);
                }
                None => self.pending[i].state = State::WaitConnect,
            }
            i += 1;
        }
        self.drive(now);
    }

    /// The next datagram to send to the tracker.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<UdpClientEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next, if anything is in flight.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let c = self.connecting.as_ref().map(|c| c.deadline);
        let p = self.pending.iter().filter_map(|p| match p.state {
            State::Sent { deadline, .. } => Some(deadline),
            State::WaitConnect => None,
        });
        c.into_iter().chain(p).min()
    }
}

/// `base * 2^attempt`, saturating.
fn backoff(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
}

fn kind_name(r: &Response) -> &'static str {
    match r {
        Response::Connect { .. } => "connect",
        Response::Announce { .. } => "announce",
        Response::Scrape { .. } => "scrape",
        Response::Error { .. } => "error",
    }
}

/// A datagram the client dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UdpClientError {
    /// It does not decode.
    #[error("undecodable datagram: {0}")]
    Decode(super::wire::UdpDecodeError),
    /// Its transaction id matches no request in flight (late, duplicate or forged).
    #[error("no request in flight with transaction id {0:#x}")]
    UnknownTransaction(u32),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Event, PeerId};

    fn client() -> UdpClient {
        UdpClient::with_rng(
            UdpClientConfig::default(),
            AddrFamily::V4,
            StdRng::seed_from_u64(1),
        )
    }

    fn connect_reply(tid: u32, id: u64) -> Vec<u8> {
        let mut out = vec![];
        Response::Connect {
            transaction_id: tid,
            connection_id: id,
        }
        .encode(AddrFamily::V4, &mut out);
        out
    }

    #[test]
    fn connect_then_announce_then_cached_id() {
        let t0 = Instant::now();
        let mut c = client();
        let a = Announce {
            event: Event::Started,
            ..Announce::new(InfoHash([1; 20]), PeerId([2; 20]), 6881)
        };
        let id = c.announce(t0, a.clone());
        let pkt = c.poll_transmit().unwrap();
        assert!(c.poll_transmit().is_none());
        let Ok(Request::Connect { transaction_id }) = Request::decode(&pkt) else {
            panic!()
        };
        // A wrong transaction id is dropped.
        assert!(
            c.handle_datagram(t0, &connect_reply(transaction_id ^ 1, 9))
                .is_err()
        );
        assert!(c.poll_transmit().is_none());
        c.handle_datagram(t0, &connect_reply(transaction_id, 9))
            .unwrap();
        let pkt = c.poll_transmit().unwrap();
        let Ok(Request::Announce(req)) = Request::decode(&pkt) else {
            panic!()
        };
        assert_eq!(req.connection_id, 9);
        assert_eq!(req.event, Event::Started);
        let mut resp = vec![];
        Response::Announce {
            transaction_id: req.transaction_id,
            interval: 100,
            leechers: 1,
            seeders: 2,
            peers: vec!["1.2.3.4:5".parse().unwrap()],
        }
        .encode(AddrFamily::V4, &mut resp);
        c.handle_datagram(t0, &resp).unwrap();
        match c.poll_event() {
            Some(UdpClientEvent::Announced { id: got, response }) => {
                assert_eq!(got, id);
                assert_eq!(response.interval, 100);
                assert_eq!(response.peers.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.poll_timeout(), None);
        // Within a minute the id is reused: no connect.
        c.scrape(t0 + Duration::from_secs(59), vec![InfoHash([1; 20])]);
        let pkt = c.poll_transmit().unwrap();
        assert!(matches!(
            Request::decode(&pkt),
            Ok(Request::Scrape {
                connection_id: 9,
                ..
            })
        ));
        // After a minute a new connect is needed.
        c.announce(t0 + Duration::from_secs(61), a);
        let pkt = c.poll_transmit().unwrap();
        assert!(matches!(Request::decode(&pkt), Ok(Request::Connect { .. })));
    }

    #[test]
    fn retransmit_schedule_and_give_up() {
        let t0 = Instant::now();
        let mut c = UdpClient::with_rng(
            UdpClientConfig {
                max_retransmits: 3,
                ..Default::default()
            },
            AddrFamily::V4,
            StdRng::seed_from_u64(2),
        );
        let id = c.scrape(t0, vec![InfoHash([1; 20])]);
        assert!(c.poll_transmit().is_some());
        let mut deadlines = vec![];
        while let Some(t) = c.poll_timeout() {
            deadlines.push(t - t0);
            c.handle_timeout(t);
            while c.poll_transmit().is_some() {}
        }
        let s = Duration::from_secs;
        assert_eq!(
            deadlines,
            vec![s(15), s(15 + 30), s(15 + 30 + 60), s(15 + 30 + 60 + 120)]
        );
        assert_eq!(
            c.poll_event(),
            Some(UdpClientEvent::Failed {
                id,
                error: UdpRequestError::TimedOut { attempts: 4 }
            })
        );
    }

    #[test]
    fn error_reply_fails_request() {
        let t0 = Instant::now();
        let mut c = client();
        let id = c.scrape(t0, vec![InfoHash([1; 20])]);
        let Ok(Request::Connect { transaction_id }) = Request::decode(&c.poll_transmit().unwrap())
        else {
            panic!()
        };
        let mut e = vec![];
        Response::Error {
            transaction_id,
            message: "go away".into(),
        }
        .encode(AddrFamily::V4, &mut e);
        c.handle_datagram(t0, &e).unwrap();
        assert_eq!(
            c.poll_event(),
            Some(UdpClientEvent::Failed {
                id,
                error: UdpRequestError::Tracker("go away".into())
            })
        );
        assert_eq!(c.in_flight(), 0);
    }
}
