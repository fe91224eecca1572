//! BEP 6 allowed-fast set generation.

use std::net::Ipv4Addr;

use sha1::{Digest, Sha1};

/// The canonical allowed-fast set of `k` pieces for a peer at `ip` in a torrent with
/// `num_pieces` pieces and v1 info hash `info_hash` (BEP 6).
///
/// `k` is capped at `num_pieces` (the BEP loop would never end otherwise). The result
/// is in generation order.
///
/// ```
/// use std::net::Ipv4Addr;
/// use rivulet_peer_wire::allowed_fast_set;
///
/// // The example in BEP 6.
/// let set = allowed_fast_set(&[0xaa; 20], Ipv4Addr::new(80, 4, 4, 200), 1313, 7);
/// assert_eq!(set, [1059, 431, 808, 1217, 287, 376, 1188]);
/// ```
pub fn allowed_fast_set(info_hash: &[u8; 20], ip: Ipv4Addr, num_pieces: u32, k: usize) -> Vec<u32> {
    let k = k.min(num_pieces as usize);
    let mut set = Vec::with_capacity(k);
    if k == 0 {
        return set;
    }
    let masked = u32::from(ip) & 0xFFFF_FF00;
    let mut x = Vec::with_capacity(24);
    x.extend_from_slice(&masked.to_be_bytes());
    x.extend_from_slice(info_hash);
    while set.len() < k {
        let digest: [u8; 20] = Sha1::digest(&x).into();
        for chunk in digest.chunks_exact(4) {
            if set.len() >= k {
                break;
            }
            let y = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let index = y % num_pieces;
            if !set.contains(&index) {
                set.push(index);
            }
        }
        x.clear();
        x.extend_from_slice(&digest);
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bep6_examples() {
        let ip = Ipv4Addr::new(80, 4, 4, 200);
        assert_eq!(
            allowed_fast_set(&[0xaa; 20], ip, 1313, 9),
            [1059, 431, 808, 1217, 287, 376, 1188, 353, 508]
        );
        // Only the /24 matters.
        assert_eq!(
            allowed_fast_set(&[0xaa; 20], Ipv4Addr::new(80, 4, 4, 1), 1313, 7),
            [1059, 431, 808, 1217, 287, 376, 1188]
        );
    }

    #[test]
    fn small_torrents_terminate() {
        let mut s = allowed_fast_set(&[1; 20], Ipv4Addr::LOCALHOST, 3, 10);
        s.sort_unstable();
        assert_eq!(s, [0, 1, 2]);
        assert!(allowed_fast_set(&[1; 20], Ipv4Addr::LOCALHOST, 0, 10).is_empty());
    }
}
