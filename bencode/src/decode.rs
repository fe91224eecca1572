//! The decoder: an explicit-stack structure parser over token scanners (short canonical
//! integers and lengths inline, everything else through nom, which also words the errors).
//!
//! Containers are parsed without recursion, so a hostile nesting depth costs a bounded
//! stack of frames and never the call stack. Items are collected per nesting depth in
//! per-thread buffers (kept between calls); when the document is complete, each depth's
//! items are moved into one shared allocation that the containers at that depth are
//! ranges of, so a document costs a few allocations, not one per container.

use std::cell::Cell;
use std::sync::Arc;

use nom::IResult;
use nom::Parser;
use nom::bytes::complete::take_while1;

use crate::error::{DecodeError, ErrorKind, Expected};
use crate::value::{Dict, Entry, List, Seq, Value};

/// The default limit on nesting of lists and dictionaries.
pub const DEFAULT_MAX_DEPTH: usize = 256;

/// Decoding options: strict (the default) or lenient, and the nesting limit.
///
/// Strict mode rejects everything that is not the one canonical encoding of a value:
/// leading zeros, `-0`, unsorted or duplicate dictionary keys, and trailing bytes after
/// the value. Lenient mode accepts them (a duplicate key is kept; [`Dict::get`] returns
/// the first), as many clients in the wild need.
#[derive(Debug, Clone, Copy)]
pub struct Decoder {
    strict: bool,
    max_depth: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

/// Decodes one complete value in strict mode; the whole input must be that value.
///
/// ```
/// let v = rivulet_bencode::decode(b"d3:cow3:moo4:spam4:eggse").unwrap();
/// assert_eq!(v.as_dict().unwrap().get(b"cow").unwrap().as_str(), Some("moo"));
/// ```
pub fn decode(input: &[u8]) -> Result<Value<'_>, DecodeError> {
    Decoder::new().decode(input)
}

/// Checks that `input` starts with one well-formed value (strict mode) and returns its
/// length, without building a tree.
pub fn skip(input: &[u8]) -> Result<usize, DecodeError> {
    skip_value(input, 0, true, 0, DEFAULT_MAX_DEPTH)
}

/// Checks the value at `pos` without building anything (a small stack of open containers
/// aside) and returns the offset after it. `depth` containers are already open around
/// it; errors are the same, at the same offsets, as [`Decoder::decode_prefix`] reports.
pub(crate) fn skip_value(
    input: &[u8],
    mut pos: usize,
    strict: bool,
    depth: usize,
    limit: usize,
) -> Result<usize, DecodeError> {
    // Per open container: `None` for a list, `Some(last key)` for a dictionary.
    let mut stack: Vec<Option<Option<&[u8]>>> = Vec::new();
    loop {
        let expected = match stack.last_mut() {
            None => Expected::Value,
            Some(None) => {
                if input.get(pos) == Some(&b'e') {
                    pos += 1;
                    stack.pop();
                    if stack.is_empty() {
                        return Ok(pos);
                    }
                    continue;
                }
                Expected::ItemOrEnd
            }
            Some(Some(last)) => match input.get(pos) {
                None => return Err(eof(pos, Expected::KeyOrEnd)),
                Some(b'e') => {
                    pos += 1;
                    stack.pop();
                    if stack.is_empty() {
                        return Ok(pos);
                    }
                    continue;
                }
                Some(c) if c.is_ascii_digit() => {
                    let (k, next) = lex_str(input, pos, strict)?;
                    if strict {
                        if let Some(prev) = last {
                            check_key_order(prev, k, pos)?;
                        }
                    }
                    *last = Some(k);
                    pos = next;
                    Expected::DictValue
                }
                Some(&found) => {
                    return Err(DecodeError::new(
                        pos,
                        ErrorKind::UnexpectedByte {
                            found,
                            expected: Expected::KeyOrEnd,
                        },
                    ));
                }
            },
        };
        let Some(&c) = input.get(pos) else {
            return Err(eof(pos, expected));
        };
        match c {
            b'i' => pos = lex_int(input, pos, strict)?.1,
            b'0'..=b'9' => pos = lex_str(input, pos, strict)?.1,
            b'l' | b'd' => {
                if depth + stack.len() >= limit {
                    return Err(DecodeError::new(pos, ErrorKind::DepthLimit { limit }));
                }
                stack.push(if c == b'l' { None } else { Some(None) });
                pos += 1;
                continue;
            }
            found => {
                return Err(DecodeError::new(
                    pos,
                    ErrorKind::UnexpectedByte { found, expected },
                ));
            }
        }
        if stack.is_empty() {
            return Ok(pos);
        }
    }
}

/// Strict key order: `key` must be greater than `prev` (the key before it at `pos`).
#[inline]
pub(crate) fn check_key_order(prev: &[u8], key: &[u8], pos: usize) -> Result<(), DecodeError> {
    // Keys usually differ in their first byte: decide that without a call.
    if let (Some(a), Some(b)) = (prev.first(), key.first()) {
        if a < b {
            return Ok(());
        }
    }
    // The rest answers in a register; the error is only worded when there is one.
    if key_less(prev, key) {
        Ok(())
    } else {
        Err(key_order_error(prev, key, pos))
    }
}

/// `prev < key`, as byte strings.
#[inline(never)]
fn key_less(prev: &[u8], key: &[u8]) -> bool {
    // Keys of 8 bytes or more ("announce" then "announce-list", "created by" then
    // "creation date"): the first 8 bytes as one big-endian word decide most pairs.
    let (prev, key) = match (prev.first_chunk::<8>(), key.first_chunk::<8>()) {
        (Some(a), Some(b)) => {
            let (a, b) = (u64::from_be_bytes(*a), u64::from_be_bytes(*b));
            if a != b {
                return a < b;
            }
            (&prev[8..], &key[8..])
        }
        _ => (prev, key),
    };
    // Short keys byte by byte; a call to memcmp costs more than the few bytes they
    // share.
    if prev.len() <= 16 || key.len() <= 16 {
        prev.iter()
            .zip(key)
            .find(|(a, b)| a != b)
            .map_or(prev.len() < key.len(), |(a, b)| a < b)
    } else {
        prev < key
    }
}

/// Why `key` may not follow `prev` (which it does not, in strict mode).
#[cold]
#[inline(never)]
fn key_order_error(prev: &[u8], key: &[u8], pos: usize) -> DecodeError {
    if prev == key {
        DecodeError::new(pos, ErrorKind::DuplicateKey)
    } else {
        DecodeError::new(pos, ErrorKind::UnsortedKey)
    }
}

/// An open container. Its items go to the level of its depth (from `base` on).
#[derive(Clone, Copy)]
struct Frame {
    start: usize,
    base: usize,
    /// For a dictionary, the last key read (offset and length; `usize::MAX` long
    /// before the first).
    key_off: usize,
    key_len: usize,
    dict: bool,
}

/// A decoded value before the document is complete: byte strings and raw spans as
/// offsets into the input (so the per-thread buffers holding items need no lifetime),
/// containers as ranges of the level below them.
#[derive(Clone, Copy)]
enum Item {
    Int(i64),
    Bytes { off: usize, len: usize },
    List(Span),
    Dict(Span),
}

/// A container: `len` items from `start` in the level below; its raw bytes at `raw`.
#[derive(Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
    raw: usize,
    raw_len: usize,
}

/// A dictionary entry in a level: the key's offset and length, and the value.
type ItemEntry = (usize, usize, Item);

/// The items of all containers at one nesting depth, in document order: list items and
/// dictionary entries apart. Only one container per depth is open at a time, so the
/// open one's items are always the tail of its level. When the document is complete,
/// each level becomes one shared allocation that its containers are ranges of.
#[derive(Default)]
struct Levels {
    values: Vec<Vec<Item>>,
    entries: Vec<Vec<ItemEntry>>,
    /// The open containers, innermost last.
    frames: Vec<Frame>,
    /// Levels used by the current call (the others are empty).
    used: usize,
}

/// The largest level (in items) whose allocation is kept for the next call on the same
/// thread, and the most levels kept.
const MAX_RETAINED_LEVEL: usize = 1 << 16;
const MAX_RETAINED_LEVELS: usize = 16;

thread_local! {
    static LEVELS: Cell<Levels> = const {
        Cell::new(Levels {
            values: Vec::new(),
            entries: Vec::new(),
            frames: Vec::new(),
            used: 0,
        })
    };
}

impl Levels {
    fn take() -> Self {
        LEVELS.with(Cell::take)
    }
    fn give_back(mut self) {
        // Only the levels this call used hold anything.
        fn trim<T>(levels: &mut Vec<Vec<T>>, used: usize) {
            levels.truncate(MAX_RETAINED_LEVELS);
            for l in levels.iter_mut().take(used) {
                l.clear();
                if l.capacity() > MAX_RETAINED_LEVEL {
                    *l = Vec::new();
                }
            }
        }
        trim(&mut self.values, self.used);
        trim(&mut self.entries, self.used);
        self.used = 0;
        self.frames.clear();
        if self.frames.capacity() > MAX_RETAINED_LEVEL {
            self.frames = Vec::new();
        }
        LEVELS.with(|c| c.set(self));
    }
    /// Builds the tree of `root`: levels `0..depth` become shared allocations, deepest
    /// first, each container pointing at the level below it.
    fn seal<'a>(&self, input: &'a [u8], depth: usize, strict: bool, root: Item) -> Value<'a> {
        let mut vals: Option<Arc<[Value<'a>]>> = None;
        let mut ents: Option<Arc<[Entry<'a>]>> = None;
        for d in (0..depth).rev() {
            let next_vals = self.values.get(d).filter(|l| !l.is_empty()).map(|l| {
                l.iter()
                    .map(|&it| value(input, it, &vals, &ents, strict))
                    .collect()
            });
            let next_ents = self.entries.get(d).filter(|l| !l.is_empty()).map(|l| {
                l.iter()
                    .map(|&(off, len, it)| {
                        (
                            slice(input, off, len),
                            value(input, it, &vals, &ents, strict),
                        )
                    })
                    .collect()
            });
            vals = next_vals;
            ents = next_ents;
        }
        value(input, root, &vals, &ents, strict)
    }
}

/// Makes sure level `d` exists.
#[inline(never)]
fn ensure_level(values: &mut Vec<Vec<Item>>, entries: &mut Vec<Vec<ItemEntry>>, d: usize) {
    while values.len() <= d {
        values.push(Vec::new());
    }
    while entries.len() <= d {
        entries.push(Vec::new());
    }
}

#[inline]
fn slice(input: &[u8], off: usize, len: usize) -> &[u8] {
    input.get(off..off + len).unwrap_or_default()
}

/// The value of an item, its containers pointing into the level below (`vals`, `ents`).
#[inline]
fn value<'a>(
    input: &'a [u8],
    it: Item,
    vals: &Option<Arc<[Value<'a>]>>,
    ents: &Option<Arc<[Entry<'a>]>>,
    strict: bool,
) -> Value<'a> {
    match it {
        Item::Int(i) => Value::Int(i),
        Item::Bytes { off, len } => Value::Bytes(slice(input, off, len)),
        Item::List(s) => Value::List(List {
            items: Seq::Decoded {
                store: if s.len > 0 { vals.clone() } else { None },
                start: s.start,
                len: s.len,
                raw: slice(input, s.raw, s.raw_len),
            },
        }),
        Item::Dict(s) => Value::Dict(Dict {
            entries: Seq::Decoded {
                store: if s.len > 0 { ents.clone() } else { None },
                start: s.start,
                len: s.len,
                raw: slice(input, s.raw, s.raw_len),
            },
            sorted: strict,
        }),
    }
}

type NomErr<'a> = nom::error::Error<&'a [u8]>;

fn digits(input: &[u8]) -> IResult<&[u8], &[u8], NomErr<'_>> {
    take_while1(|c: u8| c.is_ascii_digit()).parse(input)
}

impl Decoder {
    /// Strict mode, nesting limit [`DEFAULT_MAX_DEPTH`].
    pub const fn new() -> Self {
        Decoder {
            strict: true,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
    /// Lenient mode: accept non-canonical input.
    pub const fn lenient(mut self) -> Self {
        self.strict = false;
        self
    }
    /// Sets strict (`true`) or lenient (`false`) mode.
    pub const fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }
    /// Sets the nesting limit for lists and dictionaries.
    pub const fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// Whether this decoder is in strict mode.
    pub const fn is_strict(&self) -> bool {
        self.strict
    }
    /// The nesting limit for lists and dictionaries.
    pub const fn depth_limit(&self) -> usize {
        self.max_depth
    }

    /// Decodes one value. In strict mode the input must hold nothing else; in lenient
    /// mode trailing bytes are ignored.
    pub fn decode<'a>(&self, input: &'a [u8]) -> Result<Value<'a>, DecodeError> {
        let (v, used) = self.decode_prefix(input)?;
        if self.strict && used != input.len() {
            return Err(DecodeError::new(
                used,
                ErrorKind::TrailingBytes {
                    count: input.len() - used,
                },
            ));
        }
        Ok(v)
    }

    /// Decodes the value at the start of `input` and returns it with the number of bytes
    /// it took; what follows is left to the caller (ut_metadata data messages carry raw
    /// bytes after a dictionary).
    ///
    /// The items of all containers at one nesting depth end up in one shared allocation,
    /// so a document costs one allocation per depth (and kind: list items, dictionary
    /// entries), however many containers it holds. While decoding they are collected in
    /// per-thread buffers kept for the next call (up to 32,768 items per depth).
    pub fn decode_prefix<'a>(&self, input: &'a [u8]) -> Result<(Value<'a>, usize), DecodeError> {
        let mut levels = Levels::take();
        let result = self
            .decode_items(input, &mut levels)
            .map(|(root, depth, used)| (levels.seal(input, depth, self.strict, root), used));
        levels.give_back();
        result
    }

    /// Parses one value into `levels`; returns the root item, the number of levels used
    /// and the offset after the value.
    fn decode_items(
        &self,
        input: &[u8],
        levels: &mut Levels,
    ) -> Result<(Item, usize, usize), DecodeError> {
        let strict = self.strict;
        let Levels {
            values,
            entries,
            frames,
            used: depth,
        } = levels;
        frames.clear();
        *depth = 0;
        let mut pos = 0usize;

        // Hands a finished item to its container (each kind at its own call site), or
        // returns it.
        macro_rules! deliver {
            ($item:expr) => {{
                let d = frames.len();
                match frames.last_mut() {
                    None => return Ok(($item, *depth, pos)),
                    Some(f) => {
                        if f.dict {
                            let (off, len) = (f.key_off, f.key_len);
                            entries[d - 1].push((off, len, $item));
                        } else {
                            values[d - 1].push($item);
                        }
                    }
                }
            }};
        }

        loop {
            // 1. Inside a container: its `e`, or (in a dictionary) the next key.
            let mut close = false;
            let d = frames.len();
            let expected = match frames.last_mut() {
                None => Expected::Value,
                Some(f) if !f.dict => {
                    close = input.get(pos) == Some(&b'e');
                    Expected::ItemOrEnd
                }
                Some(f) => match input.get(pos) {
                    Some(b'e') => {
                        close = true;
                        Expected::KeyOrEnd
                    }
                    Some(c) if c.is_ascii_digit() => {
                        let (k, next) = lex_str(input, pos, strict)?;
                        if strict && f.key_len != usize::MAX {
                            let prev = slice(input, f.key_off, f.key_len);
                            check_key_order(prev, k, pos)?;
                        }
                        f.key_off = next - k.len();
                        f.key_len = k.len();
                        pos = next;
                        Expected::DictValue
                    }
                    Some(&found) => {
                        return Err(DecodeError::new(
                            pos,
                            ErrorKind::UnexpectedByte {
                                found,
                                expected: Expected::KeyOrEnd,
                            },
                        ));
                    }
                    None => return Err(eof(pos, Expected::KeyOrEnd)),
                },
            };

            // 2. One value: a scalar, a container that ends here, or a container that
            //    opens (which continues the loop inside it).
            if close {
                pos += 1;
                let Some(f) = frames.pop() else {
                    return Err(eof(pos, expected));
                };
                let end = if f.dict {
                    entries[d - 1].len()
                } else {
                    values[d - 1].len()
                };
                let (Ok(start), Ok(len)) = (u32::try_from(f.base), u32::try_from(end - f.base))
                else {
                    return Err(DecodeError::new(f.start, ErrorKind::TooManyItems));
                };
                let span = Span {
                    start,
                    len,
                    raw: f.start,
                    raw_len: pos - f.start,
                };
                if f.dict {
                    deliver!(Item::Dict(span));
                } else {
                    deliver!(Item::List(span));
                }
            } else {
                let Some(&c) = input.get(pos) else {
                    return Err(eof(pos, expected));
                };
                match c {
                    b'i' => {
                        let (i, next) = lex_int(input, pos, strict)?;
                        pos = next;
                        deliver!(Item::Int(i));
                    }
                    b'0'..=b'9' => {
                        let (s, next) = lex_str(input, pos, strict)?;
                        pos = next;
                        deliver!(Item::Bytes {
                            off: next - s.len(),
                            len: s.len()
                        });
                    }
                    b'l' | b'd' => {
                        if d >= self.max_depth {
                            return Err(DecodeError::new(
                                pos,
                                ErrorKind::DepthLimit {
                                    limit: self.max_depth,
                                },
                            ));
                        }
                        // `depth`: levels used so far (one more than the deepest
                        // frame index).
                        if d >= *depth {
                            if d >= values.len() || d >= entries.len() {
                                ensure_level(values, entries, d);
                            }
                            *depth = d + 1;
                        }
                        let dict = c == b'd';
                        let base = if dict {
                            entries[d].len()
                        } else {
                            values[d].len()
                        };
                        frames.push(Frame {
                            start: pos,
                            base,
                            key_off: 0,
                            key_len: usize::MAX,
                            dict,
                        });
                        pos += 1;
                        continue;
                    }
                    found => {
                        return Err(DecodeError::new(
                            pos,
                            ErrorKind::UnexpectedByte { found, expected },
                        ));
                    }
                }
            }
        }
    }
}

/// Parses `i<digits>e` at `pos` (which holds `i`); returns the integer and the offset
/// after the `e`. The common case (a short canonical integer) is scanned inline; anything
/// else goes through the nom-based tokenizer, which also produces the precise errors.
#[inline(always)]
pub(crate) fn lex_int(input: &[u8], pos: usize, strict: bool) -> Result<(i64, usize), DecodeError> {
    // Fast path: `i`, optional `-`, 1..=18 digits not starting with 0 (or exactly `0`), `e`.
    let mut p = pos + 1;
    let neg = input.get(p) == Some(&b'-');
    if neg {
        p += 1;
    }
    let first = p;
    let mut v: i64 = 0;
    while let Some(&d) = input.get(p) {
        let d = d.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        if p - first >= 18 {
            return int_slow(input, pos, strict);
        }
        v = v * 10 + i64::from(d);
        p += 1;
    }
    let n = p - first;
    if n == 0 || input.get(p) != Some(&b'e') || (n > 1 && input[first] == b'0') || (neg && v == 0) {
        return int_slow(input, pos, strict);
    }
    Ok((if neg { -v } else { v }, p + 1))
}

/// Parses `<len>:<bytes>` at `pos` (which should hold a digit); fast path for short
/// canonical lengths, the nom tokenizer for everything else.
#[inline(always)]
pub(crate) fn lex_str(
    input: &[u8],
    pos: usize,
    strict: bool,
) -> Result<(&[u8], usize), DecodeError> {
    let mut p = pos;
    let mut len: usize = 0;
    while let Some(&d) = input.get(p) {
        let d = d.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        if p - pos >= 9 {
            return str_slow(input, pos, strict);
        }
        len = len * 10 + usize::from(d);
        p += 1;
    }
    let n = p - pos;
    if n == 0 || input.get(p) != Some(&b':') || (n > 1 && input[pos] == b'0') {
        return str_slow(input, pos, strict);
    }
    let start = p + 1;
    let end = start.saturating_add(len);
    match input.get(start..end) {
        Some(s) => Ok((s, end)),
        None => str_slow(input, pos, strict),
    }
}

/// The nom-based integer tokenizer: exact errors for every malformed case.
#[cold]
#[inline(never)]
fn int_slow(input: &[u8], pos: usize, strict: bool) -> Result<(i64, usize), DecodeError> {
    let body = &input[pos + 1..];
    let (neg, rest) = match body.first() {
        Some(b'-') => (true, &body[1..]),
        _ => (false, body),
    };
    let dstart = pos + 1 + usize::from(neg);
    let (after, ds) = match digits(rest) {
        Ok(ok) => ok,
        Err(_) => {
            return Err(match rest.first() {
                None => eof(dstart, Expected::Digit),
                Some(&found) => DecodeError::new(
                    dstart,
                    ErrorKind::UnexpectedByte {
                        found,
                        expected: Expected::Digit,
                    },
                ),
            });
        }
    };
    let end = dstart + ds.len();
    expect_byte(after, end, b'e', Expected::IntegerEnd)?;
    check_leading_zero(ds, dstart, strict)?;
    let mag = parse_u64(ds).ok_or(DecodeError::new(dstart, ErrorKind::IntegerOverflow))?;
    let v = if neg {
        if mag == 0 && strict {
            return Err(DecodeError::new(pos + 1, ErrorKind::NegativeZero));
        }
        if mag > i64::MAX as u64 + 1 {
            return Err(DecodeError::new(dstart, ErrorKind::IntegerOverflow));
        }
        (mag as i64).wrapping_neg()
    } else {
        i64::try_from(mag).map_err(|_| DecodeError::new(dstart, ErrorKind::IntegerOverflow))?
    };
    Ok((v, end + 1))
}

/// The nom-based string tokenizer: exact errors for every malformed case.
#[cold]
#[inline(never)]
fn str_slow(input: &[u8], pos: usize, strict: bool) -> Result<(&[u8], usize), DecodeError> {
    {
        let (after, ds) = digits(input.get(pos..).unwrap_or_default()).map_err(|_| {
            // The caller checked for a digit; keep a typed error regardless.
            DecodeError::new(
                pos,
                ErrorKind::UnexpectedByte {
                    found: input.get(pos).copied().unwrap_or(0),
                    expected: Expected::Digit,
                },
            )
        })?;
        let colon = pos + ds.len();
        expect_byte(after, colon, b':', Expected::Colon)?;
        check_leading_zero(ds, pos, strict)?;
        let start = colon + 1;
        let remaining = input.len() - start;
        // A length is only trusted once the bytes are known to be there; nothing is
        // allocated for it either way, the string is a slice of the input.
        let claimed = parse_u64(ds).unwrap_or(u64::MAX);
        if claimed > remaining as u64 {
            return Err(DecodeError::new(
                pos,
                ErrorKind::LengthTooLarge { claimed, remaining },
            ));
        }
        let end = start + claimed as usize;
        Ok((&input[start..end], end))
    }
}

/// Checks that `rest` (at offset `at`) starts with `byte`, the token's terminator.
fn expect_byte(rest: &[u8], at: usize, byte: u8, expected: Expected) -> Result<(), DecodeError> {
    match rest.first() {
        Some(&b) if b == byte => Ok(()),
        None => Err(eof(at, expected)),
        Some(&found) => Err(DecodeError::new(
            at,
            ErrorKind::UnexpectedByte { found, expected },
        )),
    }
}

/// Strict mode: a number (integer or length) written with a leading zero.
fn check_leading_zero(ds: &[u8], at: usize, strict: bool) -> Result<(), DecodeError> {
    if strict && ds.len() > 1 && ds[0] == b'0' {
        return Err(DecodeError::new(at, ErrorKind::LeadingZero));
    }
    Ok(())
}

fn eof(offset: usize, expected: Expected) -> DecodeError {
    DecodeError::new(offset, ErrorKind::UnexpectedEof { expected })
}

/// Parses ASCII digits into a u64, `None` on overflow.
fn parse_u64(ds: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for &d in ds {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inline fast paths and the nom tokenizer agree on every short token.
    #[test]
    fn fast_and_slow_tokenizers_agree() {
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for body in [
            "0",
            "1",
            "9",
            "10",
            "03",
            "-0",
            "-1",
            "-03",
            "",
            "-",
            "x",
            "1x",
            "123456789012345678",
            "999999999999999999",
            "1234567890123456789",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
        ] {
            cases.push(format!("i{body}e").into_bytes());
            cases.push(format!("i{body}").into_bytes());
            cases.push(format!("{body}:abcdefghij").into_bytes());
            cases.push(format!("{body}:").into_bytes());
            cases.push(body.as_bytes().to_vec());
        }
        for case in &cases {
            for strict in [true, false] {
                if case.first() == Some(&b'i') {
                    assert_eq!(
                        lex_int(case, 0, strict),
                        int_slow(case, 0, strict),
                        "{case:?}"
                    );
                } else {
                    assert_eq!(
                        lex_str(case, 0, strict),
                        str_slow(case, 0, strict),
                        "{case:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn skip_matches_decode_prefix() {
        for input in [
            &b"d1:ad1:bi1eee"[..],
            b"l0:0:e",
            b"d0:i1e0:i2ee",
            b"d1:a1:d1:bi2ee",
            b"d1:bi1e1:ai2ee",
            b"lli1eee",
            b"i1",
            b"d",
        ] {
            for strict in [true, false] {
                let dec = Decoder::new()
                    .strict(strict)
                    .decode_prefix(input)
                    .map(|(_, n)| n);
                assert_eq!(
                    skip_value(input, 0, strict, 0, DEFAULT_MAX_DEPTH),
                    dec,
                    "{input:?}"
                );
            }
        }
    }

    fn retained() -> Vec<(usize, usize, usize, usize)> {
        LEVELS.with(|c| {
            let l = c.take();
            let caps = l
                .values
                .iter()
                .zip(&l.entries)
                .map(|(a, b)| (a.capacity(), a.len(), b.capacity(), b.len()))
                .collect();
            c.set(l);
            caps
        })
    }

    #[test]
    fn levels_are_kept_between_calls() {
        Decoder::new().decode(b"li1ei2eld1:ai3eeee").unwrap();
        let caps = retained();
        assert!(caps.len() >= 3, "{caps:?}");
        assert!(
            caps[0].0 >= 3 && caps[1].0 >= 1 && caps[2].2 >= 1,
            "{caps:?}"
        );
        assert!(caps.iter().all(|c| c.1 == 0 && c.3 == 0));
        // Errors give them back too, emptied.
        assert!(Decoder::new().decode(b"li1ei2e").is_err());
        let caps = retained();
        assert!(caps[0].0 >= 3 && caps.iter().all(|c| c.1 == 0 && c.3 == 0));
    }

    #[test]
    fn containers_share_one_allocation_per_depth() {
        let v = Decoder::new()
            .decode(b"ld1:ai1e1:bi2eed1:ci3eeli4eeli5eee")
            .unwrap();
        let l = v.as_list().unwrap();
        let a = l.get(0).unwrap().as_dict().unwrap().entries();
        let b = l.get(1).unwrap().as_dict().unwrap().entries();
        // Adjacent ranges of one slice.
        assert!(std::ptr::eq(a.as_ptr_range().end, b.as_ptr()));
        let c = l.get(2).unwrap().as_list().unwrap().items();
        let d = l.get(3).unwrap().as_list().unwrap().items();
        assert!(std::ptr::eq(c.as_ptr_range().end, d.as_ptr()));
        assert_eq!(d, &[Value::Int(5)]);
        // Empty containers need no storage.
        let e = Decoder::new().decode(b"lledee").unwrap();
        assert_eq!(e.as_list().unwrap().len(), 2);
        assert!(e.as_list().unwrap().iter().all(|x| x.raw().is_some()));
    }

    #[test]
    fn key_order_matches_slice_order() {
        let keys: [&[u8]; 19] = [
            b"announce-lisa",
            b"announc\xff",
            b"\xff\xff\xff\xff\xff\xff\xff\xff",
            b"piece length",
            b"pieces",
            b"",
            b"\0",
            b"a",
            b"a\0",
            b"ab",
            b"announce",
            b"announce\0",
            b"announce-list",
            b"announcf",
            b"created by",
            b"creation date",
            b"0123456789abcdef0123456789abcdef",
            b"0123456789abcdef0123456789abcdef0",
            b"0123456789abcdef0123456789abcdef1",
        ];
        for a in keys {
            for b in keys {
                let expected = match a.cmp(b) {
                    std::cmp::Ordering::Less => Ok(()),
                    std::cmp::Ordering::Equal => Err(DecodeError::new(7, ErrorKind::DuplicateKey)),
                    std::cmp::Ordering::Greater => Err(DecodeError::new(7, ErrorKind::UnsortedKey)),
                };
                assert_eq!(check_key_order(a, b, 7), expected, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn parse_u64_overflow() {
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
    }
}
