//! Resource limits on what a torrent may claim.
//!
//! An info dictionary is small, but what it describes need not be: a v2 `file tree`
//! naming one file of 2^45 bytes in 16 KiB pieces is a few hundred bytes that claim two
//! billion pieces, and a client that sizes its piece picker, bitfields or hash requests
//! by that count runs out of memory long before any data arrives. Metadata fetched from
//! peers (BEP 9) is checked against the info hash, but anyone can make a torrent and
//! publish its hash, so these limits apply to every parse, of .torrent files and of
//! bare info dictionaries alike, before anything proportional to the claimed sizes is
//! allocated. An info dictionary over a limit fails with
//! [`MetainfoError::OverLimit`](crate::MetainfoError::OverLimit), which names the limit,
//! the value and the key path.

use std::fmt;

/// The most pieces a torrent may have by default (libtorrent's `max_pieces` default,
/// 2^21: 2 MiB of piece bitfield, 40 MiB of v1 piece hashes).
pub const DEFAULT_MAX_PIECES: u32 = 0x20_0000;

/// The most files (padding files included) a torrent may list by default.
pub const DEFAULT_MAX_FILES: usize = 1 << 20;

/// The most components a file path (or a symbolic link's target) may have by default,
/// the torrent's name not counted.
pub const DEFAULT_MAX_PATH_DEPTH: usize = 100;

/// The largest piece length accepted by default (512 MiB): a piece is held in memory
/// while it is checked.
pub const DEFAULT_MAX_PIECE_LENGTH: u64 = 512 << 20;

/// Limits on what an info dictionary may claim; [`Default`] gives the `DEFAULT_*`
/// values of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Pieces at most (default [`DEFAULT_MAX_PIECES`]).
    pub max_pieces: u32,
    /// Files at most, padding files included (default [`DEFAULT_MAX_FILES`]).
    pub max_files: usize,
    /// Components of one file path at most (default [`DEFAULT_MAX_PATH_DEPTH`]).
    pub max_path_depth: usize,
    /// The largest `piece length` (default [`DEFAULT_MAX_PIECE_LENGTH`]).
    pub max_piece_length: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pieces: DEFAULT_MAX_PIECES,
            max_files: DEFAULT_MAX_FILES,
            max_path_depth: DEFAULT_MAX_PATH_DEPTH,
            max_piece_length: DEFAULT_MAX_PIECE_LENGTH,
        }
    }
}

/// Which of the [`Limits`] a torrent went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// [`Limits::max_pieces`].
    Pieces,
    /// [`Limits::max_files`].
    Files,
    /// [`Limits::max_path_depth`].
    PathDepth,
    /// [`Limits::max_piece_length`].
    PieceLength,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::Pieces => "piece count",
            Limit::Files => "file count",
            Limit::PathDepth => "path depth",
            Limit::PieceLength => "piece length",
        })
    }
}
