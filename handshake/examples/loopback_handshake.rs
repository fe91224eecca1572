//! A listener serving two torrents and a client handshaking with it over TCP on
//! loopback, through the `Handshaker` plumbing that discovery services use; MSE is
//! required on both sides.
//!
//! Run with `cargo run -p rivulet-handshake --example loopback_handshake`.

use std::time::Duration;

use metainfo::InfoHashV1;
use rivulet_handshake::{
    BtHandshaker, Config, EncryptionPolicy, Listener, Options, PeerContact, PeerId,
    spawn_handshaker,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut rng = rand::rng();
    let options = |id| {
        let mut o = Options::new(Config::new(id));
        o.encryption = EncryptionPolicy::Required;
        o.timeout = Duration::from_secs(5);
        o
    };
    let (a, b) = (InfoHashV1([0xaa; 20]), InfoHashV1([0xbb; 20]));

    let listener = Listener::bind(
        "127.0.0.1:0".parse()?,
        options(PeerId::generate(b"-RV0100-", &mut rng)),
    )
    .await?;
    let addr = listener.local_addr()?;
    let mut torrent_a = listener.register(a, 8);
    let mut torrent_b = listener.register(b, 8);
    tokio::spawn(listener.run());

    // What a tracker or the DHT would do: forward contacts to the handshaker.
    let client = BtHandshaker {
        options: options(PeerId::generate(b"-RV0100-", &mut rng)),
    };
    let (contacts, mut connections) = spawn_handshaker(client, 4);
    for info_hash in [a, b, InfoHashV1([0xcc; 20])] {
        contacts
            .send(PeerContact {
                addr,
                info_hash,
                peer_id: None,
            })
            .await?;
    }
    drop(contacts);
    while let Some(result) = connections.recv().await {
        match result {
            Ok(c) => println!(
                "connected to {} for {}: peer {}, encrypted {}",
                addr,
                c.established.info_hash,
                c.established.peer_id,
                c.stream.is_encrypted()
            ),
            Err(e) => println!("handshake failed: {e}"),
        }
    }
    let ia = torrent_a
        .recv()
        .await
        .ok_or_else(|| anyhow::anyhow!("no peer for a"))?;
    let ib = torrent_b
        .recv()
        .await
        .ok_or_else(|| anyhow::anyhow!("no peer for b"))?;
    println!(
        "listener routed {} and {}",
        ia.established.info_hash, ib.established.info_hash
    );
    Ok(())
}
