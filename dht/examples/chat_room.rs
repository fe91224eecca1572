//! Chat-room discovery: processes that know the same room name find each other through
//! the DHT (the room's key is `Hash::from_name(room)`), then say hello over TCP.
//!
//! On one machine, over loopback:
//!
//! ```text
//! # terminal 1: the first node, bootstrapping from nobody
//! cargo run -p rivulet-dht --example chat_room -- "my room" 127.0.0.1:6881
//! # terminal 2: bootstraps from the first
//! cargo run -p rivulet-dht --example chat_room -- "my room" 127.0.0.1:0 127.0.0.1:6881
//! ```
//!
//! Arguments: room name, DHT bind address, then bootstrap nodes (none given and a
//! non-loopback bind address: the public routers).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use rivulet_dht::{Dht, Hash};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: chat_room <room> <dht bind addr> [bootstrap host:port ...]");
        std::process::exit(2);
    }
    let room = Hash::from_name(&args[0]);
    let bind: SocketAddr = args[1].parse()?;
    let bootstrap = &args[2..];
    let mut builder = Dht::builder().bind(bind);
    if !bootstrap.is_empty() || bind.ip().is_loopback() {
        builder = builder.bootstrap_hosts(bootstrap.to_vec());
    }
    let dht = builder.build().await?;

    // The chat itself: a TCP listener on the DHT's IP; its port is what we announce.
    let listener = TcpListener::bind(SocketAddr::new(dht.local_addr().ip(), 0)).await?;
    let me = listener.local_addr()?;
    println!(
        "room {room}: DHT node on {}, chat on {me}",
        dht.local_addr()
    );
    tokio::spawn(async move {
        while let Ok((stream, from)) = listener.accept().await {
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    println!("[{from}] {line}");
                }
            });
        }
    });

    dht.bootstrapped().await;
    let mut greeted = HashSet::new();
    loop {
        if let Err(e) = dht.announce(room, Some(me.port())).await {
            eprintln!("announce failed: {e}");
        }
        let mut peers = dht.get_peers(room);
        while let Some(peer) = peers.next().await {
            if peer == me || !greeted.insert(peer) {
                continue;
            }
            println!("found {peer} in the room");
            if let Ok(mut s) = TcpStream::connect(peer).await {
                let _ = s.write_all(format!("hello from {me}\n").as_bytes()).await;
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
