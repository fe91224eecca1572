//! Integration tests of the `rivulet` binary.

mod backpressure;
mod cli;
mod datapath;
mod dht_cli;
mod discovery;
mod engine;
mod faults;
mod hostile_metadata;
mod io_errors;
mod lifecycle;
mod limits;
mod magnet;
mod session;
mod storage;
mod transfer;
mod transmission;

/// A session config listening on a free loopback port: where most tests start.
pub(crate) fn loopback() -> rivulet::Config {
    let mut c = rivulet::Config::default();
    c.listen = Some("127.0.0.1:0".parse().unwrap());
    c
}

/// A session made with `config` (which must listen) seeding `t` from `dir`: the
/// session, the torrent's handle and the session's address.
pub(crate) async fn loopback_seed(
    config: rivulet::Config,
    t: &metainfo::Torrent,
    dir: &std::path::Path,
) -> (
    rivulet::Session,
    rivulet::TorrentHandle,
    std::net::SocketAddr,
) {
    let s = rivulet::Session::new(config).await.unwrap();
    let h = s.add(t, dir, rivulet::AddOptions::default()).await.unwrap();
    let addr = s.listen_addr().unwrap();
    (s, h, addr)
}
