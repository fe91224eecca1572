//! Checking data on disk against a torrent: [`Verifier`] and [`verify`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::hasher::{self, Mode, Plan, PlanFile};
use crate::merkle::{self, Hash256};
use crate::torrent::{Info, Torrent};

/// Which pieces of a torrent are good on disk: one flag per piece, in piece order.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct PieceBitfield {
    bits: Vec<bool>,
}

impl PieceBitfield {
    /// A bitfield from one flag per piece.
    pub fn from_bools(bits: Vec<bool>) -> Self {
        PieceBitfield { bits }
    }
    /// The number of pieces.
    pub fn len(&self) -> usize {
        self.bits.len()
    }
    /// Whether the torrent has no pieces.
    pub fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }
    /// Whether piece `i` is good (false if out of range).
    pub fn get(&self, i: usize) -> bool {
        self.bits.get(i).copied().unwrap_or(false)
    }
    /// The flags, one per piece.
    pub fn as_slice(&self) -> &[bool] {
        &self.bits
    }
    /// How many pieces are good.
    pub fn count_good(&self) -> usize {
        self.bits.iter().filter(|b| **b).count()
    }
    /// Whether every piece is good.
    pub fn all_good(&self) -> bool {
        self.bits.iter().all(|b| *b)
    }
    /// The indices of the bad pieces.
    pub fn bad_pieces(&self) -> impl Iterator<Item = usize> + '_ {
        self.bits
            .iter()
            .enumerate()
            .filter(|(_, b)| !**b)
            .map(|(i, _)| i)
    }
    /// The BEP 3 wire form: piece 0 is the high bit of the first byte, spare bits zero.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.bits.len().div_ceil(8)];
        for (i, _) in self.bits.iter().enumerate().filter(|(_, b)| **b) {
            out[i / 8] |= 0x80 >> (i % 8);
        }
        out
    }
}

impl fmt::Debug for PieceBitfield {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PieceBitfield({}/{} good: ",
            self.count_good(),
            self.len()
        )?;
        for b in &self.bits {
            f.write_str(if *b { "1" } else { "0" })?;
        }
        f.write_str(")")
    }
}

/// Why verification could not run at all (missing or unreadable files are not errors:
/// their pieces are reported bad).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The save directory cannot be resolved.
    #[error("cannot use save path {}: {source}", path.display())]
    SavePath {
        /// The save path given.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The torrent has neither v1 piece hashes nor v2 file roots to check against.
    #[error("the torrent has no piece hashes to check against")]
    NoHashes,
}

type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Checks the files of a torrent under a save directory, in parallel.
///
/// File `f` is read from `save_path.join(f.safe_path())` (so `<save_path>/<name>/...` for
/// a multi-file torrent, `<save_path>/<name>` for a single file, as BitTorrent clients
/// store them). Paths are the parser's sanitized ones, and every file's canonical path
/// must lie inside the canonical save directory (a symlink leading out is treated as a
/// missing file): nothing outside `save_path` is read.
///
/// v1 and hybrid torrents are checked against their SHA-1 piece hashes (padding files
/// count as zeros and are not read). v2-only torrents are checked per piece against the
/// piece layers, or, for a file whose piece layer is absent (an info dictionary fetched on
/// its own), as a whole against its `pieces root`. Missing, short or unreadable files make
/// their pieces bad.
///
/// ```
/// use rivulet_metainfo::{Torrent, TorrentBuilder, Verifier};
/// let dir = tempfile::tempdir()?;
/// let file = dir.path().join("data.bin");
/// std::fs::write(&file, vec![5u8; 100_000])?;
/// let made = TorrentBuilder::new(&file).piece_length(16384).build()?;
/// let torrent = Torrent::from_bytes(made.bytes())?;
/// let have = Verifier::new(&torrent.info).run(dir.path())?;
/// assert!(have.all_good());
/// assert_eq!(have.len(), 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Verifier<'t> {
    info: &'t Info,
    threads: Option<usize>,
    progress: Option<Progress>,
}

impl fmt::Debug for Verifier<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("name", &self.info.name)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// Checks `torrent`'s data under `save_path` with default options (see [`Verifier`]).
pub fn verify(
    torrent: &Torrent,
    save_path: impl AsRef<Path>,
) -> Result<PieceBitfield, VerifyError> {
    Verifier::new(&torrent.info).run(save_path)
}

impl<'t> Verifier<'t> {
    /// A verifier for the torrent whose info dictionary is `info`.
    pub fn new(info: &'t Info) -> Self {
        Verifier {
            info,
            threads: None,
            progress: None,
        }
    }

    /// The number of hashing threads. Default: [`std::thread::available_parallelism`].
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads.max(1));
        self
    }

    /// Called from the hashing threads with `(bytes_done, total)`.
    pub fn on_progress(mut self, f: impl Fn(u64, u64) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// Reads and checks the data under `save_path`.
    pub fn run(&self, save_path: impl AsRef<Path>) -> Result<PieceBitfield, VerifyError> {
        let save_path = save_path.as_ref();
        let base = save_path
            .canonicalize()
            .map_err(|source| VerifyError::SavePath {
                path: save_path.to_path_buf(),
                source,
            })?;
        let info = self.info;
        let use_v1 = !info.pieces.is_empty();
        if !use_v1 && info.files.iter().all(|f| f.pieces_root.is_none()) {
            return Err(VerifyError::NoHashes);
        }
        let files: Vec<PlanFile> = info
            .files
            .iter()
            .map(|f| PlanFile {
                path: base.join(f.safe_path()),
                length: f.length,
                pad: f.is_padding(),
            })
            .collect();
        let mode = if use_v1 { Mode::Stream } else { Mode::Aligned };
        let threads = self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let progress = self.progress.clone();
        let plan = Plan {
            files: &files,
            piece_length: info.piece_length,
            mode,
            want_v1: use_v1,
            want_v2: !use_v1,
            threads,
            progress: progress.as_deref().map(|p| p as &(dyn Fn(u64, u64) + Sync)),
            fail_fast: false,
            confine_to: Some(base),
        };
        let map = hasher::PieceMap::new(&files, info.piece_length, mode);
        let pieces = match hasher::hash_all(&plan, &map) {
            Ok(p) => p,
            // Not reachable without fail_fast; report everything bad rather than panic.
            Err(_) => vec![hasher::PieceOut::default(); map.num_pieces],
        };
        let bits = if use_v1 {
            pieces
                .iter()
                .enumerate()
                .map(|(i, p)| p.ok && info.pieces.get(i) == Some(&p.sha1))
                .collect()
        } else {
            let mut bits = vec![false; pieces.len()];
            let pl = info.piece_length;
            for (fi, f) in info.files.iter().enumerate() {
                let (Some(root), false) = (f.pieces_root, f.length == 0) else {
                    continue;
                };
                let first = map.first_piece(fi);
                let n = f.length.div_ceil(pl) as usize;
                let Some(got) = pieces.get(first..first + n) else {
                    continue;
                };
                let ok = got.iter().all(|p| p.ok);
                if f.length <= pl {
                    bits[first] = ok && got[0].v2 == root;
                } else if let Some(layer) = info.piece_layer(&root) {
                    for (k, p) in got.iter().enumerate() {
                        bits[first + k] = p.ok && layer.get(k) == Some(&p.v2);
                    }
                } else {
                    let layer: Vec<Hash256> = got.iter().map(|p| p.v2).collect();
                    let whole = ok && merkle::root_from_piece_layer(&layer, pl) == root;
                    bits[first..first + n].fill(whole);
                }
            }
            bits
        };
        Ok(PieceBitfield { bits })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{TorrentBuilder, Version};

    use crate::builder::tests::noise;

    const FILES: &[(&str, usize)] = &[
        ("a", 100),
        ("b.bin", 70_000),
        ("empty", 0),
        ("sub/y", 16_384),
        ("sub/z", 40_001),
    ];

    /// Writes the content under `<save>/content` and returns its torrent.
    fn setup(save: &Path, version: Version) -> Torrent {
        let dir = save.join("content");
        for (i, (name, len)) in FILES.iter().enumerate() {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, noise(i as u64 + 1, *len)).unwrap();
        }
        let made = TorrentBuilder::new(&dir)
            .version(version)
            .piece_length(16384)
            .build()
            .unwrap();
        Torrent::from_bytes(made.bytes()).unwrap()
    }

    /// The piece holding byte `offset` of file `name`.
    fn piece_of(t: &Torrent, name: &str, offset: u64) -> usize {
        let (fi, f) = t
            .info
            .files
            .iter()
            .enumerate()
            .find(|(_, f)| f.display_path() == name)
            .unwrap();
        assert!(offset < f.length);
        t.info.layout().file_to_piece(fi, offset).unwrap().0 as usize
    }

    fn flip(path: &Path, at: usize) {
        let mut d = std::fs::read(path).unwrap();
        d[at] ^= 0x40;
        std::fs::write(path, d).unwrap();
    }

    #[test]
    fn built_data_is_all_good_and_a_flipped_byte_is_one_bad_piece() {
        for version in [Version::V1, Version::V2, Version::Hybrid] {
            let tmp = tempfile::tempdir().unwrap();
            let t = setup(tmp.path(), version);
            let have = verify(&t, tmp.path()).unwrap();
            assert!(have.all_good(), "{version:?} {have:?}");
            assert_eq!(have.len(), t.info.piece_count() as usize);
            for threads in [1, 3] {
                let have = Verifier::new(&t.info)
                    .threads(threads)
                    .run(tmp.path())
                    .unwrap();
                assert!(have.all_good());
            }

            flip(&tmp.path().join("content/b.bin"), 40_000);
            let bad: Vec<usize> = verify(&t, tmp.path()).unwrap().bad_pieces().collect();
            assert_eq!(bad, vec![piece_of(&t, "b.bin", 40_000)], "{version:?}");
            flip(&tmp.path().join("content/b.bin"), 40_000);

            flip(&tmp.path().join("content/sub/z"), 40_000);
            let bad: Vec<usize> = verify(&t, tmp.path()).unwrap().bad_pieces().collect();
            assert_eq!(bad, vec![piece_of(&t, "sub/z", 40_000)], "{version:?}");
        }
    }

    #[test]
    fn missing_and_short_files_are_bad_pieces() {
        for version in [Version::V1, Version::V2, Version::Hybrid] {
            let tmp = tempfile::tempdir().unwrap();
            let t = setup(tmp.path(), version);
            std::fs::remove_file(tmp.path().join("content/sub/y")).unwrap();
            let bad: Vec<usize> = verify(&t, tmp.path()).unwrap().bad_pieces().collect();
            let fi = t
                .info
                .files
                .iter()
                .position(|f| f.display_path() == "sub/y")
                .unwrap();
            let want: Vec<usize> = t
                .info
                .layout()
                .file_pieces(fi)
                .map(|p| p as usize)
                .collect();
            assert_eq!(bad, want, "{version:?}");

            let short = tmp.path().join("content/b.bin");
            let d = std::fs::read(&short).unwrap();
            std::fs::write(&short, &d[..50_000]).unwrap();
            let have = verify(&t, tmp.path()).unwrap();
            // The pieces holding bytes 49152.. of b.bin (the last two of its 5) go bad.
            assert!(have.get(piece_of(&t, "b.bin", 0)));
            assert!(!have.get(piece_of(&t, "b.bin", 50_000)));
            assert!(!have.get(piece_of(&t, "b.bin", 69_999)));

            let nothing = verify(&t, tmp.path().join("content")).unwrap();
            assert_eq!(nothing.count_good(), 0);
        }
    }

    #[test]
    fn v2_without_piece_layers_checks_whole_files() {
        let tmp = tempfile::tempdir().unwrap();
        let t = setup(tmp.path(), Version::V2);
        let info = Info::from_bytes(t.info.raw()).unwrap();
        assert!(info.piece_layers.is_empty());
        assert!(Verifier::new(&info).run(tmp.path()).unwrap().all_good());
        flip(&tmp.path().join("content/b.bin"), 100);
        let have = Verifier::new(&info).run(tmp.path()).unwrap();
        let b_pieces: Vec<usize> = (0..5).map(|k| piece_of(&t, "b.bin", k * 16384)).collect();
        let bad: Vec<usize> = have.bad_pieces().collect();
        assert_eq!(bad, b_pieces);
    }

    #[cfg(unix)]
    #[test]
    fn never_reads_outside_the_save_path() {
        let tmp = tempfile::tempdir().unwrap();
        let save = tmp.path().join("save");
        let t = setup(&save, Version::V1);
        // Move a file out and link to it: the link leads outside, so it counts as missing.
        let outside = tmp.path().join("a-outside");
        std::fs::rename(save.join("content/a"), &outside).unwrap();
        std::os::unix::fs::symlink(&outside, save.join("content/a")).unwrap();
        let have = verify(&t, &save).unwrap();
        assert!(!have.get(0));
        // A link that stays inside is fine.
        std::fs::remove_file(save.join("content/a")).unwrap();
        std::fs::rename(&outside, save.join("a-inside")).unwrap();
        std::os::unix::fs::symlink(save.join("a-inside"), save.join("content/a")).unwrap();
        assert!(verify(&t, &save).unwrap().all_good());
    }

    #[test]
    fn bitfield_wire_form() {
        let b = PieceBitfield::from_bools(vec![
            true, false, true, true, false, false, false, false, true,
        ]);
        assert_eq!(b.to_bytes(), vec![0b1011_0000, 0b1000_0000]);
        assert_eq!(b.count_good(), 4);
        assert!(!b.get(100));
        assert_eq!(format!("{b:?}"), "PieceBitfield(4/9 good: 101100001)");
    }
}
