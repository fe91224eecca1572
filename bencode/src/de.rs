//! Serde deserialization straight off the input bytes (no intermediate tree).

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use crate::decode::{Decoder, check_key_order, lex_int, lex_str, skip_value};
use crate::error::{DecodeError, ErrorKind, Expected};

/// Why bencode input could not be deserialized into the requested type, and where.
///
/// (Boxed, so that every `Result` on the deserializer's hot path stays two words.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeError(Box<Inner>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Inner {
    offset: Option<usize>,
    kind: DeErrorKind,
}

/// What was wrong, for a [`DeError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeErrorKind {
    /// The input is not well-formed bencode (or not canonical, in strict mode).
    Syntax(ErrorKind),
    /// A string was expected to be UTF-8 and is not.
    InvalidUtf8,
    /// A float was requested; bencode has none.
    Float,
    /// A list or dictionary held more items than the type takes.
    TrailingItems,
    /// A message from a `Deserialize` implementation (wrong type, missing field, ...).
    Custom(String),
}

impl fmt::Display for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(o) = self.offset {
            write!(f, "bencode error at byte {o}: ")?;
        } else {
            f.write_str("bencode error: ")?;
        }
        match &self.kind {
            DeErrorKind::Syntax(k) => write!(f, "{k}"),
            DeErrorKind::InvalidUtf8 => f.write_str("string is not valid UTF-8"),
            DeErrorKind::Float => f.write_str("bencode has no floating-point numbers"),
            DeErrorKind::TrailingItems => f.write_str("more items than the type takes"),
            DeErrorKind::Custom(m) => f.write_str(m),
        }
    }
}

impl de::Error for DeError {
    #[cold]
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::new(None, DeErrorKind::Custom(msg.to_string()))
    }
}

impl From<DecodeError> for DeError {
    #[cold]
    fn from(e: DecodeError) -> Self {
        DeError::new(Some(e.offset), DeErrorKind::Syntax(e.kind))
    }
}

impl DeError {
    /// An error of `kind` at byte `offset` (if known).
    pub fn new(offset: Option<usize>, kind: DeErrorKind) -> Self {
        DeError(Box::new(Inner { offset, kind }))
    }
    /// Byte offset of the value (or token) at fault, when known.
    pub fn offset(&self) -> Option<usize> {
        self.0.offset
    }
    /// What was wrong.
    pub fn kind(&self) -> &DeErrorKind {
        &self.0.kind
    }
    #[cold]
    fn at(offset: usize, kind: DeErrorKind) -> Self {
        DeError::new(Some(offset), kind)
    }
    /// Gives an error without an offset the offset of the value being deserialized.
    #[cold]
    #[inline(never)]
    fn fill_offset(&mut self, offset: usize) {
        self.0.offset.get_or_insert(offset);
    }
}

/// Gives an error from a visitor the offset of the value it was visiting, if it has
/// none (in place: the value is not moved on the way out).
trait AtValue {
    fn at_value(self, offset: usize) -> Self;
}

impl<T> AtValue for Result<T, DeError> {
    #[inline(always)]
    fn at_value(mut self, offset: usize) -> Self {
        if let Err(e) = &mut self {
            e.fill_offset(offset);
        }
        self
    }
}

/// Deserializes a `T` from bencode in strict mode, borrowing byte strings and strings
/// from `input` where `T` wants them (`&[u8]` through `serde_bytes`, `&str`).
///
/// The input is read directly, without building a [`Value`](crate::Value) tree. Unknown
/// dictionary keys are skipped (still checked to be well-formed); the whole input must
/// be one value. Errors carry the byte offset.
///
/// ```
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Announce<'a> {
///     interval: u32,
///     #[serde(borrow, with = "serde_bytes")]
///     peers: &'a [u8],
///     #[serde(rename = "failure reason")]
///     failure: Option<&'a str>,
/// }
/// let input = b"d8:intervali1800e5:peers6:\x7f\0\0\x01\x1a\xe1e";
/// let a: Announce<'_> = rivulet_bencode::from_bytes(input).unwrap();
/// assert_eq!(a.interval, 1800);
/// assert_eq!(a.peers, b"\x7f\0\0\x01\x1a\xe1");
/// assert_eq!(a.failure, None);
/// ```
pub fn from_bytes<'de, T: de::Deserialize<'de>>(input: &'de [u8]) -> Result<T, DeError> {
    from_bytes_with(&Decoder::new(), input)
}

/// Like [`from_bytes`], with the mode and nesting limit of `decoder` (a lenient decoder
/// accepts unsorted and duplicate keys, leading zeros, `-0` and trailing bytes).
pub fn from_bytes_with<'de, T: de::Deserialize<'de>>(
    decoder: &Decoder,
    input: &'de [u8],
) -> Result<T, DeError> {
    let mut de = Deserializer {
        input,
        pos: 0,
        strict: decoder.is_strict(),
        depth: 0,
        limit: decoder.depth_limit(),
        text_at: 0,
        text: "",
        text_window: MIN_TEXT_WINDOW,
        text_direct: DIRECT_STRINGS,
    };
    let r = T::deserialize(&mut de);
    if r.is_ok() && de.strict && de.pos != input.len() {
        return Err(DeError::at(
            de.pos,
            DeErrorKind::Syntax(ErrorKind::TrailingBytes {
                count: input.len() - de.pos,
            }),
        ));
    }
    r
}

struct Deserializer<'de> {
    input: &'de [u8],
    pos: usize,
    strict: bool,
    depth: usize,
    limit: usize,
    /// A stretch of the input known to be valid UTF-8 (`text`, starting at offset
    /// `text_at`): strings inside it are sliced out of it instead of being validated
    /// one by one.
    text_at: usize,
    text: &'de str,
    /// How far past a string the next stretch is validated: doubles while stretches
    /// are valid to their end (text-heavy input), back to the minimum when one stops
    /// at bytes that are not UTF-8 (text between binary strings).
    text_window: usize,
    /// Strings still to be validated one by one before stretches are used (a small
    /// document's few strings are cheaper to check alone).
    text_direct: u32,
}

/// How many strings of a document are validated alone before stretches are used.
const DIRECT_STRINGS: u32 = 8;

/// The least and most input validated as UTF-8 past a string, at once.
const MIN_TEXT_WINDOW: usize = 64;
const MAX_TEXT_WINDOW: usize = 4096;

impl<'de> Deserializer<'de> {
    #[inline]
    fn peek(&self, expected: Expected) -> Result<u8, DeError> {
        match self.input.get(self.pos) {
            Some(&c) => Ok(c),
            None => Err(DeError::at(
                self.pos,
                DeErrorKind::Syntax(ErrorKind::UnexpectedEof { expected }),
            )),
        }
    }
    #[inline(always)]
    fn int(&mut self) -> Result<i64, DeError> {
        let (v, next) = lex_int(self.input, self.pos, self.strict)?;
        self.pos = next;
        Ok(v)
    }
    #[inline(always)]
    fn bytes(&mut self) -> Result<&'de [u8], DeError> {
        let (s, next) = lex_str(self.input, self.pos, self.strict)?;
        self.pos = next;
        Ok(s)
    }
    /// The string `b` (just read, ending at `self.pos`, its token at `start`) as UTF-8.
    #[inline]
    fn text(&mut self, b: &'de [u8], start: usize) -> Result<&'de str, DeError> {
        // (No stretch is validated before the first few strings have been.)
        if self.text_direct > 0 {
            self.text_direct -= 1;
            return std::str::from_utf8(b)
                .map_err(|_| DeError::at(start, DeErrorKind::InvalidUtf8));
        }
        let off = self.pos - b.len();
        if let Some(rel) = off.checked_sub(self.text_at) {
            // `get` checks char boundaries: a string cut out of valid UTF-8 at char
            // boundaries is valid, and one that is not cut at boundaries is not.
            if let Some(s) = self.text.get(rel..rel + b.len()) {
                return Ok(s);
            }
        }
        self.text_slow(b, off, start)
    }
    /// Validates the input from `off` on (the string `b` and up to `text_window` bytes
    /// past it, as far as it is valid UTF-8) for this and the next strings.
    #[inline(never)]
    fn text_slow(&mut self, b: &'de [u8], off: usize, start: usize) -> Result<&'de str, DeError> {
        let end = self
            .input
            .len()
            .min(self.pos.saturating_add(self.text_window));
        let ahead = self.input.get(off..end).unwrap_or_default();
        let valid = match std::str::from_utf8(ahead) {
            Ok(v) => {
                self.text_window = (self.text_window * 2).min(MAX_TEXT_WINDOW);
                v
            }
            // Checked again up to where it stopped being valid (which cannot fail).
            Err(e) => {
                self.text_window = MIN_TEXT_WINDOW;
                std::str::from_utf8(ahead.get(..e.valid_up_to()).unwrap_or_default())
                    .unwrap_or_default()
            }
        };
        self.text_at = off;
        self.text = valid;
        valid
            .get(..b.len())
            .ok_or_else(|| DeError::at(start, DeErrorKind::InvalidUtf8))
    }
    #[inline]
    fn enter(&mut self) -> Result<(), DeError> {
        if self.depth >= self.limit {
            return Err(DeError::at(
                self.pos,
                DeErrorKind::Syntax(ErrorKind::DepthLimit { limit: self.limit }),
            ));
        }
        self.depth += 1;
        self.pos += 1;
        Ok(())
    }
    /// Consumes the `e` closing a container the visitor has finished with.
    #[inline]
    fn leave(&mut self) -> Result<(), DeError> {
        match self.input.get(self.pos) {
            Some(b'e') => {
                self.pos += 1;
                self.depth -= 1;
                Ok(())
            }
            Some(_) => Err(DeError::at(self.pos, DeErrorKind::TrailingItems)),
            None => Err(DeError::at(
                self.pos,
                DeErrorKind::Syntax(ErrorKind::UnexpectedEof {
                    expected: Expected::ItemOrEnd,
                }),
            )),
        }
    }
    fn unexpected(&self, found: u8) -> DeError {
        DeError::at(
            self.pos,
            DeErrorKind::Syntax(ErrorKind::UnexpectedByte {
                found,
                expected: Expected::Value,
            }),
        )
    }
    // `seq` and `map` hand back the visitor's result as it is (no `?` on it): a struct
    // is then written once, where the caller wants it, instead of moved at every level.
    /// The list at `start` (the `l` already checked).
    #[inline]
    fn seq<V: Visitor<'de>>(&mut self, visitor: V, start: usize) -> Result<V::Value, DeError> {
        self.enter()?;
        let mut r = visitor.visit_seq(SeqAccess { de: self });
        match &mut r {
            Ok(_) => self.leave()?,
            Err(e) => e.fill_offset(start),
        }
        r
    }
    /// The dictionary at `start` (the `d` already checked).
    #[inline]
    fn map<V: Visitor<'de>>(&mut self, visitor: V, start: usize) -> Result<V::Value, DeError> {
        self.enter()?;
        let mut r = visitor.visit_map(MapAccess {
            de: self,
            last: None,
        });
        match &mut r {
            Ok(_) => self.leave()?,
            Err(e) => e.fill_offset(start),
        }
        r
    }
}

macro_rules! int_methods {
    ($($method:ident)*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let start = self.pos;
            if self.peek(Expected::Value)? != b'i' {
                return self.deserialize_any(visitor);
            }
            let i = self.int()?;
            visitor.visit_i64(i).at_value(start)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let start = self.pos;
        let r = match self.peek(Expected::Value)? {
            b'i' => {
                let i = self.int()?;
                visitor.visit_i64(i)
            }
            b'0'..=b'9' => {
                let s = self.bytes()?;
                visitor.visit_borrowed_bytes(s)
            }
            b'l' => return self.seq(visitor, start),
            b'd' => return self.map(visitor, start),
            c => return Err(self.unexpected(c)),
        };
        r.at_value(start)
    }

    int_methods! {
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_i64(visitor)
    }
    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_i64(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let start = self.pos;
        if self.peek(Expected::Value)? != b'i' {
            return self.deserialize_any(visitor);
        }
        match self.int()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            i => Err(de::Error::invalid_value(
                de::Unexpected::Signed(i),
                &"0 or 1",
            )),
        }
        .at_value(start)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DeError> {
        Err(DeError::at(self.pos, DeErrorKind::Float))
    }
    fn deserialize_f64<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DeError> {
        Err(DeError::at(self.pos, DeErrorKind::Float))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let start = self.pos;
        if !self.peek(Expected::Value)?.is_ascii_digit() {
            return self.deserialize_any(visitor);
        }
        let b = self.bytes()?;
        let s = self.text(b, start)?;
        visitor.visit_borrowed_str(s).at_value(start)
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let start = self.pos;
        if !self.peek(Expected::Value)?.is_ascii_digit() {
            return self.deserialize_any(visitor);
        }
        let b = self.bytes()?;
        visitor.visit_borrowed_bytes(b).at_value(start)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_bytes(visitor)
    }

    /// A value that is present is `Some`; an absent struct field or map entry is `None`.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    /// Unit is the empty string `0:`.
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.input.get(self.pos..self.pos + 2) == Some(b"0:") {
            self.pos += 2;
            return visitor.visit_unit();
        }
        self.deserialize_any(visitor)
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let start = self.pos;
        if self.peek(Expected::Value)? != b'l' {
            return self.deserialize_any(visitor);
        }
        self.seq(visitor, start)
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let start = self.pos;
        if self.peek(Expected::Value)? != b'd' {
            return self.deserialize_any(visitor);
        }
        self.map(visitor, start)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    /// A unit variant is its name as a string; other variants are `{name: content}`.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let start = self.pos;
        match self.peek(Expected::Value)? {
            b'0'..=b'9' => {
                let b = self.bytes()?;
                let s = std::str::from_utf8(b)
                    .map_err(|_| DeError::at(start, DeErrorKind::InvalidUtf8))?;
                visitor.visit_enum(s.into_deserializer()).at_value(start)
            }
            b'd' => {
                self.enter()?;
                let v = visitor
                    .visit_enum(EnumAccess { de: self })
                    .at_value(start)?;
                self.leave()?;
                Ok(v)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.pos = skip_value(self.input, self.pos, self.strict, self.depth, self.limit)?;
        visitor.visit_unit()
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

struct SeqAccess<'a, 'de> {
    de: &'a mut Deserializer<'de>,
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'_, 'de> {
    type Error = DeError;
    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        if self.de.peek(Expected::ItemOrEnd)? == b'e' {
            return Ok(None);
        }
        seed.deserialize(&mut *self.de).map(Some)
    }
}

struct MapAccess<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    last: Option<&'de [u8]>,
}

impl<'de> de::MapAccess<'de> for MapAccess<'_, 'de> {
    type Error = DeError;
    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let start = self.de.pos;
        match self.de.peek(Expected::KeyOrEnd)? {
            b'e' => Ok(None),
            b'0'..=b'9' => {
                let key = self.de.bytes()?;
                if self.de.strict {
                    if let Some(prev) = self.last {
                        check_key_order(prev, key, start)?;
                    }
                }
                self.last = Some(key);
                seed.deserialize(KeyDeserializer { key, offset: start })
                    .map(Some)
            }
            found => Err(DeError::at(
                start,
                DeErrorKind::Syntax(ErrorKind::UnexpectedByte {
                    found,
                    expected: Expected::KeyOrEnd,
                }),
            )),
        }
    }
    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let c = self.de.peek(Expected::DictValue)?;
        if c == b'e' {
            return Err(DeError::at(
                self.de.pos,
                DeErrorKind::Syntax(ErrorKind::UnexpectedByte {
                    found: c,
                    expected: Expected::DictValue,
                }),
            ));
        }
        seed.deserialize(&mut *self.de)
    }
}

/// A dictionary key, already read: bytes, or a string when the type asks for one.
struct KeyDeserializer<'de> {
    key: &'de [u8],
    offset: usize,
}

impl<'de> de::Deserializer<'de> for KeyDeserializer<'de> {
    type Error = DeError;

    #[inline]
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_borrowed_bytes(self.key).at_value(self.offset)
    }
    #[inline]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let s = std::str::from_utf8(self.key)
            .map_err(|_| DeError::at(self.offset, DeErrorKind::InvalidUtf8))?;
        visitor.visit_borrowed_str(s).at_value(self.offset)
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let s = std::str::from_utf8(self.key)
            .map_err(|_| DeError::at(self.offset, DeErrorKind::InvalidUtf8))?;
        visitor
            .visit_enum(s.into_deserializer())
            .at_value(self.offset)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 bytes byte_buf unit
        unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

struct EnumAccess<'a, 'de> {
    de: &'a mut Deserializer<'de>,
}

impl<'de> de::EnumAccess<'de> for EnumAccess<'_, 'de> {
    type Error = DeError;
    type Variant = Self;
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), DeError> {
        let start = self.de.pos;
        let c = self.de.peek(Expected::KeyOrEnd)?;
        if !c.is_ascii_digit() {
            return Err(DeError::at(
                start,
                DeErrorKind::Syntax(ErrorKind::UnexpectedByte {
                    found: c,
                    expected: Expected::KeyOrEnd,
                }),
            ));
        }
        let key = self.de.bytes()?;
        let v = seed.deserialize(KeyDeserializer { key, offset: start })?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for EnumAccess<'_, 'de> {
    type Error = DeError;
    fn unit_variant(self) -> Result<(), DeError> {
        de::Deserialize::deserialize(&mut *self.de)
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(&mut *self.de)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(&mut *self.de, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_map(&mut *self.de, visitor)
    }
}
