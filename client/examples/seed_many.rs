//! One session seeding many torrents, for the swarm benchmark's memory figure
//! (`client/benches/swarm`).
//!
//! `seed_many LIST`: LIST holds lines `TORRENT<TAB>DIR`. Adds every torrent to one
//! session listening on 127.0.0.1 (each checks its data), prints `READY` once all are
//! seeding, and runs until stdin closes.

use std::io::BufRead;

use metainfo::Torrent;
use rivulet::{AddOptions, Config, Session};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let list = std::env::args().nth(1).ok_or("usage: seed_many LIST")?;
    let mut config = Config::default();
    config.listen = Some("127.0.0.1:0".parse()?);
    let session = Session::new(config).await?;
    let mut handles = Vec::new();
    for line in std::fs::read_to_string(&list)?.lines() {
        let (torrent, dir) = line.split_once('\t').ok_or("LIST: TORRENT<TAB>DIR lines")?;
        let torrent = Torrent::from_file(torrent)?;
        handles.push(session.add(&torrent, dir, AddOptions::default()).await?);
    }
    let incomplete = handles.iter().filter(|h| !h.status().complete).count();
    if incomplete > 0 {
        return Err(format!("{incomplete} torrents are not complete on disk").into());
    }
    println!("READY {}", handles.len());
    // Seed until stdin closes.
    tokio::task::spawn_blocking(|| for _ in std::io::stdin().lock().lines() {}).await?;
    Ok(())
}
