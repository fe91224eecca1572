//! Info hash newtypes shared by every rivulet crate that names a torrent.

use std::fmt;
use std::str::FromStr;

/// A BitTorrent v1 info hash: SHA-1 of the bencoded `info` dictionary (BEP 3).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct InfoHashV1(pub [u8; 20]);

/// A BitTorrent v2 info hash: SHA-256 of the bencoded `info` dictionary (BEP 52).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct InfoHashV2(pub [u8; 32]);

/// The info hash(es) that identify a torrent: v1, v2 or both (a hybrid torrent).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum InfoHash {
    /// A v1-only torrent.
    V1(InfoHashV1),
    /// A v2-only torrent.
    V2(InfoHashV2),
    /// A hybrid torrent, valid in both swarms.
    Hybrid(InfoHashV1, InfoHashV2),
}

/// A hex string that is not a valid hash of the expected length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HexError {
    /// The string has the wrong number of characters.
    #[error("expected {expected} hex characters, got {got}")]
    Length {
        /// Characters expected (40 or 64).
        expected: usize,
        /// Characters found.
        got: usize,
    },
    /// A character is not a hex digit.
    #[error("invalid hex character {ch:?} at offset {offset}")]
    Char {
        /// The offending character.
        ch: char,
        /// Its byte offset in the string.
        offset: usize,
    },
}

pub(crate) fn decode_hex<const N: usize>(s: &str) -> Result<[u8; N], HexError> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return Err(HexError::Length {
            expected: 2 * N,
            got: b.len(),
        });
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        let nib = |j: usize| -> Result<u8, HexError> {
            let c = b[j];
            match c {
                b'0'..=b'9' => Ok(c - b'0'),
                b'a'..=b'f' => Ok(c - b'a' + 10),
                b'A'..=b'F' => Ok(c - b'A' + 10),
                _ => Err(HexError::Char {
                    ch: s[j..].chars().next().unwrap_or('?'),
                    offset: j,
                }),
            }
        };
        *o = (nib(2 * i)? << 4) | nib(2 * i + 1)?;
    }
    Ok(out)
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

impl InfoHashV1 {
    /// The raw 20 bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
    /// Lowercase hex, 40 characters.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

impl InfoHashV2 {
    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// The first 20 bytes, which stand for a v2 torrent wherever the wire has room
    /// for only 20 (the peer handshake, trackers, the DHT; BEP 52).
    pub fn truncated(&self) -> InfoHashV1 {
        let mut t = [0u8; 20];
        t.copy_from_slice(&self.0[..20]);
        InfoHashV1(t)
    }
    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

impl InfoHash {
    /// The v1 hash, if the torrent has one.
    pub fn v1(&self) -> Option<InfoHashV1> {
        match self {
            InfoHash::V1(h) | InfoHash::Hybrid(h, _) => Some(*h),
            InfoHash::V2(_) => None,
        }
    }
    /// The v2 hash, if the torrent has one.
    pub fn v2(&self) -> Option<InfoHashV2> {
        match self {
            InfoHash::V2(h) | InfoHash::Hybrid(_, h) => Some(*h),
            InfoHash::V1(_) => None,
        }
    }
    /// The 20 bytes that name this torrent on the wire: the v1 hash if there is one,
    /// else the truncated v2 hash.
    pub fn wire_id(&self) -> InfoHashV1 {
        match self {
            InfoHash::V1(h) | InfoHash::Hybrid(h, _) => *h,
            InfoHash::V2(h) => h.truncated(),
        }
    }
}

impl fmt::Display for InfoHashV1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}
impl fmt::Debug for InfoHashV1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHashV1({self})")
    }
}
impl fmt::Display for InfoHashV2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}
impl fmt::Debug for InfoHashV2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHashV2({self})")
    }
}

impl FromStr for InfoHashV1 {
    type Err = HexError;
    fn from_str(s: &str) -> Result<Self, HexError> {
        decode_hex::<20>(s).map(InfoHashV1)
    }
}
impl FromStr for InfoHashV2 {
    type Err = HexError;
    fn from_str(s: &str) -> Result<Self, HexError> {
        decode_hex::<32>(s).map(InfoHashV2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let h: InfoHashV1 = "0123456789abcdefABCDEF0123456789abcdef01".parse().unwrap();
        assert_eq!(h.to_hex(), "0123456789abcdefabcdef0123456789abcdef01");
        assert_eq!(
            "0123".parse::<InfoHashV1>(),
            Err(HexError::Length {
                expected: 40,
                got: 4
            })
        );
        assert_eq!(
            "g123456789abcdefABCDEF0123456789abcdef01".parse::<InfoHashV1>(),
            Err(HexError::Char { ch: 'g', offset: 0 })
        );
        let v2 = InfoHashV2([7; 32]);
        assert_eq!(v2.truncated().0, [7; 20]);
        assert_eq!(InfoHash::V2(v2).wire_id(), v2.truncated());
    }
}
