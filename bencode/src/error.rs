//! Decode errors.

use std::fmt;

/// Why a bencode input was rejected, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bencode error at byte {offset}: {kind}")]
pub struct DecodeError {
    /// Byte offset in the input at which the problem was found.
    pub offset: usize,
    /// What was wrong.
    pub kind: ErrorKind,
}

impl DecodeError {
    pub(crate) fn new(offset: usize, kind: ErrorKind) -> Self {
        DecodeError { offset, kind }
    }
}

/// What was wrong with a bencode input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input ended where more was expected.
    UnexpectedEof {
        /// What the decoder was looking for.
        expected: Expected,
    },
    /// A byte that cannot start or continue the expected item.
    UnexpectedByte {
        /// The byte found.
        found: u8,
        /// What the decoder was looking for.
        expected: Expected,
    },
    /// An integer or a string length with a leading zero (strict mode).
    LeadingZero,
    /// The integer `-0` (strict mode).
    NegativeZero,
    /// An integer that does not fit in an `i64`.
    IntegerOverflow,
    /// A string length prefix larger than the bytes left in the input.
    LengthTooLarge {
        /// The length the prefix claims (`u64::MAX` if it does not even fit in a `u64`).
        claimed: u64,
        /// The bytes actually left after the `:`.
        remaining: usize,
    },
    /// A dictionary key that is not greater than the previous one (strict mode).
    UnsortedKey,
    /// A dictionary key equal to the previous one (strict mode).
    DuplicateKey,
    /// Lists and dictionaries nested deeper than the configured limit.
    DepthLimit {
        /// The configured limit.
        limit: usize,
    },
    /// More than `u32::MAX` items at one nesting depth of one document (an input of
    /// several gigabytes); reported at the container that holds the excess.
    TooManyItems,
    /// Bytes left over after a complete value (strict mode, or `decode` of a whole input).
    TrailingBytes {
        /// How many bytes are left.
        count: usize,
    },
}

/// The item a decoder was looking for when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expected {
    /// The start of any value: `i`, `l`, `d` or a digit.
    Value,
    /// A dictionary key (a byte string) or the `e` that ends the dictionary.
    KeyOrEnd,
    /// A dictionary value after its key.
    DictValue,
    /// A decimal digit.
    Digit,
    /// The `e` that ends an integer.
    IntegerEnd,
    /// The `:` after a string length.
    Colon,
    /// The bytes of a string.
    StringBytes,
    /// A list item or the `e` that ends the list.
    ItemOrEnd,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Expected::Value => "a value ('i', 'l', 'd' or a digit)",
            Expected::KeyOrEnd => "a dictionary key or 'e'",
            Expected::DictValue => "a dictionary value",
            Expected::Digit => "a digit",
            Expected::IntegerEnd => "'e' ending the integer",
            Expected::Colon => "':' after the string length",
            Expected::StringBytes => "the string's bytes",
            Expected::ItemOrEnd => "a list item or 'e'",
        })
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::UnexpectedEof { expected } => write!(f, "input ended, expected {expected}"),
            ErrorKind::UnexpectedByte { found, expected } => {
                write!(
                    f,
                    "unexpected byte {:?}, expected {expected}",
                    *found as char
                )
            }
            ErrorKind::LeadingZero => f.write_str("number with a leading zero"),
            ErrorKind::NegativeZero => f.write_str("integer -0"),
            ErrorKind::IntegerOverflow => f.write_str("integer does not fit in 64 bits"),
            ErrorKind::LengthTooLarge { claimed, remaining } => write!(
                f,
                "string length {claimed} is larger than the {remaining} bytes left"
            ),
            ErrorKind::UnsortedKey => f.write_str("dictionary key out of order"),
            ErrorKind::DuplicateKey => f.write_str("duplicate dictionary key"),
            ErrorKind::DepthLimit { limit } => write!(f, "nesting deeper than {limit}"),
            ErrorKind::TrailingBytes { count } => {
                write!(f, "{count} trailing bytes after the value")
            }
            ErrorKind::TooManyItems => {
                f.write_str("more than 4294967295 items at one nesting depth")
            }
        }
    }
}
