//! tokio drivers: they only move bytes and time; the protocol logic is in the sans-IO cores.

mod announcer;
mod http_client;
mod server;
mod udp_client;
mod ws;

pub use announcer::{Announcer, AnnouncerConfig};
pub use http_client::{HttpClientConfig, http_announce, http_announce_with, http_get, http_scrape};
pub use server::{HTTP_REQUEST_TIMEOUT, Listen, MAX_HTTP_REQUEST, TrackerServer};
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
}
