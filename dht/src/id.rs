//! 160-bit identifiers: node ids, info hashes, BEP 44 targets; the XOR metric; BEP 42.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use sha1::{Digest, Sha1};

/// A 160-bit identifier in the DHT keyspace: a node id, an info hash or a BEP 44 target.
///
/// [`NodeId`] and [`Hash`](tyalias@Hash) are aliases of this type, used where the role matters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; 20]);

/// A node's identifier (BEP 5).
pub type NodeId = Id;
/// A key looked up in the DHT: an info hash, or the SHA-1 of a name or of a BEP 44 item.
pub type Hash = Id;

/// The XOR distance between two [`Id`]s; compares as a 160-bit big-endian integer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Distance(pub [u8; 20]);

impl Distance {
    /// The number of leading zero bits (160 for the distance of an id to itself).
    pub fn leading_zeros(&self) -> usize {
        leading_zeros(&self.0)
    }
}

fn leading_zeros(b: &[u8; 20]) -> usize {
    for (i, byte) in b.iter().enumerate() {
        if *byte != 0 {
            return i * 8 + byte.leading_zeros() as usize;
        }
    }
    160
}

/// Error returned when parsing an [`Id`] from hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an id is 40 hex digits")]
pub struct ParseIdError;

impl Id {
    /// The all-zero id.
    pub const ZERO: Id = Id([0; 20]);

    /// The SHA-1 of `name`: a rendezvous key two applications can agree on by name
    /// (for example a chat room).
    ///
    /// ```
    /// let a = rivulet_dht::Hash::from_name("room name");
    /// assert_eq!(a, rivulet_dht::Hash::from_name("room name"));
    /// assert_ne!(a, rivulet_dht::Hash::from_name("other room"));
    /// ```
    pub fn from_name(name: &str) -> Id {
        Id::sha1(name.as_bytes())
    }

    /// The SHA-1 of arbitrary bytes.
    pub fn sha1(data: &[u8]) -> Id {
        let mut h = Sha1::new();
        h.update(data);
        Id(h.finalize().into())
    }

    /// The id from a 20-byte slice; `None` for any other length.
    pub fn from_slice(b: &[u8]) -> Option<Id> {
        b.try_into().ok().map(Id)
    }

    /// A uniformly random id.
    pub fn random(rng: &mut impl rand::Rng) -> Id {
        let mut b = [0u8; 20];
        rng.fill(&mut b[..]);
        Id(b)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// The XOR distance to `other`.
    pub fn distance(&self, other: &Id) -> Distance {
        let mut d = [0u8; 20];
        for (i, x) in d.iter_mut().enumerate() {
            *x = self.0[i] ^ other.0[i];
        }
        Distance(d)
    }

    /// How many leading bits `self` and `other` share (160 when equal).
    pub fn common_prefix_len(&self, other: &Id) -> usize {
        self.distance(other).leading_zeros()
    }

    /// The bit at `index` (0 = most significant).
    pub fn bit(&self, index: usize) -> bool {
        index < 160 && self.0[index / 8] & (0x80 >> (index % 8)) != 0
    }

    /// A BEP 42 node id for the external address `ip`: the first 21 bits derive from a
    /// CRC32-C of the masked address and the low 3 bits of `rand`; the last byte is
    /// `rand`; the rest is taken from `rest`.
    pub fn secure(ip: IpAddr, rand: u8, rest: [u8; 20]) -> Id {
        let crc = bep42_crc(ip, rand);
        let mut id = rest;
        id[0] = (crc >> 24) as u8;
        id[1] = (crc >> 16) as u8;
        id[2] = ((crc >> 8) as u8 & 0xf8) | (rest[2] & 0x07);
        id[19] = rand;
        Id(id)
    }

    /// A random BEP 42 node id for `ip`.
    pub fn random_secure(ip: IpAddr, rng: &mut impl rand::Rng) -> Id {
        let mut rest = [0u8; 20];
        rng.fill(&mut rest[..]);
        Id::secure(ip, rest[19], rest)
    }

    /// Whether this id is valid for `ip` under BEP 42. Local addresses (loopback,
    /// private, link-local) are exempt and always valid.
    pub fn is_secure_for(&self, ip: IpAddr) -> bool {
        if is_local(ip) {
            return true;
        }
        let crc = bep42_crc(ip, self.0[19]);
        self.0[0] == (crc >> 24) as u8
            && self.0[1] == (crc >> 16) as u8
            && (self.0[2] & 0xf8) == ((crc >> 8) as u8 & 0xf8)
    }
}

/// Whether `ip` is exempt from BEP 42 (loopback, private, link-local, unspecified).
pub fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

fn bep42_crc(ip: IpAddr, rand: u8) -> u32 {
    let r = rand & 0x07;
    match ip {
        IpAddr::V4(v4) => {
            let mut b = v4.octets();
            let mask = [0x03, 0x0f, 0x3f, 0xff];
            for (x, m) in b.iter_mut().zip(mask) {
                *x &= m;
            }
            b[0] |= r << 5;
            crc32c(&b)
        }
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let mut b = [0u8; 8];
            let mask = [0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff];
            for i in 0..8 {
                b[i] = o[i] & mask[i];
            }
            b[0] |= r << 5;
            crc32c(&b)
        }
    }
}

/// CRC32-C (Castagnoli), bitwise; only used on 4 or 8 bytes.
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({self})")
    }
}

impl FromStr for Id {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Id, ParseIdError> {
        let s = s.as_bytes();
        if s.len() != 40 {
            return Err(ParseIdError);
        }
        let mut out = [0u8; 20];
        for (i, pair) in s.chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16).ok_or(ParseIdError)?;
            let lo = (pair[1] as char).to_digit(16).ok_or(ParseIdError)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Ok(Id(out))
    }
}

impl From<[u8; 20]> for Id {
    fn from(b: [u8; 20]) -> Id {
        Id(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn bep42_vectors() {
        // The test vectors from BEP 42.
        let cases = [
            ("124.31.75.21", 1u8, "5fbfbf"),
            ("21.75.31.124", 86, "5a3ce9"),
            ("65.23.51.170", 22, "a5d432"),
            ("84.124.73.14", 65, "1b0321"),
            ("43.213.53.83", 90, "e56f6c"),
        ];
        for (ip, rand, prefix) in cases {
            let ip: IpAddr = ip.parse().unwrap();
            let id = Id::secure(ip, rand, [0; 20]);
            let hex = id.to_string();
            // Only the top 21 bits are fixed by the address.
            let want = u32::from_str_radix(prefix, 16).unwrap() & 0x00ff_fff8;
            let got = u32::from_str_radix(&hex[..6], 16).unwrap() & 0x00ff_fff8;
            assert_eq!(got, want, "{ip}");
            assert_eq!(id.0[19], rand);
            assert!(id.is_secure_for(ip));
            let other: IpAddr = "1.2.3.4".parse().unwrap();
            assert!(!id.is_secure_for(other) || ip == other);
        }
    }

    #[test]
    fn distance_and_prefix() {
        let a = Id([0; 20]);
        let mut b = [0u8; 20];
        b[2] = 0x10;
        let b = Id(b);
        assert_eq!(a.common_prefix_len(&b), 19);
        assert_eq!(a.common_prefix_len(&a), 160);
        assert!(a.distance(&b) > a.distance(&a));
        assert!(b.bit(19));
        assert!(!b.bit(18));
    }

    #[test]
    fn hex_round_trip() {
        let id = Id::from_name("x");
        assert_eq!(id.to_string().parse::<Id>().unwrap(), id);
        assert!("zz".parse::<Id>().is_err());
        assert!("z".repeat(40).parse::<Id>().is_err());
    }
}
