//! Serde serialization straight to canonical bencode.

use serde::ser::{self, Serialize};

use crate::encode::{write_bytes, write_int};
use crate::value::Value;

/// Why a value could not be serialized as bencode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SerError {
    /// Bencode has no floating-point numbers.
    #[error("bencode cannot represent floating-point numbers")]
    Float,
    /// An integer outside the `i64` range.
    #[error("integer {0} does not fit in 64 signed bits")]
    IntegerOverflow(String),
    /// A map key that is not a string, bytes or a char.
    #[error("dictionary keys must be byte strings, found {0}")]
    KeyNotString(&'static str),
    /// The same key twice in one map (a bencode dictionary's keys are unique).
    #[error("duplicate dictionary key {:?}", String::from_utf8_lossy(.0))]
    DuplicateKey(Vec<u8>),
    /// `None` where nothing can be left out: at the top level or in a sequence.
    /// (`None` struct fields and map values are skipped.)
    #[error("None cannot be encoded outside a struct field or map value")]
    NoneOutsideMap,
    /// A message from a `Serialize` implementation.
    #[error("{0}")]
    Custom(String),
}

impl ser::Error for SerError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        SerError::Custom(msg.to_string())
    }
}

/// Serializes `value` to canonical bencode.
///
/// Maps and structs become dictionaries with keys sorted as raw bytes (struct fields
/// too, whatever their declaration order); `None` fields and map values are left out;
/// `bool` is `i0e`/`i1e`; unit is `0:`; a unit variant is its name as a string; newtype,
/// tuple and struct variants are single-key dictionaries `{name: value}`. Floats are
/// rejected ([`SerError::Float`]).
///
/// ```
/// #[derive(serde::Serialize)]
/// struct Announce<'a> {
///     interval: u32,
///     #[serde(with = "serde_bytes")]
///     peers: &'a [u8],
///     #[serde(rename = "failure reason")]
///     failure: Option<String>,
/// }
/// let a = Announce { interval: 1800, peers: b"\x7f\0\0\x01\x1a\xe1", failure: None };
/// assert_eq!(
///     rivulet_bencode::to_bytes(&a).unwrap(),
///     b"d8:intervali1800e5:peers6:\x7f\0\0\x01\x1a\xe1e"
/// );
/// ```
pub fn to_bytes<T: ?Sized + Serialize>(value: &T) -> Result<Vec<u8>, SerError> {
    let mut out = Vec::new();
    to_writer(value, &mut out)?;
    Ok(out)
}

/// Appends the canonical bencode of `value` to `out` (see [`to_bytes`]). On error, `out`
/// may hold a partial encoding after its original contents.
pub fn to_writer<T: ?Sized + Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), SerError> {
    let start = out.len();
    value.serialize(&mut Serializer { out })?;
    if out.len() == start {
        return Err(SerError::NoneOutsideMap);
    }
    Ok(())
}

struct Serializer<'o> {
    out: &'o mut Vec<u8>,
}

impl Serializer<'_> {
    fn int(&mut self, i: i64) {
        self.out.push(b'i');
        write_int(self.out, i);
        self.out.push(b'e');
    }
    fn int_from<I: TryInto<i64> + std::fmt::Display + Copy>(
        &mut self,
        v: I,
    ) -> Result<(), SerError> {
        let i = v
            .try_into()
            .map_err(|_| SerError::IntegerOverflow(v.to_string()))?;
        self.int(i);
        Ok(())
    }
    fn map(&mut self, outer: usize) -> MapSer<'_> {
        self.out.push(b'd');
        let start = self.out.len();
        MapSer {
            out: self.out,
            start,
            entries: Vec::new(),
            sorted: true,
            key_at: None,
            outer,
        }
    }
}

impl<'s, 'o> ser::Serializer for &'s mut Serializer<'o> {
    type Ok = ();
    type Error = SerError;
    type SerializeSeq = SeqSer<'s>;
    type SerializeTuple = SeqSer<'s>;
    type SerializeTupleStruct = SeqSer<'s>;
    type SerializeTupleVariant = SeqSer<'s>;
    type SerializeMap = MapSer<'s>;
    type SerializeStruct = MapSer<'s>;
    type SerializeStructVariant = MapSer<'s>;

    fn serialize_bool(self, v: bool) -> Result<(), SerError> {
        self.int(i64::from(v));
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), SerError> {
        self.int(v.into());
        Ok(())
    }
    fn serialize_i16(self, v: i16) -> Result<(), SerError> {
        self.int(v.into());
        Ok(())
    }
    fn serialize_i32(self, v: i32) -> Result<(), SerError> {
        self.int(v.into());
        Ok(())
    }
    fn serialize_i64(self, v: i64) -> Result<(), SerError> {
        self.int(v);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<(), SerError> {
        self.int_from(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), SerError> {
        self.int(v.into());
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result<(), SerError> {
        self.int(v.into());
        Ok(())
    }
    fn serialize_u32(self, v: u32) -> Result<(), SerError> {
        self.int(v.into());
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result<(), SerError> {
        self.int_from(v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), SerError> {
        self.int_from(v)
    }
    fn serialize_f32(self, _: f32) -> Result<(), SerError> {
        Err(SerError::Float)
    }
    fn serialize_f64(self, _: f64) -> Result<(), SerError> {
        Err(SerError::Float)
    }
    fn serialize_char(self, v: char) -> Result<(), SerError> {
        write_bytes(self.out, v.encode_utf8(&mut [0; 4]).as_bytes());
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), SerError> {
        write_bytes(self.out, v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), SerError> {
        write_bytes(self.out, v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), SerError> {
        // Writes nothing: the enclosing map or struct drops the entry.
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), SerError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), SerError> {
        self.out.extend_from_slice(b"0:");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), SerError> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), SerError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        self.out.push(b'd');
        write_bytes(self.out, variant.as_bytes());
        let at = self.out.len();
        value.serialize(&mut *self)?;
        if self.out.len() == at {
            return Err(SerError::NoneOutsideMap);
        }
        self.out.push(b'e');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<SeqSer<'s>, SerError> {
        self.out.push(b'l');
        Ok(SeqSer {
            out: self.out,
            outer: 0,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqSer<'s>, SerError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<SeqSer<'s>, SerError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<SeqSer<'s>, SerError> {
        self.out.push(b'd');
        write_bytes(self.out, variant.as_bytes());
        self.out.push(b'l');
        Ok(SeqSer {
            out: self.out,
            outer: 1,
        })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<MapSer<'s>, SerError> {
        Ok(self.map(0))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<MapSer<'s>, SerError> {
        Ok(self.map(0))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<MapSer<'s>, SerError> {
        self.out.push(b'd');
        write_bytes(self.out, variant.as_bytes());
        Ok(self.map(1))
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// Serializes lists (and tuple variants, closing their outer dictionary).
struct SeqSer<'s> {
    out: &'s mut Vec<u8>,
    /// How many enclosing `e` to write after the list's own.
    outer: usize,
}

impl SeqSer<'_> {
    fn element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), SerError> {
        let at = self.out.len();
        value.serialize(&mut Serializer { out: self.out })?;
        if self.out.len() == at {
            return Err(SerError::NoneOutsideMap);
        }
        Ok(())
    }
    fn finish(self) -> Result<(), SerError> {
        for _ in 0..=self.outer {
            self.out.push(b'e');
        }
        Ok(())
    }
}

impl ser::SerializeSeq for SeqSer<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), SerError> {
        self.element(value)
    }
    fn end(self) -> Result<(), SerError> {
        self.finish()
    }
}
impl ser::SerializeTuple for SeqSer<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), SerError> {
        self.element(value)
    }
    fn end(self) -> Result<(), SerError> {
        self.finish()
    }
}
impl ser::SerializeTupleStruct for SeqSer<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), SerError> {
        self.element(value)
    }
    fn end(self) -> Result<(), SerError> {
        self.finish()
    }
}
impl ser::SerializeTupleVariant for SeqSer<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), SerError> {
        self.element(value)
    }
    fn end(self) -> Result<(), SerError> {
        self.finish()
    }
}

/// Serializes dictionaries: entries are written in place as they come, and reordered
/// once at the end only if their keys were not already in canonical order.
struct MapSer<'s> {
    out: &'s mut Vec<u8>,
    /// Where the first entry starts (just after the `d`).
    start: usize,
    /// Per entry: key start (its length prefix), key bytes start, value start, end.
    entries: Vec<[usize; 4]>,
    sorted: bool,
    /// The pending key of `serialize_key`: (prefix start, bytes start).
    key_at: Option<(usize, usize)>,
    /// How many enclosing `e` to write after the dictionary's own.
    outer: usize,
}

impl MapSer<'_> {
    fn key_bytes(&self, e: &[usize; 4]) -> &[u8] {
        &self.out[e[1]..e[2]]
    }
    fn write_key<K: ?Sized + Serialize>(&mut self, key: &K) -> Result<(), SerError> {
        let ks = self.out.len();
        key.serialize(KeySerializer { out: self.out })?;
        // The key's bytes start after `<len>:`.
        let colon = self.out[ks..]
            .iter()
            .position(|&c| c == b':')
            .map_or(ks, |i| ks + i + 1);
        self.key_at = Some((ks, colon));
        Ok(())
    }
    fn write_value<V: ?Sized + Serialize>(&mut self, value: &V) -> Result<(), SerError> {
        let Some((ks, kb)) = self.key_at.take() else {
            return Err(SerError::Custom("map value without a key".into()));
        };
        let vs = self.out.len();
        value.serialize(&mut Serializer { out: self.out })?;
        let end = self.out.len();
        if end == vs {
            // `None`: leave the entry out.
            self.out.truncate(ks);
            return Ok(());
        }
        let e = [ks, kb, vs, end];
        if let Some(prev) = self.entries.last() {
            match self.key_bytes(prev).cmp(self.key_bytes(&e)) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => {
                    return Err(SerError::DuplicateKey(self.key_bytes(&e).to_vec()));
                }
                std::cmp::Ordering::Greater => self.sorted = false,
            }
        }
        self.entries.push(e);
        Ok(())
    }
    fn finish(mut self) -> Result<(), SerError> {
        if !self.sorted {
            let region = self.out[self.start..].to_vec();
            let base = self.start;
            let key = |e: &[usize; 4]| &region[e[1] - base..e[2] - base];
            self.entries.sort_unstable_by(|a, b| key(a).cmp(key(b)));
            if let Some(w) = self.entries.windows(2).find(|w| key(&w[0]) == key(&w[1])) {
                return Err(SerError::DuplicateKey(key(&w[0]).to_vec()));
            }
            self.out.truncate(base);
            for e in &self.entries {
                self.out
                    .extend_from_slice(&region[e[0] - base..e[3] - base]);
            }
        }
        for _ in 0..=self.outer {
            self.out.push(b'e');
        }
        Ok(())
    }
}

impl ser::SerializeMap for MapSer<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), SerError> {
        self.write_key(key)
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), SerError> {
        self.write_value(value)
    }
    fn end(self) -> Result<(), SerError> {
        self.finish()
    }
}
impl ser::SerializeStruct for MapSer<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        self.write_key(key)?;
        self.write_value(value)
    }
    fn end(self) -> Result<(), SerError> {
        self.finish()
    }
}
impl ser::SerializeStructVariant for MapSer<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        self.write_key(key)?;
        self.write_value(value)
    }
    fn end(self) -> Result<(), SerError> {
        self.finish()
    }
}

/// Serializes a dictionary key: byte strings, strings and chars only.
struct KeySerializer<'o> {
    out: &'o mut Vec<u8>,
}

impl KeySerializer<'_> {
    fn reject<T>(what: &'static str) -> Result<T, SerError> {
        Err(SerError::KeyNotString(what))
    }
}

impl ser::Serializer for KeySerializer<'_> {
    type Ok = ();
    type Error = SerError;
    type SerializeSeq = ser::Impossible<(), SerError>;
    type SerializeTuple = ser::Impossible<(), SerError>;
    type SerializeTupleStruct = ser::Impossible<(), SerError>;
    type SerializeTupleVariant = ser::Impossible<(), SerError>;
    type SerializeMap = ser::Impossible<(), SerError>;
    type SerializeStruct = ser::Impossible<(), SerError>;
    type SerializeStructVariant = ser::Impossible<(), SerError>;

    fn serialize_str(self, v: &str) -> Result<(), SerError> {
        write_bytes(self.out, v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), SerError> {
        write_bytes(self.out, v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), SerError> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), SerError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        value.serialize(self)
    }
    fn serialize_bool(self, _: bool) -> Result<(), SerError> {
        Self::reject("a bool")
    }
    fn serialize_i8(self, _: i8) -> Result<(), SerError> {
        Self::reject("an integer")
    }
    fn serialize_i16(self, _: i16) -> Result<(), SerError> {
        Self::reject("an integer")
    }
    fn serialize_i32(self, _: i32) -> Result<(), SerError> {
        Self::reject("an integer")
    }
    fn serialize_i64(self, _: i64) -> Result<(), SerError> {
        Self::reject("an integer")
    }
    fn serialize_u8(self, _: u8) -> Result<(), SerError> {
        Self::reject("an integer")
    }
    fn serialize_u16(self, _: u16) -> Result<(), SerError> {
        Self::reject("an integer")
    }
    fn serialize_u32(self, _: u32) -> Result<(), SerError> {
        Self::reject("an integer")
    }
    fn serialize_u64(self, _: u64) -> Result<(), SerError> {
        Self::reject("an integer")
    }
    fn serialize_f32(self, _: f32) -> Result<(), SerError> {
        Self::reject("a float")
    }
    fn serialize_f64(self, _: f64) -> Result<(), SerError> {
        Self::reject("a float")
    }
    fn serialize_none(self) -> Result<(), SerError> {
        Self::reject("None")
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), SerError> {
        Self::reject("an option")
    }
    fn serialize_unit(self) -> Result<(), SerError> {
        Self::reject("unit")
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), SerError> {
        Self::reject("a unit struct")
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), SerError> {
        Self::reject("an enum variant")
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, SerError> {
        Self::reject("a sequence")
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, SerError> {
        Self::reject("a tuple")
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, SerError> {
        Self::reject("a tuple struct")
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, SerError> {
        Self::reject("an enum variant")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, SerError> {
        Self::reject("a map")
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, SerError> {
        Self::reject("a struct")
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, SerError> {
        Self::reject("an enum variant")
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// A byte string serialized with `serialize_bytes`.
struct RawBytes<'a>(&'a [u8]);

impl Serialize for RawBytes<'_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// Integers as `i64`, byte strings as bytes, lists as sequences, dictionaries as maps
/// with byte-string keys (the first of duplicate keys of a lenient dictionary wins).
impl Serialize for Value<'_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use ser::{SerializeMap, SerializeSeq};
        match self {
            Value::Int(i) => s.serialize_i64(*i),
            Value::Bytes(b) => s.serialize_bytes(b),
            Value::List(l) => {
                let mut seq = s.serialize_seq(Some(l.len()))?;
                for v in l {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Dict(d) => {
                let mut map = s.serialize_map(None)?;
                let mut res = Ok(());
                crate::encode::for_each_canonical(d, |k, v| {
                    if res.is_ok() {
                        res = map.serialize_entry(&RawBytes(k), v);
                    }
                });
                res?;
                map.end()
            }
        }
    }
}
