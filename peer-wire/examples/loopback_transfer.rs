//! Two in-process peers over a tokio duplex pipe, each driving a `PeerState` through a
//! `Framed` codec: a seed serves a 3-piece torrent, a leech downloads it block by block.
//!
//! Run with `cargo run -p rivulet-peer-wire --example loopback_transfer`.

use std::time::Instant;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rivulet_peer_wire::{
    BLOCK_SIZE, Bitfield, Block, BlockRequest, Event, PeerConfig, PeerState, PeerWireCodec,
};
use tokio::io::DuplexStream;
use tokio_util::codec::Framed;

const PIECE_LEN: u32 = 32 * 1024;
const TOTAL: u64 = 2 * 32 * 1024 + 5000;

fn content() -> Vec<u8> {
    (0..TOTAL).map(|i| (i % 251) as u8).collect()
}

fn config() -> PeerConfig {
    let mut c = PeerConfig::new(3, PIECE_LEN, TOTAL);
    c.fast = true;
    c
}

async fn flush(
    peer: &mut PeerState,
    io: &mut Framed<DuplexStream, PeerWireCodec>,
) -> anyhow::Result<()> {
    while let Some(m) = peer.poll_transmit() {
        io.send(m).await?;
    }
    Ok(())
}

async fn seed(io: DuplexStream) -> anyhow::Result<()> {
    let data = Bytes::from(content());
    let mut io = Framed::new(io, PeerWireCodec::default());
    let mut peer = PeerState::new(config());
    peer.send_availability(&Bitfield::full(3));
    loop {
        flush(&mut peer, &mut io).await?;
        while let Some(ev) = peer.poll_event() {
            match ev {
                Event::Interested => peer.unchoke(),
                Event::Request(r) => {
                    let start = u64::from(r.index) * u64::from(PIECE_LEN) + u64::from(r.begin);
                    let start = start as usize;
                    let block = data.slice(start..start + r.length as usize);
                    peer.send_block(Block {
                        index: r.index,
                        begin: r.begin,
                        data: block,
                    })?;
                }
                _ => {}
            }
        }
        flush(&mut peer, &mut io).await?;
        let Some(msg) = io.next().await else {
            return Ok(());
        };
        peer.handle_message(Instant::now(), msg?)?;
    }
}

async fn leech(io: DuplexStream) -> anyhow::Result<Vec<u8>> {
    let mut io = Framed::new(io, PeerWireCodec::default());
    let cfg = config();
    let mut peer = PeerState::new(cfg);
    peer.send_availability(&Bitfield::new(3));
    peer.set_interested(true);
    let mut wanted: Vec<BlockRequest> = (0..3)
        .flat_map(|index| {
            let len = cfg.piece_length(index).unwrap_or(0);
            (0..len.div_ceil(BLOCK_SIZE)).map(move |b| BlockRequest {
                index,
                begin: b * BLOCK_SIZE,
                length: (len - b * BLOCK_SIZE).min(BLOCK_SIZE),
            })
        })
        .rev()
        .collect();
    let mut out = vec![0u8; TOTAL as usize];
    let mut missing = wanted.len();
    while missing > 0 {
        while let Some(ev) = peer.poll_event() {
            if let Event::Block(b) = ev {
                let start = b.index as usize * PIECE_LEN as usize + b.begin as usize;
                out[start..start + b.data.len()].copy_from_slice(&b.data);
                missing -= 1;
            }
        }
        while !peer.peer_choking() && peer.request_capacity() > 0 {
            let Some(r) = wanted.pop() else { break };
            peer.request(Instant::now(), r)?;
        }
        flush(&mut peer, &mut io).await?;
        if missing == 0 {
            break;
        }
        let Some(msg) = io.next().await else {
            anyhow::bail!("seed hung up")
        };
        peer.handle_message(Instant::now(), msg?)?;
    }
    Ok(out)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let seeder = tokio::spawn(seed(a));
    let got = leech(b).await?;
    assert_eq!(got, content());
    println!("downloaded {} bytes in {} pieces", got.len(), 3);
    seeder.abort();
    Ok(())
}
