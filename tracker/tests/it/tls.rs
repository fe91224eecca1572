//! https:// and wss://: rivulet's clients against rivulet's TLS server, against a real TLS
//! server (Python's `ssl`, i.e. OpenSSL), and libtorrent announcing to rivulet over https.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use rivulet_tracker::net::{
    HttpClientConfig, Listen, TrackerError, TrackerServer, WsTracker, client_config, http_announce,
    http_announce_with, http_scrape_with, server_config,
};
use rivulet_tracker::server::ServerConfig;
use rivulet_tracker::ws::{ClientMessage, ServerMessage, WsAnnounce};
use rivulet_tracker::{Announce, Event, InfoHash, PeerId};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Trusts the test CA (tests/data/ca.pem), which signed tests/data/tracker.pem for
/// localhost, 127.0.0.1 and ::1.
fn trusting_test_ca() -> HttpClientConfig {
    HttpClientConfig {
        tls: Some(client_config(&std::fs::read(data("ca.pem")).unwrap()).unwrap()),
        ..Default::default()
    }
}

pub(crate) async fn tls_server(udp: bool, ip: &str) -> TrackerServer {
    let tls = server_config(
        &std::fs::read(data("tracker.pem")).unwrap(),
        &std::fs::read(data("tracker.key")).unwrap(),
    )
    .unwrap();
    TrackerServer::bind_tls(
        ServerConfig::default(),
        Listen {
            udp: udp.then(|| format!("{ip}:0").parse().unwrap()),
            http: Some(format!("{ip}:0").parse().unwrap()),
        },
        tls,
    )
    .await
    .unwrap()
}

fn ann(peer: u8, port: u16, left: u64) -> Announce {
    Announce {
        left,
        event: Event::Started,
        ..Announce::new(InfoHash([0x5e; 20]), PeerId([peer; 20]), port)
    }
}

#[tokio::test]
async fn https_and_wss_against_rivulet_tls_server() {
    let s = tls_server(false, "127.0.0.1").await;
    let url = s.http_url().unwrap();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let cfg = trusting_test_ca();
    http_announce_with(&url, &ann(1, 6001, 0), &cfg)
        .await
        .unwrap();
    let r = http_announce_with(&url, &ann(2, 6002, 5), &cfg)
        .await
        .unwrap();
    assert_eq!(
        r.peers,
        vec!["127.0.0.1:6001".parse::<SocketAddr>().unwrap()]
    );
    let st = http_scrape_with(&url, &[InfoHash([0x5e; 20])], &cfg)
        .await
        .unwrap();
    assert_eq!((st[0].1.complete, st[0].1.incomplete), (1, 1));

    // wss:// on the same port, same swarm.
    let ws_url = s.ws_url().unwrap();
    assert!(ws_url.starts_with("wss://"), "{ws_url}");
    let mut w = WsTracker::connect_with(&ws_url, cfg.tls.clone())
        .await
        .unwrap();
    w.send(&ClientMessage::Announce(WsAnnounce {
        info_hash: InfoHash([0x5e; 20]),
        peer_id: PeerId([3; 20]),
        uploaded: 0,
        downloaded: 0,
        left: Some(5),
        event: Event::Started,
        numwant: 0,
        offers: vec![],
    }))
    .await
    .unwrap();
    let m = tokio::time::timeout(Duration::from_secs(10), w.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            m,
            ServerMessage::AnnounceReply {
                complete: 1,
                incomplete: 2,
                ..
            }
        ),
        "{m:?}"
    );

    // Without the test CA the certificate is not trusted, over https and wss alike.
    let e = http_announce(&url, &ann(4, 6004, 5)).await.unwrap_err();
    assert!(matches!(e, TrackerError::Tls(_)), "{e}");
    let e = WsTracker::connect(&ws_url).await.unwrap_err();
    assert!(matches!(e, TrackerError::Tls(_)), "{e}");
    // Nor is it valid for another name (the certificate names localhost, 127.0.0.1, ::1).
    let elsewhere = tls_server(false, "127.0.0.2").await;
    let e = http_announce_with(&elsewhere.http_url().unwrap(), &ann(4, 6004, 5), &cfg)
        .await
        .unwrap_err();
    assert!(matches!(e, TrackerError::Tls(_)), "{e}");
}

/// A TLS server that is not ours: Python's `ssl` module (OpenSSL) serving a fixed
/// bencoded announce reply.
#[tokio::test]
async fn https_client_against_openssl_server() {
    let Some(py) = ["python3", "python"].into_iter().find(|p| {
        std::process::Command::new(p)
            .args(["-c", "import ssl, http.server"])
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        println!("SKIP: no python3 with ssl");
        return;
    };
    let script = r#"
import http.server, ssl, sys
body = b"d8:completei1e10:incompletei2e8:intervali900e5:peers6:\x7f\x00\x00\x01\x1a\xe1e"
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path.startswith("/announce?") and "info_hash=" in self.path
        self.send_response(200 if ok else 400)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], ssl.OPENSSL_VERSION, flush=True)
srv.serve_forever()
"#;
    let mut child = Command::new(py)
        .args(["-c", script])
        .arg(data("tracker.pem"))
        .arg(data("tracker.key"))
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .await
        .unwrap();
    let port: u16 = line.split_whitespace().next().unwrap().parse().unwrap();
    println!("python TLS server: {}", line.trim());
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{port}/announce");
        let r = http_announce_with(&url, &ann(1, 6001, 5), &trusting_test_ca())
            .await
            .unwrap();
        assert_eq!(
            (r.complete, r.incomplete, r.interval),
            (Some(1), Some(2), 900)
        );
        assert_eq!(
            r.peers,
            vec!["127.0.0.1:6881".parse::<SocketAddr>().unwrap()]
        );
    }
    let _ = child.kill().await;
}
