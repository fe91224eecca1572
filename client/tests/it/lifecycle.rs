//! A torrent's lifecycle as its trackers and the DHT see it: a paused torrent stays out
//! of the swarm (pausing says `stopped`, resuming `started`), [`Session::close`] says
//! `stopped` for every torrent and waits for the answers (bounded), the CLI leaves
//! through it, and a magnet link that turns out private (BEP 27) drops the peer the DHT
//! found.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rivulet::{AddOptions, Config, DhtConfig, Phase, Session};
use tracker::net::{Listen, TrackerServer};
use tracker::server::{EventCounts, ServerConfig};

use crate::transfer::{BIN, assert_same_content, make_torrent, make_torrent_with};

const LOOPBACK: &str = "127.0.0.1:0";

/// An in-process tracker (UDP and HTTP on loopback), answering with `interval` if given.
async fn tracker_server(interval: Option<Duration>) -> TrackerServer {
    let mut c = ServerConfig::default();
    if let Some(i) = interval {
        c.interval = i;
        c.min_interval = i;
    }
    TrackerServer::bind(
        c,
        Listen {
            udp: Some(LOOPBACK.parse().unwrap()),
            http: Some(LOOPBACK.parse().unwrap()),
        },
    )
    .await
    .unwrap()
}

fn events(server: &TrackerServer) -> EventCounts {
    server.swarms().lock().unwrap().event_counts()
}

async fn until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn dht_node(bootstrap: Vec<String>) -> dht::Dht {
    dht::Dht::builder()
        .bind(LOOPBACK.parse().unwrap())
        .bootstrap_hosts(bootstrap)
        .build()
        .await
        .unwrap()
}

fn session_config(dht_boot: Option<&dht::Dht>) -> Config {
    let mut c = Config::default();
    c.listen = Some(LOOPBACK.parse().unwrap());
    c.reconnect_interval = Duration::from_millis(300);
    c.dht = dht_boot.map(|b| {
        let mut d = DhtConfig::default();
        d.bootstrap = Some(vec![b.local_addr().to_string()]);
        d
    });
    c
}

/// A torrent added paused announces nothing and is not looked up; resuming announces
/// `started` and looks it up in the DHT, pausing says `stopped`, resuming again says
/// `started` and looks it up again, and closing the session says `stopped`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_torrent_stays_out_of_the_swarm() {
    let server = tracker_server(None).await;
    let url = format!("udp://{}/announce", server.udp_addr().unwrap());
    let boot = dht_node(Vec::new()).await;
    let root = tempfile::tempdir().unwrap();
    let torrent = metainfo::Torrent::from_file(make_torrent(root.path(), "v1")).unwrap();
    let id = dht::Id(torrent.info_hash.wire_id().0);
    let s = Session::new(session_config(Some(&boot))).await.unwrap();
    let mut o = AddOptions::default();
    o.paused = true;
    o.trackers = vec![url];
    let h = s.add(&torrent, root.path(), o).await.unwrap();
    assert_eq!(h.status().phase, Phase::Paused);
    // Resumed, the same torrent announces and is looked up well within this (below).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let e = events(&server);
    assert_eq!((e.started, e.regular, e.stopped), (0, 0, 0), "{e:?}");
    let d = h.discovery().unwrap();
    assert_eq!((d.dht_lookups, d.dht_announced), (0, 0), "{d:?}");
    assert!(d.trackers.is_empty(), "{d:?}");
    assert!(boot.get_peers(id).collect().await.is_empty());

    h.resume();
    until("`started`", Duration::from_secs(10), || {
        events(&server).started == 1
    })
    .await;
    until("a DHT announce", Duration::from_secs(10), || {
        h.discovery().unwrap().dht_announced > 0
    })
    .await;
    assert_eq!(
        boot.get_peers(id).collect().await,
        vec![s.listen_addr().unwrap()]
    );

    h.pause();
    until("`stopped` on pause", Duration::from_secs(10), || {
        events(&server).stopped == 1
    })
    .await;
    until("discovery to stop", Duration::from_secs(10), || {
        h.discovery().unwrap().stopped
    })
    .await;
    let lookups = h.discovery().unwrap().dht_lookups;

    h.resume();
    until("`started` on resume", Duration::from_secs(10), || {
        events(&server).started == 2
    })
    .await;
    until("a DHT lookup on resume", Duration::from_secs(10), || {
        h.discovery().unwrap().dht_lookups > lookups
    })
    .await;

    s.close().await;
    let e = events(&server);
    assert_eq!((e.started, e.stopped), (2, 2), "{e:?}");
}

/// `Session::close` tells every torrent's trackers `stopped` and has their answers when
/// it returns; a tracker that never answers holds it up at most for the stop timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_waits_for_stopped_but_not_for_a_silent_tracker() {
    let server = tracker_server(None).await;
    let url = format!("udp://{}/announce", server.udp_addr().unwrap());
    // Takes datagrams and never answers.
    let silent = tokio::net::UdpSocket::bind(LOOPBACK).await.unwrap();
    let dead = format!("udp://{}/announce", silent.local_addr().unwrap());
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s = Session::new(session_config(None)).await.unwrap();
    for (root, version) in [(&a, "v1"), (&b, "v2")] {
        let t = make_torrent_with(root.path(), version, &[&url]);
        let t = metainfo::Torrent::from_file(t).unwrap();
        let mut o = AddOptions::default();
        o.trackers = vec![dead.clone()];
        s.add(&t, root.path(), o).await.unwrap();
    }
    until("both `started`", Duration::from_secs(10), || {
        events(&server).started == 2
    })
    .await;
    let start = Instant::now();
    tokio::time::timeout(Duration::from_secs(20), s.close())
        .await
        .expect("close returns although a tracker never answers");
    eprintln!("close took {:?} (under load)", start.elapsed());
    let e = events(&server);
    assert_eq!(e.stopped, 2, "{e:?}");
}

/// The CLI leaves through `Session::close`: a seed stopped with Ctrl-C (SIGINT) has
/// told its tracker `stopped` by the time it exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_says_stopped_on_ctrl_c() {
    let server = tracker_server(None).await;
    let url = format!("http://{}/announce", server.http_addr().unwrap());
    let root = tempfile::tempdir().unwrap();
    let torrent = make_torrent(root.path(), "v1");
    let mut child = Command::new(BIN)
        .arg("seed")
        .arg(&torrent)
        .arg(root.path())
        .args([
            "--listen",
            LOOPBACK,
            "--no-dht",
            "-t",
            &url,
            "--timeout",
            "60",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    until("`started`", Duration::from_secs(15), || {
        events(&server).started == 1
    })
    .await;
    // The Ctrl-C handler is in place once the seed waits (right after announcing).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the seed did not exit after SIGINT");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    assert_eq!(events(&server).stopped, 1, "{:?}", events(&server));
}

/// `rivulet create --private` of `root`'s content.
fn private_torrent(root: &Path) -> PathBuf {
    make_torrent(root, "v1");
    let out = root.join("private.torrent");
    let o = Command::new(BIN)
        .arg("create")
        .arg(root.join("content"))
        .args(["--private", "--piece-length", "32768", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    out
}

/// BEP 27 learnt late: a magnet link (with a tracker) connects to a peer the DHT gave
/// it while the metadata is unknown; once the metadata says private, that connection
/// is dropped and never dialed again, and the download comes from the tracker's seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_magnet_that_turns_out_private_drops_the_peer_the_dht_found() {
    // The tracker asks for an announce every second (so the leech hears of the seed
    // that starts after it).
    let server = tracker_server(Some(Duration::from_secs(1))).await;
    let url = format!("udp://{}/announce", server.udp_addr().unwrap());
    let boot = dht_node(Vec::new()).await;
    let root = tempfile::tempdir().unwrap();
    let torrent = metainfo::Torrent::from_file(private_torrent(root.path())).unwrap();
    assert!(torrent.info.private);
    let hash = torrent.info_hash.wire_id();
    let id = dht::Id(hash.0);

    // X: a peer in the swarm that only the DHT knows of (a rivulet session still
    // fetching the metadata itself, so the leech cannot get it there).
    let xdir = tempfile::tempdir().unwrap();
    let x = Session::new(session_config(None)).await.unwrap();
    let xh = x
        .add(torrent.info_hash, xdir.path(), AddOptions::default())
        .await
        .unwrap();
    let helper = dht_node(vec![boot.local_addr().to_string()]).await;
    let x_addr = x.listen_addr().unwrap();
    helper
        .announce_as(id, Some(x_addr.port()), false)
        .await
        .unwrap();
    assert_eq!(boot.get_peers(id).collect().await, vec![x_addr]);

    // The leech: DHT on, the tracker from the link, short tracker intervals.
    let mut c = session_config(Some(&boot));
    c.trackers.set.min_interval = Duration::from_secs(1);
    c.trackers.set.default_interval = Duration::from_secs(1);
    let leech = Session::new(c).await.unwrap();
    let link: magnet::MagnetLink = format!(
        "magnet:?xt=urn:btih:{}&tr={}",
        hash.to_hex(),
        url.replace(':', "%3A").replace('/', "%2F")
    )
    .parse()
    .unwrap();
    let dst = tempfile::tempdir().unwrap();
    let lh = leech
        .add(link, dst.path(), AddOptions::default())
        .await
        .unwrap();
    until(
        "the leech to reach X through the DHT",
        Duration::from_secs(15),
        || xh.status().peers == 1,
    )
    .await;
    assert!(lh.discovery().unwrap().from_dht >= 1);
    assert!(!lh.status().private, "not known before the metadata");

    // The seed, on the tracker only.
    let seed = Session::new(session_config(None)).await.unwrap();
    let mut o = AddOptions::default();
    o.trackers = vec![url.clone()];
    let _sh = seed.add(&torrent, root.path(), o).await.unwrap();

    tokio::time::timeout(Duration::from_secs(25), lh.wait_complete())
        .await
        .expect("the leech completes from the tracker's seed")
        .unwrap();
    assert!(lh.status().private);
    assert_same_content(root.path(), dst.path());
    until("X to be dropped", Duration::from_secs(10), || {
        xh.status().peers == 0
    })
    .await;
    // Not dialed again (the leech redials every 300 ms).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(xh.status().peers, 0);
    let e = events(&server);
    assert!(e.started >= 2, "{e:?}");
}
