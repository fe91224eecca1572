//! Interop with a Transmission 3.00 daemon on loopback: rivulet downloads from a
//! Transmission seed found through a local tracker, and again given only `--peer`;
//! Transmission downloads from a rivulet seed. Bytes on disk are compared every time.
//!
//! Transmission never dials 127.x peers it learns from a tracker (it takes them for
//! martians) but accepts them, so when it leeches, rivulet must dial it: the test lets
//! Transmission announce first, so the rivulet seed's `started` announce returns it.
//! Needs `transmission-daemon`, `transmission-create` and `transmission-remote` (Debian
//! `transmission-daemon`, `transmission-cli`, installed by `.ci/setup-interop`); without
//! them the tests print `SKIP:` and pass.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tracker::net::{Listen, TrackerServer};
use tracker::server::ServerConfig;

use crate::transfer::{Proc, noise};

const BIN: &str = env!("CARGO_BIN_EXE_rivulet");
const LOOPBACK: &str = "127.0.0.1:0";
/// A few MiB: Transmission paces itself at ~15-30 MB/s and waits ~10 s before asking.
const SIZE: usize = 3 * 1024 * 1024 + 12_345;

fn have_transmission() -> bool {
    let ok = [
        "transmission-daemon",
        "transmission-create",
        "transmission-remote",
    ]
    .iter()
    .all(|t| {
        Command::new(t)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    });
    if !ok {
        println!("SKIP: transmission-daemon/transmission-cli not installed");
    }
    ok
}

fn free_port() -> u16 {
    TcpListener::bind(LOOPBACK)
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `root/data/transmission.bin` and a torrent for it made by `transmission-create`
/// (announcing to `tracker`, if given).
fn make(root: &Path, tracker: Option<&str>) -> (PathBuf, Vec<u8>) {
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let content = noise(77, SIZE);
    std::fs::write(data.join("transmission.bin"), &content).unwrap();
    let torrent = root.join("t.torrent");
    let mut cmd = Command::new("transmission-create");
    cmd.arg("-o").arg(&torrent).args(["-s", "64"]);
    if let Some(t) = tracker {
        cmd.args(["-t", t]);
    }
    let ok = cmd
        .arg(data.join("transmission.bin"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "transmission-create failed");
    (torrent, content)
}

struct Daemon {
    child: Child,
    rpc: u16,
    peer_port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// A daemon with its own config dir under `root`, peers on 127.0.0.1 only, no DHT,
    /// LPD, uTP or port mapping.
    fn start(root: &Path, download_dir: &Path) -> Daemon {
        let (rpc, peer_port) = (free_port(), free_port());
        let child = Command::new("transmission-daemon")
            .arg("-f")
            .arg("-g")
            .arg(root.join("transmission-conf"))
            .args(["-p", &rpc.to_string(), "-P", &peer_port.to_string()])
            .arg("-w")
            .arg(download_dir)
            .args([
                "-O",
                "-Y",
                "--no-utp",
                "-M",
                "-T",
                "-r",
                "127.0.0.1",
                "-i",
                "127.0.0.1",
                "-et",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start transmission-daemon");
        let d = Daemon {
            child,
            rpc,
            peer_port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while d.remote(&["-l"]).is_none() {
            assert!(
                Instant::now() < deadline,
                "transmission RPC did not come up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    fn remote(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("transmission-remote")
            .arg(format!("127.0.0.1:{}", self.rpc))
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn add(&self, torrent: &Path, dir: &Path) {
        self.remote(&[
            "-a",
            &torrent.to_string_lossy(),
            "-w",
            &dir.to_string_lossy(),
        ])
        .expect("add torrent");
    }

    /// Waits until the listing satisfies `ok`.
    fn wait_list(&self, what: &str, limit: Duration, ok: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            let list = self.remote(&["-l"]).unwrap_or_default();
            if ok(&list) {
                return;
            }
            assert!(Instant::now() < deadline, "transmission: {what}:\n{list}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_seeding(&self) {
        self.wait_list("did not start seeding", Duration::from_secs(20), |l| {
            l.contains("100%") && (l.contains("Seeding") || l.contains("Idle"))
        });
    }
}

pub(crate) struct Tracker {
    _rt: tokio::runtime::Runtime,
    server: TrackerServer,
}

impl Tracker {
    pub(crate) fn start() -> Tracker {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = rt
            .block_on(TrackerServer::bind(
                ServerConfig::default(),
                Listen {
                    udp: Some(LOOPBACK.parse().unwrap()),
                    http: Some(LOOPBACK.parse().unwrap()),
                },
            ))
            .unwrap();
        Tracker { _rt: rt, server }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/announce", self.server.http_addr().unwrap())
    }

    fn stats(&self, torrent: &Path) -> tracker::ScrapeStats {
        let ih = metainfo::Torrent::from_file(torrent)
            .unwrap()
            .info_hash
            .wire_id()
            .0;
        self.server
            .swarms()
            .lock()
            .unwrap()
            .stats(&tracker::InfoHash(ih))
    }

    pub(crate) fn wait(
        &self,
        torrent: &Path,
        what: &str,
        ok: impl Fn(tracker::ScrapeStats) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ok(self.stats(torrent)) {
            assert!(
                Instant::now() < deadline,
                "tracker never saw {what}: {:?}",
                self.stats(torrent)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn rivulet_download(torrent: &Path, dir: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("download")
        .arg(torrent)
        .arg("-o")
        .arg(dir)
        .args([
            "--listen",
            LOOPBACK,
            "--no-dht",
            "--timeout",
            "50",
            "--json",
        ])
        .args(extra)
        .output()
        .unwrap()
}

fn assert_downloaded(o: &std::process::Output, dir: &Path, content: &[u8]) {
    assert!(o.status.success(), "{o:?}");
    let got = std::fs::read(dir.join("transmission.bin")).unwrap();
    assert!(got == content, "the downloaded bytes differ");
}

#[test]
fn rivulet_downloads_from_transmission_through_a_tracker() {
    if !have_transmission() {
        return;
    }
    let tracker = Tracker::start();
    let root = tempfile::tempdir().unwrap();
    let (torrent, content) = make(root.path(), Some(&tracker.url()));
    let data = root.path().join("data");
    let daemon = Daemon::start(root.path(), &data);
    daemon.add(&torrent, &data);
    daemon.wait_seeding();
    tracker.wait(&torrent, "Transmission seeding", |s| s.complete >= 1);
    let dst = tempfile::tempdir().unwrap();
    // No --peer, no -t: the torrent's own tracker is the only source.
    let o = rivulet_download(&torrent, dst.path(), &[]);
    assert_downloaded(&o, dst.path(), &content);
    let _ = daemon.peer_port;
}

#[test]
fn rivulet_downloads_from_transmission_given_only_its_address() {
    if !have_transmission() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let (torrent, content) = make(root.path(), None);
    let data = root.path().join("data");
    let daemon = Daemon::start(root.path(), &data);
    daemon.add(&torrent, &data);
    daemon.wait_seeding();
    let dst = tempfile::tempdir().unwrap();
    let peer = format!("127.0.0.1:{}", daemon.peer_port);
    let o = rivulet_download(&torrent, dst.path(), &["--peer", &peer]);
    assert_downloaded(&o, dst.path(), &content);
}

#[test]
fn transmission_downloads_from_a_rivulet_seed() {
    if !have_transmission() {
        return;
    }
    let tracker = Tracker::start();
    let root = tempfile::tempdir().unwrap();
    let (torrent, content) = make(root.path(), Some(&tracker.url()));
    let leech_dir = root.path().join("transmission-download");
    std::fs::create_dir_all(&leech_dir).unwrap();
    let daemon = Daemon::start(root.path(), &leech_dir);
    daemon.add(&torrent, &leech_dir);
    // Transmission announces as a leecher first ...
    tracker.wait(&torrent, "Transmission leeching", |s| s.incomplete >= 1);
    // ... so the seed's `started` announce returns it, and the seed dials it.
    let seed = Proc::spawn(
        Command::new(BIN)
            .arg("seed")
            .arg(&torrent)
            .arg(root.path().join("data"))
            .args(["--listen", LOOPBACK, "--no-dht", "--timeout", "60"]),
    );
    seed.expect_line("seeding ", Duration::from_secs(30));
    daemon.wait_list("did not finish downloading", Duration::from_secs(50), |l| {
        l.contains("100%") && (l.contains("Seeding") || l.contains("Idle"))
    });
    let got = std::fs::read(leech_dir.join("transmission.bin")).unwrap();
    assert!(got == content, "Transmission's bytes differ");
    // Transmission told the tracker it completed.
    tracker.wait(&torrent, "Transmission's `completed`", |s| {
        s.downloaded >= 1
    });
}
