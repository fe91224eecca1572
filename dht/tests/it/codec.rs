//! proptest: KRPC round trips, and arbitrary bytes never panic.

use std::borrow::Cow;
use std::net::SocketAddr;

use proptest::prelude::*;
use rivulet_dht::krpc::{Body, ErrorBody, Message, Method, Put, Query, Response, Want};
use rivulet_dht::{Id, NodeInfo};

fn id() -> impl Strategy<Value = Id> {
    any::<[u8; 20]>().prop_map(Id)
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
    ]
}

fn node(v6: bool) -> impl Strategy<Value = NodeInfo> {
    (id(), addr())
        .prop_filter("family", move |(_, a)| a.is_ipv6() == v6)
        .prop_map(|(id, addr)| NodeInfo { id, addr })
}

/// A bencoded value for BEP 44 `v` fields (canonical).
fn bvalue() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<i64>().prop_map(|i| format!("i{i}e").into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| {
            let mut v = format!("{}:", b.len()).into_bytes();
            v.extend(b);
            v
        }),
        Just(b"l1:a1:be".to_vec()),
        Just(b"d1:ai1ee".to_vec()),
    ]
}

fn method() -> impl Strategy<Value = Method<'static>> {
    let token = proptest::collection::vec(any::<u8>(), 0..20).prop_map(|t| &*t.leak());
    prop_oneof![
        Just(Method::Ping),
        id().prop_map(|target| Method::FindNode { target }),
        (id(), any::<bool>(), any::<bool>()).prop_map(|(info_hash, noseed, scrape)| {
            Method::GetPeers {
                info_hash,
                noseed,
                scrape,
            }
        }),
        (
            id(),
            any::<u16>(),
            any::<bool>(),
            token.clone(),
            any::<bool>()
        )
            .prop_map(|(info_hash, port, implied_port, token, seed)| {
                Method::AnnouncePeer {
                    info_hash,
                    port,
                    implied_port,
                    token,
                    seed,
                }
            }),
        (id(), proptest::option::of(any::<i64>()))
            .prop_map(|(target, seq)| Method::Get { target, seq }),
        (
            token,
            bvalue(),
            proptest::option::of(any::<[u8; 32]>()),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 64)),
            proptest::option::of(any::<i64>()),
            proptest::option::of(any::<i64>()),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..10)),
        )
            .prop_map(|(token, v, k, sig, seq, cas, salt)| Method::Put(Put {
                token,
                v: Cow::Owned(v),
                k,
                sig: sig.map(|s| s.try_into().unwrap()),
                seq,
                cas,
                salt: salt.map(|s| &*s.leak()),
            })),
        id().prop_map(|target| Method::SampleInfohashes { target }),
    ]
}

fn response() -> impl Strategy<Value = Response<'static>> {
    (
        id(),
        proptest::collection::vec(node(false), 0..8),
        proptest::collection::vec(node(true), 0..8),
        proptest::collection::vec(addr(), 0..10),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 1..20)),
        proptest::option::of(bvalue()),
        proptest::option::of(any::<i64>()),
        proptest::collection::vec(id(), 0..5),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(
            |(id, nodes, nodes6, values, token, v, seq, samples, num)| Response {
                id,
                nodes,
                nodes6,
                values,
                token: token.map(|t| &*t.leak()),
                v: v.map(Cow::Owned),
                seq,
                samples,
                num,
                ..Response::default()
            },
        )
}

fn message() -> impl Strategy<Value = Message<'static>> {
    let body = prop_oneof![
        (id(), any::<bool>(), any::<bool>(), method()).prop_map(
            |(id, v4, v6, method)| Body::Query(Query {
                id,
                want: Want { v4, v6 },
                method
            })
        ),
        response().prop_map(Body::Response),
        (any::<i64>(), proptest::collection::vec(any::<u8>(), 0..30)).prop_map(|(code, m)| {
            Body::Error(ErrorBody {
                code,
                message: Cow::Owned(m),
            })
        }),
    ];
    (
        proptest::collection::vec(any::<u8>(), 0..8),
        proptest::option::of(any::<[u8; 4]>()),
        proptest::option::of(addr()),
        any::<bool>(),
        body,
    )
        .prop_map(|(tid, version, ip, read_only, body)| Message {
            tid: &*tid.leak(),
            version: version.map(|v| &*v.to_vec().leak()),
            ip,
            read_only,
            body,
        })
}

proptest! {
    #[test]
    fn round_trip(m in message()) {
        let bytes = m.encode();
        // Canonical bencode: the strict decoder accepts it.
        prop_assert!(bencode::decode(&bytes).is_ok());
        prop_assert_eq!(Message::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Message::decode(&b);
    }

    #[test]
    fn mutated_packets_never_panic(m in message(), pos in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = m.encode();
        let i = pos % bytes.len();
        bytes[i] = byte;
        // Whatever decodes re-encodes to something that decodes the same.
        for input in [&bytes[..], &bytes[..i]] {
            if let Ok(m) = Message::decode(input) {
                let again = m.encode();
                prop_assert_eq!(Message::decode(&again).unwrap(), m);
            }
        }
    }
}

proptest! {
    /// Structured but arbitrary messages (queries of every kind, responses, errors) fed to
    /// a node, with lookups of its own running: never a panic, at most one answer and one
    /// ping per datagram, bounded state.
    #[test]
    fn node_survives_arbitrary_messages(msgs in proptest::collection::vec((message(), 0u8..4), 1..40)) {
        use rivulet_dht::{Config, Node};
        let now = std::time::Instant::now();
        let mut config = Config::default();
        config.bootstrap = vec![SocketAddr::from(([10, 0, 0, 1], 6881))];
        let mut node = Node::new(config, Id([9; 20]), now, 3);
        node.bootstrap(now);
        node.get_peers(now, Id([1; 20]));
        while node.poll_transmit().is_some() {}
        for (m, src) in msgs {
            let from = SocketAddr::from(([10, 0, 0, 1 + src], 6881));
            node.handle_datagram(now, from, &m.encode());
            let mut n = 0;
            while node.poll_transmit().is_some() {
                n += 1;
            }
            prop_assert!(n <= 2, "{} datagrams for one", n);
        }
        while node.poll_event().is_some() {}
        prop_assert!(node.pending_queries() <= 64);
    }
}
