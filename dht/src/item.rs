//! BEP 44 items: immutable (keyed by the SHA-1 of the value) and mutable (keyed by the
//! SHA-1 of an ed25519 public key and a salt, signed, versioned by `seq`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer, Verifier};

use crate::id::Id;

/// Largest bencoded value BEP 44 allows.
pub const MAX_VALUE: usize = 1000;
/// Largest salt BEP 44 allows.
pub const MAX_SALT: usize = 64;
/// How long a stored item lives without being put again.
pub const ITEM_TTL: Duration = Duration::from_secs(2 * 60 * 60);

/// Why an item was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ItemError {
    /// `v` is larger than 1000 bytes (BEP 44 error 205).
    #[error("value of {0} bytes is larger than 1000")]
    TooBig(usize),
    /// The salt is larger than 64 bytes (error 207).
    #[error("salt of {0} bytes is larger than 64")]
    SaltTooBig(usize),
    /// `v` is not one bencoded value.
    #[error("value is not bencode")]
    NotBencode,
    /// The signature does not verify, or the key is not a valid ed25519 key (error 206).
    #[error("invalid signature")]
    InvalidSignature,
    /// A mutable item without `k`, `sig` or `seq`.
    #[error("mutable item without k, sig or seq")]
    Incomplete,
}

/// A BEP 44 item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The value, bencoded.
    pub v: Vec<u8>,
    /// Mutable items: the ed25519 public key.
    pub k: Option<[u8; 32]>,
    /// Mutable items: the signature over salt, seq and v.
    pub sig: Option<[u8; 64]>,
    /// Mutable items: the sequence number.
    pub seq: Option<i64>,
    /// Mutable items: the salt (empty when none).
    pub salt: Vec<u8>,
}

impl Item {
    /// An immutable item holding the bencoded value `v`.
    pub fn immutable(v: Vec<u8>) -> Result<Item, ItemError> {
        let item = Item {
            v,
            k: None,
            sig: None,
            seq: None,
            salt: Vec::new(),
        };
        item.check()?;
        Ok(item)
    }

    /// An immutable item holding `data` as a bencoded byte string.
    pub fn immutable_bytes(data: &[u8]) -> Result<Item, ItemError> {
        let mut v = format!("{}:", data.len()).into_bytes();
        v.extend_from_slice(data);
        Item::immutable(v)
    }

    /// A mutable item signed with the ed25519 secret key `secret` (32-byte seed).
    pub fn mutable(
        secret: &[u8; 32],
        v: Vec<u8>,
        seq: i64,
        salt: &[u8],
    ) -> Result<Item, ItemError> {
        let key = ed25519_dalek::SigningKey::from_bytes(secret);
        let mut item = Item {
            v,
            k: Some(key.verifying_key().to_bytes()),
            sig: None,
            seq: Some(seq),
            salt: salt.to_vec(),
        };
        if salt.len() > MAX_SALT {
            return Err(ItemError::SaltTooBig(salt.len()));
        }
        item.sig = Some(key.sign(&item.signable()).to_bytes());
        item.check()?;
        Ok(item)
    }

    /// The ed25519 public key of a secret (seed).
    pub fn public_key(secret: &[u8; 32]) -> [u8; 32] {
        ed25519_dalek::SigningKey::from_bytes(secret)
            .verifying_key()
            .to_bytes()
    }

    /// Whether this is a mutable item.
    pub fn is_mutable(&self) -> bool {
        self.k.is_some()
    }

    /// Where the item is stored: SHA-1 of `v` (immutable) or of `k` + salt (mutable).
    pub fn target(&self) -> Id {
        match &self.k {
            None => Id::sha1(&self.v),
            Some(k) => Item::mutable_target(k, &self.salt),
        }
    }

    /// The target of the mutable item with public key `k` and `salt`.
    pub fn mutable_target(k: &[u8; 32], salt: &[u8]) -> Id {
        let mut b = k.to_vec();
        b.extend_from_slice(salt);
        Id::sha1(&b)
    }

    /// The bytes signed: `4:salt<len>:<salt>` (if any) `3:seqi<seq>e1:v<v>`.
    pub fn signable(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.v.len() + self.salt.len() + 32);
        if !self.salt.is_empty() {
            out.extend_from_slice(format!("4:salt{}:", self.salt.len()).as_bytes());
            out.extend_from_slice(&self.salt);
        }
        out.extend_from_slice(format!("3:seqi{}e1:v", self.seq.unwrap_or(0)).as_bytes());
        out.extend_from_slice(&self.v);
        out
    }

    /// Checks sizes, that `v` is bencode, and (mutable) the signature.
    pub fn check(&self) -> Result<(), ItemError> {
        if self.v.len() > MAX_VALUE {
            return Err(ItemError::TooBig(self.v.len()));
        }
        if self.salt.len() > MAX_SALT {
            return Err(ItemError::SaltTooBig(self.salt.len()));
        }
        bencode::Decoder::new()
            .lenient()
            .max_depth(32)
            .decode(&self.v)
            .map_err(|_| ItemError::NotBencode)?;
        if let Some(k) = &self.k {
            let (Some(sig), Some(_)) = (&self.sig, self.seq) else {
                return Err(ItemError::Incomplete);
            };
            let key = ed25519_dalek::VerifyingKey::from_bytes(k)
                .map_err(|_| ItemError::InvalidSignature)?;
            let sig = ed25519_dalek::Signature::from_bytes(sig);
            key.verify(&self.signable(), &sig)
                .map_err(|_| ItemError::InvalidSignature)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Stored {
    item: Item,
    expires: Instant,
}

/// Items stored for others, bounded.
#[derive(Debug, Clone)]
pub(crate) struct ItemStore {
    items: HashMap<Id, Stored>,
    max: usize,
}

/// Why a put was refused: a BEP 44 error code and text.
pub(crate) type PutRefusal = (i64, &'static [u8]);

impl ItemStore {
    pub(crate) fn new(max: usize) -> ItemStore {
        ItemStore {
            items: HashMap::new(),
            max,
        }
    }

    pub(crate) fn get(&self, target: &Id, now: Instant) -> Option<&Item> {
        self.items
            .get(target)
            .filter(|s| s.expires > now)
            .map(|s| &s.item)
    }

    /// Stores a verified item, applying the `seq` and `cas` rules.
    pub(crate) fn put(
        &mut self,
        item: Item,
        cas: Option<i64>,
        now: Instant,
    ) -> Result<(), PutRefusal> {
        use crate::krpc::error_code as ec;
        let target = item.target();
        if let Some(prev) = self.items.get(&target).filter(|s| s.expires > now) {
            if item.is_mutable() {
                if let Some(cas) = cas {
                    if prev.item.seq != Some(cas) {
                        return Err((ec::CAS_MISMATCH, b"CAS mismatch"));
                    }
                }
                if item.seq < prev.item.seq || (item.seq == prev.item.seq && item.v != prev.item.v)
                {
                    return Err((ec::SEQ_TOO_LOW, b"sequence number less than current"));
                }
            }
        } else if self.items.len() >= self.max {
            self.items.retain(|_, s| s.expires > now);
            if self.items.len() >= self.max {
                return Err((ec::SERVER, b"storage full"));
            }
        }
        self.items.insert(
            target,
            Stored {
                item,
                expires: now + ITEM_TTL,
            },
        );
        Ok(())
    }

    pub(crate) fn expire(&mut self, now: Instant) {
        self.items.retain(|_, s| s.expires > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bep44_test_vectors() {
        // BEP 44 test vector 1: mutable, no salt.
        let seed = [0u8; 32];
        let item = Item::mutable(&seed, b"12:Hello World!".to_vec(), 1, b"").unwrap();
        assert_eq!(item.signable(), b"3:seqi1e1:v12:Hello World!");
        item.check().unwrap();
        // Immutable: target is SHA-1 of the bencoded value.
        let im = Item::immutable_bytes(b"Hello World!").unwrap();
        assert_eq!(
            im.target().to_string(),
            "e5f96f6f38320f0f33959cb4d3d656452117aadb"
        );
        // With salt.
        let salted = Item::mutable(&seed, b"12:Hello World!".to_vec(), 1, b"foobar").unwrap();
        assert_eq!(
            salted.signable(),
            b"4:salt6:foobar3:seqi1e1:v12:Hello World!"
        );
        assert_ne!(salted.target(), item.target());
    }

    #[test]
    fn tampering_is_detected() {
        let seed = [7u8; 32];
        let mut item = Item::mutable(&seed, b"i1e".to_vec(), 5, b"s").unwrap();
        item.check().unwrap();
        item.seq = Some(6);
        assert_eq!(item.check(), Err(ItemError::InvalidSignature));
        assert_eq!(Item::immutable(b"x".to_vec()), Err(ItemError::NotBencode));
        assert!(matches!(
            Item::immutable_bytes(&[0; 1000]),
            Err(ItemError::TooBig(_))
        ));
    }

    #[test]
    fn store_rules() {
        let now = Instant::now();
        let seed = [9u8; 32];
        let mut s = ItemStore::new(2);
        let a1 = Item::mutable(&seed, b"i1e".to_vec(), 1, b"").unwrap();
        let a2 = Item::mutable(&seed, b"i2e".to_vec(), 2, b"").unwrap();
        s.put(a2.clone(), None, now).unwrap();
        assert_eq!(s.put(a1.clone(), None, now).unwrap_err().0, 302);
        let a3 = Item::mutable(&seed, b"i3e".to_vec(), 3, b"").unwrap();
        assert_eq!(s.put(a3.clone(), Some(1), now).unwrap_err().0, 301);
        s.put(a3.clone(), Some(2), now).unwrap();
        assert_eq!(s.get(&a3.target(), now), Some(&a3));
        s.put(Item::immutable_bytes(b"x").unwrap(), None, now)
            .unwrap();
        assert!(
            s.put(Item::immutable_bytes(b"y").unwrap(), None, now)
                .is_err()
        );
        assert!(s.get(&a3.target(), now + ITEM_TTL).is_none());
        s.expire(now + ITEM_TTL);
        assert!(
            s.put(Item::immutable_bytes(b"y").unwrap(), None, now + ITEM_TTL)
                .is_ok()
        );
    }
}
