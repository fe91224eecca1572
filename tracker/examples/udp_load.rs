//! UDP tracker load generator: how many BEP 15 announces per second a tracker answers.
//!
//! ```text
//! cargo run --release -p rivulet-tracker --example udp_load               # rivulet, in process
//! cargo run --release -p rivulet-tracker --example udp_load -- --target 127.0.0.1:6969
//! ```
//!
//! Options: `--target ADDR` (an external tracker; default: a rivulet server started in this
//! process on one tokio thread), `--swarms N` (10000), `--peers N` per swarm (100),
//! `--seconds S` measured (10), `--threads T` generator threads (2), `--window W` announces in
//! flight per thread (64).
//!
//! It first announces every peer once (`started`, so the tracker holds swarms x peers), then
//! sends random `none` announces of those peers (numwant 50) with a fixed number in flight and
//! counts answers. Each generator thread has its own socket and connection id (renewed every
//! 50 s). Lost packets are not retried: a request not answered within 1 s frees its slot.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rivulet_tracker::net::{Listen, TrackerServer};
use rivulet_tracker::server::ServerConfig;
use rivulet_tracker::udp::{AddrFamily, AnnounceRequest, Request, Response};
use rivulet_tracker::{Event, InfoHash, PeerId};

struct Opts {
    target: Option<SocketAddr>,
    swarms: u32,
    peers: u32,
    seconds: u64,
    threads: u32,
    window: u32,
}

fn opts() -> anyhow::Result<Opts> {
    let mut o = Opts {
        target: None,
        swarms: 10_000,
        peers: 100,
        seconds: 10,
        threads: 2,
        window: 64,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args
            .next()
            .ok_or_else(|| anyhow::anyhow!("{a} needs a value"))?;
        match a.as_str() {
            "--target" => o.target = Some(v.parse()?),
            "--swarms" => o.swarms = v.parse()?,
            "--peers" => o.peers = v.parse()?,
            "--seconds" => o.seconds = v.parse()?,
            "--threads" => o.threads = v.parse()?,
            "--window" => o.window = v.parse()?,
            _ => anyhow::bail!("unknown option {a}"),
        }
    }
    Ok(o)
}

fn hash(swarm: u32) -> InfoHash {
    let mut h = [0x55u8; 20];
    h[..4].copy_from_slice(&swarm.to_be_bytes());
    InfoHash(h)
}

fn peer(swarm: u32, p: u32) -> PeerId {
    let mut id = *b"-LD0001-000000000000";
    id[8..12].copy_from_slice(&swarm.to_be_bytes());
    id[12..16].copy_from_slice(&p.to_be_bytes());
    PeerId(id)
}

/// Yields `(swarm, peer, event)` to announce next, or `None` when done.
type Jobs = Box<dyn FnMut(&mut Rng) -> Option<(u32, u32, Event)> + Send>;

/// A cheap deterministic generator (xorshift) per thread.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn connect(sock: &UdpSocket, rng: &mut Rng) -> anyhow::Result<u64> {
    let mut buf = [0u8; 2048];
    for _ in 0..10 {
        let tid = rng.next() as u32;
        let mut out = vec![];
        Request::Connect {
            transaction_id: tid,
        }
        .encode(&mut out);
        sock.send(&out)?;
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            let Ok(n) = sock.recv(&mut buf) else { break };
            if let Ok(Response::Connect {
                transaction_id,
                connection_id,
            }) = Response::decode(&buf[..n], AddrFamily::V4)
            {
                if transaction_id == tid {
                    return Ok(connection_id);
                }
            }
        }
    }
    anyhow::bail!("tracker does not answer connect")
}

fn announce_packet(conn: u64, tid: u32, swarm: u32, p: u32, event: Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(98);
    Request::Announce(AnnounceRequest {
        connection_id: conn,
        transaction_id: tid,
        info_hash: hash(swarm),
        peer_id: peer(swarm, p),
        downloaded: 0,
        left: if p % 2 == 0 { 0 } else { 1000 },
        uploaded: 0,
        event,
        ip: 0,
        key: p,
        num_want: 50,
        port: 1024 + (p % 60000) as u16,
    })
    .encode(&mut out);
    out
}

/// Keep `window` announces in flight until `stop`; count answers into `answered`.
#[allow(clippy::too_many_arguments)] // A benchmark worker: plain parameters read best here.
fn worker(
    target: SocketAddr,
    seed: u64,
    window: u32,
    jobs: Jobs,
    answered: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let mut jobs = jobs;
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.connect(target)?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut rng = Rng(seed | 1);
    let mut conn = connect(&sock, &mut rng)?;
    let mut conn_at = Instant::now();
    let mut buf = [0u8; 4096];
    let mut in_flight = 0u32;
    let mut last_answer = Instant::now();
    let mut tid = 0u32;
    let mut exhausted = false;
    loop {
        if stop.load(Ordering::Relaxed) || (exhausted && in_flight == 0) {
            return Ok(());
        }
        if conn_at.elapsed() > Duration::from_secs(50) {
            conn = connect(&sock, &mut rng)?;
            conn_at = Instant::now();
            in_flight = 0;
        }
        while in_flight < window && !exhausted {
            match jobs(&mut rng) {
                Some((s, p, e)) => {
                    tid = tid.wrapping_add(1);
                    sock.send(&announce_packet(conn, tid, s, p, e))?;
                    in_flight += 1;
                }
                None => exhausted = true,
            }
        }
        match sock.recv(&mut buf) {
            Ok(n) => {
                last_answer = Instant::now();
                in_flight = in_flight.saturating_sub(1);
                if n >= 4 && buf[..4] == 1u32.to_be_bytes() {
                    answered.fetch_add(1, Ordering::Relaxed);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(_) => {
                // Lost packets: free the window after a quiet second.
                if last_answer.elapsed() > Duration::from_secs(1) {
                    in_flight = 0;
                    last_answer = Instant::now();
                }
            }
        }
    }
}

fn run_phase(
    o: &Opts,
    target: SocketAddr,
    prefill: bool,
    seconds: Option<u64>,
) -> anyhow::Result<(u64, u64, Duration)> {
    let answered = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut handles = vec![];
    for t in 0..o.threads {
        let (swarms, peers, threads) = (o.swarms, o.peers, o.threads);
        let jobs: Jobs = if prefill {
            // Thread t announces swarms t, t + threads, ... once per peer.
            let mut s = t;
            let mut p = 0;
            Box::new(move |_| {
                if s >= swarms {
                    return None;
                }
                let job = (s, p, Event::Started);
                p += 1;
                if p == peers {
                    p = 0;
                    s += threads;
                }
                Some(job)
            })
        } else {
            Box::new(move |rng: &mut Rng| {
                let r = rng.next();
                Some((
                    (r % swarms as u64) as u32,
                    ((r >> 32) % peers as u64) as u32,
                    Event::None,
                ))
            })
        };
        let (a, e, s) = (answered.clone(), errors.clone(), stop.clone());
        let window = o.window;
        handles.push(std::thread::spawn(move || {
            worker(target, 0x9e37_79b9 * (t as u64 + 1), window, jobs, a, e, s)
        }));
    }
    if let Some(secs) = seconds {
        std::thread::sleep(Duration::from_secs(secs));
        stop.store(true, Ordering::Relaxed);
    }
    for h in handles {
        h.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
    }
    Ok((
        answered.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        start.elapsed(),
    ))
}

fn main() -> anyhow::Result<()> {
    let o = opts()?;
    // The in-process server runs on its own single-threaded runtime: one core.
    let (_keep, target) = match o.target {
        Some(t) => (None, t),
        None => {
            let (tx, rx) = std::sync::mpsc::channel();
            let th = std::thread::spawn(move || -> anyhow::Result<()> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async {
                    let server = TrackerServer::bind(
                        ServerConfig {
                            interval: Duration::from_secs(1800),
                            peer_timeout: Duration::from_secs(3600),
                            ..Default::default()
                        },
                        Listen {
                            udp: Some("127.0.0.1:0".parse()?),
                            ..Default::default()
                        },
                    )
                    .await?;
                    tx.send(server.udp_addr())?;
                    std::future::pending::<()>().await;
                    Ok(())
                })
            });
            let addr = rx
                .recv()?
                .ok_or_else(|| anyhow::anyhow!("no udp address"))?;
            (Some(th), addr)
        }
    };
    println!(
        "target {target}: {} swarms x {} peers, {} threads x {} in flight",
        o.swarms, o.peers, o.threads, o.window
    );
    let (n, errs, t) = run_phase(&o, target, true, None)?;
    println!(
        "prefill: {n} announces answered ({errs} errors) in {:.1} s ({:.0}/s)",
        t.as_secs_f64(),
        n as f64 / t.as_secs_f64()
    );
    let (n, errs, t) = run_phase(&o, target, false, Some(o.seconds))?;
    println!(
        "steady: {n} announces answered ({errs} errors) in {:.1} s: {:.0} announces/s",
        t.as_secs_f64(),
        n as f64 / t.as_secs_f64()
    );
    Ok(())
}
