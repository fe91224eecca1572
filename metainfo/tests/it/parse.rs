//! Parsing: real fixtures made by libtorrent 2.1.1, mktorrent 1.1 and transmission-create
//! (`tests/data/*.torrent`, expected values recorded from libtorrent's `torrent_info` in
//! `tests/data/expected.json`), round trips, and hand-crafted hostile torrents.

use std::path::{Component, Path};

use bencode::{Dict, List, Value};
use rivulet_metainfo::{
    InfoHash, LayoutMode, MetaVersion, MetainfoError, Torrent, safe_relative_path,
};
use serde_json::Value as Json;

fn data_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data"))
}

fn fixtures() -> Vec<(String, Vec<u8>, Json)> {
    let expected: Json =
        serde_json::from_slice(&std::fs::read(data_dir().join("expected.json")).unwrap()).unwrap();
    let mut out = Vec::new();
    for (name, exp) in expected.as_object().unwrap() {
        let bytes = std::fs::read(data_dir().join(name)).unwrap();
        out.push((name.clone(), bytes, exp.clone()));
    }
    assert!(out.len() >= 10, "{} fixtures", out.len());
    out
}

#[test]
fn fixtures_match_the_tools() {
    for (name, bytes, exp) in fixtures() {
        let t = Torrent::from_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let i = &t.info;
        assert_eq!(
            t.info_hash.v1().map(|h| h.to_hex()).as_deref(),
            exp["v1"].as_str(),
            "{name}"
        );
        assert_eq!(
            t.info_hash.v2().map(|h| h.to_hex()).as_deref(),
            exp["v2"].as_str(),
            "{name}"
        );
        assert_eq!(t.info_hash, i.info_hash(), "{name}");
        assert_eq!(i.name, exp["name"].as_str().unwrap(), "{name}");
        assert_eq!(
            i.piece_length,
            exp["piece_length"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            u64::from(i.piece_count()),
            exp["num_pieces"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(i.private, exp["private"].as_bool().unwrap(), "{name}");
        let want_version = match (exp["v1"].is_string(), exp["v2"].is_string()) {
            (true, false) => MetaVersion::V1,
            (false, true) => MetaVersion::V2,
            _ => MetaVersion::Hybrid,
        };
        assert_eq!(i.version, want_version, "{name}");

        // Files: libtorrent lists v2-only torrents with implicit padding; we list the tree.
        let lt_files: Vec<&Json> = exp["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| i.version != MetaVersion::V2 || !f["pad"].as_bool().unwrap())
            .collect();
        assert_eq!(i.files.len(), lt_files.len(), "{name}");
        for (f, lf) in i.files.iter().zip(lt_files) {
            let full = if i.single_file {
                f.display_path()
            } else {
                format!("{}/{}", i.name, f.display_path())
            };
            assert_eq!(full, lf["path"].as_str().unwrap(), "{name}");
            assert_eq!(f.length, lf["length"].as_u64().unwrap(), "{name} {full}");
            assert_eq!(f.offset, lf["offset"].as_u64().unwrap(), "{name} {full}");
            assert_eq!(
                f.is_padding(),
                lf["pad"].as_bool().unwrap(),
                "{name} {full}"
            );
            assert_eq!(f.safe_path(), Path::new(&full), "{name}");
            if i.version != MetaVersion::V1 && f.length > 0 && !f.is_padding() {
                let root = f.pieces_root.expect("v2 file has a root");
                if f.length > i.piece_length {
                    let layer = i.piece_layer(&root).expect("piece layer");
                    assert_eq!(layer.len() as u64, f.length.div_ceil(i.piece_length));
                }
            } else {
                assert_eq!(f.pieces_root, None);
            }
        }
        let total: u64 = i.files.iter().map(|f| f.length).sum();
        if i.version != MetaVersion::V2 {
            assert_eq!(total, exp["total_size"].as_u64().unwrap(), "{name}");
            assert_eq!(i.pieces.len(), i.piece_count() as usize);
            assert_eq!(i.layout_mode(), LayoutMode::V1);
        } else {
            assert!(i.pieces.is_empty());
            assert_eq!(i.layout_mode(), LayoutMode::V2);
        }

        // Trackers, as (url, tier).
        let mut ours = Vec::new();
        for (tier, urls) in t.announce_tiers().iter().enumerate() {
            for u in urls {
                ours.push((u.clone(), tier as u64));
            }
        }
        let theirs: Vec<(String, u64)> = exp["trackers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_str().unwrap().to_owned(), p[1].as_u64().unwrap()))
            .collect();
        assert_eq!(ours, theirs, "{name}");
        let seeds: Vec<&str> = exp["web_seeds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(t.web_seeds, seeds, "{name}");

        // Layout: every piece is covered exactly by its spans.
        let l = i.layout();
        for p in 0..l.piece_count() {
            let sum: u64 = l.spans(p, 0, u64::MAX).map(|s| s.len).sum();
            assert_eq!(sum, l.piece_len(p), "{name} piece {p}");
            assert!(sum > 0);
        }
    }
}

#[test]
fn fixtures_round_trip_byte_for_byte() {
    for (name, bytes, _) in fixtures() {
        let t = Torrent::from_bytes(&bytes).unwrap();
        assert_eq!(t.to_bytes(), bytes, "{name}");
        assert_eq!(t.as_bytes(), &bytes[..], "{name}");
        // The info dictionary alone gives the same info.
        let info = rivulet_metainfo::Info::from_bytes(t.info.raw()).unwrap();
        assert_eq!(info.info_hash(), t.info_hash, "{name}");
        assert_eq!(info.files, t.info.files, "{name}");
    }
}

#[test]
fn fixture_metadata() {
    let t = Torrent::from_file(data_dir().join("mktorrent_multi.torrent")).unwrap();
    assert_eq!(t.comment.as_deref(), Some("mktorrent fixture"));
    assert!(t.created_by.as_deref().unwrap().starts_with("mktorrent"));
    assert_eq!(t.creation_date, None);
    assert!(t.info.private);
    assert_eq!(
        t.announce.as_deref(),
        Some("http://127.0.0.1:6969/announce")
    );
    assert_eq!(t.announce_list.len(), 2);
    let t = Torrent::from_file(data_dir().join("lt_v1_multi.torrent")).unwrap();
    assert_eq!(t.creation_date, Some(1_700_000_000));
    assert_eq!(t.comment.as_deref(), Some("v1 multi"));
    let t = Torrent::from_file(data_dir().join("lt_v2_single.torrent")).unwrap();
    assert!(t.info.single_file);
    assert_eq!(t.info.meta_version, Some(2));
    assert_eq!(t.info.piece_layers.len(), 1);
    for name in ["lt_v1_attrs.torrent", "lt_hybrid_attrs.torrent"] {
        let t = Torrent::from_file(data_dir().join(name)).unwrap();
        let link = t.info.files.iter().find(|f| f.path == ["link"]).unwrap();
        assert!(link.attr.symlink && link.attr.executable, "{name}");
        assert_eq!(link.length, 0);
        assert_eq!(
            link.symlink_path.as_deref(),
            Some(&["bin".to_owned(), "run.sh".to_owned()][..])
        );
        let run = t
            .info
            .files
            .iter()
            .find(|f| f.path == ["bin", "run.sh"])
            .unwrap();
        assert!(run.attr.executable && !run.attr.symlink, "{name}");
    }
    assert!(matches!(
        Torrent::from_file(data_dir().join("no-such.torrent")),
        Err(MetainfoError::Io { .. })
    ));
}

// ---- hand-crafted torrents ----

/// A bencode dictionary of `entries` (keys as given; the encoder sorts them).
pub(crate) fn dict<'a>(entries: Vec<(&'a str, Value<'a>)>) -> Value<'a> {
    let mut d = Dict::new();
    for (k, v) in entries {
        d.insert(k.as_bytes(), v);
    }
    Value::Dict(d)
}

/// A bencode list of `items`.
pub(crate) fn list<'a>(items: Vec<Value<'a>>) -> Value<'a> {
    Value::List(List::from(items))
}

fn strs<'a>(items: &[&'a [u8]]) -> Value<'a> {
    list(items.iter().map(|s| Value::Bytes(s)).collect())
}

fn v1_multi<'a>(files: Vec<(&[&'a [u8]], i64)>, pieces: &'a [u8]) -> Vec<u8> {
    let fl = files
        .into_iter()
        .map(|(p, l)| dict(vec![("length", Value::Int(l)), ("path", strs(p))]))
        .collect();
    dict(vec![
        ("announce", "http://127.0.0.1/a".into()),
        (
            "info",
            dict(vec![
                ("files", list(fl)),
                ("name", "t".into()),
                ("piece length", Value::Int(16384)),
                ("pieces", Value::Bytes(pieces)),
            ]),
        ),
    ])
    .to_bytes()
}

#[test]
fn hostile_paths_are_rewritten() {
    let h = [0u8; 20];
    let bytes = v1_multi(
        vec![
            (&[b"..", b"..", b"etc", b"passwd"], 1),
            (&[b"/etc/passwd"], 1),
            (&[b"CON"], 1),
            (&[b"a\0b", b"nul.txt"], 1),
            (&[b"C:", b"Windows"], 1),
            (&[b".", b"", b"x"], 1),
            (&[b"x"], 1),
            (&[b"dir. "], 1),
        ],
        &h,
    );
    let t = Torrent::from_bytes(&bytes).unwrap();
    let got: Vec<&str> = t
        .info
        .files
        .iter()
        .map(|f| f.safe_path().to_str().unwrap())
        .collect();
    assert_eq!(
        got,
        [
            "t/_/_/etc/passwd",
            "t/_etc_passwd",
            "t/_CON",
            "t/a_b/_nul.txt",
            "t/C_/Windows",
            "t/x",
            "t/x~1",
            "t/dir"
        ]
    );
    // The components as given are kept.
    assert_eq!(t.info.files[0].path, ["..", "..", "etc", "passwd"]);
    let base = Path::new("/downloads");
    for f in &t.info.files {
        assert!(
            f.safe_path()
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        );
        assert!(base.join(f.safe_path()).starts_with(base));
    }
    // A hostile name.
    for (name, want) in [("..", "_"), ("", "_"), ("/", "_"), ("aux", "_aux")] {
        let b = dict(vec![(
            "info",
            dict(vec![
                ("length", Value::Int(1)),
                ("name", name.into()),
                ("piece length", Value::Int(16384)),
                ("pieces", Value::Bytes(&h)),
            ]),
        )])
        .to_bytes();
        let t = Torrent::from_bytes(&b).unwrap();
        assert_eq!(t.info.files[0].safe_path(), Path::new(want), "{name:?}");
    }
    assert_eq!(safe_relative_path(["a", "..", "b"]), Path::new("a/_/b"));
}

#[test]
fn errors_name_the_key_path() {
    let h = [0u8; 20];
    // A path component that is not a string.
    let fl = list(vec![
        dict(vec![("length", Value::Int(1)), ("path", strs(&[b"a"]))]),
        dict(vec![
            ("length", Value::Int(1)),
            ("path", list(vec!["a".into(), Value::Int(3)])),
        ]),
    ]);
    let b = dict(vec![(
        "info",
        dict(vec![
            ("files", fl),
            ("name", "t".into()),
            ("piece length", Value::Int(16384)),
            ("pieces", Value::Bytes(&h)),
        ]),
    )])
    .to_bytes();
    let e = Torrent::from_bytes(&b).unwrap_err();
    assert_eq!(
        e.to_string(),
        "info.files[1].path[1]: expected byte string, found integer"
    );

    // pieces of the wrong length.
    let e = Torrent::from_bytes(&v1_multi(vec![(&[b"a"], 16385)], &h)).unwrap_err();
    assert!(
        matches!(
            e,
            MetainfoError::PiecesLength {
                len: 20,
                expected: 40,
                count: 2
            }
        ),
        "{e}"
    );
    // Negative length.
    let e = Torrent::from_bytes(&v1_multi(vec![(&[b"a"], -1)], &h)).unwrap_err();
    assert_eq!(e.to_string(), "info.files[0].length: negative length -1");
    // Bencode error with its offset.
    let e = Torrent::from_bytes(b"d4:infod4:name").unwrap_err();
    assert!(
        matches!(&e, MetainfoError::Bencode(d) if d.offset == 14),
        "{e:?}"
    );
    // Not a dictionary, no info.
    assert!(Torrent::from_bytes(b"i3e").is_err());
    assert!(matches!(
        Torrent::from_bytes(b"de").unwrap_err(),
        MetainfoError::Missing { path } if path == "info"
    ));
    // Bad piece length.
    let b = dict(vec![(
        "info",
        dict(vec![
            ("length", Value::Int(1)),
            ("name", "t".into()),
            ("piece length", Value::Int(0)),
            ("pieces", Value::Bytes(&h)),
        ]),
    )])
    .to_bytes();
    assert!(matches!(
        Torrent::from_bytes(&b).unwrap_err(),
        MetainfoError::PieceLength { value: 0, .. }
    ));
}

#[test]
fn lenient_outer_structure_hashes_raw_info() {
    // Unsorted keys at the top level and in info; the hash is over the bytes as given.
    let info =
        b"d4:name1:t6:lengthi1e12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaa3:foo3:bare";
    let mut t = b"d8:announce3:url4:info".to_vec();
    t.extend_from_slice(info);
    t.extend_from_slice(b"7:comment2:hie");
    let parsed = Torrent::from_bytes(&t).unwrap();
    use sha1::Digest;
    let want: [u8; 20] = sha1::Sha1::digest(info).into();
    assert_eq!(
        parsed.info_hash,
        InfoHash::V1(rivulet_metainfo::InfoHashV1(want))
    );
    assert_eq!(parsed.to_bytes(), t);
    assert_eq!(parsed.info.extra, [(b"foo".to_vec(), b"3:bar".to_vec())]);
    assert_eq!(parsed.comment.as_deref(), Some("hi"));
    assert_eq!(parsed.announce_tiers(), [["url"]]);
}

/// Rebuilds `v` with the value at `path` replaced (or removed if `new` is `None`).
fn edit<'a>(v: &Value<'a>, path: &[&'a [u8]], new: Option<Value<'a>>) -> Value<'a> {
    let Value::Dict(d) = v else {
        panic!("not a dict")
    };
    let mut out = Dict::new();
    let mut new = Some(new);
    for (k, val) in d.iter() {
        if k == path[0] {
            if path.len() == 1 {
                if let Some(Some(n)) = new.take() {
                    out.insert(k, n);
                }
            } else {
                out.insert(k, edit(val, &path[1..], new.take().unwrap()));
            }
        } else {
            out.insert(k, val.clone());
        }
    }
    if let Some(Some(n)) = new {
        out.insert(path[0], n);
    }
    Value::Dict(out)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(data_dir().join(name)).unwrap()
}

#[test]
fn v2_validation() {
    let bytes = fixture("lt_v2_single.torrent");
    let v = bencode::decode(&bytes).unwrap();
    // Missing piece layers.
    let b = edit(&v, &[b"piece layers"], None).to_bytes();
    assert!(
        matches!(Torrent::from_bytes(&b).unwrap_err(), MetainfoError::Missing { path } if path == "piece layers")
    );
    // A tampered layer.
    let layers = v
        .as_dict()
        .unwrap()
        .get(b"piece layers")
        .unwrap()
        .as_dict()
        .unwrap();
    let (root, layer) = layers.iter().next().unwrap();
    let mut bad = layer.as_bytes().unwrap().to_vec();
    bad[0] ^= 1;
    let b = edit(&v, &[b"piece layers", root], Some(Value::Bytes(&bad))).to_bytes();
    let e = Torrent::from_bytes(&b).unwrap_err();
    assert!(
        matches!(&e, MetainfoError::PieceLayer { reason, .. } if reason.contains("merkle root")),
        "{e}"
    );
    // A layer of the wrong size.
    let short = &layer.as_bytes().unwrap()[..32];
    let b = edit(&v, &[b"piece layers", root], Some(Value::Bytes(short))).to_bytes();
    assert!(matches!(
        Torrent::from_bytes(&b).unwrap_err(),
        MetainfoError::PieceLayer { .. }
    ));
    // Piece length not a power of two.
    let b = edit(&v, &[b"info", b"piece length"], Some(Value::Int(20000))).to_bytes();
    assert!(matches!(
        Torrent::from_bytes(&b).unwrap_err(),
        MetainfoError::PieceLength { value: 20000, .. }
    ));
    let b = edit(&v, &[b"info", b"piece length"], Some(Value::Int(8192))).to_bytes();
    assert!(Torrent::from_bytes(&b).is_err());
    // pieces root of the wrong size.
    let b = edit(
        &v,
        &[b"info", b"file tree", b"big.bin", b"", b"pieces root"],
        Some(Value::Bytes(b"short")),
    )
    .to_bytes();
    let e = Torrent::from_bytes(&b).unwrap_err();
    assert_eq!(
        e.to_string(),
        "info.file tree.big.bin.pieces root: 5 bytes, expected 32"
    );
    // Unknown meta version.
    let b = edit(&v, &[b"info", b"meta version"], Some(Value::Int(3))).to_bytes();
    assert!(matches!(
        Torrent::from_bytes(&b).unwrap_err(),
        MetainfoError::UnsupportedVersion(3)
    ));
}

#[test]
fn hybrid_consistency() {
    let bytes = fixture("lt_hybrid_multi.torrent");
    let v = bencode::decode(&bytes).unwrap();
    let info = v
        .as_dict()
        .unwrap()
        .get(b"info")
        .unwrap()
        .as_dict()
        .unwrap();
    let files = info.get(b"files").unwrap().as_list().unwrap();
    // Drop the first pad file: the next file is no longer piece aligned, and the v1
    // pieces no longer match either; remove a v1 file: the tree has one more.
    let without = |skip: usize| -> Vec<u8> {
        let l: Vec<Value<'_>> = files
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, f)| f.clone())
            .collect();
        edit(&v, &[b"info", b"files"], Some(list(l))).to_bytes()
    };
    let e = Torrent::from_bytes(&without(1)).unwrap_err();
    assert!(
        matches!(&e, MetainfoError::HybridMismatch { path, reason } if path == "info.files[1]" && reason.contains("piece boundary")),
        "{e}"
    );
    let e = Torrent::from_bytes(&without(7)).unwrap_err();
    assert!(
        matches!(&e, MetainfoError::HybridMismatch { reason, .. } if reason.contains("not in the v1")),
        "{e}"
    );
    // A renamed v1 file.
    let mut l: Vec<Value<'_>> = files.iter().cloned().collect();
    l[0] = edit(&l[0], &[b"path"], Some(strs(&[b"a", b"b", b"other.dat"])));
    let b = edit(&v, &[b"info", b"files"], Some(list(l))).to_bytes();
    let e = Torrent::from_bytes(&b).unwrap_err();
    assert!(
        matches!(&e, MetainfoError::HybridMismatch { path, .. } if path == "info.files[0]"),
        "{e}"
    );
}

mod mutations {
    use super::*;
    use proptest::prelude::*;

    fn check(data: &[u8]) {
        if let Ok(t) = Torrent::from_bytes(data) {
            for f in &t.info.files {
                assert!(
                    f.safe_path()
                        .components()
                        .all(|c| matches!(c, Component::Normal(_)))
                );
            }
            let l = t.info.layout();
            for p in 0..l.piece_count().min(1 << 12) {
                let sum: u64 = l.spans(p, 0, u64::MAX).map(|s| s.len).sum();
                assert_eq!(sum, l.piece_len(p));
            }
            assert!(data.starts_with(t.as_bytes()));
        }
    }

    proptest! {
        #[test]
        fn mutated_fixtures_never_panic(
            which in 0usize..64,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let all = fixtures();
            let mut data = all[which % all.len()].1.clone();
            for (i, b) in edits {
                let i = i.index(data.len());
                data[i] = b;
            }
            if truncate {
                data.truncate(cut.index(data.len() + 1));
            }
            check(&data);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            check(&data);
        }
    }
}

#[test]
fn attributes_symlinks_and_metadata() {
    let h = [0u8; 20];
    let file = |len: i64,
                path: &[&'static [u8]],
                attr: Option<&'static str>,
                link: Option<&[&'static [u8]]>| {
        let mut e = vec![("length", Value::Int(len)), ("path", strs(path))];
        if let Some(a) = attr {
            e.push(("attr", a.into()));
        }
        if let Some(l) = link {
            e.push(("symlink path", strs(l)));
        }
        dict(e)
    };
    let b = dict(vec![
        ("url-list", "http://127.0.0.1/seed/".into()),
        (
            "nodes",
            list(vec![list(vec!["127.0.0.1".into(), Value::Int(6881)])]),
        ),
        (
            "announce-list",
            list(vec![
                strs(&[b"http://a/", b"http://b/"]),
                list(vec![]),
                strs(&[b"udp://c:1"]),
            ]),
        ),
        ("x-custom", list(vec![Value::Int(1)])),
        ("encoding", "UTF-8".into()),
        (
            "info",
            dict(vec![
                (
                    "files",
                    list(vec![
                        file(10, &[b"bin", b"run.sh"], Some("x"), None),
                        file(16368, &[b".pad", b"16368"], Some("p"), None),
                        file(0, &[b"link"], Some("l"), Some(&[b"bin", b"run.sh"])),
                        file(5, &[b"_____padding_file_0"], None, None),
                        file(1, &[b".hidden"], Some("hx?"), None),
                    ]),
                ),
                ("name", "t".into()),
                ("piece length", Value::Int(16384)),
                ("pieces", Value::Bytes(&h)),
                ("private", Value::Int(1)),
                ("source", "SRC".into()),
            ]),
        ),
    ])
    .to_bytes();
    let t = Torrent::from_bytes(&b).unwrap();
    let f = &t.info.files;
    assert!(f[0].attr.executable && !f[0].is_padding());
    assert!(f[1].is_padding());
    assert!(f[2].attr.symlink);
    assert_eq!(
        f[2].symlink_path.as_deref(),
        Some(&["bin".to_owned(), "run.sh".to_owned()][..])
    );
    assert!(f[3].is_padding());
    assert!(f[4].attr.hidden && f[4].attr.executable);
    assert_eq!(t.info.content_length(), 11);
    assert_eq!(t.info.total_length(), 16384);
    assert!(t.info.private);
    assert_eq!(t.web_seeds, ["http://127.0.0.1/seed/"]);
    assert_eq!(t.nodes, [("127.0.0.1".to_owned(), 6881)]);
    assert_eq!(
        t.announce_tiers(),
        vec![vec!["http://a/", "http://b/"], vec!["udp://c:1"]]
    );
    assert_eq!(t.encoding.as_deref(), Some("UTF-8"));
    assert_eq!(t.extra, [(b"x-custom".to_vec(), b"li1ee".to_vec())]);
    assert_eq!(t.info.extra, [(b"source".to_vec(), b"3:SRC".to_vec())]);
    assert_eq!(t.to_bytes(), b);
    // Layout: the padding spans are flagged.
    let spans: Vec<_> = t.info.layout().spans(0, 0, u64::MAX).collect();
    let flags: Vec<(usize, bool)> = spans.iter().map(|s| (s.file_index, s.padding)).collect();
    assert_eq!(flags, [(0, false), (1, true), (3, true), (4, false)]);
}

#[test]
fn file_tree_expansion_is_bounded() {
    // A long directory name shared by many files: small input, huge flattened paths.
    let long = vec![b'd'; 60_000];
    let root = [7u8; 32];
    let mut leaves = Dict::new();
    let names: Vec<String> = (0..20_000).map(|i| format!("{i}")).collect();
    for n in &names {
        leaves.insert(
            n.as_bytes(),
            dict(vec![(
                "",
                dict(vec![
                    ("length", Value::Int(1)),
                    ("pieces root", Value::Bytes(&root)),
                ]),
            )]),
        );
    }
    let mut tree = Dict::new();
    tree.insert(&long, Value::Dict(leaves));
    let b = dict(vec![(
        "info",
        dict(vec![
            ("file tree", Value::Dict(tree)),
            ("meta version", Value::Int(2)),
            ("name", "t".into()),
            ("piece length", Value::Int(16384)),
        ]),
    )])
    .to_bytes();
    assert!(b.len() < 2_000_000);
    let e = Torrent::from_bytes(&b).unwrap_err();
    assert!(e.to_string().contains("resource limit"), "{e}");
}
