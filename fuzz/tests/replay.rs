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
