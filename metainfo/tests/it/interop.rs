//! Interop with real tools: torrents rivulet makes load in libtorrent with the same info
//! hashes and libtorrent finds the content complete (so the piece hashes are right too);
//! torrents libtorrent, transmission-create, mktorrent and npm create-torrent make parse
//! here with the info hash the tool reports.
//!
//! libtorrent comes from `$RIVULET_PYTHON` (a python with `import libtorrent`), else
//! `.interop/venv/bin/python` under the workspace root; without either these tests print
//! `SKIP:` and pass. npm create-torrent is used when `$RIVULET_NODE_MODULES` points at a
//! `node_modules` holding it.

use std::path::{Path, PathBuf};
use std::process::Command;

use rivulet_metainfo::{InfoHash, Torrent, TorrentBuilder, Version, verify};
use serde_json::Value as Json;

fn helper_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/lt_helper.py")
}

/// The python with libtorrent, or `None` (after printing why) to skip.
fn python(test: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RIVULET_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let fallback = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.interop/venv/bin/python");
    if fallback.exists() {
        return Some(fallback);
    }
    eprintln!(
        "SKIP: {test}: set RIVULET_PYTHON to a python with libtorrent (or create .interop/venv)"
    );
    None
}

fn lt(py: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Json {
    let mut cmd = Command::new(py);
    cmd.arg(helper_script());
    for a in args {
        cmd.arg(a);
    }
    let out = cmd.output().expect("run the libtorrent helper");
    assert!(
        out.status.success(),
        "libtorrent helper failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("helper prints JSON")
}

/// Deterministic pseudo-random bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A directory `multi/` with awkward sizes and names, and a file `single.bin`.
fn make_content(root: &Path) -> (PathBuf, PathBuf) {
    let multi = root.join("multi");
    let files: &[(&str, usize)] = &[
        ("a", 100),
        ("a-b", 7),
        ("b.bin", 70_000),
        ("empty", 0),
        ("sub/x", 5),
        ("sub/deeper/y.dat", 16_384),
        ("sub/deeper/z", 40_001),
        ("zz", 33_000),
    ];
    for (i, (name, len)) in files.iter().enumerate() {
        let p = multi.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, noise(i as u64 + 1, *len)).unwrap();
    }
    let single = root.join("single.bin");
    std::fs::write(&single, noise(99, 100_000)).unwrap();
    (single, multi)
}

fn hex_or_null(h: Option<String>) -> Json {
    h.map(Json::String).unwrap_or(Json::Null)
}

fn assert_same_hashes(lt_info: &Json, ours: InfoHash, what: &str) {
    assert_eq!(
        lt_info["v1"],
        hex_or_null(ours.v1().map(|h| h.to_hex())),
        "{what}: v1 info hash"
    );
    assert_eq!(
        lt_info["v2"],
        hex_or_null(ours.v2().map(|h| h.to_hex())),
        "{what}: v2 info hash"
    );
}

#[test]
fn rivulet_torrents_load_and_seed_in_libtorrent() {
    let Some(py) = python("rivulet_torrents_load_and_seed_in_libtorrent") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (single, multi) = make_content(dir.path());
    for content in [&single, &multi] {
        for version in [Version::V1, Version::V2, Version::Hybrid] {
            for pl in [16 * 1024, 32 * 1024] {
                let what = format!("{} {version:?} {pl}", content.display());
                let made = TorrentBuilder::new(content)
                    .version(version)
                    .piece_length(pl)
                    .announce("http://127.0.0.1:1/announce")
                    .build()
                    .unwrap();
                let file = dir.path().join("t.torrent");
                std::fs::write(&file, made.bytes()).unwrap();
                let info = lt(&py, &[&"info", &file]);
                assert_same_hashes(&info, made.info_hash(), &what);
                assert_eq!(info["piece_length"], pl, "{what}");
                let check = lt(&py, &[&"check", &file, &dir.path()]);
                assert_eq!(check["error"], Json::Null, "{what}: {check}");
                assert_eq!(check["seeding"], true, "{what}: {check}");
                let have = check["have"].as_array().unwrap();
                assert!(have.iter().all(|b| b == true), "{what}: {check}");
                assert_eq!(have.len(), info["num_pieces"].as_u64().unwrap() as usize);
            }
        }
    }
}

#[test]
fn libtorrent_finds_a_corrupted_piece_in_rivulet_torrent() {
    let Some(py) = python("libtorrent_finds_a_corrupted_piece_in_rivulet_torrent") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_, multi) = make_content(dir.path());
    let made = TorrentBuilder::new(&multi)
        .version(Version::Hybrid)
        .piece_length(16 * 1024)
        .build()
        .unwrap();
    let file = dir.path().join("t.torrent");
    std::fs::write(&file, made.bytes()).unwrap();
    // b.bin is the third file; with pads, a (1 piece) and a-b (1 piece) come first, so
    // byte 20000 of b.bin is in piece 3.
    let b = multi.join("b.bin");
    let mut data = std::fs::read(&b).unwrap();
    data[20_000] ^= 1;
    std::fs::write(&b, data).unwrap();
    let check = lt(&py, &[&"check", &file, &dir.path()]);
    let have: Vec<bool> = check["have"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b == true)
        .collect();
    let bad: Vec<usize> = (0..have.len()).filter(|&i| !have[i]).collect();
    assert_eq!(bad, vec![3], "{check}");
}

/// v2 and hybrid info dictionaries are canonical (sorted files, pad files after every
/// unaligned file), so with no optional keys ours are byte-identical to libtorrent's.
#[test]
fn same_info_hash_as_libtorrent_create_torrent() {
    let Some(py) = python("same_info_hash_as_libtorrent_create_torrent") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (single, multi) = make_content(dir.path());
    for content in [&single, &multi] {
        for (version, flag) in [(Version::V2, "v2"), (Version::Hybrid, "hybrid")] {
            for pl in [16 * 1024u64, 64 * 1024] {
                let what = format!("{} {flag} {pl}", content.display());
                let out = dir.path().join("lt.torrent");
                let info = lt(&py, &[&"create", content, &pl.to_string(), &flag, &out]);
                let made = TorrentBuilder::new(content)
                    .version(version)
                    .piece_length(pl)
                    .created_by(None)
                    .creation_date(None)
                    .build()
                    .unwrap();
                assert_same_hashes(&info, made.info_hash(), &what);
            }
        }
    }
}

/// Parses a tool-made torrent, checks its info hash against the tool's report, and
/// verifies the content the tool hashed with [`verify`].
fn check_foreign(file: &Path, save_path: &Path, v1: Option<&str>, v2: Option<&str>, what: &str) {
    let bytes = std::fs::read(file).unwrap();
    let t = Torrent::from_bytes(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        t.info_hash.v1().map(|h| h.to_hex()).as_deref(),
        v1,
        "{what}: v1 info hash"
    );
    assert_eq!(
        t.info_hash.v2().map(|h| h.to_hex()).as_deref(),
        v2,
        "{what}: v2 info hash"
    );
    let have = verify(&t, save_path).unwrap();
    assert!(have.all_good(), "{what}: {have:?}");
    assert_eq!(have.len(), t.info.piece_count() as usize, "{what}");
}

/// Runs a tool; `None` (after printing SKIP) if it is not installed.
fn run_tool(test: &str, cmd: &mut Command) -> Option<std::process::Output> {
    match cmd.output() {
        Ok(out) => {
            assert!(
                out.status.success(),
                "{test}: {cmd:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            Some(out)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIP: {test}: {:?} is not installed", cmd.get_program());
            None
        }
        Err(e) => panic!("{test}: {cmd:?}: {e}"),
    }
}

/// The `Hash:` transmission-show prints for a torrent.
fn transmission_show_hash(test: &str, file: &Path) -> Option<String> {
    let out = run_tool(test, Command::new("transmission-show").arg(file))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Hash: "))
        .expect("transmission-show prints Hash:");
    Some(line.trim().to_owned())
}

#[test]
fn libtorrent_made_torrents_parse_and_verify() {
    let Some(py) = python("libtorrent_made_torrents_parse_and_verify") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (single, multi) = make_content(dir.path());
    for content in [&single, &multi] {
        for flag in ["v1", "v2", "hybrid"] {
            for pl in [16 * 1024u64, 32 * 1024] {
                let what = format!("libtorrent {} {flag} {pl}", content.display());
                let out = dir.path().join("lt.torrent");
                let info = lt(&py, &[&"create", content, &pl.to_string(), &flag, &out]);
                check_foreign(
                    &out,
                    dir.path(),
                    info["v1"].as_str(),
                    info["v2"].as_str(),
                    &what,
                );
            }
        }
    }
}

#[test]
fn transmission_create_torrents_parse_and_verify() {
    let test = "transmission_create_torrents_parse_and_verify";
    let dir = tempfile::tempdir().unwrap();
    let (single, multi) = make_content(dir.path());
    for content in [&single, &multi] {
        let out = dir.path().join("tr.torrent");
        let _ = std::fs::remove_file(&out);
        let mut cmd = Command::new("transmission-create");
        cmd.arg("-o").arg(&out).arg("-s").arg("16").arg(content);
        if run_tool(test, &mut cmd).is_none() {
            return;
        }
        let Some(hash) = transmission_show_hash(test, &out) else {
            return;
        };
        check_foreign(
            &out,
            dir.path(),
            Some(&hash),
            None,
            &format!("transmission {}", content.display()),
        );
    }
}

#[test]
fn mktorrent_torrents_parse_and_verify() {
    let test = "mktorrent_torrents_parse_and_verify";
    let dir = tempfile::tempdir().unwrap();
    let (single, multi) = make_content(dir.path());
    for content in [&single, &multi] {
        let out = dir.path().join("mk.torrent");
        let _ = std::fs::remove_file(&out);
        let mut cmd = Command::new("mktorrent");
        cmd.arg("-l").arg("15").arg("-o").arg(&out).arg(content);
        if run_tool(test, &mut cmd).is_none() {
            return;
        }
        // mktorrent prints no hash: take transmission-show's, else libtorrent's.
        let hash = match transmission_show_hash(test, &out) {
            Some(h) => h,
            None => {
                let Some(py) = python(test) else { return };
                lt(&py, &[&"info", &out])["v1"].as_str().unwrap().to_owned()
            }
        };
        check_foreign(
            &out,
            dir.path(),
            Some(&hash),
            None,
            &format!("mktorrent {}", content.display()),
        );
    }
}

#[test]
fn npm_create_torrent_torrents_parse_and_verify() {
    let test = "npm_create_torrent_torrents_parse_and_verify";
    let Some(nm) = std::env::var_os("RIVULET_NODE_MODULES") else {
        eprintln!("SKIP: {test}: set RIVULET_NODE_MODULES to a node_modules with create-torrent");
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/create_torrent.mjs");
    let dir = tempfile::tempdir().unwrap();
    let (single, multi) = make_content(dir.path());
    for content in [&single, &multi] {
        let out = dir.path().join("ct.torrent");
        let mut cmd = Command::new("node");
        cmd.arg(&script)
            .arg(&nm)
            .arg(content)
            .arg("16384")
            .arg(&out);
        let Some(o) = run_tool(test, &mut cmd) else {
            return;
        };
        let j: Json = serde_json::from_slice(&o.stdout).unwrap();
        check_foreign(
            &out,
            dir.path(),
            j["v1"].as_str(),
            None,
            &format!("create-torrent {}", content.display()),
        );
    }
}
