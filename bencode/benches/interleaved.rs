//! Decode ratios that hold up on a busy machine: rivulet against `librqbit-bencode` and
//! `bt_bencode` (the two fastest other crates in `decode.rs`), same corpora and shapes.
//!
//! Criterion's estimates include whatever else the machine runs; on a shared 2-core VM
//! they move by ±30 % between runs. Here every case runs on the same chunk of input
//! (one torrent, or 50 KRPC messages, ~15-300 µs), the cases take turns, each chunk is
//! timed `rounds` times, and a case's figure is the sum over chunks of its best time:
//! preemptions and bursts of load from other processes fall out of the minimum, and
//! what they still cost is shared by all cases of a round.
//!
//! Run: `cargo bench -p rivulet-bencode --all-features --bench interleaved -- [filter] [rounds]`
//! (filter: a substring of `corpus/mode/crate`, e.g. `multi/tree`; rounds: default 30).

#![allow(missing_docs)]

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{Krpc, Torrent, dht_responses, multi_file_torrent, single_file_torrent};

/// A named way of decoding one message (it panics if the message does not decode).
type Case = (&'static str, fn(&[u8]));

fn rivulet_tree(m: &[u8]) {
    black_box(rivulet_bencode::decode(black_box(m)).expect("rivulet"));
}
fn rqbit_tree(m: &[u8]) {
    black_box(
        librqbit_bencode::from_bytes::<librqbit_bencode::BencodeValueBorrowed<'_>>(black_box(m))
            .expect("rqbit"),
    );
}
fn bt_tree(m: &[u8]) {
    black_box(bt_bencode::from_slice::<bt_bencode::Value>(black_box(m)).expect("bt"));
}
fn rivulet_torrent(m: &[u8]) {
    black_box(rivulet_bencode::from_bytes::<Torrent<'_>>(black_box(m)).expect("rivulet"));
}
fn rqbit_torrent(m: &[u8]) {
    black_box(librqbit_bencode::from_bytes::<Torrent<'_>>(black_box(m)).expect("rqbit"));
}
fn bt_torrent(m: &[u8]) {
    black_box(bt_bencode::from_slice::<Torrent<'_>>(black_box(m)).expect("bt"));
}
fn rivulet_krpc(m: &[u8]) {
    black_box(rivulet_bencode::from_bytes::<Krpc<'_>>(black_box(m)).expect("rivulet"));
}
fn rqbit_krpc(m: &[u8]) {
    black_box(librqbit_bencode::from_bytes::<Krpc<'_>>(black_box(m)).expect("rqbit"));
}
fn bt_krpc(m: &[u8]) {
    black_box(bt_bencode::from_slice::<Krpc<'_>>(black_box(m)).expect("bt"));
}

const TORRENT_CASES: [Case; 6] = [
    ("tree/rivulet", rivulet_tree),
    ("tree/librqbit-bencode", rqbit_tree),
    ("tree/bt_bencode", bt_tree),
    ("typed/rivulet", rivulet_torrent),
    ("typed/librqbit-bencode", rqbit_torrent),
    ("typed/bt_bencode", bt_torrent),
];
const KRPC_CASES: [Case; 6] = [
    ("tree/rivulet", rivulet_tree),
    ("tree/librqbit-bencode", rqbit_tree),
    ("tree/bt_bencode", bt_tree),
    ("typed/rivulet", rivulet_krpc),
    ("typed/librqbit-bencode", rqbit_krpc),
    ("typed/bt_bencode", bt_krpc),
];

/// One corpus: its messages, how many make a chunk, and how often a chunk is decoded
/// per timing (so that a timing is long enough for the clock).
struct Corpus {
    name: &'static str,
    msgs: Vec<Vec<u8>>,
    cases: [Case; 6],
    chunk: usize,
    repeat: u32,
}

fn run(corpus: &Corpus, filter: &str, rounds: usize) {
    let cases: Vec<&Case> = corpus
        .cases
        .iter()
        .filter(|(n, _)| format!("{}/{n}", corpus.name).contains(filter))
        .collect();
    if cases.is_empty() {
        return;
    }
    let mut total = vec![Duration::ZERO; cases.len()];
    for chunk in corpus.msgs.chunks(corpus.chunk) {
        let mut best = vec![Duration::MAX; cases.len()];
        for _ in 0..rounds {
            for (i, (_, decode)) in cases.iter().enumerate() {
                let t = Instant::now();
                for _ in 0..corpus.repeat {
                    for m in chunk {
                        decode(m);
                    }
                }
                best[i] = best[i].min(t.elapsed() / corpus.repeat);
            }
        }
        for (t, b) in total.iter_mut().zip(best) {
            *t += b;
        }
    }
    for ((name, _), t) in cases.iter().zip(&total) {
        // This case's time over rivulet's in the same mode: how much faster rivulet is.
        let mode = name.split('/').next().unwrap_or_default();
        let ours = cases
            .iter()
            .zip(&total)
            .find(|((n, _), _)| *n == format!("{mode}/rivulet"))
            .map(|(_, t)| *t);
        let per_msg = if corpus.msgs.len() > 1 {
            format!(
                ", {:.1} ns/msg",
                t.as_nanos() as f64 / corpus.msgs.len() as f64
            )
        } else {
            String::new()
        };
        let ratio = ours.map_or(String::new(), |o| {
            format!(" (÷ rivulet: {:.2}x)", t.as_secs_f64() / o.as_secs_f64())
        });
        println!("{}/{name}: {t:.3?}{per_msg}{ratio}", corpus.name);
    }
}

fn main() {
    // `cargo bench` passes `--bench`; everything else is ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let filter = args.first().map(String::as_str).unwrap_or("");
    let rounds = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(30);
    let corpora = [
        Corpus {
            name: "single",
            msgs: vec![single_file_torrent()],
            cases: TORRENT_CASES,
            chunk: 1,
            repeat: 200,
        },
        Corpus {
            name: "multi",
            msgs: vec![multi_file_torrent()],
            cases: TORRENT_CASES,
            chunk: 1,
            repeat: 1,
        },
        Corpus {
            name: "dht",
            msgs: dht_responses(),
            cases: KRPC_CASES,
            chunk: 50,
            repeat: 1,
        },
    ];
    for corpus in &corpora {
        run(corpus, filter, rounds);
    }
}
