//! Decode and encode benchmarks against the bencode crates a user would otherwise pick.
//!
//! Three generated corpora (deterministic, nothing read from disk):
//! - `single`: a single-file torrent of a 4 GiB file in 256 KiB pieces (16,384 pieces, a
//!   327,680-byte `pieces` string);
//! - `multi`: a 10,000-file torrent (~1.7 MB);
//! - `dht`: 100,000 KRPC `get_peers` responses (~300 B each), decoded one by one.
//!
//! Each is decoded and encoded as a generic tree (each crate's own value type) and as
//! typed structs borrowing from the input (serde). A crate without a mode is left out
//! of that group (see BENCHMARKS.md).
//!
//! Run: `cargo bench -p rivulet-bencode --bench decode -- --warm-up-time 1 --measurement-time 3`

// `criterion_group!` generates an undocumented function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};

mod common;

use common::{Krpc, Torrent, dht_responses, multi_file_torrent, single_file_torrent};

// ---------------------------------------------------------------- per-crate adapters

type DecodeFn<T> = fn(&[u8]) -> Option<T>;

/// bendy's generic `Value` declares no depth of its own, so its decoder and encoder are
/// given one (the convenience `from_bencode`/`to_bencode` refuse any nesting).
fn bendy_decode(m: &[u8]) -> bendy::value::Value<'static> {
    use bendy::decoding::FromBencode;
    let mut d = bendy::decoding::Decoder::new(m).with_max_depth(64);
    let obj = d.next_object().expect("bendy").expect("bendy object");
    bendy::value::Value::decode_bencode_object(obj).expect("bendy")
}

fn bendy_encode(v: &bendy::value::Value<'_>) -> Vec<u8> {
    use bendy::encoding::ToBencode;
    let mut e = bendy::encoding::Encoder::new().with_max_depth(64);
    e.emit_with(|e| v.encode(e)).expect("bendy");
    e.get_output().expect("bendy")
}

fn rqbit_encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    librqbit_bencode::bencode_serialize_to_writer(v, &mut out).expect("rqbit encode");
    out
}

/// Benchmarks decode and encode of one corpus (a list of messages) with every crate's
/// generic tree and typed serde.
fn corpus<T>(c: &mut Criterion, name: &str, msgs: &[Vec<u8>], sample_size: usize)
where
    T: for<'a> TypedShape<'a>,
{
    let total: usize = msgs.iter().map(Vec::len).sum();
    println!("corpus {name}: {} message(s), {total} bytes", msgs.len());

    // Generic tree: decode.
    {
        let mut g = c.benchmark_group(format!("{name}/tree/decode"));
        g.throughput(Throughput::Bytes(total as u64));
        g.sample_size(sample_size);
        g.bench_function("rivulet", |b| {
            b.iter(|| {
                for m in msgs {
                    black_box(rivulet_bencode::decode(black_box(m)).expect("rivulet"));
                }
            })
        });
        g.bench_function("librqbit-bencode", |b| {
            b.iter(|| {
                for m in msgs {
                    black_box(
                        librqbit_bencode::from_bytes::<librqbit_bencode::BencodeValueBorrowed<'_>>(
                            black_box(m),
                        )
                        .expect("rqbit"),
                    );
                }
            })
        });
        g.bench_function("bt_bencode", |b| {
            b.iter(|| {
                for m in msgs {
                    black_box(
                        bt_bencode::from_slice::<bt_bencode::Value>(black_box(m)).expect("bt"),
                    );
                }
            })
        });
        g.bench_function("bendy", |b| {
            b.iter(|| {
                for m in msgs {
                    black_box(bendy_decode(black_box(m)));
                }
            })
        });
        g.bench_function("serde_bencode", |b| {
            b.iter(|| {
                for m in msgs {
                    black_box(
                        serde_bencode::from_bytes::<serde_bencode::value::Value>(black_box(m))
                            .expect("serde_bencode"),
                    );
                }
            })
        });
        g.finish();
    }

    // Generic tree: encode (each crate's own tree, decoded once beforehand).
    {
        let mut g = c.benchmark_group(format!("{name}/tree/encode"));
        g.throughput(Throughput::Bytes(total as u64));
        g.sample_size(sample_size);
        let ours: Vec<_> = msgs
            .iter()
            .map(|m| rivulet_bencode::decode(m).expect("rivulet"))
            .collect();
        g.bench_function("rivulet", |b| {
            b.iter(|| {
                for v in &ours {
                    black_box(v.to_bytes());
                }
            })
        });
        let rq: Vec<_> = msgs
            .iter()
            .map(|m| {
                librqbit_bencode::from_bytes::<librqbit_bencode::BencodeValueBorrowed<'_>>(m)
                    .expect("rqbit")
            })
            .collect();
        g.bench_function("librqbit-bencode", |b| {
            b.iter(|| {
                for v in &rq {
                    black_box(rqbit_encode(v));
                }
            })
        });
        let bt: Vec<_> = msgs
            .iter()
            .map(|m| bt_bencode::from_slice::<bt_bencode::Value>(m).expect("bt"))
            .collect();
        g.bench_function("bt_bencode", |b| {
            b.iter(|| {
                for v in &bt {
                    black_box(bt_bencode::to_vec(v).expect("bt"));
                }
            })
        });
        let bd: Vec<_> = msgs.iter().map(|m| bendy_decode(m)).collect();
        g.bench_function("bendy", |b| {
            b.iter(|| {
                for v in &bd {
                    black_box(bendy_encode(v));
                }
            })
        });
        let sb: Vec<_> = msgs
            .iter()
            .map(|m| serde_bencode::from_bytes::<serde_bencode::value::Value>(m).expect("sb"))
            .collect();
        g.bench_function("serde_bencode", |b| {
            b.iter(|| {
                for v in &sb {
                    black_box(serde_bencode::to_bytes(v).expect("sb"));
                }
            })
        });
        g.finish();
    }

    // Typed, borrowing: decode.
    {
        let mut g = c.benchmark_group(format!("{name}/typed/decode"));
        g.throughput(Throughput::Bytes(total as u64));
        g.sample_size(sample_size);
        let crates: [(&str, DecodeFn<()>); 5] = [
            ("rivulet", |m| {
                rivulet_bencode::from_bytes::<<T as TypedShape<'_>>::Shape>(m)
                    .ok()
                    .map(|v| drop(black_box(v)))
            }),
            ("librqbit-bencode", |m| {
                librqbit_bencode::from_bytes::<<T as TypedShape<'_>>::Shape>(m)
                    .ok()
                    .map(|v| drop(black_box(v)))
            }),
            ("bt_bencode", |m| {
                bt_bencode::from_slice::<<T as TypedShape<'_>>::Shape>(m)
                    .ok()
                    .map(|v| drop(black_box(v)))
            }),
            ("bendy", |m| {
                bendy::serde::from_bytes::<<T as TypedShape<'_>>::Shape>(m)
                    .ok()
                    .map(|v| drop(black_box(v)))
            }),
            ("serde_bencode", |m| {
                serde_bencode::from_bytes::<<T as TypedShape<'_>>::Shape>(m)
                    .ok()
                    .map(|v| drop(black_box(v)))
            }),
        ];
        for (crate_name, f) in crates {
            if f(&msgs[0]).is_none() {
                println!(
                    "{name}/typed/decode/{crate_name}: n/a (does not decode the borrowed typed shape)"
                );
                continue;
            }
            g.bench_function(BenchmarkId::from_parameter(crate_name), |b| {
                b.iter(|| {
                    for m in msgs {
                        black_box(f(black_box(m)));
                    }
                })
            });
        }
        g.finish();
    }

    // Typed: encode (structs decoded once with our decoder).
    {
        let mut g = c.benchmark_group(format!("{name}/typed/encode"));
        g.throughput(Throughput::Bytes(total as u64));
        g.sample_size(sample_size);
        let typed: Vec<<T as TypedShape<'_>>::Shape> = msgs
            .iter()
            .map(|m| rivulet_bencode::from_bytes(m).expect("typed"))
            .collect();
        // Our encoder must give back the input (canonical corpora, sorted fields); the
        // others are reported when they differ (bendy writes `Some(x)` as a list).
        let check = |crate_name: &str, out: Vec<u8>| {
            if crate_name == "rivulet" {
                assert!(out == msgs[0], "rivulet typed encode differs");
            } else if out != msgs[0] {
                println!("{name}/typed/encode/{crate_name}: output differs from the input");
            }
        };
        check("rivulet", rivulet_bencode::to_bytes(&typed[0]).expect("e"));
        check("rqbit", rqbit_encode(&typed[0]));
        check("bt", bt_bencode::to_vec(&typed[0]).expect("e"));
        check("bendy", bendy::serde::to_bytes(&typed[0]).expect("e"));
        check("sb", serde_bencode::to_bytes(&typed[0]).expect("e"));
        g.bench_function("rivulet", |b| {
            b.iter(|| {
                for v in &typed {
                    black_box(rivulet_bencode::to_bytes(v).expect("e"));
                }
            })
        });
        g.bench_function("librqbit-bencode", |b| {
            b.iter(|| {
                for v in &typed {
                    black_box(rqbit_encode(v));
                }
            })
        });
        g.bench_function("bt_bencode", |b| {
            b.iter(|| {
                for v in &typed {
                    black_box(bt_bencode::to_vec(v).expect("e"));
                }
            })
        });
        g.bench_function("bendy", |b| {
            b.iter(|| {
                for v in &typed {
                    black_box(bendy::serde::to_bytes(v).expect("e"));
                }
            })
        });
        g.bench_function("serde_bencode", |b| {
            b.iter(|| {
                for v in &typed {
                    black_box(serde_bencode::to_bytes(v).expect("e"));
                }
            })
        });
        g.finish();
    }
}

/// Names the borrowed typed shape of a corpus for any input lifetime.
trait TypedShape<'a> {
    type Shape: Serialize + Deserialize<'a>;
}
struct TorrentShape;
impl<'a> TypedShape<'a> for TorrentShape {
    type Shape = Torrent<'a>;
}
struct KrpcShape;
impl<'a> TypedShape<'a> for KrpcShape {
    type Shape = Krpc<'a>;
}

fn benches(c: &mut Criterion) {
    let single = vec![single_file_torrent()];
    corpus::<TorrentShape>(c, "single", &single, 50);
    let multi = vec![multi_file_torrent()];
    corpus::<TorrentShape>(c, "multi", &multi, 20);
    let dht = dht_responses();
    corpus::<KrpcShape>(c, "dht", &dht, 10);
}

criterion_group!(decode_benches, benches);
criterion_main!(decode_benches);
