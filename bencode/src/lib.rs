//! `rivulet-bencode`: bencode (BEP 3), decoded without copying and encoded canonically.
//!
//! - [`decode`] / [`Decoder`] turn bytes into a [`Value`] tree that borrows every byte
//!   string from the input. Lists and dictionaries keep the exact bytes they were decoded
//!   from ([`Dict::raw`]), which is what an info hash is computed over.
//! - Strict by default: leading zeros, `-0`, unsorted or duplicate keys and trailing bytes
//!   are errors; [`Decoder::lenient`] accepts them. Every error is a [`DecodeError`] with
//!   the byte offset and what was expected.
//! - Hostile input is bounded: nesting is limited ([`DEFAULT_MAX_DEPTH`] by default, on a
//!   heap stack, never by recursion), a length prefix is checked against the bytes left
//!   before it is used and never allocates, integers beyond `i64` are errors.
//! - [`Value::to_bytes`] writes the canonical form (keys sorted as raw bytes).
//! - With the `serde` feature, `to_bytes` / `from_bytes` turn any `Serialize` /
//!   `Deserialize` type into canonical bencode and back. Deserializing reads the input
//!   directly (no intermediate tree) and borrows `&[u8]` (via `serde_bytes`) and `&str`.
//!
//! No I/O and no async runtime: this crate depends on `nom` and `thiserror` only.
//!
//! ```
//! use rivulet_bencode::{decode, Decoder, Dict, Value, ErrorKind};
//!
//! let input = b"d8:announce3:url4:infod6:lengthi3e4:name1:xee";
//! let v = decode(input)?;
//! let top = v.as_dict().unwrap();
//! // The info dictionary's original bytes, ready to hash.
//! let info = top.get(b"info").unwrap();
//! assert_eq!(info.raw(), Some(&b"d6:lengthi3e4:name1:xe"[..]));
//!
//! // Strict mode refuses what is not canonical, and says where.
//! let err = decode(b"i03e").unwrap_err();
//! assert_eq!((err.offset, err.kind), (1, ErrorKind::LeadingZero));
//! assert!(Decoder::new().lenient().decode(b"i03e").is_ok());
//!
//! // Encoding sorts keys.
//! let mut d = Dict::new();
//! d.insert(b"zz", Value::Int(1));
//! d.insert(b"aa", Value::Bytes(b"x"));
//! assert_eq!(Value::Dict(d).to_bytes(), b"d2:aa1:x2:zzi1ee");
//! # Ok::<(), rivulet_bencode::DecodeError>(())
//! ```
#![warn(missing_docs)]

#[cfg(feature = "serde")]
mod de;
mod decode;
mod encode;
mod error;
#[cfg(feature = "serde")]
mod ser;
mod value;

#[cfg(feature = "serde")]
pub use de::{DeError, DeErrorKind, from_bytes, from_bytes_with};
#[cfg(feature = "serde")]
pub use ser::{SerError, to_bytes, to_writer};

pub use decode::{DEFAULT_MAX_DEPTH, Decoder, decode, skip};
pub use encode::encode;
pub use error::{DecodeError, ErrorKind, Expected};
pub use value::{Dict, List, Value};
