//! Resource limits: hostile info dictionaries that claim absurd sizes in a few bytes
//! (v1, v2, hybrid) fail with [`MetainfoError::OverLimit`] naming the limit, and do so
//! whether they come as a .torrent file or as a bare info dictionary (BEP 9).

use crate::parse::{dict, list};
use bencode::{Dict, Value};
use rivulet_metainfo::{
    DEFAULT_MAX_PATH_DEPTH, DEFAULT_MAX_PIECES, Info, Limit, Limits, MetainfoError, Torrent,
};

const ROOT: [u8; 32] = [7; 32];
const SHA1: [u8; 20] = [1; 20];

/// A v2 file node.
fn v2_file(length: i64) -> Value<'static> {
    dict(vec![(
        "",
        dict(vec![
            ("length", Value::Int(length)),
            ("pieces root", Value::Bytes(&ROOT)),
        ]),
    )])
}

/// A v2 single-file info dictionary.
fn v2_info(length: i64, piece_length: i64) -> Value<'static> {
    let mut tree = Dict::new();
    tree.insert(b"big", v2_file(length));
    dict(vec![
        ("file tree", Value::Dict(tree)),
        ("meta version", Value::Int(2)),
        ("name", "big".into()),
        ("piece length", Value::Int(piece_length)),
    ])
}

/// A hybrid single-file info dictionary (one v1 piece hash: the check of `pieces`
/// comes after the limits).
fn hybrid_info(length: i64, piece_length: i64) -> Value<'static> {
    let Value::Dict(mut d) = v2_info(length, piece_length) else {
        unreachable!()
    };
    d.insert(b"length", Value::Int(length));
    d.insert(b"pieces", Value::Bytes(&SHA1));
    Value::Dict(d)
}

fn v1_info(length: i64, piece_length: i64) -> Value<'static> {
    dict(vec![
        ("length", Value::Int(length)),
        ("name", "big".into()),
        ("piece length", Value::Int(piece_length)),
        ("pieces", Value::Bytes(&SHA1)),
    ])
}

fn torrent(info: Value<'_>) -> Vec<u8> {
    dict(vec![("info", info)]).to_bytes()
}

/// Both entry points (a .torrent and a bare info dictionary) fail the same way.
fn both(info: Value<'_>) -> (MetainfoError, MetainfoError) {
    let bare = info.to_bytes();
    let t = Torrent::from_bytes(&torrent(info)).expect_err("the torrent is over a limit");
    let i = Info::from_bytes(&bare).expect_err("the info dictionary is over a limit");
    (t, i)
}

fn assert_over(e: &MetainfoError, want: Limit, value: u64, max: u64, path: &str) {
    match e {
        MetainfoError::OverLimit {
            limit,
            value: v,
            max: m,
            path: p,
        } => {
            assert_eq!(
                (*limit, *v, *m, p.as_str()),
                (want, value, max, path),
                "{e}"
            );
        }
        other => panic!("expected {want} over its limit, got {other:?}"),
    }
}

#[test]
fn a_v2_file_of_a_petabyte_in_16_kib_pieces_is_over_the_piece_limit() {
    // 2^50 bytes: 2^36 pieces. And 2^40 bytes: 2^26 pieces, which fit a u32 and
    // used to be accepted (a picker of 64 million pieces before any data came).
    for length in [1i64 << 50, 1 << 40] {
        let pieces = (length as u64) >> 14;
        for e in <[_; 2]>::from(both(v2_info(length, 16384))) {
            assert_over(&e, Limit::Pieces, pieces, DEFAULT_MAX_PIECES.into(), "info");
            assert_eq!(
                e.to_string(),
                format!("info: piece count {pieces} is over the limit of 2097152")
            );
        }
    }
    // At the limit it parses (without piece layers, as fetched from peers).
    let at = i64::from(DEFAULT_MAX_PIECES) << 14;
    let info = Info::from_bytes(&v2_info(at, 16384).to_bytes()).unwrap();
    assert_eq!(info.piece_count(), DEFAULT_MAX_PIECES);
}

#[test]
fn many_small_v2_files_add_up_to_the_piece_limit() {
    // Each non-empty v2 file takes at least one piece of its own.
    let limits = {
        let mut l = Limits::default();
        l.max_pieces = 10;
        l
    };
    let mut tree = Dict::new();
    let names: Vec<String> = (0..11).map(|i| format!("f{i:02}")).collect();
    for n in &names {
        tree.insert(n.as_bytes(), v2_file(1));
    }
    let info = dict(vec![
        ("file tree", Value::Dict(tree)),
        ("meta version", Value::Int(2)),
        ("name", "d".into()),
        ("piece length", Value::Int(16384)),
    ]);
    let e = Info::from_bytes_with_limits(&info.to_bytes(), &limits).unwrap_err();
    assert_over(&e, Limit::Pieces, 11, 10, "info");
    assert!(Info::from_bytes(&info.to_bytes()).is_ok());
}

#[test]
fn v1_and_hybrid_torrents_claiming_too_many_pieces_fail_before_their_hashes_are_checked() {
    let length = (i64::from(DEFAULT_MAX_PIECES) + 1) << 14;
    let pieces = u64::from(DEFAULT_MAX_PIECES) + 1;
    for info in [v1_info(length, 16384), hybrid_info(length, 16384)] {
        for e in <[_; 2]>::from(both(info)) {
            assert_over(&e, Limit::Pieces, pieces, DEFAULT_MAX_PIECES.into(), "info");
        }
    }
    // Within the limit, the one piece hash given is wrong (the old error).
    let e = Torrent::from_bytes(&torrent(v1_info(1 << 20, 16384))).unwrap_err();
    assert!(matches!(e, MetainfoError::PiecesLength { .. }), "{e}");
}

#[test]
fn a_huge_piece_length_is_over_its_limit() {
    for info in [v1_info(1 << 31, 1 << 31), v2_info(1 << 31, 1 << 31)] {
        for e in <[_; 2]>::from(both(info)) {
            assert_over(
                &e,
                Limit::PieceLength,
                1 << 31,
                512 << 20,
                "info.piece length",
            );
        }
    }
}

#[test]
fn too_many_files_fail_before_they_are_collected() {
    let limits = {
        let mut l = Limits::default();
        l.max_files = 3;
        l
    };
    // v1: the list's length is known at once.
    let files = (0..4)
        .map(|_| {
            dict(vec![
                ("length", Value::Int(1)),
                ("path", list(vec!["a".into()])),
            ])
        })
        .collect();
    let v1 = dict(vec![
        ("files", list(files)),
        ("name", "d".into()),
        ("piece length", Value::Int(16384)),
        ("pieces", Value::Bytes(&SHA1)),
    ]);
    let e = Info::from_bytes_with_limits(&v1.to_bytes(), &limits).unwrap_err();
    assert_over(&e, Limit::Files, 4, 3, "info.files");
    let e = Torrent::from_bytes_with_limits(&torrent(v1), &limits).unwrap_err();
    assert_over(&e, Limit::Files, 4, 3, "info.files");
    // v2: the walk stops at the first file over the limit.
    let mut tree = Dict::new();
    for n in [&b"a"[..], b"b", b"c", b"d", b"e"] {
        tree.insert(n, v2_file(0));
    }
    let v2 = dict(vec![
        ("file tree", Value::Dict(tree)),
        ("meta version", Value::Int(2)),
        ("name", "d".into()),
        ("piece length", Value::Int(16384)),
    ]);
    let e = Info::from_bytes_with_limits(&v2.to_bytes(), &limits).unwrap_err();
    assert_over(&e, Limit::Files, 4, 3, "info.file tree.d");
}

#[test]
fn deep_paths_are_over_the_depth_limit() {
    let deep = DEFAULT_MAX_PATH_DEPTH + 1;
    // v1: a path of 101 components.
    let comps: Vec<Value<'_>> = (0..deep).map(|_| "x".into()).collect();
    let v1 = dict(vec![
        (
            "files",
            list(vec![dict(vec![
                ("length", Value::Int(1)),
                ("path", list(comps.clone())),
            ])]),
        ),
        ("name", "d".into()),
        ("piece length", Value::Int(16384)),
        ("pieces", Value::Bytes(&SHA1)),
    ]);
    for e in <[_; 2]>::from(both(v1)) {
        assert_over(
            &e,
            Limit::PathDepth,
            deep as u64,
            DEFAULT_MAX_PATH_DEPTH as u64,
            "info.files[0].path",
        );
    }
    // A symbolic link's target too.
    let link = dict(vec![
        ("attr", "l".into()),
        ("length", Value::Int(0)),
        ("name", "d".into()),
        ("piece length", Value::Int(16384)),
        ("pieces", Value::Bytes(b"")),
        ("symlink path", list(comps)),
    ]);
    for e in <[_; 2]>::from(both(link)) {
        assert_over(
            &e,
            Limit::PathDepth,
            deep as u64,
            DEFAULT_MAX_PATH_DEPTH as u64,
            "info.symlink path",
        );
    }
    // v2: a tree 101 directories deep.
    let mut node = v2_file(1);
    for _ in 1..deep {
        let mut d = Dict::new();
        d.insert(b"x", node);
        node = Value::Dict(d);
    }
    let mut tree = Dict::new();
    tree.insert(b"x", node);
    let v2 = dict(vec![
        ("file tree", Value::Dict(tree)),
        ("meta version", Value::Int(2)),
        ("name", "d".into()),
        ("piece length", Value::Int(16384)),
    ]);
    let path = format!("info.file tree.{}", vec!["x"; deep].join("/"));
    for e in <[_; 2]>::from(both(v2)) {
        assert_over(
            &e,
            Limit::PathDepth,
            deep as u64,
            DEFAULT_MAX_PATH_DEPTH as u64,
            &path,
        );
    }
}
