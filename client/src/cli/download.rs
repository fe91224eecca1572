//! `rivulet download TORRENT [-o DIR] [--peer ADDR]... [--listen ADDR] [--seed]
//! [--files LIST] [--sequential] [--timeout SECS] [--json]` and `rivulet seed TORRENT DIR [--listen ADDR]
//! [--peer ADDR]... [--timeout SECS]`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use handshake::EncryptionPolicy;
use metainfo::Torrent;
use rivulet::storage::Allocation;
use rivulet::{AddOptions, Config, Phase, Session, Status, TorrentHandle, TorrentSource};

use super::{CliError, human_bytes};

/// The MSE policy.
#[derive(Clone, Copy, ValueEnum)]
enum EncryptionArg {
    /// Plaintext only.
    Disabled,
    /// Plaintext out, plaintext or MSE accepted in.
    Enabled,
    /// MSE out (RC4 or plaintext), both accepted in.
    Preferred,
    /// RC4 only, both ways.
    Required,
}

impl From<EncryptionArg> for EncryptionPolicy {
    fn from(e: EncryptionArg) -> Self {
        match e {
            EncryptionArg::Disabled => EncryptionPolicy::Disabled,
            EncryptionArg::Enabled => EncryptionPolicy::Enabled,
            EncryptionArg::Preferred => EncryptionPolicy::Preferred,
            EncryptionArg::Required => EncryptionPolicy::Required,
        }
    }
}

/// Arguments of `rivulet download`.
#[derive(Args)]
pub(crate) struct DownloadArgs {
    /// A .torrent file, a magnet link, or an info hash (40 hex or 32 base32
    /// characters for v1, 64 hex for v2).
    torrent: String,
    /// The download directory.
    #[arg(short, long, default_value = ".")]
    output: PathBuf,
    /// A peer to connect to (IP:PORT); repeat for more.
    #[arg(long = "peer")]
    peers: Vec<SocketAddr>,
    /// Accept peers on this address too (e.g. 0.0.0.0:6881).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Keep seeding after the download completes (until --timeout or Ctrl-C).
    #[arg(long)]
    seed: bool,
    /// Give up after this many seconds (exit 4).
    #[arg(long)]
    timeout: Option<u64>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Message stream encryption.
    #[arg(long, value_enum, default_value = "enabled")]
    encryption: EncryptionArg,
    /// Download only these files: indices as `rivulet info` lists them, e.g. `0,2-4`.
    #[arg(long, value_name = "LIST")]
    files: Option<String>,
    /// Fetch pieces in order (for playing while downloading) instead of rarest first.
    #[arg(long)]
    sequential: bool,
    /// Disk allocation: sparse files, or reserve the space of every selected file at
    /// start (a full disk shows at once).
    #[arg(long, value_enum, default_value = "sparse")]
    allocation: AllocationArg,
}

/// How files get their disk space.
#[derive(Clone, Copy, ValueEnum)]
enum AllocationArg {
    /// Blocks are taken as data arrives.
    Sparse,
    /// Blocks are reserved at start.
    Full,
}

/// Parses a file selection such as `0,2-4` into sorted, distinct indices below `count`.
pub(crate) fn parse_file_list(list: &str, count: usize) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        let num = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("{s:?} is not a file index"))
        };
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(part)?, num(part)?),
        };
        if a > b {
            return Err(format!("{part:?}: the range is backwards"));
        }
        if b >= count {
            return Err(format!(
                "no file {b}: the torrent has {count} file{} (0 to {})",
                if count == 1 { "" } else { "s" },
                count.saturating_sub(1)
            ));
        }
        out.extend(a..=b);
    }
    if out.is_empty() {
        return Err("the file list is empty".into());
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Arguments of `rivulet seed`.
#[derive(Args)]
pub(crate) struct SeedArgs {
    /// The .torrent file.
    torrent: PathBuf,
    /// The directory holding the torrent's data.
    dir: PathBuf,
    /// Where to accept peers.
    #[arg(long, default_value = "0.0.0.0:6881")]
    listen: SocketAddr,
    /// A peer to connect to (IP:PORT); repeat for more.
    #[arg(long = "peer")]
    peers: Vec<SocketAddr>,
    /// Stop after this many seconds (exit 0).
    #[arg(long)]
    timeout: Option<u64>,
    /// Message stream encryption.
    #[arg(long, value_enum, default_value = "enabled")]
    encryption: EncryptionArg,
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Io(format!("starting the runtime: {e}")))
}

fn load(source: &str) -> Result<Torrent, CliError> {
    if source.starts_with("magnet:") {
        return Err(CliError::BadInput(
            "seeding needs the .torrent file, not a magnet link".into(),
        ));
    }
    Torrent::from_file(source).map_err(|e| CliError::BadInput(format!("{source}: {e}")))
}

/// Prints a progress line every second: in place on a terminal, one per line otherwise.
struct Progress {
    start: Instant,
    last: (Instant, u64, u64),
    tty: bool,
}

impl Progress {
    fn new() -> Self {
        let now = Instant::now();
        Progress {
            start: now,
            last: (now, 0, 0),
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn line(&mut self, s: &Status) {
        let now = Instant::now();
        let dt = now.duration_since(self.last.0).as_secs_f64().max(1e-3);
        let down = s.downloaded.saturating_sub(self.last.1) as f64 / dt;
        let up = s.uploaded.saturating_sub(self.last.2) as f64 / dt;
        self.last = (now, s.downloaded, s.uploaded);
        let pct = if s.wanted_bytes == 0 {
            100.0
        } else {
            s.have_bytes as f64 * 100.0 / s.wanted_bytes as f64
        };
        if s.phase == Phase::Metadata {
            let (have, total) = s.metadata_pieces;
            let text = format!(
                "[{:>4}s] fetching metadata: {have}/{total} pieces  peers {}",
                now.duration_since(self.start).as_secs(),
                s.peers
            );
            if self.tty {
                eprint!("\r{text}\x1b[K");
            } else {
                eprintln!("{text}");
            }
            return;
        }
        let text = format!(
            "[{:>4}s] {pct:5.1}% {} / {}  down {}/s  up {}/s  peers {}",
            now.duration_since(self.start).as_secs(),
            human_bytes(s.have_bytes),
            human_bytes(s.wanted_bytes),
            human_bytes(down as u64),
            human_bytes(up as u64),
            s.peers,
        );
        if self.tty {
            eprint!("\r{text}\x1b[K");
        } else {
            eprintln!("{text}");
        }
    }

    fn done(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

/// Waits for `until` while printing progress every second; `Err` on the deadline.
async fn watch_until(
    handle: &TorrentHandle,
    deadline: Option<Instant>,
    progress: &mut Progress,
    until: impl Fn(&Status) -> bool,
) -> Result<Status, Status> {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut rx = handle.subscribe();
    loop {
        let s = rx.borrow_and_update().clone();
        if until(&s) || s.error.is_some() {
            return Ok(s);
        }
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tick.tick() => progress.line(&handle.status()),
            r = rx.changed() => if r.is_err() { return Err(handle.status()) },
            _ = sleep => return Err(handle.status()),
            _ = tokio::signal::ctrl_c() => return Err(handle.status()),
        }
    }
}

pub(crate) fn download(a: DownloadArgs) -> Result<(), CliError> {
    let source = TorrentSource::parse(&a.torrent).map_err(|e| CliError::BadInput(e.to_string()))?;
    if a.peers.is_empty() && a.listen.is_none() && source.peers().is_empty() {
        return Err(CliError::BadInput(
            "trackers and the DHT are not yet supported: give --peer ADDR (or --listen ADDR)"
                .into(),
        ));
    }
    let mut options = AddOptions::with_peers(a.peers.clone());
    options.sequential = a.sequential;
    options.allocation = match a.allocation {
        AllocationArg::Sparse => Allocation::Sparse,
        AllocationArg::Full => Allocation::Full,
    };
    if let Some(list) = &a.files {
        let Some(torrent) = source.torrent() else {
            return Err(CliError::BadInput(
                "--files needs the .torrent: a magnet link's file list comes with its metadata"
                    .into(),
            ));
        };
        // Indices count the files `rivulet info` lists: padding files are not listed.
        let listed: Vec<usize> = (0..torrent.info.files.len())
            .filter(|&i| !torrent.info.files[i].is_padding())
            .collect();
        let chosen = parse_file_list(list, listed.len())
            .map_err(|e| CliError::BadInput(format!("--files: {e}")))?;
        options.file_priorities = vec![0; torrent.info.files.len()];
        for k in chosen {
            options.file_priorities[listed[k]] = rivulet::picker::NORMAL;
        }
    }
    let rt = runtime()?;
    rt.block_on(async move {
        let start = Instant::now();
        let deadline = a.timeout.map(|t| start + Duration::from_secs(t));
        let mut config = Config::default();
        config.listen = a.listen;
        config.encryption = a.encryption.into();
        let session = Session::new(config)
            .await
            .map_err(|e| CliError::Io(format!("listening: {e}")))?;
        if let Some(addr) = session.listen_addr() {
            println!("listening on {addr}");
        }
        let handle = session
            .add(source, &a.output, options)
            .await
            .map_err(|e| CliError::Io(e.to_string()))?;
        let mut progress = Progress::new();
        let result = watch_until(&handle, deadline, &mut progress, |s| s.complete).await;
        progress.done();
        let name = handle.info().map(|i| i.name.clone()).unwrap_or_default();
        let s = match result {
            Ok(s) => s,
            Err(s) if s.phase == Phase::Metadata => {
                let (have, total) = s.metadata_pieces;
                return Err(CliError::Timeout(format!(
                    "gave up after {} s fetching the metadata: {have} of {total} pieces from {} peers",
                    start.elapsed().as_secs(),
                    s.peers
                )));
            }
            Err(s) => {
                // Write the resume file: a restart checks nothing it lists.
                handle.close().await;
                let failed = if s.hash_failures > 0 {
                    format!("; {} pieces failed their hash check", s.hash_failures)
                } else {
                    String::new()
                };
                return Err(CliError::Timeout(format!(
                    "gave up after {} s: {} of {} ({} of {} pieces) from {} peers{failed}",
                    start.elapsed().as_secs(),
                    human_bytes(s.have_bytes),
                    human_bytes(s.wanted_bytes),
                    s.pieces_have,
                    s.piece_count,
                    s.peers
                )));
            }
        };
        if let Some(e) = s.error {
            return Err(CliError::Io(e));
        }
        if !a.seed {
            handle.close().await;
        }
        let secs = start.elapsed().as_secs_f64();
        let rate = s.downloaded as f64 / secs.max(1e-3);
        let path = a.output.join(&name);
        let files: Vec<serde_json::Value> = handle
            .files()
            .iter()
            .filter(|f| !f.padding)
            .enumerate()
            .map(|(i, f)| {
                serde_json::json!({
                    "index": i,
                    "path": f.path.display().to_string(),
                    "length": f.length,
                    "done": f.done,
                    "selected": f.priority > 0,
                })
            })
            .collect();
        if a.json {
            let v = serde_json::json!({
                "complete": true,
                "name": name,
                "path": path.display().to_string(),
                "bytes": s.wanted_bytes,
                "downloaded": s.downloaded,
                "uploaded": s.uploaded,
                "seconds": secs,
                "bytes_per_second": rate,
                "hash_failures": s.hash_failures,
                "fast_resumed": handle.fast_resumed(),
                "files": files,
            });
            println!("{v}");
        } else {
            println!(
                "complete: {} ({}) in {secs:.1} s, {}/s",
                path.display(),
                human_bytes(s.wanted_bytes),
                human_bytes(rate as u64)
            );
        }
        if a.seed {
            eprintln!("seeding until the timeout or Ctrl-C");
            let _ = watch_until(&handle, deadline, &mut progress, |_| false).await;
            progress.done();
            handle.close().await;
        }
        Ok(())
    })
}

pub(crate) fn seed(a: SeedArgs) -> Result<(), CliError> {
    let torrent = load(&a.torrent.to_string_lossy())?;
    let rt = runtime()?;
    rt.block_on(async move {
        let deadline = a.timeout.map(|t| Instant::now() + Duration::from_secs(t));
        let mut config = Config::default();
        config.listen = Some(a.listen);
        config.encryption = a.encryption.into();
        let session = Session::new(config)
            .await
            .map_err(|e| CliError::Io(format!("listening on {}: {e}", a.listen)))?;
        let handle = session
            .add(&torrent, &a.dir, AddOptions::with_peers(a.peers.clone()))
            .await
            .map_err(|e| CliError::Io(e.to_string()))?;
        if let Some(addr) = session.listen_addr() {
            println!("listening on {addr}");
        }
        let s = handle.status();
        println!(
            "seeding {}: {} of {} pieces",
            torrent.info.name, s.pieces_have, s.piece_count
        );
        let mut progress = Progress::new();
        let _ = watch_until(&handle, deadline, &mut progress, |_| false).await;
        progress.done();
        handle.close().await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::parse_file_list;

    #[test]
    fn file_lists() {
        assert_eq!(parse_file_list("0,2-4", 5), Ok(vec![0, 2, 3, 4]));
        assert_eq!(parse_file_list(" 3 , 1-1,3", 5), Ok(vec![1, 3]));
        assert!(parse_file_list("5", 5).unwrap_err().contains("no file 5"));
        assert!(parse_file_list("3-1", 5).is_err());
        assert!(parse_file_list("x", 5).is_err());
        assert!(parse_file_list("", 5).is_err());
        assert!(parse_file_list("-2", 5).is_err());
    }
}
