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

// ---------------------------------------------------------------- corpora

/// A small deterministic generator (xorshift64*), so the corpora are the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn word(&mut self, min: usize, max: usize) -> String {
        let n = min + self.below((max - min + 1) as u64) as usize;
        (0..n)
            .map(|_| (b'a' + self.below(26) as u8) as char)
            .collect()
    }
}

fn bstr(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}
fn bint(out: &mut Vec<u8>, i: i64) {
    out.push(b'i');
    out.extend_from_slice(i.to_string().as_bytes());
    out.push(b'e');
}

fn torrent_head(out: &mut Vec<u8>) {
    out.push(b'd');
    bstr(out, b"announce");
    bstr(out, b"http://tracker.example.org:6969/announce");
    bstr(out, b"announce-list");
    out.extend_from_slice(b"ll");
    bstr(out, b"http://tracker.example.org:6969/announce");
    out.extend_from_slice(b"el");
    bstr(out, b"udp://tracker.example.net:1337/announce");
    out.extend_from_slice(b"ee");
    bstr(out, b"comment");
    bstr(out, b"generated for the rivulet benchmarks");
    bstr(out, b"created by");
    bstr(out, b"rivulet/0.1");
    bstr(out, b"creation date");
    bint(out, 1_700_000_000);
}

/// (a) A single-file torrent: 4 GiB in 256 KiB pieces.
fn single_file_torrent() -> Vec<u8> {
    let mut rng = Rng(0x5eed_0001);
    let mut out = Vec::new();
    torrent_head(&mut out);
    bstr(&mut out, b"info");
    out.push(b'd');
    bstr(&mut out, b"length");
    bint(&mut out, 4 << 30);
    bstr(&mut out, b"name");
    bstr(&mut out, b"ubuntu-24.04-desktop-amd64.iso");
    bstr(&mut out, b"piece length");
    bint(&mut out, 256 << 10);
    bstr(&mut out, b"pieces");
    bstr(&mut out, &rng.bytes(16384 * 20));
    out.extend_from_slice(b"ee");
    out
}

/// (b) A 10,000-file torrent.
fn multi_file_torrent() -> Vec<u8> {
    let mut rng = Rng(0x5eed_0002);
    let mut out = Vec::new();
    torrent_head(&mut out);
    bstr(&mut out, b"info");
    out.push(b'd');
    bstr(&mut out, b"files");
    out.push(b'l');
    let mut total: i64 = 0;
    for _ in 0..10_000 {
        let len = rng.below(1 << 24) as i64 + 1;
        total += len;
        out.push(b'd');
        bstr(&mut out, b"length");
        bint(&mut out, len);
        bstr(&mut out, b"path");
        out.push(b'l');
        for _ in 0..2 + rng.below(2) {
            bstr(&mut out, rng.word(4, 14).as_bytes());
        }
        out.extend_from_slice(b"ee");
    }
    out.push(b'e');
    bstr(&mut out, b"name");
    bstr(&mut out, b"a big collection");
    bstr(&mut out, b"piece length");
    bint(&mut out, 1 << 20);
    bstr(&mut out, b"pieces");
    let pieces = (total + (1 << 20) - 1) >> 20;
    let pieces = pieces.min(55_000) as usize;
    bstr(&mut out, &rng.bytes(pieces * 20));
    out.extend_from_slice(b"ee");
    out
}

/// (c) 100,000 KRPC get_peers responses.
fn dht_responses() -> Vec<Vec<u8>> {
    let mut rng = Rng(0x5eed_0003);
    (0..100_000)
        .map(|_| {
            let mut m = Vec::with_capacity(300);
            m.extend_from_slice(b"d1:rd2:id20:");
            m.extend_from_slice(&rng.bytes(20));
            m.extend_from_slice(b"5:nodes208:");
            m.extend_from_slice(&rng.bytes(208));
            m.extend_from_slice(b"5:token8:");
            m.extend_from_slice(&rng.bytes(8));
            m.extend_from_slice(b"e1:t2:");
            m.extend_from_slice(&rng.bytes(2));
            m.extend_from_slice(b"1:y1:re");
            m
        })
        .collect()
}

// ---------------------------------------------------------------- typed shapes

#[derive(Serialize, Deserialize)]
struct Torrent<'a> {
    announce: &'a str,
    #[serde(
        rename = "announce-list",
        borrow,
        default,
        skip_serializing_if = "Option::is_none"
    )]
    announce_list: Option<Vec<Vec<&'a str>>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    comment: Option<&'a str>,
    #[serde(
        rename = "created by",
        borrow,
        default,
        skip_serializing_if = "Option::is_none"
    )]
    created_by: Option<&'a str>,
    #[serde(
        rename = "creation date",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    creation_date: Option<i64>,
    #[serde(borrow)]
    info: Info<'a>,
}

#[derive(Serialize, Deserialize)]
struct Info<'a> {
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    files: Option<Vec<File<'a>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    length: Option<i64>,
    name: &'a str,
    #[serde(rename = "piece length")]
    piece_length: i64,
    #[serde(borrow, with = "serde_bytes")]
    pieces: &'a [u8],
}

#[derive(Serialize, Deserialize)]
struct File<'a> {
    length: i64,
    #[serde(borrow)]
    path: Vec<&'a str>,
}

#[derive(Serialize, Deserialize)]
struct Krpc<'a> {
    #[serde(borrow)]
    r: Resp<'a>,
    #[serde(borrow, with = "serde_bytes")]
    t: &'a [u8],
    y: &'a str,
}

#[derive(Serialize, Deserialize)]
struct Resp<'a> {
    #[serde(borrow, with = "serde_bytes")]
    id: &'a [u8],
    #[serde(borrow, with = "serde_bytes")]
    nodes: &'a [u8],
    #[serde(borrow, with = "serde_bytes")]
    token: &'a [u8],
}

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
