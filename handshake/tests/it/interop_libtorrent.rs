//! Interop against a libtorrent seed on loopback: plaintext and MSE handshakes, then an
//! extension handshake, interested, unchoke, a block request and its data.
//!
//! Python with libtorrent comes from `$RIVULET_PYTHON`, else `.interop/venv/bin/python`
//! under the workspace root; without one the tests print `SKIP:` and pass.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use metainfo::InfoHashV1;
use rivulet_handshake::{Config, EncryptionPolicy, Listener, Options, PeerId, connect_tcp};

fn python() -> Option<PathBuf> {
    let candidates = std::env::var_os("RIVULET_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.interop/venv/bin/python")]);
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

/// A libtorrent seed; killed on drop.
struct Seed {
    child: Child,
    port: u16,
    info_hash: InfoHashV1,
    _dir: tempfile::TempDir,
}

impl Drop for Seed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_seed(python: &PathBuf, enc_policy: u8) -> Seed {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/lt_seed.py");
    let mut child = Command::new(python)
        .arg(&script)
        .arg(dir.path())
        .arg(enc_policy.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn libtorrent seed");
    let stdout = child.stdout.take().expect("stdout");
    let mut port = None;
    let mut info_hash = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read seed output");
        if let Some(p) = line.strip_prefix("PORT ") {
            port = p.trim().parse().ok();
        } else if let Some(h) = line.strip_prefix("INFOHASH ") {
            info_hash = h.trim().parse().ok();
        } else if line == "READY" {
            break;
        }
    }
    let _ = child.stdin.as_mut().map(|s| s.flush());
    Seed {
        child,
        port: port.expect("seed printed its port"),
        info_hash: info_hash.expect("seed printed its info hash"),
        _dir: dir,
    }
}

fn options(encryption: EncryptionPolicy) -> Options {
    let mut options = Options::new(Config::new(PeerId(*b"-RV0100-interop00000")));
    options.encryption = encryption;
    options.timeout = Duration::from_secs(20);
    options
}

async fn exchange(seed: &mut Seed, encryption: EncryptionPolicy, incoming: bool) {
    let conn = if incoming {
        let listener = Listener::bind("127.0.0.1:0".parse().expect("addr"), options(encryption))
            .await
            .expect("bind");
        let mut rx = listener.register(seed.info_hash, 1);
        let port = listener.local_addr().expect("local addr").port();
        let task = tokio::spawn(listener.run());
        let stdin = seed.child.stdin.as_mut().expect("seed stdin");
        writeln!(stdin, "connect {port}").expect("tell the seed to connect");
        stdin.flush().expect("flush");
        let conn = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("libtorrent connected in time")
            .expect("listener running");
        task.abort();
        conn
    } else {
        let addr = format!("127.0.0.1:{}", seed.port).parse().expect("addr");
        connect_tcp(addr, &options(encryption), seed.info_hash, None)
            .await
            .expect("handshake with libtorrent")
    };
    assert_eq!(conn.established.info_hash, seed.info_hash);
    assert!(conn.established.reserved.extension_protocol());
    assert!(conn.established.reserved.fast());
    assert_eq!(
        conn.stream.is_encrypted(),
        encryption == EncryptionPolicy::Required
    );

    crate::peer_exchange::download_block(conn, "libtorrent").await;
}

fn run(enc_policy: u8, encryption: EncryptionPolicy, incoming: bool) {
    let Some(python) = python() else {
        println!("SKIP: no python with libtorrent (set RIVULET_PYTHON)");
        return;
    };
    let mut seed = start_seed(&python, enc_policy);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(exchange(&mut seed, encryption, incoming));
}

#[test]
fn libtorrent_plaintext() {
    run(2, EncryptionPolicy::Disabled, false);
}

#[test]
fn libtorrent_dials_us_plaintext() {
    run(2, EncryptionPolicy::Enabled, true);
}

#[test]
fn libtorrent_dials_us_mse_forced_rc4() {
    run(0, EncryptionPolicy::Required, true);
}

#[test]
fn libtorrent_mse_forced_rc4() {
    run(0, EncryptionPolicy::Required, false);
}

#[test]
fn libtorrent_enabled_plaintext_out() {
    // libtorrent accepts both; we start in plaintext.
    run(1, EncryptionPolicy::Enabled, false);
}
