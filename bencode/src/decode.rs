//! The decoder: nom token parsers under an explicit-stack structure parser.
//!
//! Containers are parsed without recursion, so a hostile nesting depth costs a
//! bounded `Vec` of frames and never the call stack; items are collected in two
//! scratch stacks and moved into an exactly sized `Vec` when their container ends,
//! so every container costs one allocation.

use nom::IResult;
use nom::Parser;
use nom::bytes::complete::take_while1;

use crate::error::{DecodeError, ErrorKind, Expected};
use crate::value::{Dict, List, Value};

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
    Decoder::new().decode_prefix(input).map(|(_, n)| n)
}

enum Frame<'a> {
    List {
        start: usize,
        base: usize,
    },
    Dict {
        start: usize,
        base: usize,
        key: Option<&'a [u8]>,
        last_key: Option<&'a [u8]>,
    },
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
    pub fn decode_prefix<'a>(&self, input: &'a [u8]) -> Result<(Value<'a>, usize), DecodeError> {
        let mut frames: Vec<Frame<'a>> = Vec::new();
        let mut items: Vec<Value<'a>> = Vec::new();
        let mut entries: Vec<(&'a [u8], Value<'a>)> = Vec::new();
        let mut pos = 0usize;

        loop {
            // 1. Container bookkeeping: keys, and the `e` that closes.
            let expected = match frames.last_mut() {
                None => Expected::Value,
                Some(Frame::List { .. }) => Expected::ItemOrEnd,
                Some(Frame::Dict { key, last_key, .. }) => {
                    if key.is_none() {
                        match input.get(pos) {
                            None => {
                                return Err(eof(pos, Expected::KeyOrEnd));
                            }
                            Some(b'e') => Expected::KeyOrEnd,
                            Some(c) if c.is_ascii_digit() => {
                                let (k, next) = self.string(input, pos)?;
                                if self.strict {
                                    if let Some(prev) = last_key {
                                        if k == *prev {
                                            return Err(DecodeError::new(
                                                pos,
                                                ErrorKind::DuplicateKey,
                                            ));
                                        }
                                        if k < *prev {
                                            return Err(DecodeError::new(
                                                pos,
                                                ErrorKind::UnsortedKey,
                                            ));
                                        }
                                    }
                                }
                                *key = Some(k);
                                *last_key = Some(k);
                                pos = next;
                                Expected::DictValue
                            }
                            Some(&c) => {
                                return Err(DecodeError::new(
                                    pos,
                                    ErrorKind::UnexpectedByte {
                                        found: c,
                                        expected: Expected::KeyOrEnd,
                                    },
                                ));
                            }
                        }
                    } else {
                        Expected::DictValue
                    }
                }
            };

            // 2. One value, or the end of the current container.
            let Some(&c) = input.get(pos) else {
                return Err(eof(pos, expected));
            };
            let value = match c {
                b'i' => {
                    let (i, next) = self.int(input, pos)?;
                    pos = next;
                    Value::Int(i)
                }
                b'0'..=b'9' => {
                    let (s, next) = self.string(input, pos)?;
                    pos = next;
                    Value::Bytes(s)
                }
                b'l' | b'd' => {
                    if frames.len() >= self.max_depth {
                        return Err(DecodeError::new(
                            pos,
                            ErrorKind::DepthLimit {
                                limit: self.max_depth,
                            },
                        ));
                    }
                    frames.push(if c == b'l' {
                        Frame::List {
                            start: pos,
                            base: items.len(),
                        }
                    } else {
                        Frame::Dict {
                            start: pos,
                            base: entries.len(),
                            key: None,
                            last_key: None,
                        }
                    });
                    pos += 1;
                    continue;
                }
                b'e' if expected == Expected::ItemOrEnd || expected == Expected::KeyOrEnd => {
                    pos += 1;
                    match frames.pop() {
                        Some(Frame::List { start, base }) => Value::List(List {
                            items: items.split_off(base),
                            raw: Some(&input[start..pos]),
                        }),
                        Some(Frame::Dict { start, base, .. }) => Value::Dict(Dict {
                            entries: entries.split_off(base),
                            raw: Some(&input[start..pos]),
                            sorted: self.strict,
                        }),
                        None => unreachable_frame(),
                    }
                }
                _ => {
                    return Err(DecodeError::new(
                        pos,
                        ErrorKind::UnexpectedByte { found: c, expected },
                    ));
                }
            };

            // 3. Hand the finished value to its container, closing nothing further.
            match frames.last_mut() {
                None => return Ok((value, pos)),
                Some(Frame::List { .. }) => items.push(value),
                Some(Frame::Dict { key, .. }) => {
                    // `key` is always set here: a value in a dictionary follows its key.
                    let k = key.take().unwrap_or_default();
                    entries.push((k, value));
                }
            }
        }
    }

    /// Parses `i<digits>e` at `pos`; returns the integer and the offset after `e`.
    fn int(&self, input: &[u8], pos: usize) -> Result<(i64, usize), DecodeError> {
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
        match after.first() {
            Some(b'e') => {}
            None => return Err(eof(end, Expected::IntegerEnd)),
            Some(&found) => {
                return Err(DecodeError::new(
                    end,
                    ErrorKind::UnexpectedByte {
                        found,
                        expected: Expected::IntegerEnd,
                    },
                ));
            }
        }
        if self.strict && ds.len() > 1 && ds[0] == b'0' {
            return Err(DecodeError::new(dstart, ErrorKind::LeadingZero));
        }
        let mag = parse_u64(ds).ok_or(DecodeError::new(dstart, ErrorKind::IntegerOverflow))?;
        let v = if neg {
            if mag == 0 && self.strict {
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

    /// Parses `<len>:<bytes>` at `pos` (which holds a digit).
    fn string<'a>(&self, input: &'a [u8], pos: usize) -> Result<(&'a [u8], usize), DecodeError> {
        let (after, ds) = digits(&input[pos..]).map_err(|_| {
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
        match after.first() {
            Some(b':') => {}
            None => return Err(eof(colon, Expected::Colon)),
            Some(&found) => {
                return Err(DecodeError::new(
                    colon,
                    ErrorKind::UnexpectedByte {
                        found,
                        expected: Expected::Colon,
                    },
                ));
            }
        }
        if self.strict && ds.len() > 1 && ds[0] == b'0' {
            return Err(DecodeError::new(pos, ErrorKind::LeadingZero));
        }
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

fn eof(offset: usize, expected: Expected) -> DecodeError {
    DecodeError::new(offset, ErrorKind::UnexpectedEof { expected })
}

#[cold]
fn unreachable_frame() -> Value<'static> {
    // `e` is only accepted as a container end when a frame is open.
    Value::Int(0)
}

/// Parses ASCII digits into a u64, `None` on overflow.
fn parse_u64(ds: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for &d in ds {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(v)
}
