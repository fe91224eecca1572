//! Replays every committed seed corpus (`fuzz/corpus/<target>/`) and every saved crash
//! reproducer (`fuzz/regressions/<target>/`) through the same entry points the libFuzzer
//! binaries call, so a plain `cargo test` exercises them on stable Rust.

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for sub in ["corpus", "regressions"] {
        let dir = root.join(sub).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            f(&data);
            n += 1;
        }
    }
    eprintln!("{target}: replayed {n} inputs");
}

#[test]
fn bencode_decode() {
    replay("bencode_decode", rivulet_fuzz::bencode_decode);
}

#[test]
fn metainfo_parse() {
    replay("metainfo_parse", rivulet_fuzz::metainfo_parse);
}

#[test]
fn magnet_parse() {
    replay("magnet_parse", rivulet_fuzz::magnet_parse);
}

#[test]
fn dht_krpc() {
    replay("dht_krpc", rivulet_fuzz::dht_krpc);
}

#[test]
fn peer_wire_decode() {
    replay("peer_wire_decode", rivulet_fuzz::peer_wire_decode);
}

#[test]
fn handshake_parse() {
    replay("handshake_parse", rivulet_fuzz::handshake_parse);
}

#[test]
fn tracker_udp() {
    replay("tracker_udp", rivulet_fuzz::tracker_udp);
}

#[test]
fn tracker_http() {
    replay("tracker_http", rivulet_fuzz::tracker_http);
}

#[test]
fn tracker_ws() {
    replay("tracker_ws", rivulet_fuzz::tracker_ws);
}
