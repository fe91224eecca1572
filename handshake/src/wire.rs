//! The 68-byte BitTorrent handshake (BEP 3) and its fields.

use std::fmt;

use bytes::BufMut;
use metainfo::InfoHashV1;

use crate::error::HandshakeError;

/// The protocol string, preceded on the wire by its length (19).
pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
/// The length of a handshake on the wire.
pub const HANDSHAKE_LEN: usize = 68;
/// The length of the part before the peer id (protocol string, reserved, info hash).
pub const HEADER_LEN: usize = 48;

/// A 20-byte peer id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PeerId(pub [u8; 20]);

impl PeerId {
    /// An Azureus-style id: `prefix` (such as `-RV0100-`) followed by random bytes
    /// from `rng` (printable, so ids read well in logs).
    pub fn generate(prefix: &[u8], rng: &mut impl rand::Rng) -> PeerId {
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut id = [0u8; 20];
        let n = prefix.len().min(20);
        id[..n].copy_from_slice(&prefix[..n]);
        for b in &mut id[n..] {
            *b = ALPHABET[rng.random_range(0..ALPHABET.len())];
        }
        PeerId(id)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

/// Printable ASCII as is, other bytes as `\xNN`.
impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in &self.0 {
            if b.is_ascii_graphic() {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// The 8 reserved bytes, which advertise protocol extensions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Reserved(pub [u8; 8]);

impl fmt::Debug for Reserved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reserved(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(
            f,
            "; ext={} fast={} dht={} v2={})",
            self.extension_protocol(),
            self.fast(),
            self.dht(),
            self.v2_upgrade()
        )
    }
}

impl Reserved {
    /// No extension bits.
    pub const NONE: Reserved = Reserved([0; 8]);
    /// BEP 10 extension protocol, BEP 6 fast extension and BEP 5 DHT: what a v1 client
    /// usually sends.
    pub const STANDARD: Reserved = Reserved([0, 0, 0, 0, 0, 0x10, 0, 0x05]);

    const fn bit(self, byte: usize, mask: u8) -> bool {
        self.0[byte] & mask != 0
    }
    const fn with_bit(mut self, byte: usize, mask: u8, on: bool) -> Self {
        if on {
            self.0[byte] |= mask;
        } else {
            self.0[byte] &= !mask;
        }
        self
    }

    /// BEP 10 extension protocol (byte 5, 0x10).
    pub const fn extension_protocol(self) -> bool {
        self.bit(5, 0x10)
    }
    /// BEP 6 fast extension (byte 7, 0x04).
    pub const fn fast(self) -> bool {
        self.bit(7, 0x04)
    }
    /// BEP 5 DHT, `port` message (byte 7, 0x01).
    pub const fn dht(self) -> bool {
        self.bit(7, 0x01)
    }
    /// BEP 52 upgrade to v2 for hybrid torrents (byte 7, 0x10).
    pub const fn v2_upgrade(self) -> bool {
        self.bit(7, 0x10)
    }
    /// Sets or clears the BEP 10 bit.
    pub const fn with_extension_protocol(self, on: bool) -> Self {
        self.with_bit(5, 0x10, on)
    }
    /// Sets or clears the BEP 6 bit.
    pub const fn with_fast(self, on: bool) -> Self {
        self.with_bit(7, 0x04, on)
    }
    /// Sets or clears the BEP 5 bit.
    pub const fn with_dht(self, on: bool) -> Self {
        self.with_bit(7, 0x01, on)
    }
    /// Sets or clears the BEP 52 bit.
    pub const fn with_v2_upgrade(self, on: bool) -> Self {
        self.with_bit(7, 0x10, on)
    }
    /// The bits both sides set: what a connection may use.
    pub fn intersection(self, other: Reserved) -> Reserved {
        let mut r = [0u8; 8];
        for (i, b) in r.iter_mut().enumerate() {
            *b = self.0[i] & other.0[i];
        }
        Reserved(r)
    }
}

/// A BitTorrent handshake.
///
/// ```
/// use metainfo::InfoHashV1;
/// use rivulet_handshake::{Handshake, PeerId, Reserved};
///
/// let hs = Handshake { reserved: Reserved::STANDARD, info_hash: InfoHashV1([1; 20]), peer_id: PeerId(*b"-RV0100-abcdefghijkl") };
/// let wire = hs.to_bytes();
/// assert_eq!(&wire[..20], b"\x13BitTorrent protocol");
/// assert_eq!(Handshake::parse(&wire).unwrap(), Some(hs));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handshake {
    /// Extension bits.
    pub reserved: Reserved,
    /// The torrent (v1 info hash, or a v2 info hash truncated to 20 bytes).
    pub info_hash: InfoHashV1,
    /// The sender's peer id.
    pub peer_id: PeerId,
}

/// The first 48 bytes: what a receiver needs to decide whether to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Extension bits.
    pub reserved: Reserved,
    /// The torrent.
    pub info_hash: InfoHashV1,
}

impl Header {
    /// Parses the first 48 bytes of a handshake: `Ok(None)` if fewer are given. Checks
    /// the protocol string as soon as its bytes arrive, so a non-BitTorrent peer is
    /// rejected early.
    pub fn parse(buf: &[u8]) -> Result<Option<Header>, HandshakeError> {
        check_protocol(buf)?;
        let Some(h) = buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let mut reserved = [0u8; 8];
        reserved.copy_from_slice(&h[20..28]);
        let mut info_hash = [0u8; 20];
        info_hash.copy_from_slice(&h[28..48]);
        Ok(Some(Header {
            reserved: Reserved(reserved),
            info_hash: InfoHashV1(info_hash),
        }))
    }
}

/// Checks whatever part of the 20-byte protocol prefix `buf` holds.
pub(crate) fn check_protocol(buf: &[u8]) -> Result<(), HandshakeError> {
    if let Some(&len) = buf.first() {
        if usize::from(len) != PROTOCOL.len() {
            return Err(HandshakeError::BadProtocolLength { len });
        }
    }
    let have = buf.len().min(20);
    if have > 1 && buf[1..have] != PROTOCOL[..have - 1] {
        return Err(HandshakeError::BadProtocolString {
            found: buf[1..have].to_vec(),
        });
    }
    Ok(())
}

impl Handshake {
    /// Writes the 68 bytes.
    pub fn encode(&self, dst: &mut impl BufMut) {
        dst.put_u8(PROTOCOL.len() as u8);
        dst.put_slice(PROTOCOL);
        dst.put_slice(&self.reserved.0);
        dst.put_slice(&self.info_hash.0);
        dst.put_slice(&self.peer_id.0);
    }

    /// The 68 bytes.
    pub fn to_bytes(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        self.encode(&mut &mut out[..]);
        out
    }

    /// Parses a handshake from the start of `buf`: `Ok(None)` if fewer than 68 bytes are
    /// given (after checking what is there). Bytes after the 68th are not looked at.
    pub fn parse(buf: &[u8]) -> Result<Option<Handshake>, HandshakeError> {
        let Some(header) = Header::parse(buf)? else {
            return Ok(None);
        };
        let Some(id) = buf.get(HEADER_LEN..HANDSHAKE_LEN) else {
            return Ok(None);
        };
        let mut peer_id = [0u8; 20];
        peer_id.copy_from_slice(id);
        Ok(Some(Handshake {
            reserved: header.reserved,
            info_hash: header.info_hash,
            peer_id: PeerId(peer_id),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_checked_early() {
        assert_eq!(
            Handshake::parse(b"\x12"),
            Err(HandshakeError::BadProtocolLength { len: 0x12 })
        );
        assert_eq!(Handshake::parse(b"\x13BitTorrent pro"), Ok(None),);
        assert_eq!(
            Handshake::parse(b"\x13BitTorrent PRO"),
            Err(HandshakeError::BadProtocolString {
                found: b"BitTorrent PRO".to_vec()
            })
        );
        assert_eq!(
            Handshake::parse(b"GET / HTTP/1.1\r\n"),
            Err(HandshakeError::BadProtocolLength { len: b'G' })
        );
    }

    #[test]
    fn reserved_bits() {
        let r = Reserved::STANDARD;
        assert!(r.extension_protocol() && r.fast() && r.dht() && !r.v2_upgrade());
        let r = Reserved::NONE.with_v2_upgrade(true).with_fast(true);
        assert_eq!(r.0, [0, 0, 0, 0, 0, 0, 0, 0x14]);
        assert_eq!(
            r.intersection(Reserved::STANDARD).0,
            [0, 0, 0, 0, 0, 0, 0, 0x04]
        );
        assert!(format!("{r:?}").contains("fast=true"));
    }

    #[test]
    fn peer_id_display_and_generate() {
        let id = PeerId(*b"-RV0100-\x00bcdefghijkl");
        assert_eq!(id.to_string(), "-RV0100-\\x00bcdefghijkl");
        let mut rng = rand::rng();
        let g = PeerId::generate(b"-RV0100-", &mut rng);
        assert!(g.0.starts_with(b"-RV0100-"));
        assert!(g.0.iter().all(u8::is_ascii_graphic));
    }
}
