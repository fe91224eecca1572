//! proptest: every message round-trips; arbitrary streams decode the same however split.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rivulet_peer_wire::{
    Block, BlockRequest, DecodeError, Decoder, HashRequest, Hashes, Message, decode,
};

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn block_request() -> impl Strategy<Value = BlockRequest> {
    (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(index, begin, length)| BlockRequest {
        index,
        begin,
        length,
    })
}

fn hash_request() -> impl Strategy<Value = HashRequest> {
    (
        any::<[u8; 32]>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(pieces_root, base_layer, index, length, proof_layers)| HashRequest {
                pieces_root,
                base_layer,
                index,
                length,
                proof_layers,
            },
        )
}

pub(crate) fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        Just(Message::KeepAlive),
        Just(Message::Choke),
        Just(Message::Unchoke),
        Just(Message::Interested),
        Just(Message::NotInterested),
        any::<u32>().prop_map(Message::Have),
        bytes(64).prop_map(Message::Bitfield),
        block_request().prop_map(Message::Request),
        (any::<u32>(), any::<u32>(), bytes(300))
            .prop_map(|(index, begin, data)| Message::Piece(Block { index, begin, data })),
        block_request().prop_map(Message::Cancel),
        any::<u16>().prop_map(Message::Port),
        any::<u32>().prop_map(Message::Suggest),
        Just(Message::HaveAll),
        Just(Message::HaveNone),
        block_request().prop_map(Message::Reject),
        any::<u32>().prop_map(Message::AllowedFast),
        (any::<u8>(), bytes(100)).prop_map(|(id, payload)| Message::Extended { id, payload }),
        hash_request().prop_map(Message::HashRequest),
        (
            hash_request(),
            proptest::collection::vec(any::<[u8; 32]>(), 0..5)
        )
            .prop_map(|(request, hs)| Message::Hashes(Hashes {
                request,
                hashes: Bytes::from(hs.concat()),
            })),
        hash_request().prop_map(Message::HashReject),
        (prop_oneof![10u8..13, 18u8..20, 24u8..=255], bytes(40))
            .prop_map(|(id, payload)| Message::Unknown { id, payload }),
    ]
}

/// Decodes a whole stream; stops at the first error or when the rest is incomplete.
fn decode_all(dec: &Decoder, data: &[u8]) -> (Vec<Message>, Result<usize, DecodeError>) {
    let mut buf = BytesMut::from(data);
    let mut out = Vec::new();
    loop {
        match dec.decode(&mut buf) {
            Ok(Some(m)) => out.push(m),
            Ok(None) => return (out, Ok(buf.len())),
            Err(e) => return (out, Err(e)),
        }
    }
}

/// The same stream fed in pieces split at `cuts`.
fn decode_split(
    dec: &Decoder,
    data: &[u8],
    cuts: &[usize],
) -> (Vec<Message>, Result<usize, DecodeError>) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.push(data.len());
    points.sort_unstable();
    let mut start = 0;
    for p in points {
        buf.extend_from_slice(&data[start..p]);
        start = p;
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(m)) => out.push(m),
                Ok(None) => break,
                Err(e) => return (out, Err(e)),
            }
        }
    }
    (out, Ok(buf.len()))
}

proptest! {
    #[test]
    fn roundtrip(msg in message()) {
        let wire = msg.to_bytes();
        prop_assert_eq!(wire.len(), msg.encoded_len());
        prop_assert_eq!(decode(&wire).unwrap(), Some((msg.clone(), wire.len())));
        // Every strict prefix needs more.
        for cut in [0, 1, 3, 4, wire.len() - 1] {
            if cut < wire.len() {
                prop_assert_eq!(decode(&wire[..cut]).unwrap(), None);
            }
        }
        let mut buf = BytesMut::from(&wire[..]);
        prop_assert_eq!(Decoder::new().decode(&mut buf).unwrap(), Some(msg));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn message_streams_split_anywhere(
        msgs in proptest::collection::vec(message(), 0..12),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut wire = BytesMut::new();
        for m in &msgs { m.encode(&mut wire); }
        let dec = Decoder::new();
        let whole = decode_all(&dec, &wire);
        prop_assert_eq!(&whole.0, &msgs);
        prop_assert_eq!(&whole.1, &Ok(0));
        prop_assert_eq!(decode_split(&dec, &wire, &cuts), whole);
    }

    #[test]
    fn arbitrary_bytes_split_anywhere(
        data in proptest::collection::vec(any::<u8>(), 0..400),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        max in 0u32..300,
    ) {
        let dec = Decoder::with_max_frame_len(max);
        let whole = decode_all(&dec, &data);
        prop_assert_eq!(decode_split(&dec, &data, &cuts), whole);
        let _ = decode(&data);
    }
}
