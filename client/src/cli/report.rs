//! How `download` and `seed` tell the user what happens: an indicatif progress bar on a
//! terminal (bytes, rate, peers, ETA), one plain line a second otherwise, or with
//! `--json` one JSON object per line on stdout:
//!
//! | `event` | when | fields |
//! |---|---|---|
//! | `added` | the torrent was added and its data checked | `name` (null until the metadata is known), `info_hash`, `dir`, `listen` (our address, or null), `have_bytes`, `wanted_bytes` |
//! | `metadata` | the torrent's info is known (at once for a .torrent file, after the BEP 9 exchange for a magnet link or a hash) | `name`, `bytes`, `pieces`, `piece_length`, `files`, `private` |
//! | `progress` | every second | `phase` (`metadata` or `data`), `metadata_pieces` (`[have, total]`), `have_bytes`, `wanted_bytes`, `pieces_have`, `piece_count`, `downloaded`, `uploaded`, `download_rate`, `upload_rate`, `peers`, `eta_seconds` (null when unknown) |
//! | `piece-failed` | a piece failed its hash check | `hash_failures` (in all) |
//! | `peer-banned` | a peer was banned for bad data | `peers_banned` (in all) |
//! | `completed` | every wanted piece is verified | `complete: true`, `name`, `path`, `bytes`, `downloaded`, `uploaded`, `seconds`, `bytes_per_second`, `hash_failures`, `fast_resumed`, `files` (`index`, `path`, `length`, `done`, `selected`) |
//! | `error` | the command fails | `message`, `exit_code`; once the data phase began, `pieces_have` and `have_bytes` (what is verified and stored) |

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use metainfo::Info;
use rivulet::{Phase, Status};
use serde_json::json;

use super::{CliError, human_bytes};

enum Mode {
    Json,
    Bar(ProgressBar),
    Lines,
}

/// The progress reporter of one torrent.
pub(crate) struct Reporter {
    mode: Mode,
    start: Instant,
    /// Time, downloaded and uploaded at the last progress report.
    last: (Instant, u64, u64),
    /// Smoothed download rate of verified data (bytes/s), for the ETA.
    rate: f64,
    last_have: u64,
    failures: u64,
    banned: usize,
    metadata_known: bool,
    /// `(pieces_have, have_bytes)` of the last status seen, for the `error` event.
    progress: Option<(u32, u64)>,
}

fn event(v: serde_json::Value) {
    println!("{v}");
}

impl Reporter {
    /// JSON lines if `json`, else a bar when stderr is a terminal, else plain lines.
    pub(crate) fn new(json: bool) -> Reporter {
        let now = Instant::now();
        let mode = if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30.cyan/blue}] {binary_bytes}/{binary_total_bytes} \
                 {binary_bytes_per_sec} {msg} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(250));
            Mode::Bar(bar)
        } else {
            Mode::Lines
        };
        Reporter {
            mode,
            start: now,
            last: (now, 0, 0),
            rate: 0.0,
            last_have: 0,
            failures: 0,
            banned: 0,
            metadata_known: false,
            progress: None,
        }
    }

    /// The torrent was added (with a .torrent, its data checked); `info` is known
    /// unless it came from a magnet link or a bare hash.
    pub(crate) fn added(
        &mut self,
        info_hash: &str,
        info: Option<&Info>,
        dir: &Path,
        listen: Option<SocketAddr>,
        s: &Status,
    ) {
        self.last = (Instant::now(), s.downloaded, s.uploaded);
        self.last_have = s.have_bytes;
        if let Mode::Json = &self.mode {
            event(json!({
                "event": "added",
                "name": info.map(|i| i.name.clone()),
                "info_hash": info_hash,
                "dir": dir.display().to_string(),
                "listen": listen.map(|a| a.to_string()),
                "have_bytes": s.have_bytes,
                "wanted_bytes": s.wanted_bytes,
            }));
        }
        if let Some(info) = info {
            self.metadata(info, s);
        } else if let Mode::Bar(bar) = &self.mode {
            bar.set_prefix(info_hash[..info_hash.len().min(12)].to_string());
            bar.set_message("fetching metadata");
        }
    }

    /// Whether [`metadata`](Self::metadata) was reported.
    pub(crate) fn metadata_known(&self) -> bool {
        self.metadata_known
    }

    /// The torrent's info is known.
    pub(crate) fn metadata(&mut self, info: &Info, s: &Status) {
        if std::mem::replace(&mut self.metadata_known, true) {
            return;
        }
        match &self.mode {
            Mode::Json => {
                let files: Vec<_> = info
                    .files
                    .iter()
                    .filter(|f| !f.is_padding())
                    .map(|f| json!({"path": f.display_path(), "length": f.length}))
                    .collect();
                event(json!({
                    "event": "metadata",
                    "name": info.name,
                    "bytes": info.total_length(),
                    "pieces": info.piece_count(),
                    "piece_length": info.piece_length,
                    "files": files,
                    "private": info.private,
                }));
            }
            Mode::Bar(bar) => {
                bar.set_prefix(info.name.clone());
                bar.set_length(s.wanted_bytes);
                bar.set_position(s.have_bytes);
                bar.set_message(format!("{} peers", s.peers));
            }
            Mode::Lines => {}
        }
    }

    /// Something changed: report hash failures and bans as they happen.
    pub(crate) fn changed(&mut self, s: &Status) {
        if s.phase != Phase::Metadata {
            self.progress = Some((s.pieces_have, s.have_bytes));
        }
        if s.hash_failures > self.failures {
            self.failures = s.hash_failures;
            self.note(
                json!({"event": "piece-failed", "hash_failures": s.hash_failures}),
                format!("a piece failed its hash check ({} in all)", s.hash_failures),
            );
        }
        if s.peers_banned > self.banned {
            self.banned = s.peers_banned;
            self.note(
                json!({"event": "peer-banned", "peers_banned": s.peers_banned}),
                format!(
                    "banned a peer that sent bad data ({} in all)",
                    s.peers_banned
                ),
            );
        }
        if let Mode::Bar(bar) = &self.mode {
            bar.set_length(s.wanted_bytes);
            bar.set_position(s.have_bytes);
        }
    }

    fn note(&self, v: serde_json::Value, text: String) {
        match &self.mode {
            Mode::Json => event(v),
            Mode::Bar(bar) => bar.println(text),
            Mode::Lines => eprintln!("{text}"),
        }
    }

    /// The once-a-second report.
    pub(crate) fn tick(&mut self, s: &Status) {
        self.changed(s);
        let now = Instant::now();
        let dt = now.duration_since(self.last.0).as_secs_f64().max(1e-3);
        let down = s.downloaded.saturating_sub(self.last.1) as f64 / dt;
        let up = s.uploaded.saturating_sub(self.last.2) as f64 / dt;
        self.last = (now, s.downloaded, s.uploaded);
        let verified = s.have_bytes.saturating_sub(self.last_have) as f64 / dt;
        self.last_have = s.have_bytes;
        self.rate = if self.rate == 0.0 {
            verified
        } else {
            0.7 * self.rate + 0.3 * verified
        };
        let left = s.wanted_bytes.saturating_sub(s.have_bytes);
        let eta = if left == 0 {
            Some(0)
        } else if self.rate >= 1.0 {
            Some((left as f64 / self.rate).ceil() as u64)
        } else {
            None
        };
        match &self.mode {
            Mode::Json => event(json!({
                "event": "progress",
                "phase": if s.phase == Phase::Metadata { "metadata" } else { "data" },
                "metadata_pieces": [s.metadata_pieces.0, s.metadata_pieces.1],
                "have_bytes": s.have_bytes,
                "wanted_bytes": s.wanted_bytes,
                "pieces_have": s.pieces_have,
                "piece_count": s.piece_count,
                "downloaded": s.downloaded,
                "uploaded": s.uploaded,
                "download_rate": down.round() as u64,
                "upload_rate": up.round() as u64,
                "peers": s.peers,
                "eta_seconds": eta,
            })),
            Mode::Bar(bar) if s.phase == Phase::Metadata => {
                let (have, total) = s.metadata_pieces;
                bar.set_message(format!(
                    "fetching metadata {have}/{total}, {} peers",
                    s.peers
                ));
            }
            Mode::Bar(bar) => {
                bar.set_position(s.have_bytes);
                bar.set_message(format!(
                    "{} peers, up {}/s",
                    s.peers,
                    human_bytes(up as u64)
                ));
            }
            Mode::Lines if s.phase == Phase::Metadata => {
                let (have, total) = s.metadata_pieces;
                eprintln!(
                    "[{:>4}s] fetching metadata: {have}/{total} pieces  peers {}",
                    now.duration_since(self.start).as_secs(),
                    s.peers
                );
            }
            Mode::Lines => {
                let pct = if s.wanted_bytes == 0 {
                    100.0
                } else {
                    s.have_bytes as f64 * 100.0 / s.wanted_bytes as f64
                };
                let eta = eta.map_or("?".to_string(), |e| format!("{e} s"));
                eprintln!(
                    "[{:>4}s] {pct:5.1}% {} / {}  down {}/s  up {}/s  peers {}  eta {eta}",
                    now.duration_since(self.start).as_secs(),
                    human_bytes(s.have_bytes),
                    human_bytes(s.wanted_bytes),
                    human_bytes(down as u64),
                    human_bytes(up as u64),
                    s.peers,
                );
            }
        }
    }

    /// Every wanted piece is verified: the summary.
    /// `extra` (an object) adds fields to the JSON event.
    pub(crate) fn completed(
        &mut self,
        name: &str,
        path: &Path,
        s: &Status,
        extra: serde_json::Value,
    ) {
        self.changed(s);
        let secs = self.start.elapsed().as_secs_f64();
        let rate = s.downloaded as f64 / secs.max(1e-3);
        match &self.mode {
            Mode::Json => {
                let mut v = json!({
                    "event": "completed",
                    "complete": true,
                    "name": name,
                    "path": path.display().to_string(),
                    "bytes": s.wanted_bytes,
                    "downloaded": s.downloaded,
                    "uploaded": s.uploaded,
                    "seconds": secs,
                    "bytes_per_second": rate,
                    "hash_failures": s.hash_failures,
                });
                if let (Some(v), serde_json::Value::Object(extra)) = (v.as_object_mut(), extra) {
                    v.extend(extra);
                }
                event(v)
            }
            Mode::Bar(bar) => {
                bar.set_position(s.wanted_bytes);
                bar.finish_and_clear();
            }
            Mode::Lines => {}
        }
        if !matches!(self.mode, Mode::Json) {
            println!(
                "complete: {} ({}) in {secs:.1} s, {}/s",
                path.display(),
                human_bytes(s.wanted_bytes),
                human_bytes(rate as u64)
            );
        }
    }

    /// The command fails with `e` (main prints the stderr line).
    pub(crate) fn error(&self, e: &CliError) {
        match &self.mode {
            Mode::Json => {
                let mut v = json!({
                    "event": "error",
                    "message": e.to_string(),
                    "exit_code": e.exit_code(),
                });
                if let (Some((pieces, bytes)), Some(o)) = (self.progress, v.as_object_mut()) {
                    o.insert("pieces_have".into(), pieces.into());
                    o.insert("have_bytes".into(), bytes.into());
                }
                event(v)
            }
            Mode::Bar(bar) => bar.finish_and_clear(),
            Mode::Lines => {}
        }
    }

    /// Stops drawing.
    pub(crate) fn done(&self) {
        if let Mode::Bar(bar) = &self.mode {
            bar.finish_and_clear();
        }
    }
}
