//! A torrent's disk workers: two long-lived threads instead of a blocking-pool task
//! per piece.
//!
//! The *hasher* takes complete pieces from a channel, checks their hash and stores the
//! good ones ([`Storage::store_piece`]: into the write-back cache, or the files), and
//! reports each outcome. The *flusher* writes the cache out
//! ([`Storage::flush`]) when the hasher says it is over half full, when its oldest piece
//! reached the flush age (it looks every quarter of the age), and once more when the
//! torrent's driver drops the workers; it reports a failed flush. So hashing (one core)
//! and writing (the other) overlap, and pieces wait in the cache to be written in
//! large coalesced writes.
//!
//! The job channel is unbounded in type, but bounded by the core: it holds only pieces
//! the core is checking (each one's blocks already in memory, at most one job per
//! piece of the torrent). Both threads hold the torrent's `removed` lock's read side
//! while they touch the disk, and do nothing once it is set.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use crate::core::{PieceCheck, PieceData};
use crate::storage::{Flush, Storage};
use crate::torrent::Shared;

/// What the workers report to the torrent's driver.
#[derive(Debug)]
pub(crate) enum Done {
    /// The outcome of a piece's check.
    Checked(u32, PieceCheck),
    /// Writing out these cached pieces failed (the message): they are not durable.
    FlushFailed(Vec<u32>, String),
}

/// Handles to a torrent's disk threads; dropping it lets them finish the queued
/// pieces, flush the cache and exit.
pub(crate) struct Disk {
    jobs: mpsc::Sender<(u32, PieceData)>,
}

impl Disk {
    /// Starts the hasher and the flusher of `shared`'s storage, flushing after
    /// `max_age`; outcomes go to `report`.
    pub(crate) fn start(
        shared: Arc<Shared>,
        max_age: Duration,
        report: impl Fn(Done) + Send + Clone + 'static,
    ) -> std::io::Result<Disk> {
        let (jobs, jobs_rx) = mpsc::channel::<(u32, PieceData)>();
        let (kick, kick_rx) = mpsc::sync_channel::<()>(1);
        let (s, r) = (shared.clone(), report.clone());
        std::thread::Builder::new()
            .name("rivulet-flush".into())
            .spawn(move || flusher(&s, max_age, kick_rx, r))?;
        std::thread::Builder::new()
            .name("rivulet-hash".into())
            .spawn(move || hasher(&shared, jobs_rx, kick, report))?;
        Ok(Disk { jobs })
    }

    /// Queues piece `index` for its hash check and storage.
    pub(crate) fn check(&self, index: u32, data: PieceData) -> Result<(), PieceData> {
        self.jobs.send((index, data)).map_err(|e| e.0.1)
    }
}

fn hasher(
    shared: &Shared,
    jobs: mpsc::Receiver<(u32, PieceData)>,
    kick: mpsc::SyncSender<()>,
    report: impl Fn(Done),
) {
    let storage: &Storage = &shared.storage;
    for (index, data) in jobs {
        let removed = shared.removed.read().unwrap_or_else(|e| e.into_inner());
        // Removed with its files: write nothing.
        if *removed {
            continue;
        }
        let r = if !storage.check_piece_blocks(index, data.blocks()) {
            PieceCheck::BadHash
        } else {
            match storage.store_piece(index, data.into_blocks()) {
                Ok(()) => PieceCheck::Stored,
                Err(e) => PieceCheck::StorageFailed(e.to_string()),
            }
        };
        drop(removed);
        report(Done::Checked(index, r));
        if storage.cache_over_watermark() {
            let _ = kick.try_send(());
        }
    }
}

fn flusher(shared: &Shared, max_age: Duration, kick: mpsc::Receiver<()>, report: impl Fn(Done)) {
    let storage: &Storage = &shared.storage;
    let tick = (max_age / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
    // After a failure: retried every few seconds (and on a kick or at the end), and
    // reported again only after a success (no warning every tick).
    const RETRY: Duration = Duration::from_secs(5);
    let mut failed: Option<std::time::Instant> = None;
    loop {
        let (last, kicked) = match kick.recv_timeout(tick) {
            Ok(()) => (false, true),
            Err(mpsc::RecvTimeoutError::Timeout) => (false, false),
            Err(mpsc::RecvTimeoutError::Disconnected) => (true, false),
        };
        if !kicked && !last && failed.is_some_and(|t| t.elapsed() < RETRY) {
            continue;
        }
        let removed = shared.removed.read().unwrap_or_else(|e| e.into_inner());
        if *removed {
            return;
        }
        let (which, reason) = match (last, kicked) {
            (true, _) => (Flush::All, "close"),
            (false, true) => (Flush::Due { max_age }, "watermark"),
            (false, false) if failed.is_some() => (Flush::All, "retry"),
            (false, false) => (Flush::Due { max_age }, "age"),
        };
        match storage.flush(which, reason) {
            Ok(_) => failed = None,
            Err(e) => {
                if failed.is_none() {
                    report(Done::FlushFailed(e.pieces.clone(), e.to_string()));
                }
                failed = Some(std::time::Instant::now());
            }
        }
        drop(removed);
        if last {
            return;
        }
    }
}
