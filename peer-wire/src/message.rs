//! The peer-wire messages (BEP 3, 6, 10, 52) and their length-prefixed framing.
//!
//! Every message on the wire is `<length: u32 BE><id: u8><payload>`; a length of zero
//! is a keep-alive. [`Decoder::decode`] takes complete frames off the front of a
//! [`BytesMut`] without copying payloads (a piece's data is a [`Bytes`] slice of the
//! receive buffer); [`decode`] works on a plain slice and copies the frame once.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::DecodeError;

/// The largest block a request may ask for by convention (16 KiB).
pub const BLOCK_SIZE: u32 = 16 * 1024;

/// The default frame limit: one 16 KiB block plus generous room for headers
/// (17 KiB). Raise it with [`Decoder::with_max_frame_len`] for torrents whose bitfield
/// exceeds it (more than 139 264 pieces).
pub const DEFAULT_MAX_FRAME_LEN: u32 = BLOCK_SIZE + 1024;

/// Message ids.
pub mod id {
    /// BEP 3 `choke`.
    pub const CHOKE: u8 = 0;
    /// BEP 3 `unchoke`.
    pub const UNCHOKE: u8 = 1;
    /// BEP 3 `interested`.
    pub const INTERESTED: u8 = 2;
    /// BEP 3 `not interested`.
    pub const NOT_INTERESTED: u8 = 3;
    /// BEP 3 `have`.
    pub const HAVE: u8 = 4;
    /// BEP 3 `bitfield`.
    pub const BITFIELD: u8 = 5;
    /// BEP 3 `request`.
    pub const REQUEST: u8 = 6;
    /// BEP 3 `piece`.
    pub const PIECE: u8 = 7;
    /// BEP 3 `cancel`.
    pub const CANCEL: u8 = 8;
    /// BEP 5 `port`.
    pub const PORT: u8 = 9;
    /// BEP 6 `suggest piece`.
    pub const SUGGEST: u8 = 13;
    /// BEP 6 `have all`.
    pub const HAVE_ALL: u8 = 14;
    /// BEP 6 `have none`.
    pub const HAVE_NONE: u8 = 15;
    /// BEP 6 `reject request`.
    pub const REJECT: u8 = 16;
    /// BEP 6 `allowed fast`.
    pub const ALLOWED_FAST: u8 = 17;
    /// BEP 10 extended message.
    pub const EXTENDED: u8 = 20;
    /// BEP 52 `hash request`.
    pub const HASH_REQUEST: u8 = 21;
    /// BEP 52 `hashes`.
    pub const HASHES: u8 = 22;
    /// BEP 52 `hash reject`.
    pub const HASH_REJECT: u8 = 23;
}

/// A block request (also the payload of `cancel` and `reject request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRequest {
    /// Piece index.
    pub index: u32,
    /// Byte offset within the piece.
    pub begin: u32,
    /// Length in bytes.
    pub length: u32,
}

/// A block of piece data (the payload of `piece`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Piece index.
    pub index: u32,
    /// Byte offset within the piece.
    pub begin: u32,
    /// The data, sharing the receive buffer.
    pub data: Bytes,
}

impl Block {
    /// The request this block answers.
    pub fn request(&self) -> BlockRequest {
        BlockRequest {
            index: self.index,
            begin: self.begin,
            // A decoded block is at most a frame long, which fits in u32.
            length: u32::try_from(self.data.len()).unwrap_or(u32::MAX),
        }
    }
}

/// A BEP 52 hash request (also the payload of `hash reject` and the header of `hashes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashRequest {
    /// The root of the file's piece-layer Merkle tree.
    pub pieces_root: [u8; 32],
    /// The tree layer the requested hashes are on (0 = leaf blocks).
    pub base_layer: u32,
    /// Index of the first requested hash within that layer.
    pub index: u32,
    /// Number of hashes requested.
    pub length: u32,
    /// Number of uncle-hash layers requested.
    pub proof_layers: u32,
}

const HASH_REQUEST_LEN: usize = 48;

impl HashRequest {
    fn put(&self, dst: &mut impl BufMut) {
        dst.put_slice(&self.pieces_root);
        dst.put_u32(self.base_layer);
        dst.put_u32(self.index);
        dst.put_u32(self.length);
        dst.put_u32(self.proof_layers);
    }
    fn get(mut b: &[u8]) -> Self {
        let mut pieces_root = [0u8; 32];
        b.copy_to_slice(&mut pieces_root);
        HashRequest {
            pieces_root,
            base_layer: b.get_u32(),
            index: b.get_u32(),
            length: b.get_u32(),
            proof_layers: b.get_u32(),
        }
    }
}

/// A BEP 52 `hashes` message: the request it answers, then the hashes (32 bytes each:
/// the requested ones followed by the proof).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashes {
    /// The request being answered.
    pub request: HashRequest,
    /// Concatenated 32-byte hashes (the length is a multiple of 32).
    pub hashes: Bytes,
}

impl Hashes {
    /// Iterates over the 32-byte hashes.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.hashes.chunks_exact(32)
    }
}

/// One peer-wire message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// A zero-length frame.
    KeepAlive,
    /// BEP 3: the sender will not serve requests.
    Choke,
    /// BEP 3: the sender will serve requests.
    Unchoke,
    /// BEP 3: the sender wants something the receiver has.
    Interested,
    /// BEP 3: the sender wants nothing the receiver has.
    NotInterested,
    /// BEP 3: the sender has completed a piece.
    Have(u32),
    /// BEP 3: which pieces the sender has, high bit of the first byte = piece 0.
    Bitfield(Bytes),
    /// BEP 3: a request for a block.
    Request(BlockRequest),
    /// BEP 3: a block of data.
    Piece(Block),
    /// BEP 3: withdraws a request.
    Cancel(BlockRequest),
    /// BEP 5: the sender's DHT port.
    Port(u16),
    /// BEP 6: the sender suggests downloading this piece.
    Suggest(u32),
    /// BEP 6: the sender has every piece.
    HaveAll,
    /// BEP 6: the sender has no piece.
    HaveNone,
    /// BEP 6: the sender will not serve this request.
    Reject(BlockRequest),
    /// BEP 6: the receiver may request this piece even while choked.
    AllowedFast(u32),
    /// BEP 10: an extension message; id 0 is the extension handshake.
    Extended {
        /// The extended message id (0 = handshake, else as the receiver assigned in `m`).
        id: u8,
        /// The payload (bencode, possibly followed by raw data).
        payload: Bytes,
    },
    /// BEP 52: a request for Merkle-tree hashes.
    HashRequest(HashRequest),
    /// BEP 52: the hashes asked for.
    Hashes(Hashes),
    /// BEP 52: the sender will not serve this hash request.
    HashReject(HashRequest),
    /// A message with an id this crate does not know; peers should ignore it.
    Unknown {
        /// The message id.
        id: u8,
        /// The payload.
        payload: Bytes,
    },
}

impl Message {
    /// The message id, or `None` for a keep-alive.
    pub fn id(&self) -> Option<u8> {
        Some(match self {
            Message::KeepAlive => return None,
            Message::Choke => id::CHOKE,
            Message::Unchoke => id::UNCHOKE,
            Message::Interested => id::INTERESTED,
            Message::NotInterested => id::NOT_INTERESTED,
            Message::Have(_) => id::HAVE,
            Message::Bitfield(_) => id::BITFIELD,
            Message::Request(_) => id::REQUEST,
            Message::Piece(_) => id::PIECE,
            Message::Cancel(_) => id::CANCEL,
            Message::Port(_) => id::PORT,
            Message::Suggest(_) => id::SUGGEST,
            Message::HaveAll => id::HAVE_ALL,
            Message::HaveNone => id::HAVE_NONE,
            Message::Reject(_) => id::REJECT,
            Message::AllowedFast(_) => id::ALLOWED_FAST,
            Message::Extended { .. } => id::EXTENDED,
            Message::HashRequest(_) => id::HASH_REQUEST,
            Message::Hashes(_) => id::HASHES,
            Message::HashReject(_) => id::HASH_REJECT,
            Message::Unknown { id, .. } => *id,
        })
    }

    /// The length of the payload (after the id byte).
    fn payload_len(&self) -> usize {
        match self {
            Message::KeepAlive
            | Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => 0,
            Message::Have(_) | Message::Suggest(_) | Message::AllowedFast(_) => 4,
            Message::Port(_) => 2,
            Message::Bitfield(b) => b.len(),
            Message::Request(_) | Message::Cancel(_) | Message::Reject(_) => 12,
            Message::Piece(b) => 8 + b.data.len(),
            Message::Extended { payload, .. } => 1 + payload.len(),
            Message::HashRequest(_) | Message::HashReject(_) => HASH_REQUEST_LEN,
            Message::Hashes(h) => HASH_REQUEST_LEN + h.hashes.len(),
            Message::Unknown { payload, .. } => payload.len(),
        }
    }

    /// The number of bytes [`encode`](Self::encode) writes, length prefix included.
    pub fn encoded_len(&self) -> usize {
        match self {
            Message::KeepAlive => 4,
            _ => 5 + self.payload_len(),
        }
    }

    /// Writes the framed message (length prefix, id, payload).
    ///
    /// A message longer than `u32::MAX` bytes cannot be framed; its length prefix is
    /// saturated (the caller built it, peers never can).
    pub fn encode(&self, dst: &mut impl BufMut) {
        let Some(id) = self.id() else {
            dst.put_u32(0);
            return;
        };
        dst.put_u32(u32::try_from(1 + self.payload_len()).unwrap_or(u32::MAX));
        dst.put_u8(id);
        match self {
            Message::KeepAlive
            | Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => {}
            Message::Have(i) | Message::Suggest(i) | Message::AllowedFast(i) => dst.put_u32(*i),
            Message::Port(p) => dst.put_u16(*p),
            Message::Bitfield(b) => dst.put_slice(b),
            Message::Request(r) | Message::Cancel(r) | Message::Reject(r) => {
                dst.put_u32(r.index);
                dst.put_u32(r.begin);
                dst.put_u32(r.length);
            }
            Message::Piece(b) => {
                dst.put_u32(b.index);
                dst.put_u32(b.begin);
                dst.put_slice(&b.data);
            }
            Message::Extended { id, payload } => {
                dst.put_u8(*id);
                dst.put_slice(payload);
            }
            Message::HashRequest(r) | Message::HashReject(r) => r.put(dst),
            Message::Hashes(h) => {
                h.request.put(dst);
                dst.put_slice(&h.hashes);
            }
            Message::Unknown { payload, .. } => dst.put_slice(payload),
        }
    }

    /// The encoded message in a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut b);
        b.freeze()
    }

    /// Parses one frame body (the bytes after the length prefix: id and payload; empty
    /// for a keep-alive). Payloads are slices of `frame`.
    pub fn parse_frame(frame: Bytes) -> Result<Message, DecodeError> {
        parse_body(&frame, |start| frame.slice(start..))
    }
}

/// Whether a message with this id carries a [`Bytes`] payload (and so needs the frame
/// as `Bytes`); fixed-size messages are parsed straight from the buffer.
fn has_payload(id: u8) -> bool {
    !matches!(
        id,
        id::CHOKE
            | id::UNCHOKE
            | id::INTERESTED
            | id::NOT_INTERESTED
            | id::HAVE
            | id::REQUEST
            | id::CANCEL
            | id::PORT
            | id::SUGGEST
            | id::HAVE_ALL
            | id::HAVE_NONE
            | id::REJECT
            | id::ALLOWED_FAST
            | id::HASH_REQUEST
            | id::HASH_REJECT
    )
}

/// Parses a frame body; `tail(start)` returns `frame[start..]` as [`Bytes`] (called at
/// most once, only for messages that carry a payload).
fn parse_body(frame: &[u8], tail: impl FnOnce(usize) -> Bytes) -> Result<Message, DecodeError> {
    let Some((&id, mut p)) = frame.split_first() else {
        return Ok(Message::KeepAlive);
    };
    let len = p.len();
    let exact = |name: &'static str, n: usize, expected: &'static str| {
        if len == n {
            Ok(())
        } else {
            Err(DecodeError::BadLength {
                id,
                name,
                len,
                expected,
            })
        }
    };
    let request = |mut b: &[u8]| BlockRequest {
        index: b.get_u32(),
        begin: b.get_u32(),
        length: b.get_u32(),
    };
    Ok(match id {
        id::CHOKE => exact("choke", 0, "0").map(|()| Message::Choke)?,
        id::UNCHOKE => exact("unchoke", 0, "0").map(|()| Message::Unchoke)?,
        id::INTERESTED => exact("interested", 0, "0").map(|()| Message::Interested)?,
        id::NOT_INTERESTED => exact("not interested", 0, "0").map(|()| Message::NotInterested)?,
        id::HAVE => {
            exact("have", 4, "4")?;
            Message::Have(p.get_u32())
        }
        id::BITFIELD => Message::Bitfield(tail(1)),
        id::REQUEST => {
            exact("request", 12, "12")?;
            Message::Request(request(p))
        }
        id::PIECE => {
            if len < 8 {
                return Err(DecodeError::BadLength {
                    id,
                    name: "piece",
                    len,
                    expected: "at least 8",
                });
            }
            Message::Piece(Block {
                index: p.get_u32(),
                begin: p.get_u32(),
                data: tail(9),
            })
        }
        id::CANCEL => {
            exact("cancel", 12, "12")?;
            Message::Cancel(request(p))
        }
        id::PORT => {
            exact("port", 2, "2")?;
            Message::Port(p.get_u16())
        }
        id::SUGGEST => {
            exact("suggest piece", 4, "4")?;
            Message::Suggest(p.get_u32())
        }
        id::HAVE_ALL => exact("have all", 0, "0").map(|()| Message::HaveAll)?,
        id::HAVE_NONE => exact("have none", 0, "0").map(|()| Message::HaveNone)?,
        id::REJECT => {
            exact("reject request", 12, "12")?;
            Message::Reject(request(p))
        }
        id::ALLOWED_FAST => {
            exact("allowed fast", 4, "4")?;
            Message::AllowedFast(p.get_u32())
        }
        id::EXTENDED => {
            if len < 1 {
                return Err(DecodeError::BadLength {
                    id,
                    name: "extended",
                    len,
                    expected: "at least 1",
                });
            }
            Message::Extended {
                id: p.get_u8(),
                payload: tail(2),
            }
        }
        id::HASH_REQUEST => {
            exact("hash request", HASH_REQUEST_LEN, "48")?;
            Message::HashRequest(HashRequest::get(p))
        }
        id::HASH_REJECT => {
            exact("hash reject", HASH_REQUEST_LEN, "48")?;
            Message::HashReject(HashRequest::get(p))
        }
        id::HASHES => {
            if len < HASH_REQUEST_LEN || (len - HASH_REQUEST_LEN) % 32 != 0 {
                return Err(DecodeError::BadLength {
                    id,
                    name: "hashes",
                    len,
                    expected: "48 plus a multiple of 32",
                });
            }
            Message::Hashes(Hashes {
                request: HashRequest::get(&p[..HASH_REQUEST_LEN]),
                hashes: tail(1 + HASH_REQUEST_LEN),
            })
        }
        _ => Message::Unknown {
            id,
            payload: tail(1),
        },
    })
}

/// Splits frames off a receive buffer, enforcing a maximum frame length.
///
/// ```
/// use bytes::BytesMut;
/// use rivulet_peer_wire::{Decoder, Message};
///
/// let mut buf = BytesMut::from(&[0, 0, 0, 5, 4, 0, 0, 0, 7, 0, 0][..]);
/// let dec = Decoder::new();
/// assert_eq!(dec.decode(&mut buf).unwrap(), Some(Message::Have(7)));
/// assert_eq!(dec.decode(&mut buf).unwrap(), None); // two bytes of the next frame
/// assert_eq!(buf.len(), 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoder {
    max_frame_len: u32,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder with the [`DEFAULT_MAX_FRAME_LEN`] limit.
    pub const fn new() -> Self {
        Decoder {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
        }
    }

    /// A decoder accepting frames (id and payload) of up to `max` bytes.
    pub const fn with_max_frame_len(max: u32) -> Self {
        Decoder { max_frame_len: max }
    }

    /// The frame limit.
    pub const fn max_frame_len(&self) -> u32 {
        self.max_frame_len
    }

    /// Checks the length prefix at the start of `buf`: `Ok(None)` if fewer than four
    /// bytes are buffered, else the frame length (without the prefix).
    pub fn frame_len(&self, buf: &[u8]) -> Result<Option<usize>, DecodeError> {
        let Some(prefix) = buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        if len > self.max_frame_len {
            return Err(DecodeError::FrameTooLong {
                len,
                max: self.max_frame_len,
            });
        }
        Ok(Some(len as usize))
    }

    /// Takes one complete message off the front of `buf`, or returns `Ok(None)` (and
    /// leaves `buf` alone) if it does not hold a whole frame yet. Payloads share `buf`'s
    /// allocation.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        let Some(len) = self.frame_len(buf)? else {
            return Ok(None);
        };
        if buf.len() < 4 + len {
            // Reserve only what the (already bounded) length justifies.
            buf.reserve(4 + len - buf.len());
            return Ok(None);
        }
        if len > 0 && !has_payload(buf[4]) {
            // Fixed-size message: parse in place, no `Bytes` handle.
            let msg = parse_body(&buf[4..4 + len], |start| {
                Bytes::copy_from_slice(buf.get(4 + start..4 + len).unwrap_or_default())
            });
            buf.advance(4 + len);
            return msg.map(Some);
        }
        buf.advance(4);
        let frame = buf.split_to(len).freeze();
        Message::parse_frame(frame).map(Some)
    }

    /// Decodes one message from the start of a slice, returning it and the number of
    /// bytes it took, or `Ok(None)` if the slice does not hold a whole frame. A payload
    /// (piece data, bitfield, extended message) is copied once into a new [`Bytes`].
    pub fn decode_slice(&self, buf: &[u8]) -> Result<Option<(Message, usize)>, DecodeError> {
        let Some(len) = self.frame_len(buf)? else {
            return Ok(None);
        };
        let Some(frame) = buf.get(4..4 + len) else {
            return Ok(None);
        };
        let msg = parse_body(frame, |start| Bytes::copy_from_slice(&frame[start..]))?;
        Ok(Some((msg, 4 + len)))
    }
}

/// Decodes one message from the start of `buf` with the default frame limit; see
/// [`Decoder::decode_slice`].
///
/// ```
/// use rivulet_peer_wire::{decode, Message};
/// assert_eq!(decode(&[0, 0, 0, 1, 2]).unwrap(), Some((Message::Interested, 5)));
/// assert_eq!(decode(&[0, 0, 0, 1]).unwrap(), None);
/// ```
pub fn decode(buf: &[u8]) -> Result<Option<(Message, usize)>, DecodeError> {
    Decoder::new().decode_slice(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings() {
        let cases: Vec<(Message, &[u8])> = vec![
            (Message::KeepAlive, &[0, 0, 0, 0]),
            (Message::Choke, &[0, 0, 0, 1, 0]),
            (Message::Unchoke, &[0, 0, 0, 1, 1]),
            (Message::Have(0x01020304), &[0, 0, 0, 5, 4, 1, 2, 3, 4]),
            (Message::Port(6881), &[0, 0, 0, 3, 9, 0x1a, 0xe1]),
            (
                Message::Request(BlockRequest {
                    index: 1,
                    begin: 0x4000,
                    length: 0x4000,
                }),
                &[0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0],
            ),
            (Message::HaveAll, &[0, 0, 0, 1, 14]),
            (
                Message::Extended {
                    id: 0,
                    payload: Bytes::from_static(b"de"),
                },
                &[0, 0, 0, 4, 20, 0, b'd', b'e'],
            ),
        ];
        for (msg, wire) in cases {
            assert_eq!(&msg.to_bytes()[..], wire, "{msg:?}");
            assert_eq!(msg.encoded_len(), wire.len());
            assert_eq!(decode(wire).unwrap(), Some((msg, wire.len())));
        }
    }

    #[test]
    fn bad_lengths_are_typed() {
        assert_eq!(
            decode(&[0, 0, 0, 2, 0, 0]),
            Err(DecodeError::BadLength {
                id: 0,
                name: "choke",
                len: 1,
                expected: "0"
            })
        );
        assert!(matches!(
            decode(&[0, 0, 0, 4, 7, 0, 0, 0]),
            Err(DecodeError::BadLength { id: 7, .. })
        ));
        assert!(matches!(
            decode(&[0, 0, 0, 50, 22, 0, 0, 0]),
            Ok(None) // incomplete: length is checked when the frame is whole
        ));
        let mut hashes = vec![0, 0, 0, 49 + 31, 22];
        hashes.extend([0u8; 48 + 31]);
        assert!(matches!(
            decode(&hashes),
            Err(DecodeError::BadLength { id: 22, .. })
        ));
    }

    #[test]
    fn oversize_frame_rejected_before_allocating() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 7][..]);
        let err = Decoder::new().decode(&mut buf).unwrap_err();
        assert_eq!(
            err,
            DecodeError::FrameTooLong {
                len: u32::MAX,
                max: DEFAULT_MAX_FRAME_LEN
            }
        );
        assert!(buf.capacity() < 1024);
        // A larger limit accepts it.
        let dec = Decoder::with_max_frame_len(40_000);
        let mut buf = BytesMut::new();
        Message::Bitfield(Bytes::from(vec![0xff; 30_000])).encode(&mut buf);
        assert!(matches!(
            dec.decode(&mut buf),
            Ok(Some(Message::Bitfield(_)))
        ));
    }

    #[test]
    fn piece_shares_the_buffer() {
        let msg = Message::Piece(Block {
            index: 3,
            begin: 16384,
            data: Bytes::from(vec![7u8; 16384]),
        });
        let mut buf = BytesMut::new();
        msg.encode(&mut buf);
        let base = buf.as_ptr() as usize;
        let Some(Message::Piece(b)) = Decoder::new().decode(&mut buf).unwrap() else {
            panic!("not a piece");
        };
        assert_eq!(b.data.as_ptr() as usize, base + 13);
        assert_eq!(b.request().length, 16384);
    }
}
