//! `rivulet download (TORRENT|MAGNET|INFOHASH) [-o DIR] [--peer ADDR]... [--listen ADDR] [--seed]
//! [--files LIST] [--sequential] [--allocation sparse|full] [-t URL]... [--no-dht]
//! [--dht-bootstrap ADDR]... [--lsd] [--timeout SECS] [--json] [--cache-size BYTES]
//! [--cache-age SECS] [--resume-interval SECS]` and `rivulet seed TORRENT DIR [--listen
//! ADDR] [--peer ADDR]... [-t URL]... [--no-dht] [--dht-bootstrap ADDR]... [--lsd]
//! [--timeout SECS] [--json] [--cache-size BYTES] [--cache-age SECS]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use handshake::EncryptionPolicy;
use metainfo::Torrent;
use rivulet::storage::Allocation;
use rivulet::{
    AddOptions, Config, DhtConfig, LsdConfig, Phase, Session, Status, TorrentHandle, TorrentSource,
};

use super::report::Reporter;
use super::{CliError, classify_io, human_bytes};

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

/// How peers are found, besides `--peer` (shared by `download` and `seed`).
#[derive(Args)]
pub(crate) struct DiscoveryArgs {
    /// A tracker to announce to, besides the torrent's own (udp:// or http://); repeat
    /// for more.
    #[arg(short = 't', long = "tracker", value_name = "URL")]
    trackers: Vec<String>,
    /// Do not use the Mainline DHT.
    #[arg(long)]
    no_dht: bool,
    /// A DHT bootstrap node (HOST:PORT) instead of the public routers; repeat for more.
    #[arg(long = "dht-bootstrap", value_name = "ADDR")]
    dht_bootstrap: Vec<String>,
    /// Local service discovery (BEP 14 multicast on the local network).
    #[arg(long)]
    lsd: bool,
}

/// The write-back cache (shared by `download` and `seed`).
#[derive(Args)]
pub(crate) struct CacheArgs {
    /// Bytes of verified pieces held in memory per torrent before they are written, in
    /// large coalesced writes (default 32 MiB; 0 writes every piece at once).
    #[arg(long, value_name = "BYTES")]
    cache_size: Option<usize>,
    /// Seconds a verified piece may wait in the cache before it is written (default 2).
    #[arg(long, value_name = "SECS")]
    cache_age: Option<f64>,
}

impl CacheArgs {
    fn apply(&self, config: &mut Config) -> Result<(), CliError> {
        if let Some(n) = self.cache_size {
            config.cache_size = n;
        }
        if let Some(secs) = self.cache_age {
            config.cache_age = Duration::try_from_secs_f64(secs)
                .map_err(|e| CliError::BadInput(format!("--cache-age {secs}: {e}")))?;
        }
        Ok(())
    }
}

impl DiscoveryArgs {
    fn apply(&self, config: &mut Config) -> Result<(), CliError> {
        for t in &self.trackers {
            let lower = t.to_ascii_lowercase();
            if !(lower.starts_with("udp://") || lower.starts_with("http://")) {
                return Err(CliError::BadInput(format!(
                    "tracker {t}: only udp:// and http:// trackers are supported"
                )));
            }
        }
        if self.no_dht && !self.dht_bootstrap.is_empty() {
            return Err(CliError::BadInput(
                "--no-dht and --dht-bootstrap contradict each other".into(),
            ));
        }
        if !self.no_dht {
            let mut d = DhtConfig::default();
            if !self.dht_bootstrap.is_empty() {
                d.bootstrap = Some(self.dht_bootstrap.clone());
            }
            config.dht = Some(d);
        }
        if self.lsd {
            config.lsd = Some(LsdConfig::default());
        }
        Ok(())
    }

    fn options(&self, peers: &[SocketAddr]) -> AddOptions {
        let mut o = AddOptions::with_peers(peers.to_vec());
        o.trackers = self.trackers.clone();
        o
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
    /// Where to accept peers (announced to trackers and the DHT; default 0.0.0.0:0,
    /// port 0 picks one).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Accept no peers: only dial (trackers are told port 0, the DHT hears no announce).
    #[arg(long, conflicts_with = "listen")]
    no_listen: bool,
    /// Keep seeding after the download completes (until --timeout or Ctrl-C).
    #[arg(long)]
    seed: bool,
    /// Give up after this many seconds (exit 4; with --seed and the download
    /// complete, stop seeding then, exit 0). On any exit the trackers are told
    /// `stopped` (their answers waited for a few seconds at most).
    #[arg(long)]
    timeout: Option<u64>,
    /// Report as JSON events, one object per line on stdout: added, metadata, progress
    /// (every second), piece-failed, peer-banned, completed, error.
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
    #[command(flatten)]
    discovery: DiscoveryArgs,
    /// Session-wide upload limit, bytes per second (default: unlimited).
    #[arg(long, value_name = "BYTES")]
    upload_limit: Option<u64>,
    /// Session-wide download limit, bytes per second (default: unlimited).
    #[arg(long, value_name = "BYTES")]
    download_limit: Option<u64>,
    #[command(flatten)]
    cache: CacheArgs,
    /// Seconds between writes of the resume file while pieces arrive (default 30); it
    /// is also written on completion and exit, always after the data is on disk.
    #[arg(long, value_name = "SECS")]
    resume_interval: Option<f64>,
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
    /// Stop after this many seconds (exit 0). On any exit (Ctrl-C too) the trackers
    /// are told `stopped` (their answers waited for a few seconds at most).
    #[arg(long)]
    timeout: Option<u64>,
    /// Report as JSON events, one per line (as `download --json`).
    #[arg(long)]
    json: bool,
    /// Message stream encryption.
    #[arg(long, value_enum, default_value = "enabled")]
    encryption: EncryptionArg,
    #[command(flatten)]
    discovery: DiscoveryArgs,
    /// Session-wide upload limit, bytes per second (default: unlimited).
    #[arg(long, value_name = "BYTES")]
    upload_limit: Option<u64>,
    /// Session-wide download limit, bytes per second (default: unlimited).
    #[arg(long, value_name = "BYTES")]
    download_limit: Option<u64>,
    #[command(flatten)]
    cache: CacheArgs,
    /// How plaintext connections send piece payloads (Linux): `mapped` (the default)
    /// hands the kernel many blocks at once from read-only maps of the files;
    /// `sendfile` sends each block with sendfile(2); `read` reads them into memory
    /// first.
    #[arg(long, value_enum, default_value = "mapped")]
    uploads: UploadsArg,
}

/// `--uploads`.
#[derive(Clone, Copy, ValueEnum)]
enum UploadsArg {
    /// Many blocks per sendmsg from read-only maps of the files.
    Mapped,
    /// One sendfile(2) per block.
    Sendfile,
    /// Blocks read into memory, then sent.
    Read,
}

impl From<UploadsArg> for rivulet::Uploads {
    fn from(a: UploadsArg) -> Self {
        match a {
            UploadsArg::Mapped => rivulet::Uploads::Mapped,
            UploadsArg::Sendfile => rivulet::Uploads::Sendfile,
            UploadsArg::Read => rivulet::Uploads::Read,
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    // One thread for all network work: on a machine whose cores the peers share,
    // hopping between worker threads costs more (context switches, wakeups) than it
    // gains. Hashing and writing run on each torrent's disk threads, reads for uploads
    // on the blocking pool.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Io(format!("starting the runtime: {e}")))
}

fn load(source: &str) -> Result<Torrent, CliError> {
    if source.starts_with("magnet:") {
        return Err(CliError::BadInput(
            "magnet links are not yet supported: give a .torrent file".into(),
        ));
    }
    Torrent::from_file(source).map_err(|e| CliError::BadInput(format!("{source}: {e}")))
}

/// Waits for `until` while reporting progress every second; `Err` on the deadline or
/// Ctrl-C.
async fn watch_until(
    handle: &TorrentHandle,
    deadline: Option<Instant>,
    report: &mut Reporter,
    until: impl Fn(&Status) -> bool,
) -> Result<Status, Status> {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut rx = handle.subscribe();
    // One listener for the whole wait: a Ctrl-C between two turns of the loop is kept.
    let mut interrupt = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let s = rx.borrow_and_update().clone();
        if !report.metadata_known()
            && let Some(info) = handle.info()
        {
            report.metadata(info, &s);
        }
        report.changed(&s);
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
            _ = tick.tick() => report.tick(&handle.status()),
            r = rx.changed() => if r.is_err() { return Err(handle.status()) },
            _ = sleep => return Err(handle.status()),
            _ = &mut interrupt => return Err(handle.status()),
        }
    }
}

fn add_error(e: rivulet::TorrentError) -> CliError {
    CliError::Io(classify_io(&e.to_string()))
}

fn listen_error(addr: SocketAddr, e: std::io::Error) -> CliError {
    CliError::Io(classify_io(&format!("listening on {addr}: {e}")))
}

pub(crate) fn download(a: DownloadArgs) -> Result<(), CliError> {
    let mut report = Reporter::new(a.json);
    let r = download_inner(a, &mut report);
    if let Err(e) = &r {
        report.error(e);
    }
    r
}

fn download_inner(a: DownloadArgs, report: &mut Reporter) -> Result<(), CliError> {
    let source = TorrentSource::parse(&a.torrent).map_err(|e| CliError::BadInput(e.to_string()))?;
    let mut config = Config::default();
    let listen = a.listen.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
    config.listen = (!a.no_listen).then_some(listen);
    config.encryption = a.encryption.into();
    config.upload_limit = a.upload_limit;
    config.download_limit = a.download_limit;
    a.discovery.apply(&mut config)?;
    a.cache.apply(&mut config)?;
    let private = source.torrent().is_some_and(|t| t.info.private);
    // Given --listen, peers may dial in: that is a way too.
    if a.peers.is_empty()
        && a.listen.is_none()
        && source.peers().is_empty()
        && a.discovery.trackers.is_empty()
        && source.trackers().is_empty()
        && (config.dht.is_none() || private)
        && (config.lsd.is_none() || private)
    {
        return Err(CliError::BadInput(
            "no way to find peers: no trackers in the torrent or link; give --peer ADDR, \
             -t URL or --listen ADDR, or leave the DHT on"
                .into(),
        ));
    }
    let mut options = a.discovery.options(&a.peers);
    options.sequential = a.sequential;
    if let Some(secs) = a.resume_interval {
        options.resume_interval = Some(
            Duration::try_from_secs_f64(secs)
                .map_err(|e| CliError::BadInput(format!("--resume-interval {secs}: {e}")))?,
        );
    }
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
        let session = Session::new(config)
            .await
            .map_err(|e| listen_error(listen, e))?;
        if !a.json {
            if let Some(addr) = session.listen_addr() {
                println!("listening on {addr}");
            }
            if let Some(d) = session.dht() {
                println!("dht on {}", d.local_addr());
            }
        }
        let info_hash = source.info_hash().wire_id().to_hex();
        let handle = session
            .add(source, &a.output, options)
            .await
            .map_err(add_error)?;
        report.added(
            &info_hash,
            handle.info(),
            &a.output,
            session.listen_addr(),
            &handle.status(),
        );
        let result = watch_until(&handle, deadline, report, |s| s.complete).await;
        report.done();
        let name = handle.info().map(|i| i.name.clone()).unwrap_or_default();
        let s = match result {
            Ok(s) => s,
            Err(s) if s.phase == Phase::Metadata => {
                let (have, total) = s.metadata_pieces;
                let trackers = handle
                    .discovery()
                    .and_then(|d| d.tracker_errors())
                    .map(|e| format!("; tracker unreachable: {e}"))
                    .unwrap_or_default();
                // Tells the trackers `stopped` and waits (bounded) for their answers.
                session.close().await;
                return Err(CliError::Timeout(format!(
                    "gave up after {} s fetching the metadata: {have} of {total} pieces from {} \
                     peers{trackers}",
                    start.elapsed().as_secs(),
                    s.peers
                )));
            }
            Err(s) => {
                let failed = if s.hash_failures > 0 {
                    format!("; {} pieces failed their hash check", s.hash_failures)
                } else {
                    String::new()
                };
                let trackers = handle
                    .discovery()
                    .and_then(|d| d.tracker_errors())
                    .map(|e| format!("; tracker unreachable: {e}"))
                    .unwrap_or_default();
                // Writes the resume file (a restart checks nothing it lists) and tells
                // the trackers `stopped`, waiting (bounded) for their answers.
                session.close().await;
                return Err(CliError::Timeout(format!(
                    "gave up after {} s: {} of {} ({} of {} pieces) from {} peers{failed}{trackers}",
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
            // The torrent paused itself; this writes the resume file (if the disk takes
            // it) and tells the trackers `stopped`.
            session.close().await;
            return Err(CliError::Io(classify_io(&e)));
        }
        // Done without --seed: the resume file is written and the trackers have heard
        // `stopped` (or did not answer in time) before the completion is reported.
        let session = if a.seed {
            Some(session)
        } else {
            session.close().await;
            None
        };
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
        let extra = serde_json::json!({
            "fast_resumed": handle.fast_resumed(),
            "files": files,
        });
        report.completed(&name, &path, &s, extra);
        if a.seed {
            if !a.json {
                eprintln!("seeding until the timeout or Ctrl-C");
            }
            let _ = watch_until(&handle, deadline, report, |_| false).await;
            report.done();
        }
        if let Some(session) = session {
            session.close().await;
        }
        Ok(())
    })
}

pub(crate) fn seed(a: SeedArgs) -> Result<(), CliError> {
    let mut report = Reporter::new(a.json);
    let r = seed_inner(a, &mut report);
    if let Err(e) = &r {
        report.error(e);
    }
    r
}

fn seed_inner(a: SeedArgs, report: &mut Reporter) -> Result<(), CliError> {
    let torrent = load(&a.torrent.to_string_lossy())?;
    let rt = runtime()?;
    rt.block_on(async move {
        let deadline = a.timeout.map(|t| Instant::now() + Duration::from_secs(t));
        let mut config = Config::default();
        config.listen = Some(a.listen);
        config.encryption = a.encryption.into();
        a.discovery.apply(&mut config)?;
        a.cache.apply(&mut config)?;
        config.upload_limit = a.upload_limit;
        config.download_limit = a.download_limit;
        config.uploads = a.uploads.into();
        let session = Session::new(config)
            .await
            .map_err(|e| listen_error(a.listen, e))?;
        let handle = session
            .add(&torrent, &a.dir, a.discovery.options(&a.peers))
            .await
            .map_err(add_error)?;
        let s = handle.status();
        if !a.json {
            if let Some(addr) = session.listen_addr() {
                println!("listening on {addr}");
            }
            if let Some(d) = session.dht() {
                println!("dht on {}", d.local_addr());
            }
            println!(
                "seeding {}: {} of {} pieces",
                torrent.info.name, s.pieces_have, s.piece_count
            );
        }
        report.added(
            &torrent.info_hash.wire_id().to_hex(),
            Some(&torrent.info),
            &a.dir,
            session.listen_addr(),
            &s,
        );
        let r = watch_until(&handle, deadline, report, |_| false).await;
        report.done();
        // Writes the resume file, tells the trackers `stopped` and waits (bounded).
        session.close().await;
        match r.map(|s| s.error) {
            Ok(Some(e)) => Err(CliError::Io(classify_io(&e))),
            _ => Ok(()),
        }
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
