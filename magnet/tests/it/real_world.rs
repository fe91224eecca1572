//! Magnet links as real clients write them.

use metainfo::{InfoHash, InfoHashV1, InfoHashV2};
use rivulet_magnet::{MagnetError, MagnetLink, PeerAddr};

/// Parses, checks that format → parse gives the same link, returns it.
fn parse(s: &str) -> MagnetLink {
    let link = MagnetLink::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    let text = link.to_string();
    assert_eq!(MagnetLink::parse(&text), Ok(link.clone()), "{s} -> {text}");
    // Formatting is a fixed point after one round.
    assert_eq!(MagnetLink::parse(&text).unwrap().to_string(), text);
    link
}

fn v1(hex: &str) -> InfoHashV1 {
    hex.parse().unwrap()
}

#[test]
fn webtorrent_sintel() {
    // The WebTorrent demo link: percent-escaped tr, ws and xs URLs.
    let link = parse(
        "magnet:?xt=urn:btih:08ada5a7a6183aae1e09d831df6748d566095a10&dn=Sintel\
         &tr=udp%3A%2F%2Fexplodie.org%3A6969&tr=udp%3A%2F%2Ftracker.coppersurfer.tk%3A6969\
         &tr=udp%3A%2F%2Ftracker.empire-js.us%3A1337&tr=udp%3A%2F%2Ftracker.leechers-paradise.org%3A6969\
         &tr=udp%3A%2F%2Ftracker.opentrackr.org%3A1337&tr=wss%3A%2F%2Ftracker.btorrent.xyz\
         &tr=wss%3A%2F%2Ftracker.fastcast.nz&tr=wss%3A%2F%2Ftracker.openwebtorrent.com\
         &ws=https%3A%2F%2Fwebtorrent.io%2Ftorrents%2F\
         &xs=https%3A%2F%2Fwebtorrent.io%2Ftorrents%2Fsintel.torrent",
    );
    assert_eq!(
        link.info_hash(),
        InfoHash::V1(v1("08ada5a7a6183aae1e09d831df6748d566095a10"))
    );
    assert_eq!(link.display_name(), Some("Sintel"));
    assert_eq!(link.trackers().len(), 8);
    assert_eq!(link.trackers()[0], "udp://explodie.org:6969");
    assert_eq!(link.trackers()[7], "wss://tracker.openwebtorrent.com");
    assert_eq!(link.web_seeds(), ["https://webtorrent.io/torrents/"]);
    assert_eq!(
        link.exact_sources(),
        ["https://webtorrent.io/torrents/sintel.torrent"]
    );
    assert!(link.extra().is_empty());
}

#[test]
fn qbittorrent_style_lowercase_escapes() {
    let link = parse(
        "magnet:?xt=urn:btih:3B245504CF5F11BBDBE1201CEA6A6BF45AEE1BC0\
         &dn=ubuntu-22.04.3-desktop-amd64.iso\
         &tr=https%3a%2f%2ftorrent.ubuntu.com%2fannounce\
         &tr=https%3a%2f%2fipv6.torrent.ubuntu.com%2fannounce",
    );
    assert_eq!(
        link.info_hash().v1().unwrap().to_hex(),
        "3b245504cf5f11bbdbe1201cea6a6bf45aee1bc0"
    );
    assert_eq!(
        link.display_name(),
        Some("ubuntu-22.04.3-desktop-amd64.iso")
    );
    assert_eq!(
        link.trackers(),
        [
            "https://torrent.ubuntu.com/announce",
            "https://ipv6.torrent.ubuntu.com/announce"
        ]
    );
}

#[test]
fn transmission_style_spaces_and_passkey() {
    let link = parse(
        "magnet:?xt=urn:btih:c9e15763f722f23e98a29decdfae341b98d53056\
         &dn=Cosmos%20Laundromat%20(2015)\
         &tr=http%3A%2F%2Ftracker.example%2Fannounce.php%3Fpasskey%3Dab%2Bcd%26uid%3D1",
    );
    assert_eq!(link.display_name(), Some("Cosmos Laundromat (2015)"));
    assert_eq!(
        link.trackers(),
        ["http://tracker.example/announce.php?passkey=ab+cd&uid=1"]
    );
    // `+`, `&` and `=` inside the tracker URL survive the round trip escaped.
    assert!(
        link.to_string()
            .contains("announce.php%3Fpasskey%3Dab%2Bcd%26uid%3D1")
    );
}

#[test]
fn base32_btih() {
    // Old Azureus/Vuze links carry the v1 hash in base32.
    let link = parse("magnet:?xt=urn:btih:QHQXPYWMACKDWKP47RRVIV7VOURXFE5Q&dn=b32");
    let raw = data_encoding::BASE32
        .decode(b"QHQXPYWMACKDWKP47RRVIV7VOURXFE5Q")
        .unwrap();
    assert_eq!(link.info_hash().v1().unwrap().0[..], raw[..]);
    assert_eq!(
        link.to_string(),
        format!(
            "magnet:?xt=urn:btih:{}&dn=b32",
            data_encoding::HEXLOWER.encode(&raw)
        )
    );
}

#[test]
fn libtorrent_hybrid_v1_v2() {
    // The BitTorrent v2 hybrid test torrent, as libtorrent's make_magnet_uri writes it.
    let link = parse(
        "magnet:?xt=urn:btih:631a31dd0a46257d5078c0dee4e66e26f73e42ac\
         &xt=urn:btmh:1220d8dd32ac93357c368556af3ac1d95c9d76bd0dff6fa9833ecdac3d53134efabb\
         &dn=bittorrent-v1-v2-hybrid-test",
    );
    let v2: InfoHashV2 = "d8dd32ac93357c368556af3ac1d95c9d76bd0dff6fa9833ecdac3d53134efabb"
        .parse()
        .unwrap();
    assert_eq!(
        link.info_hash(),
        InfoHash::Hybrid(v1("631a31dd0a46257d5078c0dee4e66e26f73e42ac"), v2)
    );
    assert_eq!(link.display_name(), Some("bittorrent-v1-v2-hybrid-test"));
    // A v2-only link.
    let only = parse(
        "magnet:?xt=urn:btmh:1220caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e\
         &dn=bittorrent-v2-test",
    );
    assert!(matches!(only.info_hash(), InfoHash::V2(_)));
}

#[test]
fn libtorrent_peers_and_file_selection() {
    let link = parse(
        "magnet:?xt=urn:btih:cdaa6b8e4e0ab6b0e0ab0a1d4aa5ee7bdcf2d7a6&dn=album\
         &x.pe=192.168.1.20:6881&x.pe=%5B2001%3Adb8%3A%3A7%5D%3A51413&x.pe=seedbox.example.net:50000\
         &so=0,2,4-6",
    );
    assert_eq!(
        link.peers(),
        [
            PeerAddr::Ip("192.168.1.20:6881".parse().unwrap()),
            PeerAddr::Ip("[2001:db8::7]:51413".parse().unwrap()),
            PeerAddr::Host {
                host: "seedbox.example.net".into(),
                port: 50000
            },
        ]
    );
    let so = link.select_only().unwrap();
    assert_eq!(so.indices().collect::<Vec<_>>(), [0, 2, 4, 5, 6]);
}

#[test]
fn numbered_parameters() {
    let link = parse(
        "magnet:?xt.1=urn:btih:cdaa6b8e4e0ab6b0e0ab0a1d4aa5ee7bdcf2d7a6\
         &tr.1=udp%3A%2F%2Fone.example%3A80&tr.2=udp%3A%2F%2Ftwo.example%3A80&xl=123456",
    );
    assert_eq!(
        link.trackers(),
        ["udp://one.example:80", "udp://two.example:80"]
    );
    assert_eq!(link.extra(), [("xl".to_string(), "123456".to_string())]);
    assert!(
        link.to_string()
            .contains("&tr=udp%3A%2F%2Fone.example%3A80&tr=")
    );
}

#[test]
fn mutable_torrent_link_has_no_info_hash() {
    // BEP 46 links name a public key, not a torrent: not something this type holds.
    let s = "magnet:?xs=urn:btpk:8543d3e6115f0f98c944077a4493dcd543e49c739fd998550a1f614ab36ed63e\
             &s=41414141414141414141414141414141414141414141414141414141414141";
    assert_eq!(MagnetLink::parse(s), Err(MagnetError::MissingInfoHash));
}
