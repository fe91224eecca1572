//! The peer-wire exchange the interop tests run after the handshake: extension
//! handshake, availability, interested, wait for unchoke, request one block, check it.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use peer_wire::{
    Bitfield, BlockRequest, Event, ExtensionHandshake, PeerConfig, PeerState, PeerWireCodec,
};
use rivulet_handshake::{PeerConnection, Reserved};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// The test content: 256 KiB + 1000 bytes, byte i = (i * 7 + 3) % 251, in 32 KiB pieces
/// (the seed scripts write the same).
pub(crate) const TOTAL: usize = 256 * 1024 + 1000;
pub(crate) const PIECE_LEN: u32 = 32 * 1024;

pub(crate) fn content(range: std::ops::Range<usize>) -> Vec<u8> {
    range.map(|i| ((i * 7 + 3) % 251) as u8).collect()
}

pub(crate) fn write_content(path: &std::path::Path) {
    std::fs::write(path, content(0..TOTAL)).expect("write content");
}

/// Downloads block (1, 16384, 16384) from `who` and checks its bytes.
pub(crate) async fn download_block(conn: PeerConnection<TcpStream>, who: &str) {
    let reserved = conn.established.reserved;
    let num_pieces = (TOTAL as u32).div_ceil(PIECE_LEN);
    let mut framed = Framed::new(conn.stream, PeerWireCodec::default());
    let mut config = PeerConfig::new(num_pieces, PIECE_LEN, TOTAL as u64);
    config.fast = reserved.intersection(Reserved::STANDARD).fast();
    let mut peer = PeerState::new(config);
    let mut ext = ExtensionHandshake::new();
    ext.m.insert("ut_metadata".into(), 1);
    ext.v = Some("rivulet-test".into());
    peer.send_extension_handshake(&ext);
    peer.send_availability(&Bitfield::new(num_pieces));
    peer.set_interested(true);

    let request = BlockRequest {
        index: 1,
        begin: 16384,
        length: 16384,
    };
    let (mut got_ext, mut requested) = (false, false);
    let step = async {
        loop {
            while let Some(m) = peer.poll_transmit() {
                framed.send(m).await.expect("send");
            }
            while let Some(ev) = peer.poll_event() {
                match ev {
                    Event::ExtensionHandshake(hs) => {
                        assert!(hs.id_of("ut_metadata").is_some(), "{who}: {hs:?}");
                        got_ext = true;
                    }
                    Event::Block(block) => {
                        assert_eq!(block.request(), request);
                        let start = PIECE_LEN as usize + 16384;
                        assert_eq!(&block.data[..], &content(start..start + 16384)[..]);
                        assert!(got_ext, "{who} sent no extension handshake");
                        return;
                    }
                    Event::Rejected(r) => panic!("{who} rejected {r:?}"),
                    _ => {}
                }
            }
            if !requested && !peer.peer_choking() && peer.peer_pieces().is_full() {
                peer.request(Instant::now(), request).expect("request");
                requested = true;
                continue;
            }
            let msg = framed
                .next()
                .await
                .unwrap_or_else(|| panic!("{who} closed the connection"))
                .unwrap_or_else(|e| panic!("invalid message from {who}: {e}"));
            peer.handle_message(Instant::now(), msg)
                .unwrap_or_else(|e| panic!("{who} broke the protocol: {e}"));
        }
    };
    tokio::time::timeout(Duration::from_secs(60), step)
        .await
        .unwrap_or_else(|_| panic!("block exchange with {who} did not finish in time"));
}
