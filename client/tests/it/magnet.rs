//! Magnet links and bare info hashes (BEP 9 metadata over BEP 10) and PEX (BEP 11), on
//! loopback: rivulet with rivulet, and with libtorrent either way.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use metainfo::{InfoHash, Torrent};

use crate::transfer::{
    BIN, Proc, assert_same_content, make_torrent, python, result_json, rivulet_seed,
};

/// The next `--json` event named `name` a process prints (others are skipped).
fn expect_event(p: &Proc, name: &str, timeout: Duration) -> serde_json::Value {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let rest = p.expect_line("{", left);
        let v: serde_json::Value = serde_json::from_str(&format!("{{{rest}")).unwrap();
        if v["event"] == name {
            return v;
        }
    }
}

fn hash_of(torrent: &Path) -> InfoHash {
    Torrent::from_file(torrent).unwrap().info_hash
}

fn download_source(source: &str, dir: &Path, peers: &[u16], timeout: u32) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("download").arg(source).arg("-o").arg(dir);
    for p in peers {
        cmd.args(["--peer", &format!("127.0.0.1:{p}")]);
    }
    cmd.args(["--listen", "127.0.0.1:0", "--no-dht"])
        .args(["--timeout", &timeout.to_string(), "--json"])
        .output()
        .unwrap()
}

fn lt_magnet(python: &Path, mode: &str, what: &str, save: &Path) -> (Proc, u16) {
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/lt_magnet.py");
    let p = Proc::spawn(
        Command::new(python)
            .arg(script)
            .arg(mode)
            .arg(what)
            .arg(save),
    );
    let port = p
        .expect_line("PORT ", Duration::from_secs(60))
        .parse()
        .unwrap();
    p.expect_line("READY", Duration::from_secs(60));
    (p, port)
}

#[test]
fn a_magnet_with_only_a_peer_address_downloads_from_a_rivulet_seed() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = make_torrent(src.path(), "v1");
    let (_seed, port) = rivulet_seed(&torrent, src.path());
    let h = hash_of(&torrent).v1().unwrap();
    let link = format!("magnet:?xt=urn:btih:{h}&x.pe=127.0.0.1:{port}");
    let v = result_json(&download_source(&link, dst.path(), &[], 60));
    assert_eq!(v["complete"], true);
    assert_eq!(v["name"], "content");
    assert_same_content(src.path(), dst.path());
}

#[test]
fn a_bare_info_hash_and_a_peer_download_from_a_rivulet_seed() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = make_torrent(src.path(), "hybrid");
    let (_seed, port) = rivulet_seed(&torrent, src.path());
    let h = hash_of(&torrent).v1().unwrap();
    let v = result_json(&download_source(&h.to_hex(), dst.path(), &[port], 60));
    assert_eq!(v["complete"], true);
    assert_same_content(src.path(), dst.path());
}

#[test]
fn a_listening_magnet_download_gets_the_metadata_from_a_seed_that_dials_in() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = make_torrent(src.path(), "v1");
    let h = hash_of(&torrent).v1().unwrap();
    // The leech knows no peer: it listens. After the metadata it dials the seed back at
    // the port the seed announced in its extension handshake.
    let leech = Proc::spawn(
        Command::new(BIN)
            .arg("download")
            .arg(format!("magnet:?xt=urn:btih:{h}"))
            .arg("-o")
            .arg(dst.path())
            .args([
                "--listen",
                "127.0.0.1:0",
                "--no-dht",
                "--timeout",
                "60",
                "--json",
            ]),
    );
    // The `added` event says where it listens.
    let added = expect_event(&leech, "added", Duration::from_secs(30));
    let addr = added["listen"].as_str().unwrap().to_string();
    let _seed = Proc::spawn(
        Command::new(BIN)
            .arg("seed")
            .arg(&torrent)
            .arg(src.path())
            .args([
                "--listen",
                "127.0.0.1:0",
                "--peer",
                &addr,
                "--timeout",
                "60",
                "--no-dht",
            ]),
    );
    let v = expect_event(&leech, "completed", Duration::from_secs(60));
    assert_eq!(v["complete"], true, "{v}");
    assert_same_content(src.path(), dst.path());
}

#[test]
fn a_magnet_whose_peers_never_answer_times_out_in_the_metadata_phase() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dst = tempfile::tempdir().unwrap();
    let link = format!(
        "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&x.pe=127.0.0.1:{port}"
    );
    let o = download_source(&link, dst.path(), &[], 2);
    assert_eq!(o.status.code(), Some(4), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.lines()
            .last()
            .unwrap()
            .contains("fetching the metadata"),
        "{err}"
    );
}

// ---- libtorrent ----

#[test]
fn a_magnet_without_trackers_resolves_from_a_libtorrent_seed() {
    let Some(python) = python() else {
        println!("SKIP: no python with libtorrent (set RIVULET_PYTHON)");
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = make_torrent(src.path(), "v1");
    let (_lt, port) = lt_magnet(&python, "seed", torrent.to_str().unwrap(), src.path());
    let h = hash_of(&torrent).v1().unwrap();
    let link = format!("magnet:?xt=urn:btih:{h}&dn=content&x.pe=127.0.0.1:{port}");
    let v = result_json(&download_source(&link, dst.path(), &[], 60));
    assert_eq!(v["complete"], true);
    assert_same_content(src.path(), dst.path());
}

#[test]
fn a_bare_v2_hash_resolves_a_hybrid_torrent_from_a_libtorrent_seed() {
    let Some(python) = python() else {
        println!("SKIP: no python with libtorrent (set RIVULET_PYTHON)");
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = make_torrent(src.path(), "hybrid");
    let (_lt, port) = lt_magnet(&python, "seed", torrent.to_str().unwrap(), src.path());
    // The v2 hash alone: the metadata is checked with SHA-256.
    let h = hash_of(&torrent).v2().unwrap();
    let v = result_json(&download_source(&h.to_hex(), dst.path(), &[port], 60));
    assert_eq!(v["complete"], true);
    assert_same_content(src.path(), dst.path());
}

#[test]
fn libtorrent_fetches_metadata_from_a_rivulet_seed_through_a_magnet() {
    let Some(python) = python() else {
        println!("SKIP: no python with libtorrent (set RIVULET_PYTHON)");
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = make_torrent(src.path(), "v1");
    let (_seed, port) = rivulet_seed(&torrent, src.path());
    let h = hash_of(&torrent).v1().unwrap();
    let link = format!("magnet:?xt=urn:btih:{h}&x.pe=127.0.0.1:{port}");
    let (lt, _) = lt_magnet(&python, "magnet", &link, dst.path());
    lt.expect_line("METADATA", Duration::from_secs(30));
    lt.expect_line("DONE", Duration::from_secs(60));
    assert_same_content(src.path(), dst.path());
}

#[test]
fn rivulet_learns_a_libtorrent_peer_through_pex_and_connects_to_it() {
    let Some(python) = python() else {
        println!("SKIP: no python with libtorrent (set RIVULET_PYTHON)");
        return;
    };
    // Nobody has the data: three leeches stay connected (libtorrent drops
    // seed-to-seed connections, which would race with PEX).
    let src = tempfile::tempdir().unwrap();
    let (da, db, dr) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let torrent = make_torrent(src.path(), "v1");
    let t = torrent.to_str().unwrap();
    let (mut a, port_a) = lt_magnet(&python, "leech", t, da.path());
    let (b, port_b) = lt_magnet(&python, "leech", t, db.path());
    // A dials B: B is a peer A may tell others about.
    a.send(&format!("connect {port_b}"));
    b.expect_line("PEER libtorrent", Duration::from_secs(30));
    // rivulet knows only A, and does not listen: B cannot learn about it.
    let _riv = Proc::spawn(
        Command::new(BIN)
            .arg("download")
            .arg(&torrent)
            .arg("-o")
            .arg(dr.path())
            .args(["--peer", &format!("127.0.0.1:{port_a}")])
            .args(["--no-listen", "--no-dht", "--timeout", "40"]),
    );
    a.expect_line("PEER rivulet", Duration::from_secs(30));
    // B sees rivulet connect: its only way to know B is A's ut_pex.
    b.expect_line("PEER rivulet", Duration::from_secs(30));
}

#[test]
fn libtorrent_learns_a_peer_from_rivulet_through_pex_and_connects_to_it() {
    let Some(python) = python() else {
        println!("SKIP: no python with libtorrent (set RIVULET_PYTHON)");
        return;
    };
    // Three leeches without data; rivulet dials A and B, which know nothing of each
    // other: only rivulet's ut_pex can tell A where B is.
    let src = tempfile::tempdir().unwrap();
    let (da, db, dr) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let torrent = make_torrent(src.path(), "v1");
    let t = torrent.to_str().unwrap();
    let (a, port_a) = lt_magnet(&python, "leech", t, da.path());
    let (b, port_b) = lt_magnet(&python, "leech", t, db.path());
    let _riv = Proc::spawn(
        Command::new(BIN)
            .arg("download")
            .arg(&torrent)
            .arg("-o")
            .arg(dr.path())
            .args(["--peer", &format!("127.0.0.1:{port_a}")])
            .args(["--peer", &format!("127.0.0.1:{port_b}")])
            .args(["--no-listen", "--no-dht", "--timeout", "40"]),
    );
    a.expect_line("PEER rivulet", Duration::from_secs(30));
    b.expect_line("PEER rivulet", Duration::from_secs(30));
    // One of them dials the other (whichever handles our message first).
    let (tx, rx) = std::sync::mpsc::channel();
    for p in [a, b] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let ok = std::panic::catch_unwind(|| {
                p.expect_line("PEER libtorrent", Duration::from_secs(30));
            })
            .is_ok();
            let _ = tx.send(ok);
        });
    }
    drop(tx);
    assert!(
        rx.iter().any(|ok| ok),
        "neither libtorrent peer connected to the other"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_shows_the_metadata_phase_and_takes_peers_later() {
    use rivulet::{AddOptions, Config, Phase, Session, TorrentSource};

    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = Torrent::from_file(make_torrent(src.path(), "v1")).unwrap();
    let (seeder, _seed, _) = crate::loopback_seed(crate::loopback(), &torrent, src.path()).await;

    let h = torrent.info_hash.v1().unwrap();
    let link = format!("magnet:?xt=urn:btih:{h}&tr=udp%3A%2F%2F127.0.0.1%3A1%2Fannounce");
    let source = TorrentSource::parse(&link).unwrap();
    let leecher = Session::new(Config::default()).await.unwrap();
    let handle = leecher
        .add(source, dst.path(), AddOptions::default())
        .await
        .unwrap();
    // No peer yet: the torrent waits for metadata, and says so.
    assert_eq!(handle.status().phase, Phase::Metadata);
    assert!(handle.info().is_none());
    assert_eq!(handle.info_hash(), torrent.info_hash);
    assert_eq!(
        handle.trackers(),
        [vec!["udp://127.0.0.1:1/announce".to_string()]]
    );
    handle.add_peer(seeder.listen_addr().unwrap());
    tokio::time::timeout(Duration::from_secs(30), handle.wait_complete())
        .await
        .expect("in time")
        .unwrap();
    let s = handle.status();
    assert_eq!(s.phase, Phase::Transfer);
    assert_eq!(handle.info().unwrap().name, "content");
    assert_same_content(src.path(), dst.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priorities_set_before_the_metadata_apply_once_it_arrives() {
    use rivulet::{AddOptions, Config, Session};

    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = Torrent::from_file(make_torrent(src.path(), "v1")).unwrap();
    let skipped = torrent
        .info
        .files
        .iter()
        .position(|f| f.path == ["a.bin"])
        .unwrap();
    let (seeder, _seed, _) = crate::loopback_seed(crate::loopback(), &torrent, src.path()).await;
    let leecher = Session::new(Config::default()).await.unwrap();
    let handle = leecher
        .add(torrent.info_hash, dst.path(), AddOptions::default())
        .await
        .unwrap();
    assert!(handle.files().is_empty());
    assert!(handle.reader(0).is_err());
    handle.set_file_priority(skipped, 0);
    handle.add_peer(seeder.listen_addr().unwrap());
    tokio::time::timeout(Duration::from_secs(30), handle.wait_complete())
        .await
        .expect("in time")
        .unwrap();
    let files = handle.files();
    assert_eq!(files[skipped].priority, 0);
    assert!(files[skipped].done < files[skipped].length, "{files:?}");
    for name in ["sub/b.bin", "sub/c.txt", "z/last.bin"] {
        let a = std::fs::read(src.path().join("content").join(name)).unwrap();
        let b = std::fs::read(dst.path().join("content").join(name)).unwrap();
        assert!(a == b, "{name}");
    }
}

#[test]
fn a_v2_only_torrent_by_hash_downloads_from_a_rivulet_seed() {
    // The metadata has no piece layers: they come from the seed (BEP 52 hashes).
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = make_torrent(src.path(), "v2");
    let (_seed, port) = rivulet_seed(&torrent, src.path());
    let h = hash_of(&torrent).v2().unwrap();
    let v = result_json(&download_source(&h.to_hex(), dst.path(), &[port], 60));
    assert_eq!(v["complete"], true);
    assert_eq!(v["hash_failures"], 0);
    assert_same_content(src.path(), dst.path());
}

#[test]
fn a_v2_only_torrent_by_hash_downloads_from_a_libtorrent_seed() {
    let Some(python) = python() else {
        println!("SKIP: no python with libtorrent (set RIVULET_PYTHON)");
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = make_torrent(src.path(), "v2");
    let (_lt, port) = lt_magnet(&python, "seed", torrent.to_str().unwrap(), src.path());
    let h = hash_of(&torrent).v2().unwrap();
    let v = result_json(&download_source(&h.to_hex(), dst.path(), &[port], 60));
    assert_eq!(v["complete"], true);
    assert_eq!(v["hash_failures"], 0);
    assert_same_content(src.path(), dst.path());
}

#[test]
fn a_btmh_magnet_of_a_v2_only_torrent_resolves_from_a_libtorrent_seed() {
    let Some(python) = python() else {
        println!("SKIP: no python with libtorrent (set RIVULET_PYTHON)");
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = make_torrent(src.path(), "v2");
    let (_lt, port) = lt_magnet(&python, "seed", torrent.to_str().unwrap(), src.path());
    let h = hash_of(&torrent).v2().unwrap();
    let link = format!(
        "magnet:?xt=urn:btmh:1220{}&x.pe=127.0.0.1:{port}",
        h.to_hex()
    );
    let v = result_json(&download_source(&link, dst.path(), &[], 60));
    assert_eq!(v["complete"], true);
    assert_eq!(v["hash_failures"], 0);
    assert_same_content(src.path(), dst.path());
}

/// One file of 600 pieces of 16 KiB (its piece layer takes two runs of at most 512
/// hashes, each proved with uncle hashes) and a v2-only torrent of it; returns the
/// torrent and the data.
fn big_v2(root: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let data: Vec<u8> = (0..600 * 16384 - 5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(root.join("big.bin"), &data).unwrap();
    let torrent = root.join("big.torrent");
    let o = Command::new(BIN)
        .args(["create", "--piece-length", "16384", "--version", "v2"])
        .arg(root.join("big.bin"))
        .arg("-o")
        .arg(&torrent)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    (torrent, data)
}

#[test]
fn a_v2_piece_layer_in_several_runs_with_proofs_comes_from_libtorrent() {
    let Some(python) = python() else {
        println!("SKIP: no python with libtorrent (set RIVULET_PYTHON)");
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let (torrent, data) = big_v2(src.path());
    let (_lt, port) = lt_magnet(&python, "seed", torrent.to_str().unwrap(), src.path());
    let h = hash_of(&torrent).v2().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let v = result_json(&download_source(&h.to_hex(), dst.path(), &[port], 60));
    assert_eq!(v["complete"], true);
    assert_eq!(v["hash_failures"], 0);
    assert!(std::fs::read(dst.path().join("big.bin")).unwrap() == data);
}

#[test]
fn a_v2_piece_layer_in_several_runs_with_proofs_comes_from_rivulet() {
    let src = tempfile::tempdir().unwrap();
    let (torrent, data) = big_v2(src.path());
    let (_seed, port) = rivulet_seed(&torrent, src.path());
    let h = hash_of(&torrent).v2().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let v = result_json(&download_source(&h.to_hex(), dst.path(), &[port], 60));
    assert_eq!(v["complete"], true);
    assert_eq!(v["hash_failures"], 0);
    assert!(std::fs::read(dst.path().join("big.bin")).unwrap() == data);
}
