//! I/O failures for real: `rivulet download` onto a full disk (a 256 KiB tmpfs mounted
//! in a private mount namespace, so nothing shows in the host's mounts) or a read-only
//! one, `download` and `seed` as an unprivileged user in directories they may not write
//! or read, and a torrent whose directory becomes unwritable in the middle of a
//! download while another torrent of the same session goes on. Each checks the exit code and the one line the
//! README promises. As root, the binary runs as `nobody` (`setpriv`) where permissions
//! matter; as any other user, directly. The full disk needs root (`unshare -m`); without
//! it, that test prints `SKIP: why` and passes.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use metainfo::{Torrent, TorrentBuilder, Verifier, Version};
use rivulet::{AddOptions, Phase, Session, TorrentHandle};

use crate::transfer::noise;

const BIN: &str = env!("CARGO_BIN_EXE_rivulet");
const PIECE: usize = 32768;
/// The unprivileged user and group the binary runs as (`nobody`, `nogroup`).
const NOBODY: &str = "65534";

/// The effective user id of this process.
fn uid() -> u32 {
    std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid())
}

/// `Ok` if this process may make private mount namespaces (root with `unshare`).
fn can_unshare() -> Result<(), String> {
    if uid() != 0 {
        return Err("not root: cannot mount a small tmpfs".into());
    }
    match Command::new("unshare").args(["-m", "true"]).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "unshare -m failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("no unshare: {e}")),
    }
}

/// `setpriv` arguments that run a command as `nobody` if this process is root (`None`
/// when it is not: permissions bind it already).
fn as_nobody() -> Result<Option<Vec<String>>, String> {
    if uid() != 0 {
        return Ok(None);
    }
    let args: Vec<String> = ["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups", "--"]
        .map(String::from)
        .to_vec();
    match Command::new("setpriv").args(&args).arg("true").output() {
        Ok(o) if o.status.success() => Ok(Some(args)),
        Ok(o) => Err(format!(
            "setpriv failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("no setpriv: {e}")),
    }
}

/// `cmd` (program first), run as `nobody` if `nobody` is given.
fn command(nobody: &Option<Vec<String>>, cmd: &[String]) -> Command {
    match nobody {
        Some(args) => {
            let mut c = Command::new("setpriv");
            c.args(args).args(cmd);
            c
        }
        None => {
            let mut c = Command::new(&cmd[0]);
            c.args(&cmd[1..]);
            c
        }
    }
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A `rivulet seed` process (root), killed on drop.
struct SeedProc(Child);

impl Drop for SeedProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn seed(torrent: &Path, dir: &Path) -> (SeedProc, u16) {
    let mut child = Command::new(BIN)
        .arg("seed")
        .arg(torrent)
        .arg(dir)
        .args(["--listen", "127.0.0.1:0", "--no-dht", "--timeout", "120"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let p = SeedProc(child);
    let mut port = None;
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the seed starts");
        if let Some(a) = line.strip_prefix("listening on ") {
            port = a.trim().rsplit(':').next().and_then(|p| p.parse().ok());
        }
        if line.starts_with("seeding ") {
            return (p, port.expect("a listening line first"));
        }
    }
}

/// `root/src/big.bin` (3 MB) and its v1 torrent at `root/t.torrent`, both readable by
/// anyone (as is `root`).
fn content(root: &Path) -> (PathBuf, Torrent) {
    chmod(root, 0o755);
    let src = root.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big.bin"), noise(31, 3_000_000)).unwrap();
    let torrent = root.join("t.torrent");
    let o = Command::new(BIN)
        .args([
            "create",
            "--piece-length",
            &PIECE.to_string(),
            "--version",
            "v1",
        ])
        .arg(src.join("big.bin"))
        .arg("-o")
        .arg(&torrent)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    (src, Torrent::from_file(&torrent).unwrap())
}

fn download_args(torrent: &Path, out: &Path, port: Option<u16>) -> Vec<String> {
    let mut a = vec![
        BIN.to_string(),
        "download".into(),
        torrent.display().to_string(),
        "-o".into(),
        out.display().to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--no-dht".into(),
        "--timeout".into(),
        "30".into(),
        "--json".into(),
    ];
    if let Some(port) = port {
        a.extend(["--peer".into(), format!("127.0.0.1:{port}")]);
    }
    a
}

/// Checks the failure: exit code 3, one `rivulet: <class>: ...` line last on stderr (log
/// lines may come before), and the `error` JSON event saying the same. Returns the event.
fn expect_io_error(o: &Output, class: &str) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("rivulet: "))
        .collect();
    assert_eq!(ours.len(), 1, "one error line: {stderr}");
    assert_eq!(stderr.lines().last(), Some(ours[0]), "{stderr}");
    let line = &ours[0]["rivulet: ".len()..];
    assert!(line.starts_with(&format!("{class}: ")), "{line}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let event = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "error")
        .unwrap_or_else(|| panic!("an error event: {stdout}"));
    assert_eq!(event["message"], line);
    assert_eq!(event["exit_code"], 3);
    assert!(
        !stdout.contains("\"completed\""),
        "nothing completes: {stdout}"
    );
    event
}

/// Runs `cmd` in a private mount namespace with a 256 KiB tmpfs on `mnt` (read-only if
/// `ro`); copies what it left there to `keep` (the tmpfs goes with the namespace).
fn on_tiny_tmpfs(mnt: &Path, keep: &Path, ro: bool, cmd: &[String]) -> Output {
    const SCRIPT: &str = r#"set -e
mnt=$1; keep=$2; opts=$3; shift 3
mount -t tmpfs -o "$opts" rivulet-test "$mnt"
set +e
"$@"
rc=$?
cp -a "$mnt"/. "$keep"/
exit $rc"#;
    std::fs::create_dir_all(mnt).unwrap();
    std::fs::create_dir_all(keep).unwrap();
    let o = Command::new("unshare")
        .args(["-m", "--", "sh", "-c", SCRIPT, "sh"])
        .arg(mnt)
        .arg(keep)
        .arg(if ro { "ro,size=256k" } else { "size=256k" })
        .args(cmd)
        .output()
        .unwrap();
    // Nothing leaked into our mount namespace.
    assert_eq!(
        std::fs::read_dir(mnt).unwrap().count(),
        0,
        "the tmpfs is gone"
    );
    o
}

#[test]
fn download_onto_a_full_or_read_only_disk_says_so_and_claims_no_piece_it_did_not_write() {
    if let Err(why) = can_unshare() {
        println!("SKIP: {why}");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let (src, t) = content(root.path());
    let torrent = root.path().join("t.torrent");
    let (_seed, port) = seed(&torrent, &src);

    // Sparse: the disk fills as pieces arrive (3 MB into 256 KiB).
    let (mnt, keep) = (root.path().join("mnt"), root.path().join("keep"));
    let o = on_tiny_tmpfs(
        &mnt,
        &keep,
        false,
        &download_args(&torrent, &mnt, Some(port)),
    );
    let event = expect_io_error(&o, "disk full");
    assert!(
        event["message"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{event}"
    );
    // What it says it has is on the disk and good (the pieces that fit).
    let said = event["pieces_have"].as_u64().expect("pieces_have") as usize;
    let good = Verifier::new(&t.info).run(&keep).unwrap().count_good();
    assert!(said >= 1, "some pieces fit in 256 KiB: {event}");
    assert!(said <= good, "said {said} pieces, {good} are on the disk");
    assert!(good <= 8, "256 KiB holds 8 pieces of 32 KiB, not {good}");

    // Full allocation: the disk is full before anything is fetched.
    let (mnt, keep) = (root.path().join("mnt2"), root.path().join("keep2"));
    let mut args = download_args(&torrent, &mnt, Some(port));
    args.extend(["--allocation".into(), "full".into()]);
    let o = on_tiny_tmpfs(&mnt, &keep, false, &args);
    let event = expect_io_error(&o, "disk full");
    assert!(event.get("pieces_have").is_none(), "{event}");

    // A read-only file system: the first piece cannot be stored.
    let (mnt, keep) = (root.path().join("mnt3"), root.path().join("keep3"));
    let o = on_tiny_tmpfs(
        &mnt,
        &keep,
        true,
        &download_args(&torrent, &mnt, Some(port)),
    );
    let event = expect_io_error(&o, "read-only file system");
    assert_eq!(event["pieces_have"], 0, "{event}");
    assert_eq!(
        std::fs::read_dir(&keep).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn download_into_a_directory_it_may_not_write_says_no_permission() {
    let nobody = match as_nobody() {
        Ok(a) => a,
        Err(why) => {
            println!("SKIP: {why}");
            return;
        }
    };
    let root = tempfile::tempdir().unwrap();
    let (src, _) = content(root.path());
    let torrent = root.path().join("t.torrent");
    let (_seed, port) = seed(&torrent, &src);
    // Mode 555: it may look, not write.
    let out = root.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    chmod(&out, 0o555);

    // Into it: fails at the first piece's write.
    let o = command(&nobody, &download_args(&torrent, &out, Some(port)))
        .output()
        .unwrap();
    let event = expect_io_error(&o, "no permission");
    let message = event["message"].as_str().unwrap();
    assert!(
        message.contains("Permission denied") && message.contains(&*out.to_string_lossy()),
        "{message}"
    );
    assert_eq!(event["pieces_have"], 0, "{event}");
    // Into a directory it would have to create there: fails at once.
    let o = command(&nobody, &download_args(&torrent, &out.join("new"), None))
        .output()
        .unwrap();
    let event = expect_io_error(&o, "no permission");
    assert!(
        event["message"].as_str().unwrap().contains("creating"),
        "{event}"
    );
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn seed_from_data_it_may_not_read_says_no_permission() {
    let nobody = match as_nobody() {
        Ok(a) => a,
        Err(why) => {
            println!("SKIP: {why}");
            return;
        }
    };
    let root = tempfile::tempdir().unwrap();
    let (src, _) = content(root.path());
    let torrent = root.path().join("t.torrent");
    // A directory it may not enter, then a file it may not open: before, the seed
    // counted the pieces as missing and seeded nothing, exit 0.
    let args: Vec<String> = [
        BIN,
        "seed",
        &*torrent.to_string_lossy(),
        &*src.to_string_lossy(),
    ]
    .into_iter()
    .chain([
        "--listen",
        "127.0.0.1:0",
        "--no-dht",
        "--timeout",
        "30",
        "--json",
    ])
    .map(String::from)
    .collect();
    for (dir_mode, file_mode) in [(0o000, 0o644), (0o755, 0o000)] {
        chmod(&src.join("big.bin"), file_mode);
        chmod(&src, dir_mode);
        let o = command(&nobody, &args).output().unwrap();
        chmod(&src, 0o755);
        chmod(&src.join("big.bin"), 0o644);
        let event = expect_io_error(&o, "no permission");
        assert!(
            event["message"]
                .as_str()
                .unwrap()
                .contains(&*src.join("big.bin").to_string_lossy()),
            "{event}"
        );
    }
}

/// Set in the child that runs [`a_torrent_whose_directory_becomes_unwritable_stops_and_the_session_goes_on`]
/// as `nobody`: the directory to work in.
const CHILD_DIR: &str = "RIVULET_IT_UNWRITABLE_DIR";

#[test]
fn a_torrent_whose_directory_becomes_unwritable_stops_and_the_session_goes_on() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        return unwritable_mid_download(Path::new(&dir));
    }
    let root = tempfile::tempdir().unwrap();
    if uid() != 0 {
        // Permissions bind us: no need for another user.
        return unwritable_mid_download(root.path());
    }
    // Root writes anywhere: run this test again as `nobody`.
    let nobody = match as_nobody() {
        Ok(Some(a)) => a,
        Ok(None) => unreachable!("root"),
        Err(why) => {
            println!("SKIP: {why}");
            return;
        }
    };
    chmod(root.path(), 0o777);
    let o = Command::new("setpriv")
        .args(&nobody)
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "io_errors::a_torrent_whose_directory_becomes_unwritable_stops_and_the_session_goes_on",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, root.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("1 passed"),
        "the test as nobody: {o:?}\n{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn unwritable_mid_download(root: &Path) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(unwritable_scenario(root));
}

/// A torrent of `files` files of `len` bytes under `root/name`.
fn many(root: &Path, name: &str, files: usize, len: usize) -> Torrent {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..files {
        std::fs::write(dir.join(format!("f{i:02}.bin")), noise(i as u64 + 50, len)).unwrap();
    }
    let made = TorrentBuilder::new(&dir)
        .version(Version::V1)
        .piece_length(PIECE as u64)
        .build()
        .unwrap();
    Torrent::from_bytes(made.bytes()).unwrap()
}

async fn seeding(t: &Torrent, dir: &Path) -> (Session, TorrentHandle, SocketAddr) {
    let mut c = crate::loopback();
    // Slow enough that the leech is mid-download for a few seconds.
    c.upload_limit = Some(256 << 10);
    let (s, h, addr) = crate::loopback_seed(c, t, dir).await;
    assert!(h.status().complete);
    (s, h, addr)
}

async fn until(h: &TorrentHandle, what: &str, f: impl Fn(&rivulet::Status) -> bool) {
    let mut rx = h.subscribe();
    tokio::time::timeout(Duration::from_secs(60), async {
        while !f(&rx.borrow_and_update()) {
            rx.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: {:?}", h.status()));
}

async fn unwritable_scenario(root: &Path) {
    let src = root.join("src");
    // A: 32 files of 40 000 bytes, fetched in order, so files are created as it goes;
    // B: one 1 MB file elsewhere.
    let a = many(&src, "a", 32, 40_000);
    let b = many(&src, "b", 1, 1_000_000);
    let (_sa, _ha, addr_a) = seeding(&a, &src).await;
    let (_sb, _hb, addr_b) = seeding(&b, &src).await;
    let mut c = crate::loopback();
    c.reconnect_interval = Duration::from_millis(200);
    let session = Session::new(c).await.unwrap();
    let (dir_a, dir_b) = (root.join("dl-a"), root.join("dl-b"));
    let mut o = AddOptions::with_peers(vec![addr_a]);
    o.sequential = true;
    let ha = session.add(&a, &dir_a, o).await.unwrap();
    let hb = session
        .add(&b, &dir_b, AddOptions::with_peers(vec![addr_b]))
        .await
        .unwrap();

    // A's files so far stay writable (they are open); the next one cannot be created.
    // (Verified pieces reach the disk when the write-back cache is flushed: wait for
    // A's directory to be there.)
    let a_dir = dir_a.join("a");
    until(&ha, "A started", |s| s.pieces_have >= 2 && a_dir.exists()).await;
    chmod(&dir_a.join("a"), 0o555);
    until(&ha, "A's error", |s| s.error.is_some()).await;
    let s = ha.status();
    let e = s.error.clone().unwrap();
    assert!(e.contains("Permission denied"), "{e}");
    assert_eq!(s.phase, Phase::Paused, "{s:?}");
    assert!(!s.complete);
    // What A says it has is on disk and good.
    chmod(&dir_a.join("a"), 0o755);
    let good = Verifier::new(&a.info).run(&dir_a).unwrap();
    assert!(
        (s.pieces_have as usize) <= good.count_good(),
        "A says {} pieces, {} are good",
        s.pieces_have,
        good.count_good()
    );
    chmod(&dir_a.join("a"), 0o555);

    // The session and B go on.
    until(&hb, "B completes", |s| s.complete).await;
    assert!(hb.status().error.is_none());
    assert!(
        Verifier::new(&b.info).run(&dir_b).unwrap().all_good(),
        "B's data"
    );
    assert_eq!(session.torrents().len(), 2);
    assert!(ha.status().error.is_some(), "A stays stopped");

    // Writable again: resuming A clears the error and it completes.
    chmod(&dir_a.join("a"), 0o755);
    ha.resume();
    until(&ha, "A completes after resume", |s| s.complete).await;
    assert!(ha.status().error.is_none());
    assert!(
        Verifier::new(&a.info).run(&dir_a).unwrap().all_good(),
        "A's data"
    );
}
