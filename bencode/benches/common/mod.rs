//! The corpora and typed shapes shared by the decode benchmarks.

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
pub(crate) fn single_file_torrent() -> Vec<u8> {
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
pub(crate) fn multi_file_torrent() -> Vec<u8> {
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
pub(crate) fn dht_responses() -> Vec<Vec<u8>> {
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
pub(crate) struct Torrent<'a> {
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
pub(crate) struct Info<'a> {
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
pub(crate) struct File<'a> {
    length: i64,
    #[serde(borrow)]
    path: Vec<&'a str>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Krpc<'a> {
    #[serde(borrow)]
    r: Resp<'a>,
    #[serde(borrow, with = "serde_bytes")]
    t: &'a [u8],
    y: &'a str,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Resp<'a> {
    #[serde(borrow, with = "serde_bytes")]
    id: &'a [u8],
    #[serde(borrow, with = "serde_bytes")]
    nodes: &'a [u8],
    #[serde(borrow, with = "serde_bytes")]
    token: &'a [u8],
}
