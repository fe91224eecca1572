//! `rivulet-webrtc-transport`: WebRTC data channels as byte streams for WebTorrent peers.
//!
//! Not built yet: it comes with the WebTorrent issue. It will expose a data channel as an
//! `AsyncRead + AsyncWrite` stream, so the handshake and peer-wire crates run over it as
//! they run over TCP, and the SDP offer/answer glue the WebSocket tracker carries.
//!
//! ```
//! // The crate has no items yet; this example only checks that it links.
//! use rivulet_webrtc_transport as _;
//! ```
