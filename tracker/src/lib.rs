//! BitTorrent trackers, client and server: peer discovery for any 20-byte key.
//!
//! Protocols: HTTP announce and scrape (BEP 3, compact peers BEP 23, IPv6 `peers6` BEP 7,
//! scrape convention BEP 48), UDP (BEP 15, IPv4 and IPv6), the WebSocket tracker of WebTorrent
//! (offer/answer relay; no BEP), and multi-tracker tiers (BEP 12). The layers:
//!
//! - pure codecs: [`udp::Request`]/[`udp::Response`], the [`http`] query and bencoded reply
//!   functions, [`ws::ClientMessage`]/[`ws::ServerMessage`] (JSON, 20-byte fields as latin-1
//!   "binary" strings);
//! - sans-IO state machines fed `now` and bytes: the UDP client [`udp::UdpClient`] (connection
//!   id cached for a minute, 15·2ⁿ s retransmission, transaction ids checked), the multi-tracker
//!   scheduler [`TrackerSet`] (every tier announced to concurrently; inside a tier BEP 12
//!   shuffling, failover, backoff, promotion), the server core
//!   [`server::Swarms`] (announce, scrape, expiry, all bounded; one swarm state whose peers
//!   are reachable by address, over a WebSocket, or both) with its UDP front end
//!   [`udp::UdpServer`] and its WebSocket front end, the offer/answer relay [`ws::WsRelay`];
//! - tokio drivers (feature `tokio`, on by default) in [`net`]: [`net::TrackerServer`] serves
//!   UDP (batched with `recvmmsg`/`sendmmsg` on Linux), HTTP and, on the HTTP port,
//!   WebSocket at once; clients [`net::UdpTracker`], [`net::http_announce`]/
//!   [`net::http_scrape`], [`net::WsTracker`]; and [`net::Announcer`], one task announcing a
//!   torrent to all its trackers (`udp://`, `http(s)://`, `ws(s)://`) and streaming peers and
//!   relayed WebRTC signaling;
//! - TLS (feature `tls`, on by default; rustls): `https://` and `wss://` clients trusting
//!   Mozilla's roots plus any PEM roots you add ([`net::client_config`]), and TLS on the
//!   server's HTTP/WebSocket listener from a PEM certificate and key
//!   ([`net::server_config`], [`net::TrackerServer::bind_tls`]).
//!
//! Server bounds and hostile input: every limit is in [`server::ServerConfig`] (swarms, peers
//! per swarm, `numwant`, optional allow-list, optional per-IP rate limit whose table is
//! bounded and fails open, see [`server::RateLimiter`]); a stored peer costs at most
//! [`server::MAX_BYTES_PER_PEER`] bytes. Bad requests get a tracker failure reply (HTTP
//! `failure reason`, UDP error packet, WebSocket `failure reason`), never a crash. A UDP
//! reply to a source that has not shown a valid connection id is never larger than its
//! request (no amplification); connection ids are stateless keyed hashes. HTTP request heads
//! are capped at 8 KiB and 10 s, WebSocket messages at 128 KiB, concurrent TCP connections at
//! [`server::ServerConfig::max_connections`].
//!
//! One swarm state: a WebSocket peer and a UDP or HTTP peer of the same info hash count each
//! other in scrapes and `complete`/`incomplete`; HTTP and UDP peer lists hold only peers with
//! an address, WebRTC offers go only to peers with a WebSocket connection.
//!
//! Not done: HTTP keep-alive on the server, client certificates.
//!
//! Measured: see the tracker section of `BENCHMARKS.md`; `bash tracker/examples/udp_compare.sh`
//! runs rivulet, opentracker and npm bittorrent-tracker on one pinned core each under the
//! same load generator (`examples/udp_load.rs`, 10,000 swarms × 100 peers, numwant 50).
//!
//! ```
//! # #[cfg(feature = "tokio")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use rivulet_tracker::{Announce, Event, InfoHash, PeerId, net, server::ServerConfig};
//!
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! rt.block_on(async {
//!     // A tracker on loopback, UDP and HTTP on ephemeral ports.
//!     let server = net::TrackerServer::bind(
//!         ServerConfig::default(),
//!         net::Listen {
//!             udp: Some("127.0.0.1:0".parse()?),
//!             http: Some("127.0.0.1:0".parse()?),
//!         },
//!     )
//!     .await?;
//!     let udp = format!("udp://{}", server.udp_addr().ok_or("no udp")?);
//!     let http = format!("http://{}/announce", server.http_addr().ok_or("no http")?);
//!
//!     let hash = InfoHash([7; 20]);
//!     let seeder = Announce { event: Event::Started, ..Announce::new(hash, PeerId([1; 20]), 6881) };
//!     let leecher = Announce { left: 100, ..Announce::new(hash, PeerId([2; 20]), 6882) };
//!
//!     let mut tracker = net::UdpTracker::connect(&udp, Default::default()).await?;
//!     tracker.announce(seeder).await?;
//!     let reply = net::http_announce(&http, &leecher).await?;
//!     assert_eq!(reply.peers, vec!["127.0.0.1:6881".parse()?]);
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })
//! # }
//! # #[cfg(not(feature = "tokio"))]
//! # fn main() {}
//! ```

pub mod http;
mod multi;
#[cfg(feature = "tokio")]
pub mod net;
pub mod server;
mod types;
pub mod udp;
pub mod ws;

pub use multi::{Token, TrackerRequest, TrackerSet, TrackerSetConfig, TrackerSetEvent};
pub use types::{Announce, AnnounceResponse, Event, InfoHash, PeerId, ScrapeStats};
