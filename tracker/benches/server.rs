//! Server-core and codec costs: what one UDP announce costs without the sockets.
#![allow(missing_docs)] // criterion_main! generates an undocumented `main`.

use std::net::SocketAddr;
use std::time::Instant;

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use rand::SeedableRng;
use rivulet_tracker::server::{ServerConfig, Swarms};
use rivulet_tracker::udp::{AddrFamily, AnnounceRequest, Request, Response, UdpServer};
use rivulet_tracker::{Event, InfoHash, PeerId};

fn hash(s: u32) -> InfoHash {
    let mut h = [0x55; 20];
    h[..4].copy_from_slice(&s.to_be_bytes());
    InfoHash(h)
}

fn peer(s: u32, p: u32) -> PeerId {
    let mut id = [0x66; 20];
    id[..4].copy_from_slice(&s.to_be_bytes());
    id[4..8].copy_from_slice(&p.to_be_bytes());
    PeerId(id)
}

fn announce(conn: u64, s: u32, p: u32) -> Vec<u8> {
    let mut out = vec![];
    Request::Announce(AnnounceRequest {
        connection_id: conn,
        transaction_id: 1,
        info_hash: hash(s),
        peer_id: peer(s, p),
        downloaded: 0,
        left: (p % 2) as u64,
        uploaded: 0,
        event: Event::None,
        ip: 0,
        key: p,
        num_want: 50,
        port: 1000 + p as u16,
    })
    .encode(&mut out);
    out
}

fn bench(c: &mut Criterion) {
    let now = Instant::now();
    let from: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let front = UdpServer::new(now, [1; 16]);
    let conn = front.connection_id(now, &from);
    // 1,000 swarms x 100 peers (the load example uses 10,000 x 100).
    let mut swarms = Swarms::with_rng(
        ServerConfig::default(),
        rand::rngs::StdRng::seed_from_u64(1),
    );
    let mut out = Vec::with_capacity(2048);
    for s in 0..1000 {
        for p in 0..100 {
            out.clear();
            front.handle_datagram(&mut swarms, now, from, &announce(conn, s, p), &mut out);
        }
    }
    let packets: Vec<Vec<u8>> = (0..4096u32)
        .map(|i| announce(conn, (i * 7919) % 1000, i % 100))
        .collect();
    let mut i = 0;
    c.bench_function("udp announce, 1k swarms x 100 peers, numwant 50", |b| {
        b.iter(|| {
            out.clear();
            i = (i + 1) % packets.len();
            front.handle_datagram(&mut swarms, now, from, black_box(&packets[i]), &mut out);
            black_box(out.len())
        })
    });
    let reqs: Vec<_> = (0..4096u32)
        .map(|i| {
            let (s, p) = ((i * 7919) % 1000, i % 100);
            rivulet_tracker::server::PeerAnnounce {
                info_hash: hash(s),
                peer_id: peer(s, p),
                reach: rivulet_tracker::server::Reach::Addr(SocketAddr::from((
                    [127, 0, 0, 1],
                    1000 + p as u16,
                ))),
                left: (p % 2) as u64,
                event: Event::None,
                numwant: Some(50),
                key: Some(p),
                family: Some(AddrFamily::V4),
            }
        })
        .collect();
    let mut j = 0;
    c.bench_function("Swarms::announce, numwant 50", |b| {
        b.iter(|| {
            j = (j + 1) % reqs.len();
            black_box(
                swarms
                    .announce(now, black_box(&reqs[j]))
                    .map(|r| r.peers.len()),
            )
        })
    });
    c.bench_function("udp connection id check", |b| {
        b.iter(|| front.check_connection_id(now, black_box(&from), black_box(conn)))
    });
    let reply = {
        out.clear();
        front.handle_datagram(&mut swarms, now, from, &packets[0], &mut out);
        out.clone()
    };
    c.bench_function("udp announce response decode (50 peers)", |b| {
        b.iter(|| Response::decode(black_box(&reply), AddrFamily::V4))
    });
    c.bench_function("udp announce request decode", |b| {
        b.iter(|| Request::decode(black_box(&packets[0])))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
