//! Property tests: nothing panics, and format → parse gives back the same link.

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use metainfo::{InfoHash, InfoHashV1, InfoHashV2};
use proptest::prelude::*;
use rivulet_magnet::{FileSelection, MagnetLink, PeerAddr};

/// If `s` parses, formatting and re-parsing gives the same link (the fuzz invariant).
fn check_stable(s: &str) -> Result<(), TestCaseError> {
    if let Ok(link) = MagnetLink::parse(s) {
        let text = link.to_string();
        prop_assert_eq!(MagnetLink::parse(&text), Ok(link), "{:?} -> {:?}", s, text);
    }
    Ok(())
}

fn info_hash() -> impl Strategy<Value = InfoHash> {
    let v1 = any::<[u8; 20]>().prop_map(InfoHashV1);
    let v2 = any::<[u8; 32]>().prop_map(InfoHashV2);
    prop_oneof![
        v1.clone().prop_map(InfoHash::V1),
        v2.clone().prop_map(InfoHash::V2),
        (v1, v2).prop_map(|(a, b)| InfoHash::Hybrid(a, b)),
    ]
}

fn peer() -> impl Strategy<Value = PeerAddr> {
    prop_oneof![
        any::<SocketAddrV4>().prop_map(|a| PeerAddr::Ip(a.into())),
        (any::<[u16; 8]>(), any::<u16>(), any::<u32>()).prop_map(|(seg, port, scope)| {
            let ip = Ipv6Addr::from(seg);
            PeerAddr::Ip(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope)))
        }),
        (
            "[a-zA-Z][a-zA-Z0-9_-]{0,12}(\\.[a-z0-9]{1,6}){0,3}",
            any::<u16>()
        )
            .prop_map(|(host, port)| PeerAddr::Host { host, port }),
        ("[a-z]{0,3}[é日本]{1,3}\\.example", any::<u16>())
            .prop_map(|(host, port)| PeerAddr::Host { host, port }),
    ]
}

fn selection(min: usize) -> impl Strategy<Value = FileSelection> {
    prop::collection::vec((any::<u32>(), 0u32..20), min..5).prop_map(|v| {
        let mut s = FileSelection::new();
        for (a, len) in v {
            s.push(a, a.saturating_add(len));
        }
        s
    })
}

fn link() -> impl Strategy<Value = MagnetLink> {
    let strings = || prop::collection::vec(any::<String>(), 0..4);
    (
        info_hash(),
        prop::option::of(any::<String>()),
        strings(),
        strings(),
        strings(),
        strings(),
        prop::collection::vec(peer(), 0..4),
        selection(0),
        prop::collection::vec(("x-\\PC{0,6}", any::<String>()), 0..4),
    )
        .prop_map(|(h, dn, tr, ws, xs, as_, peers, so, extra)| {
            let mut link = MagnetLink::new(h);
            link.set_display_name(dn);
            *link.trackers_mut() = tr;
            *link.web_seeds_mut() = ws;
            *link.exact_sources_mut() = xs;
            *link.acceptable_sources_mut() = as_;
            *link.peers_mut() = peers;
            link.set_select_only(Some(so));
            *link.extra_mut() = extra;
            link
        })
}

/// Near-valid links: known and unknown names with valid, almost valid and random values.
fn soup() -> impl Strategy<Value = String> {
    let xt_name = prop_oneof![Just("xt"), Just("xt.1"), Just("xt.22"), Just("x%74")];
    let xt_value = prop_oneof![
        Just("urn:btih:0123456789abcdef0123456789abcdef01234567".to_string()),
        Just("urn:btih:0123456789ABCDEF0123456789abcdef01234567".to_string()),
        Just("urn:btih:QHQXPYWMACKDWKP47RRVIV7VOURXFE5Q".to_string()),
        Just(
            "URN:BTMH:12200011223344556677889900aabbccddeeff00112233445566778899aabbccddeeff"
                .to_string()
        ),
        "urn:bt(ih|mh):[0-9a-fA-FQ=]{0,70}",
        "urn:[a-z0-9]{0,6}:[A-Z0-9]{0,8}",
    ];
    let pe_value = prop_oneof![
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,4}:[0-9]{0,6}",
        "(%5B|\\[)[0-9a-f:]{0,12}(%25[0-9]{1,3})?(%5D|\\]):[0-9]{1,5}",
        "[a-z0-9.é-]{0,10}:[0-9+]{0,6}",
    ];
    let text = prop_oneof![
        "[a-zA-Z0-9%+ =:/.é\u{1}-]{0,16}",
        "(%[0-9a-fA-FgG]{0,2}){0,4}",
        any::<String>(),
    ];
    let name = prop_oneof![
        "dn|tr|tr\\.2|ws|xs|as\\.1|xt\\.x|xl|d\\+n|so",
        "[a-z.]{0,4}",
    ];
    let pair = prop_oneof![
        (xt_name, xt_value).prop_map(|(n, v)| format!("{n}={v}")),
        (prop_oneof![Just("x.pe"), Just("x%2Epe")], pe_value).prop_map(|(n, v)| format!("{n}={v}")),
        "so=[0-9,-]{0,12}",
        (name, text.clone()).prop_map(|(n, v)| format!("{n}={v}")),
        text,
        "[a-z&=]{0,3}",
    ];
    (
        prop_oneof![Just("magnet:?"), Just("MAGNET:?"), Just(" magnet:?")],
        prop::option::weighted(
            0.7,
            Just("xt=urn:btih:cdaa6b8e4e0ab6b0e0ab0a1d4aa5ee7bdcf2d7a6&"),
        ),
        prop::collection::vec(pair, 0..8),
    )
        .prop_map(|(scheme, xt, parts)| format!("{scheme}{}{}", xt.unwrap_or(""), parts.join("&")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn built_links_round_trip(link in link()) {
        let text = link.to_string();
        prop_assert_eq!(MagnetLink::parse(&text), Ok(link), "{}", text);
    }

    #[test]
    fn near_valid_links_never_panic_and_are_stable(s in soup()) {
        check_stable(&s)?;
    }

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        check_stable(&s)?;
        check_stable(&format!("magnet:?{s}"))?;
    }

    #[test]
    fn selection_round_trips(so in selection(1)) {
        prop_assert_eq!(FileSelection::parse(&so.to_string()), Ok(so));
    }

    #[test]
    fn peer_round_trips(p in peer()) {
        prop_assert_eq!(PeerAddr::parse(&p.to_string()), Ok(p));
    }
}
