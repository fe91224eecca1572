//! UDP tracker load generator: how many BEP 15 announces per second a tracker answers.
//!
//! ```text
//! cargo run --release -p rivulet-tracker --example udp_load               # rivulet, in process
//! cargo run --release -p rivulet-tracker --example udp_load -- --target 127.0.0.1:6969
//! ```
//!
//! Options: `--target ADDR` (an external tracker; default: a rivulet server started in this
//! process on one tokio thread), `--swarms N` (10000), `--peers N` per swarm (100),
//! `--seconds S` measured (10), `--threads T` generator threads (1 batched, else 2),
//! `--window W` announces in flight per thread (64), `--batch true|false` (Linux: send and receive in batches with
//! `sendmmsg`/`recvmmsg` and poll without sleeping, so the generator costs much less per
//! announce than a tracker and is not what limits the rate; default true), `--pid PID` the tracker's process id: also report the CPU time it
//! used during the measured phase (from `/proc/PID/stat`; default: this process when the
//! server runs in process), i.e. its cost per announce, which a loaded machine does not skew
//! as much as the rate.
//!
//! It first announces every peer once (`started`, so the tracker holds swarms x peers), then
//! sends random `none` announces of those peers (numwant 50) with a fixed number in flight and
//! counts answers. Each generator thread has its own socket and connection id (renewed every
//! 50 s). Lost packets are not retried: after a second without answers the window is freed.

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
    pid: Option<u32>,
    batch: bool,
}

fn opts() -> anyhow::Result<Opts> {
    let mut o = Opts {
        target: None,
        swarms: 10_000,
        peers: 100,
        seconds: 10,
        threads: 0,
        window: 0,
        pid: None,
        batch: cfg!(target_os = "linux"),
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
            "--pid" => o.pid = Some(v.parse()?),
            "--batch" => o.batch = v.parse()?,
            _ => anyhow::bail!("unknown option {a}"),
        }
    }
    // Batched: one busy-polling thread; otherwise 2 blocking threads; 64 in flight each.
    if o.threads == 0 {
        o.threads = if o.batch { 1 } else { 2 };
    }
    if o.window == 0 {
        o.window = 64;
    }
    Ok(o)
}

/// CPU seconds (user + system, all threads) a process has used, from `/proc/PID/stat`.
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux architecture this runs on.
    Some(ticks as f64 / 100.0)
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

/// [`worker`] with datagrams sent and received in batches (`sendmmsg`/`recvmmsg`, through
/// nix's safe wrappers) and a busy-polling receive, so the generator costs far less per
/// announce than the tracker it loads and never sleeps waiting for a reply.
#[cfg(target_os = "linux")]
fn worker_batched(
    target: SocketAddr,
    seed: u64,
    window: u32,
    jobs: Jobs,
    counters: [Arc<AtomicU64>; 2],
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrIn, recvmmsg, sendmmsg};
    use std::io::{IoSlice, IoSliceMut};
    use std::os::fd::AsRawFd;

    let [answered, errors] = counters;
    let mut jobs = jobs;
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.connect(target)?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut rng = Rng(seed | 1);
    let mut conn = connect(&sock, &mut rng)?;
    sock.set_nonblocking(true)?;
    let mut conn_at = Instant::now();
    let batch = window.clamp(1, 1024) as usize;
    let mut packets: Vec<Vec<u8>> = Vec::with_capacity(batch);
    let mut bufs = vec![[0u8; 1500]; batch];
    let mut send_headers = MultiHeaders::<SockaddrIn>::preallocate(batch, None);
    let mut recv_headers = MultiHeaders::<SockaddrIn>::preallocate(batch, None);
    let no_addrs = vec![None; batch];
    let mut in_flight = 0u32;
    let mut last_answer = Instant::now();
    let mut tid = 0u32;
    let mut exhausted = false;
    let mut idle_polls = 0u32;
    loop {
        if stop.load(Ordering::Relaxed) || (exhausted && in_flight == 0) {
            return Ok(());
        }
        if conn_at.elapsed() > Duration::from_secs(50) {
            sock.set_nonblocking(false)?;
            conn = connect(&sock, &mut rng)?;
            sock.set_nonblocking(true)?;
            conn_at = Instant::now();
            in_flight = 0;
        }
        packets.clear();
        while in_flight + (packets.len() as u32) < window && !exhausted {
            match jobs(&mut rng) {
                Some((s, p, e)) => {
                    tid = tid.wrapping_add(1);
                    packets.push(announce_packet(conn, tid, s, p, e));
                }
                None => exhausted = true,
            }
        }
        if !packets.is_empty() {
            let slices: Vec<[IoSlice<'_>; 1]> = packets.iter().map(|p| [IoSlice::new(p)]).collect();
            let sent = match sendmmsg(
                sock.as_raw_fd(),
                &mut send_headers,
                &slices,
                &no_addrs[..slices.len()],
                [],
                MsgFlags::empty(),
            ) {
                Ok(r) => r.count(),
                // A full socket buffer: those announces were not sent.
                Err(_) => 0,
            };
            in_flight += sent as u32;
        }
        let got: Vec<usize> = {
            let mut slices: Vec<[IoSliceMut<'_>; 1]> =
                bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
            match recvmmsg(
                sock.as_raw_fd(),
                &mut recv_headers,
                slices.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            ) {
                Ok(r) => r.map(|m| m.bytes).collect(),
                Err(_) => Vec::new(),
            }
        };
        if got.is_empty() {
            idle_polls += 1;
            // Lost packets: free the window after 100 ms without answers.
            if idle_polls % 256 == 0 && last_answer.elapsed() > Duration::from_millis(100) {
                in_flight = 0;
                last_answer = Instant::now();
            }
            std::hint::spin_loop();
            continue;
        }
        idle_polls = 0;
        last_answer = Instant::now();
        for (n, b) in got.iter().zip(&bufs) {
            in_flight = in_flight.saturating_sub(1);
            if *n >= 4 && b[..4] == 1u32.to_be_bytes() {
                answered.fetch_add(1, Ordering::Relaxed);
            } else {
                errors.fetch_add(1, Ordering::Relaxed);
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
        let seed = 0x9e37_79b9 * (t as u64 + 1);
        let batched = o.batch;
        handles.push(std::thread::spawn(move || {
            #[cfg(target_os = "linux")]
            if batched {
                return worker_batched(target, seed, window, jobs, [a, e], s);
            }
            let _ = batched;
            worker(target, seed, window, jobs, a, e, s)
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
    // Without --pid the server is this process: its CPU includes the generator's, so only
    // an external server's cost is reported.
    let cpu0 = o.pid.and_then(|p| cpu_seconds(Some(p)));
    let (n, errs, t) = run_phase(&o, target, false, Some(o.seconds))?;
    let cpu = cpu0.and_then(|c0| Some(cpu_seconds(o.pid)? - c0));
    if let Some(cpu) = cpu {
        println!(
            "server CPU: {cpu:.2} s for {n} announces: {:.1} us/announce, {:.0} announces per CPU-second",
            cpu * 1e6 / n.max(1) as f64,
            n as f64 / cpu.max(0.01)
        );
    }
    println!(
        "steady: {n} announces answered ({errs} errors) in {:.1} s: {:.0} announces/s",
        t.as_secs_f64(),
        n as f64 / t.as_secs_f64()
    );
    Ok(())
}
