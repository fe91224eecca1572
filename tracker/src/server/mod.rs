//! The tracker server core shared by the UDP, HTTP and WebSocket front ends.

mod swarms;

pub use swarms::{
    AnnounceCounts, AnnounceRefused, AnnounceReply, ConnId, MAX_BYTES_PER_PEER, PeerAnnounce,
    Reach, ServerConfig, Swarms,
};
