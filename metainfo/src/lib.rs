//! `rivulet-metainfo`: BitTorrent .torrent files.
//!
//! - **Parsing** ([`Torrent::from_bytes`], [`Torrent::from_file`], [`Info::from_bytes`] for a
//!   bare info dictionary): v1 (BEP 3), v2 (BEP 52: `meta version` 2, `file tree`,
//!   `piece layers`) and hybrid torrents; trackers (`announce`, BEP 12 `announce-list`
//!   tiers), BEP 19 web seeds (`url-list`), the BEP 27 `private` flag, BEP 47 padding
//!   files and attributes (`p`, `x`, `h`, `l` with `symlink path`), `creation date`,
//!   `comment`, `created by`, `encoding`, BEP 5 `nodes`.
//! - **Info hashes** ([`InfoHash`]): SHA-1 (v1) and SHA-256 (v2) of the info dictionary's
//!   bytes *exactly as they appear in the file*, never of a re-encoding; the v2 hash's
//!   20-byte truncation is [`InfoHashV2::truncated`].
//! - **Round trips**: a [`Torrent`] keeps its original bytes; [`Torrent::to_bytes`] gives
//!   them back unchanged, unknown keys included (they are also listed in `extra`).
//! - **Validation**: piece length (a power of two of at least 16 KiB for v2), `pieces`
//!   length against the file lengths, 32-byte `pieces root`s, piece layers present, of the
//!   right size and hashing to their `pieces root`, and hybrid consistency (the v1 list,
//!   minus padding, and the v2 tree name the same files in the same order, each starting on
//!   a piece boundary). The outer structure is decoded leniently (unsorted keys occur in the
//!   wild). Errors ([`MetainfoError`]) name the key path, e.g. `info.files[3].path[1]`.
//! - **Resource limits** ([`Limits`]): at most 2^21 pieces, 2^20 files, 100 path
//!   components and 512 MiB pieces by default, checked before anything proportional to
//!   the claimed sizes is allocated, for .torrent files and fetched info dictionaries
//!   alike ([`MetainfoError::OverLimit`]; `*_with_limits` parse with others).
//! - **Safe paths** (below) and the **piece layout** ([`PieceLayout`]: which file bytes
//!   make up each piece, for v1 concatenation or v2 piece-aligned files).
//! - **Making and checking torrents**: [`TorrentBuilder`], [`merkle`], [`verify`].
//!
//! It does not download anything, fetch metadata from peers (BEP 9) or parse magnet links.
//!
//! # Safe paths
//!
//! File paths in a torrent are untrusted. Every file gets a [`FileEntry::safe_path`], a
//! relative path with only `Normal` components that never leaves the download directory.
//! The rule is **rewrite, don't reject**, so real torrents with odd names still download:
//! empty and `.` components are dropped; `..` becomes `_`; `/`, `\`, NUL and control
//! characters become `_` (so do the `:` of a leading drive letter `C:`); trailing dots and
//! spaces are stripped; Windows reserved names (`CON`, `PRN`, `AUX`, `NUL`, `COM1`-`COM9`,
//! `LPT1`-`LPT9`, any case, any extension) get a `_` prefix; non-UTF-8 bytes become
//! U+FFFD. The torrent `name` is rewritten the same way (an empty one becomes `_`) and
//! heads the path of every file of a multi-file torrent. Files whose safe paths collide
//! (ignoring ASCII case), or that would take the name of another file's directory, get
//! `~1`, `~2`, ... before the extension of their last component, in file order (padding
//! files are left alone: they are never written). See [`safe_relative_path`] and
//! [`dedupe_paths`].
//!
//! # Example
//!
//! ```
//! use bencode::{Dict, List, Value};
//! use rivulet_metainfo::Torrent;
//!
//! // A two-file v1 torrent with a hostile path, built in place.
//! let hashes = [0u8; 40]; // two pieces' SHA-1s (not checked when parsing)
//! let file = |len: i64, path: &[&'static str]| {
//!     let mut d = Dict::new();
//!     d.insert(b"length", Value::Int(len));
//!     d.insert(b"path", Value::List(path.iter().map(|c| Value::from(*c)).collect::<Vec<_>>().into()));
//!     Value::Dict(d)
//! };
//! let mut info = Dict::new();
//! info.insert(b"files", Value::List(List::from(vec![
//!     file(20_000, &["docs", "a.txt"]),
//!     file(1_000, &["..", "escape.sh"]),
//! ])));
//! info.insert(b"name", "example".into());
//! info.insert(b"piece length", Value::Int(16_384));
//! info.insert(b"pieces", Value::Bytes(&hashes));
//! let mut top = Dict::new();
//! top.insert(b"announce", "http://127.0.0.1:6969/announce".into());
//! top.insert(b"info", Value::Dict(info));
//! let bytes = Value::Dict(top).to_bytes();
//!
//! let t = Torrent::from_bytes(&bytes)?;
//! println!("info hash {}", t.info_hash.v1().unwrap());
//! for f in &t.info.files {
//!     println!("{:>8} {}", f.length, f.safe_path().display());
//! }
//! assert_eq!(t.info.files[1].safe_path(), std::path::Path::new("example/_/escape.sh"));
//! assert_eq!(t.info.piece_count(), 2);
//! assert_eq!(t.to_bytes(), bytes);
//! # Ok::<(), rivulet_metainfo::MetainfoError>(())
//! ```
#![warn(missing_docs)]

mod builder;
mod error;
mod hash;
mod hasher;
mod layout;
mod limits;
pub mod merkle;
mod path;
mod torrent;
mod verify;

pub use builder::{
    AUTO_MAX_PIECES, BuildError, CreatedTorrent, MAX_AUTO_PIECE_LENGTH, MIN_PIECE_LENGTH,
    TorrentBuilder, Version, auto_piece_length,
};
pub use error::MetainfoError;
pub use hash::{HexError, InfoHash, InfoHashV1, InfoHashV2};
pub use layout::{FileSpan, LayoutMode, PieceLayout, Spans};
pub use limits::{
    DEFAULT_MAX_FILES, DEFAULT_MAX_PATH_DEPTH, DEFAULT_MAX_PIECE_LENGTH, DEFAULT_MAX_PIECES, Limit,
    Limits,
};
pub use path::{dedupe_paths, safe_relative_path, sanitize_component};
pub use torrent::{FileAttr, FileEntry, Info, MetaVersion, Torrent};
pub use verify::{PieceBitfield, Verifier, VerifyError, verify};
