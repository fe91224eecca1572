//! The `serde` feature: typical shapes, round trips, errors with offsets.

use std::collections::{BTreeMap, HashMap};

use rivulet_bencode::{
    DeError, DeErrorKind, Decoder, ErrorKind, SerError, Value, decode, from_bytes, from_bytes_with,
    to_bytes,
};
use serde::{Deserialize, Serialize};

/// A tracker announce response (BEP 3 / BEP 23 compact peers).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Announce<'a> {
    interval: u32,
    #[serde(
        rename = "min interval",
        skip_serializing_if = "Option::is_none",
        default
    )]
    min_interval: Option<u32>,
    #[serde(borrow, with = "serde_bytes")]
    peers: &'a [u8],
    #[serde(rename = "failure reason", default)]
    failure_reason: Option<&'a str>,
    #[serde(default)]
    complete: Option<u64>,
}

#[test]
fn announce_response() {
    let input =
        b"d8:completei5e8:intervali1800e5:peers12:\x7f\0\0\x01\x1a\xe1\x0a\0\0\x02\x1a\xe2e";
    let a: Announce<'_> = from_bytes(input).unwrap();
    assert_eq!(a.interval, 1800);
    assert_eq!(a.complete, Some(5));
    assert_eq!(a.peers.len(), 12);
    assert_eq!(a.failure_reason, None);
    assert_eq!(a.min_interval, None);
    // Borrowed straight from the input.
    assert!(std::ptr::eq(a.peers.as_ptr(), input[40..].as_ptr()));
    assert_eq!(to_bytes(&a).unwrap(), input);

    let fail = b"d14:failure reason9:not foundi8:intervali0e5:peers0:e";
    let e = from_bytes::<Announce<'_>>(fail).unwrap_err();
    // "i8:..." is not a key: strict decoding says where.
    assert_eq!(e.offset(), Some(29));
    let fail = b"d14:failure reason9:not found8:intervali0e5:peers0:e";
    let a: Announce<'_> = from_bytes(fail).unwrap();
    assert_eq!(a.failure_reason, Some("not found"));
    assert_eq!(to_bytes(&a).unwrap(), fail);
}

#[test]
fn missing_field_and_wrong_type_errors() {
    let e = from_bytes::<Announce<'_>>(b"d8:intervali1ee").unwrap_err();
    assert!(
        matches!(e.kind(), DeErrorKind::Custom(m) if m.contains("peers")),
        "{e}"
    );
    assert_eq!(e.offset(), Some(0));
    let e = from_bytes::<Announce<'_>>(b"d8:interval3:abc5:peers0:e").unwrap_err();
    assert_eq!(e.offset(), Some(11));
    assert!(e.to_string().contains("byte 11"), "{e}");
    let e = from_bytes::<Announce<'_>>(b"d8:intervali-1e5:peers0:e").unwrap_err();
    assert_eq!(e.offset(), Some(11));
}

/// KRPC (BEP 5) messages.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Krpc<'a> {
    #[serde(borrow, with = "serde_bytes")]
    t: &'a [u8],
    y: &'a str,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    q: Option<&'a str>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    a: Option<Args<'a>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    r: Option<Resp<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<(i64, String)>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Args<'a> {
    #[serde(borrow, with = "serde_bytes")]
    id: &'a [u8],
    #[serde(borrow, with = "serde_bytes", default)]
    info_hash: &'a [u8],
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Resp<'a> {
    #[serde(borrow, with = "serde_bytes")]
    id: &'a [u8],
    #[serde(borrow, with = "serde_bytes", default)]
    nodes: &'a [u8],
    #[serde(borrow, default, with = "serde_bytes")]
    token: &'a [u8],
    #[serde(borrow, default)]
    values: Vec<&'a serde_bytes::Bytes>,
}

#[test]
fn krpc_messages() {
    let q = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe";
    let m: Krpc<'_> = from_bytes(q).unwrap();
    assert_eq!(m.q, Some("get_peers"));
    assert_eq!(m.a.as_ref().unwrap().id, b"abcdefghij0123456789");
    assert_eq!(to_bytes(&m).unwrap(), q);

    let r = b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re";
    let m: Krpc<'_> = from_bytes(r).unwrap();
    let resp = m.r.as_ref().unwrap();
    assert_eq!(resp.token, b"aoeusnth");
    assert_eq!(resp.values.len(), 2);
    assert_eq!(&resp.values[1][..], b"idhtnm");
    // `nodes` was absent, default empty; it is written back as `0:`.
    assert_eq!(
        to_bytes(&m).unwrap(),
        &b"d1:rd2:id20:abcdefghij01234567895:nodes0:5:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re"[..]
    );

    let e = b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee";
    let m: Krpc<'_> = from_bytes(e).unwrap();
    assert_eq!(m.e, Some((201, "A Generic Error Ocurred".to_string())));
    assert_eq!(to_bytes(&m).unwrap(), e);
}

#[test]
fn unknown_keys_are_skipped_but_checked() {
    let input = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:vd1:xli1eee1:y1:qe";
    let m: Krpc<'_> = from_bytes(input).unwrap();
    assert_eq!(m.y, "q");
    // An ill-formed unknown value is still an error, at its offset.
    let bad = b"d1:t2:aa1:vi01e1:y1:qe";
    let e = from_bytes::<Krpc<'_>>(bad).unwrap_err();
    assert_eq!(
        e,
        DeError::new(Some(12), DeErrorKind::Syntax(ErrorKind::LeadingZero))
    );
    assert!(from_bytes_with::<Krpc<'_>>(&Decoder::new().lenient(), bad).is_ok());
}

#[test]
fn strict_and_lenient_dictionaries() {
    let unsorted = b"d1:y1:q1:t2:aae";
    let e = from_bytes::<Krpc<'_>>(unsorted).unwrap_err();
    assert_eq!(*e.kind(), DeErrorKind::Syntax(ErrorKind::UnsortedKey));
    assert_eq!(e.offset(), Some(7));
    let m: Krpc<'_> = from_bytes_with(&Decoder::new().lenient(), unsorted).unwrap();
    assert_eq!((m.t, m.y), (&b"aa"[..], "q"));
    let e = from_bytes::<Krpc<'_>>(b"d1:t2:aa1:y1:qe  ").unwrap_err();
    assert_eq!(
        *e.kind(),
        DeErrorKind::Syntax(ErrorKind::TrailingBytes { count: 2 })
    );
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Shape {
    Unit,
    Newtype(i32),
    Tuple(u8, String),
    Struct { w: u16, h: u16 },
}

#[test]
fn enums() {
    let cases: Vec<(Shape, &[u8])> = vec![
        (Shape::Unit, b"4:Unit"),
        (Shape::Newtype(-5), b"d7:Newtypei-5ee"),
        (Shape::Tuple(1, "x".into()), b"d5:Tupleli1e1:xee"),
        (Shape::Struct { w: 2, h: 3 }, b"d6:Structd1:hi3e1:wi2eee"),
    ];
    for (v, bytes) in cases {
        assert_eq!(to_bytes(&v).unwrap(), bytes);
        assert_eq!(from_bytes::<Shape>(bytes).unwrap(), v);
        assert!(decode(bytes).is_ok());
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Scalars {
    yes: bool,
    no: bool,
    unit: (),
    small: i8,
    big: u64,
    neg: i64,
    c: char,
    s: String,
    #[serde(with = "serde_bytes")]
    buf: Vec<u8>,
    list: Vec<u16>,
    tuple: (u8, i32),
    map: BTreeMap<String, i64>,
    opt: Option<u8>,
    none: Option<u8>,
}

#[test]
fn scalars_round_trip() {
    let mut map = BTreeMap::new();
    map.insert("b".into(), 2);
    map.insert("a".into(), 1);
    let s = Scalars {
        yes: true,
        no: false,
        unit: (),
        small: -8,
        big: i64::MAX as u64,
        neg: i64::MIN,
        c: 'é',
        s: "hello".into(),
        buf: vec![0, 255],
        list: vec![1, 2, 3],
        tuple: (7, -7),
        map,
        opt: Some(9),
        none: None,
    };
    let bytes = to_bytes(&s).unwrap();
    // Struct fields come out sorted, `none` is left out.
    let v = decode(&bytes).unwrap();
    let keys: Vec<_> = v.as_dict().unwrap().iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            &b"big"[..],
            b"buf",
            b"c",
            b"list",
            b"map",
            b"neg",
            b"no",
            b"opt",
            b"s",
            b"small",
            b"tuple",
            b"unit",
            b"yes"
        ]
    );
    assert_eq!(v.as_dict().unwrap().get(b"yes"), Some(&Value::Int(1)));
    assert_eq!(v.as_dict().unwrap().get(b"unit"), Some(&Value::Bytes(b"")));
    assert_eq!(from_bytes::<Scalars>(&bytes).unwrap(), s);
}

#[test]
fn ser_errors() {
    assert_eq!(to_bytes(&1.5f64), Err(SerError::Float));
    assert!(matches!(
        to_bytes(&u64::MAX),
        Err(SerError::IntegerOverflow(_))
    ));
    let mut m = HashMap::new();
    m.insert(1u8, 2u8);
    assert_eq!(to_bytes(&m), Err(SerError::KeyNotString("an integer")));
    assert_eq!(to_bytes(&None::<u8>), Err(SerError::NoneOutsideMap));
    assert_eq!(
        to_bytes(&vec![Some(1), None]),
        Err(SerError::NoneOutsideMap)
    );
    // A HashMap comes out sorted whatever its iteration order.
    let m: HashMap<String, u8> = (0..50).map(|i| (format!("k{i}"), i)).collect();
    let bytes = to_bytes(&m).unwrap();
    assert_eq!(decode(&bytes).unwrap().to_bytes(), bytes);
    let back: HashMap<String, u8> = from_bytes(&bytes).unwrap();
    assert_eq!(back, m);
}

#[test]
fn de_errors() {
    assert_eq!(
        *from_bytes::<f64>(b"i1e").unwrap_err().kind(),
        DeErrorKind::Float
    );
    let e = from_bytes::<u8>(b"i256e").unwrap_err();
    assert_eq!(e.offset(), Some(0));
    let e = from_bytes::<&str>(b"2:\xff\xfe").unwrap_err();
    assert_eq!(*e.kind(), DeErrorKind::InvalidUtf8);
    let e = from_bytes::<bool>(b"i2e").unwrap_err();
    assert!(e.to_string().contains("0 or 1"));
    let e = from_bytes::<(u8, u8)>(b"li1ei2ei3ee").unwrap_err();
    assert_eq!(*e.kind(), DeErrorKind::TrailingItems);
    let e = from_bytes::<Vec<u8>>(b"li1e").unwrap_err();
    assert_eq!(e.offset(), Some(4));
    let deep = vec![b'l'; 300];
    let e = from_bytes::<serde::de::IgnoredAny>(&deep).unwrap_err();
    assert_eq!(
        *e.kind(),
        DeErrorKind::Syntax(ErrorKind::DepthLimit { limit: 256 })
    );
    assert_eq!(e.offset(), Some(256));
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Outer<'a> {
    name: &'a str,
    #[serde(flatten, borrow)]
    inner: Inner<'a>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Inner<'a> {
    length: i64,
    #[serde(borrow)]
    path: Vec<&'a str>,
}

#[test]
fn flatten() {
    let o = Outer {
        name: "n",
        inner: Inner {
            length: 3,
            path: vec!["a", "b"],
        },
    };
    let bytes = to_bytes(&o).unwrap();
    assert_eq!(bytes, b"d6:lengthi3e4:name1:n4:pathl1:a1:bee");
    assert_eq!(from_bytes::<Outer<'_>>(&bytes).unwrap(), o);
}

#[test]
fn value_serializes_like_its_encoding() {
    let input = b"d1:ali1e2:xye1:bd1:ci-3eee";
    let v = decode(input).unwrap();
    assert_eq!(to_bytes(&v).unwrap(), input);
    let lenient = Decoder::new().lenient().decode(b"d1:bi1e1:ai2ee").unwrap();
    assert_eq!(to_bytes(&lenient).unwrap(), b"d1:ai2e1:bi1ee");
}

mod props {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct File {
        length: i64,
        path: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        md5sum: Option<String>,
        #[serde(with = "serde_bytes")]
        attr: Vec<u8>,
        map: BTreeMap<String, i32>,
    }

    fn file() -> impl Strategy<Value = File> {
        (
            any::<i64>(),
            proptest::collection::vec(".{0,8}", 0..4),
            proptest::option::of("[a-f0-9]{0,32}"),
            proptest::collection::vec(any::<u8>(), 0..16),
            proptest::collection::btree_map(".{0,4}", any::<i32>(), 0..4),
        )
            .prop_map(|(length, path, md5sum, attr, map)| File {
                length,
                path,
                md5sum,
                attr,
                map,
            })
    }

    proptest! {
        #[test]
        fn typed_round_trip(files in proptest::collection::vec(file(), 0..6)) {
            let bytes = to_bytes(&files).unwrap();
            // Canonical: the tree decoder accepts it strictly and re-encodes identically.
            prop_assert_eq!(decode(&bytes).unwrap().to_bytes(), bytes.clone());
            let back: Vec<File> = from_bytes(&bytes).unwrap();
            prop_assert_eq!(back, files);
        }

        #[test]
        fn arbitrary_bytes_never_panic_typed(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = from_bytes::<Vec<File>>(&bytes);
            let _ = from_bytes::<File>(&bytes);
            let _ = from_bytes::<serde::de::IgnoredAny>(&bytes);
            let _ = from_bytes_with::<Krpc<'_>>(&Decoder::new().lenient(), &bytes);
            // Skipping agrees with the tree decoder.
            let skipped = from_bytes::<serde::de::IgnoredAny>(&bytes).map(|_| ());
            let tree = decode(&bytes).map(|_| ());
            prop_assert_eq!(skipped.is_ok(), tree.is_ok());
        }
    }
}

/// Strings are checked as UTF-8 a stretch of input at a time; whatever the neighbours
/// (text, binary strings, multi-byte characters cut at any point), every `&str` gets
/// the same answer as `str::from_utf8` on it alone, and the first bad one is reported
/// at its own offset.
#[test]
fn utf8_checked_per_string_whatever_the_neighbours() {
    let pieces: [&[u8]; 10] = [
        b"plain",
        "h\u{e9}llo".as_bytes(),
        "\u{1f600}".as_bytes(),
        &"\u{1f600}".as_bytes()[..2],
        &"\u{1f600}".as_bytes()[1..],
        b"\xff",
        b"",
        b"\xc3",
        b"a\xc3\xa9b",
        &[b'x'; 70],
    ];
    let mut seed = 0x1234_5678_9abc_def0_u64;
    for _ in 0..3000 {
        let mut items: Vec<&[u8]> = Vec::new();
        // Past the first 8 strings of a document, stretches are used.
        let n = 1 + (seed % 24) as usize;
        for _ in 0..n {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            items.push(pieces[(seed % pieces.len() as u64) as usize]);
        }
        // As a list of strings, and as strings behind binary fields of a struct.
        let mut input = b"l".to_vec();
        let mut offsets = Vec::new();
        for it in &items {
            offsets.push(input.len());
            input.extend_from_slice(format!("{}:", it.len()).as_bytes());
            input.extend_from_slice(it);
        }
        input.push(b'e');
        let first_bad = items.iter().position(|s| std::str::from_utf8(s).is_err());
        let got = from_bytes::<Vec<&str>>(&input);
        match first_bad {
            None => {
                let want: Vec<&str> = items
                    .iter()
                    .map(|s| std::str::from_utf8(s).unwrap())
                    .collect();
                assert_eq!(got.unwrap(), want, "{input:?}");
            }
            Some(i) => {
                let e = got.unwrap_err();
                assert_eq!(*e.kind(), DeErrorKind::InvalidUtf8, "{input:?}");
                assert_eq!(e.offset(), Some(offsets[i]), "{input:?}");
            }
        }
        // A string right after a binary field.
        #[derive(Deserialize, Debug)]
        struct S<'a> {
            #[serde(borrow, with = "serde_bytes")]
            a: &'a [u8],
            b: &'a str,
        }
        let (x, y) = (items[0], items[items.len() - 1]);
        let mut input = format!("d1:a{}:", x.len()).into_bytes();
        input.extend_from_slice(x);
        input.extend_from_slice(format!("1:b{}:", y.len()).as_bytes());
        input.extend_from_slice(y);
        input.push(b'e');
        let got = from_bytes::<S<'_>>(&input);
        match std::str::from_utf8(y) {
            Ok(s) => {
                let v = got.unwrap();
                assert_eq!((v.a, v.b), (x, s));
            }
            Err(_) => assert_eq!(*got.unwrap_err().kind(), DeErrorKind::InvalidUtf8),
        }
    }
}
