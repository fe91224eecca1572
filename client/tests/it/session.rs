//! The session owns its torrents: listing, lookup by info hash, duplicates, pause and
//! resume, remove (with and without the files), and the session-wide connection and
//! half-open limits. All on loopback, in process.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use metainfo::{Torrent, TorrentBuilder, Version};
use rivulet::{AddOptions, Config, Phase, Session, TorrentError, TorrentHandle};

use crate::transfer::noise;

const LIMIT: Duration = Duration::from_secs(60);
const PIECE: usize = 32768;

/// `root/<name>/{a.bin, sub/b.bin}` and its torrent.
fn make(root: &Path, name: &str, seed: u64, version: Version) -> Torrent {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a.bin"), noise(seed, 40 * PIECE + 123)).unwrap();
    std::fs::write(dir.join("sub/b.bin"), noise(seed + 1, 20 * PIECE)).unwrap();
    let made = TorrentBuilder::new(&dir)
        .version(version)
        .piece_length(PIECE as u64)
        .build()
        .unwrap();
    Torrent::from_bytes(made.bytes()).unwrap()
}

fn config() -> Config {
    let mut c = crate::loopback();
    c.reconnect_interval = Duration::from_millis(200);
    c
}

async fn session() -> Session {
    Session::new(config()).await.unwrap()
}

fn addr(s: &Session) -> SocketAddr {
    s.listen_addr().unwrap()
}

fn same_tree(name: &str, a: &Path, b: &Path) {
    for f in ["a.bin", "sub/b.bin"] {
        let x = std::fs::read(a.join(name).join(f)).unwrap();
        let y = std::fs::read(b.join(name).join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(x == y, "{name}/{f} differs");
    }
}

async fn until(h: &TorrentHandle, f: impl Fn(&rivulet::Status) -> bool) {
    let mut rx = h.subscribe();
    tokio::time::timeout(LIMIT, async {
        while !f(&rx.borrow_and_update()) {
            rx.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("in time: {:?}", h.status()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_lists_its_torrents_finds_them_by_hash_and_refuses_duplicates() {
    let src = tempfile::tempdir().unwrap();
    let t1 = make(src.path(), "one", 1, Version::V1);
    let t2 = make(src.path(), "two", 2, Version::Hybrid);
    let s = session().await;
    let h1 = s.add(&t1, src.path(), AddOptions::default()).await.unwrap();
    let h2 = s.add(&t2, src.path(), AddOptions::default()).await.unwrap();
    let listed: Vec<_> = s.torrents().iter().map(|h| h.info_hash()).collect();
    assert_eq!(listed, vec![t1.info_hash, t2.info_hash]);
    assert_eq!(s.get(t1.info_hash).unwrap().info_hash(), t1.info_hash);
    // A hybrid torrent is found by either hash alone.
    let v2 = metainfo::InfoHash::V2(t2.info_hash.v2().unwrap());
    let v1 = metainfo::InfoHash::V1(t2.info_hash.v1().unwrap());
    assert_eq!(s.get(v2).unwrap().info_hash(), t2.info_hash);
    assert_eq!(s.get(v1).unwrap().info_hash(), t2.info_hash);
    // The same torrent again, by .torrent or by its v2 hash: a typed error.
    let again = s.add(&t1, src.path(), AddOptions::default()).await;
    assert!(
        matches!(again, Err(TorrentError::Duplicate(h)) if h == t1.info_hash),
        "{again:?}"
    );
    assert!(matches!(
        s.add(v2, src.path(), AddOptions::default()).await,
        Err(TorrentError::Duplicate(_))
    ));
    assert_eq!(s.torrents().len(), 2);
    // The session keeps a torrent whose handles are all dropped.
    drop(h1);
    let h1 = s.get(t1.info_hash).unwrap();
    assert!(h1.status().complete);
    // Closing takes it out; then it can be added again.
    h1.close().await;
    assert!(s.get(t1.info_hash).is_none());
    assert_eq!(s.torrents().len(), 1);
    let h1 = s.add(&t1, src.path(), AddOptions::default()).await.unwrap();
    assert!(h1.fast_resumed());
    assert!(matches!(
        s.remove(metainfo::InfoHash::V1(metainfo::InfoHashV1([7; 20])), false)
            .await,
        Err(TorrentError::NotInSession(_))
    ));
    // An add given up while it checks the data frees the hash.
    h2.close().await;
    let dst = tempfile::tempdir().unwrap();
    let quick = tokio::time::timeout(
        Duration::from_micros(1),
        s.add(&t2, dst.path(), AddOptions::default()),
    )
    .await;
    if let Ok(added) = quick {
        added.unwrap().shutdown();
    }
    assert!(s.get(t2.info_hash).is_none());
    let h2 = s.add(&t2, src.path(), AddOptions::default()).await.unwrap();
    assert!(h2.status().complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_torrent_transfers_nothing_and_resumes_to_completion() {
    let src = tempfile::tempdir().unwrap();
    let half = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let t = make(src.path(), "data", 5, Version::V1);
    // A partial seed: the first 20 pieces of a.bin only.
    std::fs::create_dir_all(half.path().join("data/sub")).unwrap();
    let mut a = std::fs::read(src.path().join("data/a.bin")).unwrap();
    a[20 * PIECE..].fill(0);
    std::fs::write(half.path().join("data/a.bin"), a).unwrap();
    let (s0, s1, s2) = (session().await, session().await, session().await);
    let partial = s0
        .add(&t, half.path(), AddOptions::default())
        .await
        .unwrap();
    assert_eq!(partial.status().pieces_have, 20);

    // Added paused: no connection, nothing fetched.
    let mut o = AddOptions::with_peers(vec![addr(&s0)]);
    o.paused = true;
    let h = s1.add(&t, dst.path(), o).await.unwrap();
    assert_eq!(h.status().phase, Phase::Paused);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let st = h.status();
    assert_eq!(
        (st.peers, st.downloaded, st.pieces_have),
        (0, 0, 0),
        "{st:?}"
    );
    assert_eq!(partial.status().peers, 0);

    // Resumed: it dials its known peer and gets what that peer has.
    h.resume();
    until(&h, |s| s.pieces_have == 20).await;
    assert_eq!(h.status().phase, Phase::Transfer);

    // Paused again: connections closed, the resume file lists the 20 pieces.
    h.pause();
    until(&h, |s| s.phase == Phase::Paused && s.peers == 0).await;
    let resume = rivulet::resume::default_path(&dst.path().canonicalize().unwrap(), &t.info);
    tokio::time::timeout(LIMIT, async {
        while !rivulet::resume::load(&t.info, &dst.path().canonicalize().unwrap(), &resume)
            .is_ok_and(|have| have.iter().filter(|x| **x).count() == 20)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the resume file written on pause");
    // A full seed appears while paused: not dialed, nothing moves.
    let _full = s2.add(&t, src.path(), AddOptions::default()).await.unwrap();
    h.add_peer(addr(&s2));
    let before = h.status();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after = h.status();
    assert_eq!(
        (after.peers, after.downloaded, after.pieces_have),
        (0, before.downloaded, 20),
        "{after:?}"
    );
    assert_eq!(after.phase, Phase::Paused);
    assert_eq!(partial.status().peers, 0);

    // Resumed: it reconnects (the partial seed it knew, the full one added meanwhile)
    // and completes; nothing verified was fetched twice.
    h.resume();
    tokio::time::timeout(LIMIT, h.wait_complete())
        .await
        .expect("in time")
        .unwrap();
    same_tree("data", src.path(), dst.path());
    assert_eq!(h.status().phase, Phase::Transfer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_seed_serves_nothing_until_resumed() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let t = make(src.path(), "data", 9, Version::V2);
    let (s0, s1) = (session().await, session().await);
    let seed = s0.add(&t, src.path(), AddOptions::default()).await.unwrap();
    seed.pause();
    until(&seed, |s| s.phase == Phase::Paused).await;
    let h = s1
        .add(&t, dst.path(), AddOptions::with_peers(vec![addr(&s0)]))
        .await
        .unwrap();
    // The leech redials every 200 ms; the paused seed drops every connection.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(h.status().downloaded, 0);
    assert_eq!(seed.status().uploaded, 0);
    seed.resume();
    tokio::time::timeout(LIMIT, h.wait_complete())
        .await
        .expect("in time")
        .unwrap();
    same_tree("data", src.path(), dst.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_with_delete_leaves_the_directory_without_the_torrents_files() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let t = make(src.path(), "data", 3, Version::V1);
    let other = make(src.path(), "other", 4, Version::V1);
    let (s0, s1) = (session().await, session().await);
    let _seed = s0.add(&t, src.path(), AddOptions::default()).await.unwrap();
    let _seed2 = s0
        .add(&other, src.path(), AddOptions::default())
        .await
        .unwrap();
    // Something of the user's in the download directory and in the torrent's.
    std::fs::write(dst.path().join("mine.txt"), b"keep me").unwrap();
    std::fs::create_dir_all(dst.path().join("data")).unwrap();
    std::fs::write(dst.path().join("data/notes.txt"), b"keep me too").unwrap();
    let peers = vec![addr(&s0)];
    let h = s1
        .add(&t, dst.path(), AddOptions::with_peers(peers.clone()))
        .await
        .unwrap();
    let h2 = s1
        .add(&other, dst.path(), AddOptions::with_peers(peers))
        .await
        .unwrap();
    for x in [&h, &h2] {
        tokio::time::timeout(LIMIT, x.wait_complete())
            .await
            .expect("in time")
            .unwrap();
    }
    same_tree("other", src.path(), dst.path());
    // Without delete: the files stay, the torrent leaves the session.
    h2.remove(false).await.unwrap();
    assert!(s1.get(other.info_hash).is_none());
    same_tree("other", src.path(), dst.path());
    // With delete: exactly the torrent's files (and its resume file) go.
    s1.remove(t.info_hash, true).await.unwrap();
    assert!(s1.get(t.info_hash).is_none());
    assert!(s1.torrents().is_empty());
    let mut left: Vec<String> = walk(dst.path());
    left.sort();
    let resume_other = rivulet::resume::default_path(Path::new(""), &other.info);
    assert_eq!(
        left,
        vec![
            resume_other.to_string_lossy().into_owned(),
            "data/notes.txt".to_string(),
            "mine.txt".to_string(),
            "other/a.bin".to_string(),
            "other/sub/b.bin".to_string(),
        ]
    );
    // The handle still answers; the torrent is stopped.
    assert!(h.info().is_some());
}

/// Every file under `root`, relative.
fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap();
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// Records the most peers a torrent of `hs` ever reported at once, summed.
fn watch_peak(hs: Vec<TorrentHandle>) -> Arc<AtomicUsize> {
    let peak = Arc::new(AtomicUsize::new(0));
    for h in hs.iter() {
        let (mut rx, peak, hs) = (h.subscribe(), peak.clone(), hs.clone());
        tokio::spawn(async move {
            loop {
                let total: usize = hs.iter().map(|h| h.status().peers).sum();
                peak.fetch_max(total, Ordering::SeqCst);
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
    }
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_connection_cap_holds_across_torrents() {
    let src = tempfile::tempdir().unwrap();
    let t1 = make(src.path(), "one", 21, Version::V1);
    let t2 = make(src.path(), "two", 22, Version::V1);
    // The seed session takes 3 connections at most, over two torrents.
    let mut c = config();
    c.max_connections = 3;
    let seeder = Session::new(c).await.unwrap();
    let s1 = seeder
        .add(&t1, src.path(), AddOptions::default())
        .await
        .unwrap();
    let s2 = seeder
        .add(&t2, src.path(), AddOptions::default())
        .await
        .unwrap();
    let peak = watch_peak(vec![s1.clone(), s2.clone()]);
    // Six leeches, three per torrent; each knows the seed and the others of its
    // torrent, so those the seed refuses get the data from those it took.
    let mut leeches = Vec::new();
    for _ in 0..6 {
        leeches.push((session().await, tempfile::tempdir().unwrap()));
    }
    let mut handles = Vec::new();
    for (i, (s, dir)) in leeches.iter().enumerate() {
        let t = if i % 2 == 0 { &t1 } else { &t2 };
        let mut peers = vec![addr(&seeder)];
        peers.extend(
            leeches
                .iter()
                .enumerate()
                .filter(|(j, _)| j % 2 == i % 2 && *j != i)
                .map(|(_, (o, _))| addr(o)),
        );
        handles.push(
            s.add(t, dir.path(), AddOptions::with_peers(peers))
                .await
                .unwrap(),
        );
    }
    // A complete leech leaves (seeds stay connected to seeds), freeing its slot at the
    // seed for a leech of the other torrent.
    let mut done = tokio::task::JoinSet::new();
    for h in handles {
        done.spawn(async move {
            tokio::time::timeout(LIMIT, h.wait_complete())
                .await
                .expect("in time")
                .unwrap();
            h.close().await;
        });
    }
    while let Some(r) = done.join_next().await {
        r.unwrap();
    }
    for (i, (_, dir)) in leeches.iter().enumerate() {
        same_tree(
            if i % 2 == 0 { "one" } else { "two" },
            src.path(),
            dir.path(),
        );
    }
    let p = peak.load(Ordering::SeqCst);
    assert!((1..=3).contains(&p), "the seed had {p} peers at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_connects_in_progress_stay_under_the_half_open_limit() {
    // Five listeners that accept and never answer the handshake: each dial to them
    // stays half-open until the handshake timeout (1 s).
    let accepted = Arc::new(AtomicUsize::new(0));
    let mut addrs = Vec::new();
    let mut sockets = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(l.local_addr().unwrap());
        let accepted = accepted.clone();
        sockets.spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = l.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                held.push(sock);
            }
        });
    }
    let mut c = Config::default();
    c.max_half_open = 2;
    c.handshake_timeout = Duration::from_secs(1);
    c.reconnect_interval = Duration::from_millis(100);
    let s = Session::new(c).await.unwrap();
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let t = make(src.path(), "data", 31, Version::V1);
    let start = tokio::time::Instant::now();
    // A .torrent and a magnet link, dialing the five between them.
    let _a = s
        .add(&t, dst.path(), AddOptions::with_peers(addrs[..3].to_vec()))
        .await
        .unwrap();
    let _b = s
        .add(
            metainfo::InfoHash::V1(metainfo::InfoHashV1([9; 20])),
            dst.path(),
            AddOptions::with_peers(addrs[2..].to_vec()),
        )
        .await
        .unwrap();
    // No connect can end before its 1 s deadline: until then, two at most were
    // started, though five addresses wait and the dial rounds come every 100 ms.
    tokio::time::sleep_until(start + Duration::from_millis(800)).await;
    let n = accepted.load(Ordering::SeqCst);
    assert!(n <= 2, "{n} connects started within the first deadline");
    // As they time out, the others get their turn.
    tokio::time::timeout(LIMIT, async {
        while accepted.load(Ordering::SeqCst) < 5 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the dials go on");
    sockets.abort_all();
}

/// A TCP relay to `target` that counts the connections it relays.
async fn counting_proxy(target: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((mut down, _)) = l.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut up) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                }
            });
        }
    });
    (addr, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_magnet_keeps_the_connection_of_a_seed_that_only_dials_in() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let t = make(src.path(), "data", 41, Version::V1);
    // The leech listens and knows nobody; the seed does not listen (it announces no
    // port) and dials the leech through a relay that counts connections.
    let leecher = session().await;
    let h = leecher
        .add(t.info_hash, dst.path(), AddOptions::default())
        .await
        .unwrap();
    let (relay, relayed) = counting_proxy(addr(&leecher)).await;
    let mut c = Config::default();
    c.reconnect_interval = Duration::from_millis(200);
    let seeder = Session::new(c).await.unwrap();
    let seed = seeder
        .add(&t, src.path(), AddOptions::with_peers(vec![relay]))
        .await
        .unwrap();
    tokio::time::timeout(LIMIT, h.wait_complete())
        .await
        .expect("in time")
        .unwrap();
    same_tree("data", src.path(), dst.path());
    // One connection carried the metadata and the pieces.
    assert_eq!(relayed.load(Ordering::SeqCst), 1);
    assert_eq!(h.status().peers, 1);
    assert_eq!(seed.status().peers, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_magnet_does_not_redial_the_peer_it_got_the_metadata_from() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let t = make(src.path(), "data", 43, Version::Hybrid);
    let seeder = session().await;
    let _seed = seeder
        .add(&t, src.path(), AddOptions::default())
        .await
        .unwrap();
    let (relay, relayed) = counting_proxy(addr(&seeder)).await;
    let h = t.info_hash.v1().unwrap();
    let link = format!("magnet:?xt=urn:btih:{h}&x.pe={relay}");
    let leecher = Session::new(Config::default()).await.unwrap();
    let handle = leecher
        .add(
            rivulet::TorrentSource::parse(&link).unwrap(),
            dst.path(),
            AddOptions::default(),
        )
        .await
        .unwrap();
    tokio::time::timeout(LIMIT, handle.wait_complete())
        .await
        .expect("in time")
        .unwrap();
    same_tree("data", src.path(), dst.path());
    assert_eq!(relayed.load(Ordering::SeqCst), 1);
    assert_eq!(handle.status().peers, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_magnet_added_paused_fetches_nothing_until_resumed() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let t = make(src.path(), "data", 47, Version::V2);
    let seeder = session().await;
    let seed = seeder
        .add(&t, src.path(), AddOptions::default())
        .await
        .unwrap();
    let leecher = session().await;
    let mut o = AddOptions::with_peers(vec![addr(&seeder)]);
    o.paused = true;
    let h = leecher.add(t.info_hash, dst.path(), o).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let s = h.status();
    assert_eq!(
        (s.phase, s.peers, s.metadata_pieces),
        (Phase::Paused, 0, (0, 0))
    );
    assert_eq!(seed.status().peers, 0);
    assert!(h.info().is_none());
    h.resume();
    tokio::time::timeout(LIMIT, h.wait_complete())
        .await
        .expect("in time")
        .unwrap();
    same_tree("data", src.path(), dst.path());
}

/// A peer that uploads from its files (mapped, the default; sendfile takes the same
/// path) serves pieces it has verified but still holds only
/// in its write-back cache from memory, not from the files (where those bytes are not
/// yet): B, which can reach only A, gets every piece right while A is still
/// downloading them from the seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_uploading_from_its_files_serves_pieces_still_in_its_write_back_cache() {
    let (root, a_dir, b_dir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let torrent = make(root.path(), "cached", 31, Version::V1);
    let seeder = session().await;
    let _seed = seeder
        .add(&torrent, root.path(), AddOptions::default())
        .await
        .unwrap();

    // A: slow from the seed, uploads from its files, a cache of 8 pieces written out
    // when half full (so A's files exist, with holes where cached pieces go).
    let mut c = config();
    c.uploads = rivulet::Uploads::Mapped;
    c.cache_size = 8 * PIECE;
    c.cache_age = Duration::from_secs(600);
    c.download_limit = Some(400_000);
    let a = Session::new(c).await.unwrap();
    let a_handle = a
        .add(
            &torrent,
            a_dir.path(),
            AddOptions::with_peers(vec![addr(&seeder)]),
        )
        .await
        .unwrap();
    let b = session().await;
    let b_handle = b
        .add(
            &torrent,
            b_dir.path(),
            AddOptions::with_peers(vec![addr(&a)]),
        )
        .await
        .unwrap();

    // B gets pieces from A while A is not done: those were only in A's cache.
    until(&b_handle, |s| s.pieces_have >= 10).await;
    let a_status = a_handle.status();
    assert!(!a_status.complete, "A finished before B got pieces from it");
    until(&b_handle, |s| s.complete).await;
    let s = b_handle.status();
    assert_eq!(s.hash_failures, 0, "{s:?}");
    assert_eq!(s.peers_banned, 0, "{s:?}");
    same_tree("cached", root.path(), b_dir.path());
}
