//! Looks up peers for an info hash and prints them as they arrive.
//!
//! ```text
//! cargo run -p rivulet-dht --example get_peers -- <info-hash-hex> [bootstrap host:port ...]
//! ```
//!
//! Without bootstrap nodes it uses the public routers (router.bittorrent.com etc.).

use rivulet_dht::{Dht, Id};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let Some(hash) = args.next() else {
        eprintln!("usage: get_peers <info-hash-hex> [bootstrap host:port ...]");
        std::process::exit(2);
    };
    let hash: Id = hash.parse()?;
    let bootstrap: Vec<String> = args.collect();
    let mut builder = Dht::builder();
    if !bootstrap.is_empty() {
        builder = builder.bootstrap_hosts(bootstrap);
    }
    let dht = builder.build().await?;
    eprintln!(
        "node {} on {}; bootstrapping...",
        dht.id(),
        dht.local_addr()
    );
    dht.bootstrapped().await;
    let stats = dht.stats().await?;
    eprintln!(
        "routing table: {} nodes in {} buckets",
        stats.table.nodes, stats.table.buckets
    );
    let mut peers = dht.get_peers(hash);
    let mut n = 0;
    while let Some(peer) = peers.next().await {
        n += 1;
        println!("{peer}");
    }
    eprintln!("lookup done: {n} peers");
    dht.shutdown().await;
    Ok(())
}
