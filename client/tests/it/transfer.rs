//! `rivulet seed` → `rivulet download` on loopback, resume, corrupt data, and transfers
//! with libtorrent either way.
//!
//! Python with libtorrent comes from `$RIVULET_PYTHON`, else the venvs under
//! `.interop/` at the workspace root; without one the libtorrent tests print `SKIP:` and
//! pass. Every child process is killed when its guard drops, and every command has a
//! timeout.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_rivulet");

pub(crate) fn noise(seed: u64, len: usize) -> Vec<u8> {
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

/// Content files: none a multiple of the piece length, so pieces straddle files and the
/// last piece is short.
const FILES: &[(&str, usize)] = &[
    ("a.bin", 200_000),
    ("sub/b.bin", 3 * 32768 + 777),
    ("sub/c.txt", 10),
    ("z/last.bin", 50_001),
];

/// Writes `root/content/...` and a torrent for it; returns the torrent path.
pub(crate) fn make_torrent(root: &Path, version: &str) -> PathBuf {
    make_torrent_with(root, version, &[])
}

/// [`make_torrent`] announcing to `trackers`.
pub(crate) fn make_torrent_with(root: &Path, version: &str, trackers: &[&str]) -> PathBuf {
    let content = root.join("content");
    for (i, (name, len)) in FILES.iter().enumerate() {
        let p = content.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, noise(i as u64 + 11, *len)).unwrap();
    }
    let torrent = root.join("t.torrent");
    let o = Command::new(BIN)
        .args(["create", "--piece-length", "32768", "--version", version])
        .args(trackers.iter().flat_map(|t| ["-t", t]))
        .arg(&content)
        .arg("-o")
        .arg(&torrent)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    torrent
}

pub(crate) fn assert_same_content(src: &Path, dst: &Path) {
    // Called once the leech says it is done, which means written: libtorrent's `DONE`
    // comes after its queued writes are flushed (`lt_peer.py`; its `is_seeding` alone
    // came before a file existed, see `client/tests/INTEROP.md`).
    for (name, _) in FILES {
        let a = std::fs::read(src.join("content").join(name)).unwrap();
        let b =
            std::fs::read(dst.join("content").join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(a == b, "{name} differs");
    }
    // Padding files are never written.
    assert!(!dst.join("content/.pad").exists());
}

/// A child process, killed on drop.
pub(crate) struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    pub(crate) fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let stdin = child.stdin.take();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            stdin,
            lines,
        }
    }

    /// Waits for a stdout line starting with `prefix`; returns the rest.
    pub(crate) fn expect_line(&self, prefix: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return l[prefix.len()..].trim().to_string(),
                Ok(_) => {}
                Err(e) => panic!("no line {prefix:?}: {e}"),
            }
        }
    }

    pub(crate) fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rivulet seed` on an ephemeral loopback port; returns it and the port.
pub(crate) fn rivulet_seed(torrent: &Path, dir: &Path) -> (Proc, u16) {
    rivulet_seed_with(torrent, dir, &[])
}

/// [`rivulet_seed`] with more arguments.
pub(crate) fn rivulet_seed_with(torrent: &Path, dir: &Path, args: &[&str]) -> (Proc, u16) {
    let p = Proc::spawn(
        Command::new(BIN)
            .arg("seed")
            .arg(torrent)
            .arg(dir)
            .args(["--listen", "127.0.0.1:0", "--timeout", "120", "--no-dht"])
            .args(args),
    );
    let addr = p.expect_line("listening on ", Duration::from_secs(60));
    let port = addr.rsplit(':').next().unwrap().parse().unwrap();
    p.expect_line("seeding ", Duration::from_secs(60));
    (p, port)
}

fn download(torrent: &Path, dir: &Path, port: u16, timeout: u32) -> Output {
    download_with(torrent, dir, port, timeout, &[])
}

fn download_with(torrent: &Path, dir: &Path, port: u16, timeout: u32, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("download")
        .arg(torrent)
        .arg("-o")
        .arg(dir)
        .args(["--peer", &format!("127.0.0.1:{port}")])
        .args(["--listen", "127.0.0.1:0", "--no-dht"])
        .args(["--timeout", &timeout.to_string(), "--json"])
        .args(args)
        .output()
        .unwrap()
}

pub(crate) fn result_json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{o:?}");
    let s = String::from_utf8_lossy(&o.stdout);
    s.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "completed")
        .expect("a `completed` JSON event")
}

fn seed_to_download(version: &str) {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = make_torrent(src.path(), version);
    let (_seed, port) = rivulet_seed(&torrent, src.path());

    let v = result_json(&download(&torrent, dst.path(), port, 60));
    assert_eq!(v["complete"], true);
    assert_same_content(src.path(), dst.path());

    // Again into the same directory: everything verifies, nothing is fetched.
    let v = result_json(&download(&torrent, dst.path(), port, 60));
    assert_eq!(v["downloaded"], 0, "{v}");

    // One corrupted byte: exactly that piece is fetched again.
    let a = dst.path().join("content/a.bin");
    let mut data = std::fs::read(&a).unwrap();
    data[40_000] ^= 0x55;
    std::fs::write(&a, data).unwrap();
    let v = result_json(&download(&torrent, dst.path(), port, 60));
    assert_eq!(v["downloaded"], 32768, "{v}");
    assert_same_content(src.path(), dst.path());
}

#[test]
fn rivulet_seed_to_rivulet_download_v1() {
    seed_to_download("v1");
}

#[test]
fn rivulet_seed_to_rivulet_download_hybrid() {
    seed_to_download("hybrid");
}

/// A seed sending from mapped files (the default) or with sendfile: v1 blocks
/// straddle files (two ranges for one block); hybrid pieces end in padding (those
/// blocks are read); with MSE required on both sides (RC4) every block is read to be
/// encrypted. And the same torrents from a seed told `--uploads read` (every block
/// read into memory).
#[test]
fn rivulet_seed_uploading_each_way_to_rivulet_download() {
    for (version, enc, send) in [
        ("v1", "enabled", "mapped"),
        ("hybrid", "enabled", "mapped"),
        ("v1", "required", "mapped"),
        ("v1", "enabled", "sendfile"),
        ("hybrid", "enabled", "sendfile"),
        ("v1", "enabled", "read"),
        ("hybrid", "enabled", "read"),
    ] {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let torrent = make_torrent(src.path(), version);
        let seed_args = ["--uploads", send, "--encryption", enc];
        let (_seed, port) = rivulet_seed_with(&torrent, src.path(), &seed_args);
        let o = download_with(&torrent, dst.path(), port, 60, &["--encryption", enc]);
        let v = result_json(&o);
        assert_eq!(v["complete"], true, "{version} {enc} {send}");
        assert_same_content(src.path(), dst.path());
    }
}

#[test]
fn a_seed_serving_corrupt_data_makes_the_download_time_out_with_a_reason() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = make_torrent(src.path(), "v1");
    let (_seed, port) = rivulet_seed(&torrent, src.path());
    // The seed checked its data at start; corrupt it behind its back.
    let a = src.path().join("content/a.bin");
    let mut data = std::fs::read(&a).unwrap();
    data[70_000] ^= 0x55;
    std::fs::write(&a, data).unwrap();

    let o = download(&torrent, dst.path(), port, 4);
    assert_eq!(o.status.code(), Some(4), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("rivulet: gave up after"), "{err}");
    assert!(last.contains("failed their hash check"), "{err}");
    // --json reported the failures as they happened, and the error last.
    let events = crate::discovery::json_events(&o.stdout);
    assert!(
        events.iter().any(|e| e["event"] == "piece-failed"),
        "{events:?}"
    );
    assert_eq!(events.last().unwrap()["event"], "error");
    // Every other file arrived intact.
    for name in ["sub/b.bin", "sub/c.txt", "z/last.bin"] {
        let a = std::fs::read(src.path().join("content").join(name)).unwrap();
        let b = std::fs::read(dst.path().join("content").join(name)).unwrap();
        assert!(a == b, "{name}");
    }
}

#[test]
fn no_peers_no_magnets() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = make_torrent(dir.path(), "v1");
    let o = Command::new(BIN)
        .arg("download")
        .arg(&torrent)
        .arg("--no-dht")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no way to find peers"));
    let o = Command::new(BIN)
        .args([
            "download",
            "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567",
            "--no-dht",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no way to find peers"));
}

#[test]
fn an_unreachable_peer_times_out_with_exit_4() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = make_torrent(dir.path(), "v1");
    // A port nobody listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = tempfile::tempdir().unwrap();
    let o = download(&torrent, out.path(), port, 2);
    assert_eq!(o.status.code(), Some(4), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.lines().last().unwrap().contains("gave up"), "{err}");
}

// ---- libtorrent ----

pub(crate) fn python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates = std::env::var_os("RIVULET_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            ["venv", "lt", "py"]
                .iter()
                .map(|v| root.join(".interop").join(v).join("bin/python")),
        );
    for p in candidates {
        let ok = Command::new(&p)
            .args(["-c", "import libtorrent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(p);
        }
    }
    None
}

fn lt_peer(python: &Path, mode: &str, torrent: &Path, save: &Path, enc: u8) -> (Proc, u16) {
    lt_peer_with(python, mode, torrent, save, enc, &[])
}

/// [`lt_peer`] with extra environment variables (`LT_LSD=1` turns LSD on).
pub(crate) fn lt_peer_with(
    python: &Path,
    mode: &str,
    torrent: &Path,
    save: &Path,
    enc: u8,
    env: &[(&str, &str)],
) -> (Proc, u16) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/lt_peer.py");
    let p = Proc::spawn(
        Command::new(python)
            .envs(env.iter().copied())
            .arg(script)
            .arg(mode)
            .arg(torrent)
            .arg(save)
            .arg(enc.to_string()),
    );
    let port = p
        .expect_line("PORT ", Duration::from_secs(60))
        .parse()
        .unwrap();
    p.expect_line("READY", Duration::from_secs(60));
    (p, port)
}

fn libtorrent_seed_to_rivulet(version: &str, enc: u8) {
    let Some(python) = python() else {
        println!("SKIP: no python with libtorrent (set RIVULET_PYTHON)");
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = make_torrent(src.path(), version);
    let (_lt, port) = lt_peer(&python, "seed", &torrent, src.path(), enc);
    let v = result_json(&download(&torrent, dst.path(), port, 60));
    assert_eq!(v["complete"], true);
    assert_same_content(src.path(), dst.path());
}

#[test]
fn rivulet_downloads_from_a_libtorrent_seed() {
    libtorrent_seed_to_rivulet("hybrid", 1);
}

#[test]
fn rivulet_downloads_from_a_libtorrent_seed_found_through_a_tracker() {
    let Some(python) = python() else {
        println!("SKIP: no python with libtorrent (set RIVULET_PYTHON)");
        return;
    };
    let tracker = crate::transmission::Tracker::start();
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = make_torrent_with(src.path(), "v1", &[&tracker.url()]);
    let (_lt, _port) = lt_peer(&python, "seed", &torrent, src.path(), 1);
    tracker.wait(&torrent, "the libtorrent seed", |s| s.complete >= 1);
    // No --peer and no DHT: the torrent's tracker is the only way to the seed.
    let o = Command::new(BIN)
        .arg("download")
        .arg(&torrent)
        .arg("-o")
        .arg(dst.path())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--no-dht",
            "--timeout",
            "60",
            "--json",
        ])
        .output()
        .unwrap();
    let v = result_json(&o);
    assert_eq!(v["complete"], true);
    assert_same_content(src.path(), dst.path());
}

#[test]
fn rivulet_downloads_from_an_encrypting_libtorrent_seed() {
    // libtorrent with MSE forced (RC4 only) refuses plaintext: dial with MSE.
    let Some(python) = python() else {
        println!("SKIP: no python with libtorrent (set RIVULET_PYTHON)");
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = make_torrent(src.path(), "v1");
    let (_lt, port) = lt_peer(&python, "seed", &torrent, src.path(), 0);
    let o = Command::new(BIN)
        .arg("download")
        .arg(&torrent)
        .arg("-o")
        .arg(dst.path())
        .args(["--peer", &format!("127.0.0.1:{port}")])
        .args(["--listen", "127.0.0.1:0", "--no-dht"])
        .args(["--timeout", "60", "--json", "--encryption", "preferred"])
        .output()
        .unwrap();
    let v = result_json(&o);
    assert_eq!(v["complete"], true);
    assert_same_content(src.path(), dst.path());
}

#[test]
fn libtorrent_downloads_from_a_rivulet_seed() {
    let Some(python) = python() else {
        println!("SKIP: no python with libtorrent (set RIVULET_PYTHON)");
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = make_torrent(src.path(), "hybrid");
    let (_seed, port) = rivulet_seed(&torrent, src.path());
    let (mut lt, _) = lt_peer(&python, "leech", &torrent, dst.path(), 1);
    lt.send(&format!("connect {port}"));
    lt.expect_line("DONE", Duration::from_secs(60));
    assert_same_content(src.path(), dst.path());
}

/// A plaintext v1 torrent whose blocks straddle files: the rivulet seed sends them
/// from mapped windows of two files (the default), libtorrent checks every piece.
#[test]
fn libtorrent_downloads_a_v1_torrent_from_a_rivulet_seed_sending_mapped_files() {
    rivulet_seed_to_libtorrent("v1", 2, &["--uploads", "mapped"]);
}

/// The same from a seed sending each block with sendfile.
#[test]
fn libtorrent_downloads_a_v1_torrent_from_a_rivulet_seed_sending_with_sendfile() {
    rivulet_seed_to_libtorrent("v1", 2, &["--uploads", "sendfile"]);
}

/// The same from a seed told `--uploads read`: every block is read into memory first.
#[test]
fn libtorrent_downloads_a_v1_torrent_from_a_rivulet_seed_reading_blocks() {
    rivulet_seed_to_libtorrent("v1", 2, &["--uploads", "read"]);
}

/// libtorrent forcing RC4: the rivulet seed reads and encrypts what it sends, mapped
/// uploads asked for or not.
#[test]
fn libtorrent_downloads_from_a_rivulet_seed_over_rc4() {
    rivulet_seed_to_libtorrent("v1", 0, &["--uploads", "mapped"]);
}

fn rivulet_seed_to_libtorrent(version: &str, enc: u8, seed_args: &[&str]) {
    let Some(python) = python() else {
        println!("SKIP: no python with libtorrent (set RIVULET_PYTHON)");
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = make_torrent(src.path(), version);
    let (_seed, port) = rivulet_seed_with(&torrent, src.path(), seed_args);
    let (mut lt, _) = lt_peer(&python, "leech", &torrent, dst.path(), enc);
    lt.send(&format!("connect {port}"));
    lt.expect_line("DONE", Duration::from_secs(60));
    assert_same_content(src.path(), dst.path());
}

#[test]
fn rivulet_downloads_a_v2_only_torrent_from_a_libtorrent_seed() {
    libtorrent_seed_to_rivulet("v2", 1);
}

#[test]
fn libtorrent_downloads_a_v2_only_torrent_from_a_rivulet_seed() {
    let Some(python) = python() else {
        println!("SKIP: no python with libtorrent (set RIVULET_PYTHON)");
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = make_torrent(src.path(), "v2");
    let (_seed, port) = rivulet_seed(&torrent, src.path());
    let (mut lt, _) = lt_peer(&python, "leech", &torrent, dst.path(), 1);
    lt.send(&format!("connect {port}"));
    lt.expect_line("DONE", Duration::from_secs(60));
    assert_same_content(src.path(), dst.path());
}

/// Makes a torrent of `root/content` with libtorrent itself (`v2_only` or hybrid, with
/// its own padding files), so rivulet's reading of v2 file trees, piece layers and
/// padding is checked against the reference implementation's writing of them.
/// A copy of `torrent` in `dir` without its `piece layers` (what a v2 magnet gives a
/// peer), written by libtorrent's own bencoder.
fn strip_piece_layers(python: &Path, torrent: &Path, dir: &Path) -> PathBuf {
    let stripped = dir.join("no-layers.torrent");
    let o = Command::new(python)
        .args([
            "-c",
            "import sys, libtorrent as lt\n\
             d = lt.bdecode(open(sys.argv[1], 'rb').read())\n\
             del d[b'piece layers']\n\
             open(sys.argv[2], 'wb').write(lt.bencode(d))",
        ])
        .arg(torrent)
        .arg(&stripped)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    stripped
}

fn lt_create(python: &Path, root: &Path, v2_only: bool) -> PathBuf {
    let torrent = root.join(if v2_only {
        "lt-v2.torrent"
    } else {
        "lt-hybrid.torrent"
    });
    let script = r#"
import sys, warnings
import libtorrent as lt
warnings.simplefilter("ignore", DeprecationWarning)
root, out, v2 = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
fs = lt.file_storage()
lt.add_files(fs, root + "/content")
flags = lt.create_torrent.v2_only if v2 else 0
t = lt.create_torrent(fs, 32768, flags=flags)
lt.set_piece_hashes(t, root)
open(out, "wb").write(lt.bencode(t.generate()))
"#;
    let o = Command::new(python)
        .args(["-c", script])
        .arg(root)
        .arg(&torrent)
        .arg(if v2_only { "1" } else { "0" })
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    torrent
}

#[test]
fn rivulet_downloads_libtorrent_made_v2_and_hybrid_torrents_from_a_libtorrent_seed() {
    let Some(python) = python() else {
        println!("SKIP: no python with libtorrent (set RIVULET_PYTHON)");
        return;
    };
    for v2_only in [true, false] {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        // Content made by the usual helper; the torrent replaced by libtorrent's own.
        make_torrent(src.path(), "v1");
        let torrent = lt_create(&python, src.path(), v2_only);
        let t = metainfo::Torrent::from_file(&torrent).unwrap();
        assert_eq!(t.info.pieces.is_empty(), v2_only);
        let (_lt, port) = lt_peer(&python, "seed", &torrent, src.path(), 1);
        let v = result_json(&download(&torrent, dst.path(), port, 60));
        assert_eq!(v["complete"], true, "v2_only {v2_only}");
        assert_eq!(v["hash_failures"], 0);
        for (name, _) in FILES {
            let a = std::fs::read(src.path().join("content").join(name)).unwrap();
            let b = std::fs::read(dst.path().join("content").join(name)).unwrap();
            assert!(a == b, "{name} differs (v2_only {v2_only})");
        }
    }
}

#[test]
fn libtorrent_completes_a_v2_torrent_without_piece_layers_from_a_rivulet_seed() {
    // A v2 torrent without its `piece layers` (what a magnet link yields): libtorrent
    // completes it from a rivulet seed (asking it for the hashes it lacks).
    let Some(python) = python() else {
        println!("SKIP: no python with libtorrent (set RIVULET_PYTHON)");
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = make_torrent(src.path(), "v2");
    let stripped = strip_piece_layers(&python, &torrent, src.path());
    let (_seed, port) = rivulet_seed(&torrent, src.path());
    let (mut lt, _) = lt_peer(&python, "leech", &stripped, dst.path(), 1);
    lt.send(&format!("connect {port}"));
    lt.expect_line("DONE", Duration::from_secs(60));
    assert_same_content(src.path(), dst.path());
}

#[test]
fn libtorrent_checks_pieces_with_v2_hashes_a_rivulet_seed_sends() {
    // The seed has half of a v2 file; libtorrent, lacking the piece layers, can check
    // those pieces only with the hashes it asks the seed for (BEP 52 hash request ->
    // hashes). Without them it would verify nothing until the whole file is there.
    let Some(python) = python() else {
        println!("SKIP: no python with libtorrent (set RIVULET_PYTHON)");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let (src, half, dst) = (
        root.path().join("src"),
        root.path().join("half"),
        root.path().join("dst"),
    );
    let data = noise(77, 64 * 32768 + 5000);
    for (dir, cut) in [(&src, data.len()), (&half, 32 * 32768)] {
        std::fs::create_dir_all(dir).unwrap();
        let mut d = data.clone();
        d[cut..].fill(0);
        std::fs::write(dir.join("movie.bin"), d).unwrap();
    }
    let torrent = root.path().join("t.torrent");
    let o = Command::new(BIN)
        .args(["create", "--piece-length", "32768", "--version", "v2"])
        .arg(src.join("movie.bin"))
        .arg("-o")
        .arg(&torrent)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let stripped = strip_piece_layers(&python, &torrent, root.path());
    let (_seed, port) = rivulet_seed(&torrent, &half);
    std::fs::create_dir_all(&dst).unwrap();
    let (mut lt, _) = lt_peer(&python, "leech", &stripped, &dst, 1);
    lt.send(&format!("connect {port}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        lt.send("status");
        let n: u32 = lt
            .expect_line("PIECES ", Duration::from_secs(10))
            .parse()
            .unwrap();
        if n == 32 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "libtorrent verified {n} of the seed's 32 pieces"
        );
    }
}
