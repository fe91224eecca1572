//! The canonical encoder.

use crate::value::{Dict, List, Value};

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
                if let Some(raw) = canonical_raw_list(l) {
                    out.extend_from_slice(raw);
                    return;
                }
                out.push(b'l');
                for v in l.iter() {
                    v.encode_to(out);
                }
                out.push(b'e');
            }
            Value::Dict(d) => {
                if let Some(raw) = canonical_raw_dict(d) {
                    out.extend_from_slice(raw);
                    return;
                }
                encode_dict(d, out)
            }
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
            Value::List(l) => match canonical_raw_list(l) {
                Some(raw) => raw.len(),
                None => 2 + l.iter().map(Value::encoded_len).sum::<usize>(),
            },
            Value::Dict(d) => match canonical_raw_dict(d) {
                Some(raw) => raw.len(),
                None => {
                    let mut n = 2;
                    for_each_canonical(d, |k, v| n += bytes_len(k) + v.encoded_len());
                    n
                }
            },
        }
    }
}

/// The canonical encoding of `value` (the same as [`Value::to_bytes`]).
pub fn encode(value: &Value<'_>) -> Vec<u8> {
    value.to_bytes()
}

/// A list's original bytes if known to be canonical. Lists do not record the mode they
/// were decoded in (that would make every `Value` a word larger), so they are walked;
/// strictly decoded dictionaries inside them are still copied whole.
#[inline]
fn canonical_raw_list<'a>(_: &List<'a>) -> Option<&'a [u8]> {
    None
}

/// A strictly decoded dictionary's original bytes: already its canonical encoding.
#[inline]
fn canonical_raw_dict<'a>(d: &Dict<'a>) -> Option<&'a [u8]> {
    d.raw().filter(|_| d.sorted)
}

fn encode_dict(d: &Dict<'_>, out: &mut Vec<u8>) {
    out.push(b'd');
    for_each_canonical(d, |k, v| {
        write_bytes(out, k);
        v.encode_to(out);
    });
    out.push(b'e');
}

/// Calls `f` on the entries in canonical order. Sorted dictionaries (all strictly decoded
/// ones, and built ones whose keys were inserted in order) are walked as they are;
/// others are sorted through an index vector, and the first of equal keys wins.
pub(crate) fn for_each_canonical<'d, 'a>(
    d: &'d Dict<'a>,
    mut f: impl FnMut(&'a [u8], &'d Value<'a>),
) {
    let entries = d.entries();
    if d.sorted {
        for (k, v) in entries {
            f(k, v);
        }
        return;
    }
    let mut order: Vec<&'d (&'a [u8], Value<'a>)> = entries.iter().collect();
    // Stable sort: the first of equal keys stays first and wins.
    order.sort_by(|a, b| a.0.cmp(b.0));
    order.dedup_by(|b, a| a.0 == b.0);
    for (k, v) in order {
        f(k, v);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        for i in [0, 1, -1, 9, 10, -10, 99, 100, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            write_int(&mut out, i);
            assert_eq!(out, i.to_string().as_bytes());
            assert_eq!(int_len(i), out.len());
        }
        assert_eq!(uint_len(u64::MAX), 20);
    }

    #[test]
    fn strictly_decoded_containers_copy_their_raw_bytes() {
        let input = b"d1:ali1ei2ee1:bd1:ci3eee";
        let v = crate::decode(input).unwrap();
        assert_eq!(v.to_bytes(), input);
        assert_eq!(v.encoded_len(), input.len());
        // A lenient decode is re-encoded, not copied.
        let v = crate::Decoder::new().lenient().decode(b"li03ee").unwrap();
        assert_eq!(v.to_bytes(), b"li3ee");
        assert_eq!(v.encoded_len(), 5);
    }
}
