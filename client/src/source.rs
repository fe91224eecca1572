//! What a torrent is added from: a parsed .torrent, a magnet link (BEP 9, BEP 52
//! `urn:btmh:`), or a bare info hash.
//!
//! A magnet link or an info hash names a torrent without its metadata: the session
//! fetches the info dictionary from peers (BEP 9 `ut_metadata`, see
//! [`crate::metadata`]) before it can download anything.
//!
//! ```
//! use rivulet::TorrentSource;
//!
//! let s = TorrentSource::parse("08ada5a7a6183aae1e09d831df6748d566095a10")?;
//! assert!(matches!(s, TorrentSource::InfoHash(_)));
//! let s = TorrentSource::parse(
//!     "magnet:?xt=urn:btih:08ada5a7a6183aae1e09d831df6748d566095a10&tr=http%3A%2F%2Ft.example%2Fa",
//! )?;
//! assert_eq!(s.trackers(), vec![vec!["http://t.example/a".to_string()]]);
//! # Ok::<(), rivulet::SourceError>(())
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use magnet::{MagnetError, MagnetLink, PeerAddr};
use metainfo::{InfoHash, InfoHashV1, InfoHashV2, MetainfoError, Torrent};

/// Where a torrent comes from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TorrentSource {
    /// A parsed .torrent: the metadata is known.
    Torrent(Box<Torrent>),
    /// A magnet link: info hash(es), maybe trackers (`tr`) and peers (`x.pe`).
    Magnet(MagnetLink),
    /// A bare info hash (v1, v2, or both).
    InfoHash(InfoHash),
}

/// Why a string is not a torrent source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// It starts with `magnet:` but is not a valid magnet link.
    #[error("bad magnet link: {0}")]
    Magnet(#[from] MagnetError),
    /// It is not a hash, and reading or parsing it as a .torrent file failed.
    #[error("{path}: {source}")]
    Torrent {
        /// The path as given.
        path: PathBuf,
        /// What went wrong.
        source: MetainfoError,
    },
}

impl From<Torrent> for TorrentSource {
    fn from(t: Torrent) -> Self {
        TorrentSource::Torrent(Box::new(t))
    }
}

impl From<&Torrent> for TorrentSource {
    fn from(t: &Torrent) -> Self {
        TorrentSource::Torrent(Box::new(t.clone()))
    }
}

impl From<MagnetLink> for TorrentSource {
    fn from(m: MagnetLink) -> Self {
        TorrentSource::Magnet(m)
    }
}

impl From<InfoHash> for TorrentSource {
    fn from(h: InfoHash) -> Self {
        TorrentSource::InfoHash(h)
    }
}

impl From<InfoHashV1> for TorrentSource {
    fn from(h: InfoHashV1) -> Self {
        TorrentSource::InfoHash(InfoHash::V1(h))
    }
}

impl From<InfoHashV2> for TorrentSource {
    fn from(h: InfoHashV2) -> Self {
        TorrentSource::InfoHash(InfoHash::V2(h))
    }
}

/// A bare hash: 40 hex or 32 base32 characters (v1), or 64 hex characters (v2).
fn parse_hash(s: &str) -> Option<InfoHash> {
    let is_hex = s.bytes().all(|b| b.is_ascii_hexdigit());
    let is_b32 = s
        .bytes()
        .all(|b| b.is_ascii_alphabetic() || (b'2'..=b'7').contains(&b));
    let uri = match s.len() {
        40 if is_hex => format!("magnet:?xt=urn:btih:{s}"),
        32 if is_b32 => format!("magnet:?xt=urn:btih:{s}"),
        64 if is_hex => format!("magnet:?xt=urn:btmh:1220{s}"),
        _ => return None,
    };
    MagnetLink::parse(&uri).ok().map(|m| m.info_hash())
}

impl TorrentSource {
    /// Parses what a user typed: a `magnet:` URI, a bare info hash (40 hex or 32 base32
    /// characters for v1, 64 hex for v2), else the path of a .torrent file (an existing
    /// file wins over a hash-shaped name).
    pub fn parse(s: &str) -> Result<TorrentSource, SourceError> {
        let t = s.trim();
        if t.len() >= 7 && t[..7].eq_ignore_ascii_case("magnet:") {
            return Ok(TorrentSource::Magnet(MagnetLink::parse(t)?));
        }
        if !Path::new(s).exists()
            && let Some(h) = parse_hash(t)
        {
            return Ok(TorrentSource::InfoHash(h));
        }
        Torrent::from_file(s)
            .map(TorrentSource::from)
            .map_err(|source| SourceError::Torrent {
                path: PathBuf::from(s),
                source,
            })
    }

    /// The info hash(es).
    pub fn info_hash(&self) -> InfoHash {
        match self {
            TorrentSource::Torrent(t) => t.info_hash,
            TorrentSource::Magnet(m) => m.info_hash(),
            TorrentSource::InfoHash(h) => *h,
        }
    }

    /// The torrent, when the metadata is known.
    pub fn torrent(&self) -> Option<&Torrent> {
        match self {
            TorrentSource::Torrent(t) => Some(t),
            _ => None,
        }
    }

    /// Tracker tiers: the torrent's `announce-list` (or `announce`), or a magnet link's
    /// `tr` URLs, one tier each (BEP 12 order as given). Empty for a bare hash.
    pub fn trackers(&self) -> Vec<Vec<String>> {
        match self {
            TorrentSource::Torrent(t) => t.announce_tiers(),
            TorrentSource::Magnet(m) => m.trackers().iter().map(|u| vec![u.clone()]).collect(),
            TorrentSource::InfoHash(_) => Vec::new(),
        }
    }

    /// Peer addresses the source names (a magnet link's `x.pe` IP addresses; host
    /// names are in [`TorrentSource::peer_hosts`]).
    pub fn peers(&self) -> Vec<SocketAddr> {
        match self {
            TorrentSource::Magnet(m) => m
                .peers()
                .iter()
                .filter_map(|p| match p {
                    PeerAddr::Ip(a) => Some(*a),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// `x.pe` peers given by host name and port, to be resolved.
    pub fn peer_hosts(&self) -> Vec<(String, u16)> {
        match self {
            TorrentSource::Magnet(m) => m
                .peers()
                .iter()
                .filter_map(|p| match p {
                    PeerAddr::Host { host, port } => Some((host.clone(), *port)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The torrent's name, or a magnet link's display name (`dn`).
    pub fn name(&self) -> Option<&str> {
        match self {
            TorrentSource::Torrent(t) => Some(&t.info.name),
            TorrentSource::Magnet(m) => m.display_name(),
            TorrentSource::InfoHash(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "08ada5a7a6183aae1e09d831df6748d566095a10";

    #[test]
    fn parses_hashes_magnets_and_files() {
        let h = InfoHashV1(<[u8; 20]>::try_from(&metainfo_hex(HEX)[..]).unwrap());
        match TorrentSource::parse(HEX).unwrap() {
            TorrentSource::InfoHash(InfoHash::V1(x)) => assert_eq!(x, h),
            other => panic!("{other:?}"),
        }
        // The same hash in base32.
        match TorrentSource::parse("BCW2LJ5GDA5K4HQJ3AY56Z2I2VTASWQQ").unwrap() {
            TorrentSource::InfoHash(InfoHash::V1(x)) => assert_eq!(x, h),
            other => panic!("{other:?}"),
        }
        let v2 = "a".repeat(64);
        match TorrentSource::parse(&v2).unwrap() {
            TorrentSource::InfoHash(InfoHash::V2(x)) => assert_eq!(x.0, [0xaa; 32]),
            other => panic!("{other:?}"),
        }
        let m = TorrentSource::parse(&format!(
            "magnet:?xt=urn:btih:{HEX}&x.pe=127.0.0.1:6881&x.pe=peer.example:7000&tr=udp%3A%2F%2Fa%3A1&tr=http%3A%2F%2Fb%2Fann"
        ))
        .unwrap();
        assert_eq!(m.info_hash(), InfoHash::V1(h));
        assert_eq!(m.peers(), vec!["127.0.0.1:6881".parse().unwrap()]);
        assert_eq!(m.peer_hosts(), vec![("peer.example".to_string(), 7000)]);
        assert_eq!(m.trackers().len(), 2);
        assert!(matches!(
            TorrentSource::parse("magnet:?dn=x"),
            Err(SourceError::Magnet(_))
        ));
        assert!(matches!(
            TorrentSource::parse("/nonexistent/x.torrent"),
            Err(SourceError::Torrent { .. })
        ));
        // 39 hex characters is a (missing) file, not a hash.
        assert!(TorrentSource::parse(&HEX[1..]).is_err());
    }

    fn metainfo_hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
