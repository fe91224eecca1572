//! `rivulet`: the reference client built from the rivulet crates.
//!
//! - [`storage`]: a torrent's files under a download directory (safe paths, sparse
//!   files, padding never written, piece checks, resume by verifying what is there).
//! - [`picker`]: the sans-IO piece picker (rarest first, priorities, sequential and
//!   streaming windows, 16 KiB blocks, endgame).
//! - [`choker`]: the sans-IO choker (tit-for-tat over a rolling window with a rotating
//!   optimistic unchoke; round robin or fastest-upload while seeding).
//! - [`core`]: the torrent core, sans-IO: peers' protocol state, picker, choker,
//!   endgame, bans; messages, time and disk results in, actions out.
//! - [`ratelimit`]: session-wide upload and download limits (token buckets).
//! - [`torrent`] and [`session`]: the tokio driver that downloads and seeds a torrent
//!   from a list of peer addresses and incoming connections (TCP, MSE per
//!   [`Config::encryption`]); v1, hybrid and v2-only (BEP 52) torrents; file
//!   priorities and selection, sequential mode. The [`Session`] owns its torrents
//!   ([`Session::torrents`], [`Session::get`] by info hash, one torrent per hash);
//!   [`TorrentHandle::pause`], [`resume`](TorrentHandle::resume) and
//!   [`remove`](TorrentHandle::remove) (optionally with the torrent's files);
//!   connections are capped per torrent and per session, outgoing connects in
//!   progress per session. What a peer makes us queue is bounded: a peer that does
//!   not read what we send stops being read ([`Status::send_backlog_peak`]).
//! - [`reader`]: [`FileReader`], `AsyncRead + AsyncSeek` over a file of a torrent that
//!   is still downloading (streaming).
//! - [`hashes`]: the BEP 52 hash exchange both ways: answers to peers' hash requests,
//!   and, for a v2 torrent without `piece layers` (a magnet link's metadata), fetching
//!   the layers from peers, proved against each file's root, before its pieces.
//! - [`resume`]: the fast-resume file, so a normal restart does not hash the data again
//!   (a crash or any change to the files means a full check, which re-downloads
//!   nothing that is good).
//! - [`source`]: what a torrent is added from ([`TorrentSource`]: a .torrent, a magnet
//!   link, a bare v1 or v2 info hash). Without metadata, [`metadata`] fetches the info
//!   dictionary from peers (BEP 9 over BEP 10) and checks it against the hash and
//!   the metainfo crate's resource limits ([`metainfo::Limits`]); every
//!   torrent with metadata serves it to others.
//! - [`pex`]: peer exchange (BEP 11) both ways, off on private torrents.
//!
//! - [`discovery`] and [`lsd`]: where peers come from: each torrent's trackers (BEP 3,
//!   12, 15), the session's DHT node (BEP 5, [`Config::dht`]) and local service
//!   discovery (BEP 14, [`Config::lsd`]); private torrents (BEP 27) use trackers only
//!   (a magnet link's torrent from when its metadata says private). Paused torrents
//!   announce nothing; [`Session::close`] tells every torrent's trackers `stopped`.
//!
//! Not yet: uTP, WebRTC.
//!
//! A seed and a leech in one process, on loopback:
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use metainfo::{Torrent, TorrentBuilder};
//! use rivulet::{AddOptions, Config, Session};
//!
//! let (src, dst) = (tempfile::tempdir()?, tempfile::tempdir()?);
//! std::fs::write(src.path().join("hello.txt"), b"hello, swarm".repeat(10_000))?;
//! let made = TorrentBuilder::new(src.path().join("hello.txt")).build()?;
//! let torrent = Torrent::from_bytes(made.bytes())?;
//!
//! let mut config = Config::default();
//! config.listen = Some("127.0.0.1:0".parse()?);
//! let seeder = Session::new(config).await?;
//! let _seed = seeder.add(&torrent, src.path(), AddOptions::default()).await?;
//!
//! let leecher = Session::new(Config::default()).await?;
//! let peers = vec![seeder.listen_addr().unwrap()];
//! let download = leecher.add(&torrent, dst.path(), AddOptions::with_peers(peers)).await?;
//! download.wait_complete().await?;
//! assert_eq!(std::fs::read(dst.path().join("hello.txt"))?, b"hello, swarm".repeat(10_000));
//! # Ok(()) }
//! ```
//!
//! Stream one file: a [`FileReader`] waits for the pieces under its read position and
//! asks for them (and a window ahead) before all others, here in a torrent whose files
//! are all skipped, so only what is read is fetched:
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use metainfo::{Torrent, TorrentBuilder};
//! use rivulet::{AddOptions, Config, Session};
//! use tokio::io::{AsyncReadExt, AsyncSeekExt, SeekFrom};
//!
//! let (src, dst) = (tempfile::tempdir()?, tempfile::tempdir()?);
//! let movie: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
//! std::fs::create_dir(src.path().join("show"))?;
//! std::fs::write(src.path().join("show/movie.bin"), &movie)?;
//! std::fs::write(src.path().join("show/extras.bin"), vec![1u8; 1_000_000])?;
//! let made = TorrentBuilder::new(src.path().join("show")).build()?;
//! let torrent = Torrent::from_bytes(made.bytes())?;
//!
//! let mut config = Config::default();
//! config.listen = Some("127.0.0.1:0".parse()?);
//! let seeder = Session::new(config).await?;
//! let _seed = seeder.add(&torrent, src.path(), AddOptions::default()).await?;
//!
//! let leecher = Session::new(Config::default()).await?;
//! let mut options = AddOptions::with_peers(vec![seeder.listen_addr().unwrap()]);
//! options.file_priorities = vec![0; torrent.info.files.len()]; // skip everything
//! let download = leecher.add(&torrent, dst.path(), options).await?;
//!
//! let index = torrent.info.files.iter().position(|f| f.path == ["movie.bin"]).unwrap();
//! let mut reader = download.reader(index)?;
//! reader.seek(SeekFrom::Start(2_000_000)).await?; // jump ahead, then play to the end
//! let mut rest = Vec::new();
//! reader.read_to_end(&mut rest).await?;
//! assert_eq!(rest, movie[2_000_000..]);
//! // Only the pieces read were fetched: extras.bin has nothing.
//! let extras = torrent.info.files.iter().position(|f| f.path == ["extras.bin"]).unwrap();
//! assert_eq!(download.files()[extras].done, 0);
//! # Ok(()) }
//! ```
//!
//! Download by info hash into a directory: the metadata comes from the peers first
//! ([`Phase::Metadata`]), then the pieces.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use metainfo::{Torrent, TorrentBuilder};
//! # let src = tempfile::tempdir()?;
//! # std::fs::write(src.path().join("hello.txt"), b"hello, swarm".repeat(10_000))?;
//! # let torrent = Torrent::from_bytes(TorrentBuilder::new(src.path().join("hello.txt")).build()?.bytes())?;
//! # let mut config = rivulet::Config::default();
//! # config.listen = Some("127.0.0.1:0".parse()?);
//! # let seeder = rivulet::Session::new(config).await?;
//! # let _seed = seeder.add(&torrent, src.path(), rivulet::AddOptions::default()).await?;
//! # let seed_addr = seeder.listen_addr().unwrap();
//! # let info_hash = torrent.info_hash;
//! use rivulet::{AddOptions, Config, Session, TorrentSource};
//!
//! // `info_hash` is a metainfo::InfoHash; a magnet link or a typed string works too:
//! // TorrentSource::parse("magnet:?xt=urn:btih:...")?.
//! let dir = tempfile::tempdir()?;
//! let session = Session::new(Config::default()).await?;
//! let handle = session
//!     .add(info_hash, dir.path(), AddOptions::with_peers(vec![seed_addr]))
//!     .await?;
//! handle.wait_complete().await?;
//! let name = handle.info().expect("fetched before completing").name.clone();
//! assert_eq!(std::fs::read(dir.path().join(name))?, b"hello, swarm".repeat(10_000));
//! # let _ = TorrentSource::from(info_hash);
//! # Ok(()) }
//! ```
//!
//! The picker on its own:
//!
//! ```
//! use rivulet::picker::Picker;
//! use metainfo::{LayoutMode, PieceLayout};
//!
//! let layout = PieceLayout::new(32768, LayoutMode::V1, [(70_000, false)]).unwrap();
//! let picker = Picker::new(&layout, 7);
//! assert_eq!(picker.piece_count(), 3);
//! assert!(!picker.is_complete());
//! ```
#![warn(missing_docs)]

pub mod choker;
mod conn;
pub mod core;
pub mod discovery;
mod disk;
mod ext;
mod fetch;
#[doc(hidden)]
pub mod fuzzing;
pub mod hashes;
pub mod lsd;
// The one place with unsafe code: mapping files for uploads, a measured win (see the
// module's documentation).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod mapped;
pub mod metadata;
pub mod pex;
pub mod picker;
pub mod ratelimit;
pub mod reader;
pub mod resume;
pub mod session;
pub mod source;
pub mod storage;
pub mod torrent;

pub use discovery::{DiscoveryStatus, TrackerStatus};
pub use lsd::LsdConfig;
pub use reader::FileReader;
pub use session::{Config, DhtConfig, Session, Uploads};
pub use source::{SourceError, TorrentSource};
pub use torrent::{AddOptions, FileStatus, Phase, Resume, Status, TorrentError, TorrentHandle};
