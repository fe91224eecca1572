//! Raw spans: containers keep the exact bytes they were decoded from.

use rivulet_bencode::{Decoder, decode};

#[test]
fn nested_dict_raw_is_the_original_bytes() {
    let input = b"d8:announce3:url4:infod6:lengthi3e4:name1:x12:piece lengthi16384eee";
    let v = decode(input).unwrap();
    let info = v.as_dict().unwrap().get(b"info").unwrap();
    assert_eq!(
        info.raw(),
        Some(&b"d6:lengthi3e4:name1:x12:piece lengthi16384ee"[..])
    );
    assert_eq!(v.raw(), Some(&input[..]));
    assert_eq!(v.as_dict().unwrap().raw(), Some(&input[..]));
}

#[test]
fn raw_survives_non_canonical_lenient_input() {
    // Unsorted keys, leading zeros, -0: the raw span is what was sent, not a re-encoding.
    let input = b"d4:infod1:bi01e1:ai-0e1:ll02:xyi1eee3:zzzi1ee";
    let v = Decoder::new().lenient().decode(input).unwrap();
    let info = v.as_dict().unwrap().get(b"info").unwrap();
    let raw = info.raw().unwrap();
    assert_eq!(raw, b"d1:bi01e1:ai-0e1:ll02:xyi1eee");
    assert_ne!(info.to_bytes(), raw);
    assert_eq!(info.to_bytes(), b"d1:ai0e1:bi1e1:ll2:xyi1eee");
    let l = info.as_dict().unwrap().get(b"l").unwrap();
    assert_eq!(l.raw(), Some(&b"l02:xyi1ee"[..]));
    assert_eq!(l.as_list().unwrap().raw(), l.raw());
}

#[test]
fn scalars_and_built_values_have_no_raw() {
    let v = decode(b"li1e1:ae").unwrap();
    let l = v.as_list().unwrap();
    assert_eq!(l.get(0).unwrap().raw(), None);
    assert_eq!(l.get(1).unwrap().raw(), None);
    let mut l2 = l.clone();
    assert!(l2.raw().is_some());
    l2.push(rivulet_bencode::Value::Int(2));
    assert!(l2.raw().is_none());
}

#[test]
fn raw_of_prefix_value() {
    let input = b"d1:ai1eeJUNK";
    let (v, used) = Decoder::new().decode_prefix(input).unwrap();
    assert_eq!(v.raw(), Some(&input[..used]));
}
