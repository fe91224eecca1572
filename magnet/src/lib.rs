//! `rivulet-magnet`: magnet links for BitTorrent, parsed and formatted without
//! losing anything.
//!
//! A magnet link names a torrent by its info hash and may say where to find it:
//!
//! - BEP 9: `xt=urn:btih:` (v1 info hash, 40 hex or 32 base32 characters), `dn`
//!   (display name), `tr` (trackers), `x.pe` (peer addresses);
//! - BEP 52 (v2 torrents): `xt=urn:btmh:` with a sha2-256 multihash (`1220` + 64 hex);
//!   a hybrid torrent's link carries both `xt`s;
//! - BEP 53: `so` (select only these files: `so=0,2,4-6`);
//! - BEP 19 `ws` (web seeds), and `xs` / `as` (exact and acceptable sources) from the
//!   general magnet scheme;
//! - numbered forms as clients emit them (`xt.1`, `tr.1`, ...).
//!
//! Unknown parameters are kept in order and written back, so
//! `parse → format → parse` gives an equal [`MagnetLink`]. Parsing never panics,
//! does work linear in the input, and reports malformed values with the
//! parameter's name, its offset and the reason ([`MagnetError`]).
//!
//! This crate does not fetch anything: getting the metadata a magnet link points
//! to (BEP 9 `ut_metadata`) is the peer-wire and client crates' job.
//!
//! ```
//! use metainfo::{InfoHash, InfoHashV1};
//! use rivulet_magnet::{FileSelection, MagnetLink, PeerAddr};
//!
//! let link: MagnetLink = "magnet:?xt=urn:btih:08ada5a7a6183aae1e09d831df6748d566095a10\
//!     &dn=Sintel&tr=udp%3A%2F%2Fexplodie.org%3A6969&x.pe=10.0.0.1:6881&so=0,2-3"
//!     .parse()?;
//! assert_eq!(link.display_name(), Some("Sintel"));
//! assert_eq!(link.trackers(), ["udp://explodie.org:6969"]);
//! assert_eq!(link.peers(), [PeerAddr::Ip("10.0.0.1:6881".parse()?)]);
//! assert!(link.select_only().is_some_and(|s| s.contains(3)));
//! let InfoHash::V1(h) = link.info_hash() else { unreachable!() };
//! assert_eq!(h.to_hex(), "08ada5a7a6183aae1e09d831df6748d566095a10");
//!
//! // Build one, e.g. for a freshly created torrent.
//! let built = MagnetLink::new(InfoHash::V1(h))
//!     .with_display_name("Sintel")
//!     .with_tracker("udp://explodie.org:6969")
//!     .with_peer("10.0.0.1:6881".parse::<PeerAddr>()?)
//!     .with_select_only(FileSelection::new().with(0, 0).with(2, 3));
//! assert_eq!(built, link);
//! assert_eq!(
//!     built.to_string(),
//!     "magnet:?xt=urn:btih:08ada5a7a6183aae1e09d831df6748d566095a10\
//!      &dn=Sintel&tr=udp%3A%2F%2Fexplodie.org%3A6969&x.pe=10.0.0.1:6881&so=0,2-3"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod error;
mod link;
mod peer;
mod selection;

pub use error::{MagnetError, ParamError};
pub use link::{MAX_PARAMETERS, MagnetLink};
pub use peer::PeerAddr;
pub use selection::FileSelection;
