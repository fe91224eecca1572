//! The canonical encoder.

use crate::value::{Dict, Value};

impl Value<'_> {
    /// Appends the canonical encoding of this value to `out`: dictionary keys sorted as
    /// raw bytes (the first of duplicate keys wins), integers without leading zeros.
    pub fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(i) => {
                out.push(b'i');
                write_int(out, *i);
                out.push(b'e');
            }
            Value::Bytes(b) => write_bytes(out, b),
            Value::List(l) => {
                out.push(b'l');
                for v in l.iter() {
                    v.encode_to(out);
                }
                out.push(b'e');
            }
            Value::Dict(d) => encode_dict(d, out),
        }
    }

    /// The canonical encoding of this value.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_to(&mut out);
        out
    }

    /// The length of [`Value::to_bytes`], computed without encoding.
    pub fn encoded_len(&self) -> usize {
        match self {
            Value::Int(i) => 2 + int_len(*i),
            Value::Bytes(b) => bytes_len(b),
            Value::List(l) => 2 + l.iter().map(Value::encoded_len).sum::<usize>(),
            Value::Dict(d) => {
                2 + canonical_entries(d)
                    .map(|(k, v)| bytes_len(k) + v.encoded_len())
                    .sum::<usize>()
            }
        }
    }
}

/// The canonical encoding of `value` (the same as [`Value::to_bytes`]).
pub fn encode(value: &Value<'_>) -> Vec<u8> {
    value.to_bytes()
}

fn encode_dict(d: &Dict<'_>, out: &mut Vec<u8>) {
    out.push(b'd');
    for (k, v) in canonical_entries(d) {
        write_bytes(out, k);
        v.encode_to(out);
    }
    out.push(b'e');
}

/// Entries in canonical order. Sorted dictionaries (all strict-decoded ones, and built
/// ones whose keys were inserted in order) are walked as they are; others are sorted
/// through an index vector.
fn canonical_entries<'d, 'a>(
    d: &'d Dict<'a>,
) -> Box<dyn Iterator<Item = (&'a [u8], &'d Value<'a>)> + 'd> {
    if d.sorted {
        return Box::new(d.entries.iter().map(|(k, v)| (*k, v)));
    }
    let mut idx: Vec<usize> = (0..d.entries.len()).collect();
    // Stable sort: the first of equal keys stays first and wins.
    idx.sort_by(|&a, &b| d.entries[a].0.cmp(d.entries[b].0));
    idx.dedup_by(|b, a| d.entries[*a].0 == d.entries[*b].0);
    Box::new(idx.into_iter().map(move |i| {
        let (k, v) = &d.entries[i];
        (*k, v)
    }))
}

/// Appends `<len>:<bytes>`.
pub(crate) fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_uint(out, b.len() as u64);
    out.push(b':');
    out.extend_from_slice(b);
}

pub(crate) fn bytes_len(b: &[u8]) -> usize {
    uint_len(b.len() as u64) + 1 + b.len()
}

/// Appends the decimal form of an integer.
pub(crate) fn write_int(out: &mut Vec<u8>, i: i64) {
    if i < 0 {
        out.push(b'-');
    }
    write_uint(out, i.unsigned_abs());
}

pub(crate) fn int_len(i: i64) -> usize {
    usize::from(i < 0) + uint_len(i.unsigned_abs())
}

pub(crate) fn write_uint(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[at..]);
}

pub(crate) fn uint_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}
