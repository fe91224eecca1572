//! Errors of the peer-wire codec and the extension messages.

/// Why a peer-wire frame was rejected. Every variant is the peer's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The length prefix announces a frame longer than the configured maximum; it was
    /// rejected before anything was allocated for it.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLong {
        /// The announced length (message id and payload).
        len: u32,
        /// The configured limit.
        max: u32,
    },
    /// A message whose payload has the wrong size for its id.
    #[error("{name} message (id {id}) has a {len}-byte payload, expected {expected}")]
    BadLength {
        /// The message id.
        id: u8,
        /// The message name.
        name: &'static str,
        /// The payload length received.
        len: usize,
        /// What the payload length should be.
        expected: &'static str,
    },
}

/// Why an extension message (BEP 10 handshake, BEP 9 ut_metadata, BEP 11 ut_pex) was
/// rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtensionError {
    /// The payload is not valid bencode.
    #[error("{message}: invalid bencode: {source}")]
    Bencode {
        /// Which extension message was being parsed.
        message: &'static str,
        /// The bencode error (with its offset).
        source: bencode::DecodeError,
    },
    /// The payload is bencode but not a dictionary.
    #[error("{message}: expected a dictionary, found {found}")]
    NotADict {
        /// Which extension message was being parsed.
        message: &'static str,
        /// The type found instead.
        found: &'static str,
    },
    /// A required key is missing or has the wrong type.
    #[error("{message}: key `{key}` is missing or not {expected}")]
    BadKey {
        /// Which extension message was being parsed.
        message: &'static str,
        /// The key.
        key: &'static str,
        /// What the value should be.
        expected: &'static str,
    },
    /// A value is out of the range the protocol allows.
    #[error("{message}: key `{key}` has out-of-range value {value}")]
    OutOfRange {
        /// Which extension message was being parsed.
        message: &'static str,
        /// The key.
        key: &'static str,
        /// The value found.
        value: i64,
    },
    /// A compact address list whose length is not a multiple of the entry size.
    #[error("ut_pex: `{key}` is {len} bytes, not a multiple of {entry}")]
    BadCompactLength {
        /// The key.
        key: &'static str,
        /// Its length.
        len: usize,
        /// The size of one entry (6 for IPv4, 18 for IPv6).
        entry: usize,
    },
    /// A ut_metadata data message carrying more than one 16 KiB piece.
    #[error("ut_metadata: data message carries {len} bytes, more than a 16 KiB piece")]
    MetadataPieceTooLong {
        /// The number of bytes after the dictionary.
        len: usize,
    },
}
