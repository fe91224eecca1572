//! The error type of .torrent parsing.

use std::path::PathBuf;

/// Why a .torrent (or an info dictionary) was rejected.
///
/// Every variant that concerns a key names it as a key path, e.g. `info.files[3].path[1]`
/// or `info.file tree.dir/file.txt.pieces root`, so a person can find the fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetainfoError {
    /// The input is not well-formed bencode (the wrapped error carries the byte offset).
    #[error("invalid bencode: {0}")]
    Bencode(#[from] bencode::DecodeError),
    /// A required key is absent.
    #[error("{path}: missing")]
    Missing {
        /// The key path.
        path: String,
    },
    /// A value has the wrong bencode type.
    #[error("{path}: expected {expected}, found {found}")]
    WrongType {
        /// The key path.
        path: String,
        /// The type that was expected.
        expected: &'static str,
        /// The type that was found.
        found: &'static str,
    },
    /// A value has the right type but is not acceptable.
    #[error("{path}: {reason}")]
    Invalid {
        /// The key path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The `piece length` is not usable.
    #[error("info.piece length: {value} is invalid: {reason}")]
    PieceLength {
        /// The value found.
        value: i64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The v1 `pieces` string does not hold one SHA-1 per piece.
    #[error("info.pieces: {len} bytes, expected {expected} (20 bytes for each of {count} pieces)")]
    PiecesLength {
        /// Bytes found.
        len: usize,
        /// Bytes expected.
        expected: u64,
        /// Pieces the file lengths call for.
        count: u64,
    },
    /// A v2 piece layer is absent, the wrong size, or does not hash to its `pieces root`.
    #[error("{path}: {reason}")]
    PieceLayer {
        /// The key path (`piece layers[<pieces root hex>]` or the file's path).
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `meta version` is neither absent/1 (v1) nor 2 (BEP 52).
    #[error("info.meta version: {0} is not supported")]
    UnsupportedVersion(i64),
    /// A hybrid torrent whose v1 file list and v2 file tree do not describe the same files.
    #[error("hybrid torrent: v1 file list and v2 file tree differ at {path}: {reason}")]
    HybridMismatch {
        /// The key path of the first v1 file that differs.
        path: String,
        /// How they differ.
        reason: String,
    },
    /// The torrent claims more than a resource limit allows ([`Limits`](crate::Limits)):
    /// too many pieces or files, too deep a path, too long a piece.
    #[error("{path}: {limit} {value} is over the limit of {max}")]
    OverLimit {
        /// Which limit.
        limit: crate::Limit,
        /// The value the torrent claims (a v2 file tree's file count: the count where
        /// the walk stopped, one over the limit).
        value: u64,
        /// The limit.
        max: u64,
        /// The key path of what is over it.
        path: String,
    },
    /// A [`PieceLayout`](crate::PieceLayout) cannot be built from the given sizes.
    #[error("piece layout: {0}")]
    Layout(&'static str),
    /// Reading a .torrent file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl MetainfoError {
    pub(crate) fn over(
        limit: crate::Limit,
        value: impl TryInto<u64>,
        max: impl TryInto<u64>,
        path: impl Into<String>,
    ) -> Self {
        MetainfoError::OverLimit {
            limit,
            value: value.try_into().unwrap_or(u64::MAX),
            max: max.try_into().unwrap_or(u64::MAX),
            path: path.into(),
        }
    }
    pub(crate) fn missing(path: impl Into<String>) -> Self {
        MetainfoError::Missing { path: path.into() }
    }
    pub(crate) fn wrong_type(
        path: impl Into<String>,
        expected: &'static str,
        found: &bencode::Value<'_>,
    ) -> Self {
        MetainfoError::WrongType {
            path: path.into(),
            expected,
            found: found.type_name(),
        }
    }
    pub(crate) fn invalid(path: impl Into<String>, reason: impl Into<String>) -> Self {
        MetainfoError::Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
