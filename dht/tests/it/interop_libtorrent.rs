//! Interop with libtorrent (PyPI `libtorrent==2.1.1`): its DHT, bootstrapped only from a
//! rivulet node, finds a peer announced through rivulet.
//!
//! Needs a Python with libtorrent: `$RIVULET_PYTHON`, else `.interop/venv/bin/python`
//! (`python3 -m venv .interop/venv && .interop/venv/bin/pip install libtorrent==2.1.1`);
//! otherwise prints `SKIP:` and passes.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use rivulet_dht::Hash;
use tokio::process::Command;

use crate::interop_js::rivulet_node;

fn python() -> Option<PathBuf> {
    let py = match std::env::var_os("RIVULET_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.interop/venv/bin/python"),
    };
    let ok = std::process::Command::new(&py)
        .args(["-c", "import libtorrent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(py)
}

#[tokio::test]
async fn libtorrent_finds_peer_announced_through_rivulet() {
    let Some(py) = python() else {
        println!("SKIP: no Python with libtorrent (set RIVULET_PYTHON or create .interop/venv)");
        return;
    };
    tokio::time::timeout(Duration::from_secs(120), async {
        let first = rivulet_node(vec![]).await;
        let mut nodes = vec![first.clone()];
        for _ in 0..7 {
            nodes.push(rivulet_node(vec![first.local_addr()]).await);
        }
        for n in &nodes {
            n.bootstrapped().await;
            n.find_node(n.id()).await.unwrap();
        }
        let hash = Hash::from_name("rivulet libtorrent interop");
        let r = nodes[3].announce(hash, Some(7777)).await.unwrap();
        assert!(r.announced >= 1, "{r:?}");

        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/libtorrent_get_peers.py");
        let out = Command::new(py)
            .arg(script)
            .arg(nodes[5].local_addr().to_string())
            .arg(hash.to_string())
            .arg("127.0.0.1:7777")
            .arg("60")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await
            .expect("run python");
        let line = String::from_utf8_lossy(&out.stdout);
        let res: serde_json::Value = serde_json::from_str(line.trim()).expect("JSON from python");
        println!("libtorrent: {res}");
        assert_eq!(res["found"], true, "{res}");
        for n in &nodes {
            n.shutdown().await;
        }
    })
    .await
    .expect("libtorrent interop timed out");
}
