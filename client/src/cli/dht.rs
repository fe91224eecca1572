//! `rivulet dht ...`: a Mainline DHT node, announce and get_peers for any 20-byte key (an
//! info hash, or the SHA-1 of a name), and BEP 44 put/get.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use dht::{Dht, Id};

use super::CliError;

/// `rivulet dht` subcommands.
#[derive(Subcommand)]
pub(crate) enum DhtCommand {
    /// Run a DHT node that serves others until --timeout (or Ctrl-C).
    Node(NodeArgs),
    /// Announce that a port of this host is a peer for a key.
    Announce(AnnounceArgs),
    /// Look up the peers announced for a key; prints one IP:PORT per line as they arrive.
    GetPeers(GetPeersArgs),
    /// Store a BEP 44 item: immutable (the default) or mutable (--secret, --seq).
    Put(PutArgs),
    /// Fetch a BEP 44 item by its target.
    Get(GetArgs),
}

/// Options every `rivulet dht` command shares.
#[derive(Args)]
pub(crate) struct NodeOptions {
    /// The UDP address to bind.
    #[arg(long, default_value = "0.0.0.0:0")]
    listen: SocketAddr,
    /// A node to bootstrap from (IP:PORT or HOST:PORT); repeat for more. Without any, the
    /// public routers are used.
    #[arg(long = "bootstrap")]
    bootstrap: Vec<String>,
    /// Bootstrap from nobody: this node starts a new network (others bootstrap from it).
    #[arg(long, conflicts_with = "bootstrap")]
    no_bootstrap: bool,
    /// Keep the node id and routing table in this file across runs.
    #[arg(long)]
    state: Option<PathBuf>,
    /// BEP 43 read-only: ask, never answer.
    #[arg(long)]
    read_only: bool,
    /// Give up after this many seconds (exit 4).
    #[arg(long, default_value = "60")]
    timeout: u64,
}

/// A key: 40 hex digits, or `--name` hashed with SHA-1.
#[derive(Args)]
pub(crate) struct KeyArgs {
    /// The key as 40 hex digits (an info hash).
    #[arg(required_unless_present = "name", conflicts_with = "name")]
    hash: Option<String>,
    /// A name (say, a chat room) whose SHA-1 is the key.
    #[arg(long)]
    name: Option<String>,
}

/// Arguments of `rivulet dht node`.
#[derive(Args)]
pub(crate) struct NodeArgs {
    #[command(flatten)]
    node: NodeOptions,
}

/// Arguments of `rivulet dht announce`.
#[derive(Args)]
pub(crate) struct AnnounceArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The port peers should connect to.
    #[arg(long)]
    port: u16,
    #[command(flatten)]
    node: NodeOptions,
}

/// Arguments of `rivulet dht get-peers`.
#[derive(Args)]
pub(crate) struct GetPeersArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Stop after this many distinct peers.
    #[arg(long)]
    max: Option<usize>,
    #[command(flatten)]
    node: NodeOptions,
}

/// Arguments of `rivulet dht put`.
#[derive(Args)]
pub(crate) struct PutArgs {
    /// The value to store (stored as a bencoded byte string).
    value: String,
    /// Mutable item: the ed25519 secret seed, 64 hex digits.
    #[arg(long, requires = "seq")]
    secret: Option<String>,
    /// Mutable item: the sequence number.
    #[arg(long)]
    seq: Option<i64>,
    /// Mutable item: the salt.
    #[arg(long, default_value = "")]
    salt: String,
    #[command(flatten)]
    node: NodeOptions,
}

/// Arguments of `rivulet dht get`.
#[derive(Args)]
pub(crate) struct GetArgs {
    /// The item's target, 40 hex digits (as `put` printed it).
    target: String,
    /// The salt of a mutable item.
    #[arg(long, default_value = "")]
    salt: String,
    #[command(flatten)]
    node: NodeOptions,
}

fn key(k: &KeyArgs) -> Result<Id, CliError> {
    match (&k.hash, &k.name) {
        (_, Some(name)) => Ok(Id::from_name(name)),
        (Some(h), None) => h
            .parse()
            .map_err(|e| CliError::BadInput(format!("key {h:?}: {e}"))),
        (None, None) => Err(CliError::BadInput(
            "give a 40-hex-digit key or --name".into(),
        )),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Io(format!("starting the async runtime: {e}")))
}

async fn start(o: &NodeOptions) -> Result<Dht, CliError> {
    let mut b = Dht::builder().bind(o.listen).read_only(o.read_only);
    let (addrs, hosts): (Vec<_>, Vec<_>) = o
        .bootstrap
        .iter()
        .partition(|s| s.parse::<SocketAddr>().is_ok());
    if o.no_bootstrap {
        b = b.bootstrap(std::iter::empty());
    }
    if !addrs.is_empty() {
        b = b.bootstrap(addrs.iter().filter_map(|s| s.parse().ok()));
    }
    if !hosts.is_empty() {
        b = b.bootstrap_hosts(hosts.into_iter().cloned());
    }
    if let Some(s) = &o.state {
        b = b.state_file(s.clone());
    }
    let dht = b
        .build()
        .await
        .map_err(|e| CliError::Io(format!("starting the DHT node on {}: {e}", o.listen)))?;
    Ok(dht)
}

async fn bootstrapped(dht: &Dht, secs: u64) -> Result<(), CliError> {
    tokio::time::timeout(Duration::from_secs(secs), dht.bootstrapped())
        .await
        .map_err(|_| CliError::Timeout(format!("no DHT node answered within {secs} s")))
}

/// Runs a `rivulet dht` command.
pub(crate) fn run(cmd: DhtCommand) -> Result<(), CliError> {
    runtime()?.block_on(async move {
        match cmd {
            DhtCommand::Node(a) => node(a).await,
            DhtCommand::Announce(a) => announce(a).await,
            DhtCommand::GetPeers(a) => get_peers(a).await,
            DhtCommand::Put(a) => put(a).await,
            DhtCommand::Get(a) => get(a).await,
        }
    })
}

async fn node(a: NodeArgs) -> Result<(), CliError> {
    let dht = start(&a.node).await?;
    println!("listening on {} id {}", dht.local_addr(), dht.id());
    let deadline = tokio::time::sleep(Duration::from_secs(a.node.timeout));
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    let mut interrupt = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            _ = &mut interrupt => break,
            _ = tick.tick() => {
                if let Ok(s) = dht.stats().await {
                    eprintln!("dht: {} nodes in the table, {} packets in, {} out",
                        s.table.nodes, s.node.received, s.node.sent);
                }
            }
        }
    }
    if a.node.state.is_some() {
        dht.save()
            .await
            .map_err(|e| CliError::Io(format!("saving the DHT state: {e}")))?;
    }
    dht.shutdown().await;
    Ok(())
}

async fn announce(a: AnnounceArgs) -> Result<(), CliError> {
    let k = key(&a.key)?;
    let dht = start(&a.node).await?;
    bootstrapped(&dht, a.node.timeout).await?;
    let r = tokio::time::timeout(
        Duration::from_secs(a.node.timeout),
        dht.announce(k, Some(a.port)),
    )
    .await
    .map_err(|_| CliError::Timeout(format!("announce of {k} did not finish")))?
    .map_err(|e| CliError::Io(format!("announce of {k}: {e}")))?;
    println!("announced {k} port {} to {} nodes", a.port, r.announced);
    dht.shutdown().await;
    if r.announced == 0 {
        return Err(CliError::Timeout(format!(
            "no node accepted the announce of {k}"
        )));
    }
    Ok(())
}

async fn get_peers(a: GetPeersArgs) -> Result<(), CliError> {
    let k = key(&a.key)?;
    let dht = start(&a.node).await?;
    bootstrapped(&dht, a.node.timeout).await?;
    let mut peers = dht.get_peers(k);
    let mut seen = std::collections::HashSet::new();
    let deadline = tokio::time::sleep(Duration::from_secs(a.node.timeout));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            p = peers.next() => match p {
                Some(p) => {
                    if seen.insert(p) {
                        println!("{p}");
                        if a.max.is_some_and(|m| seen.len() >= m) {
                            break;
                        }
                    }
                }
                None => break,
            },
        }
    }
    dht.shutdown().await;
    if seen.is_empty() {
        return Err(CliError::Timeout(format!("no peers found for {k}")));
    }
    Ok(())
}

fn bencoded_string(s: &str) -> Vec<u8> {
    bencode::Value::Bytes(s.as_bytes()).to_bytes()
}

async fn put(a: PutArgs) -> Result<(), CliError> {
    let v = bencoded_string(&a.value);
    let dht = start(&a.node).await?;
    bootstrapped(&dht, a.node.timeout).await?;
    let fut = async {
        match (&a.secret, a.seq) {
            (Some(secret), Some(seq)) => {
                let sk = parse_secret(secret)?;
                dht.put_mutable(&sk, v, seq, a.salt.as_bytes())
                    .await
                    .map_err(|e| CliError::Io(format!("put: {e}")))
            }
            _ => dht
                .put_immutable(v)
                .await
                .map_err(|e| CliError::Io(format!("put: {e}"))),
        }
    };
    let (target, r) = tokio::time::timeout(Duration::from_secs(a.node.timeout), fut)
        .await
        .map_err(|_| CliError::Timeout("put did not finish".into()))??;
    println!("target {target} stored on {} nodes", r.announced);
    dht.shutdown().await;
    if r.announced == 0 {
        return Err(CliError::Timeout(format!("no node stored {target}")));
    }
    Ok(())
}

fn parse_secret(s: &str) -> Result<[u8; 32], CliError> {
    let bad = || CliError::BadInput(format!("--secret: expected 64 hex digits, got {s:?}"));
    if s.len() != 64 || !s.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

async fn get(a: GetArgs) -> Result<(), CliError> {
    let target: Id = a
        .target
        .parse()
        .map_err(|e| CliError::BadInput(format!("target {:?}: {e}", a.target)))?;
    let dht = start(&a.node).await?;
    bootstrapped(&dht, a.node.timeout).await?;
    let item = tokio::time::timeout(
        Duration::from_secs(a.node.timeout),
        dht.get(target, a.salt.as_bytes()),
    )
    .await
    .map_err(|_| CliError::Timeout(format!("get of {target} did not finish")))?
    .map_err(|e| CliError::Io(format!("get: {e}")))?;
    dht.shutdown().await;
    let Some(item) = item else {
        return Err(CliError::Timeout(format!("no node holds {target}")));
    };
    match bencode::decode(&item.v).ok().and_then(|v| v.as_bytes()) {
        Some(b) => println!("{}", String::from_utf8_lossy(b)),
        None => println!("{}", String::from_utf8_lossy(&item.v)),
    }
    if let Some(seq) = item.seq {
        eprintln!("seq {seq}");
    }
    Ok(())
}
