//! `rivulet create` and `rivulet info`, run as a user would.

use std::path::Path;
use std::process::{Command, Output};

fn rivulet(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rivulet"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run rivulet")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn data(name: &str) -> String {
    format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn info_of_a_libtorrent_made_hybrid_torrent() {
    let dir = tempfile::tempdir().unwrap();
    let o = rivulet(&["info", &data("sample.torrent")], dir.path());
    assert!(o.status.success(), "{o:?}");
    let s = stdout(&o);
    // The hashes libtorrent 2.1.1 reported when it made the file.
    assert!(
        s.contains("info hash v1: 50186566773e234d0e6ff57261cf1098bea27aa3"),
        "{s}"
    );
    assert!(
        s.contains(
            "info hash v2: 2c356ece65f0171c422482d332da2454faead83feadaf0d722ef306cdf099765"
        ),
        "{s}"
    );
    assert!(s.contains("rivulet-sample/video.bin"), "{s}");

    let o = rivulet(&["info", "--json", &data("sample.torrent")], dir.path());
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["version"], "hybrid");
    assert_eq!(j["total_length"], 200_023);
    assert_eq!(j["piece_length"], 32_768);
    assert_eq!(j["files"].as_array().unwrap().len(), 2);
    assert_eq!(j["trackers"][0][0], "http://127.0.0.1:6969/announce");
}

#[test]
fn create_then_info_agree() {
    let dir = tempfile::tempdir().unwrap();
    let content = dir.path().join("album");
    std::fs::create_dir_all(content.join("cd1")).unwrap();
    std::fs::write(content.join("cd1/track.flac"), vec![7u8; 100_000]).unwrap();
    std::fs::write(content.join("cover.jpg"), vec![9u8; 5_000]).unwrap();
    for version in ["v1", "v2", "hybrid"] {
        let out = format!("album-{version}.torrent");
        let o = rivulet(
            &[
                "create",
                "album",
                "-o",
                &out,
                "-t",
                "udp://127.0.0.1:1/announce",
                "-w",
                "http://127.0.0.1:2/",
                "--version",
                version,
                "--private",
                "--comment",
                "c",
            ],
            dir.path(),
        );
        assert!(o.status.success(), "{o:?}");
        let created = stdout(&o);
        let o = rivulet(&["info", "--json", &out], dir.path());
        assert!(o.status.success(), "{o:?}");
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(j["version"], version);
        assert_eq!(j["private"], true);
        assert_eq!(j["total_length"], 105_000);
        assert_eq!(j["web_seeds"][0], "http://127.0.0.1:2/");
        assert_eq!(j["trackers"][0][0], "udp://127.0.0.1:1/announce");
        for v in ["v1", "v2"] {
            if let Some(h) = j["info_hash"][v].as_str() {
                assert!(created.contains(h), "{created} lacks {h}");
            }
        }
        assert!(created.contains("magnet:?xt=urn:bt"), "{created}");
    }
}

#[test]
fn malformed_input_is_one_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.torrent");
    std::fs::write(&bad, b"d8:announce3:urle").unwrap();
    let o = rivulet(&["info", bad.to_str().unwrap()], dir.path());
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("info"), "{err}");

    let o = rivulet(&["info", "magnet:?xt=urn:btih:xyz"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("xt"));

    let o = rivulet(&["info", "/nonexistent/file.torrent"], dir.path());
    assert_eq!(o.status.code(), Some(3));
}

#[test]
fn info_of_a_magnet_link() {
    let dir = tempfile::tempdir().unwrap();
    let link = "magnet:?xt=urn:btih:50186566773e234d0e6ff57261cf1098bea27aa3&dn=rivulet-sample&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce&x.pe=127.0.0.1:6881";
    let o = rivulet(&["info", "--json", link], dir.path());
    assert!(o.status.success(), "{o:?}");
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["kind"], "magnet");
    assert_eq!(j["name"], "rivulet-sample");
    assert_eq!(
        j["info_hash"]["v1"],
        "50186566773e234d0e6ff57261cf1098bea27aa3"
    );
    assert_eq!(j["trackers"][0], "http://127.0.0.1:6969/announce");
    assert_eq!(j["peers"][0], "127.0.0.1:6881");
}

#[test]
fn demo_runs_a_verified_swarm() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let o = rivulet(
        &[
            "demo",
            "--size",
            "8",
            "--leechers",
            "2",
            "--timeout",
            "120",
            "--dir",
            work.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{o:?}");
    let s = stdout(&o);
    assert!(s.contains("done: 2 leechers have all 8.00 MiB"), "{s}");
    // The leechers' files really are the seeder's.
    let a = std::fs::read(work.join("seed/rivulet-demo/video.bin")).unwrap();
    let b = std::fs::read(work.join("leech-2/rivulet-demo/video.bin")).unwrap();
    assert_eq!(a.len(), 6 * 1024 * 1024);
    assert_eq!(a, b);
}
