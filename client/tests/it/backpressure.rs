//! Hostile peers that send requests but never read their socket: what the seed queues
//! for them stays bounded (`Status::send_backlog_peak`), and the seed goes on serving
//! other peers.
//!
//! With the fast extension (BEP 6), every request of a choked peer, and every request
//! past the 250 we queue of an unchoked one, is answered with a 17-byte `reject
//! request`: a peer that sends requests and reads nothing used to make the seed queue
//! one reject per request without end. The seed now stops reading from a peer whose
//! writer is 8 MiB behind, so the peer's requests wait in its own socket.

use std::time::Duration;

use bytes::BytesMut;
use handshake::{Config as HsConfig, Options, PeerId};
use metainfo::{Torrent, TorrentBuilder, Version};
use peer_wire::{BlockRequest, Message};
use rivulet::{AddOptions, Config, Session};
use tokio::io::AsyncWriteExt;

const PIECE: u32 = 256 << 10;
const SIZE: usize = 4 << 20;
/// Requests the hostile peer tries to send: 48 MiB of them (about 3 million).
const FLOOD: usize = 48 << 20;
/// Where the seed stops reading from a peer (the client's `READ_PAUSE`).
const READ_PAUSE: u64 = 8 << 20;

fn make(root: &std::path::Path) -> (Torrent, Vec<u8>) {
    let data: Vec<u8> = (0..SIZE).map(|i| (i / 1000 % 251) as u8).collect();
    std::fs::write(root.join("payload.bin"), &data).unwrap();
    let made = TorrentBuilder::new(root.join("payload.bin"))
        .version(Version::V1)
        .piece_length(u64::from(PIECE))
        .build()
        .unwrap();
    (Torrent::from_bytes(made.bytes()).unwrap(), data)
}

/// Connects to `addr` with a tiny receive buffer (so the kernel holds little of what
/// the seed sends), handshakes with the fast extension, says `interested` if asked to,
/// then writes requests for the torrent's blocks, round and round, until `FLOOD` bytes
/// went out or the seed stops taking them; never reads. Returns the bytes written and
/// the connection (kept open).
async fn flood(
    addr: std::net::SocketAddr,
    t: &Torrent,
    interested: bool,
) -> (usize, handshake::PeerConnection<tokio::net::TcpStream>) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(addr).await.unwrap();
    let options = Options::new(HsConfig::new(PeerId([b'h'; 20])));
    let mut conn = handshake::connect(tcp, &options, t.info_hash.wire_id())
        .await
        .unwrap();
    assert!(
        conn.established.reserved.fast(),
        "the seed has the fast extension"
    );
    let mut out = BytesMut::new();
    Message::HaveNone.encode(&mut out);
    if interested {
        Message::Interested.encode(&mut out);
    }
    conn.stream.write_all(&out).await.unwrap();
    // One round of requests: every block of the torrent.
    let mut round = BytesMut::new();
    for index in 0..(SIZE as u32 / PIECE) {
        for b in 0..PIECE / 16384 {
            Message::Request(BlockRequest {
                index,
                begin: b * 16384,
                length: 16384,
            })
            .encode(&mut round);
        }
    }
    let mut sent = 0;
    while sent < FLOOD {
        // The seed stopped reading (its receive buffer and our send buffer are full):
        // a write that takes this long means it is not taking more.
        match tokio::time::timeout(Duration::from_secs(3), conn.stream.write_all(&round)).await {
            Ok(r) => r.unwrap(),
            Err(_) => break,
        }
        sent += round.len();
    }
    (sent, conn)
}

async fn hostile_peer_stays_bounded(interested: bool) {
    let src = tempfile::tempdir().unwrap();
    let (t, data) = make(src.path());
    let (_seed, h, addr) = crate::loopback_seed(crate::loopback(), &t, src.path()).await;

    let (sent, conn) = flood(addr, &t, interested).await;
    // Let the seed take in what it read.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let peak = h.status().send_backlog_peak;
    eprintln!(
        "hostile peer (interested: {interested}): sent {sent} bytes of requests, seed backlog peak {peak}"
    );
    // The flood reached the pause (the test is not vacuous) and went no further than
    // the pause plus what was decoded before it (a read and the input queue).
    assert!(peak >= READ_PAUSE / 2, "the flood did not get far: {peak}");
    assert!(
        peak < READ_PAUSE + (4 << 20),
        "the seed queued {peak} bytes for a peer that reads nothing ({sent} bytes of requests sent)"
    );
    assert!(
        sent < FLOOD,
        "the seed read all {sent} bytes of requests of a peer that reads nothing"
    );

    // The seed still serves others, with the hostile peer connected.
    let dst = tempfile::tempdir().unwrap();
    let leech = Session::new(Config::default()).await.unwrap();
    let lh = leech
        .add(&t, dst.path(), AddOptions::with_peers(vec![addr]))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), lh.wait_complete())
        .await
        .expect("the leech completes while the hostile peer is connected")
        .unwrap();
    assert!(std::fs::read(dst.path().join("payload.bin")).unwrap() == data);
    assert!(h.status().peers >= 1);
    drop(conn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_choked_peer_flooding_requests_without_reading_gets_a_bounded_backlog() {
    // Not interested: never unchoked, so every request is rejected.
    hostile_peer_stays_bounded(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchoked_peer_flooding_requests_without_reading_gets_a_bounded_backlog() {
    // Interested: unchoked at once; 250 requests are queued and served, the rest
    // rejected.
    hostile_peer_stays_bounded(true).await;
}
