//! `rivulet-metainfo`: .torrent files (under construction).
//!
//! ```
//! use rivulet_metainfo::InfoHashV1;
//! let h: InfoHashV1 = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
//! assert_eq!(h.to_hex(), "0123456789abcdef0123456789abcdef01234567");
//! ```
#![warn(missing_docs)]

mod hash;

pub use hash::{HexError, InfoHash, InfoHashV1, InfoHashV2};
