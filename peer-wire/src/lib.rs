//! `rivulet-peer-wire`: the BitTorrent peer wire protocol as a sans-IO codec.
//!
//! - [`Message`]: every message of BEP 3 (keep-alive, choke, unchoke, interested, not
//!   interested, have, bitfield, request, piece, cancel), BEP 5 (port), BEP 6 (suggest,
//!   have all, have none, reject request, allowed fast), BEP 10 (extended) and BEP 52
//!   (hash request, hashes, hash reject). [`Decoder`] takes whole frames off a
//!   [`bytes::BytesMut`] — or says it needs more — and rejects frames longer than its
//!   limit before allocating; piece data is a zero-copy slice of the receive buffer.
//! - [`ExtensionHandshake`] (BEP 10), [`MetadataMessage`] (BEP 9 `ut_metadata`),
//!   [`PexMessage`] (BEP 11 `ut_pex`, IPv4 and IPv6).
//! - [`allowed_fast_set`]: the BEP 6 allowed-fast set.
//! - [`PeerState`]: per-peer protocol state, sans-IO (choking and interest both ways,
//!   requests with a bounded queue and timeouts, keep-alives, piece availability as a
//!   [`Bitfield`]), validating what the peer sends: a [`ProtocolError`] is a reason to
//!   close the connection. `examples/loopback_transfer.rs` runs two of them.
//! - [`PeerWireCodec`] (feature `tokio`, on by default): a `tokio_util::codec` adapter.
//!
//! It does not do the 68-byte handshake or encryption (see `rivulet-handshake`), and
//! it opens no sockets.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use rivulet_peer_wire::{Block, Decoder, Message};
//!
//! let mut wire = BytesMut::new();
//! Message::Unchoke.encode(&mut wire);
//! let piece = Message::Piece(Block { index: 0, begin: 0, data: Bytes::from_static(b"hello") });
//! piece.encode(&mut wire);
//!
//! let dec = Decoder::new();
//! assert_eq!(dec.decode(&mut wire)?, Some(Message::Unchoke));
//! assert_eq!(dec.decode(&mut wire)?, Some(piece));
//! assert_eq!(dec.decode(&mut wire)?, None);
//! # Ok::<(), rivulet_peer_wire::DecodeError>(())
//! ```
#![warn(missing_docs)]

mod bitfield;
#[cfg(feature = "tokio")]
mod codec;
mod error;
mod extension;
mod fast;
mod message;
mod state;

pub use bitfield::{Bitfield, BitfieldError};
#[cfg(feature = "tokio")]
pub use codec::{CodecError, PeerWireCodec};
pub use error::{DecodeError, ExtensionError};
pub use extension::{
    ExtensionHandshake, HANDSHAKE_ID, METADATA_PIECE_LEN, MetadataMessage, PexFlags, PexMessage,
    UT_METADATA, UT_PEX,
};
pub use fast::allowed_fast_set;
pub use message::{
    BLOCK_SIZE, Block, BlockRequest, DEFAULT_MAX_FRAME_LEN, Decoder, HashRequest, Hashes, Message,
    decode, id,
};
pub use state::{Event, MAX_ALLOWED_FAST_IN, PeerConfig, PeerState, ProtocolError, UsageError};
