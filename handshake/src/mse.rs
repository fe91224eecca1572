//! Message Stream Encryption / Protocol Encryption (MSE/PE), sans-IO.
//!
//! The obfuscation layer that most clients speak before the BitTorrent handshake: a
//! 768-bit Diffie-Hellman exchange, then RC4 streams keyed from the shared secret and
//! the torrent's info hash (`SKEY`), with the first 1024 bytes of each stream
//! discarded. The initiator offers plaintext and/or RC4 for the rest of the connection
//! (`crypto_provide`), the responder picks one (`crypto_select`).
//!
//! ```text
//! A → B  Ya, PadA
//! B → A  Yb, PadB
//! A → B  HASH('req1', S), HASH('req2', SKEY) ^ HASH('req3', S),
//!        ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
//! B → A  ENCRYPT(VC, crypto_select, len(PadD), PadD), ENCRYPT2(payload)
//! A → B  ENCRYPT2(payload)
//! ```
//!
//! [`Initiator`] and [`Responder`] follow the same drain rule as the plaintext
//! handshake: after every `handle_input`, call `poll_transmit` and send what it returns;
//! `handle_input` may consume fewer bytes than given (it stops where it has something
//! to send, and at the end of the negotiation), so feed the rest again. Once
//! [`MseStep::Done`], the remaining input belongs to the payload stream: decrypt it
//! with [`Negotiated::cipher`] if RC4 was selected.
//!
//! Randomness (the DH private key, padding) is injected.

use metainfo::InfoHashV1;
use num_bigint::BigUint;
use sha1::{Digest, Sha1};

/// The 768-bit MSE prime.
const PRIME_HEX: &[u8] = b"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563";
/// Length of a DH public key and of the shared secret on the wire.
pub const KEY_LEN: usize = 96;
/// Maximum padding length.
pub const MAX_PAD: usize = 512;
const VC: [u8; 8] = [0; 8];

/// `crypto_provide` / `crypto_select` bit: plaintext after the negotiation.
pub const CRYPTO_PLAINTEXT: u32 = 0x01;
/// `crypto_provide` / `crypto_select` bit: RC4 after the negotiation.
pub const CRYPTO_RC4: u32 = 0x02;

/// Why an MSE negotiation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MseError {
    /// The synchronisation hash (req1 for the responder, the encrypted VC for the
    /// initiator) was not within the padding window.
    #[error("no {what} within {window} bytes after the DH key")]
    SyncNotFound {
        /// Which marker was looked for.
        what: &'static str,
        /// How far it was looked for.
        window: usize,
    },
    /// The obfuscated info hash matches no torrent this node serves.
    #[error("the peer asked for a torrent this node does not serve")]
    UnknownSkey,
    /// The decrypted verification constant is not eight zero bytes.
    #[error("verification constant mismatch (wrong key)")]
    BadVc,
    /// A padding length above 512.
    #[error("padding length {len} exceeds 512")]
    PadTooLong {
        /// The length announced.
        len: usize,
    },
    /// No crypto method both sides allow.
    #[error("no common crypto method (peer offers {offered:#x}, we allow {allowed:#x})")]
    NoCommonCrypto {
        /// The peer's `crypto_provide`.
        offered: u32,
        /// Ours.
        allowed: u32,
    },
    /// The responder selected a method we did not offer, or more than one.
    #[error("peer selected crypto {selected:#x}, we offered {offered:#x}")]
    BadSelect {
        /// The peer's `crypto_select`.
        selected: u32,
        /// Our `crypto_provide`.
        offered: u32,
    },
}

/// RC4, as MSE uses it.
#[derive(Clone)]
pub struct Rc4 {
    s: [u8; 256],
    i: u8,
    j: u8,
}

impl std::fmt::Debug for Rc4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rc4(..)")
    }
}

impl Rc4 {
    /// Keys a stream (no bytes discarded).
    pub fn new(key: &[u8]) -> Rc4 {
        let mut s = [0u8; 256];
        for (i, b) in s.iter_mut().enumerate() {
            *b = i as u8;
        }
        let mut j = 0u8;
        if !key.is_empty() {
            for i in 0..256 {
                j = j.wrapping_add(s[i]).wrapping_add(key[i % key.len()]);
                s.swap(i, usize::from(j));
            }
        }
        Rc4 { s, i: 0, j: 0 }
    }

    /// Keys a stream and discards its first 1024 bytes, as MSE does.
    pub fn new_mse(key: &[u8]) -> Rc4 {
        let mut r = Rc4::new(key);
        r.apply(&mut [0u8; 1024]);
        r
    }

    /// Encrypts or decrypts `data` in place.
    pub fn apply(&mut self, data: &mut [u8]) {
        for b in data {
            self.i = self.i.wrapping_add(1);
            self.j = self.j.wrapping_add(self.s[usize::from(self.i)]);
            self.s.swap(usize::from(self.i), usize::from(self.j));
            let k = self.s[usize::from(
                self.s[usize::from(self.i)].wrapping_add(self.s[usize::from(self.j)]),
            )];
            *b ^= k;
        }
    }
}

/// The RC4 streams of a connection that selected RC4.
#[derive(Debug, Clone)]
pub struct Cipher {
    /// Encrypts what we send.
    pub encrypt: Rc4,
    /// Decrypts what we receive.
    pub decrypt: Rc4,
}

/// The outcome of a successful negotiation.
#[derive(Debug)]
pub struct Negotiated {
    /// The torrent the connection is for (the SKEY).
    pub skey: InfoHashV1,
    /// `Some` if RC4 was selected for the payload stream, `None` for plaintext.
    pub cipher: Option<Cipher>,
    /// The initiator's initial payload (IA), decrypted: the start of its payload stream
    /// (usually its BitTorrent handshake). Always empty on the initiator's side.
    pub initial_payload: Vec<u8>,
    /// Bytes to send before anything else (the responder's step 4; empty for the
    /// initiator).
    pub to_send: Vec<u8>,
}

/// The result of feeding input to an MSE state.
// The states are moved by value on purpose (consuming transitions, no allocation per
// step); the size difference between the variants is a few hundred bytes of RC4 state.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum MseStep<S> {
    /// The negotiation goes on.
    NeedMore(S),
    /// The negotiation is complete.
    Done(Negotiated),
}

fn prime() -> BigUint {
    // The constant is valid hex; the fallback is unreachable.
    BigUint::parse_bytes(PRIME_HEX, 16).unwrap_or_default()
}

fn to_96(n: &BigUint) -> [u8; KEY_LEN] {
    let b = n.to_bytes_be();
    let mut out = [0u8; KEY_LEN];
    let n = b.len().min(KEY_LEN);
    out[KEY_LEN - n..].copy_from_slice(&b[b.len() - n..]);
    out
}

fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// `HASH('req2', SKEY)`: what a responder looks an obfuscated info hash up by.
pub fn req2_hash(skey: &InfoHashV1) -> [u8; 20] {
    sha1(&[b"req2", &skey.0])
}

struct Dh {
    private: BigUint,
    public: [u8; KEY_LEN],
}

impl Dh {
    fn new(rng: &mut impl rand::Rng) -> Dh {
        let mut x = [0u8; 20];
        rng.fill(&mut x[..]);
        let private = BigUint::from_bytes_be(&x);
        let public = to_96(&BigUint::from(2u8).modpow(&private, &prime()));
        Dh { private, public }
    }
    fn secret(&self, theirs: &[u8]) -> [u8; KEY_LEN] {
        to_96(&BigUint::from_bytes_be(theirs).modpow(&self.private, &prime()))
    }
}

fn padding(rng: &mut impl rand::Rng, max: usize) -> Vec<u8> {
    let mut pad = vec![0u8; rng.random_range(0..=max)];
    rng.fill(&mut pad[..]);
    pad
}

/// Position of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Accumulated input and a cursor, shared by both sides.
#[derive(Debug, Default)]
struct Input {
    buf: Vec<u8>,
    pos: usize,
}

impl Input {
    fn take(&mut self, n: usize) -> Option<&mut [u8]> {
        let start = self.pos;
        if self.buf.len() - start < n {
            return None;
        }
        self.pos += n;
        Some(&mut self.buf[start..start + n])
    }
    /// How many bytes of `fed` (the input of this call) were not processed; drops them.
    fn unprocessed(&mut self, fed: usize) -> usize {
        let left = (self.buf.len() - self.pos).min(fed);
        self.buf.truncate(self.buf.len() - left);
        left
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IPhase {
    Yb,
    SyncVc,
    Select,
    PadD { len: usize, select: u32 },
}

/// The side that opened the connection.
pub struct Initiator {
    dh: Dh,
    skey: InfoHashV1,
    provide: u32,
    initial_payload: Vec<u8>,
    transmit: Vec<u8>,
    input: Input,
    phase: IPhase,
    cipher: Option<Cipher>,
    rng_pad_c: Vec<u8>,
}

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initiator")
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl Initiator {
    /// Starts a negotiation for torrent `skey`, offering `provide` (a combination of
    /// [`CRYPTO_PLAINTEXT`] and [`CRYPTO_RC4`]) and sending `initial_payload` (IA, at
    /// most 65535 bytes; usually our BitTorrent handshake) in step 3.
    pub fn new(
        skey: InfoHashV1,
        provide: u32,
        initial_payload: &[u8],
        rng: &mut impl rand::Rng,
    ) -> Self {
        Self::with_max_padding(skey, provide, initial_payload, MAX_PAD, rng)
    }

    /// As [`new`](Self::new) with padding lengths drawn from `0..=pad_max` (at most 512).
    pub fn with_max_padding(
        skey: InfoHashV1,
        provide: u32,
        initial_payload: &[u8],
        pad_max: usize,
        rng: &mut impl rand::Rng,
    ) -> Self {
        let pad_max = pad_max.min(MAX_PAD);
        let dh = Dh::new(rng);
        let mut transmit = dh.public.to_vec();
        transmit.extend(padding(rng, pad_max));
        let rng_pad_c = padding(rng, pad_max);
        let ia_len = initial_payload.len().min(usize::from(u16::MAX));
        Initiator {
            dh,
            skey,
            provide,
            initial_payload: initial_payload[..ia_len].to_vec(),
            transmit,
            input: Input::default(),
            phase: IPhase::Yb,
            cipher: None,
            rng_pad_c,
        }
    }

    /// Bytes to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.transmit.is_empty()).then(|| std::mem::take(&mut self.transmit))
    }

    /// Feeds bytes from the responder; returns the next step and how many bytes of
    /// `data` were consumed.
    pub fn handle_input(mut self, data: &[u8]) -> Result<(MseStep<Self>, usize), MseError> {
        self.input.buf.extend_from_slice(data);
        loop {
            match self.phase {
                IPhase::Yb => {
                    let Some(yb) = self.input.take(KEY_LEN) else {
                        break;
                    };
                    let s = self.dh.secret(yb);
                    let req1 = sha1(&[b"req1", &s]);
                    let req2 = req2_hash(&self.skey);
                    let req3 = sha1(&[b"req3", &s]);
                    let mut encrypt = Rc4::new_mse(&sha1(&[b"keyA", &s, &self.skey.0]));
                    let decrypt = Rc4::new_mse(&sha1(&[b"keyB", &s, &self.skey.0]));
                    let mut out = req1.to_vec();
                    out.extend(req2.iter().zip(req3).map(|(a, b)| a ^ b));
                    let mut enc = VC.to_vec();
                    enc.extend(self.provide.to_be_bytes());
                    enc.extend((self.rng_pad_c.len() as u16).to_be_bytes());
                    enc.extend(&self.rng_pad_c);
                    enc.extend((self.initial_payload.len() as u16).to_be_bytes());
                    enc.extend(&self.initial_payload);
                    encrypt.apply(&mut enc);
                    out.extend(enc);
                    self.transmit.extend(out);
                    self.cipher = Some(Cipher { encrypt, decrypt });
                    self.phase = IPhase::SyncVc;
                    let left = self.input.unprocessed(data.len());
                    return Ok((MseStep::NeedMore(self), data.len() - left));
                }
                IPhase::SyncVc => {
                    let Some(cipher) = self.cipher.as_mut() else {
                        break;
                    };
                    let mut marker = VC;
                    cipher.decrypt.clone().apply(&mut marker);
                    let window = MAX_PAD + VC.len();
                    let hay = &self.input.buf[self.input.pos..];
                    match find(&hay[..hay.len().min(window)], &marker) {
                        Some(at) => {
                            self.input.pos += at + VC.len();
                            cipher.decrypt.apply(&mut [0u8; 8]);
                            self.phase = IPhase::Select;
                        }
                        None if hay.len() >= window => {
                            return Err(MseError::SyncNotFound {
                                what: "encrypted verification constant",
                                window,
                            });
                        }
                        None => break,
                    }
                }
                IPhase::Select => {
                    let Some(cipher) = self.cipher.as_mut() else {
                        break;
                    };
                    let Some(b) = self.input.take(6) else { break };
                    cipher.decrypt.apply(b);
                    let select = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                    let len = usize::from(u16::from_be_bytes([b[4], b[5]]));
                    if select.count_ones() != 1 || select & self.provide == 0 {
                        return Err(MseError::BadSelect {
                            selected: select,
                            offered: self.provide,
                        });
                    }
                    if len > MAX_PAD {
                        return Err(MseError::PadTooLong { len });
                    }
                    self.phase = IPhase::PadD { len, select };
                }
                IPhase::PadD { len, select } => {
                    let Some(mut cipher) = self.cipher.take() else {
                        break;
                    };
                    let Some(pad) = self.input.take(len) else {
                        self.cipher = Some(cipher);
                        break;
                    };
                    cipher.decrypt.apply(pad);
                    let left = self.input.unprocessed(data.len());
                    let negotiated = Negotiated {
                        skey: self.skey,
                        cipher: (select == CRYPTO_RC4).then_some(cipher),
                        initial_payload: Vec::new(),
                        to_send: std::mem::take(&mut self.transmit),
                    };
                    return Ok((MseStep::Done(negotiated), data.len() - left));
                }
            }
        }
        Ok((MseStep::NeedMore(self), data.len()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RPhase {
    Ya,
    SyncReq1,
    Skey,
    Provide,
    PadC { len: usize, provide: u32 },
    Ia { len: usize, provide: u32 },
}

/// The side that accepted the connection.
pub struct Responder {
    dh: Dh,
    allowed: u32,
    prefer_rc4: bool,
    pad_d: Vec<u8>,
    transmit: Vec<u8>,
    input: Input,
    phase: RPhase,
    secret: [u8; KEY_LEN],
    skey: Option<InfoHashV1>,
    cipher: Option<Cipher>,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl Responder {
    /// Waits for an initiator; `allowed` is the set of crypto methods we accept and
    /// `prefer_rc4` picks RC4 when the initiator offers both.
    pub fn new(allowed: u32, prefer_rc4: bool, rng: &mut impl rand::Rng) -> Self {
        Self::with_max_padding(allowed, prefer_rc4, MAX_PAD, rng)
    }

    /// As [`new`](Self::new) with padding lengths drawn from `0..=pad_max`.
    pub fn with_max_padding(
        allowed: u32,
        prefer_rc4: bool,
        pad_max: usize,
        rng: &mut impl rand::Rng,
    ) -> Self {
        let pad_max = pad_max.min(MAX_PAD);
        let dh = Dh::new(rng);
        let pad_b = padding(rng, pad_max);
        let pad_d = padding(rng, pad_max);
        Responder {
            dh,
            allowed,
            prefer_rc4,
            pad_d,
            transmit: pad_b,
            input: Input::default(),
            phase: RPhase::Ya,
            secret: [0; KEY_LEN],
            skey: None,
            cipher: None,
        }
    }

    /// Bytes to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (self.phase != RPhase::Ya && !self.transmit.is_empty())
            .then(|| std::mem::take(&mut self.transmit))
    }

    /// Feeds bytes from the initiator. `lookup` maps `HASH('req2', SKEY)` to a torrent
    /// this node serves (see [`req2_hash`]).
    pub fn handle_input(
        mut self,
        data: &[u8],
        lookup: impl Fn(&[u8; 20]) -> Option<InfoHashV1>,
    ) -> Result<(MseStep<Self>, usize), MseError> {
        self.input.buf.extend_from_slice(data);
        loop {
            match self.phase {
                RPhase::Ya => {
                    let Some(ya) = self.input.take(KEY_LEN) else {
                        break;
                    };
                    self.secret = self.dh.secret(ya);
                    let mut out = self.dh.public.to_vec();
                    out.append(&mut self.transmit);
                    self.transmit = out;
                    self.phase = RPhase::SyncReq1;
                    let left = self.input.unprocessed(data.len());
                    return Ok((MseStep::NeedMore(self), data.len() - left));
                }
                RPhase::SyncReq1 => {
                    let marker = sha1(&[b"req1", &self.secret]);
                    let window = MAX_PAD + 20;
                    let hay = &self.input.buf[self.input.pos..];
                    match find(&hay[..hay.len().min(window)], &marker) {
                        Some(at) => {
                            self.input.pos += at + 20;
                            self.phase = RPhase::Skey;
                        }
                        None if hay.len() >= window => {
                            return Err(MseError::SyncNotFound {
                                what: "req1 hash",
                                window,
                            });
                        }
                        None => break,
                    }
                }
                RPhase::Skey => {
                    let req3 = sha1(&[b"req3", &self.secret]);
                    let Some(x) = self.input.take(20) else { break };
                    let mut req2 = [0u8; 20];
                    for (i, b) in req2.iter_mut().enumerate() {
                        *b = x[i] ^ req3[i];
                    }
                    let skey = lookup(&req2).ok_or(MseError::UnknownSkey)?;
                    let s = &self.secret;
                    self.cipher = Some(Cipher {
                        encrypt: Rc4::new_mse(&sha1(&[b"keyB", s, &skey.0])),
                        decrypt: Rc4::new_mse(&sha1(&[b"keyA", s, &skey.0])),
                    });
                    self.skey = Some(skey);
                    self.phase = RPhase::Provide;
                }
                RPhase::Provide => {
                    let Some(cipher) = self.cipher.as_mut() else {
                        break;
                    };
                    let Some(b) = self.input.take(14) else { break };
                    cipher.decrypt.apply(b);
                    if b[..8] != VC {
                        return Err(MseError::BadVc);
                    }
                    let provide = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
                    let len = usize::from(u16::from_be_bytes([b[12], b[13]]));
                    if len > MAX_PAD {
                        return Err(MseError::PadTooLong { len });
                    }
                    if provide & self.allowed & (CRYPTO_PLAINTEXT | CRYPTO_RC4) == 0 {
                        return Err(MseError::NoCommonCrypto {
                            offered: provide,
                            allowed: self.allowed,
                        });
                    }
                    self.phase = RPhase::PadC { len, provide };
                }
                RPhase::PadC { len, provide } => {
                    let Some(cipher) = self.cipher.as_mut() else {
                        break;
                    };
                    let Some(b) = self.input.take(len + 2) else {
                        break;
                    };
                    cipher.decrypt.apply(b);
                    let ia = usize::from(u16::from_be_bytes([b[len], b[len + 1]]));
                    self.phase = RPhase::Ia { len: ia, provide };
                }
                RPhase::Ia { len, provide } => {
                    let Some(mut cipher) = self.cipher.take() else {
                        break;
                    };
                    let Some(ia) = self.input.take(len) else {
                        self.cipher = Some(cipher);
                        break;
                    };
                    cipher.decrypt.apply(ia);
                    let initial_payload = ia.to_vec();
                    let common = provide & self.allowed;
                    let select = if common & CRYPTO_RC4 != 0
                        && (self.prefer_rc4 || common & CRYPTO_PLAINTEXT == 0)
                    {
                        CRYPTO_RC4
                    } else {
                        CRYPTO_PLAINTEXT
                    };
                    let mut out = VC.to_vec();
                    out.extend(select.to_be_bytes());
                    out.extend((self.pad_d.len() as u16).to_be_bytes());
                    out.extend(&self.pad_d);
                    cipher.encrypt.apply(&mut out);
                    let mut to_send = std::mem::take(&mut self.transmit);
                    to_send.extend(out);
                    let left = self.input.unprocessed(data.len());
                    let negotiated = Negotiated {
                        skey: self.skey.unwrap_or_default(),
                        cipher: (select == CRYPTO_RC4).then_some(cipher),
                        initial_payload,
                        to_send,
                    };
                    return Ok((MseStep::Done(negotiated), data.len() - left));
                }
            }
        }
        Ok((MseStep::NeedMore(self), data.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn prime_is_768_bits() {
        assert_eq!(prime().bits(), 768);
    }

    #[test]
    fn rc4_known_vector() {
        // RFC 6229-style test: key "Key", plaintext "Plaintext".
        let mut d = *b"Plaintext";
        Rc4::new(b"Key").apply(&mut d);
        assert_eq!(d, [0xBB, 0xF3, 0x16, 0xE8, 0xD9, 0x40, 0xAF, 0x0A, 0xD3]);
    }

    /// Runs both sides in memory, `chunk` bytes at a time.
    fn run(
        chunk: usize,
        provide: u32,
        allowed: u32,
        prefer_rc4: bool,
        seed: u64,
    ) -> Result<(Negotiated, Negotiated), MseError> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let ih = InfoHashV1([5; 20]);
        let lookup = |h: &[u8; 20]| (*h == req2_hash(&ih)).then_some(ih);
        let mut a = Some(Initiator::new(ih, provide, b"hello", &mut rng));
        let mut b = Some(Responder::new(allowed, prefer_rc4, &mut rng));
        let (mut to_b, mut to_a) = (Vec::new(), Vec::new());
        let (mut da, mut db) = (None, None);
        for _ in 0..100_000 {
            if let Some(mut x) = a.take() {
                if let Some(t) = x.poll_transmit() {
                    to_b.extend(t);
                }
                let n = chunk.min(to_a.len());
                let (step, used) = x.handle_input(&to_a[..n])?;
                to_a.drain(..used);
                match step {
                    MseStep::NeedMore(mut x) => {
                        if let Some(t) = x.poll_transmit() {
                            to_b.extend(t);
                        }
                        a = Some(x);
                    }
                    MseStep::Done(n) => da = Some(n),
                }
            }
            if let Some(y) = b.take() {
                let n = chunk.min(to_b.len());
                let (step, used) = y.handle_input(&to_b[..n], lookup)?;
                to_b.drain(..used);
                match step {
                    MseStep::NeedMore(mut y) => {
                        if let Some(t) = y.poll_transmit() {
                            to_a.extend(t);
                        }
                        b = Some(y);
                    }
                    MseStep::Done(n) => {
                        to_a.extend(&n.to_send);
                        db = Some(n);
                    }
                }
            }
            if da.is_some() && db.is_some() {
                break;
            }
        }
        Ok((da.expect("initiator done"), db.expect("responder done")))
    }

    #[test]
    fn in_memory_negotiation() {
        for (seed, chunk) in [(1, 1), (2, 7), (3, 100), (4, 5000)] {
            let (mut a, mut b) = run(
                chunk,
                CRYPTO_RC4 | CRYPTO_PLAINTEXT,
                CRYPTO_RC4 | CRYPTO_PLAINTEXT,
                true,
                seed,
            )
            .unwrap();
            assert_eq!(b.initial_payload, b"hello");
            assert_eq!(b.skey, InfoHashV1([5; 20]));
            let (ca, cb) = (a.cipher.as_mut().unwrap(), b.cipher.as_mut().unwrap());
            let mut msg = *b"payload";
            ca.encrypt.apply(&mut msg);
            cb.decrypt.apply(&mut msg);
            assert_eq!(&msg, b"payload");
            cb.encrypt.apply(&mut msg);
            ca.decrypt.apply(&mut msg);
            assert_eq!(&msg, b"payload");
        }
        let (a, b) = run(
            64,
            CRYPTO_RC4 | CRYPTO_PLAINTEXT,
            CRYPTO_RC4 | CRYPTO_PLAINTEXT,
            false,
            9,
        )
        .unwrap();
        assert!(a.cipher.is_none() && b.cipher.is_none());
        assert_eq!(
            run(64, CRYPTO_PLAINTEXT, CRYPTO_RC4, true, 9).unwrap_err(),
            MseError::NoCommonCrypto {
                offered: 1,
                allowed: 2
            }
        );
    }

    #[test]
    fn unknown_skey_and_garbage() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut a = Initiator::new(InfoHashV1([1; 20]), CRYPTO_RC4, b"", &mut rng);
        let b = Responder::new(CRYPTO_RC4, true, &mut rng);
        let ya = a.poll_transmit().unwrap();
        let (MseStep::NeedMore(mut b), _) = b.handle_input(&ya, |_| None).unwrap() else {
            panic!()
        };
        let yb = b.poll_transmit().unwrap();
        let (MseStep::NeedMore(mut a), _) = a.handle_input(&yb).unwrap() else {
            panic!()
        };
        let step3 = a.poll_transmit().unwrap();
        assert_eq!(
            b.handle_input(&step3, |_| None).unwrap_err(),
            MseError::UnknownSkey
        );

        // A responder fed random bytes gives up after the window.
        let r = Responder::new(CRYPTO_RC4, true, &mut rng);
        let err = r
            .handle_input(&[0x55; 96], |_| None)
            .and_then(|(s, _)| match s {
                MseStep::NeedMore(r) => r.handle_input(&[0x55; 2000], |_| None),
                MseStep::Done(_) => panic!(),
            });
        assert!(matches!(err, Err(MseError::SyncNotFound { .. })));
    }
}

#[cfg(test)]
mod hostile {
    use super::*;
    use rand::SeedableRng;

    /// Builds a valid step 3 from an initiator, then lets `tamper` change its
    /// decrypted part before re-encrypting, and feeds it to a responder.
    fn responder_sees(tamper: impl FnOnce(&mut Vec<u8>)) -> Result<(), MseError> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let ih = InfoHashV1([3; 20]);
        let mut a = Initiator::with_max_padding(ih, CRYPTO_RC4, b"ia", 0, &mut rng);
        let b = Responder::with_max_padding(CRYPTO_RC4, true, 0, &mut rng);
        let lookup = |h: &[u8; 20]| (*h == req2_hash(&ih)).then_some(ih);
        let ya = a.poll_transmit().unwrap();
        let (MseStep::NeedMore(mut b), _) = b.handle_input(&ya, lookup)? else {
            panic!()
        };
        let yb = b.poll_transmit().unwrap();
        let (MseStep::NeedMore(mut a), _) = a.handle_input(&yb).unwrap() else {
            panic!()
        };
        let mut step3 = a.poll_transmit().unwrap();
        // Decrypt the RC4 part (after req1 and req2^req3), tamper, re-encrypt.
        let s = a.dh.secret(&yb[..KEY_LEN]);
        let key = sha1(&[b"keyA", &s, &ih.0]);
        let mut plain = step3.split_off(40);
        Rc4::new_mse(&key).apply(&mut plain);
        tamper(&mut plain);
        Rc4::new_mse(&key).apply(&mut plain);
        step3.extend(plain);
        b.handle_input(&step3, lookup).map(|_| ())
    }

    #[test]
    fn tampered_step3_is_typed() {
        assert_eq!(responder_sees(|_| {}), Ok(()));
        assert_eq!(responder_sees(|p| p[0] = 1), Err(MseError::BadVc));
        assert_eq!(
            responder_sees(|p| p[8..12].copy_from_slice(&1u32.to_be_bytes())),
            Err(MseError::NoCommonCrypto {
                offered: 1,
                allowed: 2
            })
        );
        assert_eq!(
            responder_sees(|p| p[12..14].copy_from_slice(&600u16.to_be_bytes())),
            Err(MseError::PadTooLong { len: 600 })
        );
    }

    #[test]
    fn initiator_rejects_bad_select() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let ih = InfoHashV1([3; 20]);
        let mut a = Initiator::with_max_padding(ih, CRYPTO_RC4, b"", 0, &mut rng);
        let ya = a.poll_transmit().unwrap();
        // Play the responder by hand and select plaintext, which was not offered.
        let dh = Dh::new(&mut rng);
        let s = dh.secret(&ya[..KEY_LEN]);
        let (MseStep::NeedMore(a), _) = a.handle_input(&dh.public).unwrap() else {
            panic!()
        };
        let mut step4 = VC.to_vec();
        step4.extend(CRYPTO_PLAINTEXT.to_be_bytes());
        step4.extend(0u16.to_be_bytes());
        Rc4::new_mse(&sha1(&[b"keyB", &s, &ih.0])).apply(&mut step4);
        assert_eq!(
            a.handle_input(&step4).unwrap_err(),
            MseError::BadSelect {
                selected: 1,
                offered: 2
            }
        );
    }
}
