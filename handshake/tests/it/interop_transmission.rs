//! Interop against a Transmission 3 daemon seeding on loopback: we dial it (Transmission
//! never dials loopback peers itself), plaintext and with encryption required, then
//! download a block. Needs `transmission-daemon`, `transmission-create` and
//! `transmission-remote` (Debian package `transmission-daemon`, `transmission-cli`);
//! without them the tests print `SKIP:` and pass.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rivulet_handshake::{Config, EncryptionPolicy, Options, PeerId, connect_tcp};

use crate::peer_exchange::{download_block, write_content};

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn remote(rpc: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("transmission-remote")
        .arg(format!("127.0.0.1:{rpc}"))
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run(encryption_flag: &str, ours: EncryptionPolicy) {
    if ![
        "transmission-daemon",
        "transmission-create",
        "transmission-remote",
    ]
    .iter()
    .all(|t| have(t))
    {
        println!("SKIP: transmission-daemon/transmission-cli not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    write_content(&data.join("content.bin"));
    let torrent = dir.path().join("t.torrent");
    let ok = Command::new("transmission-create")
        .arg("-o")
        .arg(&torrent)
        .args(["-s", "32"])
        .arg(data.join("content.bin"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "transmission-create failed");
    let bytes = std::fs::read(&torrent).expect("read torrent");
    let info_hash = metainfo::Torrent::from_bytes(&bytes)
        .expect("parse torrent")
        .info_hash
        .v1()
        .expect("v1 torrent");

    let (rpc, peer_port) = (free_port(), free_port());
    let _daemon = Daemon(
        Command::new("transmission-daemon")
            .arg("-f")
            .arg("-g")
            .arg(dir.path().join("conf"))
            .args(["-p", &rpc.to_string(), "-P", &peer_port.to_string()])
            .arg("-w")
            .arg(&data)
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
            ])
            .arg(encryption_flag)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start transmission-daemon"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while remote(rpc, &["-l"]).is_none() {
        assert!(
            Instant::now() < deadline,
            "transmission RPC did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let torrent_s = torrent.to_string_lossy().into_owned();
    let data_s = data.to_string_lossy().into_owned();
    remote(rpc, &["-a", &torrent_s, "-w", &data_s]).expect("add torrent");
    // Wait until the data is verified and the torrent seeds.
    loop {
        let list = remote(rpc, &["-l"]).unwrap_or_default();
        if list.contains("100%") && (list.contains("Seeding") || list.contains("Idle")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "transmission did not start seeding:\n{list}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut options = Options::new(Config::new(PeerId(*b"-RV0100-interop00001")));
    options.encryption = ours;
    options.timeout = Duration::from_secs(20);
    let addr = format!("127.0.0.1:{peer_port}").parse().expect("addr");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let conn = connect_tcp(addr, &options, info_hash, None)
                .await
                .expect("handshake with transmission");
            assert_eq!(conn.established.info_hash, info_hash);
            assert_eq!(
                conn.stream.is_encrypted(),
                ours == EncryptionPolicy::Required
            );
            download_block(conn, "transmission").await;
        });
    let _ = Path::new(&data_s);
}

#[test]
fn transmission_plaintext() {
    run("-et", EncryptionPolicy::Disabled);
}

#[test]
fn transmission_mse_required() {
    run("-er", EncryptionPolicy::Required);
}
