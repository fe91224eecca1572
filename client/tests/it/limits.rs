//! Session-wide rate limits through the library API: a limited transfer takes at least
//! what the token bucket allows. The bound is exact (bytes moved ≤ burst + rate ×
//! elapsed, plus one socket read for downloads), so this is a correctness check, not a
//! timing benchmark: the assertions are lower bounds only.

use std::time::{Duration, Instant};

use metainfo::{Torrent, TorrentBuilder, Version};
use rivulet::{AddOptions, Config, Session};

const SIZE: usize = 2 << 20;
const RATE: u64 = 1 << 20;
/// The bucket's burst for RATE (a tenth of a second's worth).
const BURST: u64 = RATE / 10;
/// The most one socket read can take beyond the balance (the reader's buffer).
const READ_SLACK: u64 = 256 << 10;

fn make(root: &std::path::Path) -> Torrent {
    let dir = root.join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let data: Vec<u8> = (0..SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(dir.join("payload.bin"), data).unwrap();
    let made = TorrentBuilder::new(dir.join("payload.bin"))
        .version(Version::V1)
        .piece_length(1 << 18)
        .build()
        .unwrap();
    Torrent::from_bytes(made.bytes()).unwrap()
}

/// Seeds, downloads, checks the bytes; returns the time from creating the first
/// session to completion.
async fn transfer(up: Option<u64>, down: Option<u64>) -> Duration {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let t = make(src.path());
    let start = Instant::now();
    let mut c = crate::loopback();
    c.upload_limit = up;
    let (seed, _s, _) = crate::loopback_seed(c, &t, &src.path().join("data")).await;
    let mut c = Config::default();
    c.download_limit = down;
    let leech = Session::new(c).await.unwrap();
    let peers = vec![seed.listen_addr().unwrap()];
    let h = leech
        .add(&t, dst.path(), AddOptions::with_peers(peers))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), h.wait_complete())
        .await
        .expect("the limited transfer completes in time")
        .unwrap();
    let elapsed = start.elapsed();
    let a = std::fs::read(src.path().join("data/payload.bin")).unwrap();
    let b = std::fs::read(dst.path().join("payload.bin")).unwrap();
    assert!(a == b, "the downloaded bytes differ");
    elapsed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_limit_holds_a_seed_to_its_rate() {
    let elapsed = transfer(Some(RATE), None).await;
    let bound = (SIZE as u64 - BURST) as f64 / RATE as f64;
    assert!(elapsed.as_secs_f64() >= bound, "{elapsed:?} < {bound} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_limit_holds_a_leech_to_its_rate() {
    let elapsed = transfer(None, Some(RATE)).await;
    let bound = (SIZE as u64 - BURST - READ_SLACK) as f64 / RATE as f64;
    assert!(elapsed.as_secs_f64() >= bound, "{elapsed:?} < {bound} s");
}
