//! Interop over loopback, both directions: npm `bittorrent-tracker` 11 (HTTP, UDP and
//! WebSocket server and client) and libtorrent 2.1 (announcing to rivulet's server).
//!
//! Needs `node` and the npm package, installed at the workspace root with
//!
//! ```text
//! mkdir -p .interop/node && cd .interop/node
//! echo '{"dependencies":{"bittorrent-tracker":"^11.2.3"},"overrides":{"node-datachannel":"0.33.4"}}' > package.json
//! npm install --ignore-scripts
//! ```
//!
//! (node-datachannel 0.33.4 ships its binary as an npm package; the version the package asks
//! for downloads it from elsewhere and fails offline) or `RIVULET_NODE_MODULES` pointing at a
//! `node_modules` that has it (as `.ci/setup-interop` sets it); and for the libtorrent test a
//! Python with `libtorrent==2.1.1`
//! (see [`lt_python`]). Without them the tests print `SKIP:` and pass. Child processes are
//! killed when their handles drop (`kill_on_drop`), whatever the test's outcome.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use rivulet_tracker::net::{Listen, TrackerServer, UdpTracker, http_announce, http_scrape};
use rivulet_tracker::server::ServerConfig;
use rivulet_tracker::udp::UdpClientConfig;
use rivulet_tracker::{Announce, Event, InfoHash, PeerId};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The package directory, or `None` (test skipped).
fn bt_tracker() -> Option<PathBuf> {
    let modules = match std::env::var_os("RIVULET_NODE_MODULES") {
        Some(m) => PathBuf::from(m),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.interop/node/node_modules"),
    };
    let dir = modules.join("bittorrent-tracker");
    let node_ok = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if dir.join("server.js").is_file() && node_ok {
        Some(dir)
    } else {
        println!(
            "SKIP: node or bittorrent-tracker not found (looked in {})",
            dir.display()
        );
        None
    }
}

/// The package directory if its client loads too: the client needs a working WebRTC module
/// (node-datachannel with its binary), even for HTTP and UDP.
fn bt_tracker_client() -> Option<PathBuf> {
    let dir = bt_tracker()?;
    let probe = format!(
        "await import({:?})",
        format!("file://{}", dir.join("client.js").display())
    );
    let ok = std::process::Command::new("node")
        .args(["--input-type=module", "-e", &probe])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Some(dir)
    } else {
        println!(
            "SKIP: the bittorrent-tracker client does not load (node-datachannel binary missing?)"
        );
        None
    }
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it")
        .join(name)
}

/// The child is killed when this guard drops, whatever happens in the test.
struct NodeServer {
    _child: Child,
    http: u16,
    udp: u16,
    udp6: u16,
}

async fn start_node_server(entry: &PathBuf) -> NodeServer {
    let mut child = Command::new("node")
        .arg(script("tracker-server.mjs"))
        .env("RIVULET_BT_TRACKER", entry)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn node");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(20),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .expect("node server start timed out")
    .expect("read node output");
    let v: serde_json::Value = serde_json::from_str(&line).expect("ports line");
    let port = |k: &str| v[k].as_u64().expect("port") as u16;
    NodeServer {
        http: port("http"),
        udp: port("udp"),
        udp6: port("udp6"),
        _child: child,
    }
}

/// Fail fast instead of the BEP 15 hour-long schedule.
fn quick() -> UdpClientConfig {
    UdpClientConfig {
        retransmit_base: Duration::from_millis(500),
        max_retransmits: 3,
        ..Default::default()
    }
}

fn ann(peer: u8, port: u16, left: u64, event: Event) -> Announce {
    Announce {
        left,
        event,
        numwant: Some(50),
        key: Some(peer as u32),
        ..Announce::new(InfoHash([0xab; 20]), PeerId([peer; 20]), port)
    }
}

#[tokio::test]
async fn rivulet_clients_against_npm_server() {
    let Some(entry) = bt_tracker() else { return };
    let node = start_node_server(&entry).await;
    let http = format!("http://127.0.0.1:{}/announce", node.http);
    let mut udp = UdpTracker::connect(&format!("udp://127.0.0.1:{}", node.udp), quick())
        .await
        .unwrap();

    // (The npm server may hand a peer its own address back.)
    let r = udp.announce(ann(1, 3001, 0, Event::Started)).await.unwrap();
    assert_eq!(r.complete, Some(1), "{r:?}");
    let r = http_announce(&http, &ann(2, 3002, 100, Event::Started))
        .await
        .unwrap();
    assert!(
        r.peers
            .contains(&"127.0.0.1:3001".parse::<SocketAddr>().unwrap()),
        "{r:?}"
    );
    assert_eq!((r.complete, r.incomplete), (Some(1), Some(1)));
    let r = udp.announce(ann(1, 3001, 0, Event::None)).await.unwrap();
    assert!(
        r.peers
            .contains(&"127.0.0.1:3002".parse::<SocketAddr>().unwrap()),
        "{r:?}"
    );
    assert_eq!((r.complete, r.incomplete), (Some(1), Some(1)));

    let stats = udp.scrape(vec![InfoHash([0xab; 20])]).await.unwrap();
    assert_eq!((stats[0].complete, stats[0].incomplete), (1, 1));
    let files = http_scrape(&http, &[InfoHash([0xab; 20])]).await.unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].0, InfoHash([0xab; 20]));
    assert_eq!((files[0].1.complete, files[0].1.incomplete), (1, 1));

    // UDP over IPv6: npm bittorrent-tracker 11.2.3 answers the connect but never the announce
    // (its `parse-udp.js` builds `ip:port` without brackets, marked "TODO: ipv6"), so IPv6
    // is covered against rivulet's own server in `loopback.rs`. Check the connect only.
    if std::net::UdpSocket::bind("[::1]:0").is_ok() {
        let sock = tokio::net::UdpSocket::bind("[::1]:0").await.unwrap();
        sock.connect(("::1", node.udp6)).await.unwrap();
        let mut pkt = vec![];
        rivulet_tracker::udp::Request::Connect { transaction_id: 77 }.encode(&mut pkt);
        sock.send(&pkt).await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let r =
            rivulet_tracker::udp::Response::decode(&buf[..n], rivulet_tracker::udp::AddrFamily::V6)
                .unwrap();
        assert!(matches!(
            r,
            rivulet_tracker::udp::Response::Connect {
                transaction_id: 77,
                ..
            }
        ));
    }

    // Leave, and the swarm is empty.
    udp.announce(ann(1, 3001, 0, Event::Stopped)).await.unwrap();
    http_announce(&http, &ann(2, 3002, 100, Event::Stopped))
        .await
        .unwrap();
    let stats = udp.scrape(vec![InfoHash([0xab; 20])]).await.unwrap();
    assert_eq!((stats[0].complete, stats[0].incomplete), (0, 0));
}

async fn run_node_client(
    entry: &PathBuf,
    url: &str,
    peer: u8,
    port: u16,
    left: u64,
) -> serde_json::Value {
    let out = Command::new("node")
        .arg(script("tracker-client.mjs"))
        .args([
            url,
            &"ab".repeat(20),
            &format!("{peer:02x}").repeat(20),
            &port.to_string(),
            &left.to_string(),
        ])
        .env("RIVULET_BT_TRACKER", entry)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("node client timed out")
        .expect("node client");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("node client output {text:?}: {e}"))
}

#[tokio::test]
async fn npm_client_against_rivulet_server() {
    let Some(entry) = bt_tracker_client() else {
        return;
    };
    let server = TrackerServer::bind(
        ServerConfig::default(),
        Listen {
            udp: Some("127.0.0.1:0".parse().unwrap()),
            http: Some("127.0.0.1:0".parse().unwrap()),
        },
    )
    .await
    .unwrap();
    // A rivulet seeder is already there.
    let mut udp = UdpTracker::connect_addr(server.udp_addr().unwrap(), quick())
        .await
        .unwrap();
    udp.announce(ann(1, 4001, 0, Event::Started)).await.unwrap();

    for (i, url) in [
        format!("http://{}/announce", server.http_addr().unwrap()),
        format!("udp://{}", server.udp_addr().unwrap()),
    ]
    .iter()
    .enumerate()
    {
        let peer = 2 + i as u8;
        let v = run_node_client(&entry, url, peer, 4002 + i as u16, 100).await;
        assert_eq!(v["errors"], serde_json::json!([]), "{url}: {v}");
        assert_eq!(v["update"]["complete"], 1, "{url}: {v}");
        assert_eq!(v["update"]["incomplete"], 1, "{url}: {v}");
        assert_eq!(
            v["peers"],
            serde_json::json!(["127.0.0.1:4001"]),
            "{url}: {v}"
        );
        assert_eq!(v["scrape"]["complete"], 1, "{url}: {v}");
        assert_eq!(v["scrape"]["incomplete"], 1, "{url}: {v}");
        // It said `stopped` on its way out.
        let gone = !server
            .swarms()
            .lock()
            .unwrap()
            .contains(&InfoHash([0xab; 20]), &PeerId([peer; 20]));
        assert!(gone, "{url}: peer still in swarm after stop");
    }
}

#[tokio::test]
async fn rivulet_ws_clients_against_npm_server() {
    let Some(entry) = bt_tracker() else { return };
    let node = start_node_server(&entry).await;
    crate::ws::offer_answer_roundtrip(&format!("ws://127.0.0.1:{}", node.http)).await;
}

#[tokio::test]
async fn npm_ws_client_against_rivulet_server() {
    let Some(entry) = bt_tracker_client() else {
        return;
    };
    let server = TrackerServer::bind(
        ServerConfig::default(),
        Listen {
            http: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let url = server.ws_url().unwrap();
    // A rivulet peer waits in the swarm for the npm client's WebRTC offer.
    let mut b = rivulet_tracker::net::WsTracker::connect(&url)
        .await
        .unwrap();
    b.send(&rivulet_tracker::ws::ClientMessage::Announce(
        rivulet_tracker::ws::WsAnnounce {
            info_hash: InfoHash([0xab; 20]),
            peer_id: PeerId([1; 20]),
            uploaded: 0,
            downloaded: 0,
            left: Some(0),
            event: Event::Started,
            numwant: 0,
            offers: vec![],
        },
    ))
    .await
    .unwrap();
    let node = tokio::spawn({
        let entry = entry.clone();
        let url = url.clone();
        async move { run_node_client(&entry, &url, 2, 4100, 100).await }
    });
    let mut offer = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while offer.is_none() {
        let m = tokio::time::timeout_at(deadline, b.recv())
            .await
            .expect("no offer from the npm client")
            .expect("closed")
            .expect("decodes");
        if let rivulet_tracker::ws::ServerMessage::Offer {
            peer_id, offer: o, ..
        } = m
        {
            assert_eq!(peer_id, PeerId([2; 20]));
            offer = Some(o);
        }
    }
    let offer = offer.unwrap();
    assert_eq!(offer.kind, "offer");
    assert!(offer.sdp.starts_with("v=0"), "{}", offer.sdp);
    let v = node.await.unwrap();
    assert_eq!(v["update"]["complete"], 1, "{v}");
    assert_eq!(v["update"]["incomplete"], 1, "{v}");
    assert_eq!(v["scrape"]["incomplete"], 1, "{v}");
}

/// A Python with the libtorrent bindings, or `None` (test skipped): `$RIVULET_PYTHON` (as
/// `.ci/setup-interop` sets it), else `.interop/venv/bin/python` or `.interop/lt/bin/python`
/// (`python3 -m venv .interop/venv && .interop/venv/bin/pip install libtorrent==2.1.1`).
fn lt_python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.interop");
    let candidates: Vec<PathBuf> = match std::env::var_os("RIVULET_PYTHON") {
        Some(p) => vec![PathBuf::from(p)],
        None => vec![root.join("venv/bin/python"), root.join("lt/bin/python")],
    };
    for py in &candidates {
        let ok = std::process::Command::new(py)
            .args(["-c", "import libtorrent"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(py.clone());
        }
    }
    println!("SKIP: no Python with libtorrent (looked at {candidates:?})");
    None
}

/// libtorrent announces to `server` at each URL (after a rivulet seeder), gets that seeder,
/// and leaves.
async fn libtorrent_announces(py: &PathBuf, server: &TrackerServer, urls: &[String]) {
    let mut udp = UdpTracker::connect_addr(server.udp_addr().unwrap(), quick())
        .await
        .unwrap();
    udp.announce(ann(1, 4201, 0, Event::Started)).await.unwrap();
    for url in urls {
        // A fresh port per run: libtorrent is slow to reuse one it saw fail.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = Command::new(py)
            .arg(script("lt_announce.py"))
            .args([url.as_str(), &"ab".repeat(20), &port.to_string()])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(60), out)
            .await
            .expect("libtorrent script timed out")
            .expect("run python");
        let text = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value = serde_json::from_str(text.lines().last().unwrap_or_default())
            .unwrap_or_else(|e| {
                panic!(
                    "libtorrent output {text:?} {:?}: {e}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        // libtorrent got our seeder.
        assert_eq!(v["replies"][0], 1, "{url}: {v}");
        // And it left: only the rivulet seeder remains.
        let stats = server.swarms().lock().unwrap().stats(&InfoHash([0xab; 20]));
        assert_eq!((stats.complete, stats.incomplete), (1, 0), "{url}: {v}");
    }
}

#[tokio::test]
async fn libtorrent_announces_to_rivulet_server() {
    let Some(py) = lt_python() else { return };
    let server = TrackerServer::bind(
        ServerConfig::default(),
        Listen {
            udp: Some("127.0.0.1:0".parse().unwrap()),
            http: Some("127.0.0.1:0".parse().unwrap()),
        },
    )
    .await
    .unwrap();
    let urls = [
        format!("http://{}/announce", server.http_addr().unwrap()),
        format!("udp://{}/announce", server.udp_addr().unwrap()),
    ];
    libtorrent_announces(&py, &server, &urls).await;
}

/// libtorrent (OpenSSL) announcing over https:// to rivulet's TLS listener (rustls).
#[cfg(feature = "tls")]
#[tokio::test]
async fn libtorrent_announces_over_https_to_rivulet_server() {
    let Some(py) = lt_python() else { return };
    let server = crate::tls::tls_server(true, "127.0.0.1").await;
    let url = server.http_url().unwrap();
    assert!(url.starts_with("https://"));
    libtorrent_announces(&py, &server, &[url]).await;
}
