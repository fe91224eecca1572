//! Piece availability bitfields.

use bytes::Bytes;

/// Why a received bitfield is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BitfieldError {
    /// The bitfield has the wrong number of bytes for the torrent.
    #[error("bitfield has {got} bytes, expected {expected} for {pieces} pieces")]
    WrongLength {
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        expected: usize,
        /// Pieces in the torrent.
        pieces: u32,
    },
    /// Bits past the last piece are set.
    #[error("bitfield has spare bits set after piece {pieces}")]
    SpareBits {
        /// Pieces in the torrent.
        pieces: u32,
    },
}

/// Which pieces a peer has; bit 7 of byte 0 is piece 0 (BEP 3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: u32,
}

impl Bitfield {
    /// An empty bitfield for `len` pieces.
    pub fn new(len: u32) -> Self {
        Bitfield {
            bytes: vec![0; len.div_ceil(8) as usize],
            len,
        }
    }

    /// A full bitfield for `len` pieces.
    pub fn full(len: u32) -> Self {
        let mut b = Bitfield {
            bytes: vec![0xff; len.div_ceil(8) as usize],
            len,
        };
        b.clear_spare();
        b
    }

    fn clear_spare(&mut self) {
        let rem = self.len % 8;
        if rem != 0 {
            if let Some(last) = self.bytes.last_mut() {
                *last &= 0xffu8 << (8 - rem);
            }
        }
    }

    /// Validates a received bitfield against the torrent's piece count.
    pub fn from_bytes(bytes: &[u8], len: u32) -> Result<Self, BitfieldError> {
        let expected = len.div_ceil(8) as usize;
        if bytes.len() != expected {
            return Err(BitfieldError::WrongLength {
                got: bytes.len(),
                expected,
                pieces: len,
            });
        }
        let b = Bitfield {
            bytes: bytes.to_vec(),
            len,
        };
        let mut clean = b.clone();
        clean.clear_spare();
        if clean != b {
            return Err(BitfieldError::SpareBits { pieces: len });
        }
        Ok(b)
    }

    /// The number of pieces.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the torrent has no pieces.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `piece` is set (false when out of range).
    pub fn has(&self, piece: u32) -> bool {
        piece < self.len
            && self
                .bytes
                .get((piece / 8) as usize)
                .is_some_and(|b| b & (0x80 >> (piece % 8)) != 0)
    }

    /// Sets `piece`; returns false if it is out of range.
    pub fn set(&mut self, piece: u32) -> bool {
        if piece >= self.len {
            return false;
        }
        if let Some(b) = self.bytes.get_mut((piece / 8) as usize) {
            *b |= 0x80 >> (piece % 8);
        }
        true
    }

    /// The number of pieces set.
    pub fn count(&self) -> u32 {
        self.bytes.iter().map(|b| b.count_ones()).sum()
    }

    /// Whether every piece is set.
    pub fn is_full(&self) -> bool {
        self.count() == self.len
    }

    /// The wire bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The wire bytes as a message payload.
    pub fn to_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(&self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_and_validation() {
        let mut b = Bitfield::new(10);
        assert!(b.set(0) && b.set(9) && !b.set(10));
        assert_eq!(b.as_bytes(), [0x80, 0x40]);
        assert!(b.has(9) && !b.has(8) && !b.has(100));
        assert_eq!(Bitfield::full(10).as_bytes(), [0xff, 0xc0]);
        assert!(Bitfield::full(10).is_full());
        assert_eq!(
            Bitfield::from_bytes(&[0xff, 0xe0], 10),
            Err(BitfieldError::SpareBits { pieces: 10 })
        );
        assert!(matches!(
            Bitfield::from_bytes(&[0xff], 10),
            Err(BitfieldError::WrongLength {
                got: 1,
                expected: 2,
                ..
            })
        ));
        assert_eq!(Bitfield::from_bytes(&[0x80, 0x40], 10).unwrap(), b);
    }
}
