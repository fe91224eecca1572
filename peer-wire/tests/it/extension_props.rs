//! proptest: extension messages round-trip and never panic on arbitrary input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use proptest::prelude::*;
use rivulet_peer_wire::{ExtensionHandshake, MetadataMessage, PexFlags, PexMessage};

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<[u8; 16]>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ]
}

fn handshake() -> impl Strategy<Value = ExtensionHandshake> {
    (
        proptest::collection::btree_map("[a-z_]{1,12}", any::<u8>(), 0..5),
        proptest::option::of(any::<u16>()),
        proptest::option::of("[ -~]{0,20}"),
        proptest::option::of(ip()),
        proptest::option::of(any::<[u8; 4]>()),
        proptest::option::of(any::<[u8; 16]>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(0u64..=i64::MAX as u64),
        any::<bool>(),
    )
        .prop_map(
            |(m, p, v, yourip, ipv4, ipv6, reqq, metadata_size, upload_only)| {
                let mut hs = ExtensionHandshake::new();
                hs.m = m;
                hs.p = p;
                hs.v = v;
                hs.yourip = yourip;
                hs.ipv4 = ipv4.map(Ipv4Addr::from);
                hs.ipv6 = ipv6.map(Ipv6Addr::from);
                hs.reqq = reqq;
                hs.metadata_size = metadata_size;
                hs.upload_only = upload_only;
                hs
            },
        )
}

fn metadata() -> impl Strategy<Value = MetadataMessage> {
    prop_oneof![
        any::<u32>().prop_map(|piece| MetadataMessage::Request { piece }),
        any::<u32>().prop_map(|piece| MetadataMessage::Reject { piece }),
        (
            any::<u32>(),
            0u64..=i64::MAX as u64,
            proptest::collection::vec(any::<u8>(), 0..200)
        )
            .prop_map(|(piece, total_size, data)| MetadataMessage::Data {
                piece,
                total_size,
                data: Bytes::from(data)
            }),
    ]
}

fn pex() -> impl Strategy<Value = PexMessage> {
    let addr = || (ip(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port));
    (
        proptest::collection::vec((addr(), any::<u8>()), 0..6),
        proptest::collection::vec(addr(), 0..6),
    )
        .prop_map(|(added, dropped)| {
            let mut added: Vec<_> = added.into_iter().map(|(a, f)| (a, PexFlags(f))).collect();
            // Encoding groups by family: IPv4 first.
            added.sort_by_key(|(a, _)| a.is_ipv6());
            let mut dropped = dropped;
            dropped.sort_by_key(|a| a.is_ipv6());
            PexMessage { added, dropped }
        })
}

proptest! {
    #[test]
    fn handshake_roundtrip(hs in handshake()) {
        prop_assert_eq!(ExtensionHandshake::parse(&hs.to_bytes()).unwrap(), hs);
    }

    #[test]
    fn metadata_roundtrip(m in metadata()) {
        prop_assert_eq!(MetadataMessage::parse(&Bytes::from(m.to_bytes())).unwrap(), m);
    }

    #[test]
    fn pex_roundtrip(p in pex()) {
        prop_assert_eq!(PexMessage::parse(&p.to_bytes()).unwrap(), p);
    }

    #[test]
    fn arbitrary_payloads_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = ExtensionHandshake::parse(&data);
        let _ = MetadataMessage::parse(&Bytes::from(data.clone()));
        let _ = PexMessage::parse(&data);
    }
}
