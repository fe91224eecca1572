//! The `rivulet` command line. Commands are thin: they parse arguments, call the
//! library crates and print; no protocol logic lives here.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

/// rivulet: BitTorrent, WebTorrent and the web, in one client.
#[derive(Parser)]
#[command(name = "rivulet", version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a .torrent from a file or directory; print its info hash(es) and magnet link.
    Create(cli::create::CreateArgs),
    /// Show what a .torrent file or magnet link describes.
    Info(cli::info::InfoArgs),
    /// Download a torrent (.torrent, magnet link or info hash) from the given peers.
    Download(cli::download::DownloadArgs),
    /// Serve a torrent's data from a directory.
    Seed(cli::download::SeedArgs),
    /// An offline swarm on loopback: tracker, seeder and leechers, with progress and a summary.
    Demo(cli::demo::DemoArgs),
    /// Run a tracker server (HTTP, UDP and WebSocket, one swarm state).
    Tracker(cli::tracker::TrackerArgs),
    /// The Mainline DHT: run a node, announce, find peers, BEP 44 put/get.
    #[command(subcommand)]
    Dht(cli::dht::DhtCommand),
}

/// Keeps glibc from handing freed heap memory back to the kernel after every burst:
/// 256 KiB receive buffers come and go at download speed, and with glibc's dynamic
/// thresholds the heap's top was trimmed and grown again hundreds of times per GiB,
/// each time faulting in fresh zeroed pages. On loopback (1 GiB, rivulet -> rivulet,
/// three interleaved rounds) the leech took 14.3-14.8 k page faults instead of
/// 29-45 k, and 1.47-1.56 CPU s/GiB instead of 1.52-1.73. What stays mapped is bounded
/// by the session's own limits (write-back cache, pieces awaiting their check, socket
/// reads in flight). The library leaves the process's allocator alone; only the
/// binary sets this.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_malloc() {
    // SAFETY: mallopt only sets allocator parameters; it is called first thing in
    // main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tune_malloc();
    let args = Args::parse();
    init_logging();
    let result = match args.command {
        Command::Create(a) => cli::create::run(a),
        Command::Info(a) => cli::info::run(a),
        Command::Download(a) => cli::download::download(a),
        Command::Seed(a) => cli::download::seed(a),
        Command::Demo(a) => cli::demo::run(a),
        Command::Tracker(a) => cli::tracker::run(a),
        Command::Dht(c) => cli::dht::run(c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rivulet: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Logs to stderr, filtered by `RIVULET_LOG` (e.g. `info`, `rivulet=debug`); warnings by
/// default.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RIVULET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
