//! Interop with npm `bittorrent-dht` on loopback: a rivulet node joins a swarm of
//! JavaScript nodes that bootstrapped only from each other.
//!
//! Needs `node` and `bittorrent-dht@11` in `$RIVULET_NODE_MODULES` or
//! `.interop/node/node_modules` (`npm install --prefix .interop/node bittorrent-dht@11`);
//! otherwise prints `SKIP:` and passes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use rivulet_dht::{Config, Dht, Hash, Id, Item};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

pub(crate) fn node_modules() -> Option<PathBuf> {
    let dir = match std::env::var_os("RIVULET_NODE_MODULES") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.interop/node/node_modules"),
    };
    dir.join("bittorrent-dht/index.js").exists().then_some(dir)
}

pub(crate) struct Swarm {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    pub(crate) ports: Vec<u16>,
}

impl Swarm {
    /// Starts `count` JS nodes; `None` (after printing SKIP) if node or the package is missing.
    pub(crate) async fn start(count: usize) -> Option<Swarm> {
        let Some(modules) = node_modules() else {
            println!(
                "SKIP: bittorrent-dht not installed (npm install --prefix .interop/node bittorrent-dht@11)"
            );
            return None;
        };
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/swarm.mjs");
        let mut child = match Command::new("node")
            .arg(script)
            .arg(count.to_string())
            .env("RIVULET_NODE_MODULES", modules)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                println!("SKIP: cannot run node: {e}");
                return None;
            }
        };
        let stdin = child.stdin.take().expect("piped");
        let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut s = Swarm {
            child,
            stdin,
            lines,
            ports: Vec::new(),
        };
        let ready = s.read().await;
        s.ports = ready["ready"]
            .as_array()
            .expect("ready line")
            .iter()
            .map(|p| p.as_u64().expect("port") as u16)
            .collect();
        Some(s)
    }

    async fn read(&mut self) -> serde_json::Value {
        let line = self
            .lines
            .next_line()
            .await
            .expect("read swarm output")
            .expect("swarm exited");
        serde_json::from_str(&line).expect("JSON line")
    }

    pub(crate) async fn call(&mut self, cmd: serde_json::Value) -> serde_json::Value {
        let mut line = cmd.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("write swarm");
        self.read().await
    }

    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.ports
            .iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect()
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.stdin.write_all(b"{\"cmd\":\"quit\"}\n").await;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

pub(crate) async fn rivulet_node(bootstrap: Vec<SocketAddr>) -> Dht {
    let mut config = Config::default();
    // Every JS node shares 127.0.0.1: no per-IP limit here.
    config.rate_limit = None;
    Dht::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .config(config)
        .bootstrap(bootstrap)
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn announce_and_lookup_both_ways_with_bittorrent_dht() {
    let Some(mut swarm) = Swarm::start(24).await else {
        return;
    };
    tokio::time::timeout(Duration::from_secs(90), async {
        let dht = rivulet_node(swarm.addrs()[..4].to_vec()).await;
        dht.bootstrapped().await;
        dht.find_node(Hash::from_name("spread")).await.unwrap();
        let stats = dht.stats().await.unwrap();
        assert!(stats.table.nodes >= 8, "{stats:?}");

        // rivulet announces, a JS node finds it.
        let h1 = Hash::from_name("rivulet announces");
        let r = dht.announce(h1, Some(5555)).await.unwrap();
        assert!(r.announced >= 4, "{r:?}");
        let res = swarm
            .call(serde_json::json!({"cmd": "lookup", "node": 17, "hash": h1.to_string()}))
            .await;
        let peers: Vec<String> = serde_json::from_value(res["peers"].clone()).unwrap();
        assert!(peers.contains(&"127.0.0.1:5555".to_string()), "{peers:?}");

        // A JS node announces, rivulet finds it.
        let h2 = Hash::from_name("bittorrent-dht announces");
        swarm
            .call(serde_json::json!({"cmd": "announce", "node": 3, "hash": h2.to_string(), "port": 6666}))
            .await;
        let peers = dht.get_peers(h2).collect().await;
        assert!(peers.contains(&"127.0.0.1:6666".parse().unwrap()), "{peers:?}");
        println!("interop: rivulet stats {:?}", dht.stats().await.unwrap());
        dht.shutdown().await;
    })
    .await
    .expect("interop test timed out");
    swarm.stop().await;
}

#[tokio::test]
async fn bep44_put_get_with_bittorrent_dht() {
    let Some(mut swarm) = Swarm::start(24).await else {
        return;
    };
    tokio::time::timeout(Duration::from_secs(90), async {
        let dht = rivulet_node(swarm.addrs()[..4].to_vec()).await;
        dht.bootstrapped().await;
        dht.find_node(Hash::from_name("spread")).await.unwrap();

        // Immutable: JS puts, rivulet gets.
        let res = swarm
            .call(serde_json::json!({"cmd": "put", "node": 5, "v": "hello from js"}))
            .await;
        let key: Id = res["key"].as_str().unwrap().parse().unwrap();
        let item = dht.get(key, b"").await.unwrap().expect("immutable item from js");
        assert_eq!(item.v, b"13:hello from js");

        // Immutable: rivulet puts, JS gets.
        let (target, r) = dht.put_immutable(b"15:hello from rust".to_vec()).await.unwrap();
        assert!(r.announced >= 4, "{r:?}");
        let res = swarm
            .call(serde_json::json!({"cmd": "get", "node": 9, "key": target.to_string()}))
            .await;
        assert_eq!(res["v"], "hello from rust");

        // Mutable with salt: rivulet puts, JS gets (and verifies the signature).
        let seed = [42u8; 32];
        let (target, r) = dht
            .put_mutable(&seed, b"12:rust mutable".to_vec(), 1, b"salt")
            .await
            .unwrap();
        assert!(r.announced >= 4, "{r:?}");
        let res = swarm
            .call(serde_json::json!({"cmd": "getMutable", "node": 11, "key": target.to_string(), "salt": "salt"}))
            .await;
        assert_eq!(res["v"], "rust mutable", "{res}");
        assert_eq!(res["seq"], 1);

        // Mutable: JS signs and puts, rivulet gets and verifies.
        let seed2 = [7u8; 32];
        let public = Item::public_key(&seed2);
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let res = swarm
            .call(serde_json::json!({"cmd": "putMutable", "node": 2, "seed": hex(&seed2), "pub": hex(&public), "v": "js mutable", "seq": 3}))
            .await;
        assert!(res["n"].as_u64().unwrap_or(0) >= 1, "{res}");
        let item = dht
            .get(Item::mutable_target(&public, b""), b"")
            .await
            .unwrap()
            .expect("mutable item from js");
        assert_eq!(item.v, b"10:js mutable");
        assert_eq!(item.seq, Some(3));
        dht.shutdown().await;
    })
    .await
    .expect("interop test timed out");
    swarm.stop().await;
}
