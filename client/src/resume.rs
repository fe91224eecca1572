//! Fast resume: what was verified, so a normal restart does not hash the data again.
//!
//! A resume file is a bencoded dictionary:
//!
//! ```text
//! d
//!   4:hash   20 or 32 bytes: the info hash it belongs to (v1, else v2)
//!   6:pieces the verified pieces, a bitfield (piece 0 = high bit of byte 0)
//!   5:files  one entry per file in torrent order: a list [size, mtime seconds,
//!            mtime nanoseconds] of the file on disk when the file was written, or an
//!            empty list when the file did not exist (padding files: always empty)
//!   7:version i1e
//! e
//! ```
//!
//! It is trusted only if every file's size and modification time are exactly what it
//! records: any write after the resume file was taken (a crash mid-download, kill -9,
//! another program touching the files) changes a modification time, and then the
//! caller falls back to a full check ([`crate::storage::Storage::verify_existing`]).
//! A missing, corrupt or foreign resume file also means a full check. The file is
//! written to a temporary name and renamed over the old one, so a crash while saving
//! leaves the old file or the new one, never half of one.
//!
//! Saving must come after the data it describes is on disk (the caller flushes the
//! storage first): pieces are listed only once they are verified and written.

use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use bencode::{Dict, List, Value};
use metainfo::Info;

/// The format version written and accepted.
const VERSION: i64 = 1;

/// A resume file larger than this is not read (a 2^32-piece bitfield is 512 MiB; real
/// ones are kilobytes).
const MAX_RESUME_LEN: u64 = 64 << 20;

/// A file's size and modification time, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time: seconds since the Unix epoch.
    pub mtime_secs: i64,
    /// Modification time: nanoseconds within the second.
    pub mtime_nanos: u32,
}

/// Where the resume file of a torrent lives by default: `DIR/.rivulet/<info hash>.resume`.
pub fn default_path(dir: &Path, info: &Info) -> PathBuf {
    let hash = match info.info_hash().v1() {
        Some(h) => h.to_hex(),
        None => info.info_hash().wire_id().to_hex(),
    };
    dir.join(".rivulet").join(format!("{hash}.resume"))
}

fn hash_bytes(info: &Info) -> Vec<u8> {
    let h = info.info_hash();
    match (h.v1(), h.v2()) {
        (Some(v1), _) => v1.as_bytes().to_vec(),
        (None, Some(v2)) => v2.as_bytes().to_vec(),
        (None, None) => Vec::new(),
    }
}

/// The current stamps of the torrent's files under `root` (`None` for a padding file or
/// a file that does not exist).
pub fn stamps(info: &Info, root: &Path) -> Vec<Option<FileStamp>> {
    info.files
        .iter()
        .map(|f| {
            if f.is_padding() {
                return None;
            }
            let meta = std::fs::symlink_metadata(root.join(f.safe_path())).ok()?;
            if !meta.is_file() {
                return None;
            }
            let mtime = meta.modified().ok()?;
            let (secs, nanos) = match mtime.duration_since(UNIX_EPOCH) {
                Ok(d) => (i64::try_from(d.as_secs()).ok()?, d.subsec_nanos()),
                Err(e) => {
                    let d = e.duration();
                    (-i64::try_from(d.as_secs()).ok()?, d.subsec_nanos())
                }
            };
            Some(FileStamp {
                size: meta.len(),
                mtime_secs: secs,
                mtime_nanos: nanos,
            })
        })
        .collect()
}

/// Encodes a resume file for `info` with these verified pieces and file stamps.
pub fn encode(info: &Info, have: &[bool], stamps: &[Option<FileStamp>]) -> Vec<u8> {
    let mut bits = vec![0u8; have.len().div_ceil(8)];
    for (i, _) in have.iter().enumerate().filter(|(_, h)| **h) {
        bits[i / 8] |= 0x80 >> (i % 8);
    }
    let hash = hash_bytes(info);
    let mut files = List::new();
    for s in stamps {
        let mut l = List::new();
        if let Some(s) = s {
            l.push(Value::Int(i64::try_from(s.size).unwrap_or(i64::MAX)));
            l.push(Value::Int(s.mtime_secs));
            l.push(Value::Int(i64::from(s.mtime_nanos)));
        }
        files.push(Value::List(l));
    }
    let mut d = Dict::new();
    d.insert(b"hash", Value::Bytes(&hash));
    d.insert(b"pieces", Value::Bytes(&bits));
    d.insert(b"files", Value::List(files));
    d.insert(b"version", Value::Int(VERSION));
    Value::Dict(d).to_bytes()
}

/// Why a resume file was not used (each means: check the data in full).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeRejected {
    /// There is no resume file (or it could not be read).
    #[error("no resume file: {0}")]
    Missing(String),
    /// The file is not a resume file of this format.
    #[error("corrupt resume file: {0}")]
    Corrupt(&'static str),
    /// It belongs to another torrent.
    #[error("the resume file is for another torrent")]
    OtherTorrent,
    /// A file's size or modification time differs from what was recorded.
    #[error("file {0} changed since the resume file was written")]
    Changed(usize),
}

/// Decodes a resume file and checks it against `info` and the files' current stamps;
/// returns the verified pieces if it can be trusted.
pub fn check(
    info: &Info,
    bytes: &[u8],
    current: &[Option<FileStamp>],
) -> Result<Vec<bool>, ResumeRejected> {
    let v = bencode::decode(bytes).map_err(|_| ResumeRejected::Corrupt("not bencode"))?;
    let d = v
        .as_dict()
        .ok_or(ResumeRejected::Corrupt("not a dictionary"))?;
    if d.get(b"version").and_then(Value::as_int) != Some(VERSION) {
        return Err(ResumeRejected::Corrupt("unknown version"));
    }
    if d.get(b"hash").and_then(Value::as_bytes) != Some(&hash_bytes(info)[..]) {
        return Err(ResumeRejected::OtherTorrent);
    }
    let n = info.piece_count() as usize;
    let bits = d
        .get(b"pieces")
        .and_then(Value::as_bytes)
        .ok_or(ResumeRejected::Corrupt("no pieces"))?;
    if bits.len() != n.div_ceil(8) {
        return Err(ResumeRejected::Corrupt("pieces has the wrong length"));
    }
    let files = d
        .get(b"files")
        .and_then(Value::as_list)
        .ok_or(ResumeRejected::Corrupt("no files"))?;
    if files.len() != info.files.len() || current.len() != info.files.len() {
        return Err(ResumeRejected::Corrupt("files has the wrong length"));
    }
    for (i, (f, now)) in files.iter().zip(current).enumerate() {
        let l = f
            .as_list()
            .ok_or(ResumeRejected::Corrupt("a file entry is not a list"))?;
        let recorded = match l.items() {
            [] => None,
            [size, secs, nanos] => {
                let int = |v: &Value<'_>| v.as_int().ok_or(ResumeRejected::Corrupt("bad stamp"));
                Some(FileStamp {
                    size: u64::try_from(int(size)?)
                        .map_err(|_| ResumeRejected::Corrupt("bad size"))?,
                    mtime_secs: int(secs)?,
                    mtime_nanos: u32::try_from(int(nanos)?)
                        .map_err(|_| ResumeRejected::Corrupt("bad mtime"))?,
                })
            }
            _ => return Err(ResumeRejected::Corrupt("a file entry has the wrong length")),
        };
        if recorded != *now {
            return Err(ResumeRejected::Changed(i));
        }
    }
    let have: Vec<bool> = (0..n)
        .map(|i| bits[i / 8] & (0x80 >> (i % 8)) != 0)
        .collect();
    // A piece can only be had if every (non-padding) file it touches exists at full size.
    let layout = info.layout();
    for (i, _) in have.iter().enumerate().filter(|(_, h)| **h) {
        for span in layout.spans(i as u32, 0, layout.piece_len(i as u32)) {
            if span.padding {
                continue;
            }
            let ok = current
                .get(span.file_index)
                .copied()
                .flatten()
                .is_some_and(|s| s.size == info.files[span.file_index].length);
            if !ok {
                return Err(ResumeRejected::Corrupt(
                    "a verified piece lies in a missing file",
                ));
            }
        }
    }
    Ok(have)
}

/// Reads the resume file at `path` and checks it (see [`check`]).
pub fn load(info: &Info, root: &Path, path: &Path) -> Result<Vec<bool>, ResumeRejected> {
    let meta = std::fs::metadata(path).map_err(|e| ResumeRejected::Missing(e.to_string()))?;
    if meta.len() > MAX_RESUME_LEN {
        return Err(ResumeRejected::Corrupt("too large"));
    }
    let bytes = std::fs::read(path).map_err(|e| ResumeRejected::Missing(e.to_string()))?;
    check(info, &bytes, &stamps(info, root))
}

/// Writes the resume file at `path` (its directory is created), atomically: a temporary
/// file is written, synced and renamed over the old one. The data of every piece in
/// `have` must already be on disk.
pub fn save(info: &Info, root: &Path, path: &Path, have: &[bool]) -> io::Result<()> {
    let bytes = encode(info, have, &stamps(info, root));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("resume.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        io::Write::write_all(&mut f, &bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use metainfo::{Torrent, TorrentBuilder, Version};

    fn torrent(dir: &Path) -> Torrent {
        let c = dir.join("c");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(c.join("a"), vec![7u8; 50_000]).unwrap();
        std::fs::write(c.join("b"), vec![9u8; 20_000]).unwrap();
        let made = TorrentBuilder::new(&c)
            .version(Version::Hybrid)
            .piece_length(16384)
            .build()
            .unwrap();
        Torrent::from_bytes(made.bytes()).unwrap()
    }

    proptest::proptest! {
        #[test]
        fn any_bits_round_trip_and_any_bytes_are_rejected_without_panic(
            bits in proptest::collection::vec(proptest::bool::ANY, 0..64),
            junk in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        ) {
            let d = tempfile::tempdir().unwrap();
            let t = torrent(d.path());
            let n = t.info.piece_count() as usize;
            let have: Vec<bool> = (0..n).map(|i| bits.get(i).copied().unwrap_or(false)).collect();
            let s = stamps(&t.info, d.path());
            let bytes = encode(&t.info, &have, &s);
            proptest::prop_assert_eq!(check(&t.info, &bytes, &s), Ok(have));
            let _ = check(&t.info, &junk, &s);
            // Any single flipped byte is caught or decodes to something consistent.
            if !junk.is_empty() {
                let mut b = bytes.clone();
                let i = junk[0] as usize % b.len();
                b[i] ^= junk[junk.len() - 1] | 1;
                let _ = check(&t.info, &b, &s);
            }
        }
    }

    #[test]
    fn round_trips_and_rejects_changes_corruption_and_other_torrents() {
        let d = tempfile::tempdir().unwrap();
        let t = torrent(d.path());
        let info = &t.info;
        let n = info.piece_count() as usize;
        let have: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        let path = default_path(d.path(), info);
        save(info, d.path(), &path, &have).unwrap();
        assert_eq!(load(info, d.path(), &path), Ok(have.clone()));

        // Truncated, garbage, or another version: corrupt.
        let bytes = std::fs::read(&path).unwrap();
        let s = stamps(info, d.path());
        assert!(matches!(
            check(info, &bytes[..bytes.len() - 1], &s),
            Err(ResumeRejected::Corrupt(_))
        ));
        assert!(matches!(
            check(info, b"d7:versioni2ee", &s),
            Err(ResumeRejected::Corrupt(_))
        ));
        // Another torrent.
        let other = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(other.path().join("c")).unwrap();
        std::fs::write(other.path().join("c/x"), b"other").unwrap();
        let made = TorrentBuilder::new(other.path().join("c")).build().unwrap();
        let t2 = Torrent::from_bytes(made.bytes()).unwrap();
        assert_eq!(
            check(&t2.info, &bytes, &stamps(&t2.info, other.path())),
            Err(ResumeRejected::OtherTorrent)
        );

        // A file rewritten with the same size: its mtime differs.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let a = d.path().join("c/a");
        std::fs::write(&a, vec![8u8; 50_000]).unwrap();
        assert!(matches!(
            load(info, d.path(), &path),
            Err(ResumeRejected::Changed(_))
        ));
        // A file removed.
        save(info, d.path(), &path, &have).unwrap();
        std::fs::remove_file(&a).unwrap();
        assert!(matches!(
            load(info, d.path(), &path),
            Err(ResumeRejected::Changed(_))
        ));
        // Missing resume file.
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            load(info, d.path(), &path),
            Err(ResumeRejected::Missing(_))
        ));
    }
}
