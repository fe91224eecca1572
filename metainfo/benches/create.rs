//! Torrent creation speed against the hashing bound.
//!
//! Creates a torrent (v1, v2, hybrid) for one 1 GiB file that sits in the page cache, and
//! in the same run measures single-core SHA-1 and SHA-256 throughput over the same bytes
//! in memory. The ideal creation time on `n` cores is `size / single-core throughput / n`
//! (SHA-1 for v1, SHA-256 for v2, both for hybrid); the table reports the measured time
//! against it. Plain timed runs, not criterion (one sample is a gigabyte):
//! `RIVULET_BENCH_RUNS` interleaved rounds (default 5), the best of each kept.
//!
//! `cargo bench -p rivulet-metainfo --bench create` (`RIVULET_BENCH_MIB=1024` sets the size).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use rivulet_metainfo::{TorrentBuilder, Version};
use sha1::{Digest, Sha1};
use sha2::Sha256;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn timed<F: FnOnce()>(f: F) -> Duration {
    timed_cpu(f).0
}

/// This process's user + system CPU time (Linux; zero elsewhere).
fn cpu_time() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Wall time and CPU time of `f`.
fn timed_cpu<F: FnOnce()>(f: F) -> (Duration, Duration) {
    let c = cpu_time();
    let t = Instant::now();
    f();
    (t.elapsed(), cpu_time().saturating_sub(c))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing we need.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let quick = !std::env::args().any(|a| a == "--bench");
    let mib = env_usize("RIVULET_BENCH_MIB", if quick { 16 } else { 1024 });
    let runs = env_usize("RIVULET_BENCH_RUNS", if quick { 1 } else { 5 });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let size = mib as u64 * 1024 * 1024;

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("big.bin");
    {
        let mut f = std::fs::File::create(&path).expect("create");
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut chunk = vec![0u8; 1 << 20];
        for _ in 0..mib {
            for w in chunk.chunks_exact_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                w.copy_from_slice(&x.to_le_bytes());
            }
            f.write_all(&chunk).expect("write");
        }
    }
    // Warm the page cache and keep a copy in memory for the raw hash throughput.
    let mut data = Vec::with_capacity(size as usize);
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .expect("read");

    let load_before = loadavg();
    let versions = [Version::V1, Version::V2, Version::Hybrid];
    let mut thread_counts = vec![1];
    if cores > 1 {
        thread_counts.push(cores);
    }
    // Rounds interleave every measurement, and each keeps its best round: on a shared
    // machine that picks the quietest moment for each, alike.
    let mut sha1_t = Duration::MAX;
    let mut sha1_par_t = Duration::MAX;
    let mut sha256_t = Duration::MAX;
    let mut build_t = vec![(Duration::MAX, Duration::ZERO); versions.len() * thread_counts.len()];
    let mut piece_len = vec![0u64; versions.len()];
    for _ in 0..runs {
        sha1_t = sha1_t.min(timed(|| {
            std::hint::black_box(Sha1::digest(&data));
        }));
        // The same SHA-1 work split over all cores, in memory: what the machine can do at
        // best (SMT siblings or other load show up here, not as builder overhead).
        sha1_par_t = sha1_par_t.min(timed(|| {
            let part = data.len().div_ceil(cores);
            std::thread::scope(|s| {
                for c in data.chunks(part) {
                    s.spawn(move || std::hint::black_box(Sha1::digest(c)));
                }
            });
        }));
        sha256_t = sha256_t.min(timed(|| {
            // v2 hashes 16 KiB blocks separately; do the same.
            for b in data.chunks(16384) {
                std::hint::black_box(Sha256::digest(b));
            }
        }));
        for (vi, &version) in versions.iter().enumerate() {
            for (ti, &threads) in thread_counts.iter().enumerate() {
                let t = timed_cpu(|| {
                    let made = TorrentBuilder::new(&path)
                        .version(version)
                        .threads(threads)
                        .creation_date(None)
                        .build()
                        .expect("build");
                    piece_len[vi] = made.piece_length();
                    std::hint::black_box(made);
                });
                let slot = &mut build_t[vi * thread_counts.len() + ti];
                if t.0 < slot.0 {
                    *slot = t;
                }
            }
        }
    }
    drop(data);
    let gbps = |t: Duration| size as f64 / t.as_secs_f64() / 1e9;
    println!(
        "size {mib} MiB, {cores} cores, best of {runs} interleaved rounds; single-core SHA-1 {:.2} GB/s, SHA-256 (16 KiB blocks) {:.2} GB/s",
        gbps(sha1_t),
        gbps(sha256_t)
    );
    println!(
        "in-memory SHA-1 on {cores} threads: {:.3} s ({:.2} GB/s, {:.2}x the single-core rate)",
        sha1_par_t.as_secs_f64(),
        gbps(sha1_par_t),
        sha1_t.as_secs_f64() / sha1_par_t.as_secs_f64()
    );
    println!(
        "| version | threads | piece length | time (s) | CPU (s) | GB/s | ideal (s) | time / ideal | time / (size / SHA-1 / threads) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (vi, &version) in versions.iter().enumerate() {
        let ideal_1core = match version {
            Version::V1 => sha1_t,
            Version::V2 => sha256_t,
            Version::Hybrid => sha1_t + sha256_t,
        };
        for (ti, &threads) in thread_counts.iter().enumerate() {
            let (t, cpu) = build_t[vi * thread_counts.len() + ti];
            let ideal = ideal_1core.as_secs_f64() / threads as f64;
            let sha1_bound = sha1_t.as_secs_f64() / threads as f64;
            println!(
                "| {version:?} | {threads} | {} KiB | {:.3} | {:.2} | {:.2} | {:.3} | {:.2}x | {:.2}x |",
                piece_len[vi] / 1024,
                t.as_secs_f64(),
                cpu.as_secs_f64(),
                gbps(t),
                ideal,
                t.as_secs_f64() / ideal,
                t.as_secs_f64() / sha1_bound,
            );
        }
    }
    println!(
        "load average (1/5/15 min) before: {load_before}, after: {}",
        loadavg()
    );
}
