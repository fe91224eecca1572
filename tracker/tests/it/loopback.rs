//! rivulet clients against the rivulet server, UDP and HTTP, over loopback.

use std::net::SocketAddr;
use std::time::Duration;

use rivulet_tracker::net::{Listen, TrackerServer, UdpTracker, http_announce, http_scrape};
use rivulet_tracker::server::ServerConfig;
use rivulet_tracker::udp::{UdpClientConfig, UdpRequestError};
use rivulet_tracker::{Announce, Event, InfoHash, PeerId, ScrapeStats};

async fn server(udp: &str, http: &str) -> TrackerServer {
    TrackerServer::bind(
        ServerConfig::default(),
        Listen {
            udp: Some(udp.parse().unwrap()),
            http: Some(http.parse().unwrap()),
        },
    )
    .await
    .unwrap()
}

fn ann(peer: u8, port: u16, left: u64, event: Event) -> Announce {
    Announce {
        left,
        event,
        ..Announce::new(InfoHash([9; 20]), PeerId([peer; 20]), port)
    }
}

#[tokio::test]
async fn udp_and_http_share_one_swarm() {
    let s = server("127.0.0.1:0", "127.0.0.1:0").await;
    let udp = format!("udp://{}/announce", s.udp_addr().unwrap());
    let http = format!("http://{}/announce", s.http_addr().unwrap());
    let mut t = UdpTracker::connect(&udp, UdpClientConfig::default())
        .await
        .unwrap();

    let r = t.announce(ann(1, 1001, 0, Event::Started)).await.unwrap();
    assert!(r.peers.is_empty());
    assert_eq!((r.complete, r.incomplete), (Some(1), Some(0)));

    let r = http_announce(&http, &ann(2, 1002, 10, Event::Started))
        .await
        .unwrap();
    assert_eq!(
        r.peers,
        vec!["127.0.0.1:1001".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!((r.complete, r.incomplete), (Some(1), Some(1)));
    assert_eq!(r.interval, 120);
    assert_eq!(r.min_interval, Some(60));

    // The UDP seeder sees the HTTP leecher.
    let r = t.announce(ann(1, 1001, 0, Event::None)).await.unwrap();
    assert_eq!(
        r.peers,
        vec!["127.0.0.1:1002".parse::<SocketAddr>().unwrap()]
    );

    let want = ScrapeStats {
        complete: 1,
        downloaded: 0,
        incomplete: 1,
    };
    assert_eq!(t.scrape(vec![InfoHash([9; 20])]).await.unwrap(), vec![want]);
    assert_eq!(
        http_scrape(&http, &[InfoHash([9; 20])]).await.unwrap(),
        vec![(InfoHash([9; 20]), want)]
    );

    // Leave with `stopped`.
    t.announce(ann(1, 1001, 0, Event::Stopped)).await.unwrap();
    http_announce(&http, &ann(2, 1002, 10, Event::Stopped))
        .await
        .unwrap();
    assert_eq!(s.swarms().lock().unwrap().peer_count(), 0);
}

#[tokio::test]
async fn ipv6_loopback() {
    // Skip quietly where the machine has no IPv6 loopback.
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        println!("SKIP: no IPv6 loopback");
        return;
    }
    let s = server("[::1]:0", "[::1]:0").await;
    let udp = format!("udp://{}", s.udp_addr().unwrap());
    let http = format!("http://{}/announce", s.http_addr().unwrap());
    let mut t = UdpTracker::connect(&udp, UdpClientConfig::default())
        .await
        .unwrap();
    t.announce(ann(1, 2001, 0, Event::Started)).await.unwrap();
    let r = http_announce(&http, &ann(2, 2002, 5, Event::Started))
        .await
        .unwrap();
    assert_eq!(r.peers, vec!["[::1]:2001".parse::<SocketAddr>().unwrap()]);
    let r = t.announce(ann(1, 2001, 0, Event::None)).await.unwrap();
    assert_eq!(r.peers, vec!["[::1]:2002".parse::<SocketAddr>().unwrap()]);
}

#[tokio::test]
async fn allow_list_failure_reaches_both_clients() {
    let s = TrackerServer::bind(
        ServerConfig {
            allow_list: Some([InfoHash([1; 20])].into_iter().collect()),
            ..Default::default()
        },
        Listen {
            udp: Some("127.0.0.1:0".parse().unwrap()),
            http: Some("127.0.0.1:0".parse().unwrap()),
        },
    )
    .await
    .unwrap();
    let mut t = UdpTracker::connect_addr(s.udp_addr().unwrap(), UdpClientConfig::default())
        .await
        .unwrap();
    let e = t.announce(ann(1, 1, 0, Event::Started)).await.unwrap_err();
    assert!(
        matches!(&e, rivulet_tracker::net::TrackerError::Udp(UdpRequestError::Tracker(m)) if m.contains("not tracked")),
        "{e}"
    );
    let http = format!("http://{}/announce", s.http_addr().unwrap());
    let e = http_announce(&http, &ann(1, 1, 0, Event::Started))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not tracked"), "{e}");
}

#[tokio::test]
async fn udp_client_gives_up_on_a_silent_tracker() {
    // A bound socket that never answers.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let cfg = UdpClientConfig {
        retransmit_base: Duration::from_millis(10),
        max_retransmits: 2,
        ..Default::default()
    };
    let mut t = UdpTracker::connect_addr(silent.local_addr().unwrap(), cfg)
        .await
        .unwrap();
    let e = t.announce(ann(1, 1, 0, Event::Started)).await.unwrap_err();
    assert!(
        matches!(
            e,
            rivulet_tracker::net::TrackerError::Udp(UdpRequestError::TimedOut { attempts: 3 })
        ),
        "{e}"
    );
    // It did retransmit: three connect requests arrived.
    let mut buf = [0u8; 64];
    for _ in 0..3 {
        let (n, _) = silent.recv_from(&mut buf).await.unwrap();
        assert!(matches!(
            rivulet_tracker::udp::Request::decode(&buf[..n]),
            Ok(rivulet_tracker::udp::Request::Connect { .. })
        ));
    }
}

#[tokio::test]
async fn hostile_udp_packets_get_no_amplified_reply() {
    let s = server("127.0.0.1:0", "127.0.0.1:0").await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(s.udp_addr().unwrap()).await.unwrap();
    let mut buf = [0u8; 2048];
    for pkt in [vec![0u8; 16], vec![0xff; 20], {
        let mut p = vec![0u8; 16];
        p[11] = 2; // scrape with no hashes
        p
    }] {
        sock.send(&pkt).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n <= pkt.len(), "{n} > {}", pkt.len());
    }
    // And the server is still fine.
    let mut t = UdpTracker::connect_addr(s.udp_addr().unwrap(), UdpClientConfig::default())
        .await
        .unwrap();
    t.announce(ann(1, 1, 0, Event::Started)).await.unwrap();
}

/// The Announcer announces to every tier at once (udp, http and ws), fails over inside a
/// tier, streams peers, relays WebRTC signaling from its ws:// tracker, and leaves every
/// tracker that took its `started`.
#[tokio::test]
async fn announcer_tiers_concurrently_with_failover_ws_and_stop() {
    use rivulet_tracker::TrackerSetEvent;
    use rivulet_tracker::net::{Announcer, AnnouncerConfig, WsTracker};
    use rivulet_tracker::ws::{ClientMessage, Offer, Sdp, ServerMessage, WsAnnounce, WsAnswer};

    let s = server("127.0.0.1:0", "127.0.0.1:0").await;
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // A closed TCP port: bind, note the port, drop.
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let good = format!("http://{}/announce", s.http_addr().unwrap());
    let ws_url = s.ws_url().unwrap();
    // Someone to find.
    http_announce(&good, &ann(1, 5001, 0, Event::Started))
        .await
        .unwrap();

    let config = AnnouncerConfig {
        udp: UdpClientConfig {
            retransmit_base: Duration::from_millis(20),
            max_retransmits: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let (announcer, mut events) = Announcer::spawn(
        vec![
            vec![
                format!("udp://{}", silent.local_addr().unwrap()),
                format!("http://{refused}/announce"),
            ],
            vec![good.clone()],
            vec![ws_url.clone()],
        ],
        ann(2, 5002, 10, Event::None),
        config,
    );
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(20), events.recv())
            .await
            .expect("announcer event in time")
            .expect("announcer alive")
    };
    let mut failures = 0;
    let mut peers = false;
    while !(peers && failures == 2) {
        match next().await {
            TrackerSetEvent::Failed { .. } => failures += 1,
            TrackerSetEvent::Peers { url, peers: p } => {
                assert_eq!(url, good);
                assert_eq!(p, vec!["127.0.0.1:5001".parse::<SocketAddr>().unwrap()]);
                peers = true;
            }
            other => panic!("{other:?}"),
        }
    }
    // Stored once, reachable both ways (HTTP tier and ws tier).
    for _ in 0..200 {
        if s.ws_peer_count() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.ws_peer_count(), 1);
    assert_eq!(s.swarms().lock().unwrap().peer_count(), 2);

    // A WebRTC peer offers through the tracker; the offer reaches the announcer's stream,
    // and its answer goes back through it.
    let mut w = WsTracker::connect(&ws_url).await.unwrap();
    w.send(&ClientMessage::Announce(WsAnnounce {
        info_hash: InfoHash([9; 20]),
        peer_id: PeerId([3; 20]),
        uploaded: 0,
        downloaded: 0,
        left: Some(5),
        event: Event::Started,
        numwant: 1,
        offers: vec![Offer {
            offer_id: [7; 20],
            offer: Sdp {
                kind: "offer".into(),
                sdp: "v=0\r\n".into(),
            },
        }],
    }))
    .await
    .unwrap();
    let offer = loop {
        match next().await {
            TrackerSetEvent::Signal { url, message } => {
                assert_eq!(url, ws_url);
                break message;
            }
            TrackerSetEvent::Peers { .. } | TrackerSetEvent::Failed { .. } => {}
            other => panic!("{other:?}"),
        }
    };
    let ServerMessage::Offer {
        peer_id, offer_id, ..
    } = offer
    else {
        panic!("{offer:?}")
    };
    assert_eq!((peer_id, offer_id), (PeerId([3; 20]), [7; 20]));
    announcer.send_ws(
        &ws_url,
        ClientMessage::Answer(WsAnswer {
            info_hash: InfoHash([9; 20]),
            peer_id: PeerId([2; 20]),
            to_peer_id: PeerId([3; 20]),
            offer_id,
            answer: Sdp {
                kind: "answer".into(),
                sdp: "v=0\r\n".into(),
            },
        }),
    );
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), w.recv())
            .await
            .expect("answer in time")
            .expect("open")
            .expect("decodes");
        if let ServerMessage::Answer { peer_id, .. } = m {
            assert_eq!(peer_id, PeerId([2; 20]));
            break;
        }
    }

    announcer.stop();
    loop {
        match next().await {
            TrackerSetEvent::Stopped => break,
            _ => continue,
        }
    }
    // Gone from the HTTP and the ws tier alike: one peer (the ws client) is left.
    let sw = s.swarms();
    let sw = sw.lock().unwrap();
    assert!(!sw.contains(&InfoHash([9; 20]), &PeerId([2; 20])));
    assert!(sw.contains(&InfoHash([9; 20]), &PeerId([3; 20])));
}

/// The per-IP rate limit covers UDP and HTTP alike: over it, UDP datagrams get no reply and
/// HTTP requests a `failure reason`; within it, requests are served.
#[tokio::test]
async fn per_ip_rate_limit_over_udp_and_http() {
    use rivulet_tracker::server::RateLimit;
    let s = TrackerServer::bind(
        ServerConfig {
            // 4 at once, then one every 100 s: nothing refills during the test.
            rate_limit: Some(RateLimit {
                per_second: 0.01,
                burst: 4,
                max_tracked: 1024,
            }),
            ..Default::default()
        },
        Listen {
            udp: Some("127.0.0.1:0".parse().unwrap()),
            http: Some("127.0.0.1:0".parse().unwrap()),
        },
    )
    .await
    .unwrap();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(s.udp_addr().unwrap()).await.unwrap();
    let mut buf = [0u8; 64];
    let mut answered = 0;
    for tid in 0..6u32 {
        let mut pkt = vec![];
        rivulet_tracker::udp::Request::Connect {
            transaction_id: tid,
        }
        .encode(&mut pkt);
        sock.send(&pkt).await.unwrap();
        if let Ok(r) = tokio::time::timeout(Duration::from_millis(300), sock.recv(&mut buf)).await {
            r.unwrap();
            answered += 1;
        }
    }
    assert_eq!(answered, 4, "the burst is served, the rest dropped");
    // The same IP over HTTP is over the limit too.
    let http = format!("http://{}/announce", s.http_addr().unwrap());
    let e = http_announce(&http, &ann(1, 1, 0, Event::Started))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("rate limited"), "{e}");
    // Another source IP (127.0.0.2 is loopback too) has its own budget.
    let other = tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap();
    other.connect(s.udp_addr().unwrap()).await.unwrap();
    let mut pkt = vec![];
    rivulet_tracker::udp::Request::Connect { transaction_id: 9 }.encode(&mut pkt);
    other.send(&pkt).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), other.recv(&mut buf))
        .await
        .expect("a different IP is served")
        .unwrap();
}
