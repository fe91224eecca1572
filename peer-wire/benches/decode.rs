//! Decode throughput: a stream of 16 KiB piece messages (against a plain memcpy of the
//! same bytes), and a mixed control stream.
#![allow(missing_docs)] // criterion_main! generates an undocumented `main`.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rivulet_peer_wire::{Block, BlockRequest, Decoder, Message};

fn piece_stream(n: u32) -> Vec<u8> {
    let data = Bytes::from((0..16384u32).map(|i| i as u8).collect::<Vec<_>>());
    let mut out = BytesMut::new();
    for i in 0..n {
        Message::Piece(Block {
            index: i / 16,
            begin: (i % 16) * 16384,
            data: data.clone(),
        })
        .encode(&mut out);
    }
    out.to_vec()
}

fn control_stream(n: u32) -> Vec<u8> {
    let mut out = BytesMut::new();
    for i in 0..n {
        let r = BlockRequest {
            index: i,
            begin: 0,
            length: 16384,
        };
        for m in [
            Message::Have(i),
            Message::Request(r),
            Message::Interested,
            Message::Cancel(r),
            Message::KeepAlive,
            Message::Unchoke,
            Message::AllowedFast(i),
            Message::Reject(r),
        ] {
            m.encode(&mut out);
        }
    }
    out.to_vec()
}

fn decode_all(dec: &Decoder, stream: &[u8]) -> usize {
    // Copying into the receive buffer stands for the socket read.
    let mut buf = BytesMut::from(stream);
    let mut n = 0;
    while let Ok(Some(m)) = dec.decode(&mut buf) {
        black_box(&m);
        n += 1;
    }
    n
}

fn bench(c: &mut Criterion) {
    let dec = Decoder::new();
    let pieces = piece_stream(256); // 4 MiB
    let mut g = c.benchmark_group("piece_stream_4MiB");
    g.throughput(Throughput::Bytes(pieces.len() as u64));
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            let v = black_box(&pieces[..]).to_vec();
            black_box(v)
        })
    });
    g.bench_function("decode_bytesmut", |b| {
        b.iter(|| decode_all(&dec, black_box(&pieces)))
    });
    g.bench_function("decode_slice", |b| {
        b.iter(|| {
            let mut rest = black_box(&pieces[..]);
            while let Ok(Some((m, used))) = dec.decode_slice(rest) {
                black_box(m);
                rest = &rest[used..];
            }
        })
    });
    g.finish();

    let control = control_stream(8192);
    let mut g = c.benchmark_group("control_stream");
    g.throughput(Throughput::Elements(8192 * 8));
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            let v = black_box(&control[..]).to_vec();
            black_box(v)
        })
    });
    g.bench_function("decode_bytesmut", |b| {
        b.iter(|| decode_all(&dec, black_box(&control)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
