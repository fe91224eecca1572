//! A tokio-util codec, for `Framed` transports (feature `tokio`).

use bytes::BytesMut;

use crate::error::DecodeError;
use crate::message::{Decoder, Message};

/// Why a framed peer connection failed: I/O, or a frame the peer got wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The transport failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent an invalid frame.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// [`tokio_util::codec`] adapter around [`Decoder`] and [`Message::encode`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use futures::{SinkExt, StreamExt};
/// use rivulet_peer_wire::{Message, PeerWireCodec};
/// use tokio_util::codec::Framed;
///
/// let (a, b) = tokio::io::duplex(1024);
/// let mut a = Framed::new(a, PeerWireCodec::default());
/// let mut b = Framed::new(b, PeerWireCodec::default());
/// a.send(Message::Interested).await.unwrap();
/// assert_eq!(b.next().await.unwrap().unwrap(), Message::Interested);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerWireCodec {
    decoder: Decoder,
}

impl PeerWireCodec {
    /// A codec with a custom frame limit.
    pub fn new(decoder: Decoder) -> Self {
        PeerWireCodec { decoder }
    }
}

impl tokio_util::codec::Decoder for PeerWireCodec {
    type Item = Message;
    type Error = CodecError;
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, CodecError> {
        Ok(self.decoder.decode(src)?)
    }
}

impl tokio_util::codec::Encoder<Message> for PeerWireCodec {
    type Error = CodecError;
    fn encode(&mut self, item: Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.reserve(item.encoded_len());
        item.encode(dst);
        Ok(())
    }
}

impl tokio_util::codec::Encoder<&Message> for PeerWireCodec {
    type Error = CodecError;
    fn encode(&mut self, item: &Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.reserve(item.encoded_len());
        item.encode(dst);
        Ok(())
    }
}
