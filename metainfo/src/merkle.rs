//! BEP 52 merkle trees: SHA-256 of each 16 KiB block of a file, the `pieces root`, and
//! the piece layer.
//!
//! A v2 file is cut into 16 KiB blocks (the last one short, never padded with bytes); each
//! block's SHA-256 is a leaf. The leaves are padded with all-zero hashes up to a power of
//! two and hashed pairwise up to the root, the file's `pieces root`. The *piece layer* is
//! the level of that tree whose nodes each cover `piece_length` bytes; a torrent carries it
//! (in `piece layers`) for every file larger than one piece, so peers can check whole
//! pieces.

use sha2::{Digest, Sha256};

/// The size of a v2 leaf block: 16 KiB.
pub const BLOCK_SIZE: u64 = 16 * 1024;

/// A SHA-256 hash, the node type of a v2 merkle tree.
pub type Hash256 = [u8; 32];

/// The SHA-256 of one block of data (a merkle leaf).
pub fn block_hash(block: &[u8]) -> Hash256 {
    Sha256::digest(block).into()
}

/// The hash of two sibling nodes: SHA-256 of `left || right`.
pub fn hash_pair(left: &Hash256, right: &Hash256) -> Hash256 {
    let mut h = Sha256::new();
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of a subtree of `2^height` all-zero leaves (a padding node at `height`).
pub fn pad_hash(height: u32) -> Hash256 {
    let mut h = [0u8; 32];
    for _ in 0..height {
        h = hash_pair(&h, &h);
    }
    h
}

/// The root of the tree over `leaves`, padded with `pad_leaf` hashes up to `width` leaves.
///
/// `width` is rounded up to a power of two and to at least `leaves.len()` (and 1).
/// `pad_leaf` is the hash standing for a missing leaf: all zeros at the block level, or
/// [`pad_hash`]`(h)` when the "leaves" are nodes at height `h` (such as a piece layer).
pub fn merkle_root_padded(leaves: &[Hash256], width: usize, pad_leaf: Hash256) -> Hash256 {
    let width = width.max(leaves.len()).max(1).next_power_of_two();
    let mut level: Vec<Hash256> = leaves.to_vec();
    fold_in_place(&mut level, width, pad_leaf)
}

/// The root of the tree over block hashes `leaves`, padded with zero leaves to `width`.
pub fn merkle_root(leaves: &[Hash256], width: usize) -> Hash256 {
    merkle_root_padded(leaves, width, [0u8; 32])
}

/// Folds `level` (at most `width` nodes, `width` a power of two) up to its root, in place.
pub(crate) fn fold_in_place(level: &mut Vec<Hash256>, width: usize, pad_leaf: Hash256) -> Hash256 {
    let mut pad = pad_leaf;
    let mut w = width.max(1);
    if level.is_empty() {
        level.push(pad);
    }
    while w > 1 {
        if level.len() % 2 == 1 {
            level.push(pad);
        }
        let n = level.len() / 2;
        for i in 0..n {
            level[i] = hash_pair(&level[2 * i], &level[2 * i + 1]);
        }
        level.truncate(n);
        pad = hash_pair(&pad, &pad);
        w /= 2;
    }
    level[0]
}

/// log2 of a power of two.
pub(crate) fn log2(x: u64) -> u32 {
    63 - x.max(1).leading_zeros()
}

/// How many 16 KiB blocks `len` bytes make (the last one short).
pub(crate) fn blocks_in(len: u64) -> u64 {
    len.div_ceil(BLOCK_SIZE)
}

/// The leaf width of the subtree one piece hash is computed over, for a file of
/// `file_len` bytes: a whole piece (`piece_length / 16 KiB` leaves) when the file spans more
/// than one piece, else the file's own block count rounded up to a power of two (so the
/// single "piece hash" is the `pieces root`).
pub(crate) fn piece_width(file_len: u64, piece_length: u64) -> usize {
    if file_len > piece_length {
        (piece_length / BLOCK_SIZE) as usize
    } else {
        (blocks_in(file_len).max(1).next_power_of_two()) as usize
    }
}

/// The `pieces root` of a file from its piece layer (`piece_length` a power of two ≥ 16 KiB).
///
/// For a file no larger than one piece the tree has no piece layer: pass the single
/// subtree root and it is returned as is.
pub fn root_from_piece_layer(layer: &[Hash256], piece_length: u64) -> Hash256 {
    if layer.len() == 1 {
        return layer[0];
    }
    let height = log2(piece_length / BLOCK_SIZE);
    merkle_root_padded(layer, layer.len(), pad_hash(height))
}

/// The v2 hashes of one file: its `pieces root` and its piece layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileHashes {
    /// The `pieces root`; `None` for an empty file (BEP 52 gives it none).
    pub root: Option<Hash256>,
    /// The piece layer: one hash per piece, only for files larger than one piece (empty
    /// otherwise, as in a torrent's `piece layers`).
    pub piece_layer: Vec<Hash256>,
}

impl FileHashes {
    /// The piece layer as the concatenated bytes a torrent's `piece layers` stores.
    pub fn piece_layer_bytes(&self) -> Vec<u8> {
        self.piece_layer.iter().flatten().copied().collect()
    }
}

/// Streams a file's bytes into its BEP 52 hashes without keeping more than one piece's
/// worth of leaf hashes.
///
/// ```
/// use rivulet_metainfo::merkle::{MerkleHasher, file_hashes};
/// let data = vec![7u8; 100_000];
/// let mut h = MerkleHasher::new(32 * 1024);
/// for chunk in data.chunks(5000) {
///     h.update(chunk);
/// }
/// let streamed = h.finish();
/// assert_eq!(streamed, file_hashes(&data, 32 * 1024));
/// assert_eq!(streamed.piece_layer.len(), 4);
/// ```
#[derive(Clone, Debug)]
pub struct MerkleHasher {
    piece_length: u64,
    block: Sha256,
    block_fill: u64,
    leaves: Vec<Hash256>,
    layer: Vec<Hash256>,
    len: u64,
}

impl MerkleHasher {
    /// A hasher for pieces of `piece_length` bytes, rounded up to a power of two ≥ 16 KiB.
    pub fn new(piece_length: u64) -> Self {
        let piece_length = piece_length.max(BLOCK_SIZE).next_power_of_two();
        MerkleHasher {
            piece_length,
            block: Sha256::new(),
            block_fill: 0,
            leaves: Vec::new(),
            layer: Vec::new(),
            len: 0,
        }
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = ((BLOCK_SIZE - self.block_fill) as usize).min(data.len());
            self.block.update(&data[..take]);
            self.block_fill += take as u64;
            self.len += take as u64;
            data = &data[take..];
            if self.block_fill == BLOCK_SIZE {
                self.end_block();
            }
        }
    }

    fn end_block(&mut self) {
        let h = std::mem::take(&mut self.block).finalize().into();
        self.leaves.push(h);
        self.block_fill = 0;
        let per_piece = (self.piece_length / BLOCK_SIZE) as usize;
        if self.leaves.len() == per_piece && self.len % self.piece_length == 0 {
            // A full piece: fold it now. (Whether the file has more pieces is not known
            // yet; if it does not, `finish` refolds from the layer of one.)
            let root = fold_in_place(&mut self.leaves, per_piece, [0u8; 32]);
            self.layer.push(root);
            self.leaves.clear();
        }
    }

    /// The file's hashes.
    pub fn finish(mut self) -> FileHashes {
        if self.block_fill > 0 {
            self.end_block();
        }
        if self.len == 0 {
            return FileHashes {
                root: None,
                piece_layer: Vec::new(),
            };
        }
        if self.len <= self.piece_length {
            // One piece or less: the layer (if the piece was full) already holds the root
            // over a full piece, which is the root over blocks.next_power_of_two() leaves
            // only when the piece is full; otherwise fold the leaves at their own width.
            let root = match self.layer.first() {
                Some(r) => *r,
                None => {
                    let w = piece_width(self.len, self.piece_length);
                    fold_in_place(&mut self.leaves, w, [0u8; 32])
                }
            };
            return FileHashes {
                root: Some(root),
                piece_layer: Vec::new(),
            };
        }
        if !self.leaves.is_empty() {
            let per_piece = (self.piece_length / BLOCK_SIZE) as usize;
            let root = fold_in_place(&mut self.leaves, per_piece, [0u8; 32]);
            self.layer.push(root);
        }
        FileHashes {
            root: Some(root_from_piece_layer(&self.layer, self.piece_length)),
            piece_layer: self.layer,
        }
    }
}

/// The BEP 52 hashes of a whole file held in memory.
pub fn file_hashes(data: &[u8], piece_length: u64) -> FileHashes {
    let mut h = MerkleHasher::new(piece_length);
    h.update(data);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_root(data: &[u8]) -> Hash256 {
        let leaves: Vec<Hash256> = data.chunks(BLOCK_SIZE as usize).map(block_hash).collect();
        let mut level = leaves.clone();
        let w = level.len().next_power_of_two();
        level.resize(w, [0u8; 32]);
        while level.len() > 1 {
            level = level.chunks(2).map(|p| hash_pair(&p[0], &p[1])).collect();
        }
        level[0]
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn roots_match_naive_tree() {
        let bs = BLOCK_SIZE as usize;
        for len in [
            1,
            100,
            bs - 1,
            bs,
            bs + 1,
            3 * bs,
            5 * bs + 7,
            16 * bs,
            17 * bs + 3,
        ] {
            let d = pattern(len);
            for pl in [BLOCK_SIZE, 2 * BLOCK_SIZE, 4 * BLOCK_SIZE, 64 * BLOCK_SIZE] {
                let fh = file_hashes(&d, pl);
                assert_eq!(fh.root, Some(naive_root(&d)), "len {len} pl {pl}");
                let pieces = (len as u64).div_ceil(pl) as usize;
                if len as u64 > pl {
                    assert_eq!(fh.piece_layer.len(), pieces);
                    // Each piece-layer node is the subtree over that piece's blocks.
                    for (i, node) in fh.piece_layer.iter().enumerate() {
                        let s = i * pl as usize;
                        let e = (s + pl as usize).min(len);
                        let leaves: Vec<Hash256> = d[s..e].chunks(bs).map(block_hash).collect();
                        assert_eq!(*node, merkle_root(&leaves, (pl / BLOCK_SIZE) as usize));
                    }
                } else {
                    assert!(fh.piece_layer.is_empty());
                }
            }
        }
    }

    #[test]
    fn single_block_root_is_block_hash() {
        let d = pattern(100);
        assert_eq!(file_hashes(&d, BLOCK_SIZE).root, Some(block_hash(&d)));
        assert_eq!(file_hashes(&[], BLOCK_SIZE).root, None);
    }

    fn unhex(s: &str) -> Hash256 {
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    /// `pieces root` and piece layers libtorrent 2.1.1 wrote (`create_torrent`, v2_only,
    /// piece length 32 KiB) for files whose byte `i` is `i * 31 % 251`.
    #[test]
    fn matches_libtorrent() {
        let cases: &[(usize, &str, &[&str])] = &[
            (
                100,
                "ad23e7588eab10d748f8f38c32cb53aa3fc3e815e5a142d9eb224e677fbfb12a",
                &[],
            ),
            (
                16384,
                "dff765a589fd8d7df3f0f69bbc220454f1ef4ea6c5c642d79879809829c0b2ba",
                &[],
            ),
            (
                40000,
                "cb1c8b072333dde0adbe4a339178baea7273820d20f00289b989bf8acde773cb",
                &[
                    "8b1d9d0bdb9566addd8477e78353637f9f0f4e031c976e4167e5db6016048cbd",
                    "1e97ea41d7564a09cce46737471a77c9e3b32976d3e5556a25d4cfcc21c57a21",
                ],
            ),
            (
                100000,
                "ad6111988eb27fd51dccae9699c610fde7b3359ebd2464c39a3926cdda05e8c5",
                &[
                    "8b1d9d0bdb9566addd8477e78353637f9f0f4e031c976e4167e5db6016048cbd",
                    "775f7da5ddd5120c2d901b50e5e4b3ff66b0d9a61172c208686d5cfca5f8dc1c",
                    "ecb36a19e5f2dca39dd7e634b35a15b46097b88f387dedd6f0815355e0a0741a",
                    "caf1d84e51e5b8fc993b2e043b937b2374ff9bb5b8c2ad5c8463a1c92bf55192",
                ],
            ),
            (
                300000,
                "b4e9c294358272129d453cd7dbf45ab6f4a0f5100de1d581c410e48ba7f1a98a",
                &[
                    "8b1d9d0bdb9566addd8477e78353637f9f0f4e031c976e4167e5db6016048cbd",
                    "775f7da5ddd5120c2d901b50e5e4b3ff66b0d9a61172c208686d5cfca5f8dc1c",
                    "ecb36a19e5f2dca39dd7e634b35a15b46097b88f387dedd6f0815355e0a0741a",
                    "805efa82f94346b1fd61d7e150ae95810ddf6ebecfeab3718cf370fa121e95f4",
                    "77d7b7a5587fd17e8fe708bcdb5888227d6f8556425ff2725450c8fc762296a3",
                    "e2bfed73772784aa2ae8a8037bc438840668e67cafca833da4099bffce2af206",
                    "ef19bef30c58f2d61b401b82d6810448b03060eb09696a1e08d7cc186d367e3f",
                    "d6847a775d255cabe90f8f119a44a3984e8ec4d55ce7913e99a3f5d24fd4fec3",
                    "992100dd539888a7215e5da7c18b4fc855f86f0ec972a8960d3ce6d59c2ae09e",
                    "9d7c9c3f8ce60f3368c05c8edc6975766e944197a9b2715dd614ea2c4bed57cf",
                ],
            ),
        ];
        for (len, root, layer) in cases {
            let fh = file_hashes(&pattern(*len), 32 * 1024);
            assert_eq!(fh.root, Some(unhex(root)), "root of {len}");
            let want: Vec<Hash256> = layer.iter().map(|h| unhex(h)).collect();
            assert_eq!(fh.piece_layer, want, "piece layer of {len}");
            if !want.is_empty() {
                assert_eq!(root_from_piece_layer(&want, 32 * 1024), unhex(root));
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Streaming in arbitrary chunks gives the same hashes as the naive tree.
        #[test]
        fn streaming_matches_naive(
            len in 0usize..200_000,
            cut in 1usize..40_000,
            shift in 0u32..4,
        ) {
            let d = pattern(len);
            let pl = BLOCK_SIZE << shift;
            let mut h = MerkleHasher::new(pl);
            for c in d.chunks(cut) {
                h.update(c);
            }
            let fh = h.finish();
            if len == 0 {
                proptest::prop_assert_eq!(fh.root, None);
            } else {
                proptest::prop_assert_eq!(fh.root, Some(naive_root(&d)));
                if len as u64 > pl {
                    proptest::prop_assert_eq!(root_from_piece_layer(&fh.piece_layer, pl), naive_root(&d));
                }
            }
        }
    }

    #[test]
    fn pad_hashes() {
        assert_eq!(pad_hash(0), [0u8; 32]);
        assert_eq!(pad_hash(1), hash_pair(&[0; 32], &[0; 32]));
        assert_eq!(merkle_root(&[], 4), pad_hash(2));
    }
}
