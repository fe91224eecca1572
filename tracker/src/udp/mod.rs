//! The UDP tracker protocol (BEP 15): packet codec, client state machine, server front end.

mod client;
mod server;
pub(crate) mod wire;

pub use client::{
    RequestId, UdpClient, UdpClientConfig, UdpClientError, UdpClientEvent, UdpRequestError,
};
pub use server::{CONNECTION_ID_EPOCH, MAX_REPLY, UdpOutcome, UdpServer};
pub use wire::{
    ANNOUNCE_REQUEST_LEN, AddrFamily, AnnounceRequest, CONNECT_LEN, MAX_SCRAPE_HASHES, PROTOCOL_ID,
    Request, Response, UdpDecodeError, request_transaction_id,
};
pub(crate) use wire::{decode_compact_peers, encode_compact_peers};
