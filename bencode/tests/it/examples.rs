//! The BEP 3 examples and other well-formed inputs.

use rivulet_bencode::{Decoder, Dict, List, Value, decode, skip};

#[test]
fn bep3_strings() {
    assert_eq!(decode(b"4:spam").unwrap(), Value::Bytes(b"spam"));
    assert_eq!(decode(b"0:").unwrap(), Value::Bytes(b""));
    assert_eq!(decode(b"4:spam").unwrap().as_str(), Some("spam"));
}

#[test]
fn bep3_integers() {
    assert_eq!(decode(b"i3e").unwrap(), Value::Int(3));
    assert_eq!(decode(b"i-3e").unwrap(), Value::Int(-3));
    assert_eq!(decode(b"i0e").unwrap(), Value::Int(0));
    assert_eq!(
        decode(b"i9223372036854775807e").unwrap(),
        Value::Int(i64::MAX)
    );
    assert_eq!(
        decode(b"i-9223372036854775808e").unwrap(),
        Value::Int(i64::MIN)
    );
    assert_eq!(
        decode(b"i123456789012345678e").unwrap(),
        Value::Int(123_456_789_012_345_678)
    );
}

#[test]
fn bep3_list() {
    let v = decode(b"l4:spam4:eggse").unwrap();
    let l = v.as_list().unwrap();
    assert_eq!(l.len(), 2);
    assert_eq!(l.get(0).unwrap().as_bytes(), Some(&b"spam"[..]));
    assert_eq!(l.get(1).unwrap().as_bytes(), Some(&b"eggs"[..]));
    assert_eq!(decode(b"le").unwrap(), Value::List(List::new()));
}

#[test]
fn bep3_dicts() {
    let v = decode(b"d3:cow3:moo4:spam4:eggse").unwrap();
    let d = v.as_dict().unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d.get(b"cow").unwrap().as_str(), Some("moo"));
    assert_eq!(d.get(b"spam").unwrap().as_str(), Some("eggs"));
    assert!(d.get(b"nope").is_none());

    let v = decode(b"d4:spaml1:a1:bee").unwrap();
    let l = v
        .as_dict()
        .unwrap()
        .get(b"spam")
        .unwrap()
        .as_list()
        .unwrap();
    let items: Vec<_> = l.iter().map(|x| x.as_str().unwrap()).collect();
    assert_eq!(items, ["a", "b"]);
    assert_eq!(decode(b"de").unwrap(), Value::Dict(Dict::new()));
}

#[test]
fn nested_and_mixed() {
    let input = b"d1:ad1:bl1:cdeleee1:xi-1ee";
    let v = decode(input).unwrap();
    assert_eq!(v.to_bytes(), input);
    assert_eq!(v.type_name(), "dictionary");
    let a = v.as_dict().unwrap().get(b"a").unwrap();
    assert_eq!(a.raw(), Some(&b"d1:bl1:cdeleee"[..]));
}

#[test]
fn binary_strings() {
    let input = b"3:\x00\xff\x80";
    let v = decode(input).unwrap();
    assert_eq!(v.as_bytes(), Some(&b"\x00\xff\x80"[..]));
    assert_eq!(v.as_str(), None);
}

#[test]
fn large_dict_lookup_uses_sorted_keys() {
    let mut d = Dict::new();
    let keys: Vec<Vec<u8>> = (0..50).map(|i| format!("k{i:03}").into_bytes()).collect();
    for (i, k) in keys.iter().enumerate() {
        d.insert(k, Value::Int(i as i64));
    }
    let bytes = Value::Dict(d).to_bytes();
    let v = decode(&bytes).unwrap();
    let d = v.as_dict().unwrap();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(d.get(k).unwrap().as_int(), Some(i as i64));
    }
    assert!(d.get(b"k999").is_none());
}

#[test]
fn encode_sorts_and_replaces() {
    let mut d = Dict::new();
    d.insert(b"b", Value::Int(1));
    d.insert(b"a", Value::Int(2));
    d.insert(b"b", Value::Int(3));
    let v = Value::Dict(d);
    assert_eq!(v.to_bytes(), b"d1:ai2e1:bi3ee");
    assert_eq!(v.encoded_len(), v.to_bytes().len());
    assert_eq!(rivulet_bencode::encode(&v), v.to_bytes());
}

#[test]
fn lenient_duplicate_first_wins_and_encodes_canonically() {
    let v = Decoder::new()
        .lenient()
        .decode(b"d1:bi1e1:ai2e1:bi3ee")
        .unwrap();
    let d = v.as_dict().unwrap();
    assert_eq!(d.get(b"b").unwrap().as_int(), Some(1));
    assert_eq!(d.len(), 3);
    assert_eq!(v.to_bytes(), b"d1:ai2e1:bi1ee");
}

#[test]
fn decode_prefix_and_skip() {
    let input = b"d1:ai1ee\x01\x02trailing";
    let (v, used) = Decoder::new().decode_prefix(input).unwrap();
    assert_eq!(used, 8);
    assert_eq!(v.as_dict().unwrap().len(), 1);
    assert_eq!(skip(input).unwrap(), 8);
    assert_eq!(skip(b"4:spamXX").unwrap(), 6);
}

#[test]
fn max_depth_is_configurable() {
    let input = b"llleee";
    assert!(Decoder::new().max_depth(3).decode(input).is_ok());
    let err = Decoder::new().max_depth(2).decode(input).unwrap_err();
    assert_eq!(err.offset, 2);
    // Deep nesting within the default limit works without recursion.
    let mut deep = vec![b'l'; 256];
    deep.extend(std::iter::repeat_n(b'e', 256));
    let v = decode(&deep).unwrap();
    assert_eq!(v.to_bytes(), deep);
}

#[test]
fn builders_and_conversions() {
    let mut l = List::new();
    l.push(Value::from(1i64));
    l.push(Value::from("x"));
    l.push(Value::from(&b"y"[..]));
    assert!(l.raw().is_none());
    let v: Value<'_> = l.into();
    assert_eq!(v.to_bytes(), b"li1e1:x1:ye");
    let d: Dict<'_> = [(&b"k"[..], Value::Int(1))].into_iter().collect();
    assert_eq!(Value::from(d).to_bytes(), b"d1:ki1ee");
}
