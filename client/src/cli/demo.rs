//! `rivulet demo`: an offline swarm on loopback. It makes sample content and its torrent,
//! starts a tracker (UDP and HTTP), a seeder and several leechers in this process; each
//! session announces the torrent to the tracker named in it (the session's own tracker
//! announcing, as for any torrent), so the leechers find the seeder and each other and
//! trade pieces among themselves as well as with the seeder. It shows progress, verifies every byte and prints a summary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::io::IsTerminal;

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use metainfo::{Torrent, TorrentBuilder, Version};
use rivulet::{AddOptions, Config, Session, TorrentHandle};
use tracker::net::{Listen, TrackerServer};
use tracker::server::ServerConfig;

use super::{CliError, human_bytes};

/// Every socket of the demo: loopback, a free port.
const LOOPBACK: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// Arguments of `rivulet demo`.
#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Size of the sample content in MiB.
    #[arg(long, default_value = "64")]
    size: u64,
    /// Number of leechers.
    #[arg(long, default_value = "3")]
    leechers: usize,
    /// Work in this directory (kept afterwards) instead of a temporary one.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Give up after this many seconds (exit 4).
    #[arg(long, default_value = "60")]
    timeout: u64,
}

fn io(what: &str) -> impl Fn(std::io::Error) -> CliError + '_ {
    move |e| CliError::Io(format!("{what}: {e}"))
}

/// Deterministic sample bytes (xorshift), so every run shares the same content.
fn sample(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn make_content(root: &Path, total: u64) -> Result<PathBuf, CliError> {
    let content = root.join("seed").join("rivulet-demo");
    std::fs::create_dir_all(content.join("extras")).map_err(io("creating the sample content"))?;
    let video = total * 3 / 4;
    let audio = total - video - 1234;
    let files: [(&str, u64); 3] = [
        ("video.bin", video),
        ("extras/audio.bin", audio),
        ("extras/readme.txt", 1234),
    ];
    for (i, (name, len)) in files.iter().enumerate() {
        std::fs::write(content.join(name), sample(i as u64 + 1, *len as usize))
            .map_err(io("writing the sample content"))?;
    }
    Ok(content)
}

/// Runs `rivulet demo`.
pub(crate) fn run(a: DemoArgs) -> Result<(), CliError> {
    if a.size == 0 || a.size > 4096 || a.leechers == 0 || a.leechers > 16 {
        return Err(CliError::BadInput(
            "--size must be 1..=4096 MiB and --leechers 1..=16".into(),
        ));
    }
    let tmp;
    let root = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().map_err(io("making a temporary directory"))?;
            tmp.path().to_path_buf()
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(io("starting the async runtime"))?;
    rt.block_on(demo(a, root))
}

async fn demo(a: DemoArgs, root: PathBuf) -> Result<(), CliError> {
    let total = a.size * 1024 * 1024;
    println!(
        "rivulet demo: {} of sample content, 1 seeder, {} leechers, all on loopback",
        human_bytes(total),
        a.leechers
    );

    // 1. A tracker: UDP and HTTP (the WebSocket tracker shares the HTTP port).
    let server = TrackerServer::bind(
        ServerConfig::default(),
        Listen {
            udp: Some(LOOPBACK),
            http: Some(LOOPBACK),
        },
    )
    .await
    .map_err(io("starting the tracker"))?;
    let udp = server
        .udp_addr()
        .ok_or_else(|| CliError::Io("the tracker has no UDP address".into()))?;
    println!(
        "tracker   udp://{udp}/announce  http://{}/announce",
        server
            .http_addr()
            .map(|h| h.to_string())
            .unwrap_or_default()
    );

    // 2. Content and its torrent (hybrid: v1 and v2 in one).
    let content = make_content(&root, total)?;
    let t0 = Instant::now();
    let made = TorrentBuilder::new(&content)
        .version(Version::Hybrid)
        .announce(format!("udp://{udp}/announce"))
        .comment("rivulet demo")
        .build()
        .map_err(|e| CliError::Io(format!("creating the torrent: {e}")))?;
    let torrent = Torrent::from_bytes(made.bytes())
        .map_err(|e| CliError::BadInput(format!("the demo torrent: {e}")))?;
    std::fs::write(root.join("rivulet-demo.torrent"), made.bytes())
        .map_err(io("writing the torrent"))?;
    println!(
        "torrent   {} pieces of {}, v1 {} (hashed in {:.2} s)",
        made.num_pieces(),
        human_bytes(made.piece_length()),
        torrent
            .info_hash
            .v1()
            .map(|h| h.to_hex())
            .unwrap_or_default(),
        t0.elapsed().as_secs_f64()
    );

    let config = || {
        let mut c = Config::default();
        c.listen = Some(LOOPBACK);
        c
    };

    // 3. The seeder.
    let seed_dir = root.join("seed");
    let seeder = Session::new(config())
        .await
        .map_err(io("starting the seeder"))?;
    let seed = seeder
        .add(&torrent, &seed_dir, AddOptions::default())
        .await
        .map_err(|e| CliError::Io(format!("seeder: {e}")))?;
    let seed_addr = seeder
        .listen_addr()
        .ok_or_else(|| CliError::Io("the seeder is not listening".into()))?;
    println!("seeder    {seed_addr}");

    // 4. Leechers: each session announces to the torrent's tracker, dials the peers it
    //    returns, and serves the pieces it has to the others.
    let start = Instant::now();
    let mut leechers: Vec<(Session, TorrentHandle, PathBuf)> = Vec::new();
    for i in 0..a.leechers {
        let dir = root.join(format!("leech-{}", i + 1));
        let s = Session::new(config())
            .await
            .map_err(io("starting a leecher"))?;
        let h = s
            .add(&torrent, &dir, AddOptions::default())
            .await
            .map_err(|e| CliError::Io(format!("leecher {}: {e}", i + 1)))?;
        let me = s
            .listen_addr()
            .ok_or_else(|| CliError::Io("a leecher is not listening".into()))?;
        println!("leech-{}   {me}", i + 1);
        leechers.push((s, h, dir));
    }

    // 5. Progress until everyone is done: a bar per leecher on a terminal, plain lines
    //    otherwise.
    let deadline = start + Duration::from_secs(a.timeout);
    let mut last_print = Instant::now() - Duration::from_secs(1);
    let bars = std::io::stdout().is_terminal().then(|| {
        let multi = MultiProgress::new();
        let style = ProgressStyle::with_template(
            "{prefix:.bold} [{bar:30.cyan/blue}] {binary_bytes}/{binary_total_bytes} \
             {binary_bytes_per_sec} {msg} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bars: Vec<ProgressBar> = leechers
            .iter()
            .enumerate()
            .map(|(i, (_, h, _))| {
                let b = multi.add(ProgressBar::new(h.status().wanted_bytes));
                b.set_style(style.clone());
                b.set_prefix(format!("leech-{}", i + 1));
                b
            })
            .collect();
        (multi, bars)
    });
    loop {
        let statuses: Vec<_> = leechers.iter().map(|(_, h, _)| h.status()).collect();
        if let Some(e) = statuses.iter().find_map(|s| s.error.clone()) {
            return Err(CliError::Io(format!("a leecher stopped: {e}")));
        }
        let done = statuses.iter().all(|s| s.complete);
        if let Some((_, bars)) = &bars {
            for (b, s) in bars.iter().zip(&statuses) {
                b.set_position(s.have_bytes);
                b.set_message(format!("{} peers", s.peers));
                if s.complete && !b.is_finished() {
                    b.finish();
                }
            }
        } else if done || last_print.elapsed() >= Duration::from_millis(500) {
            last_print = Instant::now();
            let line: Vec<String> = statuses
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let pct = if s.piece_count == 0 {
                        100.0
                    } else {
                        100.0 * f64::from(s.pieces_have) / f64::from(s.piece_count)
                    };
                    format!("leech-{} {:5.1}% ({} peers)", i + 1, pct, s.peers)
                })
                .collect();
            println!(
                "{:5.1}s  {}",
                start.elapsed().as_secs_f64(),
                line.join("  ")
            );
        }
        if done {
            break;
        }
        if Instant::now() > deadline {
            return Err(CliError::Timeout(format!(
                "the swarm did not finish within {} s",
                a.timeout
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = start.elapsed();

    // 6. Verify: libtorrent-compatible piece check and a byte comparison with the source.
    for (i, (_, _, dir)) in leechers.iter().enumerate() {
        let good = metainfo::verify(&torrent, dir)
            .map_err(|e| CliError::Io(format!("verifying leech-{}: {e}", i + 1)))?;
        if !good.all_good() {
            return Err(CliError::Io(format!(
                "leech-{}: {} pieces fail their hash",
                i + 1,
                good.bad_pieces().count()
            )));
        }
        for f in torrent.info.files.iter().filter(|f| !f.is_padding()) {
            let want =
                std::fs::read(seed_dir.join(f.safe_path())).map_err(io("reading the source"))?;
            let got = std::fs::read(dir.join(f.safe_path())).map_err(io("reading a download"))?;
            if want != got {
                return Err(CliError::Io(format!(
                    "leech-{}: {} differs",
                    i + 1,
                    f.display_path()
                )));
            }
        }
    }

    // 7. Summary.
    let moved: u64 = leechers.iter().map(|(_, h, _)| h.status().downloaded).sum();
    let from_seed = seed.status().uploaded;
    println!(
        "done: {} leechers have all {} ({} pieces each), verified by piece hash and byte by byte",
        a.leechers,
        human_bytes(total),
        torrent.info.piece_count()
    );
    println!(
        "      {:.2} s, {} moved in all ({:.0} MiB/s), {} from the seeder and {} between leechers",
        elapsed.as_secs_f64(),
        human_bytes(moved),
        moved as f64 / 1048576.0 / elapsed.as_secs_f64().max(1e-9),
        human_bytes(from_seed),
        human_bytes(moved.saturating_sub(from_seed))
    );

    // 8. What the tracker saw: `completed` from every leecher, then `stopped` from all.
    let ih = tracker::InfoHash(torrent.info_hash.wire_id().0);
    let swarms = server.swarms();
    let stats = || swarms.lock().map(|s| s.stats(&ih)).unwrap_or_default();
    let until = Instant::now() + Duration::from_secs(5);
    while stats().downloaded < a.leechers as u32 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st = stats();
    println!(
        "tracker   {} seeders, {} leechers, {} completed downloads announced",
        st.complete, st.incomplete, st.downloaded
    );
    for (s, h, _) in leechers {
        // Without `delete_files` it cannot fail.
        let _ = h.remove(false).await;
        drop(s);
    }
    // Without `delete_files` it cannot fail.
    let _ = seed.remove(false).await;
    let left = stats();
    println!(
        "          after everyone left (`stopped`): {} peers",
        left.complete + left.incomplete
    );
    drop(seeder);
    drop(server);
    Ok(())
}
