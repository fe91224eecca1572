//! The tokio driver of [`UdpClient`]: one socket per tracker, connection id kept between calls.

use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::UdpSocket;

use super::TrackerError;
use crate::types::{Announce, AnnounceResponse, InfoHash, ScrapeStats};
use crate::udp::{AddrFamily, RequestId, UdpClient, UdpClientConfig, UdpClientEvent};

/// A UDP tracker (BEP 15) reached through its own socket. Calls run one at a time (`&mut self`);
/// the connection id is reused between them while it is valid.
#[derive(Debug)]
pub struct UdpTracker {
    socket: UdpSocket,
    client: UdpClient,
    tracker: SocketAddr,
}

impl UdpTracker {
    /// Resolve `udp://host:port[/...]` (or a bare `host:port`) and open a socket to it.
    pub async fn connect(url: &str, config: UdpClientConfig) -> Result<Self, TrackerError> {
        let bad = |why| TrackerError::BadUrl {
            url: url.to_owned(),
            why,
        };
        let hostport = match url.strip_prefix("udp://") {
            Some(rest) => rest.split(['/', '?']).next().unwrap_or(rest),
            None if url.contains("://") => return Err(bad("not a udp:// URL")),
            None => url,
        };
        let addr = tokio::net::lookup_host(hostport)
            .await?
            .next()
            .ok_or_else(|| bad("host has no address"))?;
        Self::connect_addr(addr, config).await
    }

    /// Open a socket to a tracker address.
    pub async fn connect_addr(
        tracker: SocketAddr,
        config: UdpClientConfig,
    ) -> Result<Self, TrackerError> {
        let bind: SocketAddr = if tracker.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(bind).await?;
        socket.connect(tracker).await?;
        Ok(UdpTracker {
            socket,
            client: UdpClient::new(config, AddrFamily::of(&tracker)),
            tracker,
        })
    }

    /// The tracker's address.
    pub fn tracker_addr(&self) -> SocketAddr {
        self.tracker
    }

    /// Announce and wait for the answer (or the end of the retransmission schedule).
    pub async fn announce(&mut self, a: Announce) -> Result<AnnounceResponse, TrackerError> {
        let id = self.client.announce(Instant::now(), a);
        match self.run(id).await? {
            UdpClientEvent::Announced { response, .. } => Ok(response),
            UdpClientEvent::Failed { error, .. } => Err(error.into()),
            UdpClientEvent::Scraped { .. } => Err(TrackerError::HttpProtocol(
                "scrape answer to an announce".into(),
            )),
        }
    }

    /// Scrape 1 to 74 swarms.
    pub async fn scrape(
        &mut self,
        hashes: Vec<InfoHash>,
    ) -> Result<Vec<ScrapeStats>, TrackerError> {
        let id = self.client.scrape(Instant::now(), hashes);
        match self.run(id).await? {
            UdpClientEvent::Scraped { stats, .. } => Ok(stats),
            UdpClientEvent::Failed { error, .. } => Err(error.into()),
            UdpClientEvent::Announced { .. } => Err(TrackerError::HttpProtocol(
                "announce answer to a scrape".into(),
            )),
        }
    }

    async fn run(&mut self, want: RequestId) -> Result<UdpClientEvent, TrackerError> {
        let mut buf = vec![0u8; 65536];
        loop {
            while let Some(p) = self.client.poll_transmit() {
                self.socket.send(&p).await?;
            }
            while let Some(ev) = self.client.poll_event() {
                let id = match &ev {
                    UdpClientEvent::Announced { id, .. }
                    | UdpClientEvent::Scraped { id, .. }
                    | UdpClientEvent::Failed { id, .. } => *id,
                };
                if id == want {
                    return Ok(ev);
                }
            }
            let Some(deadline) = self.client.poll_timeout() else {
                // Nothing in flight and no event: cannot happen for a live request.
                return Err(TrackerError::TimedOut);
            };
            tokio::select! {
                r = self.socket.recv(&mut buf) => {
                    // An error here is ICMP port unreachable on a connected socket: treat it
                    // as loss and let the retransmission schedule decide.
                    if let Ok(n) = r {
                        let _ = self.client.handle_datagram(Instant::now(), &buf[..n]);
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.client.handle_timeout(Instant::now());
                }
            }
        }
    }
}
