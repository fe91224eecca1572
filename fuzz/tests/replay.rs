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

#[test]
fn metadata_fetch() {
    replay("metadata_fetch", rivulet_fuzz::metadata_fetch);
}

#[test]
fn pex() {
    replay("pex", rivulet_fuzz::pex);
}

#[test]
fn resume_check() {
    replay("resume_check", rivulet_fuzz::resume_check);
}

#[test]
fn lsd() {
    replay("lsd", rivulet_fuzz::lsd);
}

#[test]
fn core_session() {
    replay("core_session", rivulet_fuzz::core_session);
}

#[test]
fn hash_exchange() {
    replay("hash_exchange", rivulet_fuzz::hash_exchange);
}

/// Writes the client targets' seed corpora (`cargo test -p rivulet-fuzz --test replay
/// -- --ignored write_client_seeds`); the files are committed.
#[test]
#[ignore = "writes fuzz/corpus: run by hand when the seeds change"]
fn write_client_seeds() {
    use rivulet_fuzz::client as c;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let write = |target: &str, name: &str, data: Vec<u8>| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), data).unwrap();
    };
    write(
        "metadata_fetch",
        "one_peer",
        c::encode_metadata_fetch(1, false, false),
    );
    write(
        "metadata_fetch",
        "three_peers",
        c::encode_metadata_fetch(3, false, false),
    );
    write(
        "metadata_fetch",
        "reject_then_serve",
        c::encode_metadata_fetch(2, true, false),
    );
    write(
        "metadata_fetch",
        "liar_and_honest",
        c::encode_metadata_fetch(2, false, true),
    );
    write("pex", "v4", c::encode_pex(false));
    write("pex", "v4_v6", c::encode_pex(true));
    let info = c::resume_info();
    let n = info.piece_count() as usize;
    write(
        "resume_check",
        "all",
        c::encode_resume_check(0, &vec![true; n]),
    );
    write(
        "resume_check",
        "none",
        c::encode_resume_check(0, &vec![false; n]),
    );
    let some: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
    write("resume_check", "some", c::encode_resume_check(0, &some));
    write(
        "resume_check",
        "file_missing",
        c::encode_resume_check(4, &some),
    );
    write("lsd", "announces", c::encode_lsd());
    write(
        "core_session",
        "v1_fast",
        c::encode_core_session(0, true, false, false),
    );
    write(
        "core_session",
        "v1_plain",
        c::encode_core_session(0, false, false, false),
    );
    write(
        "core_session",
        "v1_liar",
        c::encode_core_session(0, true, true, false),
    );
    write(
        "core_session",
        "v1_half_seed",
        c::encode_core_session(0x0f, true, false, false),
    );
    write(
        "hash_exchange",
        "v2_layers",
        c::encode_core_session(0, true, false, true),
    );
    write(
        "hash_exchange",
        "v2_liar",
        c::encode_core_session(0, true, true, true),
    );
    write(
        "hash_exchange",
        "v2_seed",
        c::encode_core_session(0xff, true, false, false),
    );
}
