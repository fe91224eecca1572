//! proptest: the per-peer state machine never panics on arbitrary message sequences
//! and keeps its bounds.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use rivulet_peer_wire::{BlockRequest, Message, PeerConfig, PeerState};

use crate::codec_props::message;

#[derive(Debug, Clone)]
enum Input {
    Msg(Message),
    Request(BlockRequest),
    Choke,
    Unchoke,
    Advance(u64),
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        4 => message().prop_map(Input::Msg),
        2 => (0u32..5, 0u32..3, prop_oneof![Just(16384u32), 1u32..20000])
            .prop_map(|(index, b, length)| Input::Request(BlockRequest { index, begin: b * 16384, length })),
        1 => Just(Input::Choke),
        1 => Just(Input::Unchoke),
        1 => (0u64..100).prop_map(Input::Advance),
    ]
}

proptest! {
    #[test]
    fn never_panics(fast in any::<bool>(), inputs in proptest::collection::vec(input(), 0..60)) {
        let mut config = PeerConfig::new(4, 32768, 3 * 32768 + 500);
        config.fast = fast;
        config.max_outgoing_requests = 5;
        config.max_incoming_requests = 5;
        config.request_timeout = Duration::from_secs(30);
        let mut p = PeerState::new(config);
        let mut now = Instant::now();
        for i in inputs {
            match i {
                Input::Msg(m) => {
                    if p.handle_message(now, m).is_err() {
                        break; // the connection would be closed
                    }
                }
                Input::Request(r) => {
                    let _ = p.request(now, r);
                }
                Input::Choke => p.choke(),
                Input::Unchoke => p.unchoke(),
                Input::Advance(s) => {
                    now += Duration::from_secs(s);
                    if p.handle_timeout(now).is_err() {
                        break; // idle: the connection would be closed
                    }
                }
            }
            while p.poll_transmit().is_some() {}
            while p.poll_event().is_some() {}
            prop_assert!(p.outstanding().count() <= 5);
            prop_assert!(p.peer_requests().count() <= 5);
            if let Some(t) = p.poll_timeout() {
                prop_assert!(t > now);
            }
        }
    }
}
