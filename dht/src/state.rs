//! The saved state of a node: its id and the nodes of its routing table, as a bencoded
//! dictionary `{id: 20 bytes, nodes: compact IPv4 node infos, nodes6: compact IPv6}`.

use bencode::{Dict, Value};

use crate::id::Id;
use crate::krpc::{self, NodeInfo};

/// Why a state file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Not bencode.
    #[error("state file is not bencode: {0}")]
    Bencode(#[from] bencode::DecodeError),
    /// Bencode, but not the expected dictionary.
    #[error("state file field `{0}` is missing or invalid")]
    Field(&'static str),
}

/// A node's id and known nodes, for saving and reloading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedState {
    /// The node id.
    pub id: Id,
    /// Known nodes, both families.
    pub nodes: Vec<NodeInfo>,
}

impl SavedState {
    /// Encodes the state.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for n in &self.nodes {
            let out = if n.addr.is_ipv4() { &mut v4 } else { &mut v6 };
            out.extend_from_slice(&n.id.0);
            krpc::push_compact_addr(out, &n.addr);
        }
        let mut d = Dict::new();
        d.insert(b"id", Value::Bytes(&self.id.0));
        d.insert(b"nodes", Value::Bytes(&v4));
        d.insert(b"nodes6", Value::Bytes(&v6));
        Value::Dict(d).to_bytes()
    }

    /// Decodes a state written by [`SavedState::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<SavedState, StateError> {
        let v = bencode::decode(b)?;
        let d = v.as_dict().ok_or(StateError::Field("(top)"))?;
        let id = d
            .get(b"id")
            .and_then(Value::as_bytes)
            .and_then(Id::from_slice)
            .ok_or(StateError::Field("id"))?;
        let mut nodes = Vec::new();
        for (key, len) in [(&b"nodes"[..], 26usize), (&b"nodes6"[..], 38)] {
            let Some(raw) = d.get(key).and_then(Value::as_bytes) else {
                continue;
            };
            for c in raw.chunks_exact(len) {
                if let (Some(id), Some(addr)) =
                    (Id::from_slice(&c[..20]), krpc::compact_addr(&c[20..]))
                {
                    nodes.push(NodeInfo { id, addr });
                }
            }
        }
        Ok(SavedState { id, nodes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = SavedState {
            id: Id([7; 20]),
            nodes: vec![
                NodeInfo {
                    id: Id([1; 20]),
                    addr: "1.2.3.4:5".parse().unwrap(),
                },
                NodeInfo {
                    id: Id([2; 20]),
                    addr: "[::1]:6".parse().unwrap(),
                },
            ],
        };
        assert_eq!(SavedState::from_bytes(&s.to_bytes()).unwrap(), s);
        assert!(SavedState::from_bytes(b"de").is_err());
        assert!(SavedState::from_bytes(b"x").is_err());
    }
}
