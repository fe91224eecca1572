//! KRPC codec, routing table and serving costs.
#![allow(missing_docs)] // criterion_main! generates an undocumented `main`.

use std::net::SocketAddr;
use std::time::Instant;

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use rand::SeedableRng;
use rivulet_dht::krpc::{Body, Message, Method, Query, Response, Want};
use rivulet_dht::{Config, Id, Node, NodeInfo, RoutingTable};

fn nodes(n: usize, rng: &mut rand::rngs::StdRng) -> Vec<NodeInfo> {
    (0..n)
        .map(|i| NodeInfo {
            id: Id::random(rng),
            addr: SocketAddr::from(([10, 0, (i / 256) as u8, (i % 256) as u8], 6881)),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let response = Message {
        tid: b"ab",
        version: Some(b"RV01"),
        ip: Some("1.2.3.4:6881".parse().unwrap()),
        read_only: false,
        body: Body::Response(Response {
            id: Id::random(&mut rng),
            nodes: nodes(8, &mut rng),
            token: Some(b"12345678"),
            ..Response::default()
        }),
    };
    let packet = response.encode();
    c.bench_function("krpc/decode_get_peers_response_8_nodes", |b| {
        b.iter(|| Message::decode(black_box(&packet)).unwrap())
    });
    c.bench_function("krpc/encode_get_peers_response_8_nodes", |b| {
        b.iter(|| black_box(&response).encode())
    });

    let now = Instant::now();
    let own = Id::random(&mut rng);
    let mut table = RoutingTable::new(own, now);
    for n in nodes(5000, &mut rng) {
        table.insert(n, now, true);
    }
    let target = Id::random(&mut rng);
    c.bench_function(&format!("routing/closest_8_of_{}", table.len()), |b| {
        b.iter(|| table.closest(black_box(&target), 8, now))
    });

    let mut node = Node::new(Config::default(), own, now, 1);
    for n in nodes(5000, &mut rng) {
        node.add_node(n, now);
    }
    let query = Message {
        tid: b"xy",
        version: None,
        ip: None,
        read_only: true,
        body: Body::Query(Query {
            id: Id::random(&mut rng),
            want: Want::default(),
            method: Method::FindNode { target },
        }),
    }
    .encode();
    let mut config = Config::default();
    config.rate_limit = None;
    let mut node2 = Node::new(config, own, now, 2);
    for e in node.routing_table().iter() {
        node2.add_node(e.info, now);
    }
    let from: SocketAddr = "10.9.9.9:1".parse().unwrap();
    c.bench_function("node/answer_find_node", |b| {
        b.iter(|| {
            node2.handle_datagram(now, from, black_box(&query));
            node2.poll_transmit().unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
