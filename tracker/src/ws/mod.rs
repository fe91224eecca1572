//! The WebSocket (WebTorrent) tracker: JSON message codec and the offer/answer relay core.
//!
//! One WebSocket per tracker carries announces for many swarms. Peers do not get addresses:
//! an announce carries WebRTC offers, which the tracker forwards to other peers of the swarm;
//! their answers come back through the tracker. See the crate docs for what is implemented.

mod relay;
mod wire;

pub use relay::{ConnId, MAX_QUEUED, MAX_SWARMS_PER_CONNECTION, WsRelay};
pub use wire::{
    ClientMessage, MAX_MESSAGE, MAX_OFFERS, MAX_SDP, Offer, Sdp, ServerMessage, WsAnnounce,
    WsAnswer, WsDecodeError, from_binary_string, to_binary_string,
};
