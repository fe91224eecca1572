//! `rivulet create PATH [-o FILE] [-t URL]... [-w URL]... [--piece-length BYTES]
//! [--version v1|v2|hybrid] [--private] [--comment TEXT]`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use magnet::MagnetLink;
use metainfo::{TorrentBuilder, Version};

use super::CliError;

/// Which kind of torrent to make.
#[derive(Clone, Copy, ValueEnum)]
enum VersionArg {
    V1,
    V2,
    Hybrid,
}

/// Arguments of `rivulet create`.
#[derive(Args)]
pub(crate) struct CreateArgs {
    /// The file or directory to share.
    path: PathBuf,
    /// Where to write the torrent (default: `<name>.torrent` in the current directory).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// A tracker URL; repeat for more (each becomes its own tier, in order).
    #[arg(short = 't', long = "tracker")]
    trackers: Vec<String>,
    /// A web seed URL (BEP 19); repeat for more.
    #[arg(short = 'w', long = "web-seed")]
    web_seeds: Vec<String>,
    /// Piece length in bytes (a power of two, at least 16384); automatic when omitted.
    #[arg(long)]
    piece_length: Option<u64>,
    /// v1 (BEP 3), v2 (BEP 52) or hybrid (both).
    #[arg(long, value_enum, default_value = "hybrid")]
    version: VersionArg,
    /// Mark the torrent private (BEP 27: no DHT, PEX or LSD).
    #[arg(long)]
    private: bool,
    /// A comment stored in the torrent.
    #[arg(long)]
    comment: Option<String>,
}

pub(crate) fn run(a: CreateArgs) -> Result<(), CliError> {
    if let Some(pl) = a.piece_length {
        if pl < 16 * 1024 || !pl.is_power_of_two() {
            return Err(CliError::BadInput(format!(
                "--piece-length {pl}: must be a power of two of at least 16384"
            )));
        }
    }
    let mut b = TorrentBuilder::new(&a.path)
        .version(match a.version {
            VersionArg::V1 => Version::V1,
            VersionArg::V2 => Version::V2,
            VersionArg::Hybrid => Version::Hybrid,
        })
        .private(a.private);
    for t in &a.trackers {
        b = b.announce(t.clone());
    }
    for w in &a.web_seeds {
        b = b.web_seed(w.clone());
    }
    if let Some(pl) = a.piece_length {
        b = b.piece_length(pl);
    }
    if let Some(c) = &a.comment {
        b = b.comment(c.clone());
    }
    let created = b
        .build()
        .map_err(|e| CliError::Io(format!("creating a torrent of {}: {e}", a.path.display())))?;
    let name = a
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "torrent".into());
    let out = a
        .output
        .unwrap_or_else(|| PathBuf::from(format!("{name}.torrent")));
    std::fs::write(&out, created.bytes())
        .map_err(|e| CliError::Io(format!("cannot write {}: {e}", out.display())))?;

    let h = created.info_hash();
    println!("wrote {}", out.display());
    if let Some(v1) = h.v1() {
        println!("info hash v1: {v1}");
    }
    if let Some(v2) = h.v2() {
        println!("info hash v2: {v2}");
    }
    let mut link = MagnetLink::new(h)
        .with_display_name(name)
        .with_trackers(a.trackers.iter().cloned());
    for w in &a.web_seeds {
        link = link.with_web_seed(w.clone());
    }
    println!("magnet: {link}");
    println!(
        "pieces: {} x {} bytes, {} bytes in all",
        created.num_pieces(),
        created.piece_length(),
        created.total_length()
    );
    Ok(())
}
