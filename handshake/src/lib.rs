//! `rivulet-handshake`: how BitTorrent peers meet.
//!
//! - [`Handshaker`]: the trait through which discovery services (trackers, DHT, local
//!   discovery, PEX, WebRTC signalling) hand peer contacts to whatever turns them into
//!   established, identified connections; [`BtHandshaker`] is the standard one and
//!   [`spawn_handshaker`] runs any of them behind a channel.
//! - [`Handshake`]: the 68-byte BEP 3 handshake codec, with the [`Reserved`] bits for
//!   BEP 10 (extension protocol), BEP 6 (fast), BEP 5 (DHT) and BEP 52 (v2 upgrade).
//! - [`Outgoing`] / [`Incoming`]: the handshake as a sans-IO, consuming state machine
//!   that checks the info hash against what we asked for or serve, and detects
//!   self-connections; every failure is a typed [`HandshakeError`]. The info hash on
//!   the wire is a [`metainfo::InfoHashV1`]: a v1 hash, or a v2 hash truncated to 20
//!   bytes (`InfoHash::wire_id()`), with [`Reserved::v2_upgrade`] advertising BEP 52.
//! - [`mse`]: Message Stream Encryption (768-bit DH, RC4 with 1024 bytes discarded,
//!   SKEY identification, plaintext/RC4 `crypto_provide`), sans-IO.
//! - Feature `tokio` (default): [`connect`] / [`accept`] over any `AsyncRead +
//!   AsyncWrite` with a timeout and an [`EncryptionPolicy`], and a [`Listener`] that
//!   routes incoming peers by info hash.
//!
//! It does not speak the peer-wire messages that follow (see `rivulet-peer-wire`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use metainfo::InfoHashV1;
//! use rivulet_handshake::{accept, connect, Config, EncryptionPolicy, InfoHashSet, Options, PeerId};
//!
//! let ih = InfoHashV1([0xab; 20]);
//! let (a, b) = tokio::io::duplex(4096);
//! let mut seed = Options::new(Config::new(PeerId(*b"-RV0100-seed00000000")));
//! seed.encryption = EncryptionPolicy::Required;
//! let mut leech = Options::new(Config::new(PeerId(*b"-RV0100-leech0000000")));
//! leech.encryption = EncryptionPolicy::Required;
//!
//! let served: InfoHashSet = [ih].into_iter().collect();
//! let server = tokio::spawn(async move { accept(b, &seed, &served).await });
//! let client = connect(a, &leech, ih).await?;
//! let server = server.await??;
//! assert!(client.stream.is_encrypted());
//! assert_eq!(client.established.peer_id, PeerId(*b"-RV0100-seed00000000"));
//! assert_eq!(server.established.info_hash, ih);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

#[cfg(feature = "tokio")]
mod driver;
mod error;
mod handshaker;
mod machine;
pub mod mse;
#[cfg(feature = "tokio")]
mod stream;
mod wire;

#[cfg(feature = "tokio")]
pub use driver::{
    BtHandshaker, ConnectError, DEFAULT_MAX_PENDING, EncryptionPolicy, HandshakeResults,
    InfoHashSet, Listener, Options, PeerConnection, PeerContact, Registrar, Served, accept,
    connect, connect_tcp, spawn_handshaker,
};
pub use error::HandshakeError;
pub use handshaker::Handshaker;
pub use machine::{Config, Established, Incoming, Outgoing, Step};
#[cfg(feature = "tokio")]
pub use stream::PeerStream;
pub use wire::{HANDSHAKE_LEN, HEADER_LEN, Handshake, Header, PROTOCOL, PeerId, Reserved};
