//! The connection data path under RC4: with MSE required on both sides, every write
//! goes through the encrypting stream (vectored writes fall back to one buffer at a
//! time, piece payloads included) and the bytes still arrive intact.

use std::time::Duration;

use handshake::EncryptionPolicy;
use metainfo::{Torrent, TorrentBuilder, Version};
use rivulet::{AddOptions, Config, Session};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rc4_encrypted_transfer_arrives_intact() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let data: Vec<u8> = (0..3_000_001)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(src.path().join("payload.bin"), &data).unwrap();
    let made = TorrentBuilder::new(src.path().join("payload.bin"))
        .version(Version::V1)
        .piece_length(1 << 18)
        .build()
        .unwrap();
    let t = Torrent::from_bytes(made.bytes()).unwrap();
    let mut c = crate::loopback();
    c.encryption = EncryptionPolicy::Required;
    let (_seed, _s, seed_addr) = crate::loopback_seed(c, &t, src.path()).await;
    let mut c = Config::default();
    c.encryption = EncryptionPolicy::Required;
    let leech = Session::new(c).await.unwrap();
    let peers = vec![seed_addr];
    let h = leech
        .add(&t, dst.path(), AddOptions::with_peers(peers))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), h.wait_complete())
        .await
        .expect("the encrypted transfer completes in time")
        .unwrap();
    assert!(std::fs::read(dst.path().join("payload.bin")).unwrap() == data);
}

/// A peer that requests every block but never reads its socket: the seed stops reading
/// blocks for it once its writer holds a few MiB, instead of queueing the whole torrent
/// in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_does_not_make_the_seed_buffer_the_torrent() {
    use handshake::{Config as HsConfig, Options, PeerId, connect_tcp};
    use peer_wire::{BlockRequest, Message};
    use tokio::io::AsyncWriteExt;

    const PIECE: u32 = 1 << 20;
    const SIZE: usize = 64 << 20;
    let src = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..SIZE).map(|i| (i / 4096 % 251) as u8).collect();
    std::fs::write(src.path().join("big.bin"), &data).unwrap();
    let made = TorrentBuilder::new(src.path().join("big.bin"))
        .version(Version::V1)
        .piece_length(u64::from(PIECE))
        .build()
        .unwrap();
    let t = Torrent::from_bytes(made.bytes()).unwrap();
    let (seed, h, _) = crate::loopback_seed(crate::loopback(), &t, src.path()).await;

    let options = Options::new(HsConfig::new(PeerId([b'z'; 20])));
    let addr = seed.listen_addr().unwrap();
    let mut conn = connect_tcp(addr, &options, t.info_hash.wire_id(), None)
        .await
        .unwrap();
    let mut out = bytes::BytesMut::new();
    Message::HaveNone.encode(&mut out);
    Message::Interested.encode(&mut out);
    conn.stream.write_all(&out).await.unwrap();
    // Every block, 200 requests at a time (the seed's queue takes 250).
    let mut reqs = (0..(SIZE as u32 / PIECE)).flat_map(|index| {
        (0..PIECE / 16384).map(move |b| BlockRequest {
            index,
            begin: b * 16384,
            length: 16384,
        })
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    while tokio::time::Instant::now() < deadline {
        let mut out = bytes::BytesMut::new();
        for r in reqs.by_ref().take(200) {
            Message::Request(r).encode(&mut out);
        }
        if out.is_empty() {
            break;
        }
        // Our requests still go out while the seed's answers pile up unread.
        if tokio::time::timeout(Duration::from_secs(1), conn.stream.write_all(&out))
            .await
            .is_err()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Handed to the connection: at most the writer's backlog limit, one read batch and
    // what the kernel buffers hold (a few MiB each way on loopback).
    let queued = h.status().uploaded;
    assert!(
        queued < 32 << 20,
        "the seed queued {queued} bytes for a peer that reads nothing"
    );
    drop(conn);
}
