//! Malformed inputs, each with its exact error, and what lenient mode accepts.

use rivulet_bencode::{DecodeError, Decoder, ErrorKind, Expected, Value, decode};

fn eof(offset: usize, expected: Expected) -> DecodeError {
    DecodeError {
        offset,
        kind: ErrorKind::UnexpectedEof { expected },
    }
}
fn byte(offset: usize, found: u8, expected: Expected) -> DecodeError {
    DecodeError {
        offset,
        kind: ErrorKind::UnexpectedByte { found, expected },
    }
}
fn at(offset: usize, kind: ErrorKind) -> DecodeError {
    DecodeError { offset, kind }
}

#[test]
fn strict_error_table() {
    let table: Vec<(&[u8], DecodeError)> = vec![
        (b"", eof(0, Expected::Value)),
        (b"i", eof(1, Expected::Digit)),
        (b"ie", byte(1, b'e', Expected::Digit)),
        (b"i-", eof(2, Expected::Digit)),
        (b"i-e", byte(2, b'e', Expected::Digit)),
        (b"i--1e", byte(2, b'-', Expected::Digit)),
        (b"i+1e", byte(1, b'+', Expected::Digit)),
        (b"i1", eof(2, Expected::IntegerEnd)),
        (b"i1x", byte(2, b'x', Expected::IntegerEnd)),
        (b"i1.5e", byte(2, b'.', Expected::IntegerEnd)),
        (b"i03e", at(1, ErrorKind::LeadingZero)),
        (b"i00e", at(1, ErrorKind::LeadingZero)),
        (b"i-03e", at(2, ErrorKind::LeadingZero)),
        (b"i-0e", at(1, ErrorKind::NegativeZero)),
        (b"i9223372036854775808e", at(1, ErrorKind::IntegerOverflow)),
        (b"i-9223372036854775809e", at(2, ErrorKind::IntegerOverflow)),
        (
            b"i99999999999999999999999e",
            at(1, ErrorKind::IntegerOverflow),
        ),
        (
            b"5:abc",
            at(
                0,
                ErrorKind::LengthTooLarge {
                    claimed: 5,
                    remaining: 3,
                },
            ),
        ),
        (
            b"1:",
            at(
                0,
                ErrorKind::LengthTooLarge {
                    claimed: 1,
                    remaining: 0,
                },
            ),
        ),
        (
            b"99999999999999999999:",
            at(
                0,
                ErrorKind::LengthTooLarge {
                    claimed: u64::MAX,
                    remaining: 0,
                },
            ),
        ),
        (
            b"4294967296:x",
            at(
                0,
                ErrorKind::LengthTooLarge {
                    claimed: 4_294_967_296,
                    remaining: 1,
                },
            ),
        ),
        (b"01:a", at(0, ErrorKind::LeadingZero)),
        (b"00:", at(0, ErrorKind::LeadingZero)),
        (b"1", eof(1, Expected::Colon)),
        (b"1x", byte(1, b'x', Expected::Colon)),
        (b"x", byte(0, b'x', Expected::Value)),
        (b"e", byte(0, b'e', Expected::Value)),
        (b"-1:a", byte(0, b'-', Expected::Value)),
        (b"l", eof(1, Expected::ItemOrEnd)),
        (b"li1e", eof(4, Expected::ItemOrEnd)),
        (b"lx", byte(1, b'x', Expected::ItemOrEnd)),
        (b"d", eof(1, Expected::KeyOrEnd)),
        (b"d1:a", eof(4, Expected::DictValue)),
        (b"d1:ae", byte(4, b'e', Expected::DictValue)),
        (b"d1:b0:1:a0:e", at(6, ErrorKind::UnsortedKey)),
        (b"d1:a0:1:a0:e", at(6, ErrorKind::DuplicateKey)),
        (b"d2:ab0:1:a0:e", at(7, ErrorKind::UnsortedKey)),
        (b"di1e0:e", byte(1, b'i', Expected::KeyOrEnd)),
        (b"dle", byte(1, b'l', Expected::KeyOrEnd)),
        (b"i1ex", at(3, ErrorKind::TrailingBytes { count: 1 })),
        (b"lee", at(2, ErrorKind::TrailingBytes { count: 1 })),
        (b"0:0:", at(2, ErrorKind::TrailingBytes { count: 2 })),
    ];
    for (input, want) in table {
        let got = decode(input).unwrap_err();
        assert_eq!(got, want, "input {:?}", String::from_utf8_lossy(input));
        // The message names the offset.
        assert!(got.to_string().contains(&want.offset.to_string()));
    }
}

#[test]
fn depth_limit_257_nested_lists() {
    let input = vec![b'l'; 257];
    let err = decode(&input).unwrap_err();
    assert_eq!(err, at(256, ErrorKind::DepthLimit { limit: 256 }));
    // The limit is checked before the rest of the input is looked at, in both modes.
    let mut closed = vec![b'l'; 257];
    closed.extend(std::iter::repeat_n(b'e', 257));
    assert_eq!(
        Decoder::new().lenient().decode(&closed).unwrap_err(),
        at(256, ErrorKind::DepthLimit { limit: 256 })
    );
    // Dictionaries count too.
    let mut dicts = Vec::new();
    for _ in 0..300 {
        dicts.extend_from_slice(b"d1:a");
    }
    assert_eq!(
        decode(&dicts).unwrap_err(),
        at(1024, ErrorKind::DepthLimit { limit: 256 })
    );
}

#[test]
fn lenient_accepts_non_canonical() {
    let lenient = Decoder::new().lenient();
    assert_eq!(lenient.decode(b"i03e").unwrap(), Value::Int(3));
    assert_eq!(lenient.decode(b"i-0e").unwrap(), Value::Int(0));
    assert_eq!(lenient.decode(b"i-003e").unwrap(), Value::Int(-3));
    assert_eq!(lenient.decode(b"01:a").unwrap(), Value::Bytes(b"a"));
    assert_eq!(lenient.decode(b"i1ex").unwrap(), Value::Int(1));
    let v = lenient.decode(b"d1:b0:1:a0:e").unwrap();
    let keys: Vec<_> = v.as_dict().unwrap().iter().map(|(k, _)| k).collect();
    assert_eq!(keys, [&b"b"[..], &b"a"[..]]);
    assert_eq!(v.to_bytes(), b"d1:a0:1:b0:e");
    let v = lenient.decode(b"d1:ai1e1:ai2ee").unwrap();
    assert_eq!(v.as_dict().unwrap().get(b"a").unwrap().as_int(), Some(1));
    // Lenient mode is still bencode: these stay errors.
    for bad in [
        &b""[..],
        b"i",
        b"ie",
        b"i-e",
        b"5:abc",
        b"l",
        b"d1:ae",
        b"di1e0:e",
        b"i9223372036854775808e",
        b"99999999999999999999:",
    ] {
        assert!(lenient.decode(bad).is_err(), "{bad:?}");
    }
    // Strict mode can be chosen explicitly.
    assert!(
        Decoder::new()
            .lenient()
            .strict(true)
            .decode(b"i03e")
            .is_err()
    );
}

#[test]
fn errors_are_typed_and_displayed() {
    let e = decode(b"5:abc").unwrap_err();
    assert_eq!(
        e.to_string(),
        "bencode error at byte 0: string length 5 is larger than the 3 bytes left"
    );
    let e = decode(b"d1:ae").unwrap_err();
    assert!(e.to_string().contains("dictionary value"));
}
