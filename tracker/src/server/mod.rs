//! The tracker server core shared by the UDP, HTTP and WebSocket front ends.

mod rate;
mod swarms;

pub use rate::{RateLimit, RateLimiter};

pub use swarms::{
    AnnounceCounts, AnnounceRefused, AnnounceReply, ConnId, EventCounts, MAX_BYTES_PER_PEER,
    PeerAnnounce, Reach, ServerConfig, Swarms,
};
