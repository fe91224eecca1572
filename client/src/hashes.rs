//! Answers to BEP 52 `hash request`s: the merkle hashes a peer needs to check v2
//! pieces when it has no `piece layers` (after a magnet link, for instance).
//!
//! A file's tree has one leaf per 16 KiB block, padded with zero hashes to a power of
//! two; layer `h` (counted up from the leaves) has nodes covering `2^h` blocks. We know
//! every layer from the piece layer up (the torrent's `piece layers`, or just the root
//! for a file of one piece), so we answer requests whose base layer is at or above it.
//! The answer is the `length` hashes of the base layer from `index`, then one uncle per
//! layer from the root of the requested run up to `base + proof_layers`, lowest first
//! (as libtorrent's `merkle_tree::get_hashes` lays it out). Anything else is refused
//! with `hash reject`.

use metainfo::{Info, merkle};
use peer_wire::HashRequest;

/// The most hashes one answer carries (libtorrent asks for at most 8192).
pub const MAX_HASHES: u32 = 8192;

/// The hashes answering `req` for the torrent `info`, or `None` to reject it.
pub fn answer(info: &Info, req: &HashRequest) -> Option<Vec<merkle::Hash256>> {
    let file = info
        .files
        .iter()
        .find(|f| f.pieces_root == Some(req.pieces_root) && f.length > 0)?;
    let blocks = file.length.div_ceil(merkle::BLOCK_SIZE);
    let leaves = blocks.checked_next_power_of_two()?;
    let height = leaves.trailing_zeros();
    let per_piece = info.piece_length / merkle::BLOCK_SIZE;
    if !per_piece.is_power_of_two() {
        return None;
    }
    let piece_height = per_piece.trailing_zeros();
    // The lowest layer we know, and its nodes.
    let (known_height, known): (u32, Vec<merkle::Hash256>) = if file.length > info.piece_length {
        (piece_height, info.piece_layer(&req.pieces_root)?.to_vec())
    } else {
        (height, vec![req.pieces_root])
    };
    let (base, index, length, proof) = (
        req.base_layer,
        req.index as usize,
        req.length,
        req.proof_layers,
    );
    if base < known_height
        || base >= height
        || !(2..=MAX_HASHES).contains(&length)
        || !length.is_power_of_two()
        || index % length as usize != 0
        || base.checked_add(proof)? > height
    {
        return None;
    }
    // Layers from `known_height` up to the root, each padded to its full width.
    let mut layers: Vec<Vec<merkle::Hash256>> = Vec::new();
    let mut width = 1usize << (height - known_height);
    let mut layer = known;
    if layer.len() > width {
        return None;
    }
    let mut pad = merkle::pad_hash(known_height);
    layer.resize(width, pad);
    loop {
        let next: Vec<merkle::Hash256> = if width > 1 {
            layer
                .chunks_exact(2)
                .map(|p| merkle::hash_pair(&p[0], &p[1]))
                .collect()
        } else {
            Vec::new()
        };
        layers.push(std::mem::replace(&mut layer, next));
        if width == 1 {
            break;
        }
        width /= 2;
        pad = merkle::hash_pair(&pad, &pad);
    }
    if layers.last().and_then(|l| l.first()) != Some(&req.pieces_root) {
        // The piece layer does not lead to the root: never hand out such hashes.
        return None;
    }
    let at = |h: u32| layers.get((h - known_height) as usize);
    let base_layer = at(base)?;
    let run = base_layer.get(index..index.checked_add(length as usize)?)?;
    let mut out = run.to_vec();
    // Uncles: from the layer of the run's root up to `base + proof`, never the root's.
    let m = length.trailing_zeros();
    let mut node = index >> m;
    for h in (base + m)..=(base + proof).min(height - 1) {
        out.push(*at(h)?.get(node ^ 1)?);
        node >>= 1;
    }
    Some(out)
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
