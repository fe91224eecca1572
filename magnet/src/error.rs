//! Errors from parsing a magnet link or one of its parameter values.

/// Why a magnet link could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MagnetError {
    /// The text does not start with `magnet:?` (ASCII case ignored, surrounding
    /// whitespace allowed).
    #[error("not a magnet link: it does not start with `magnet:?`")]
    NotMagnet,
    /// No `xt=urn:btih:` or `xt=urn:btmh:` parameter: the link names no torrent.
    #[error("the magnet link has no `xt=urn:btih:` or `xt=urn:btmh:` parameter")]
    MissingInfoHash,
    /// More parameters than [`MAX_PARAMETERS`](crate::MAX_PARAMETERS).
    #[error("the magnet link has more than {limit} parameters")]
    TooManyParameters {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// A parameter's value is malformed.
    #[error("invalid `{name}` parameter at offset {offset}: {reason}")]
    InvalidParameter {
        /// The parameter's name as written (percent-decoded), e.g. `xt`, `xt.1`, `x.pe`.
        name: String,
        /// Byte offset of the parameter (its name) in the input text.
        offset: usize,
        /// What is wrong with the value.
        reason: ParamError,
    },
}

/// What is wrong with one parameter's value. Offsets count bytes in the
/// percent-decoded value of the parameter (for `xt`, including the `urn:btih:` prefix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamError {
    /// A `urn:btih:` hash that is neither 40 hex nor 32 base32 characters.
    #[error("a btih hash must be 40 hex or 32 base32 characters, got {len} bytes")]
    BtihLength {
        /// Length of the hash text in bytes.
        len: usize,
    },
    /// A character that is not a hex digit.
    #[error("invalid hex character at offset {offset}")]
    Hex {
        /// Byte offset of the character.
        offset: usize,
    },
    /// A hex string with an odd number of characters.
    #[error("odd number of hex characters ({len})")]
    HexOddLength {
        /// Length of the hex text in bytes.
        len: usize,
    },
    /// A character that is not in the RFC 4648 base32 alphabet.
    #[error("invalid base32 character at offset {offset}")]
    Base32 {
        /// Byte offset of the character.
        offset: usize,
    },
    /// A `urn:btmh:` multihash whose varint code or length is cut short or too long.
    #[error("malformed multihash varint")]
    MultihashVarint,
    /// A `urn:btmh:` multihash with a hash function other than sha2-256 (0x12).
    #[error("unsupported multihash code {code:#x}, expected 0x12 (sha2-256)")]
    MultihashCode {
        /// The multihash function code found.
        code: u64,
    },
    /// A `urn:btmh:` multihash whose digest is not 32 bytes.
    #[error("multihash digest declares {declared} bytes and has {actual}, expected 32")]
    MultihashLength {
        /// The digest length the multihash declares.
        declared: u64,
        /// The digest bytes actually present.
        actual: usize,
    },
    /// A second `urn:btih:` (or `urn:btmh:`) that differs from the first.
    #[error("a different info hash of the same kind was given earlier")]
    ConflictingInfoHash,
    /// An `x.pe` address that is not `host:port`, `IPv4:port` or `[IPv6]:port`.
    #[error("peer address must be host:port, IPv4:port or [IPv6]:port")]
    PeerAddress,
    /// An `x.pe` port that is not a decimal number in 0..=65535.
    #[error("invalid port")]
    Port,
    /// An empty element in an `so` list (`so=`, `so=1,,2`).
    #[error("empty file selection element at offset {offset}")]
    SelectionEmpty {
        /// Byte offset of the empty element.
        offset: usize,
    },
    /// An `so` element that is not a decimal file index fitting in 32 bits.
    #[error("invalid file index at offset {offset}")]
    SelectionIndex {
        /// Byte offset of the bad index.
        offset: usize,
    },
    /// An `so` range whose start is greater than its end.
    #[error("file range start {start} is greater than its end {end}")]
    SelectionRange {
        /// First index of the range.
        start: u32,
        /// Last index of the range.
        end: u32,
    },
}
