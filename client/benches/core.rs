//! Criterion benches of the client's sans-IO core: the per-message work of the torrent
//! core and picker, with no sockets, disk or hashing.
//!
//! - `core/seed_have_2m_pieces`: a seed of a torrent of 2^21 pieces (the metainfo limit)
//!   takes one `have` from a leech (the message every leech sends per piece it gets).
//! - `core/transfer_64mib`: a seed core and a leech core move 64 MiB (256 KiB pieces,
//!   16 KiB blocks) to each other in memory: requests, pieces, haves and the picker,
//!   hash checks answered as good without hashing. Throughput is that of the two cores'
//!   bookkeeping together.
//!
//! `cargo bench -p rivulet --bench core`
#![allow(missing_docs)] // criterion_main! generates an undocumented `main`.
use std::time::Instant;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use handshake::{PeerId, Reserved};
use metainfo::{LayoutMode, PieceLayout};
use peer_wire::{Block, Message, PeerConfig};
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

criterion_group!(benches, bench);
criterion_main!(benches);
