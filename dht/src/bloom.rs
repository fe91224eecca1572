//! BEP 33 scrape bloom filters: 2048 bits, 2 hash functions over the SHA-1 of a peer's
//! IP address; the union of the filters of several nodes estimates the swarm size.

use std::net::IpAddr;

use crate::id::Id;

const M: usize = 2048;

/// A BEP 33 bloom filter (`BFsd` for seeds, `BFpe` for downloaders).
#[derive(Clone, PartialEq, Eq)]
pub struct ScrapeBloom(pub [u8; 256]);

impl Default for ScrapeBloom {
    fn default() -> Self {
        ScrapeBloom([0; 256])
    }
}

impl std::fmt::Debug for ScrapeBloom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScrapeBloom(~{:.1})", self.estimate())
    }
}

impl ScrapeBloom {
    /// An empty filter.
    pub fn new() -> ScrapeBloom {
        ScrapeBloom::default()
    }

    /// The filter from a 256-byte field; `None` for any other length.
    pub fn from_slice(b: &[u8]) -> Option<ScrapeBloom> {
        b.try_into().ok().map(ScrapeBloom)
    }

    /// Adds an address.
    pub fn insert(&mut self, ip: IpAddr) {
        let hash = match ip {
            IpAddr::V4(v4) => Id::sha1(&v4.octets()),
            IpAddr::V6(v6) => Id::sha1(&v6.octets()),
        };
        let h = hash.0;
        for index in [
            usize::from(h[0]) | usize::from(h[1]) << 8,
            usize::from(h[2]) | usize::from(h[3]) << 8,
        ] {
            let index = index % M;
            self.0[index / 8] |= 1 << (index % 8);
        }
    }

    /// Adds every address of `other` (bitwise or).
    pub fn union(&mut self, other: &ScrapeBloom) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
    }

    /// The estimated number of distinct addresses inserted.
    pub fn estimate(&self) -> f64 {
        let zeros: u32 = self.0.iter().map(|b| b.count_zeros()).sum();
        let m = M as f64;
        let c = f64::from(zeros).min(m - 1.0);
        (c / m).ln() / (2.0 * (1.0 - 1.0 / m).ln())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn bep33_test_vectors() {
        let mut f = ScrapeBloom::new();
        for i in 0..256u32 {
            f.insert(format!("192.0.2.{i}").parse().unwrap());
        }
        assert!((f.estimate() - 257.854).abs() < 0.001, "{}", f.estimate());
        assert!(hex(&f.0).starts_with("24c0004020043000102012743e00480037110820422110008000c0e3"));
        for i in 0..0x3e8u32 {
            f.insert(format!("2001:db8::{i:x}").parse().unwrap());
        }
        assert!((f.estimate() - 1224.93).abs() < 0.001, "{}", f.estimate());
        // The full filter, as libtorrent's test of the BEP 33 vectors has it.
        let want = concat!(
            "f6c3f5eaa07ffd91bde89f777f26fb2bff37bdb8fb2bbaa2fd3ddde7bacfff75",
            "ee7ccbaefe5eedb1fbfaff67f6abff5e43ddbca3fd9b9ffdf4ffd3e9dff12d1b",
            "df59db53dbe9fa5b7ff3b8fdfcde1afb8bedd7be2f3ee71ebbbfe93bcdeefe14",
            "8246c2bc5dbff7e7efdcf24fd8dc7adffd8fffdfddfff7a4bbeedf5cb95ce81f",
            "c7fcff1ff4ffffdfe5f7fdcbb7fd79b3fa1fc77bfe07fff905b7b7ffc7fefeff",
            "e0b8370bb0cd3f5b7f2bd93feb4386cfdd6f7fd5bfaf2e9ebffffeecd67adbf7",
            "c67f17efd5d75eba6ffeba7fff47a91eb1bfbb53e8abfb5762abe8ff237279bf",
            "efbfeef5ffc5febfdfe5adffadfee1fb737ffffbfd9f6aeffeee76b6fd8f72ef",
        );
        assert_eq!(hex(&f.0), want);
        // The spec caps the zero count at m - 1, so an empty filter says 0.5.
        assert!(ScrapeBloom::new().estimate() < 1.0);
    }
}
