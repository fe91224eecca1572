//! A tracker server: UDP, HTTP and WebSocket (on the HTTP port) sharing one swarm state.
//!
//! ```text
//! cargo run --release -p rivulet-tracker --example server -- [UDP_ADDR] [HTTP_ADDR] [SECONDS]
//! ```
//!
//! Defaults: `127.0.0.1:6969` for both, running until Ctrl-C (or for SECONDS). Prints the
//! swarm and peer counts every 10 seconds.

use std::time::Duration;

use rivulet_tracker::net::{Listen, TrackerServer};
use rivulet_tracker::server::ServerConfig;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let udp = args.next().unwrap_or_else(|| "127.0.0.1:6969".into());
    let http = args.next().unwrap_or_else(|| "127.0.0.1:6969".into());
    let seconds: Option<u64> = args.next().map(|s| s.parse()).transpose()?;
    let server = TrackerServer::bind(
        ServerConfig::default(),
        Listen {
            udp: Some(udp.parse()?),
            http: Some(http.parse()?),
        },
    )
    .await?;
    println!(
        "udp://{}  http://{}/announce  {}",
        server.udp_addr().map(|a| a.to_string()).unwrap_or_default(),
        server
            .http_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        server.ws_url().unwrap_or_default()
    );
    let run = async {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let (swarms, peers) = {
                let s = server.swarms();
                let s = s.lock().unwrap_or_else(|e| e.into_inner());
                (s.swarm_count(), s.peer_count())
            };
            println!(
                "{swarms} swarms, {peers} peers, {} WebSocket peers",
                server.ws_peer_count()
            );
        }
    };
    match seconds {
        Some(s) => {
            let _ = tokio::time::timeout(Duration::from_secs(s), run).await;
        }
        None => {
            tokio::select! {
                _ = run => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
    }
    Ok(())
}
