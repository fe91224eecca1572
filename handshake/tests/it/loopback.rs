//! In-process tests of the tokio driver, the listener and the codec properties.

use std::time::Duration;

use metainfo::InfoHashV1;
use proptest::prelude::*;
use rivulet_handshake::{
    BtHandshaker, Config, ConnectError, EncryptionPolicy, Handshake, HandshakeError, InfoHashSet,
    Listener, Options, PeerContact, PeerId, Reserved, accept, connect, spawn_handshaker,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn opts(id: u8, enc: EncryptionPolicy) -> Options {
    let mut o = Options::new(Config::new(PeerId([id; 20])));
    o.encryption = enc;
    o.timeout = Duration::from_secs(5);
    o
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs connect and accept against each other over an in-memory pipe.
async fn pair(
    out: EncryptionPolicy,
    inc: EncryptionPolicy,
) -> (Result<bool, ConnectError>, Result<bool, ConnectError>) {
    let ih = InfoHashV1([4; 20]);
    // A tiny pipe: both MSE sides send up to 608 bytes at once, which must not deadlock.
    let (a, b) = tokio::io::duplex(32);
    let served: InfoHashSet = [ih].into_iter().collect();
    let server = tokio::spawn(async move {
        let mut c = accept(b, &opts(2, inc), &served).await?;
        // Echo one line of payload to check the stream after the handshake.
        let mut buf = [0u8; 5];
        c.stream.read_exact(&mut buf).await?;
        c.stream.write_all(&buf).await?;
        c.stream.flush().await?;
        Ok::<_, ConnectError>(c.stream.is_encrypted())
    });
    let client = async {
        let mut c = connect(a, &opts(1, out), ih).await?;
        c.stream.write_all(b"hello").await?;
        c.stream.flush().await?;
        let mut buf = [0u8; 5];
        c.stream.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"hello");
        Ok::<_, ConnectError>(c.stream.is_encrypted())
    }
    .await;
    let server = server.await.expect("server task");
    (client, server)
}

#[test]
fn policy_matrix() {
    use EncryptionPolicy::*;
    rt().block_on(async {
        // (outgoing, incoming) → encrypted? Random padding: run the matrix a few times.
        for (o, i, enc) in [
            (Disabled, Disabled, false),
            (Enabled, Enabled, false),
            (Enabled, Required, false), // refused: checked below
            (Preferred, Enabled, false),
            (Preferred, Preferred, true),
            (Required, Enabled, true),
            (Required, Required, true),
        ]
        .repeat(4)
        {
            let (c, s) = pair(o, i).await;
            if (o, i) == (Enabled, Required) {
                assert!(matches!(s, Err(ConnectError::PlaintextRefused)), "{s:?}");
                continue;
            }
            assert_eq!(c.expect("client"), enc, "{o:?} -> {i:?}");
            assert_eq!(s.expect("server"), enc, "{o:?} -> {i:?}");
        }
        // An MSE initiator against a plaintext-only node: it sees a bad protocol string
        // (its length byte, unless the DH key happens to start with 19).
        let (_, s) = pair(Required, Disabled).await;
        assert!(
            matches!(
                s,
                Err(ConnectError::Handshake(
                    HandshakeError::BadProtocolLength { .. }
                        | HandshakeError::BadProtocolString { .. }
                ))
            ),
            "{s:?}"
        );
    });
}

#[test]
fn timeout_and_close_are_typed() {
    rt().block_on(async {
        let (a, b) = tokio::io::duplex(256);
        let mut o = opts(1, EncryptionPolicy::Disabled);
        o.timeout = Duration::from_millis(200);
        let err = connect(a, &o, InfoHashV1([1; 20])).await.unwrap_err();
        assert!(matches!(err, ConnectError::Timeout(_)), "{err:?}");
        drop(b);

        let (a, mut b) = tokio::io::duplex(256);
        tokio::spawn(async move {
            let mut buf = [0u8; 68];
            let _ = b.read_exact(&mut buf).await;
            let _ = b.write_all(&buf[..30]).await;
        });
        let err = connect(a, &opts(1, EncryptionPolicy::Disabled), InfoHashV1([1; 20]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ConnectError::Closed { received: 30 }),
            "{err:?}"
        );
    });
}

#[test]
fn unknown_info_hash_and_self_connection() {
    rt().block_on(async {
        let (a, b) = tokio::io::duplex(256);
        let served: InfoHashSet = [InfoHashV1([9; 20])].into_iter().collect();
        let server = tokio::spawn(async move {
            accept(b, &opts(2, EncryptionPolicy::Enabled), &served).await
        });
        let _ = connect(a, &opts(1, EncryptionPolicy::Disabled), InfoHashV1([1; 20])).await;
        let err = server.await.expect("task").unwrap_err();
        assert!(
            matches!(
                err,
                ConnectError::Handshake(HandshakeError::UnknownInfoHash(ih)) if ih == InfoHashV1([1; 20])
            ),
            "{err:?}"
        );

        // Same peer id on both sides.
        let (a, b) = tokio::io::duplex(256);
        let served: InfoHashSet = [InfoHashV1([1; 20])].into_iter().collect();
        let server = tokio::spawn(async move {
            accept(b, &opts(1, EncryptionPolicy::Enabled), &served).await
        });
        let err = connect(a, &opts(1, EncryptionPolicy::Disabled), InfoHashV1([1; 20]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ConnectError::Handshake(HandshakeError::SelfConnection(_))),
            "{err:?}"
        );
        let _ = server.await;
    });
}

#[test]
fn listener_routes_by_info_hash_through_the_handshaker() {
    rt().block_on(async {
        let (ih1, ih2) = (InfoHashV1([1; 20]), InfoHashV1([2; 20]));
        let listener = Listener::bind(
            "127.0.0.1:0".parse().expect("addr"),
            opts(9, EncryptionPolicy::Preferred),
        )
        .await
        .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut rx1 = listener.register(ih1, 4);
        let registrar = listener.registrar();
        let task = tokio::spawn(listener.run());
        let mut rx2 = registrar.register(ih2, 4);

        let (contacts, mut results) = spawn_handshaker(
            BtHandshaker {
                options: opts(1, EncryptionPolicy::Preferred),
            },
            2,
        );
        for ih in [ih1, ih2, InfoHashV1([3; 20])] {
            contacts
                .send(PeerContact {
                    addr,
                    info_hash: ih,
                    peer_id: None,
                })
                .await
                .expect("send contact");
        }
        let mut ok = 0;
        for _ in 0..3 {
            match results.recv().await.expect("result") {
                Ok(c) => {
                    assert!(c.stream.is_encrypted());
                    assert_eq!(c.peer_addr, Some(addr));
                    ok += 1;
                }
                Err(e) => assert!(matches!(e, ConnectError::Closed { .. }), "{e:?}"),
            }
        }
        assert_eq!(ok, 2);
        assert_eq!(rx1.recv().await.expect("ih1").established.info_hash, ih1);
        assert_eq!(rx2.recv().await.expect("ih2").established.info_hash, ih2);
        task.abort();
    });
}

proptest! {
    #[test]
    fn handshake_roundtrip(reserved in any::<[u8; 8]>(), ih in any::<[u8; 20]>(), id in any::<[u8; 20]>()) {
        let hs = Handshake { reserved: Reserved(reserved), info_hash: InfoHashV1(ih), peer_id: PeerId(id) };
        let wire = hs.to_bytes();
        prop_assert_eq!(Handshake::parse(&wire).unwrap(), Some(hs));
        for cut in 0..wire.len() {
            prop_assert_eq!(Handshake::parse(&wire[..cut]).unwrap(), None);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Handshake::parse(&data);
        let inc = rivulet_handshake::Incoming::new(&Config::new(PeerId([1; 20])));
        let _ = inc.handle_input(&data, |_| true);
        let out = rivulet_handshake::Outgoing::new(&Config::new(PeerId([1; 20])), InfoHashV1([0; 20]));
        let _ = out.handle_input(&data);
    }
}
