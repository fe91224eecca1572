//! The `rivulet` binary under faults and with file selection: `kill -9` in the middle
//! of a download then a restart, and `download --files`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use metainfo::{Torrent, Verifier};

use crate::transfer::noise;

const BIN: &str = env!("CARGO_BIN_EXE_rivulet");
const PIECE: usize = 32768;

/// A child process, killed (SIGKILL) on drop.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
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
        Proc { child, lines }
    }

    fn expect_line(&self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return l[prefix.len()..].trim().to_string(),
                Ok(_) => {}
                Err(e) => panic!("no line {prefix:?}: {e}"),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn create(content: &Path, torrent: &Path, version: &str) -> Torrent {
    let o = Command::new(BIN)
        .args(["create", "--piece-length", &PIECE.to_string()])
        .args(["--version", version])
        .arg(content)
        .arg("-o")
        .arg(torrent)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    Torrent::from_file(torrent).unwrap()
}

fn seed(torrent: &Path, dir: &Path) -> (Proc, u16) {
    let p = Proc::spawn(Command::new(BIN).arg("seed").arg(torrent).arg(dir).args([
        "--listen",
        "127.0.0.1:0",
        "--timeout",
        "120",
        "--no-dht",
    ]));
    let addr = p.expect_line("listening on ", Duration::from_secs(60));
    let port = addr.rsplit(':').next().unwrap().parse().unwrap();
    p.expect_line("seeding ", Duration::from_secs(60));
    (p, port)
}

fn download_cmd(torrent: &Path, dir: &Path, port: u16) -> Command {
    let mut c = Command::new(BIN);
    c.arg("download")
        .arg(torrent)
        .arg("-o")
        .arg(dir)
        .args(["--peer", &format!("127.0.0.1:{port}")])
        .args(["--listen", "127.0.0.1:0", "--no-dht"])
        .args(["--timeout", "60", "--json"]);
    c
}

fn result_json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{o:?}");
    let s = String::from_utf8_lossy(&o.stdout);
    s.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "completed")
        .expect("a `completed` JSON event")
}

#[cfg(unix)]
#[test]
fn kill_9_in_the_middle_then_a_restart_fetches_only_what_is_missing() {
    use std::os::unix::fs::MetadataExt;

    let root = tempfile::tempdir().unwrap();
    let (src, half, dst) = (
        root.path().join("src"),
        root.path().join("half"),
        root.path().join("dst"),
    );
    let total = 256 * PIECE - 1000;
    let data = noise(7, total);
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big.bin"), &data).unwrap();
    let torrent = root.path().join("t.torrent");
    let t = create(&src.join("big.bin"), &torrent, "v1");
    // A seed with the first half of the pieces only: the leech cannot finish.
    let mut partial = data.clone();
    partial[128 * PIECE..].fill(0);
    std::fs::create_dir_all(&half).unwrap();
    std::fs::write(half.join("big.bin"), &partial).unwrap();
    let (_half_seed, port) = seed(&torrent, &half);

    // Kill the leech with SIGKILL once some data is on disk (mid-transfer, or stalled
    // at the seed's half at the latest).
    let mut leech = Proc::spawn(&mut download_cmd(&torrent, &dst, port));
    let target = dst.join("big.bin");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let on_disk = std::fs::metadata(&target).map_or(0, |m| m.blocks() * 512);
        if on_disk >= 2 << 20 {
            break;
        }
        assert!(Instant::now() < deadline, "the leech wrote nothing");
        std::thread::sleep(Duration::from_millis(5));
    }
    leech.child.kill().unwrap();
    let status = leech.child.wait().unwrap();
    assert!(!status.success());
    drop(leech);

    let good = Verifier::new(&t.info).run(&dst).unwrap().count_good();
    assert!(good > 0 && good <= 128, "{good} good pieces");
    let missing_bytes = (total - good * PIECE) as u64;

    // Restart against a full seed: only the missing pieces come over the wire.
    let (_full_seed, port) = seed(&torrent, &src);
    let v = result_json(&download_cmd(&torrent, &dst, port).output().unwrap());
    assert_eq!(v["complete"], true);
    assert_eq!(
        v["fast_resumed"], false,
        "the killed run left no valid resume file"
    );
    let downloaded = v["downloaded"].as_u64().unwrap();
    assert!(
        downloaded <= missing_bytes,
        "downloaded {downloaded} but only {missing_bytes} were missing ({good} good pieces)"
    );
    assert!(std::fs::read(&target).unwrap() == data);
    eprintln!(
        "kill -9 left {good} good pieces; the restart downloaded {downloaded} bytes of \
         {missing_bytes} missing"
    );

    // A normal restart after that clean exit trusts the resume file.
    let v = result_json(&download_cmd(&torrent, &dst, port).output().unwrap());
    assert_eq!(v["fast_resumed"], true);
    assert_eq!(v["downloaded"], 0);
}

#[test]
fn download_files_selects_by_the_indices_info_lists() {
    let root = tempfile::tempdir().unwrap();
    let content = root.path().join("content");
    // Lengths in whole pieces, so no piece is shared between files (v1 layout).
    let files: &[(&str, usize)] = &[
        ("a.bin", 3 * PIECE),
        ("b.bin", 2 * PIECE),
        ("c.bin", 4 * PIECE),
        ("d/e.bin", PIECE),
    ];
    for (i, (name, len)) in files.iter().enumerate() {
        let p = content.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, noise(i as u64 + 40, *len)).unwrap();
    }
    let torrent = root.path().join("t.torrent");
    create(&content, &torrent, "v1");
    let info = Command::new(BIN)
        .arg("info")
        .arg(&torrent)
        .arg("--json")
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let names: Vec<&str> = listed["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "content/a.bin",
            "content/b.bin",
            "content/c.bin",
            "content/d/e.bin"
        ]
    );

    let (_seed, port) = seed(&torrent, root.path());
    let dst = root.path().join("dst");
    let o = download_cmd(&torrent, &dst, port)
        .args(["--files", "1,3", "--sequential", "--allocation", "full"])
        .output()
        .unwrap();
    let v = result_json(&o);
    assert_eq!(v["complete"], true);
    assert_eq!(v["downloaded"], 3 * PIECE as u64);
    for (i, (name, _)) in files.iter().enumerate() {
        let got = std::fs::read(dst.join("content").join(name));
        let f = &v["files"][i];
        if i == 1 || i == 3 {
            assert!(got.unwrap() == std::fs::read(content.join(name)).unwrap());
            assert_eq!(f["selected"], true);
            assert_eq!(f["done"], f["length"]);
        } else {
            assert!(got.is_err(), "{name} was created");
            assert_eq!(f["selected"], false);
            assert_eq!(f["done"], 0);
        }
    }

    // An index past the list: exit 1, one line naming it.
    let o = download_cmd(&torrent, &dst, port)
        .args(["--files", "2-4"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no file 4"), "{err}");
}

/// The pieces a resume file lists (all false if there is none or it is rejected).
fn resume_listed(t: &Torrent, dir: &Path) -> Vec<bool> {
    let root = dir.canonicalize().unwrap();
    let path = rivulet::resume::default_path(&root, &t.info);
    rivulet::resume::load(&t.info, &root, &path)
        .unwrap_or_else(|_| vec![false; t.info.piece_count() as usize])
}

#[cfg(unix)]
#[test]
fn kill_9_while_pieces_are_only_in_the_write_back_cache_loses_none_the_resume_file_lists() {
    let root = tempfile::tempdir().unwrap();
    let (src, dst) = (root.path().join("src"), root.path().join("dst"));
    let total = 256 * PIECE - 1000;
    let data = noise(11, total);
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big.bin"), &data).unwrap();
    let torrent = root.path().join("t.torrent");
    let t = create(&src.join("big.bin"), &torrent, "v1");
    let (_seed, port) = seed(&torrent, &src);
    std::fs::create_dir_all(&dst).unwrap();

    // A cache that never fills and never ages out: pieces reach the disk only when the
    // resume file is written (every 1.5 s), which must write them out first. Slow
    // enough (2 MB/s) to be killed half way.
    let mut cmd = download_cmd(&torrent, &dst, port);
    cmd.args(["--cache-size", "1000000000", "--cache-age", "600"])
        .args(["--resume-interval", "1.5", "--download-limit", "2000000"]);
    let mut leech = Proc::spawn(&mut cmd);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut verified, mut listed) = (0u64, 0usize);
    // Kill once a resume file lists some pieces and the leech has verified clearly
    // more (those are in its cache only, unless a resume write just flushed them).
    while !(listed >= 8 && verified as usize >= listed + 8) {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = leech
            .lines
            .recv_timeout(left)
            .expect("the leech stopped before the kill");
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        assert_ne!(
            v["event"], "completed",
            "the download finished before the kill"
        );
        if v["event"] == "progress" {
            verified = v["pieces_have"].as_u64().unwrap_or(0);
            listed = resume_listed(&t, &dst).iter().filter(|h| **h).count();
        }
    }
    leech.child.kill().unwrap();
    assert!(!leech.child.wait().unwrap().success());
    drop(leech);

    // Every piece the resume file lists is on disk, intact.
    let listed = resume_listed(&t, &dst);
    let good = Verifier::new(&t.info).run(&dst).unwrap();
    let n_listed = listed.iter().filter(|h| **h).count();
    assert!(n_listed >= 8, "{n_listed} pieces listed");
    for (i, l) in listed.iter().enumerate() {
        assert!(!l || good.get(i), "piece {i} is listed but not on disk");
    }
    eprintln!(
        "killed with {verified} pieces verified, {} on disk, {n_listed} listed",
        good.count_good()
    );

    // The restart trusts the file and fetches the rest; every byte ends up right.
    let v = result_json(&download_cmd(&torrent, &dst, port).output().unwrap());
    assert_eq!(v["complete"], true);
    assert_eq!(v["fast_resumed"], true);
    let downloaded = v["downloaded"].as_u64().unwrap();
    assert!(
        downloaded <= (total - n_listed * PIECE + PIECE) as u64,
        "{downloaded}"
    );
    assert!(std::fs::read(dst.join("big.bin")).unwrap() == data);
}

#[test]
fn a_finished_download_has_every_byte_on_disk_with_a_cache_that_never_flushes_by_itself() {
    let root = tempfile::tempdir().unwrap();
    let (src, dst) = (root.path().join("src"), root.path().join("dst"));
    let total = 64 * PIECE - 123;
    let data = noise(12, total);
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big.bin"), &data).unwrap();
    let torrent = root.path().join("t.torrent");
    let t = create(&src.join("big.bin"), &torrent, "v1");
    let (_seed, port) = seed(&torrent, &src);
    let mut cmd = download_cmd(&torrent, &dst, port);
    cmd.args(["--cache-size", "1000000000", "--cache-age", "600"]);
    let v = result_json(&cmd.output().unwrap());
    assert_eq!(v["complete"], true);
    // The process has exited: what is in the file is what it wrote before.
    assert!(std::fs::read(dst.join("big.bin")).unwrap() == data);
    assert!(resume_listed(&t, &dst).iter().all(|h| *h));
}
