//! Peer discovery end to end on loopback: a rivulet seed and a rivulet leech that are
//! never told about each other and meet only through a tracker (UDP, HTTP), only through
//! the DHT (a local bootstrap node), or only through local service discovery (multicast
//! kept on the loopback interface). The tracker tests also check what the tracker heard:
//! `completed` once, then `stopped` when the leech exits.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rivulet::{AddOptions, Config, DhtConfig, LsdConfig, Session};
use tracker::net::{Listen, TrackerServer};
use tracker::server::ServerConfig;

use crate::transfer::{Proc, assert_same_content, make_torrent};

const BIN: &str = env!("CARGO_BIN_EXE_rivulet");
const LOOPBACK: &str = "127.0.0.1:0";

fn info_hash(torrent: &Path) -> [u8; 20] {
    metainfo::Torrent::from_file(torrent)
        .unwrap()
        .info_hash
        .wire_id()
        .0
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn seed_with(torrent: &Path, dir: &Path, extra: &[&str]) -> Proc {
    let p = Proc::spawn(
        Command::new(BIN)
            .arg("seed")
            .arg(torrent)
            .arg(dir)
            .args(["--listen", LOOPBACK, "--timeout", "60"])
            .args(extra),
    );
    p.expect_line("seeding ", Duration::from_secs(30));
    p
}

fn download_with(torrent: &Path, dir: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("download")
        .arg(torrent)
        .arg("-o")
        .arg(dir)
        .args(["--listen", LOOPBACK, "--timeout", "30", "--json"])
        .args(extra)
        .output()
        .unwrap()
}

/// Every stdout line parsed as JSON (a line that is not JSON fails the test).
pub(crate) fn json_events(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn via_tracker(scheme: &str) {
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
    let url = match scheme {
        "udp" => format!("udp://{}/announce", server.udp_addr().unwrap()),
        _ => format!("http://{}/announce", server.http_addr().unwrap()),
    };
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = make_torrent(src.path(), "v1");
    let ih = tracker::InfoHash(info_hash(&torrent));
    let swarms = server.swarms();
    let stats = || swarms.lock().unwrap().stats(&ih);

    let _seed = seed_with(&torrent, src.path(), &["--no-dht", "-t", &url]);
    // The seed announced `started` as a seeder.
    wait_for("the seed's announce", Duration::from_secs(20), || {
        stats().complete == 1
    });
    let o = download_with(&torrent, dst.path(), &["--no-dht", "-t", &url]);
    assert!(o.status.success(), "{o:?}");
    assert_same_content(src.path(), dst.path());
    // --json: every stdout line is one event; added and metadata first, completed last.
    let events = json_events(&o.stdout);
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names[..2], ["added", "metadata"], "{names:?}");
    assert_eq!(names.last(), Some(&"completed"), "{names:?}");
    assert!(events[1]["pieces"].as_u64().unwrap() > 0);
    assert_eq!(events.last().unwrap()["complete"], true);
    // The leech said `completed` (counted once) and `stopped` on its way out: only the
    // seed is left in the swarm.
    let s = stats();
    let log = String::from_utf8_lossy(&o.stderr);
    assert_eq!(s.downloaded, 1, "{s:?}\n{log}");
    assert_eq!((s.complete, s.incomplete), (1, 0), "{s:?}");
}

#[test]
fn seed_and_leech_meet_through_a_udp_tracker() {
    via_tracker("udp");
}

#[test]
fn seed_and_leech_meet_through_an_http_tracker() {
    via_tracker("http");
}

#[test]
fn an_unreachable_tracker_is_named_in_the_error() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = make_torrent(src.path(), "v1");
    // An HTTP port nobody listens on: connection refused at once.
    let port = std::net::TcpListener::bind(LOOPBACK)
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/announce");
    let o = Command::new(BIN)
        .arg("download")
        .arg(&torrent)
        .arg("-o")
        .arg(dst.path())
        .args([
            "--listen",
            LOOPBACK,
            "--no-dht",
            "--timeout",
            "3",
            "-t",
            &url,
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{o:?}");
    let events = json_events(&o.stdout);
    let last = events.last().unwrap();
    assert_eq!(last["event"], "error", "{events:?}");
    assert_eq!(last["exit_code"], 4);
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("tracker unreachable")
    );
    let err = String::from_utf8_lossy(&o.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains("tracker unreachable"), "{err}");
    assert!(last.contains(&url), "{err}");
}

#[test]
fn seed_and_leech_meet_through_the_dht() {
    let node = Proc::spawn(Command::new(BIN).args([
        "dht",
        "node",
        "--listen",
        LOOPBACK,
        "--no-bootstrap",
        "--timeout",
        "60",
    ]));
    // "listening on 127.0.0.1:PORT id HEX"
    let line = node.expect_line("listening on ", Duration::from_secs(20));
    let boot = line.split_whitespace().next().unwrap().to_string();
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = make_torrent(src.path(), "v1");
    let _seed = seed_with(&torrent, src.path(), &["--dht-bootstrap", &boot]);
    let o = download_with(&torrent, dst.path(), &["--dht-bootstrap", &boot]);
    assert!(o.status.success(), "{o:?}");
    assert_same_content(src.path(), dst.path());
}

/// Two sessions find each other by BEP 14 multicast. The group is joined on 127.0.0.1 and
/// sent from there (so nothing leaves this host), on a port of its own so that concurrent
/// runs and real LSD traffic stay apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_and_leech_meet_through_local_service_discovery() {
    if !multicast_on_loopback() {
        return;
    }
    let port = std::net::UdpSocket::bind(LOOPBACK)
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = || {
        let mut lsd = LsdConfig::default();
        lsd.group_v4 = Some(SocketAddr::new(rivulet::lsd::GROUP_V4.ip(), port));
        lsd.group_v6 = None;
        lsd.interface_v4 = std::net::Ipv4Addr::LOCALHOST;
        let mut c = Config::default();
        c.listen = Some(LOOPBACK.parse().unwrap());
        c.reconnect_interval = Duration::from_millis(300);
        c.lsd = Some(lsd);
        c
    };
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent_path = make_torrent(src.path(), "v1");
    let torrent = metainfo::Torrent::from_file(&torrent_path).unwrap();
    let seeder = Session::new(config()).await.unwrap();
    let leecher = Session::new(config()).await.unwrap();
    assert!(seeder.lsd_addr().is_some() && leecher.lsd_addr().is_some());
    let _seed = seeder
        .add(&torrent, src.path(), Default::default())
        .await
        .unwrap();
    let leech = leecher
        .add(&torrent, dst.path(), Default::default())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), leech.wait_complete())
        .await
        .expect("the leech completes")
        .unwrap();
    assert!(leech.discovery().unwrap().from_lsd >= 1);
    assert_same_content(src.path(), dst.path());
}

async fn dht_session(bootstrap: Vec<String>) -> Session {
    let mut dht = DhtConfig::default();
    dht.bootstrap = Some(bootstrap);
    let mut c = Config::default();
    c.listen = Some(LOOPBACK.parse().unwrap());
    c.reconnect_interval = Duration::from_millis(300);
    c.dht = Some(dht);
    Session::new(c).await.unwrap()
}

/// BEP 5 `port`: two sessions whose DHT nodes know nobody connect as peers; each sends
/// its DHT port, and each node ends up with the other in its routing table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_port_messages_join_their_dht_nodes() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let torrent = metainfo::Torrent::from_file(make_torrent(src.path(), "v1")).unwrap();
    let a = dht_session(Vec::new()).await;
    let b = dht_session(Vec::new()).await;
    for s in [&a, &b] {
        assert_eq!(s.dht().unwrap().stats().await.unwrap().table.nodes, 0);
        // The DHT node shares the listening port (UDP beside TCP).
        assert_eq!(s.dht().unwrap().local_addr(), s.listen_addr().unwrap());
    }
    let _seed = a
        .add(&torrent, src.path(), Default::default())
        .await
        .unwrap();
    let leech = b
        .add(
            &torrent,
            dst.path(),
            AddOptions::with_peers(vec![a.listen_addr().unwrap()]),
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), leech.wait_complete())
        .await
        .expect("the leech completes")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    for (s, other) in [(&a, &b), (&b, &a)] {
        loop {
            let st = s.dht().unwrap().stats().await.unwrap();
            if st.table.nodes >= 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} never learnt {}'s DHT node",
                s.listen_addr().unwrap(),
                other.dht().unwrap().local_addr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// BEP 27: a private torrent is never looked up or announced in the DHT, while a public
/// torrent in the same session is (the control that the DHT works).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_torrents_stay_off_the_dht() {
    let boot = dht::Dht::builder()
        .bind(LOOPBACK.parse().unwrap())
        .bootstrap([])
        .build()
        .await
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let public_path = make_torrent(root.path(), "v1");
    let private_path = root.path().join("private.torrent");
    let o = Command::new(BIN)
        .arg("create")
        .arg(root.path().join("content"))
        .args(["--private", "--piece-length", "32768", "-o"])
        .arg(&private_path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let public = metainfo::Torrent::from_file(&public_path).unwrap();
    let private = metainfo::Torrent::from_file(&private_path).unwrap();
    assert!(private.info.private && !public.info.private);

    let s = dht_session(vec![boot.local_addr().to_string()]).await;
    let hp = s
        .add(&public, root.path(), Default::default())
        .await
        .unwrap();
    let hq = s
        .add(&private, root.path(), Default::default())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while hp.discovery().unwrap().dht_announced == 0 {
        assert!(
            Instant::now() < deadline,
            "the public torrent was never announced"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let me = s.listen_addr().unwrap();
    let id = |t: &metainfo::Torrent| dht::Id(t.info_hash.wire_id().0);
    assert_eq!(boot.get_peers(id(&public)).collect().await, vec![me]);
    assert!(boot.get_peers(id(&private)).collect().await.is_empty());
    assert_eq!(hq.discovery().unwrap().dht_lookups, 0);
}

/// Whether a datagram sent to the BEP 14 group on the loopback interface comes back to
/// a socket that joined the group there (it does on Linux, whose `lo` takes multicast
/// when it is chosen as the interface). Tests that need it print `SKIP:` otherwise.
pub(crate) fn multicast_on_loopback() -> bool {
    use socket2::{Domain, Protocol, Socket, Type};
    let probe = || -> std::io::Result<bool> {
        let group = std::net::Ipv4Addr::new(239, 192, 152, 143);
        let lo = std::net::Ipv4Addr::LOCALHOST;
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.bind(&SocketAddr::from(([0, 0, 0, 0], 0)).into())?;
        let port = s.local_addr()?.as_socket().map_or(0, |a| a.port());
        s.join_multicast_v4(&group, &lo)?;
        s.set_multicast_if_v4(&lo)?;
        s.set_multicast_loop_v4(true)?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.send_to(b"probe", &SocketAddr::from((group, port)).into())?;
        let mut buf = [std::mem::MaybeUninit::new(0u8); 16];
        Ok(s.recv_from(&mut buf).is_ok_and(|(n, _)| n == 5))
    };
    let ok = probe().unwrap_or(false);
    if !ok {
        println!("SKIP: multicast on the loopback interface does not work here");
    }
    ok
}

/// A session with LSD on the BEP 14 group and port, kept on the loopback interface.
async fn lsd_session_on_lo() -> Session {
    let mut lsd = LsdConfig::default();
    lsd.group_v6 = None;
    lsd.interface_v4 = std::net::Ipv4Addr::LOCALHOST;
    let mut c = Config::default();
    c.listen = Some(LOOPBACK.parse().unwrap());
    c.reconnect_interval = Duration::from_millis(300);
    c.lsd = Some(lsd);
    Session::new(c).await.unwrap()
}

/// BEP 14 against libtorrent 2.1.1's LSD (which multicasts on 127.0.0.1 when it listens
/// there): rivulet hears a libtorrent seed's announce and downloads from it; a libtorrent
/// leech hears a rivulet seed's announce and downloads from it. No tracker, DHT or
/// `--peer` anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_service_discovery_with_libtorrent_both_ways() {
    let Some(python) = crate::transfer::python() else {
        println!("SKIP: no python with libtorrent (set RIVULET_PYTHON)");
        return;
    };
    if !multicast_on_loopback() {
        return;
    }
    let lsd_on = [("LT_LSD", "1")];

    // libtorrent seeds, rivulet leeches: rivulet joins the group first, so it hears the
    // announce libtorrent makes when it adds the torrent.
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let path = make_torrent(src.path(), "v1");
    let torrent = metainfo::Torrent::from_file(&path).unwrap();
    let leecher = lsd_session_on_lo().await;
    let leech = leecher
        .add(&torrent, dst.path(), Default::default())
        .await
        .unwrap();
    let (py, src_path, p) = (python.clone(), src.path().to_path_buf(), path.clone());
    let _lt_seed = tokio::task::spawn_blocking(move || {
        crate::transfer::lt_peer_with(&py, "seed", &p, &src_path, 1, &lsd_on)
    })
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(40), leech.wait_complete())
        .await
        .expect("rivulet completes from the libtorrent seed it heard by LSD")
        .unwrap();
    assert!(leech.discovery().unwrap().from_lsd >= 1);
    assert_same_content(src.path(), dst.path());
    drop(leech);
    drop(leecher);

    // rivulet seeds, libtorrent leeches: libtorrent hears rivulet's announce.
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let path = make_torrent(src.path(), "v1");
    let torrent = metainfo::Torrent::from_file(&path).unwrap();
    let (py, dst_path, p) = (python.clone(), dst.path().to_path_buf(), path.clone());
    let (lt_leech, _) = tokio::task::spawn_blocking(move || {
        crate::transfer::lt_peer_with(&py, "leech", &p, &dst_path, 1, &lsd_on)
    })
    .await
    .unwrap();
    let seeder = lsd_session_on_lo().await;
    let _seed = seeder
        .add(&torrent, src.path(), Default::default())
        .await
        .unwrap();
    let lt_leech = tokio::task::spawn_blocking(move || {
        lt_leech.expect_line("DONE", Duration::from_secs(40));
        lt_leech
    })
    .await
    .unwrap();
    assert_same_content(src.path(), dst.path());
    drop(lt_leech);
}

/// A magnet link with no peers in it: the metadata's peers come from the DHT, and from
/// the link's own tracker (`tr`).
#[test]
fn a_magnet_resolves_through_the_dht_and_through_its_tracker() {
    let node = Proc::spawn(Command::new(BIN).args([
        "dht",
        "node",
        "--listen",
        LOOPBACK,
        "--no-bootstrap",
        "--timeout",
        "60",
    ]));
    let line = node.expect_line("listening on ", Duration::from_secs(20));
    let boot = line.split_whitespace().next().unwrap().to_string();
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
                http: None,
            },
        ))
        .unwrap();
    let url = format!("udp://{}/announce", server.udp_addr().unwrap());
    let src = tempfile::tempdir().unwrap();
    let torrent = make_torrent(src.path(), "v1");
    let h = hex(&info_hash(&torrent));
    let _seed = seed_with(
        &torrent,
        src.path(),
        &["--dht-bootstrap", &boot, "-t", &url],
    );
    let ih = tracker::InfoHash(info_hash(&torrent));
    let swarms = server.swarms();
    wait_for("the seed's announce", Duration::from_secs(20), || {
        swarms.lock().unwrap().stats(&ih).complete == 1
    });

    let dst = tempfile::tempdir().unwrap();
    let link = format!("magnet:?xt=urn:btih:{h}");
    let o = download_with(Path::new(&link), dst.path(), &["--dht-bootstrap", &boot]);
    assert!(o.status.success(), "{o:?}");
    assert_same_content(src.path(), dst.path());

    let dst = tempfile::tempdir().unwrap();
    let link = format!("magnet:?xt=urn:btih:{h}&tr={url}");
    let o = download_with(Path::new(&link), dst.path(), &["--no-dht"]);
    assert!(o.status.success(), "{o:?}");
    assert_same_content(src.path(), dst.path());
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
