//! A fake peer serves a hostile info dictionary through `ut_metadata` (BEP 9) for a
//! bare info hash: it matches the hash (anyone can make a torrent and publish its
//! hash), but claims sizes nothing should be planned for. The download stops with the
//! metainfo limit in its error instead of sizing its picker, bitfields and hash
//! requests by the claim.

use std::time::Duration;

use bencode::{Dict, Value};
use bytes::BytesMut;
use metainfo::{InfoHash, InfoHashV1, InfoHashV2, Limits};
use peer_wire::{Decoder, ExtensionHandshake, Message, MetadataMessage};
use rivulet::{AddOptions, Config, Session, TorrentSource};
use sha1::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Our `ut_metadata` id in the fake peer's extension handshake.
const UT_METADATA: u8 = 3;

/// Accepts one connection for the swarm `wire_id`, handshakes (extension protocol),
/// announces `info`'s size and answers every metadata request with its pieces, until
/// the client hangs up.
async fn serve_metadata(listener: TcpListener, wire_id: InfoHashV1, info: Vec<u8>) {
    let (mut s, _) = listener.accept().await.unwrap();
    let mut theirs = [0u8; 68];
    s.read_exact(&mut theirs).await.unwrap();
    assert_eq!(&theirs[28..48], &wire_id.0, "the client asks for the swarm");
    let mut hs = vec![19u8];
    hs.extend_from_slice(b"BitTorrent protocol");
    hs.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0x04]);
    hs.extend_from_slice(&wire_id.0);
    hs.extend_from_slice(&[b'm'; 20]);
    let mut ext = ExtensionHandshake::new();
    ext.m.insert("ut_metadata".into(), UT_METADATA);
    ext.metadata_size = Some(info.len() as u64);
    let mut out = BytesMut::from(&hs[..]);
    ext.to_message().encode(&mut out);
    s.write_all(&out).await.unwrap();
    let decoder = Decoder::new();
    let mut their_id = None;
    let mut buf = BytesMut::new();
    loop {
        while let Ok(Some(msg)) = decoder.decode(&mut buf) {
            let Message::Extended { id, payload } = msg else {
                continue;
            };
            if id == 0 {
                their_id = ExtensionHandshake::parse(&payload)
                    .unwrap()
                    .id_of("ut_metadata");
            } else if id == UT_METADATA
                && let Ok(MetadataMessage::Request { piece }) = MetadataMessage::parse(&payload)
            {
                let start = (piece as usize * 16384).min(info.len());
                let end = (start + 16384).min(info.len());
                let reply = MetadataMessage::Data {
                    piece,
                    total_size: info.len() as u64,
                    data: info[start..end].to_vec().into(),
                };
                let mut out = BytesMut::new();
                reply
                    .to_message(their_id.expect("their extension handshake came first"))
                    .encode(&mut out);
                if s.write_all(&out).await.is_err() {
                    return;
                }
            }
        }
        match s.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Adds `source` with the fake peer serving `info`; returns the torrent's error.
async fn fetch_error(source: TorrentSource, wire_id: InfoHashV1, info: Vec<u8>) -> String {
    fetch_error_with(Config::default(), source, wire_id, info).await
}

async fn fetch_error_with(
    config: Config,
    source: TorrentSource,
    wire_id: InfoHashV1,
    info: Vec<u8>,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(serve_metadata(listener, wire_id, info));
    let dst = tempfile::tempdir().unwrap();
    let session = Session::new(config).await.unwrap();
    let h = session
        .add(source, dst.path(), AddOptions::with_peers(vec![addr]))
        .await
        .unwrap();
    let e = tokio::time::timeout(Duration::from_secs(30), h.wait_complete())
        .await
        .expect("the metadata phase ends in time")
        .expect_err("a hostile info dictionary does not start a download");
    peer.abort();
    e
}

fn v2_file(length: i64) -> Value<'static> {
    let mut f = Dict::new();
    f.insert(b"length", Value::Int(length));
    f.insert(b"pieces root", Value::Bytes(&[7; 32]));
    let mut node = Dict::new();
    node.insert(b"", Value::Dict(f));
    Value::Dict(node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_info_dictionary_claiming_a_terabyte_in_16_kib_pieces_is_refused() {
    // One file of 2^40 bytes: 2^26 pieces (67 million), in 130 bytes.
    let mut tree = Dict::new();
    tree.insert(b"big", v2_file(1 << 40));
    let mut info = Dict::new();
    info.insert(b"file tree", Value::Dict(tree));
    info.insert(b"meta version", Value::Int(2));
    info.insert(b"name", "big".into());
    info.insert(b"piece length", Value::Int(16384));
    let info = Value::Dict(info).to_bytes();
    let hash = InfoHashV2(sha2::Sha256::digest(&info).into());
    let e = fetch_error(TorrentSource::from(hash), hash.truncated(), info).await;
    assert!(
        e.contains("piece count 67108864 is over the limit of 2097152"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_info_dictionary_with_a_gigabyte_piece_is_refused() {
    let mut info = Dict::new();
    info.insert(b"length", Value::Int(1 << 30));
    info.insert(b"name", "big".into());
    info.insert(b"piece length", Value::Int(1 << 30));
    info.insert(b"pieces", Value::Bytes(&[1; 20]));
    let info = Value::Dict(info).to_bytes();
    let hash = InfoHashV1(sha1::Sha1::digest(&info).into());
    let e = fetch_error(TorrentSource::from(InfoHash::V1(hash)), hash, info).await;
    assert!(
        e.contains("info.piece length: piece length 1073741824 is over the limit of 536870912"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_config_sets_the_limits_of_fetched_metadata() {
    // 64 pieces of 16 KiB: fine by default, over a limit of 8.
    let mut tree = Dict::new();
    tree.insert(b"f", v2_file(1 << 20));
    let mut info = Dict::new();
    info.insert(b"file tree", Value::Dict(tree));
    info.insert(b"meta version", Value::Int(2));
    info.insert(b"name", "f".into());
    info.insert(b"piece length", Value::Int(16384));
    let info = Value::Dict(info).to_bytes();
    let hash = InfoHashV2(sha2::Sha256::digest(&info).into());
    let mut config = Config::default();
    config.metainfo_limits = {
        let mut l = Limits::default();
        l.max_pieces = 8;
        l
    };
    let e = fetch_error_with(config, TorrentSource::from(hash), hash.truncated(), info).await;
    assert!(e.contains("piece count 64 is over the limit of 8"), "{e}");
}
