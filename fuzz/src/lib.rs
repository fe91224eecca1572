//! Fuzz entry points shared by the libFuzzer binaries and the corpus replay test.
//!
//! The parsers' targets are here; the client's state machines' targets are in
//! [`client`] (re-exported).
#![warn(missing_docs)]

pub mod client;
pub use client::{core_session, hash_exchange, lsd, metadata_fetch, pex, resume_check};

/// Decode arbitrary bytes as bencode (strict and lenient); must never panic. A strict
/// success re-encodes to exactly the input; a lenient success re-encodes to canonical
/// bencode that decodes strictly and re-encodes identically; `skip` agrees with strict decoding.
pub fn bencode_decode(data: &[u8]) {
    let strict = bencode::decode(data);
    if let Ok(v) = &strict {
        assert_eq!(v.to_bytes(), data, "strict decode is not canonical");
    }
    assert_eq!(
        bencode::skip(data).ok() == Some(data.len()),
        strict.is_ok(),
        "skip and decode disagree"
    );
    if let Ok(v) = bencode::Decoder::new().lenient().decode(data) {
        let bytes = v.to_bytes();
        let again = bencode::decode(&bytes).expect("re-encoded lenient value decodes strictly");
        assert_eq!(again.to_bytes(), bytes, "canonical encoding is not stable");
    }
}
/// Parse arbitrary bytes as a .torrent; must never panic. When it parses, every file's
/// safe path has only `Normal` components, the piece layout's spans of every piece add up
/// to the piece length, the bytes round-trip, and the bare info dictionary parses the same.
pub fn metainfo_parse(data: &[u8]) {
    let Ok(t) = metainfo::Torrent::from_bytes(data) else {
        return;
    };
    for f in &t.info.files {
        let p = f.safe_path();
        assert!(p.components().count() > 0, "{p:?}");
        assert!(
            p.components()
                .all(|c| matches!(c, std::path::Component::Normal(_))),
            "{p:?}"
        );
    }
    let l = t.info.layout();
    // Bound the work on a huge piece count claimed by a tiny input.
    for piece in (0..l.piece_count()).take(1 << 16) {
        let sum: u64 = l.spans(piece, 0, u64::MAX).map(|s| s.len).sum();
        assert_eq!(sum, l.piece_len(piece), "piece {piece}");
    }
    assert!(data.starts_with(t.as_bytes()));
    let info = metainfo::Info::from_bytes(t.info.raw()).expect("info parses alone");
    assert_eq!(info.info_hash(), t.info_hash);
}
/// Parse arbitrary bytes as a magnet link; must never panic. When it parses, the
/// formatted link parses back to an equal link.
pub fn magnet_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(link) = magnet::MagnetLink::parse(text) {
        let formatted = link.to_string();
        assert_eq!(
            magnet::MagnetLink::parse(&formatted),
            Ok(link),
            "format/parse round trip changed the link: {formatted:?}"
        );
    }
}
/// Decode arbitrary bytes as a KRPC message (BEP 5); must never panic. A decoded message
/// re-encodes to bytes that decode to the same message, and a sans-IO DHT node fed the
/// datagram neither panics nor answers with more than one packet.
pub fn dht_krpc(data: &[u8]) {
    if let Ok(m) = dht::Message::decode(data) {
        let bytes = m.encode();
        let again = dht::Message::decode(&bytes).expect("re-encoded KRPC message decodes");
        assert_eq!(again, m, "KRPC round trip changed the message");
    }
    let now = std::time::Instant::now();
    let mut node = dht::Node::new(dht::Config::default(), dht::Id([1; 20]), now, 0);
    node.handle_datagram(now, std::net::SocketAddr::from(([10, 0, 0, 1], 6881)), data);
    let mut replies = 0;
    while node.poll_transmit().is_some() {
        replies += 1;
    }
    // One answer, plus at most one ping to a querying node that is new to the table.
    assert!(replies <= 2, "{replies} datagrams in reply to one");
}
/// Decode arbitrary bytes as a stream of peer-wire messages; must never panic. The
/// zero-copy and slice decoders agree, every message re-encodes to exactly its frame,
/// extension payloads parse or fail cleanly, and a per-peer state fed the messages
/// (fast extension on) neither panics nor exceeds its request bounds.
pub fn peer_wire_decode(data: &[u8]) {
    use peer_wire::{Decoder, Message, PeerConfig, PeerState};
    let dec = Decoder::with_max_frame_len(1 << 16);
    let mut buf = bytes::BytesMut::from(data);
    let mut rest = data;
    let mut config = PeerConfig::new(40, 32768, 40 * 32768 - 100);
    config.fast = true;
    config.max_incoming_requests = 8;
    let mut peer = PeerState::new(config);
    let now = std::time::Instant::now();
    let mut alive = true;
    loop {
        let a = dec.decode(&mut buf);
        let b = dec.decode_slice(rest);
        match (a, b) {
            (Ok(Some(m)), Ok(Some((m2, used)))) => {
                assert_eq!(m, m2, "decoders disagree");
                assert_eq!(&m.to_bytes()[..], &rest[..used], "re-encoding differs");
                rest = &rest[used..];
                if let Message::Extended { payload, .. } = &m {
                    let _ = peer_wire::ExtensionHandshake::parse(payload);
                    let _ = peer_wire::MetadataMessage::parse(payload);
                    let _ = peer_wire::PexMessage::parse(payload);
                }
                if alive {
                    alive = peer.handle_message(now, m).is_ok();
                    while peer.poll_transmit().is_some() {}
                    while peer.poll_event().is_some() {}
                    assert!(peer.peer_requests().count() <= 8);
                }
            }
            (Ok(None), Ok(None)) => break,
            (Err(e), Err(e2)) => {
                assert_eq!(e, e2, "decoders disagree on the error");
                break;
            }
            (a, b) => panic!("decoders disagree: {a:?} vs {b:?}"),
        }
    }
}
/// Parse arbitrary bytes as a peer's BitTorrent handshake, and as MSE input; must never
/// panic. A parsed handshake re-encodes to the input's first 68 bytes; the incoming and
/// outgoing state machines fed the bytes in small chunks agree with the parser.
pub fn handshake_parse(data: &[u8]) {
    use handshake::{Config, Handshake, Incoming, Outgoing, PeerId, Step};
    use rand::SeedableRng;
    let parsed = Handshake::parse(data);
    if let Ok(Some(hs)) = &parsed {
        assert_eq!(&hs.to_bytes()[..], &data[..68]);
    }
    let config = Config::new(PeerId([0xee; 20]));
    let mut inc = Incoming::new(&config);
    let mut rest = data;
    let mut incoming_done = false;
    loop {
        let n = rest.len().min(7);
        match inc.handle_input(&rest[..n], |_| true) {
            Ok((Step::NeedMore(mut i), used)) => {
                let _ = i.poll_transmit();
                rest = &rest[used..];
                if used == 0 && n == 0 {
                    break;
                }
                inc = i;
            }
            Ok((Step::Done(e), _)) => {
                incoming_done = true;
                assert_eq!(
                    Ok(Some(e.peer_id)),
                    parsed.clone().map(|h| h.map(|h| h.peer_id))
                );
                break;
            }
            Err(_) => break,
        }
    }
    if matches!(&parsed, Ok(Some(h)) if h.peer_id != config.peer_id) {
        assert!(
            incoming_done,
            "parser accepted what the state machine did not"
        );
    }
    let ih = metainfo::InfoHashV1(
        data.get(28..48)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0; 20]),
    );
    let _ = Outgoing::new(&config, ih).handle_input(data);

    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let resp = handshake::mse::Responder::with_max_padding(3, true, 0, &mut rng);
    let _ = resp.handle_input(data, |_| Some(metainfo::InfoHashV1([1; 20])));
    let init = handshake::mse::Initiator::with_max_padding(
        metainfo::InfoHashV1([1; 20]),
        3,
        b"",
        0,
        &mut rng,
    );
    let _ = init.handle_input(data);
}
/// Decode arbitrary bytes as UDP tracker packets (BEP 15), both directions; must never panic.
/// A decoded packet re-encodes to bytes that decode to the same packet; the
/// server front end never answers an unconnected source with more bytes than it sent; the
/// client state machine drops or accepts the datagram cleanly.
pub fn tracker_udp(data: &[u8]) {
    use tracker::udp::{AddrFamily, Request, Response, UdpClient, UdpServer};
    if let Ok(r) = Request::decode(data) {
        let mut out = Vec::new();
        r.encode(&mut out);
        assert_eq!(Request::decode(&out), Ok(r), "request round trip");
    }
    for family in [AddrFamily::V4, AddrFamily::V6] {
        if let Ok(r) = Response::decode(data, family) {
            let mut out = Vec::new();
            r.encode(family, &mut out);
            assert_eq!(Response::decode(&out, family), Ok(r), "response round trip");
        }
    }
    let now = std::time::Instant::now();
    let mut swarms = tracker::server::Swarms::new(tracker::server::ServerConfig::default());
    let server = UdpServer::new(now, [7; 16]);
    let mut out = Vec::new();
    server.handle_datagram(
        &mut swarms,
        now,
        "10.0.0.1:6881".parse().expect("addr"),
        data,
        &mut out,
    );
    assert!(out.len() <= data.len(), "amplified reply");
    let mut client = UdpClient::new(Default::default(), AddrFamily::V4);
    client.announce(
        now,
        tracker::Announce::new(tracker::InfoHash([1; 20]), tracker::PeerId([2; 20]), 1),
    );
    let _ = client.handle_datagram(now, data);
    while client.poll_transmit().is_some() {}
    while client.poll_event().is_some() {}
}
/// Parse arbitrary bytes as HTTP tracker replies (announce and scrape) and, if UTF-8, as
/// announce and scrape query strings; must never panic.
pub fn tracker_http(data: &[u8]) {
    let _ = tracker::http::parse_announce_response(data);
    let _ = tracker::http::parse_scrape_response(data);
    if let Ok(q) = std::str::from_utf8(data) {
        let _ = tracker::http::parse_announce_query(q);
        let _ = tracker::http::parse_scrape_query(q);
    }
}
/// Parse arbitrary bytes as WebSocket tracker JSON, client and server messages; must never
/// panic. A decoded message re-encodes to JSON that decodes to the same message, and the relay
/// core accepts a decoded client message cleanly.
pub fn tracker_ws(data: &[u8]) {
    use tracker::ws::{ClientMessage, ServerMessage};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = ClientMessage::decode(text) {
        assert_eq!(
            ClientMessage::decode(&m.encode()).as_ref(),
            Ok(&m),
            "client message round trip"
        );
        let mut swarms = tracker::server::Swarms::new(tracker::server::ServerConfig::default());
        let mut relay = tracker::ws::WsRelay::new();
        let now = std::time::Instant::now();
        relay.handle_message(&mut swarms, now, tracker::ws::ConnId(1), m.clone());
        relay.handle_message(&mut swarms, now, tracker::ws::ConnId(2), m);
        while relay.poll_transmit().is_some() {}
        relay.handle_disconnect(&mut swarms, tracker::ws::ConnId(1));
        relay.handle_disconnect(&mut swarms, tracker::ws::ConnId(2));
        assert_eq!(
            swarms.peer_count(),
            0,
            "peers left after their connections closed"
        );
    }
    if let Ok(m) = ServerMessage::decode(text) {
        assert_eq!(
            ServerMessage::decode(&m.encode()).as_ref(),
            Ok(&m),
            "server message round trip"
        );
    }
}
