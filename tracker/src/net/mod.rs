//! tokio drivers: they only move bytes and time; the protocol logic is in the sans-IO cores.

mod announcer;
mod http_client;
mod server;
#[cfg(feature = "tls")]
mod tls;
mod udp_client;
mod ws;

pub use announcer::{Announcer, AnnouncerConfig};
pub use http_client::{
    HttpClientConfig, http_announce, http_announce_with, http_get, http_scrape, http_scrape_with,
};
pub use server::{HTTP_REQUEST_TIMEOUT, Listen, MAX_HTTP_REQUEST, TrackerServer};
#[cfg(feature = "tls")]
pub use tls::{TlsConfigError, client_config, server_config};
pub use udp_client::UdpTracker;
pub use ws::WsTracker;

/// Why a client request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrackerError {
    /// Socket or name-resolution failure.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The URL is not usable.
    #[error("bad tracker URL {url:?}: {why}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        why: &'static str,
    },
    /// The UDP request failed.
    #[error(transparent)]
    Udp(#[from] crate::udp::UdpRequestError),
    /// The HTTP reply was a failure or unusable.
    #[error(transparent)]
    Http(#[from] crate::http::HttpResponseError),
    /// The HTTP exchange itself was malformed (status line, headers, chunking, size).
    #[error("bad HTTP response: {0}")]
    HttpProtocol(String),
    /// The HTTP status was not 200 and the body was not a tracker reply.
    #[error("HTTP status {0}")]
    HttpStatus(u16),
    /// No reply in time.
    #[error("timed out")]
    TimedOut,
    /// The TLS handshake failed (certificate not trusted, wrong name, protocol error), or
    /// `https://`/`wss://` was asked of a build without the `tls` feature.
    #[error("TLS: {0}")]
    Tls(String),
}
