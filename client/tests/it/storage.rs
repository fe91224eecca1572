//! File selection, streaming reads, fast resume, unsafe paths and v2-only torrents,
//! through the library API with sessions in one process on loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use metainfo::{Torrent, TorrentBuilder, Version};
use rivulet::{AddOptions, Session, TorrentHandle};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::transfer::noise;

/// Five files with 32 KiB pieces (v1 layout: pieces straddle files).
const FILES: &[(&str, usize)] = &[
    ("a.bin", 300_000),
    ("b.bin", 100_001),
    ("c/tiny.txt", 10),
    ("c/d.bin", 250_000),
    ("e.bin", 400_000),
];

fn make(root: &Path, version: Version) -> Torrent {
    let dir = root.join("data");
    for (i, (name, len)) in FILES.iter().enumerate() {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, noise(i as u64 + 1, *len)).unwrap();
    }
    let made = TorrentBuilder::new(&dir)
        .version(version)
        .piece_length(32768)
        .build()
        .unwrap();
    Torrent::from_bytes(made.bytes()).unwrap()
}

/// The torrent's file index of a content file by name.
fn index(t: &Torrent, name: &str) -> usize {
    let want = Path::new("data").join(name);
    t.info
        .files
        .iter()
        .position(|f| f.safe_path() == want)
        .unwrap()
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

async fn complete(h: &TorrentHandle) {
    tokio::time::timeout(LIMIT, h.wait_complete())
        .await
        .expect("in time")
        .unwrap();
}

/// Waits until `f` holds for the handle's status.
async fn until(h: &TorrentHandle, f: impl Fn(&rivulet::Status) -> bool) {
    let mut rx = h.subscribe();
    tokio::time::timeout(LIMIT, async {
        while !f(&rx.borrow_and_update()) {
            rx.changed().await.unwrap();
        }
    })
    .await
    .expect("in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_selected_files_are_fetched_and_raising_a_skipped_file_fetches_it() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let t = make(src.path(), Version::V1);
    let (s0, s1) = (session().await, session().await);
    let _seed = s0.add(&t, src.path(), AddOptions::default()).await.unwrap();
    let b = index(&t, "b.bin");
    let mut o = AddOptions::with_peers(vec![addr(&s0)]);
    o.file_priorities = vec![0; t.info.files.len()];
    o.file_priorities[b] = 7;
    o.sequential = true;
    let h = s1.add(&t, dst.path(), o).await.unwrap();
    complete(&h).await;
    assert!(
        std::fs::read(src.path().join("data/b.bin")).unwrap()
            == std::fs::read(dst.path().join("data/b.bin")).unwrap()
    );
    // A skipped file sharing no piece with b.bin is not created; one that shares a
    // piece has exactly that piece's part done.
    let layout = t.info.layout();
    let wanted: Vec<u32> = layout.file_pieces(b).collect();
    let files = h.files();
    assert_eq!(files[b].done, files[b].length);
    let mut untouched = 0;
    for (name, _) in FILES {
        let i = index(&t, name);
        if i == b {
            continue;
        }
        assert_eq!(files[i].priority, 0);
        let shared = layout.file_pieces(i).any(|p| wanted.contains(&p));
        if !shared {
            untouched += 1;
            assert_eq!(files[i].done, 0, "{name}");
            assert!(!dst.path().join("data").join(name).exists(), "{name}");
        }
    }
    assert!(untouched >= 2, "the layout leaves files untouched");
    // a.bin shares its last piece with b.bin: only that piece's part of it is done.
    let a = &files[index(&t, "a.bin")];
    assert_eq!(a.done, 300_000 % 32768);
    let s = h.status();
    assert_eq!(s.downloaded, wanted.len() as u64 * 32768, "{s:?}");

    // Raising a skipped file makes the torrent incomplete, then complete with it.
    let d = index(&t, "c/d.bin");
    h.set_file_priority(d, 4);
    until(&h, |s| !s.complete).await;
    complete(&h).await;
    assert!(
        std::fs::read(src.path().join("data/c/d.bin")).unwrap()
            == std::fs::read(dst.path().join("data/c/d.bin")).unwrap()
    );
    assert_eq!(h.files()[d].done, 250_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_streams_a_skipped_file_while_it_downloads_after_seeking() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let t = make(src.path(), Version::V1);
    let (s0, s1) = (session().await, session().await);
    let _seed = s0.add(&t, src.path(), AddOptions::default()).await.unwrap();
    // Everything skipped, and no peer yet: the reader must wait.
    let mut o = AddOptions::default();
    o.file_priorities = vec![0; t.info.files.len()];
    let h = s1.add(&t, dst.path(), o).await.unwrap();
    assert!(h.status().complete, "nothing is wanted");
    let d = index(&t, "c/d.bin");
    let want = std::fs::read(src.path().join("data/c/d.bin")).unwrap();
    let mut r = h.reader(d).unwrap();
    assert_eq!(r.len(), want.len() as u64);

    // Seek to the middle first, read a little while no peer is there: it waits.
    r.seek(std::io::SeekFrom::Start(125_000)).await.unwrap();
    let mut buf = vec![0u8; 1000];
    let early = tokio::time::timeout(Duration::from_millis(300), r.read_exact(&mut buf)).await;
    assert!(early.is_err(), "nothing can be read without a peer");
    h.add_peer(addr(&s0));
    let mut buf = vec![0u8; 1000];
    tokio::time::timeout(LIMIT, r.read_exact(&mut buf))
        .await
        .expect("in time")
        .unwrap();
    assert_eq!(buf, want[125_000..126_000]);
    // Then the end, then the whole file from the start.
    r.seek(std::io::SeekFrom::End(-10)).await.unwrap();
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).await.unwrap();
    assert_eq!(tail, want[want.len() - 10..]);
    r.seek(std::io::SeekFrom::Start(0)).await.unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(LIMIT, r.read_to_end(&mut all))
        .await
        .expect("in time")
        .unwrap();
    assert!(all == want, "the streamed bytes differ");
    assert!(
        r.seek(std::io::SeekFrom::Current(-1_000_000))
            .await
            .is_err()
    );

    // Only the pieces the reader needed were fetched: a.bin (no piece shared with
    // c/d.bin) is untouched, and the torrent is still complete (nothing wanted).
    let files = h.files();
    assert_eq!(files[index(&t, "a.bin")].done, 0);
    assert!(h.status().complete);
    assert_eq!(files[d].done, 250_000);
    assert_eq!(files[d].priority, 0);
    let s = h.status();
    assert!(s.downloaded < 250_000 + 2 * 32768, "{s:?}");
    assert!(h.reader(t.info.files.len()).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_resume_skips_the_check_until_a_file_changes() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let t = make(src.path(), Version::Hybrid);
    let (s0, s1) = (session().await, session().await);
    let _seed = s0.add(&t, src.path(), AddOptions::default()).await.unwrap();
    let peers = vec![addr(&s0)];
    let h = s1
        .add(&t, dst.path(), AddOptions::with_peers(peers.clone()))
        .await
        .unwrap();
    assert!(!h.fast_resumed());
    complete(&h).await;
    h.close().await;
    drop(h);

    // A restart trusts the resume file: it does not even notice a flipped byte whose
    // file keeps its size and modification time.
    let a = dst.path().join("data/a.bin");
    let mtime = std::fs::metadata(&a).unwrap().modified().unwrap();
    let mut data = std::fs::read(&a).unwrap();
    data[1000] ^= 0xff;
    std::fs::write(&a, &data).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&a)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let h = s1
        .add(&t, dst.path(), AddOptions::with_peers(peers.clone()))
        .await
        .unwrap();
    assert!(h.fast_resumed());
    assert!(h.status().complete);
    h.close().await;
    drop(h);

    // Touch the file: the resume file no longer matches, the data is checked in full
    // and exactly the bad piece is fetched again.
    std::fs::File::options()
        .write(true)
        .open(&a)
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    let h = s1
        .add(&t, dst.path(), AddOptions::with_peers(peers.clone()))
        .await
        .unwrap();
    assert!(!h.fast_resumed());
    complete(&h).await;
    assert_eq!(h.status().downloaded, 32768);
    assert!(std::fs::read(&a).unwrap() == std::fs::read(src.path().join("data/a.bin")).unwrap());
    h.close().await;
    drop(h);

    // A corrupt resume file: a full check (which finds everything good).
    let resume = rivulet::resume::default_path(&dst.path().canonicalize().unwrap(), &t.info);
    assert!(resume.exists());
    let h = s1
        .add(&t, dst.path(), AddOptions::with_peers(peers.clone()))
        .await
        .unwrap();
    assert!(h.fast_resumed());
    h.shutdown();
    std::fs::write(&resume, b"d7:versioni1e4:hash3:abce").unwrap();
    let h = s1
        .add(&t, dst.path(), AddOptions::with_peers(peers))
        .await
        .unwrap();
    assert!(!h.fast_resumed());
    assert!(h.status().complete);
    assert_eq!(h.status().downloaded, 0);
}

/// Bencodes a byte string.
fn bstr(s: &[u8]) -> Vec<u8> {
    let mut v = format!("{}:", s.len()).into_bytes();
    v.extend_from_slice(s);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torrent_with_unsafe_paths_writes_nothing_outside_the_download_directory() {
    // root/seed holds the seed's copy, root/x/y/dl the download; the hostile paths
    // climb out of dl (and name absolute places) with a tag we can search for.
    let root = tempfile::tempdir().unwrap();
    let tag = format!("escape{}", std::process::id());
    let paths: Vec<Vec<Vec<u8>>> = vec![
        vec![
            b"..".to_vec(),
            b"..".to_vec(),
            b"..".to_vec(),
            tag.clone().into_bytes(),
        ],
        vec![format!("/tmp/{tag}-abs").into_bytes()],
        vec![b"/".to_vec(), format!("{tag}-root").into_bytes()],
        vec![format!("../../{tag}-inner").into_bytes()],
        vec![
            b"ok".to_vec(),
            b".".to_vec(),
            b"".to_vec(),
            format!("{tag}-dots").into_bytes(),
        ],
        vec![format!("C:\\{tag}-win").into_bytes()],
    ];
    let lens = [40_000usize, 1000, 33_000, 5, 70_000, 123];
    let content: Vec<Vec<u8>> = lens
        .iter()
        .enumerate()
        .map(|(i, &l)| noise(100 + i as u64, l))
        .collect();
    let stream: Vec<u8> = content.concat();
    let pieces: Vec<u8> = stream
        .chunks(32768)
        .flat_map(|c| Sha1::digest(c).to_vec())
        .collect();
    let mut files = b"l".to_vec();
    for (p, l) in paths.iter().zip(lens) {
        files.extend(format!("d6:lengthi{l}e4:pathl").into_bytes());
        for c in p {
            files.extend(bstr(c));
        }
        files.extend(b"ee");
    }
    files.extend(b"e");
    let mut info = b"d5:files".to_vec();
    info.extend(files);
    info.extend(b"4:name");
    info.extend(bstr(format!("../../../{tag}-name").as_bytes()));
    info.extend(b"12:piece lengthi32768e6:pieces");
    info.extend(bstr(&pieces));
    info.extend(b"e");
    let mut raw = b"d4:info".to_vec();
    raw.extend(info);
    raw.extend(b"e");
    let t = Torrent::from_bytes(&raw).unwrap();

    // The seed's copy, written through the storage (which places files safely).
    let seed_dir = root.path().join("seed");
    let st = rivulet::storage::Storage::new(&t.info, &seed_dir).unwrap();
    for p in 0..t.info.piece_count() {
        let s = p as usize * 32768;
        let e = (s + 32768).min(stream.len());
        st.write_piece(p, &stream[s..e]).unwrap();
    }
    st.finish().unwrap();
    drop(st);

    let dl = root.path().join("x/y/dl");
    let (s0, s1) = (session().await, session().await);
    let seed = s0.add(&t, &seed_dir, AddOptions::default()).await.unwrap();
    assert!(seed.status().complete);
    let h = s1
        .add(&t, &dl, AddOptions::with_peers(vec![addr(&s0)]))
        .await
        .unwrap();
    complete(&h).await;
    h.close().await;
    // Every file is inside dl, with the right bytes.
    let dl_real = dl.canonicalize().unwrap();
    for (f, want) in t.info.files.iter().zip(&content) {
        let p = dl.join(f.safe_path());
        assert!(
            p.canonicalize().unwrap().starts_with(&dl_real),
            "{}",
            p.display()
        );
        assert!(std::fs::read(&p).unwrap() == *want, "{}", p.display());
    }
    // Nothing anywhere around: root holds only seed/ and x/y/dl, and no tagged name
    // appeared in any ancestor of the download directory.
    let mut top: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["seed", "x"]);
    assert_eq!(walk(&root.path().join("x")).len(), walk(&dl).len() + 2);
    let mut anc: Option<&Path> = Some(&dl);
    while let Some(a) = anc {
        if !a.starts_with(&dl) {
            for e in std::fs::read_dir(a).unwrap() {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                assert!(!name.contains(&tag), "{name} in {}", a.display());
            }
        }
        anc = a.parent();
    }
    assert!(!Path::new("/").join(format!("{tag}-root")).exists());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push(p.clone());
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_only_torrent_downloads_and_streams() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let t = make(src.path(), Version::V2);
    assert!(t.info.pieces.is_empty());
    let (s0, s1) = (session().await, session().await);
    let _seed = s0.add(&t, src.path(), AddOptions::default()).await.unwrap();
    let h = s1
        .add(&t, dst.path(), AddOptions::with_peers(vec![addr(&s0)]))
        .await
        .unwrap();
    let e = index(&t, "e.bin");
    let mut r = h.reader(e).unwrap();
    r.seek(std::io::SeekFrom::Start(399_000)).await.unwrap();
    let mut tail = Vec::new();
    tokio::time::timeout(LIMIT, r.read_to_end(&mut tail))
        .await
        .expect("in time")
        .unwrap();
    assert_eq!(tail, noise(5, 400_000)[399_000..]);
    complete(&h).await;
    for (name, _) in FILES {
        assert!(
            std::fs::read(src.path().join("data").join(name)).unwrap()
                == std::fs::read(dst.path().join("data").join(name)).unwrap(),
            "{name}"
        );
    }
    let s = h.status();
    assert_eq!(s.hash_failures, 0);
    assert_eq!(s.downloaded, FILES.iter().map(|f| f.1 as u64).sum::<u64>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_resume_file_survives_a_crash_after_it_was_written() {
    // A seed with the first half of every file's data: the leech stalls half done.
    let src = tempfile::tempdir().unwrap();
    let half = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let t = make(src.path(), Version::V1);
    // The torrent's byte stream, in torrent order.
    let stream: Vec<u8> = t
        .info
        .files
        .iter()
        .flat_map(|f| std::fs::read(src.path().join(f.safe_path())).unwrap())
        .collect();
    let cut = 16 * 32768;
    for (name, _) in FILES {
        let i = index(&t, name);
        let off = t.info.files[i].offset as usize;
        let len = t.info.files[i].length as usize;
        let mut d = stream[off..off + len].to_vec();
        for (k, b) in d.iter_mut().enumerate() {
            if off + k >= cut {
                *b = 0;
            }
        }
        let p = half.path().join("data").join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, d).unwrap();
    }
    let (s0, s1) = (session().await, session().await);
    let seed = s0
        .add(&t, half.path(), AddOptions::default())
        .await
        .unwrap();
    assert_eq!(seed.status().pieces_have, 16);
    let mut o = AddOptions::with_peers(vec![addr(&s0)]);
    o.resume_interval = Some(Duration::from_millis(100));
    let h = s1.add(&t, dst.path(), o).await.unwrap();
    until(&h, |s| s.pieces_have == 16).await;
    // Wait for the periodic write that lists all 16 pieces, then "crash" (abort
    // without close: nothing more is written).
    let resume = rivulet::resume::default_path(&dst.path().canonicalize().unwrap(), &t.info);
    tokio::time::timeout(LIMIT, async {
        loop {
            if let Ok(have) =
                rivulet::resume::load(&t.info, &dst.path().canonicalize().unwrap(), &resume)
                && have.iter().filter(|h| **h).count() == 16
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a periodic resume write");
    h.shutdown();
    drop(h);
    drop(seed);

    // The restart trusts it, and a full seed completes the rest.
    let s2 = session().await;
    let _seed = s2.add(&t, src.path(), AddOptions::default()).await.unwrap();
    let h = s1
        .add(&t, dst.path(), AddOptions::with_peers(vec![addr(&s2)]))
        .await
        .unwrap();
    assert!(
        h.fast_resumed(),
        "the resume file was not trusted: {:?}",
        rivulet::resume::load(&t.info, &dst.path().canonicalize().unwrap(), &resume)
    );
    assert_eq!(h.status().pieces_have, 16);
    complete(&h).await;
    assert_eq!(h.status().downloaded, stream.len() as u64 - cut as u64);
    for (name, _) in FILES {
        assert!(
            std::fs::read(src.path().join("data").join(name)).unwrap()
                == std::fs::read(dst.path().join("data").join(name)).unwrap(),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hybrid_torrent_is_reachable_under_its_truncated_v2_hash() {
    let src = tempfile::tempdir().unwrap();
    let t = make(src.path(), Version::Hybrid);
    let s0 = session().await;
    let _seed = s0.add(&t, src.path(), AddOptions::default()).await.unwrap();
    let options = handshake::Options::new(handshake::Config::new(handshake::PeerId([9; 20])));
    let v2 = t.info_hash.v2().unwrap().truncated();
    let v1 = t.info_hash.v1().unwrap();
    for h in [v1, v2] {
        let c = handshake::connect_tcp(addr(&s0), &options, h, None).await;
        assert!(c.is_ok(), "{h}: {:?}", c.err());
    }
    // An unknown hash is refused.
    let other = metainfo::InfoHashV1([7; 20]);
    assert!(
        handshake::connect_tcp(addr(&s0), &options, other, None)
            .await
            .is_err()
    );
}

/// Python with libtorrent, as the transfer tests find it.
fn python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::var_os("RIVULET_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            ["venv", "lt", "py"]
                .iter()
                .map(|v| root.join(".interop").join(v).join("bin/python")),
        )
        .find(|p| {
            std::process::Command::new(p)
                .args(["-c", "import libtorrent"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// A v2 torrent of one large file plus a small one, and the same torrent without its
/// piece layers (what a magnet link's metadata gives).
fn v2_without_layers(root: &Path) -> (Torrent, Torrent) {
    let dir = root.join("data");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("big.bin"), noise(31, 3_000_000)).unwrap();
    std::fs::write(dir.join("small.bin"), noise(32, 20_000)).unwrap();
    let made = TorrentBuilder::new(&dir)
        .version(Version::V2)
        .piece_length(32768)
        .build()
        .unwrap();
    let full = Torrent::from_bytes(made.bytes()).unwrap();
    let mut bare = full.clone();
    bare.info.piece_layers.clear();
    (full, bare)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_torrent_without_piece_layers_fetches_them_from_the_seed() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let (full, bare) = v2_without_layers(src.path());
    let (s0, s1) = (session().await, session().await);
    let _seed = s0
        .add(&full, src.path(), AddOptions::default())
        .await
        .unwrap();
    let h = s1
        .add(&bare, dst.path(), AddOptions::with_peers(vec![addr(&s0)]))
        .await
        .unwrap();
    complete(&h).await;
    for f in ["data/big.bin", "data/small.bin"] {
        assert!(
            std::fs::read(src.path().join(f)).unwrap()
                == std::fs::read(dst.path().join(f)).unwrap(),
            "{f}"
        );
    }
    let s = h.status();
    assert_eq!(s.hash_failures, 0);
    assert_eq!(s.downloaded, 3_020_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_torrent_without_piece_layers_fetches_them_from_a_libtorrent_seed() {
    let Some(python) = python() else {
        println!("SKIP: no python with libtorrent (set RIVULET_PYTHON)");
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let (full, bare) = v2_without_layers(src.path());
    let tfile = src.path().join("t.torrent");
    std::fs::write(&tfile, full.to_bytes()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/lt_peer.py");
    let mut child = std::process::Command::new(&python)
        .arg(script)
        .args(["seed"])
        .arg(&tfile)
        .arg(src.path())
        .arg("1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut port = None;
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0 {
        if let Some(p) = line.trim().strip_prefix("PORT ") {
            port = Some(p.parse::<u16>().unwrap());
        }
        if line.starts_with("READY") {
            break;
        }
        line.clear();
    }
    let port = port.expect("libtorrent's port");
    let s1 = session().await;
    let peer: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let h = s1
        .add(&bare, dst.path(), AddOptions::with_peers(vec![peer]))
        .await
        .unwrap();
    let done = tokio::time::timeout(LIMIT, h.wait_complete()).await;
    let _ = child.kill();
    let _ = child.wait();
    done.expect("in time").unwrap();
    for f in ["data/big.bin", "data/small.bin"] {
        assert!(
            std::fs::read(src.path().join(f)).unwrap()
                == std::fs::read(dst.path().join(f)).unwrap(),
            "{f}"
        );
    }
    assert_eq!(h.status().hash_failures, 0);
}
