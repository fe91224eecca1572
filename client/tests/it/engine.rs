//! The download engine through the library API, several sessions in one process on
//! loopback: a chain (seed → leech → leech) and a leech with two seeds.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use metainfo::{Torrent, TorrentBuilder, Version};
use rivulet::{AddOptions, Config, Session};

use crate::transfer::noise;

fn make(root: &Path) -> Torrent {
    let dir = root.join("data");
    std::fs::create_dir_all(dir.join("d")).unwrap();
    std::fs::write(dir.join("one.bin"), noise(1, 1_500_000)).unwrap();
    std::fs::write(dir.join("d/two.bin"), noise(2, 700_001)).unwrap();
    let made = TorrentBuilder::new(&dir)
        .version(Version::Hybrid)
        .piece_length(32768)
        .build()
        .unwrap();
    Torrent::from_bytes(made.bytes()).unwrap()
}

fn same(a: &Path, b: &Path) {
    for f in ["data/one.bin", "data/d/two.bin"] {
        assert!(
            std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
}

async fn session() -> Session {
    let mut c = crate::loopback();
    c.reconnect_interval = Duration::from_millis(300);
    Session::new(c).await.unwrap()
}

fn addr(s: &Session) -> SocketAddr {
    s.listen_addr().unwrap()
}

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_leeches_completes_through_have_messages() {
    let src = tempfile::tempdir().unwrap();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t = make(src.path());
    let (s0, s1, s2) = (session().await, session().await, session().await);
    let seed = s0.add(&t, src.path(), AddOptions::default()).await.unwrap();
    assert!(seed.status().complete);
    let a = s1
        .add(&t, d1.path(), AddOptions::with_peers(vec![addr(&s0)]))
        .await
        .unwrap();
    // The second leech knows only the first one.
    let b = s2
        .add(&t, d2.path(), AddOptions::with_peers(vec![addr(&s1)]))
        .await
        .unwrap();
    tokio::time::timeout(LIMIT, a.wait_complete())
        .await
        .expect("first leech in time")
        .unwrap();
    tokio::time::timeout(LIMIT, b.wait_complete())
        .await
        .expect("second leech in time")
        .unwrap();
    same(src.path(), d1.path());
    same(src.path(), d2.path());
    assert!(a.status().uploaded > 0);
    assert_eq!(b.status().uploaded, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leech_with_two_seeds_completes_and_a_restart_needs_nothing() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let t = make(src.path());
    let (s0, s1, s2) = (session().await, session().await, session().await);
    let _x = s0.add(&t, src.path(), AddOptions::default()).await.unwrap();
    let _y = s1.add(&t, src.path(), AddOptions::default()).await.unwrap();
    let peers = vec![addr(&s0), addr(&s1)];
    let leech = s2
        .add(&t, dst.path(), AddOptions::with_peers(peers.clone()))
        .await
        .unwrap();
    tokio::time::timeout(LIMIT, leech.wait_complete())
        .await
        .expect("in time")
        .unwrap();
    same(src.path(), dst.path());
    let got = leech.status();
    assert_eq!(got.hash_failures, 0);
    assert!(got.downloaded >= got.wanted_bytes - 65536, "{got:?}");
    // Stopped (the session keeps torrents whose handles are dropped).
    leech.shutdown();

    let again = s2
        .add(&t, dst.path(), AddOptions::with_peers(peers))
        .await
        .unwrap();
    let s = again.status();
    assert!(s.complete, "{s:?}");
    assert_eq!(s.downloaded, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_sending_corrupt_data_is_banned_and_the_good_seed_completes_the_download() {
    let src = tempfile::tempdir().unwrap();
    let bad = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let t = make(src.path());
    std::fs::create_dir_all(bad.path().join("data/d")).unwrap();
    for f in ["data/one.bin", "data/d/two.bin"] {
        std::fs::copy(src.path().join(f), bad.path().join(f)).unwrap();
    }
    let (s0, s1, s2) = (session().await, session().await, session().await);
    let _good = s0.add(&t, src.path(), AddOptions::default()).await.unwrap();
    let liar = s1.add(&t, bad.path(), AddOptions::default()).await.unwrap();
    assert!(liar.status().complete);
    // Corrupt every piece of the liar's copy after it checked its data.
    let f = bad.path().join("data/one.bin");
    let mut data = std::fs::read(&f).unwrap();
    for i in (0..data.len()).step_by(4096) {
        data[i] ^= 0xff;
    }
    std::fs::write(&f, data).unwrap();

    let leech = s2
        .add(
            &t,
            dst.path(),
            AddOptions::with_peers(vec![addr(&s1), addr(&s0)]),
        )
        .await
        .unwrap();
    tokio::time::timeout(LIMIT, leech.wait_complete())
        .await
        .expect("in time")
        .unwrap();
    same(src.path(), dst.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_upload_slot_the_second_leech_gets_it_when_the_first_is_done() {
    let src = tempfile::tempdir().unwrap();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t = make(src.path());
    let mut c = crate::loopback();
    c.max_unchoked = 1;
    let s0 = Session::new(c).await.unwrap();
    let _seed = s0.add(&t, src.path(), AddOptions::default()).await.unwrap();
    // Leeches that do not listen: they can only get data from the seed.
    let (s1, s2) = (
        Session::new(Config::default()).await.unwrap(),
        Session::new(Config::default()).await.unwrap(),
    );
    let a = s1
        .add(&t, d1.path(), AddOptions::with_peers(vec![addr(&s0)]))
        .await
        .unwrap();
    let b = s2
        .add(&t, d2.path(), AddOptions::with_peers(vec![addr(&s0)]))
        .await
        .unwrap();
    for h in [&a, &b] {
        tokio::time::timeout(LIMIT, h.wait_complete())
            .await
            .expect("in time")
            .unwrap();
    }
    same(src.path(), d1.path());
    same(src.path(), d2.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_dialing_each_other_keep_one_connection_and_complete() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let t = make(src.path());
    let (s0, s1) = (session().await, session().await);
    let (a0, a1) = (addr(&s0), addr(&s1));
    let seed = s0
        .add(&t, src.path(), AddOptions::with_peers(vec![a1]))
        .await
        .unwrap();
    let leech = s1
        .add(&t, dst.path(), AddOptions::with_peers(vec![a0]))
        .await
        .unwrap();
    tokio::time::timeout(LIMIT, leech.wait_complete())
        .await
        .expect("in time")
        .unwrap();
    same(src.path(), dst.path());
    // Still connected to each other once, after the re-dial interval has passed a few
    // times.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(seed.status().peers, 1, "{:?}", seed.status());
    assert_eq!(leech.status().peers, 1, "{:?}", leech.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_of_one_seed_and_five_leeches_completes() {
    let src = tempfile::tempdir().unwrap();
    let t = make(src.path());
    let s0 = session().await;
    let _seed = s0.add(&t, src.path(), AddOptions::default()).await.unwrap();
    let mut sessions = Vec::new();
    for _ in 0..5 {
        sessions.push(session().await);
    }
    let addrs: Vec<SocketAddr> = sessions.iter().map(addr).collect();
    let mut leeches = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        // Everyone knows the seed and the leeches before it.
        let mut peers = vec![addr(&s0)];
        peers.extend(&addrs[..i]);
        let h = s
            .add(&t, dir.path(), AddOptions::with_peers(peers))
            .await
            .unwrap();
        leeches.push((dir, h));
    }
    for (dir, h) in &leeches {
        tokio::time::timeout(LIMIT, h.wait_complete())
            .await
            .expect("in time")
            .unwrap();
        same(src.path(), dir.path());
        assert_eq!(h.status().hash_failures, 0);
    }
}
