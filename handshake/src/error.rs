//! Handshake errors.

use metainfo::InfoHashV1;

use crate::wire::PeerId;

/// Why a handshake failed because of what the peer sent (or did not send).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The first byte is not 19, the length of "BitTorrent protocol".
    #[error("protocol string length is {len}, expected 19 (not a BitTorrent peer?)")]
    BadProtocolLength {
        /// The byte received.
        len: u8,
    },
    /// The protocol string is not "BitTorrent protocol".
    #[error(
        "protocol string {:?} is not \"BitTorrent protocol\"",
        String::from_utf8_lossy(found)
    )]
    BadProtocolString {
        /// The bytes received (at most 19).
        found: Vec<u8>,
    },
    /// An incoming peer asked for a torrent this node does not serve.
    #[error("peer asked for info hash {0}, which this node does not serve")]
    UnknownInfoHash(InfoHashV1),
    /// An outgoing connection answered with another torrent than the one we asked for.
    #[error("peer answered with info hash {found}, expected {expected}")]
    InfoHashMismatch {
        /// The info hash we sent.
        expected: InfoHashV1,
        /// The one it sent back.
        found: InfoHashV1,
    },
    /// The peer has our own peer id: we connected to ourselves.
    #[error("connected to ourselves (peer id {0})")]
    SelfConnection(PeerId),
    /// The peer's id is not the one its contact (a tracker, say) announced.
    #[error("peer id {found}, expected {expected}")]
    PeerIdMismatch {
        /// The announced id.
        expected: PeerId,
        /// The id in the handshake.
        found: PeerId,
    },
    /// The encryption negotiation (MSE/PE) failed.
    #[error("encryption negotiation failed: {0}")]
    Mse(#[from] crate::mse::MseError),
}
