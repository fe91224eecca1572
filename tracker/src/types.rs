//! Types shared by every tracker protocol: hashes, peer ids, events, announce parameters.

use std::fmt;
use std::net::SocketAddr;

/// A 20-byte swarm identifier: a v1 info hash, a truncated v2 info hash, or any other
/// 20-byte key an application uses for peer discovery.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct InfoHash(pub [u8; 20]);

/// A 20-byte peer id (BEP 20 style or random).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PeerId(pub [u8; 20]);

fn hex(f: &mut fmt::Formatter<'_>, b: &[u8]) -> fmt::Result {
    for x in b {
        write!(f, "{x:02x}")?;
    }
    Ok(())
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hex(f, &self.0)
    }
}
impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash(")?;
        hex(f, &self.0)?;
        write!(f, ")")
    }
}
impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hex(f, &self.0)
    }
}
impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId(")?;
        hex(f, &self.0)?;
        write!(f, ")")
    }
}
impl From<[u8; 20]> for InfoHash {
    fn from(b: [u8; 20]) -> Self {
        InfoHash(b)
    }
}
impl From<[u8; 20]> for PeerId {
    fn from(b: [u8; 20]) -> Self {
        PeerId(b)
    }
}

/// The `event` of an announce (BEP 3; numbered as in BEP 15).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum Event {
    /// A regular update (no `event` parameter; UDP 0).
    #[default]
    None,
    /// The download finished (UDP 1).
    Completed,
    /// The first announce of a session (UDP 2).
    Started,
    /// The peer leaves the swarm (UDP 3).
    Stopped,
}

impl Event {
    /// The BEP 15 number.
    pub fn to_udp(self) -> u32 {
        match self {
            Event::None => 0,
            Event::Completed => 1,
            Event::Started => 2,
            Event::Stopped => 3,
        }
    }
    /// From the BEP 15 number; unknown numbers are `None` (as trackers treat them).
    pub fn from_udp(n: u32) -> Event {
        match n {
            1 => Event::Completed,
            2 => Event::Started,
            3 => Event::Stopped,
            _ => Event::None,
        }
    }
    /// The HTTP/WebSocket string, or `None` for a regular update.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Event::None => None,
            Event::Completed => Some("completed"),
            Event::Started => Some("started"),
            Event::Stopped => Some("stopped"),
        }
    }
    /// From the HTTP/WebSocket string; anything unknown (including `paused`, `empty`) is `None`.
    pub fn from_name(s: &[u8]) -> Event {
        match s {
            b"completed" => Event::Completed,
            b"started" => Event::Started,
            b"stopped" => Event::Stopped,
            _ => Event::None,
        }
    }
}

/// What a client tells a tracker in an announce, whatever the protocol.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Announce {
    /// The swarm.
    pub info_hash: InfoHash,
    /// Our peer id.
    pub peer_id: PeerId,
    /// The port we accept peers on.
    pub port: u16,
    /// Bytes uploaded this session.
    pub uploaded: u64,
    /// Bytes downloaded this session.
    pub downloaded: u64,
    /// Bytes left to download (0 for a seeder).
    pub left: u64,
    /// The event.
    pub event: Event,
    /// How many peers we want; `None` lets the tracker choose.
    pub numwant: Option<u32>,
    /// A random key that proves it is us if our address changes.
    pub key: Option<u32>,
    /// The `trackerid` a previous HTTP reply gave us.
    pub tracker_id: Option<Vec<u8>>,
}

impl Announce {
    /// An announce with zero counters, no event and tracker defaults.
    pub fn new(info_hash: InfoHash, peer_id: PeerId, port: u16) -> Self {
        Announce {
            info_hash,
            peer_id,
            port,
            uploaded: 0,
            downloaded: 0,
            left: 0,
            event: Event::None,
            numwant: None,
            key: None,
            tracker_id: None,
        }
    }
}

/// A tracker's answer to an announce, whatever the protocol.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct AnnounceResponse {
    /// Seconds to wait before the next regular announce.
    pub interval: u32,
    /// Seconds the client must wait at least (HTTP `min interval`).
    pub min_interval: Option<u32>,
    /// Seeders in the swarm, if the tracker said.
    pub complete: Option<u32>,
    /// Leechers in the swarm, if the tracker said.
    pub incomplete: Option<u32>,
    /// Peers, IPv4 and IPv6. Dictionary-form entries whose `ip` is a host name are skipped.
    pub peers: Vec<SocketAddr>,
    /// HTTP `warning message`.
    pub warning: Option<String>,
    /// HTTP `tracker id`, to send back as `trackerid`.
    pub tracker_id: Option<Vec<u8>>,
}

/// Scrape figures of one swarm (BEP 48 / BEP 15).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ScrapeStats {
    /// Seeders.
    pub complete: u32,
    /// Completed downloads the tracker has seen.
    pub downloaded: u32,
    /// Leechers.
    pub incomplete: u32,
}
