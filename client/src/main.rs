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
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Create(a) => cli::create::run(a),
        Command::Info(a) => cli::info::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rivulet: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
