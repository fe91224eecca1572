//! `rivulet-dht`: a Mainline DHT node (BEP 5), usable by any application: find peers
//! for a torrent, or let processes that share a name find each other.
//!
//! Layers, bottom to top:
//! * [`krpc`]: the KRPC codec ([`Message`]), pure and borrowed from the packet;
//! * [`Id`] (aliases [`NodeId`], [`Hash`](tyalias@Hash)): the 160-bit keyspace, XOR metric, BEP 42;
//! * [`RoutingTable`]: k-buckets (k = 8) with splitting of our own bucket, good /
//!   questionable / bad nodes, replacement caches, stale-bucket refresh;
//! * [`Node`]: the sans-IO node. It serves queries (tokens bound to the requester's IP
//!   and rotated every 5 minutes; a bounded, expiring peer store; BEP 44 items), runs
//!   iterative lookups (`alpha` parallel queries, soft and hard timeouts, retries,
//!   convergence on the `k` closest) for `find_node`, `get_peers` + `announce_peer` and
//!   BEP 44 `get` + `put`, and is fed datagrams and time by its caller;
//! * [`Dht`] (feature `tokio`, on by default): a UDP driver with an async API, a state
//!   file, and a [`PeerStream`] of peers delivered while the lookup runs.
//!
//! Supported: BEP 5; BEP 32 fields (`nodes6`, `want`; a node works in one address
//! family); BEP 42 ids, optional enforcement, external address voting and id adoption;
//! BEP 43 read-only; BEP 44 immutable and mutable items (ed25519, `seq`, `cas`, salt);
//! BEP 51 `sample_infohashes` (served, and a query on [`Node`]); BEP 33 scrapes (bloom
//! filters served, and merged by [`Node::scrape`]). Hostile input is counted and
//! dropped, never a panic; queries are rate-limited per source IP; every table (peers,
//! items, pending transactions, rate limiter) is bounded. Not done: a dual-stack node
//! (run one [`Node`] per address family).
//!
//! The sans-IO core, two nodes wired by hand:
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::Instant;
//! use rivulet_dht::{Config, Event, Hash, Node};
//!
//! let room = Hash::from_name("room name");
//! let now = Instant::now();
//! let a_addr: SocketAddr = "10.0.0.1:6881".parse().unwrap();
//! let b_addr: SocketAddr = "10.0.0.2:6881".parse().unwrap();
//! let mut a = Node::new(Config::default(), Hash::from_name("a"), now, 1);
//! let mut config = Config::default();
//! config.bootstrap = vec![a_addr];
//! let mut b = Node::new(config, Hash::from_name("b"), now, 2);
//!
//! // b bootstraps from a and announces itself in the room on port 7000.
//! b.announce(now, room, Some(7000), false);
//! // The drain rule: after every input, send everything the nodes queued.
//! loop {
//!     let mut idle = true;
//!     while let Some(t) = a.poll_transmit() { idle = false; b.handle_datagram(now, a_addr, &t.bytes); }
//!     while let Some(t) = b.poll_transmit() { idle = false; a.handle_datagram(now, b_addr, &t.bytes); }
//!     if idle { break; }
//! }
//! assert!(matches!(b.poll_event(), Some(Event::LookupDone { announced: 1, .. })));
//!
//! // a now stores b as a peer of the room.
//! a.get_peers(now, room);
//! let Some(Event::Peers { peers, .. }) = a.poll_event() else { panic!() };
//! assert_eq!(peers, vec!["10.0.0.2:7000".parse().unwrap()]);
//! ```
//!
//! The tokio driver, two nodes on loopback:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rivulet_dht::Error> {
//! use rivulet_dht::{Dht, Hash};
//!
//! let loopback = "127.0.0.1:0".parse().unwrap();
//! // Tests pass loopback bootstrap nodes; without `.bootstrap(..)` the public routers are used.
//! let a = Dht::builder().bind(loopback).bootstrap([]).build().await?;
//! let b = Dht::builder().bind(loopback).bootstrap([a.local_addr()]).build().await?;
//! b.bootstrapped().await;
//!
//! let room = Hash::from_name("room name");
//! b.announce(room, Some(7000)).await?;
//! let peers = a.get_peers(room).collect().await;
//! assert_eq!(peers, vec!["127.0.0.1:7000".parse().unwrap()]);
//!
//! let (target, _) = b.put_immutable(b"5:hello".to_vec()).await?;
//! assert_eq!(a.get(target, b"").await?.map(|i| i.v), Some(b"5:hello".to_vec()));
//! # a.shutdown().await; b.shutdown().await;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod bloom;
#[cfg(feature = "tokio")]
mod driver;
mod id;
mod item;
pub mod krpc;
mod lookup;
mod node;
mod routing;
mod state;
mod storage;

pub use bloom::ScrapeBloom;
#[cfg(feature = "tokio")]
pub use driver::{
    Builder, DEFAULT_BOOTSTRAP, Dht, DhtStats, Error, LookupResult, PeerStream, Samples,
};
pub use id::{Distance, Hash, Id, NodeId, ParseIdError, is_local};
pub use item::{ITEM_TTL, Item, ItemError, MAX_SALT, MAX_VALUE};
pub use krpc::{Message, NodeInfo};
pub use lookup::{LookupId, LookupStats};
pub use node::{Config, Event, Node, NodeStats, RateLimit, ScrapeEstimate, Transmit};
pub use routing::{
    Entry, Insert, K, MAX_FAILURES, NodeState, RoutingTable, STALE_AFTER, TableStats,
};
pub use state::{SavedState, StateError};
pub use storage::{PEER_TTL, TOKEN_ROTATION};
