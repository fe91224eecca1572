//! The session: our identity, the listening socket, and the torrents it runs.
//!
//! The CLI (and later the daemon API) call these methods; no protocol logic lives in
//! either.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use handshake::{
    Config as HsConfig, EncryptionPolicy, Listener, Options, PeerId, Registrar, Reserved,
};
use metainfo::InfoHash;

use crate::metadata::MetadataConfig;
use crate::source::TorrentSource;
use crate::torrent::{self, AddOptions, TorrentError, TorrentHandle};

/// Session settings. Every default is documented on its field.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Config {
    /// Our peer id (default: `-RV0100-` and 12 random bytes).
    pub peer_id: PeerId,
    /// Where to accept peers (default: none). [`Session::config`] shows the bound
    /// address.
    pub listen: Option<SocketAddr>,
    /// MSE policy for both directions (default: [`EncryptionPolicy::Enabled`]:
    /// plaintext out, both accepted in).
    pub encryption: EncryptionPolicy,
    /// Connected peers per torrent at most (default 50).
    pub max_peers: usize,
    /// Peers we upload to at once, per torrent (default 8).
    pub max_unchoked: usize,
    /// Block requests outstanding per peer at most (default 128; the peer's `reqq`
    /// caps it further).
    pub max_outstanding: usize,
    /// Deadline for TCP connect plus handshake (default 10 s).
    pub handshake_timeout: Duration,
    /// How often unconnected peer addresses are dialed again (default 3 s).
    pub reconnect_interval: Duration,
    /// Limits of fetching metadata for magnet links and bare info hashes (BEP 9;
    /// default: info dictionaries up to 16 MiB, see [`MetadataConfig`]).
    pub metadata: MetadataConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            peer_id: PeerId::generate(b"-RV0100-", &mut rand::rng()),
            listen: None,
            encryption: EncryptionPolicy::Enabled,
            max_peers: 50,
            max_unchoked: 8,
            max_outstanding: 128,
            handshake_timeout: Duration::from_secs(10),
            reconnect_interval: Duration::from_secs(3),
            metadata: MetadataConfig::default(),
        }
    }
}

impl Config {
    /// The extension bits we set: BEP 10 extensions and BEP 6 fast (no DHT yet).
    pub fn reserved(&self) -> Reserved {
        Reserved::STANDARD.with_dht(false)
    }

    pub(crate) fn handshake_config(&self) -> HsConfig {
        let mut c = HsConfig::new(self.peer_id);
        c.reserved = self.reserved();
        c
    }
}

/// A BitTorrent session: a peer id, an optional listening socket, torrents.
#[derive(Debug)]
pub struct Session {
    config: Config,
    listen_addr: Option<SocketAddr>,
    registrar: Option<Registrar>,
    listener_task: Option<tokio::task::JoinHandle<()>>,
}

impl Session {
    /// Starts a session, binding the listening socket if `config.listen` is set.
    pub async fn new(config: Config) -> std::io::Result<Session> {
        let (mut listen_addr, mut registrar, mut listener_task) = (None, None, None);
        if let Some(addr) = config.listen {
            let mut options = Options::new(config.handshake_config());
            options.encryption = config.encryption;
            options.timeout = config.handshake_timeout;
            let listener = Listener::bind(addr, options).await?;
            listen_addr = Some(listener.local_addr()?);
            registrar = Some(listener.registrar());
            listener_task = Some(tokio::spawn(async move {
                if let Err(e) = listener.run().await {
                    tracing::warn!(error = %e, "the listening socket failed");
                }
            }));
        }
        let mut config = config;
        // The bound address (the port, when 0 was asked for), announced to peers.
        config.listen = listen_addr;
        Ok(Session {
            config,
            listen_addr,
            registrar,
            listener_task,
        })
    }

    /// The bound listening address, if listening.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen_addr
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Adds a torrent whose data lives (or will live) under `dir`, from a .torrent
    /// (`&Torrent` or [`Torrent`](metainfo::Torrent)), a
    /// [`MagnetLink`](magnet::MagnetLink) or a bare [`InfoHash`]
    /// (see [`TorrentSource`]).
    ///
    /// With the metadata known, it checks existing data before returning, then
    /// downloads what is missing from the given peers and whoever connects, and serves
    /// what it has. For a magnet link or a hash it returns at once: the torrent starts
    /// in [`Phase::Metadata`](crate::torrent::Phase::Metadata), fetching the info
    /// dictionary from peers (the link's `x.pe`, `options.peers`,
    /// [`TorrentHandle::add_peer`], incoming ones; BEP 9), then checks and downloads.
    pub async fn add(
        &self,
        source: impl Into<TorrentSource>,
        dir: impl AsRef<Path>,
        options: AddOptions,
    ) -> Result<TorrentHandle, TorrentError> {
        let source = source.into();
        let incoming = self.registrar.as_ref().map(|r| {
            let hash = source.info_hash();
            let rx = r.register(hash.wire_id(), 64);
            match hash {
                // Peers that know only the v2 hash reach a hybrid torrent too.
                InfoHash::Hybrid(_, v2) => {
                    torrent::merge_incoming(vec![rx, r.register(v2.truncated(), 64)], 64)
                }
                _ => rx,
            }
        });
        match source.torrent() {
            Some(torrent) => {
                torrent::start(self.config, torrent, dir.as_ref(), options, incoming).await
            }
            None => Ok(crate::fetch::start(
                self.config,
                &source,
                dir.as_ref().to_path_buf(),
                options,
                incoming,
            )),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(t) = &self.listener_task {
            t.abort();
        }
    }
}
