//! Property tests: round trips, canonical bytes, no panics.

use std::collections::BTreeMap;

use proptest::prelude::*;
use rivulet_bencode::{Decoder, Dict, List, Value, decode};

/// An owned tree, so that proptest can generate it; borrowed as a `Value` for tests.
#[derive(Debug, Clone)]
enum Owned {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Owned>),
    Dict(BTreeMap<Vec<u8>, Owned>),
}

impl Owned {
    fn value(&self) -> Value<'_> {
        match self {
            Owned::Int(i) => Value::Int(*i),
            Owned::Bytes(b) => Value::Bytes(b),
            Owned::List(l) => {
                Value::List(List::from(l.iter().map(Owned::value).collect::<Vec<_>>()))
            }
            Owned::Dict(d) => Value::Dict(
                d.iter()
                    .map(|(k, v)| (&k[..], v.value()))
                    .collect::<Dict<'_>>(),
            ),
        }
    }
}

fn owned() -> impl Strategy<Value = Owned> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Owned::Int),
        prop_oneof![Just(0i64), Just(-1), Just(i64::MIN), Just(i64::MAX)].prop_map(Owned::Int),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Owned::Bytes),
    ];
    leaf.prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Owned::List),
            proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 0..6),
                inner,
                0..8
            )
            .prop_map(Owned::Dict),
        ]
    })
}

proptest! {
    #[test]
    fn encode_then_decode_gives_the_same_value(o in owned()) {
        let v = o.value();
        let bytes = v.to_bytes();
        prop_assert_eq!(bytes.len(), v.encoded_len());
        let back = decode(&bytes).unwrap();
        prop_assert_eq!(&back, &v);
        let lenient = Decoder::new().lenient().decode(&bytes).unwrap();
        prop_assert_eq!(&lenient, &v);
    }

    #[test]
    fn decode_then_encode_canonical_gives_the_same_bytes(o in owned()) {
        let canonical = o.value().to_bytes();
        let v = decode(&canonical).unwrap();
        prop_assert_eq!(v.to_bytes(), canonical.clone());
        prop_assert_eq!(v.raw().unwrap_or(&canonical[..]), &canonical[..]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let strict = decode(&bytes);
        let lenient = Decoder::new().lenient().decode(&bytes);
        if let Ok(v) = &strict {
            // Strict success means the input was canonical.
            prop_assert_eq!(&v.to_bytes(), &bytes);
            prop_assert!(lenient.is_ok());
        }
        if let Ok(v) = lenient {
            prop_assert!(decode(&v.to_bytes()).is_ok());
        }
        prop_assert_eq!(
            rivulet_bencode::skip(&bytes),
            Decoder::new().decode_prefix(&bytes).map(|(_, n)| n)
        );
    }

    #[test]
    fn bencode_looking_bytes_never_panic(
        parts in proptest::collection::vec(
            prop_oneof![
                Just(&b"i"[..]), Just(&b"e"[..]), Just(&b"l"[..]), Just(&b"d"[..]),
                Just(&b"0"[..]), Just(&b"1"[..]), Just(&b"9"[..]), Just(&b":"[..]),
                Just(&b"-"[..]), Just(&b"1:a"[..]), Just(&b"i12e"[..]), Just(&b"x"[..]),
            ],
            0..40,
        )
    ) {
        let bytes: Vec<u8> = parts.concat();
        // `skip` (no tree) reports exactly what `decode_prefix` does, errors included.
        prop_assert_eq!(
            rivulet_bencode::skip(&bytes),
            Decoder::new().decode_prefix(&bytes).map(|(_, n)| n)
        );
        if let Ok(v) = decode(&bytes) {
            prop_assert_eq!(v.to_bytes(), bytes.clone());
        }
        if let Ok(v) = Decoder::new().lenient().decode(&bytes) {
            prop_assert!(decode(&v.to_bytes()).is_ok());
        }
    }

    #[test]
    fn decode_prefix_of_value_and_junk_returns_the_value_length(
        o in owned(),
        junk in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let v = o.value();
        let mut bytes = v.to_bytes();
        let n = bytes.len();
        bytes.extend_from_slice(&junk);
        let (back, used) = Decoder::new().decode_prefix(&bytes).unwrap();
        prop_assert_eq!(used, n);
        prop_assert_eq!(&back, &v);
        prop_assert_eq!(rivulet_bencode::skip(&bytes).unwrap(), n);
    }
}
