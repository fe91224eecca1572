//! WebSocket (WebTorrent) tracker: offer/answer relay between two rivulet clients.

use std::time::Duration;

use rivulet_tracker::net::{Listen, TrackerServer, WsTracker};
use rivulet_tracker::server::ServerConfig;
use rivulet_tracker::ws::{ClientMessage, Offer, Sdp, ServerMessage, WsAnnounce, WsAnswer};
use rivulet_tracker::{Event, InfoHash, PeerId};

async fn next(t: &mut WsTracker) -> ServerMessage {
    tokio::time::timeout(Duration::from_secs(10), t.recv())
        .await
        .expect("no message from tracker in time")
        .expect("connection closed")
        .expect("message decodes")
}

fn announce(peer: PeerId, offers: Vec<Offer>) -> ClientMessage {
    ClientMessage::Announce(WsAnnounce {
        info_hash: InfoHash([0xcd; 20]),
        peer_id: peer,
        uploaded: 0,
        downloaded: 0,
        left: Some(100),
        event: Event::Started,
        numwant: offers.len() as u32,
        offers,
    })
}

/// Two clients on `url`: B joins, A announces with one offer, B answers, A gets the answer.
pub(crate) async fn offer_answer_roundtrip(url: &str) {
    // Ids with bytes above 0x7f exercise the latin-1 string encoding.
    let (pa, pb) = (PeerId([0xa1; 20]), PeerId([0xb2; 20]));
    let mut b = WsTracker::connect(url).await.unwrap();
    b.send(&announce(pb, vec![])).await.unwrap();
    assert!(matches!(
        next(&mut b).await,
        ServerMessage::AnnounceReply { .. }
    ));

    let mut a = WsTracker::connect(url).await.unwrap();
    let offer_id = [0xf0; 20];
    a.send(&announce(
        pa,
        vec![Offer {
            offer_id,
            offer: Sdp {
                kind: "offer".into(),
                sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n".into(),
            },
        }],
    ))
    .await
    .unwrap();
    match next(&mut a).await {
        ServerMessage::AnnounceReply { incomplete, .. } => assert_eq!(incomplete, 2),
        other => panic!("{other:?}"),
    }
    let got = next(&mut b).await;
    let ServerMessage::Offer {
        peer_id,
        offer_id: got_id,
        offer,
        ..
    } = got
    else {
        panic!("{got:?}")
    };
    assert_eq!((peer_id, got_id), (pa, offer_id));
    assert!(offer.sdp.starts_with("v=0"));
    b.send(&ClientMessage::Answer(WsAnswer {
        info_hash: InfoHash([0xcd; 20]),
        peer_id: pb,
        to_peer_id: pa,
        offer_id,
        answer: Sdp {
            kind: "answer".into(),
            sdp: "v=0\r\nanswer\r\n".into(),
        },
    }))
    .await
    .unwrap();
    match next(&mut a).await {
        ServerMessage::Answer {
            peer_id,
            offer_id: id,
            answer,
            ..
        } => {
            assert_eq!((peer_id, id), (pb, offer_id));
            assert_eq!(answer.kind, "answer");
        }
        other => panic!("{other:?}"),
    }
    // Scrape over the same socket.
    a.send(&ClientMessage::Scrape(vec![InfoHash([0xcd; 20])]))
        .await
        .unwrap();
    match next(&mut a).await {
        ServerMessage::Scrape { files } => {
            assert_eq!(files.len(), 1);
            assert_eq!(files[0].0, InfoHash([0xcd; 20]));
            assert_eq!(files[0].1.incomplete, 2);
        }
        other => panic!("{other:?}"),
    }
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn ws_relay_on_rivulet_server() {
    let s = TrackerServer::bind(
        ServerConfig::default(),
        Listen {
            http: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    offer_answer_roundtrip(&s.ws_url().unwrap()).await;
    // Both left when their sockets closed.
    for _ in 0..100 {
        if s.ws_peer_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("ws peers not removed after close");
}

#[tokio::test]
async fn ws_garbage_gets_failure_not_crash() {
    let s = TrackerServer::bind(
        ServerConfig::default(),
        Listen {
            http: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url().unwrap())
        .await
        .unwrap();
    use futures::{SinkExt, StreamExt};
    for junk in [
        "{",
        "[]",
        r#"{"action":"announce","info_hash":"ĀĀ"}"#,
        r#"{"action":"x"}"#,
    ] {
        ws.send(tokio_tungstenite::tungstenite::Message::text(junk))
            .await
            .unwrap();
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let m = ServerMessage::decode(m.to_text().unwrap()).unwrap();
        assert!(matches!(m, ServerMessage::Failure { .. }), "{m:?}");
    }
    // Still serving.
    offer_answer_roundtrip(&s.ws_url().unwrap()).await;
}

/// One swarm state behind every front end: a WebSocket peer, a UDP peer and an HTTP peer of
/// one info hash count each other in scrapes and announce replies; HTTP/UDP peer lists hold
/// only address peers; the WebSocket peer leaves every count when its socket closes.
#[tokio::test]
async fn ws_udp_and_http_peers_share_one_swarm() {
    use rivulet_tracker::net::{UdpTracker, http_announce, http_scrape};
    use rivulet_tracker::{Announce, udp::UdpClientConfig};
    let s = TrackerServer::bind(
        ServerConfig::default(),
        Listen {
            udp: Some("127.0.0.1:0".parse().unwrap()),
            http: Some("127.0.0.1:0".parse().unwrap()),
        },
    )
    .await
    .unwrap();
    let hash = InfoHash([0xcd; 20]);
    let udp_url = format!("udp://{}", s.udp_addr().unwrap());
    let http_url = format!("http://{}/announce", s.http_addr().unwrap());

    // A WebSocket seeder.
    let mut w = WsTracker::connect(&s.ws_url().unwrap()).await.unwrap();
    w.send(&ClientMessage::Announce(WsAnnounce {
        left: Some(0),
        ..match announce(PeerId([0xa1; 20]), vec![]) {
            ClientMessage::Announce(a) => a,
            _ => unreachable!(),
        }
    }))
    .await
    .unwrap();
    assert!(matches!(
        next(&mut w).await,
        ServerMessage::AnnounceReply {
            complete: 1,
            incomplete: 0,
            ..
        }
    ));

    // A UDP leecher sees the WebSocket seeder in its counts but not in its peer list.
    let mut u = UdpTracker::connect(&udp_url, UdpClientConfig::default())
        .await
        .unwrap();
    let r = u
        .announce(Announce {
            left: 10,
            event: Event::Started,
            ..Announce::new(hash, PeerId([2; 20]), 7002)
        })
        .await
        .unwrap();
    assert_eq!((r.complete, r.incomplete), (Some(1), Some(1)));
    assert!(r.peers.is_empty(), "{:?}", r.peers);

    // An HTTP leecher: counts everyone, lists only the UDP peer.
    let r = http_announce(
        &http_url,
        &Announce {
            left: 10,
            event: Event::Started,
            ..Announce::new(hash, PeerId([3; 20]), 7003)
        },
    )
    .await
    .unwrap();
    assert_eq!((r.complete, r.incomplete), (Some(1), Some(2)));
    assert_eq!(r.peers, vec!["127.0.0.1:7002".parse().unwrap()]);

    // Scrapes agree over all three protocols.
    let st = http_scrape(&http_url, &[hash]).await.unwrap();
    assert_eq!((st[0].1.complete, st[0].1.incomplete), (1, 2));
    let st = u.scrape(vec![hash]).await.unwrap();
    assert_eq!((st[0].complete, st[0].incomplete), (1, 2));
    w.send(&ClientMessage::Scrape(vec![hash])).await.unwrap();
    match next(&mut w).await {
        ServerMessage::Scrape { files } => {
            assert_eq!((files[0].1.complete, files[0].1.incomplete), (1, 2))
        }
        other => panic!("{other:?}"),
    }

    // The WebSocket closes: the seeder leaves the shared swarm.
    w.close().await;
    for _ in 0..100 {
        let st = u.scrape(vec![hash]).await.unwrap();
        if (st[0].complete, st[0].incomplete) == (0, 2) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("ws peer still counted after its socket closed");
}
