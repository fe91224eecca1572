//! `rivulet tracker [--http ADDR] [--udp ADDR] [--ws ADDR]`: the tracker server of the
//! tracker crate, one swarm state behind every front end.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use tracker::net::{Listen, TrackerServer};
use tracker::server::ServerConfig;

use super::CliError;

/// Arguments of `rivulet tracker`.
#[derive(Args)]
pub(crate) struct TrackerArgs {
    /// HTTP announce/scrape (BEP 3, BEP 48); the WebSocket tracker shares this port.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// UDP tracker (BEP 15).
    #[arg(long)]
    udp: Option<SocketAddr>,
    /// WebSocket (WebTorrent) tracker. It is served on the HTTP port: give the same
    /// address as --http, or --ws alone (HTTP is then served there too).
    #[arg(long)]
    ws: Option<SocketAddr>,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    timeout: Option<u64>,
}

/// Runs `rivulet tracker`.
pub(crate) fn run(a: TrackerArgs) -> Result<(), CliError> {
    let http = match (a.http, a.ws) {
        (Some(h), Some(w)) if h != w => {
            return Err(CliError::BadInput(format!(
                "--ws {w}: the WebSocket tracker is served on the HTTP port; use --ws {h} or drop --http"
            )));
        }
        (h, w) => h.or(w),
    };
    if http.is_none() && a.udp.is_none() {
        return Err(CliError::BadInput(
            "give at least one of --http, --udp, --ws".into(),
        ));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Io(format!("starting the async runtime: {e}")))?;
    rt.block_on(async move {
        let server = TrackerServer::bind(ServerConfig::default(), Listen { udp: a.udp, http })
            .await
            .map_err(|e| CliError::Io(format!("binding the tracker: {e}")))?;
        if let Some(u) = server.udp_addr() {
            println!("udp://{u}/announce");
        }
        if let Some(h) = server.http_addr() {
            println!("http://{h}/announce");
            println!("ws://{h}");
        }
        match a.timeout {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        drop(server);
        Ok(())
    })
}
