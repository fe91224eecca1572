//! Makes a .torrent for a file or directory, then checks the data against it.
//!
//! `cargo run --release -p rivulet-metainfo --example make_torrent -- PATH [v1|v2|hybrid] [TRACKER]`
//! writes `PATH.torrent` (next to PATH's name, in the current directory).

use std::path::PathBuf;
use std::time::Instant;

use rivulet_metainfo::{Torrent, TorrentBuilder, Verifier, Version};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(
        args.next()
            .ok_or("usage: make_torrent PATH [v1|v2|hybrid] [TRACKER]")?,
    );
    let version = match args.next().as_deref() {
        Some("v1") => Version::V1,
        Some("v2") => Version::V2,
        None | Some("hybrid") => Version::Hybrid,
        Some(other) => return Err(format!("unknown version {other}").into()),
    };
    let mut builder = TorrentBuilder::new(&path).version(version);
    if let Some(tracker) = args.next() {
        builder = builder.announce(tracker);
    }
    let start = Instant::now();
    let made = builder.build()?;
    let took = start.elapsed();
    let name = path.file_name().ok_or("PATH has no file name")?;
    let out = PathBuf::from(format!("{}.torrent", name.to_string_lossy()));
    std::fs::write(&out, made.bytes())?;
    println!(
        "{}: {} bytes in {} pieces of {} KiB, hashed in {:.2?} ({:.0} MB/s)",
        out.display(),
        made.total_length(),
        made.num_pieces(),
        made.piece_length() / 1024,
        took,
        made.total_length() as f64 / took.as_secs_f64() / 1e6
    );
    if let Some(v1) = made.info_hash().v1() {
        println!("v1 info hash: {v1}");
    }
    if let Some(v2) = made.info_hash().v2() {
        println!("v2 info hash: {v2}");
    }

    let torrent = Torrent::from_bytes(made.bytes())?;
    let save_path = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(".".as_ref());
    let have = Verifier::new(&torrent.info).run(save_path)?;
    println!("verified: {}/{} pieces good", have.count_good(), have.len());
    Ok(())
}
