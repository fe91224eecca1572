//! The BEP 10 extensions a torrent with metadata speaks, for the core: serving the
//! info dictionary (BEP 9 `ut_metadata`) and peer exchange (BEP 11 `ut_pex`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use peer_wire::{ExtensionHandshake, Message, MetadataMessage, UT_METADATA};

use crate::metadata::serve;
use crate::pex::{OUR_UT_PEX, Pex, PexConfig, PexEntry};
use crate::picker::PeerKey;

/// Our extended message id for `ut_metadata` (what peers send it under).
pub(crate) const OUR_UT_METADATA: u8 = 2;

/// `ut_metadata` requests answered per peer and connection before we reject: a peer
/// needs each piece once; this leaves room for retries but not for a download loop.
const SERVE_FACTOR: u32 = 4;

/// What an extended message asks of the core.
#[derive(Debug, Default)]
pub(crate) struct ExtOutput {
    /// A message to send back to the peer.
    pub(crate) reply: Option<Message>,
    /// Addresses learned through PEX, to dial if limits allow.
    pub(crate) dial: Vec<SocketAddr>,
    /// The peer broke an extension's protocol (close the connection).
    pub(crate) error: Option<String>,
}

/// Per-torrent extension state. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Extensions {
    info: Option<Bytes>,
    metadata_ids: HashMap<PeerKey, u8>,
    served: HashMap<PeerKey, u32>,
    pex: Pex,
}

impl Extensions {
    pub(crate) fn new() -> Extensions {
        Extensions {
            info: None,
            metadata_ids: HashMap::new(),
            served: HashMap::new(),
            pex: Pex::new(false, PexConfig::default()),
        }
    }

    /// The raw info dictionary to serve, and whether the torrent is private (no PEX).
    pub(crate) fn set_info(&mut self, info: Bytes, private: bool) {
        self.info = Some(info);
        self.pex = Pex::new(private, PexConfig::default());
    }

    /// Fills in our extension handshake.
    pub(crate) fn advertise(&self, hs: &mut ExtensionHandshake) {
        if let Some(info) = &self.info {
            hs.m.insert(UT_METADATA.into(), OUR_UT_METADATA);
            hs.metadata_size = Some(info.len() as u64);
        }
        self.pex.advertise(hs);
    }

    pub(crate) fn handle_handshake(&mut self, now: Instant, key: PeerKey, hs: &ExtensionHandshake) {
        tracing::debug!(peer = key, m = ?hs.m, client = ?hs.v, "extension handshake");
        match hs.id_of(UT_METADATA) {
            Some(id) => self.metadata_ids.insert(key, id),
            None => self.metadata_ids.remove(&key),
        };
        self.pex.handle_handshake(now, key, hs);
    }

    /// An extended message (id as we assigned it).
    pub(crate) fn handle_message(
        &mut self,
        now: Instant,
        key: PeerKey,
        id: u8,
        payload: &Bytes,
    ) -> ExtOutput {
        let mut out = ExtOutput::default();
        tracing::trace!(peer = key, id, len = payload.len(), "extended message");
        match id {
            OUR_UT_METADATA => match MetadataMessage::parse(payload) {
                Ok(MetadataMessage::Request { piece }) => {
                    let Some(their_id) = self.metadata_ids.get(&key).copied() else {
                        out.error =
                            Some("ut_metadata request without announcing ut_metadata".into());
                        return out;
                    };
                    let answer = match &self.info {
                        Some(info) => {
                            let n = self.served.entry(key).or_default();
                            let limit = SERVE_FACTOR
                                * (info.len().div_ceil(peer_wire::METADATA_PIECE_LEN) as u32)
                                + 8;
                            *n += 1;
                            if *n > limit {
                                MetadataMessage::Reject { piece }
                            } else {
                                serve(info, piece)
                            }
                        }
                        None => MetadataMessage::Reject { piece },
                    };
                    out.reply = Some(answer.to_message(their_id));
                }
                // We asked for nothing: data and rejects are dropped.
                Ok(_) => {}
                Err(e) => out.error = Some(e.to_string()),
            },
            OUR_UT_PEX if self.pex.enabled() => match self.pex.handle_message(now, key, payload) {
                Ok(v) => {
                    tracing::debug!(peer = key, learned = ?v, "ut_pex");
                    out.dial = v;
                }
                Err(e) => out.error = Some(e.to_string()),
            },
            _ => tracing::debug!(
                peer = key,
                id,
                "extended message we did not announce: ignored"
            ),
        }
        out
    }

    pub(crate) fn handle_disconnect(&mut self, key: PeerKey) {
        self.metadata_ids.remove(&key);
        self.served.remove(&key);
        self.pex.handle_disconnect(key);
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.pex.poll_timeout()
    }

    /// PEX messages due at `now`.
    pub(crate) fn poll_pex(
        &mut self,
        now: Instant,
        connected: &[PexEntry],
    ) -> Vec<(PeerKey, Message)> {
        self.pex.poll_messages(now, connected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_metadata_within_a_budget_and_rejects_beyond() {
        let info = Bytes::from(vec![7u8; 20_000]);
        let mut ext = Extensions::new();
        ext.set_info(info.clone(), false);
        let mut hs = ExtensionHandshake::new();
        ext.advertise(&mut hs);
        assert_eq!(hs.id_of(UT_METADATA), Some(OUR_UT_METADATA));
        assert_eq!(hs.id_of(peer_wire::UT_PEX), Some(OUR_UT_PEX));
        assert_eq!(hs.metadata_size, Some(20_000));
        let now = Instant::now();
        let req = |p| Bytes::from(MetadataMessage::Request { piece: p }.to_bytes());
        // Without their handshake, a request is a protocol error.
        assert!(
            ext.handle_message(now, 1, OUR_UT_METADATA, &req(0))
                .error
                .is_some()
        );
        let mut theirs = ExtensionHandshake::new();
        theirs.m.insert(UT_METADATA.into(), 5);
        ext.handle_handshake(now, 1, &theirs);
        let got = ext.handle_message(now, 1, OUR_UT_METADATA, &req(1));
        let Some(Message::Extended { id: 5, payload }) = got.reply else {
            panic!("{got:?}")
        };
        match MetadataMessage::parse(&payload).unwrap() {
            MetadataMessage::Data {
                piece: 1,
                total_size: 20_000,
                data,
            } => assert_eq!(data.len(), 20_000 - 16_384),
            other => panic!("{other:?}"),
        }
        let mut rejected = 0;
        for _ in 0..100 {
            let got = ext.handle_message(now, 1, OUR_UT_METADATA, &req(0));
            let Some(Message::Extended { payload, .. }) = got.reply else {
                panic!()
            };
            if matches!(
                MetadataMessage::parse(&payload),
                Ok(MetadataMessage::Reject { .. })
            ) {
                rejected += 1;
            }
        }
        assert_eq!(rejected, 100 - (4 * 2 + 8 - 1));
        assert!(
            ext.handle_message(now, 1, OUR_UT_METADATA, &Bytes::from_static(b"x"))
                .error
                .is_some()
        );
    }

    #[test]
    fn private_torrents_announce_no_pex() {
        let mut ext = Extensions::new();
        ext.set_info(Bytes::from_static(b"de"), true);
        let mut hs = ExtensionHandshake::new();
        ext.advertise(&mut hs);
        assert_eq!(hs.id_of(peer_wire::UT_PEX), None);
        assert_eq!(hs.id_of(UT_METADATA), Some(OUR_UT_METADATA));
    }

    /// Whole cores wired in memory: what the extensions do through the real core.
    mod through_the_core {
        use std::collections::HashMap;
        use std::net::SocketAddr;
        use std::time::{Duration, Instant};

        use bytes::Bytes;
        use handshake::{PeerId, Reserved};
        use metainfo::{InfoHash, InfoHashV1, LayoutMode, PieceLayout};
        use peer_wire::{ExtensionHandshake, Message, MetadataMessage, PeerConfig};
        use sha1::{Digest, Sha1};

        use crate::core::{Action, CoreConfig, NewPeer, TorrentCore};
        use crate::metadata::{MetadataConfig, MetadataFetch, PeerUse};
        use crate::picker::{PeerKey, Picker};

        fn core(id: u8, info: &Bytes, private: bool) -> TorrentCore {
            let layout = PieceLayout::new(32768, LayoutMode::V1, [(100_000, false)]).unwrap();
            let pc = PeerConfig::new(layout.piece_count(), 32768, 100_000);
            let config = CoreConfig {
                peer_id: PeerId([id; 20]),
                reserved: Reserved::STANDARD,
                max_unchoked: 4,
                max_outstanding: 16,
                max_unchecked: usize::MAX,
                listen_port: Some(6000 + u16::from(id)),
                dht_port: None,
            };
            let mut c = TorrentCore::new(config, pc, Picker::new(&layout, 1));
            c.set_info(info.clone(), private);
            c
        }

        fn addr(id: u8) -> SocketAddr {
            SocketAddr::from(([10, 0, 0, id], 6000 + u16::from(id)))
        }

        #[test]
        fn a_metadata_fetch_gets_the_info_dictionary_from_a_core() {
            let info = Bytes::from((0..40_000u32).map(|i| (i % 253) as u8).collect::<Vec<u8>>());
            let hash = InfoHash::V1(InfoHashV1(Sha1::digest(&info).into()));
            let mut seed = core(1, &info, false);
            let mut fetch = MetadataFetch::new(hash, MetadataConfig::default());
            let now = Instant::now();
            let np = NewPeer {
                peer_id: PeerId([9; 20]),
                reserved: Reserved::STANDARD,
                addr: Some(addr(9)),
                outgoing: false,
            };
            let k = seed.handle_connect(now, np).unwrap();
            // Our handshake, as the metadata phase sends it.
            let mut ours = ExtensionHandshake::new();
            ours.m.insert(peer_wire::UT_METADATA.into(), 5);
            seed.handle_message(now, k, ours.to_message());
            let mut done = false;
            for _ in 0..100 {
                while let Some(a) = seed.poll_action() {
                    let Action::Send(_, Message::Extended { id, payload }) = a else {
                        continue;
                    };
                    if id == 0 {
                        let hs = ExtensionHandshake::parse(&payload).unwrap();
                        assert_eq!(hs.metadata_size, Some(40_000));
                        assert_eq!(fetch.handle_handshake(now, 1, &hs), PeerUse::Usable);
                    } else {
                        assert_eq!(id, 5);
                        let m = MetadataMessage::parse(&payload).unwrap();
                        fetch.handle_message(now, 1, m).unwrap();
                    }
                }
                while let Some((_, id, m)) = fetch.poll_request() {
                    seed.handle_message(now, k, m.to_message(id));
                }
                if let Some(got) = fetch.take_metadata() {
                    assert_eq!(got, info.to_vec());
                    done = true;
                    break;
                }
            }
            assert!(done);
        }

        /// Runs the cores until quiet; returns the addresses each was asked to dial and
        /// how many ut_pex messages went out.
        fn pump(
            cores: &mut [TorrentCore],
            links: &HashMap<(usize, PeerKey), (usize, PeerKey)>,
            now: Instant,
        ) -> (Vec<Vec<SocketAddr>>, usize) {
            let mut dials = vec![Vec::new(); cores.len()];
            let mut pex = 0;
            loop {
                let mut moved = false;
                for i in 0..cores.len() {
                    while let Some(a) = cores[i].poll_action() {
                        moved = true;
                        match a {
                            Action::Send(k, msg) => {
                                if let Message::Extended { id, .. } = &msg
                                    && *id == super::OUR_UT_PEX
                                {
                                    pex += 1;
                                }
                                if let Some(&(j, kj)) = links.get(&(i, k)) {
                                    cores[j].handle_message(now, kj, msg);
                                }
                            }
                            Action::Connect(a) => dials[i].push(a),
                            _ => {}
                        }
                    }
                }
                if !moved {
                    return (dials, pex);
                }
            }
        }

        fn pex_among_three(private: bool) -> (Vec<Vec<SocketAddr>>, usize) {
            let info = Bytes::from_static(b"d4:name1:xe");
            let mut cores: Vec<TorrentCore> = (1..=3).map(|i| core(i, &info, private)).collect();
            let mut links = HashMap::new();
            let t0 = Instant::now();
            // Core 0 dials cores 1 and 2; they do not know each other.
            for j in [1usize, 2] {
                let out = NewPeer {
                    peer_id: PeerId([j as u8 + 1; 20]),
                    reserved: Reserved::STANDARD,
                    addr: Some(addr(j as u8 + 1)),
                    outgoing: true,
                };
                let inc = NewPeer {
                    peer_id: PeerId([1; 20]),
                    reserved: Reserved::STANDARD,
                    addr: Some(SocketAddr::from(([10, 0, 0, 1], 40_000))),
                    outgoing: false,
                };
                let ka = cores[0].handle_connect(t0, out).unwrap();
                let kb = cores[j].handle_connect(t0, inc).unwrap();
                links.insert((0, ka), (j, kb));
                links.insert((j, kb), (0, ka));
            }
            let (d, mut pex) = pump(&mut cores, &links, t0);
            assert!(d.iter().all(Vec::is_empty));
            // The first PEX round is due a few seconds on.
            let t1 = t0 + Duration::from_secs(3);
            assert_eq!(
                cores[0].poll_timeout().is_some_and(|t| t <= t1),
                !private,
                "PEX is due on public torrents only"
            );
            for c in &mut cores {
                c.handle_timeout(t1);
            }
            let (dials, n) = pump(&mut cores, &links, t1);
            pex += n;
            (dials, pex)
        }

        #[test]
        fn peers_learn_each_other_through_a_core_s_pex() {
            let (dials, pex) = pex_among_three(false);
            assert_eq!(dials[0], Vec::<SocketAddr>::new());
            // Core 1 hears of core 2 (at the address core 0 dialed) and vice versa;
            // core 0's own address is not known to them as a listening one, and only
            // core 0 has peers to tell about.
            assert_eq!(dials[1], vec![addr(3)]);
            assert_eq!(dials[2], vec![addr(2)]);
            assert_eq!(pex, 2);
        }

        #[test]
        fn private_torrents_exchange_no_peers() {
            let (dials, pex) = pex_among_three(true);
            assert!(dials.iter().all(Vec::is_empty), "{dials:?}");
            assert_eq!(pex, 0);
        }
    }
}
