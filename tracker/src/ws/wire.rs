//! WebTorrent tracker messages: JSON text frames whose 20-byte fields are "binary" strings
//! (one character per byte, U+0000..U+00FF).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::types::{Event, InfoHash, PeerId};

/// Largest WebSocket message accepted (libtorrent's limit).
pub const MAX_MESSAGE: usize = 128 * 1024;
/// Largest SDP accepted (libtorrent's limit).
pub const MAX_SDP: usize = 64 * 1024;
/// Most offers one announce may carry that are used (libtorrent sends up to 10).
pub const MAX_OFFERS: usize = 10;

/// A malformed WebSocket tracker message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WsDecodeError {
    /// Not JSON, or not an object.
    #[error("not a JSON object: {0}")]
    Json(String),
    /// Larger than [`MAX_MESSAGE`].
    #[error("message of {0} bytes is over the limit")]
    TooLarge(usize),
    /// A required field is absent or of the wrong JSON type.
    #[error("missing or invalid field {0}")]
    Field(&'static str),
    /// A binary string field has a character above U+00FF or is not 20 characters long.
    #[error("field {field} is not a 20-byte binary string")]
    Binary {
        /// Which field.
        field: &'static str,
    },
    /// An `action` this side does not handle.
    #[error("unknown action {0:?}")]
    Action(String),
}

/// A session description: `{"type": "offer"|"answer", "sdp": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sdp {
    /// `offer` or `answer`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The SDP text.
    pub sdp: String,
}

/// One WebRTC offer in an announce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// Random id the answer will carry back.
    pub offer_id: [u8; 20],
    /// The offer.
    pub offer: Sdp,
}

/// A client-to-tracker announce (possibly carrying offers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsAnnounce {
    /// The swarm.
    pub info_hash: InfoHash,
    /// The announcing peer.
    pub peer_id: PeerId,
    /// Bytes uploaded.
    pub uploaded: u64,
    /// Bytes downloaded.
    pub downloaded: u64,
    /// Bytes left; `None` when unknown (the JS client sends no number for Infinity).
    pub left: Option<u64>,
    /// Event.
    pub event: Event,
    /// Peers wanted (the number of offers, usually).
    pub numwant: u32,
    /// Offers to forward to other peers, one per peer.
    pub offers: Vec<Offer>,
}

/// A client-to-tracker answer to an offer it received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsAnswer {
    /// The swarm.
    pub info_hash: InfoHash,
    /// The answering peer (us).
    pub peer_id: PeerId,
    /// The offerer.
    pub to_peer_id: PeerId,
    /// The offer's id.
    pub offer_id: [u8; 20],
    /// The answer.
    pub answer: Sdp,
}

/// Client to tracker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientMessage {
    /// Announce (with offers).
    Announce(WsAnnounce),
    /// Answer an offer.
    Answer(WsAnswer),
    /// Scrape these swarms.
    Scrape(Vec<InfoHash>),
}

/// Tracker to client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerMessage {
    /// The reply to our announce (no peer list: peers come as offers and answers).
    AnnounceReply {
        /// The swarm.
        info_hash: InfoHash,
        /// Seeders.
        complete: u32,
        /// Leechers.
        incomplete: u32,
        /// Seconds until the next announce.
        interval: u32,
    },
    /// Another peer's offer, for us to answer.
    Offer {
        /// The swarm.
        info_hash: InfoHash,
        /// The offerer.
        peer_id: PeerId,
        /// To put in our answer.
        offer_id: [u8; 20],
        /// The offer.
        offer: Sdp,
    },
    /// The answer to one of our offers.
    Answer {
        /// The swarm.
        info_hash: InfoHash,
        /// The answerer.
        peer_id: PeerId,
        /// Which of our offers.
        offer_id: [u8; 20],
        /// The answer.
        answer: Sdp,
    },
    /// Scrape figures.
    Scrape {
        /// Per swarm: complete, incomplete, downloaded.
        files: Vec<(InfoHash, crate::types::ScrapeStats)>,
    },
    /// The tracker refused.
    Failure {
        /// The swarm, if the tracker said.
        info_hash: Option<InfoHash>,
        /// `failure reason`.
        reason: String,
    },
}

/// Bytes to a "binary" JS string.
pub fn to_binary_string(b: &[u8]) -> String {
    b.iter().map(|&c| char::from(c)).collect()
}

/// A "binary" JS string to bytes; `None` if a character is above U+00FF.
pub fn from_binary_string(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

fn bin20(obj: &Map<String, Value>, field: &'static str) -> Result<[u8; 20], WsDecodeError> {
    let s = obj
        .get(field)
        .and_then(Value::as_str)
        .ok_or(WsDecodeError::Field(field))?;
    from_binary_string(s)
        .and_then(|v| v.try_into().ok())
        .ok_or(WsDecodeError::Binary { field })
}

fn num(obj: &Map<String, Value>, field: &str) -> Option<u64> {
    match obj.get(field)? {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn sdp(v: &Value, field: &'static str) -> Result<Sdp, WsDecodeError> {
    let s: Sdp = serde_json::from_value(v.clone()).map_err(|_| WsDecodeError::Field(field))?;
    if s.sdp.len() > MAX_SDP {
        return Err(WsDecodeError::TooLarge(s.sdp.len()));
    }
    Ok(s)
}

fn parse_object(text: &str) -> Result<Map<String, Value>, WsDecodeError> {
    if text.len() > MAX_MESSAGE {
        return Err(WsDecodeError::TooLarge(text.len()));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(WsDecodeError::Json("not an object".into())),
        Err(e) => Err(WsDecodeError::Json(e.to_string())),
    }
}

fn hashes(v: Option<&Value>) -> Result<Vec<InfoHash>, WsDecodeError> {
    let one = |v: &Value| {
        v.as_str()
            .and_then(from_binary_string)
            .and_then(|b| <[u8; 20]>::try_from(b).ok())
            .map(InfoHash)
            .ok_or(WsDecodeError::Binary { field: "info_hash" })
    };
    match v {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .take(crate::http::MAX_SCRAPE_HASHES)
            .map(one)
            .collect(),
        Some(v) => Ok(vec![one(v)?]),
    }
}

impl ClientMessage {
    /// Parse a text frame from a client. Offers beyond [`MAX_OFFERS`] are dropped.
    pub fn decode(text: &str) -> Result<ClientMessage, WsDecodeError> {
        let m = parse_object(text)?;
        let action = m
            .get("action")
            .and_then(Value::as_str)
            .ok_or(WsDecodeError::Field("action"))?;
        match action {
            "announce" => {
                let info_hash = InfoHash(bin20(&m, "info_hash")?);
                let peer_id = PeerId(bin20(&m, "peer_id")?);
                if let Some(answer) = m.get("answer") {
                    return Ok(ClientMessage::Answer(WsAnswer {
                        info_hash,
                        peer_id,
                        to_peer_id: PeerId(bin20(&m, "to_peer_id")?),
                        offer_id: bin20(&m, "offer_id")?,
                        answer: sdp(answer, "answer")?,
                    }));
                }
                let mut offers = Vec::new();
                if let Some(list) = m.get("offers") {
                    let list = list.as_array().ok_or(WsDecodeError::Field("offers"))?;
                    for o in list.iter().take(MAX_OFFERS) {
                        let o = o.as_object().ok_or(WsDecodeError::Field("offers"))?;
                        offers.push(Offer {
                            offer_id: bin20(o, "offer_id")?,
                            offer: sdp(
                                o.get("offer").ok_or(WsDecodeError::Field("offer"))?,
                                "offer",
                            )?,
                        });
                    }
                }
                Ok(ClientMessage::Announce(WsAnnounce {
                    info_hash,
                    peer_id,
                    uploaded: num(&m, "uploaded").unwrap_or(0),
                    downloaded: num(&m, "downloaded").unwrap_or(0),
                    left: num(&m, "left"),
                    event: m
                        .get("event")
                        .and_then(Value::as_str)
                        .map(|e| Event::from_name(e.as_bytes()))
                        .unwrap_or_default(),
                    numwant: num(&m, "numwant").unwrap_or(0).min(u32::MAX as u64) as u32,
                    offers,
                }))
            }
            "scrape" => Ok(ClientMessage::Scrape(hashes(m.get("info_hash"))?)),
            other => Err(WsDecodeError::Action(other.chars().take(32).collect())),
        }
    }

    /// Encode as a JSON text frame.
    pub fn encode(&self) -> String {
        let mut m = Map::new();
        m.insert("action".into(), "announce".into());
        match self {
            ClientMessage::Announce(a) => {
                m.insert("info_hash".into(), to_binary_string(&a.info_hash.0).into());
                m.insert("peer_id".into(), to_binary_string(&a.peer_id.0).into());
                m.insert("uploaded".into(), a.uploaded.into());
                m.insert("downloaded".into(), a.downloaded.into());
                if let Some(left) = a.left {
                    m.insert("left".into(), left.into());
                }
                if let Some(e) = a.event.as_str() {
                    m.insert("event".into(), e.into());
                }
                m.insert("numwant".into(), a.numwant.into());
                if !a.offers.is_empty() {
                    let offers = a
                        .offers
                        .iter()
                        .map(|o| {
                            serde_json::json!({
                                "offer_id": to_binary_string(&o.offer_id),
                                "offer": o.offer,
                            })
                        })
                        .collect::<Vec<_>>();
                    m.insert("offers".into(), offers.into());
                }
            }
            ClientMessage::Answer(a) => {
                m.insert("info_hash".into(), to_binary_string(&a.info_hash.0).into());
                m.insert("peer_id".into(), to_binary_string(&a.peer_id.0).into());
                m.insert(
                    "to_peer_id".into(),
                    to_binary_string(&a.to_peer_id.0).into(),
                );
                m.insert("offer_id".into(), to_binary_string(&a.offer_id).into());
                m.insert("answer".into(), serde_json::json!(a.answer));
            }
            ClientMessage::Scrape(h) => {
                m.insert("action".into(), "scrape".into());
                let list: Vec<Value> = h.iter().map(|h| to_binary_string(&h.0).into()).collect();
                m.insert("info_hash".into(), list.into());
            }
        }
        Value::Object(m).to_string()
    }
}

impl ServerMessage {
    /// Parse a text frame from a tracker.
    pub fn decode(text: &str) -> Result<ServerMessage, WsDecodeError> {
        let m = parse_object(text)?;
        let info_hash = || bin20(&m, "info_hash").map(InfoHash);
        if let Some(reason) = m.get("failure reason") {
            return Ok(ServerMessage::Failure {
                info_hash: info_hash().ok(),
                reason: reason
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| reason.to_string()),
            });
        }
        let action = m
            .get("action")
            .and_then(Value::as_str)
            .ok_or(WsDecodeError::Field("action"))?;
        match action {
            "announce" => {
                if let Some(offer) = m.get("offer") {
                    return Ok(ServerMessage::Offer {
                        info_hash: info_hash()?,
                        peer_id: PeerId(bin20(&m, "peer_id")?),
                        offer_id: bin20(&m, "offer_id")?,
                        offer: sdp(offer, "offer")?,
                    });
                }
                if let Some(answer) = m.get("answer") {
                    return Ok(ServerMessage::Answer {
                        info_hash: info_hash()?,
                        peer_id: PeerId(bin20(&m, "peer_id")?),
                        offer_id: bin20(&m, "offer_id")?,
                        answer: sdp(answer, "answer")?,
                    });
                }
                let n = |f| num(&m, f).unwrap_or(0).min(u32::MAX as u64) as u32;
                Ok(ServerMessage::AnnounceReply {
                    info_hash: info_hash()?,
                    complete: n("complete"),
                    incomplete: n("incomplete"),
                    interval: n("interval"),
                })
            }
            "scrape" => {
                let files = m
                    .get("files")
                    .and_then(Value::as_object)
                    .ok_or(WsDecodeError::Field("files"))?;
                let mut out = Vec::new();
                for (k, v) in files.iter().take(crate::http::MAX_SCRAPE_HASHES) {
                    let h = from_binary_string(k)
                        .and_then(|b| <[u8; 20]>::try_from(b).ok())
                        .ok_or(WsDecodeError::Binary { field: "files" })?;
                    let v = v.as_object().ok_or(WsDecodeError::Field("files"))?;
                    let n = |f| num(v, f).unwrap_or(0).min(u32::MAX as u64) as u32;
                    out.push((
                        InfoHash(h),
                        crate::types::ScrapeStats {
                            complete: n("complete"),
                            downloaded: n("downloaded"),
                            incomplete: n("incomplete"),
                        },
                    ));
                }
                Ok(ServerMessage::Scrape { files: out })
            }
            other => Err(WsDecodeError::Action(other.chars().take(32).collect())),
        }
    }

    /// Encode as a JSON text frame.
    pub fn encode(&self) -> String {
        let b = |x: &[u8]| Value::from(to_binary_string(x));
        let v = match self {
            ServerMessage::AnnounceReply {
                info_hash,
                complete,
                incomplete,
                interval,
            } => serde_json::json!({
                "action": "announce",
                "info_hash": b(&info_hash.0),
                "complete": complete,
                "incomplete": incomplete,
                "interval": interval,
            }),
            ServerMessage::Offer {
                info_hash,
                peer_id,
                offer_id,
                offer,
            } => serde_json::json!({
                "action": "announce",
                "info_hash": b(&info_hash.0),
                "peer_id": b(&peer_id.0),
                "offer_id": b(offer_id),
                "offer": offer,
            }),
            ServerMessage::Answer {
                info_hash,
                peer_id,
                offer_id,
                answer,
            } => serde_json::json!({
                "action": "announce",
                "info_hash": b(&info_hash.0),
                "peer_id": b(&peer_id.0),
                "offer_id": b(offer_id),
                "answer": answer,
            }),
            ServerMessage::Scrape { files } => {
                let mut f = Map::new();
                for (h, s) in files {
                    f.insert(
                        to_binary_string(&h.0),
                        serde_json::json!({
                            "complete": s.complete,
                            "incomplete": s.incomplete,
                            "downloaded": s.downloaded,
                        }),
                    );
                }
                serde_json::json!({ "action": "scrape", "files": f })
            }
            ServerMessage::Failure { info_hash, reason } => {
                let mut m = Map::new();
                m.insert("action".into(), "announce".into());
                m.insert("failure reason".into(), reason.as_str().into());
                if let Some(h) = info_hash {
                    m.insert("info_hash".into(), b(&h.0));
                }
                Value::Object(m)
            }
        };
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sdp(kind: &str) -> Sdp {
        Sdp {
            kind: kind.into(),
            sdp: "v=0\r\n".into(),
        }
    }

    #[test]
    fn binary_strings() {
        let b: Vec<u8> = (0..=255).collect();
        assert_eq!(from_binary_string(&to_binary_string(&b)).unwrap(), b);
        assert_eq!(from_binary_string("\u{100}"), None);
        // On the wire: UTF-8 of the code points, e.g. 0xff is "ÿ".
        let j = ClientMessage::Scrape(vec![InfoHash([0xff; 20])]).encode();
        assert!(j.contains(&"ÿ".repeat(20)));
    }

    #[test]
    fn client_messages_roundtrip() {
        let msgs = [
            ClientMessage::Announce(WsAnnounce {
                info_hash: InfoHash([1; 20]),
                peer_id: PeerId([0xe9; 20]),
                uploaded: 1,
                downloaded: 2,
                left: Some(3),
                event: Event::Started,
                numwant: 2,
                offers: vec![Offer {
                    offer_id: [0x80; 20],
                    offer: sdp("offer"),
                }],
            }),
            ClientMessage::Answer(WsAnswer {
                info_hash: InfoHash([1; 20]),
                peer_id: PeerId([2; 20]),
                to_peer_id: PeerId([3; 20]),
                offer_id: [4; 20],
                answer: sdp("answer"),
            }),
            ClientMessage::Scrape(vec![InfoHash([5; 20]), InfoHash([6; 20])]),
        ];
        for m in msgs {
            assert_eq!(ClientMessage::decode(&m.encode()), Ok(m));
        }
    }

    #[test]
    fn server_messages_roundtrip() {
        let msgs = [
            ServerMessage::AnnounceReply {
                info_hash: InfoHash([1; 20]),
                complete: 1,
                incomplete: 2,
                interval: 120,
            },
            ServerMessage::Offer {
                info_hash: InfoHash([1; 20]),
                peer_id: PeerId([2; 20]),
                offer_id: [3; 20],
                offer: sdp("offer"),
            },
            ServerMessage::Answer {
                info_hash: InfoHash([1; 20]),
                peer_id: PeerId([2; 20]),
                offer_id: [3; 20],
                answer: sdp("answer"),
            },
            ServerMessage::Failure {
                info_hash: Some(InfoHash([1; 20])),
                reason: "no".into(),
            },
        ];
        for m in msgs {
            assert_eq!(ServerMessage::decode(&m.encode()), Ok(m));
        }
    }

    #[test]
    fn js_client_announce_parses() {
        // As the npm client sends it (left omitted: Infinity is not JSON).
        let j = r#"{"action":"announce","info_hash":"\u0001\u0001\u0001\u0001\u0001\u0001\u0001\u0001\u0001\u0001\u0001\u0001\u0001\u0001\u0001\u0001\u0001\u0001\u0001\u0001","peer_id":"-WW0001-abcdefghijkl","uploaded":0,"downloaded":0,"event":"started","numwant":5,"offers":[]}"#;
        match ClientMessage::decode(j).unwrap() {
            ClientMessage::Announce(a) => {
                assert_eq!(a.left, None);
                assert_eq!(a.numwant, 5);
                assert_eq!(a.event, Event::Started);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ClientMessage::decode(r#"{"action":"announce","info_hash":"short"}"#),
            Err(WsDecodeError::Binary { field: "info_hash" })
        ));
        assert!(matches!(
            ClientMessage::decode("[1]"),
            Err(WsDecodeError::Json(_))
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
            let _ = ClientMessage::decode(&s);
            let _ = ServerMessage::decode(&s);
        }
    }
}
