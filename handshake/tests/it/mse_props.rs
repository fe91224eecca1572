//! proptest: MSE negotiates the same way however the bytes are chunked, and the
//! responder survives arbitrary input.

use metainfo::InfoHashV1;
use proptest::prelude::*;
use rand::SeedableRng;
use rivulet_handshake::mse::{
    CRYPTO_PLAINTEXT, CRYPTO_RC4, Initiator, MseStep, Negotiated, Responder, req2_hash,
};

/// Both sides in memory; `chunks` cycles through delivery sizes.
fn run(
    seed: u64,
    chunks: &[usize],
    provide: u32,
    allowed: u32,
) -> Option<(Negotiated, Negotiated)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let ih = InfoHashV1([5; 20]);
    let lookup = |h: &[u8; 20]| (*h == req2_hash(&ih)).then_some(ih);
    let mut a = Some(Initiator::new(ih, provide, b"initial payload", &mut rng));
    let mut b = Some(Responder::new(allowed, true, &mut rng));
    let (mut to_b, mut to_a) = (Vec::new(), Vec::new());
    let (mut da, mut db) = (None, None);
    for round in 0..100_000 {
        let chunk = chunks[round % chunks.len()].max(1);
        if let Some(mut x) = a.take() {
            if let Some(t) = x.poll_transmit() {
                to_b.extend(t);
            }
            let n = chunk.min(to_a.len());
            let (step, used) = x.handle_input(&to_a[..n]).ok()?;
            to_a.drain(..used);
            match step {
                MseStep::NeedMore(x) => a = Some(x),
                MseStep::Done(n) => da = Some(n),
            }
        }
        if let Some(y) = b.take() {
            let n = chunk.min(to_b.len());
            let (step, used) = y.handle_input(&to_b[..n], lookup).ok()?;
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
            return Some((da?, db?));
        }
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn any_chunking_negotiates(
        seed in any::<u64>(),
        chunks in proptest::collection::vec(1usize..700, 1..5),
        rc4_only in any::<bool>(),
    ) {
        let provide = if rc4_only { CRYPTO_RC4 } else { CRYPTO_RC4 | CRYPTO_PLAINTEXT };
        let (mut a, mut b) = run(seed, &chunks, provide, CRYPTO_RC4 | CRYPTO_PLAINTEXT)
            .expect("negotiation completes");
        prop_assert_eq!(&b.initial_payload[..], b"initial payload");
        let (ca, cb) = (a.cipher.as_mut().expect("rc4"), b.cipher.as_mut().expect("rc4"));
        let mut msg = *b"after the handshake";
        ca.encrypt.apply(&mut msg);
        cb.decrypt.apply(&mut msg);
        prop_assert_eq!(&msg, b"after the handshake");
    }

    #[test]
    fn responder_survives_garbage(seed in any::<u64>(), data in proptest::collection::vec(any::<u8>(), 0..1500)) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut r = Responder::new(CRYPTO_RC4, true, &mut rng);
        let mut rest = &data[..];
        // Feed everything, as a driver would, until it fails or finishes.
        while let Ok((MseStep::NeedMore(mut next), used)) =
            r.handle_input(rest, |_| Some(InfoHashV1([1; 20])))
        {
            let _ = next.poll_transmit();
            rest = &rest[used..];
            r = next;
            if used == 0 {
                break;
            }
        }
        let i = Initiator::new(InfoHashV1([1; 20]), CRYPTO_RC4, b"", &mut rng);
        let _ = i.handle_input(&data);
    }
}
