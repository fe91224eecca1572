//! The tracker server core shared by the UDP, HTTP and WebSocket front ends.

mod swarms;

pub use swarms::{
    AnnounceRefused, AnnounceReply, MAX_BYTES_PER_PEER, PeerAnnounce, ServerConfig, Swarms,
};
