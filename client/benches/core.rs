//! Criterion benches of the client's sans-IO core: the per-message work of the torrent
//! core and picker, with no sockets, disk or hashing.
//!
//! - `core/seed_have_2m_pieces`: a seed of a torrent of 2^21 pieces (the metainfo limit)
//!   takes one `have` from a leech (the message every leech sends per piece it gets).
//! - `core/transfer_64mib`: a seed core and a leech core move 64 MiB (256 KiB pieces,
//!   16 KiB blocks) to each other in memory: requests, pieces, haves and the picker,
//!   hash checks answered as good without hashing. Throughput is that of the two cores'
//!   bookkeeping together.
//! - `picker/start_10k_of_2m_pieces`: a leech of a torrent of 2^21 pieces of 16 KiB,
//!   with one seed connected, starts, receives and verifies 10,000 new pieces (one block
//!   each, rarest first among ties at random). The picker is rebuilt (untimed) when
//!   fewer than 10,000 pieces are left.
//! - `picker/seed_joins_and_leaves_2m_pieces`, `picker/half_peer_joins_and_leaves_2m_pieces`:
//!   on that leech, a peer with every piece (or every other piece) connects (bitfield),
//!   the leech starts and gets one piece from it, the peer disconnects, the leech gets
//!   one more piece from the seed: the availability of the peer's pieces goes up and
//!   down around picks.
//! - `picker/download_100k_pieces`: a whole download of 100,000 pieces of 16 KiB from a
//!   seed and four peers with half the pieces each, picking 16 blocks per peer per round
//!   (picker setup included).
//!
//! `cargo bench -p rivulet --bench core`
#![allow(missing_docs)] // criterion_main! generates an undocumented `main`.
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use handshake::{PeerId, Reserved};
use metainfo::{LayoutMode, PieceLayout};
use peer_wire::{Bitfield, Block, Message, PeerConfig};
use rivulet::core::{Action, CoreConfig, NewPeer, PieceCheck, TorrentCore};
use rivulet::picker::{PeerKey, Picker};

fn core(id: u8, pieces: u32, piece: u32, have_all: bool) -> TorrentCore {
    let total = u64::from(pieces) * u64::from(piece);
    let layout = PieceLayout::new(u64::from(piece), LayoutMode::V1, [(total, false)])
        .expect("a valid layout");
    let mut picker = Picker::new(&layout, u64::from(id));
    if have_all {
        picker.set_have(&vec![true; pieces as usize]);
    }
    let config = CoreConfig {
        peer_id: PeerId([id; 20]),
        reserved: Reserved::STANDARD,
        max_unchoked: 4,
        max_outstanding: 128,
        max_unchecked: usize::MAX,
        listen_port: None,
        dht_port: None,
    };
    TorrentCore::new(config, PeerConfig::new(pieces, piece, total), picker)
}

fn connect(c: &mut TorrentCore, id: u8, outgoing: bool) -> PeerKey {
    let p = NewPeer {
        peer_id: PeerId([id; 20]),
        reserved: Reserved::STANDARD,
        addr: None,
        outgoing,
    };
    c.handle_connect(Instant::now(), p).expect("accepted")
}

/// Runs `a`'s actions against `b` (whose key for `a` is `a_in_b`); `payload` is what
/// every block read returns. Returns whether anything happened.
fn step(a: &mut TorrentCore, b: &mut TorrentCore, a_in_b: PeerKey, payload: &Bytes) -> bool {
    let now = Instant::now();
    let mut any = false;
    while let Some(act) = a.poll_action() {
        any = true;
        match act {
            Action::Send(_, msg) => b.handle_message(now, a_in_b, msg),
            Action::CheckPiece(i, _) => a.handle_piece_checked(now, i, PieceCheck::Stored),
            Action::Read(k, reqs) => {
                let blocks = reqs
                    .iter()
                    .map(|r| {
                        Some(Block {
                            index: r.index,
                            begin: r.begin,
                            data: payload.slice(..r.length as usize),
                        })
                    })
                    .collect();
                a.handle_blocks_read(now, k, blocks);
            }
            Action::Finish => a.handle_finished(Ok(())),
            _ => {}
        }
    }
    any
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("core");

    let n = 1u32 << 21;
    let mut seed = core(1, n, 16384, true);
    let leech = connect(&mut seed, 2, false);
    let mut next = 0u32;
    g.throughput(Throughput::Elements(1));
    g.bench_function("seed_have_2m_pieces", |b| {
        b.iter(|| {
            seed.handle_message(Instant::now(), leech, Message::Have(next % n));
            next = next.wrapping_add(1);
            while seed.poll_action().is_some() {}
        })
    });

    let (pieces, piece) = (256u32, 256 * 1024u32);
    let payload = Bytes::from(vec![7u8; 16384]);
    g.throughput(Throughput::Bytes(u64::from(pieces) * u64::from(piece)));
    g.sample_size(10);
    g.bench_function("transfer_64mib", |b| {
        b.iter(|| {
            let mut s = core(1, pieces, piece, true);
            let mut l = core(2, pieces, piece, false);
            let l_in_s = connect(&mut s, 2, false);
            let s_in_l = connect(&mut l, 1, true);
            for _ in 0..1_000_000 {
                let a = step(&mut s, &mut l, s_in_l, &payload);
                let b = step(&mut l, &mut s, l_in_s, &payload);
                if !a && !b {
                    break;
                }
            }
            assert!(l.status().complete, "the leech completed");
        })
    });
    g.finish();
}

/// A leech picker of `pieces` pieces of 16 KiB (one block each), with `peers` counted.
fn leech_picker(pieces: u32, peers: &[Bitfield]) -> Picker {
    let layout = PieceLayout::new(16384, LayoutMode::V1, [(u64::from(pieces) * 16384, false)])
        .expect("a valid layout");
    let mut p = Picker::new(&layout, 7);
    for f in peers {
        p.add_peer_pieces(f);
    }
    p
}

/// Picks up to `max` blocks from `peer` and delivers them, verifying complete pieces.
/// Returns how many blocks came.
fn fetch(p: &mut Picker, peer: PeerKey, has: &Bitfield, max: usize) -> usize {
    let reqs = p.pick(peer, has, max);
    for r in &reqs {
        if let Some(i) = p.block_received(peer, r).piece_complete {
            p.piece_verified(i);
        }
    }
    reqs.len()
}

fn bench_picker(c: &mut Criterion) {
    let mut g = c.benchmark_group("picker");

    let n = 1u32 << 21;
    let batch = 10_000u32;
    let seed = Bitfield::full(n);
    let mut p = leech_picker(n, std::slice::from_ref(&seed));
    g.throughput(Throughput::Elements(u64::from(batch)));
    g.sample_size(10);
    g.bench_function("start_10k_of_2m_pieces", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                if n - p.have_count() < batch {
                    p = leech_picker(n, std::slice::from_ref(&seed));
                }
                let t = Instant::now();
                for _ in 0..batch {
                    fetch(&mut p, 1, &seed, 1);
                }
                spent += t.elapsed();
            }
            spent
        })
    });

    // A started download (the picker's buckets are built by the first pick).
    let mut p = leech_picker(n, std::slice::from_ref(&seed));
    fetch(&mut p, 1, &seed, 1);
    let mut half = Bitfield::new(n);
    for i in (0..n).step_by(2) {
        half.set(i);
    }
    g.throughput(Throughput::Elements(1));
    for (name, f) in [
        ("seed_joins_and_leaves_2m_pieces", &seed),
        ("half_peer_joins_and_leaves_2m_pieces", &half),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                p.add_peer_pieces(f);
                fetch(&mut p, 2, f, 1);
                p.remove_peer(2, f);
                fetch(&mut p, 1, &seed, 1);
                if n - p.have_count() < 1000 {
                    p = leech_picker(n, std::slice::from_ref(&seed));
                }
            })
        });
    }

    let n = 100_000u32;
    let mut peers: Vec<Bitfield> = (0..4u32)
        .map(|k| {
            let mut f = Bitfield::new(n);
            for i in 0..n {
                if (i.wrapping_mul(2_654_435_761) >> (k * 4 + 3)) & 1 == 0 {
                    f.set(i);
                }
            }
            f
        })
        .collect();
    peers.push(Bitfield::full(n));
    g.throughput(Throughput::Elements(u64::from(n)));
    g.bench_function("download_100k_pieces", |b| {
        b.iter(|| {
            let mut p = leech_picker(n, &peers);
            while !p.is_complete() {
                for (k, f) in peers.iter().enumerate() {
                    fetch(&mut p, k as PeerKey, f, 16);
                }
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench, bench_picker);
criterion_main!(benches);
