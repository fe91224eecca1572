//! BEP 52 hash exchange: answers to a peer's `hash request`s (the merkle hashes it
//! needs to check v2 pieces when it has no `piece layers`, after a magnet link for
//! instance), and the requests and answer checks for the layers *we* lack
//! ([`missing_layers`], [`check_answer`]).
//!
//! A file's tree has one leaf per 16 KiB block, padded with zero hashes to a power of
//! two; layer `h` (counted up from the leaves) has nodes covering `2^h` blocks. We know
//! every layer from the piece layer up (the torrent's `piece layers`, or just the root
//! for a file of one piece), so we answer requests whose base layer is at or above it.
//! The answer is the `length` hashes of the base layer from `index`, then one uncle per
//! layer from the root of the requested run up to `base + proof_layers`, lowest first
//! (as libtorrent's `merkle_tree::get_hashes` lays it out). Anything else is refused
//! with `hash reject`.
//!
//! A [`HashServer`] answers for a torrent, keeping each peer within a [`HashBudget`]:
//! every request costs [`REQUEST_COST`] before anything is looked up, whether it is
//! answered or refused, and an answer costs its bytes; a request the budget cannot
//! cover is refused without any work, so a peer cannot make us do unbounded work.

use std::collections::HashMap;
use std::sync::Arc;

use metainfo::{Info, merkle};
use peer_wire::HashRequest;

/// The most hashes one answer carries (libtorrent asks for at most 8192).
pub const MAX_HASHES: u32 = 8192;

/// What a hash request costs a peer's [`HashBudget`] (in bytes of hashes) before
/// anything is looked up: a flood of requests that are all refused runs it dry too.
pub const REQUEST_COST: usize = 512;

/// Bytes of hash work one peer may still cause (see [`HashServer::answer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashBudget {
    left: usize,
}

impl HashBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> HashBudget {
        HashBudget { left: bytes }
    }

    /// A connection's budget for `info`: 4 times its piece layers, plus 1 MiB (room
    /// for a peer that fetches every layer a few times over and asks some block hashes).
    pub fn for_torrent(info: &Info) -> HashBudget {
        let layers: usize = info.piece_layers.values().map(|l| l.len() * 32 * 4).sum();
        HashBudget::new(layers.saturating_add(1 << 20))
    }

    /// The bytes left.
    pub fn left(&self) -> usize {
        self.left
    }
}

/// Answers peers' hash requests for one torrent: each file's tree is built once, on
/// the first request for it, and every peer is kept within its [`HashBudget`].
#[derive(Debug, Default)]
pub struct HashServer {
    /// Merkle trees of files peers asked hashes of (at most one per file).
    trees: HashMap<merkle::Hash256, Arc<FileTree>>,
    /// Requests looked at (answered or refused after a lookup).
    looked_up: u64,
}

impl HashServer {
    /// A server with no tree built yet.
    pub fn new() -> HashServer {
        HashServer::default()
    }

    /// The hashes answering `req` for `info`, charged to the asking peer's `budget`,
    /// or `None` to reject it. The request costs [`REQUEST_COST`] plus the bytes
    /// answered; if the budget cannot cover that cost with the largest answer the
    /// request could have, it is refused before anything is looked up.
    pub fn answer(
        &mut self,
        info: &Info,
        budget: &mut HashBudget,
        req: &HashRequest,
    ) -> Option<Vec<merkle::Hash256>> {
        let largest = if (2..=MAX_HASHES).contains(&req.length) {
            (req.length as usize + req.proof_layers.min(64) as usize) * 32
        } else {
            0
        };
        if budget.left < REQUEST_COST.saturating_add(largest) {
            return None;
        }
        budget.left -= REQUEST_COST;
        self.looked_up += 1;
        let tree = match self.trees.get(&req.pieces_root) {
            Some(t) => t.clone(),
            None => {
                let t = Arc::new(FileTree::build(info, &req.pieces_root)?);
                self.trees.insert(req.pieces_root, t.clone());
                t
            }
        };
        let hashes = tree.answer(req)?;
        budget.left = budget.left.saturating_sub(hashes.len() * 32);
        Some(hashes)
    }

    /// Requests looked at so far (each within some peer's budget).
    pub fn looked_up(&self) -> u64 {
        self.looked_up
    }

    /// Trees built so far (at most one per file).
    pub fn trees(&self) -> usize {
        self.trees.len()
    }
}

/// The hashes answering `req` for the torrent `info`, or `None` to reject it. Builds
/// the file's tree each time: a server answering many requests keeps a [`FileTree`].
pub fn answer(info: &Info, req: &HashRequest) -> Option<Vec<merkle::Hash256>> {
    FileTree::build(info, &req.pieces_root)?.answer(req)
}

/// The layers of one file's merkle tree that we know: from the piece layer (or the
/// root, for a file of one piece) up to the root, each padded to its full width.
#[derive(Debug, Clone)]
pub struct FileTree {
    root: merkle::Hash256,
    known_height: u32,
    height: u32,
    layers: Vec<Vec<merkle::Hash256>>,
}

impl FileTree {
    /// The tree of the file with `pieces_root`, from the torrent's piece layer; `None`
    /// if there is no such file, its layer is missing, or the layer does not lead to
    /// the root.
    pub fn build(info: &Info, pieces_root: &merkle::Hash256) -> Option<FileTree> {
        let file = info
            .files
            .iter()
            .find(|f| f.pieces_root.as_ref() == Some(pieces_root) && f.length > 0)?;
        let leaves = file
            .length
            .div_ceil(merkle::BLOCK_SIZE)
            .checked_next_power_of_two()?;
        let height = leaves.trailing_zeros();
        let per_piece = info.piece_length / merkle::BLOCK_SIZE;
        if !per_piece.is_power_of_two() {
            return None;
        }
        let (known_height, mut layer) = if file.length > info.piece_length {
            (
                per_piece.trailing_zeros(),
                info.piece_layer(pieces_root)?.to_vec(),
            )
        } else {
            (height, vec![*pieces_root])
        };
        let mut width = 1usize << (height.checked_sub(known_height)?);
        if layer.len() > width {
            return None;
        }
        layer.resize(width, merkle::pad_hash(known_height));
        let mut layers = Vec::new();
        while width > 1 {
            let next = layer
                .chunks_exact(2)
                .map(|p| merkle::hash_pair(&p[0], &p[1]))
                .collect();
            layers.push(std::mem::replace(&mut layer, next));
            width /= 2;
        }
        layers.push(layer);
        if layers.last().and_then(|l| l.first()) != Some(pieces_root) {
            // The piece layer does not lead to the root: never hand out such hashes.
            return None;
        }
        Some(FileTree {
            root: *pieces_root,
            known_height,
            height,
            layers,
        })
    }

    /// The hashes answering `req`, or `None` to reject it (another file, a base layer
    /// below the one we know, a run that is not an aligned power of two of 2 to
    /// [`MAX_HASHES`] hashes inside the layer, proof layers past the root).
    pub fn answer(&self, req: &HashRequest) -> Option<Vec<merkle::Hash256>> {
        let (base, index, length, proof) = (
            req.base_layer,
            req.index as usize,
            req.length,
            req.proof_layers,
        );
        if req.pieces_root != self.root
            || base < self.known_height
            || base >= self.height
            || !(2..=MAX_HASHES).contains(&length)
            || !length.is_power_of_two()
            || index % length as usize != 0
            || base.checked_add(proof)? > self.height
        {
            return None;
        }
        let at = |h: u32| self.layers.get((h - self.known_height) as usize);
        let run = at(base)?.get(index..index.checked_add(length as usize)?)?;
        let mut out = run.to_vec();
        // Uncles: from the layer of the run's root up to `base + proof`, never the
        // root's own.
        let m = length.trailing_zeros();
        let mut node = index >> m;
        for h in (base + m)..=(base + proof).min(self.height - 1) {
            out.push(*at(h)?.get(node ^ 1)?);
            node >>= 1;
        }
        Some(out)
    }
}

/// The hash requests that fetch the piece layers `info` lacks (a v2 info dictionary
/// from a magnet link has none): per file larger than one piece without a layer, runs
/// of at most 512 piece hashes with the proof up to the file's root. Each comes with
/// the file's index.
pub fn missing_layers(info: &Info) -> Vec<(usize, HashRequest)> {
    let mut out = Vec::new();
    let per_piece = info.piece_length / merkle::BLOCK_SIZE;
    if !per_piece.is_power_of_two() {
        return out;
    }
    let base = per_piece.trailing_zeros();
    for (i, f) in info.files.iter().enumerate() {
        let Some(root) = f.pieces_root else { continue };
        if f.length <= info.piece_length || info.piece_layer(&root).is_some() {
            continue;
        }
        let Some(leaves) = f
            .length
            .div_ceil(merkle::BLOCK_SIZE)
            .checked_next_power_of_two()
        else {
            continue;
        };
        let height = leaves.trailing_zeros();
        let width = 1u64 << (height - base);
        let pieces = f.length.div_ceil(info.piece_length);
        let run = width.min(512);
        let mut index = 0u64;
        while index < pieces {
            out.push((
                i,
                HashRequest {
                    pieces_root: root,
                    base_layer: base,
                    index: index as u32,
                    length: run as u32,
                    proof_layers: height - base - 1,
                },
            ));
            index += run;
        }
    }
    out
}

/// Checks a `hashes` answer to `req` (one we sent, from [`missing_layers`]): the run
/// and its uncles must fold to the file's root. Returns the run's hashes if they do.
pub fn check_answer(info: &Info, req: &HashRequest, hashes: &[u8]) -> Option<Vec<merkle::Hash256>> {
    let f = info
        .files
        .iter()
        .find(|f| f.pieces_root == Some(req.pieces_root) && f.length > 0)?;
    let leaves = f
        .length
        .div_ceil(merkle::BLOCK_SIZE)
        .checked_next_power_of_two()?;
    let height = leaves.trailing_zeros();
    let n = req.length as usize;
    if hashes.len() % 32 != 0 || !req.length.is_power_of_two() || req.length < 2 {
        return None;
    }
    let all: Vec<merkle::Hash256> = hashes
        .chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            h
        })
        .collect();
    if all.len() < n {
        return None;
    }
    let m = req.length.trailing_zeros();
    let top = req.base_layer.checked_add(m)?;
    if top > height || all.len() - n != (height - top) as usize {
        return None;
    }
    let mut level = all[..n].to_vec();
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|p| merkle::hash_pair(&p[0], &p[1]))
            .collect();
    }
    let mut node = level[0];
    let mut idx = req.index as usize >> m;
    for uncle in &all[n..] {
        node = if idx % 2 == 0 {
            merkle::hash_pair(&node, uncle)
        } else {
            merkle::hash_pair(uncle, &node)
        };
        idx /= 2;
    }
    (node == req.pieces_root && idx == 0).then(|| all[..n].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use metainfo::{Torrent, TorrentBuilder, Version};

    fn v2(len: usize) -> (Torrent, Vec<u8>) {
        let d = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 253) as u8).collect();
        std::fs::write(d.path().join("f"), &data).unwrap();
        let made = TorrentBuilder::new(d.path().join("f"))
            .version(Version::V2)
            .piece_length(32768)
            .build()
            .unwrap();
        (Torrent::from_bytes(made.bytes()).unwrap(), data)
    }

    /// Recomputes the root from an answer the way a requester checks it.
    fn fold(req: &HashRequest, got: &[merkle::Hash256], height: u32) -> merkle::Hash256 {
        let n = req.length as usize;
        let mut level = got[..n].to_vec();
        while level.len() > 1 {
            level = level
                .chunks_exact(2)
                .map(|p| merkle::hash_pair(&p[0], &p[1]))
                .collect();
        }
        let mut node = level[0];
        let mut idx = req.index as usize >> req.length.trailing_zeros();
        let mut h = req.base_layer + req.length.trailing_zeros();
        for uncle in &got[n..] {
            node = if idx % 2 == 0 {
                merkle::hash_pair(&node, uncle)
            } else {
                merkle::hash_pair(uncle, &node)
            };
            idx /= 2;
            h += 1;
        }
        assert_eq!(h, height, "the proof reaches the root");
        node
    }

    #[test]
    fn missing_layers_are_requested_and_answers_checked() {
        let (t, _) = v2(40_000_000);
        let mut bare = t.info.clone();
        bare.piece_layers.clear();
        // 2442 blocks: 4096 leaves (height 12); 1221 pieces in a layer 2048 wide.
        let reqs = missing_layers(&bare);
        assert_eq!(reqs.len(), 3);
        for (k, (file, r)) in reqs.iter().enumerate() {
            assert_eq!(*file, 0);
            assert_eq!(
                (r.base_layer, r.index, r.length, r.proof_layers),
                (1, 512 * k as u32, 512, 10)
            );
            let got = answer(&t.info, r).unwrap();
            assert_eq!(got.len(), 512 + 2, "two uncles");
            let bytes = got.concat();
            let run = check_answer(&bare, r, &bytes).unwrap();
            assert_eq!(run, got[..512]);
            // One flipped bit anywhere: refused.
            for i in [0, 511 * 32, 513 * 32 + 31] {
                let mut b = bytes.clone();
                b[i] ^= 1;
                assert_eq!(check_answer(&bare, r, &b), None);
            }
            assert_eq!(check_answer(&bare, r, &bytes[..bytes.len() - 32]), None);
        }
        assert!(missing_layers(&t.info).is_empty());
    }

    #[test]
    fn refused_requests_use_up_the_budget_and_a_dry_one_does_no_work() {
        let (t, _) = v2(8_000_000);
        let root = t.info.files[0].pieces_root.unwrap();
        let good = HashRequest {
            pieces_root: root,
            base_layer: 1,
            index: 0,
            length: 256,
            proof_layers: 7,
        };
        let mut server = HashServer::new();
        let mut budget = HashBudget::for_torrent(&t.info);
        let start = budget.left();
        assert_eq!(
            server.answer(&t.info, &mut budget, &good),
            answer(&t.info, &good)
        );
        assert_eq!(start - budget.left(), REQUEST_COST + 256 * 32);
        // A flood of requests that are all refused (unknown file, block layer, bad
        // lengths): each costs, so the flood ends in requests refused unread.
        let bogus = [
            HashRequest {
                pieces_root: [9; 32],
                ..good
            },
            HashRequest {
                base_layer: 0,
                ..good
            },
            HashRequest { length: 0, ..good },
            HashRequest {
                length: u32::MAX,
                ..good
            },
        ];
        let mut refused = 0u64;
        for i in 0..100_000 {
            assert_eq!(server.answer(&t.info, &mut budget, &bogus[i % 4]), None);
            refused += 1;
        }
        let looked = server.looked_up();
        assert!(
            looked <= 1 + (start / REQUEST_COST) as u64,
            "{looked} of {refused} refused requests looked up"
        );
        // Dry: even a good request is refused, and nothing more is looked up.
        assert_eq!(server.answer(&t.info, &mut budget, &good), None);
        assert_eq!(server.looked_up(), looked);
        assert_eq!(server.trees(), 1);
    }

    #[test]
    fn answers_piece_layer_requests_with_proofs_that_fold_to_the_root() {
        // 489 blocks: 512 leaves, height 9; 32 KiB pieces: the piece layer is at 1.
        let (t, _) = v2(8_000_000);
        let f = &t.info.files[0];
        let root = f.pieces_root.unwrap();
        let layer = t.info.piece_layer(&root).unwrap().to_vec();
        // What libtorrent 2.1.1 sends for this file.
        let req = HashRequest {
            pieces_root: root,
            base_layer: 1,
            index: 0,
            length: 256,
            proof_layers: 7,
        };
        let got = answer(&t.info, &req).unwrap();
        assert_eq!(got.len(), 256);
        assert_eq!(got[..layer.len()], layer[..]);
        assert_eq!(got[layer.len()], merkle::pad_hash(1));
        assert_eq!(fold(&req, &got, 9), root);
        // Smaller runs with proofs up to the root.
        for (index, length) in [(0u32, 2u32), (64, 64), (240, 16), (128, 128)] {
            let req = HashRequest {
                index,
                length,
                proof_layers: 7,
                ..req
            };
            let got = answer(&t.info, &req).unwrap();
            assert_eq!(got[..length as usize], {
                let mut l = layer.clone();
                l.resize(256, merkle::pad_hash(1));
                l[index as usize..(index + length) as usize].to_vec()
            });
            assert_eq!(fold(&req, &got, 9), root, "{index} {length}");
        }
        // Refused: below the piece layer, misaligned, not a power of two, past the end,
        // too many proof layers, unknown root.
        for bad in [
            HashRequest {
                base_layer: 0,
                ..req
            },
            HashRequest {
                index: 3,
                length: 2,
                ..req
            },
            HashRequest { length: 3, ..req },
            HashRequest {
                index: 256,
                length: 2,
                ..req
            },
            HashRequest {
                proof_layers: 9,
                ..req
            },
            HashRequest {
                pieces_root: [1; 32],
                ..req
            },
            HashRequest { length: 0, ..req },
            HashRequest { length: 1, ..req },
        ] {
            assert_eq!(answer(&t.info, &bad), None, "{bad:?}");
        }
    }
}
