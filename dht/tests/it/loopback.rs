//! Several rivulet nodes on loopback through the tokio driver.

use std::net::SocketAddr;
use std::time::Duration;

use rivulet_dht::{Dht, Hash};

async fn node(bootstrap: Vec<SocketAddr>) -> Dht {
    Dht::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .bootstrap(bootstrap)
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn announce_and_get_peers_on_loopback() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let first = node(vec![]).await;
        let mut nodes = vec![first.clone()];
        for _ in 0..7 {
            let n = node(vec![first.local_addr()]).await;
            nodes.push(n);
        }
        for n in &nodes[1..] {
            n.bootstrapped().await;
        }
        // A second round so that early nodes learn of later ones.
        for n in &nodes {
            n.find_node(n.id()).await.unwrap();
        }
        let stats = nodes[3].stats().await.unwrap();
        assert!(stats.table.nodes >= 3, "{stats:?}");

        let room = Hash::from_name("rivulet loopback test room");
        let r = nodes[2].announce(room, Some(7777)).await.unwrap();
        assert!(r.announced >= 1, "{r:?}");
        let peers = nodes[6].get_peers(room).collect().await;
        assert!(
            peers.contains(&"127.0.0.1:7777".parse().unwrap()),
            "{peers:?}"
        );

        // implied_port: the announcing socket's own port.
        let room2 = Hash::from_name("implied");
        nodes[4].announce(room2, None).await.unwrap();
        let peers = nodes[1].get_peers(room2).collect().await;
        assert!(peers.contains(&nodes[4].local_addr()), "{peers:?}");

        // BEP 33: one seed and two downloaders so far, all on 127.0.0.1; the filters
        // count addresses, so that is one of each.
        nodes[5].announce_as(room, Some(7778), true).await.unwrap();
        let est = nodes[0].scrape(room).await.unwrap();
        assert_eq!((est.seeds, est.peers), (1, 1), "{est:?}");

        // BEP 44 between rivulet nodes.
        let (target, r) = nodes[1].put_immutable(b"5:hello".to_vec()).await.unwrap();
        assert!(r.announced >= 1);
        let item = nodes[6]
            .get(target, b"")
            .await
            .unwrap()
            .expect("immutable item");
        assert_eq!(item.v, b"5:hello");
        let seed = [3u8; 32];
        let (target, _) = nodes[2]
            .put_mutable(&seed, b"i1e".to_vec(), 1, b"")
            .await
            .unwrap();
        nodes[3]
            .put_mutable(&seed, b"i2e".to_vec(), 2, b"")
            .await
            .unwrap();
        let item = nodes[7]
            .get(target, b"")
            .await
            .unwrap()
            .expect("mutable item");
        assert_eq!((item.v.as_slice(), item.seq), (&b"i2e"[..], Some(2)));

        let found = nodes[5].find_node(nodes[7].id()).await.unwrap();
        assert_eq!(found.closest.first().map(|n| n.id), Some(nodes[7].id()));
        for n in &nodes {
            n.shutdown().await;
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn state_file_round_trip() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dht.state");
        let a = node(vec![]).await;
        let b = Dht::builder()
            .bind("127.0.0.1:0".parse().unwrap())
            .bootstrap([a.local_addr()])
            .state_file(&path)
            .build()
            .await
            .unwrap();
        b.bootstrapped().await;
        let id = b.id();
        b.shutdown().await;
        assert!(path.exists());
        // Restart without bootstrap nodes: the id and the table come from the file.
        let b2 = Dht::builder()
            .bind("127.0.0.1:0".parse().unwrap())
            .bootstrap([])
            .state_file(&path)
            .build()
            .await
            .unwrap();
        assert_eq!(b2.id(), id);
        assert!(b2.stats().await.unwrap().table.nodes >= 1);
        b2.shutdown().await;
        a.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn ipv6_loopback_and_samples() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let v6 = |boot: Vec<SocketAddr>| async move {
            Dht::builder()
                .bind("[::1]:0".parse().unwrap())
                .bootstrap(boot)
                .build()
                .await
        };
        let Ok(first) = v6(vec![]).await else {
            println!("SKIP: no IPv6 loopback");
            return;
        };
        let mut nodes = vec![first.clone()];
        for _ in 0..4 {
            nodes.push(v6(vec![first.local_addr()]).await.unwrap());
        }
        for n in &nodes {
            n.bootstrapped().await;
            n.find_node(n.id()).await.unwrap();
        }
        let room = Hash::from_name("v6 room");
        let r = nodes[1].announce(room, Some(9999)).await.unwrap();
        assert!(r.announced >= 1, "{r:?}");
        let peers = nodes[3].get_peers(room).collect().await;
        assert!(peers.contains(&"[::1]:9999".parse().unwrap()), "{peers:?}");
        // BEP 51 on the first node, which holds the announce if it is among the closest.
        let mut sampled = 0;
        for n in &nodes[2..] {
            let s = n.sample_infohashes(first.local_addr(), room).await.unwrap();
            assert!(s.ok);
            sampled += s.samples.len();
            assert!(!s.nodes.is_empty() || s.samples.is_empty());
        }
        println!("samples seen: {sampled}");
        for n in &nodes {
            n.shutdown().await;
        }
    })
    .await
    .expect("test timed out");
}
