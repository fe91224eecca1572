//! Streams one file of a torrent while it downloads, on loopback: a seed and a leech in
//! one process; the leech skips every file and reads one through a `FileReader`
//! (first its last megabyte, as a player probing a container would, then the whole
//! file from the start), checks every byte and prints how fast the bytes came.
//!
//! ```sh
//! cargo run --release -p rivulet --example stream_file -- [MIB]
//! ```

use std::time::Instant;

use metainfo::{Torrent, TorrentBuilder};
use rivulet::{AddOptions, Config, Session};
use tokio::io::{AsyncReadExt, AsyncSeekExt, SeekFrom};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(64);
    let (src, dst) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let content = src.path().join("show");
    std::fs::create_dir(&content)?;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let movie: Vec<u8> = (0..mib << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(content.join("movie.bin"), &movie)?;
    std::fs::write(content.join("extras.bin"), vec![1u8; 4 << 20])?;
    let made = TorrentBuilder::new(&content).build()?;
    let torrent = Torrent::from_bytes(made.bytes())?;

    let mut config = Config::default();
    config.listen = Some("127.0.0.1:0".parse()?);
    let seeder = Session::new(config).await?;
    let _seed = seeder
        .add(&torrent, src.path(), AddOptions::default())
        .await?;
    let leecher = Session::new(Config::default()).await?;
    let mut options = AddOptions::with_peers(vec![seeder.listen_addr().ok_or("no address")?]);
    options.file_priorities = vec![0; torrent.info.files.len()];
    let download = leecher.add(&torrent, dst.path(), options).await?;
    let index = torrent
        .info
        .files
        .iter()
        .position(|f| f.path == ["movie.bin"])
        .ok_or("no movie.bin")?;

    let start = Instant::now();
    let mut reader = download.reader(index)?;
    reader.seek(SeekFrom::End(-(1 << 20))).await?;
    let mut tail = Vec::new();
    reader.read_to_end(&mut tail).await?;
    let first = start.elapsed();
    assert!(tail == movie[movie.len() - (1 << 20)..]);
    reader.seek(SeekFrom::Start(0)).await?;
    let mut all = Vec::with_capacity(movie.len());
    reader.read_to_end(&mut all).await?;
    let secs = start.elapsed().as_secs_f64();
    assert!(all == movie, "the streamed bytes differ");
    let extras = download
        .files()
        .into_iter()
        .find(|f| f.path.ends_with("extras.bin"))
        .map_or(0, |f| f.done);
    println!(
        "streamed {mib} MiB in {secs:.2} s ({:.1} MiB/s); the last MiB after {:.0} ms; \
         extras.bin fetched: {extras} bytes",
        mib as f64 / secs,
        first.as_secs_f64() * 1000.0
    );
    Ok(())
}
