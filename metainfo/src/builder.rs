//! Creating .torrent files: [`TorrentBuilder`].

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bencode::{Dict, List, Value};
use sha1::{Digest, Sha1};
use sha2::Sha256;

use crate::hash::{InfoHash, InfoHashV1, InfoHashV2};
use crate::hasher::{self, Mode, Plan, PlanFile};
use crate::limits::{Limit, Limits};
use crate::merkle::{self, BLOCK_SIZE, Hash256};

/// Which kind of torrent to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Version {
    /// BEP 3: SHA-1 piece hashes over the concatenated files, no pad files (like mktorrent).
    V1,
    /// BEP 52: a per-file merkle tree (`file tree`, `piece layers`), no v1 keys.
    V2,
    /// Both: the v2 keys plus v1 `pieces`/`files`, with BEP 47 pad files after every file
    /// whose length is not a multiple of the piece length, so both views see the same
    /// pieces (as libtorrent 2 makes them: pad path `.pad/<size>`, `attr` `p`).
    #[default]
    Hybrid,
}

/// Smallest piece length the builder uses (BEP 52's minimum): 16 KiB.
pub const MIN_PIECE_LENGTH: u64 = BLOCK_SIZE;
/// Largest piece length chosen automatically: 16 MiB.
pub const MAX_AUTO_PIECE_LENGTH: u64 = 16 * 1024 * 1024;
/// The automatic piece length is the smallest power of two giving at most this many pieces.
pub const AUTO_MAX_PIECES: u64 = 2000;

/// The piece length [`TorrentBuilder`] picks for `total` bytes when none is set: the
/// smallest power of two between 16 KiB and 16 MiB that gives at most 2000 pieces (so
/// 1000–2000 pieces, unless clamped).
pub fn auto_piece_length(total: u64) -> u64 {
    let mut pl = MIN_PIECE_LENGTH;
    while pl < MAX_AUTO_PIECE_LENGTH && total.div_ceil(pl) > AUTO_MAX_PIECES {
        pl *= 2;
    }
    pl
}

/// Why a torrent could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Reading the content failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The content has no bytes at all (no files, or only empty ones).
    #[error("nothing to share: {} holds no data", path.display())]
    Empty {
        /// The path given to the builder.
        path: PathBuf,
    },
    /// The piece length set is not a power of two of at least 16 KiB.
    #[error("piece length {0} is not a power of two >= 16384")]
    PieceLength(u64),
    /// A file or directory name is not UTF-8 (torrent paths are UTF-8).
    #[error("name is not UTF-8: {}", path.display())]
    NonUtf8Name {
        /// The offending path.
        path: PathBuf,
    },
    /// Neither a regular file nor a directory (a socket, FIFO, device, or a dangling
    /// symlink); the builder does not skip such entries silently.
    #[error("not a regular file or directory: {}", path.display())]
    UnsupportedFileType {
        /// The offending path.
        path: PathBuf,
    },
    /// A directory symlink leads back to one of its own ancestors.
    #[error("symlink cycle at {}", path.display())]
    SymlinkCycle {
        /// The symlink.
        path: PathBuf,
    },
    /// The torrent would go over one of the [`Limits`] set with
    /// [`TorrentBuilder::limits`] (by default those every parse applies, so a torrent
    /// this builder makes can always be read back). Checked before anything is hashed.
    #[error("the torrent would have a {limit} of {value}, over the limit of {max}")]
    OverLimit {
        /// Which limit.
        limit: Limit,
        /// What the torrent would have.
        value: u64,
        /// The limit.
        max: u64,
    },
}

type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Builds a .torrent for a file or a directory: walks it, hashes it in parallel, and
/// writes canonical bencode.
///
/// - Files are ordered by path, compared component by component as bytes (the order of a
///   v2 `file tree`), recursively. Nothing is skipped: hidden files are included, and
///   symlinks are followed (a symlinked file is shared under the link's name, a symlinked
///   directory is walked; a cycle is an error). Entries that are neither files nor
///   directories are errors.
/// - Hashing runs on [`std::thread::available_parallelism`] threads (see
///   [`threads`](Self::threads)), each taking batches of consecutive pieces and reading
///   them with positioned reads into a reused 256 KiB buffer: files are streamed, never
///   read whole. For a hybrid torrent every byte is read once for both SHA-1 and SHA-256.
///
/// ```
/// use rivulet_metainfo::{TorrentBuilder, Version};
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("hello.txt"), b"hello world")?;
/// let made = TorrentBuilder::new(dir.path().join("hello.txt"))
///     .announce("http://tracker.example/announce")
///     .version(Version::V1)
///     .creation_date(None)
///     .build()?;
/// assert!(made.info_hash().v2().is_none());
/// assert!(made.bytes().starts_with(b"d8:announce"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TorrentBuilder {
    path: PathBuf,
    name: Option<String>,
    tiers: Vec<Vec<String>>,
    web_seeds: Vec<String>,
    piece_length: Option<u64>,
    private: bool,
    comment: Option<String>,
    created_by: Option<String>,
    creation_date: Option<i64>,
    version: Version,
    threads: Option<usize>,
    progress: Option<Progress>,
    limits: Limits,
}

impl fmt::Debug for TorrentBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TorrentBuilder")
            .field("path", &self.path)
            .field("name", &self.name)
            .field("tiers", &self.tiers)
            .field("web_seeds", &self.web_seeds)
            .field("piece_length", &self.piece_length)
            .field("private", &self.private)
            .field("comment", &self.comment)
            .field("created_by", &self.created_by)
            .field("creation_date", &self.creation_date)
            .field("version", &self.version)
            .field("threads", &self.threads)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A torrent made by [`TorrentBuilder::build`].
#[derive(Clone, Debug)]
pub struct CreatedTorrent {
    bytes: Vec<u8>,
    info_hash: InfoHash,
    piece_length: u64,
    num_pieces: usize,
    total_length: u64,
}

impl CreatedTorrent {
    /// The .torrent file's bytes (canonical bencode).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// The .torrent file's bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
    /// The info hash(es): v1, v2 or both, as the version asked.
    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }
    /// The piece length used.
    pub fn piece_length(&self) -> u64 {
        self.piece_length
    }
    /// The number of pieces (v1 pieces for v1 and hybrid, the sum over files for v2).
    pub fn num_pieces(&self) -> usize {
        self.num_pieces
    }
    /// The content's size in bytes, pad files excluded.
    pub fn total_length(&self) -> u64 {
        self.total_length
    }
}

/// A file found by the walk.
struct Found {
    /// Path components below the torrent's root (empty for a single-file torrent).
    components: Vec<String>,
    disk: PathBuf,
    length: u64,
}

impl TorrentBuilder {
    /// A builder for the file or directory at `path`, with defaults: hybrid, automatic
    /// piece length, `created by` `"rivulet/<version>"`, creation date now, not private.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .ok();
        TorrentBuilder {
            path: path.into(),
            name: None,
            tiers: Vec::new(),
            web_seeds: Vec::new(),
            piece_length: None,
            private: false,
            comment: None,
            created_by: Some(concat!("rivulet/", env!("CARGO_PKG_VERSION")).to_owned()),
            creation_date: now,
            version: Version::default(),
            threads: None,
            progress: None,
            limits: Limits::default(),
        }
    }

    /// The limits the torrent must stay within (default [`Limits::default`], what
    /// every parse checks): over one, [`build`](Self::build) fails with
    /// [`BuildError::OverLimit`] before hashing anything.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Adds a tracker in a tier of its own (BEP 12 `announce-list`; the first tracker is
    /// also written as `announce`).
    pub fn announce(mut self, url: impl Into<String>) -> Self {
        self.tiers.push(vec![url.into()]);
        self
    }

    /// Adds a tier of trackers tried in any order (BEP 12). Empty tiers are dropped.
    pub fn announce_tier<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let tier: Vec<String> = urls.into_iter().map(Into::into).collect();
        if !tier.is_empty() {
            self.tiers.push(tier);
        }
        self
    }

    /// Adds a web seed (BEP 19 `url-list`).
    pub fn web_seed(mut self, url: impl Into<String>) -> Self {
        self.web_seeds.push(url.into());
        self
    }

    /// Sets the piece length: a power of two of at least 16 KiB (checked by
    /// [`build`](Self::build)). Without it, [`auto_piece_length`] decides.
    pub fn piece_length(mut self, bytes: u64) -> Self {
        self.piece_length = Some(bytes);
        self
    }

    /// Marks the torrent private (BEP 27): peers only from its trackers.
    pub fn private(mut self, private: bool) -> Self {
        self.private = private;
        self
    }

    /// Sets the `comment`.
    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }

    /// Sets `created by`; `None` leaves it out. Default: `"rivulet/<crate version>"`.
    pub fn created_by(mut self, created_by: Option<String>) -> Self {
        self.created_by = created_by;
        self
    }

    /// Sets `creation date` (seconds since the Unix epoch); `None` leaves it out, which
    /// (with a fixed `created by`) makes the output depend on the content and options only.
    pub fn creation_date(mut self, date: Option<i64>) -> Self {
        self.creation_date = date;
        self
    }

    /// Which kind of torrent to make. Default: [`Version::Hybrid`].
    pub fn version(mut self, version: Version) -> Self {
        self.version = version;
        self
    }

    /// Overrides the torrent's `name` (default: the file or directory name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The number of hashing threads. Default: [`std::thread::available_parallelism`].
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads.max(1));
        self
    }

    /// Called from the hashing threads as data is hashed, with `(bytes_done, total)`.
    pub fn on_progress(mut self, f: impl Fn(u64, u64) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// What the torrent would claim against [`limits`](Self::limits): pieces, files
    /// (padding included, as the v1 `files` list counts them), path depth (the name not
    /// counted) and piece length.
    fn check_limits(
        &self,
        files: &[Found],
        plan_files: &[PlanFile],
        pl: u64,
        mode: Mode,
    ) -> Result<(), BuildError> {
        let over = |limit, value: u64, max: u64| {
            if value > max {
                Err(BuildError::OverLimit { limit, value, max })
            } else {
                Ok(())
            }
        };
        let l = &self.limits;
        over(Limit::PieceLength, pl, l.max_piece_length)?;
        over(Limit::Files, plan_files.len() as u64, l.max_files as u64)?;
        let depth = files.iter().map(|f| f.components.len()).max().unwrap_or(0);
        over(Limit::PathDepth, depth as u64, l.max_path_depth as u64)?;
        let pieces: u64 = match mode {
            Mode::Stream => plan_files
                .iter()
                .map(|f| f.length)
                .sum::<u64>()
                .div_ceil(pl),
            // Each file starts a piece; padding files only fill the last one out.
            Mode::Aligned => plan_files
                .iter()
                .filter(|f| !f.pad)
                .map(|f| f.length.div_ceil(pl))
                .sum(),
        };
        over(Limit::Pieces, pieces, u64::from(l.max_pieces))
    }

    /// Walks the content, hashes it and writes the torrent.
    pub fn build(&self) -> Result<CreatedTorrent, BuildError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BuildError::Io { path, source }
        };
        let meta = std::fs::metadata(&self.path).map_err(io_err(&self.path))?;
        let name = match &self.name {
            Some(n) => n.clone(),
            None => utf8_name(&self.path, self.path.file_name())?,
        };
        let single = meta.is_file();
        let mut files = Vec::new();
        if single {
            files.push(Found {
                components: Vec::new(),
                disk: self.path.clone(),
                length: meta.len(),
            });
        } else if meta.is_dir() {
            let mut ancestors = vec![self.path.canonicalize().map_err(io_err(&self.path))?];
            walk(&self.path, &mut Vec::new(), &mut ancestors, &mut files)?;
        } else {
            return Err(BuildError::UnsupportedFileType {
                path: self.path.clone(),
            });
        }
        let total: u64 = files.iter().map(|f| f.length).sum();
        if total == 0 {
            return Err(BuildError::Empty {
                path: self.path.clone(),
            });
        }
        let pl = match self.piece_length {
            Some(pl) if pl >= MIN_PIECE_LENGTH && pl.is_power_of_two() => pl,
            Some(pl) => return Err(BuildError::PieceLength(pl)),
            None => auto_piece_length(total),
        };

        // The files as the v1 view lists them (with pad files for hybrid).
        let hybrid = self.version == Version::Hybrid;
        let mut plan_files = Vec::with_capacity(files.len() * if hybrid { 2 } else { 1 });
        let mut real_index = Vec::with_capacity(files.len());
        for f in &files {
            real_index.push(plan_files.len());
            plan_files.push(PlanFile {
                path: f.disk.clone(),
                length: f.length,
                pad: false,
            });
            let rem = f.length % pl;
            if hybrid && !single && rem != 0 {
                plan_files.push(PlanFile {
                    path: PathBuf::new(),
                    length: pl - rem,
                    pad: true,
                });
            }
        }
        let mode = if self.version == Version::V1 {
            Mode::Stream
        } else {
            Mode::Aligned
        };
        self.check_limits(&files, &plan_files, pl, mode)?;
        let threads = self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let progress = self.progress.clone();
        let plan = Plan {
            files: &plan_files,
            piece_length: pl,
            mode,
            want_v1: self.version != Version::V2,
            want_v2: self.version != Version::V1,
            threads,
            progress: progress.as_deref().map(|p| p as &(dyn Fn(u64, u64) + Sync)),
            fail_fast: true,
            confine_to: None,
        };
        let map = hasher::PieceMap::new(&plan_files, pl, mode);
        let pieces = hasher::hash_all(&plan, &map).map_err(|e| BuildError::Io {
            path: e.path,
            source: e.source,
        })?;

        // v2: per-file roots and piece layers.
        struct V2File {
            root: Option<Hash256>,
            layer: Vec<u8>,
        }
        let v2_files: Vec<V2File> = if plan.want_v2 {
            files
                .iter()
                .zip(&real_index)
                .map(|(f, &pi)| {
                    if f.length == 0 {
                        return V2File {
                            root: None,
                            layer: Vec::new(),
                        };
                    }
                    let first = map.first_piece(pi);
                    let n = f.length.div_ceil(pl) as usize;
                    let layer: Vec<Hash256> =
                        pieces[first..first + n].iter().map(|p| p.v2).collect();
                    V2File {
                        root: Some(merkle::root_from_piece_layer(&layer, pl)),
                        layer: if f.length > pl {
                            layer.concat()
                        } else {
                            Vec::new()
                        },
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        let v1_pieces: Vec<u8> = if plan.want_v1 {
            pieces.iter().flat_map(|p| p.sha1).collect()
        } else {
            Vec::new()
        };

        // The info dictionary.
        let pad_names: Vec<(String, String)> = plan_files
            .iter()
            .map(|f| (".pad".to_owned(), f.length.to_string()))
            .collect();
        let mut info = Dict::new();
        let pl_i = pl as i64;
        if plan.want_v2 {
            let tree = if single {
                let mut leaf = Dict::new();
                leaf.insert(
                    b"",
                    Value::Dict(v2_leaf(files[0].length, &v2_files[0].root)),
                );
                let mut t = Dict::new();
                t.insert(name.as_bytes(), Value::Dict(leaf));
                t
            } else {
                let entries: Vec<(&[String], u64, &Option<Hash256>)> = files
                    .iter()
                    .zip(&v2_files)
                    .map(|(f, v)| (f.components.as_slice(), f.length, &v.root))
                    .collect();
                file_tree(&entries, 0)
            };
            info.insert(b"file tree", Value::Dict(tree));
        }
        if plan.want_v1 {
            if single {
                info.insert(b"length", Value::Int(files[0].length as i64));
            } else {
                let mut list = List::new();
                let mut real = files.iter();
                for (pf, pad) in plan_files.iter().zip(&pad_names) {
                    let mut d = Dict::new();
                    let mut path = List::new();
                    if pf.pad {
                        d.insert(b"attr", Value::Bytes(b"p"));
                        path.push(Value::Bytes(pad.0.as_bytes()));
                        path.push(Value::Bytes(pad.1.as_bytes()));
                    } else if let Some(f) = real.next() {
                        for c in &f.components {
                            path.push(Value::Bytes(c.as_bytes()));
                        }
                    }
                    d.insert(b"length", Value::Int(pf.length as i64));
                    d.insert(b"path", Value::List(path));
                    list.push(Value::Dict(d));
                }
                info.insert(b"files", Value::List(list));
            }
        }
        if plan.want_v2 {
            info.insert(b"meta version", Value::Int(2));
        }
        info.insert(b"name", Value::Bytes(name.as_bytes()));
        info.insert(b"piece length", Value::Int(pl_i));
        if plan.want_v1 {
            info.insert(b"pieces", Value::Bytes(&v1_pieces));
        }
        if self.private {
            info.insert(b"private", Value::Int(1));
        }
        let info = Value::Dict(info);
        let info_bytes = info.to_bytes();
        let info_hash = match self.version {
            Version::V1 => InfoHash::V1(InfoHashV1(Sha1::digest(&info_bytes).into())),
            Version::V2 => InfoHash::V2(InfoHashV2(Sha256::digest(&info_bytes).into())),
            Version::Hybrid => InfoHash::Hybrid(
                InfoHashV1(Sha1::digest(&info_bytes).into()),
                InfoHashV2(Sha256::digest(&info_bytes).into()),
            ),
        };

        // The top-level dictionary.
        let mut top = Dict::new();
        let all_trackers: Vec<&String> = self.tiers.iter().flatten().collect();
        if let Some(first) = all_trackers.first() {
            top.insert(b"announce", Value::Bytes(first.as_bytes()));
        }
        if all_trackers.len() > 1 {
            let mut tiers = List::new();
            for tier in &self.tiers {
                tiers.push(Value::List(
                    tier.iter()
                        .map(|u| Value::Bytes(u.as_bytes()))
                        .collect::<Vec<_>>()
                        .into(),
                ));
            }
            top.insert(b"announce-list", Value::List(tiers));
        }
        if let Some(c) = &self.comment {
            top.insert(b"comment", Value::Bytes(c.as_bytes()));
        }
        if let Some(c) = &self.created_by {
            top.insert(b"created by", Value::Bytes(c.as_bytes()));
        }
        if let Some(d) = self.creation_date {
            top.insert(b"creation date", Value::Int(d));
        }
        top.insert(b"info", info);
        if plan.want_v2 {
            let mut layers = Dict::new();
            for v in &v2_files {
                if let (Some(root), false) = (&v.root, v.layer.is_empty()) {
                    layers.insert(root.as_slice(), Value::Bytes(&v.layer));
                }
            }
            top.insert(b"piece layers", Value::Dict(layers));
        }
        if !self.web_seeds.is_empty() {
            let list: Vec<Value<'_>> = self
                .web_seeds
                .iter()
                .map(|u| Value::Bytes(u.as_bytes()))
                .collect();
            top.insert(b"url-list", Value::List(list.into()));
        }
        Ok(CreatedTorrent {
            bytes: Value::Dict(top).to_bytes(),
            info_hash,
            piece_length: pl,
            num_pieces: pieces.len(),
            total_length: total,
        })
    }
}

fn v2_leaf(length: u64, root: &Option<Hash256>) -> Dict<'_> {
    let mut d = Dict::new();
    d.insert(b"length", Value::Int(length as i64));
    if let Some(r) = root {
        d.insert(b"pieces root", Value::Bytes(r.as_slice()));
    }
    d
}

/// The v2 `file tree` for files sorted by components, from component `depth` on.
fn file_tree<'a>(files: &[(&'a [String], u64, &'a Option<Hash256>)], depth: usize) -> Dict<'a> {
    let mut d = Dict::new();
    let mut i = 0;
    while i < files.len() {
        let key = &files[i].0[depth];
        let mut j = i + 1;
        while j < files.len() && files[j].0[depth] == *key {
            j += 1;
        }
        let (comps, length, root) = files[i];
        let node = if comps.len() == depth + 1 {
            // A file (a directory cannot share its name, so j == i + 1).
            let mut leaf = Dict::new();
            leaf.insert(b"", Value::Dict(v2_leaf(length, root)));
            leaf
        } else {
            file_tree(&files[i..j], depth + 1)
        };
        d.insert(key.as_bytes(), Value::Dict(node));
        i = j;
    }
    d
}

fn utf8_name(path: &Path, name: Option<&OsStr>) -> Result<String, BuildError> {
    let name = match name {
        Some(n) => n,
        None => {
            // `.` or `..` or `/`: use the canonical directory's name.
            let canon = path.canonicalize().map_err(|source| BuildError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            return utf8_name(
                &canon,
                Some(canon.file_name().unwrap_or(OsStr::new("root"))),
            );
        }
    };
    name.to_str()
        .map(str::to_owned)
        .ok_or_else(|| BuildError::NonUtf8Name {
            path: path.to_path_buf(),
        })
}

/// Collects the files under `dir` in component-wise byte order.
fn walk(
    dir: &Path,
    prefix: &mut Vec<String>,
    ancestors: &mut Vec<PathBuf>,
    out: &mut Vec<Found>,
) -> Result<(), BuildError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { path, source }
    };
    let mut entries = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let e = e.map_err(io_err(dir))?;
        let path = e.path();
        let name = utf8_name(&path, Some(&e.file_name()))?;
        entries.push((name, path));
    }
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    for (name, path) in entries {
        // `metadata` follows symlinks.
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BuildError::UnsupportedFileType { path });
            }
            Err(e) => return Err(BuildError::Io { path, source: e }),
        };
        prefix.push(name);
        if meta.is_file() {
            out.push(Found {
                components: prefix.clone(),
                disk: path,
                length: meta.len(),
            });
        } else if meta.is_dir() {
            let canon = path.canonicalize().map_err(io_err(&path))?;
            if ancestors.contains(&canon) {
                return Err(BuildError::SymlinkCycle { path });
            }
            ancestors.push(canon);
            walk(&path, prefix, ancestors, out)?;
            ancestors.pop();
        } else {
            return Err(BuildError::UnsupportedFileType { path });
        }
        prefix.pop();
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::merkle::file_hashes;
    use crate::torrent::Torrent;

    /// Deterministic pseudo-random bytes (xorshift) for test content.
    pub(crate) fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    pub(crate) const FILES: &[(&str, usize)] = &[
        ("a", 100),
        ("a-b", 7),
        ("b.bin", 70_000),
        ("empty", 0),
        ("sub/deeper/y.dat", 16_384),
        ("sub/x", 5),
        ("zz", 33_000),
    ];

    fn content(root: &Path) -> PathBuf {
        let dir = root.join("content");
        for (i, (name, len)) in FILES.iter().enumerate() {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, noise(i as u64 + 1, *len)).unwrap();
        }
        dir
    }

    fn quiet(path: &Path) -> TorrentBuilder {
        TorrentBuilder::new(path)
            .created_by(None)
            .creation_date(None)
    }

    /// Each limit is checked before hashing, against what the built torrent has: one
    /// under the exact count fails naming it, the exact count passes.
    #[test]
    fn a_torrent_over_a_limit_is_refused_before_hashing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = content(tmp.path());
        for version in [Version::V1, Version::V2, Version::Hybrid] {
            let made = quiet(&dir)
                .version(version)
                .piece_length(16384)
                .build()
                .unwrap();
            let t = Torrent::from_bytes(made.bytes()).unwrap();
            let pieces = made.num_pieces() as u64;
            let files = t.info.files.len() as u64;
            type Set = fn(&mut Limits, u64);
            let cases: [(Limit, u64, Set); 4] = [
                (Limit::Pieces, pieces, |l, v| l.max_pieces = v as u32),
                (Limit::Files, files, |l, v| l.max_files = v as usize),
                // sub/deeper/y.dat, the name not counted.
                (Limit::PathDepth, 3, |l, v| l.max_path_depth = v as usize),
                (Limit::PieceLength, 16384, |l, v| l.max_piece_length = v),
            ];
            for (limit, exact, set) in cases {
                let mut at = Limits::default();
                set(&mut at, exact);
                let mut under = Limits::default();
                set(&mut under, exact - 1);
                let hashed = Arc::new(std::sync::atomic::AtomicU64::new(0));
                let h = hashed.clone();
                let err = quiet(&dir)
                    .version(version)
                    .piece_length(16384)
                    .limits(under)
                    .on_progress(move |done, _| {
                        h.store(done, std::sync::atomic::Ordering::Relaxed);
                    })
                    .build()
                    .unwrap_err();
                assert!(
                    matches!(err, BuildError::OverLimit { limit: l, value, max }
                        if l == limit && value == exact && max == exact - 1),
                    "{version:?} {limit}: {err}"
                );
                assert_eq!(hashed.load(std::sync::atomic::Ordering::Relaxed), 0);
                quiet(&dir)
                    .version(version)
                    .piece_length(16384)
                    .limits(at)
                    .build()
                    .unwrap();
            }
        }
    }

    #[test]
    fn round_trips_through_the_parser() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = content(tmp.path());
        let single = tmp.path().join("one.bin");
        std::fs::write(&single, noise(7, 50_000)).unwrap();
        for version in [Version::V1, Version::V2, Version::Hybrid] {
            for pl in [16384u64, 32768] {
                // Multi-file.
                let made = quiet(&dir)
                    .version(version)
                    .piece_length(pl)
                    .build()
                    .unwrap();
                let t = Torrent::from_bytes(made.bytes()).unwrap();
                assert_eq!(t.info_hash, made.info_hash(), "{version:?}");
                assert_eq!(t.info.name, "content");
                assert_eq!(t.info.piece_length, pl);
                assert_eq!(t.info.piece_count() as usize, made.num_pieces());
                assert_eq!(t.info.content_length(), made.total_length());
                let real: Vec<_> = t.info.files.iter().filter(|f| !f.is_padding()).collect();
                assert_eq!(real.len(), FILES.len());
                for (f, (name, len)) in real.iter().zip(FILES) {
                    assert_eq!(f.display_path(), *name);
                    assert_eq!(f.length, *len as u64);
                    if version != Version::V1 {
                        let data = std::fs::read(dir.join(name)).unwrap();
                        let want = file_hashes(&data, pl);
                        assert_eq!(f.pieces_root, want.root, "{name}");
                        if !want.piece_layer.is_empty() {
                            let root = want.root.unwrap();
                            assert_eq!(t.info.piece_layer(&root).unwrap(), &want.piece_layer[..]);
                        }
                    }
                }
                let pads = t.info.files.len() - real.len();
                assert_eq!(pads > 0, version == Version::Hybrid, "{version:?}");
                // Single file.
                let made = quiet(&single)
                    .version(version)
                    .piece_length(pl)
                    .build()
                    .unwrap();
                let t = Torrent::from_bytes(made.bytes()).unwrap();
                assert_eq!(t.info_hash, made.info_hash());
                assert!(t.info.single_file);
                assert_eq!(t.info.name, "one.bin");
                assert_eq!(t.info.files.len(), 1);
                assert_eq!(t.info.files[0].length, 50_000);
            }
        }
    }

    #[test]
    fn v1_pieces_are_sha1_of_the_concatenation() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = content(tmp.path());
        let all: Vec<u8> = FILES
            .iter()
            .flat_map(|(n, _)| std::fs::read(dir.join(n)).unwrap())
            .collect();
        let made = quiet(&dir)
            .version(Version::V1)
            .piece_length(16384)
            .build()
            .unwrap();
        let t = Torrent::from_bytes(made.bytes()).unwrap();
        let want: Vec<[u8; 20]> = all.chunks(16384).map(|c| Sha1::digest(c).into()).collect();
        assert_eq!(t.info.pieces, want);
    }

    #[test]
    fn output_is_deterministic() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = content(tmp.path());
        for version in [Version::V1, Version::V2, Version::Hybrid] {
            let a = quiet(&dir).version(version).threads(1).build().unwrap();
            let b = quiet(&dir).version(version).threads(4).build().unwrap();
            let c = quiet(&dir).version(version).build().unwrap();
            assert_eq!(a.bytes(), b.bytes());
            assert_eq!(a.bytes(), c.bytes());
        }
    }

    #[test]
    fn options_are_written() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = content(tmp.path());
        let made = TorrentBuilder::new(&dir)
            .announce("http://a/announce")
            .announce_tier(["udp://b:1", "udp://c:2"])
            .web_seed("http://seed/")
            .private(true)
            .comment("hi")
            .creation_date(Some(1_700_000_000))
            .name("renamed")
            .build()
            .unwrap();
        let t = Torrent::from_bytes(made.bytes()).unwrap();
        assert_eq!(t.announce.as_deref(), Some("http://a/announce"));
        assert_eq!(
            t.announce_list,
            vec![
                vec!["http://a/announce".to_owned()],
                vec!["udp://b:1".to_owned(), "udp://c:2".to_owned()]
            ]
        );
        assert_eq!(t.web_seeds, vec!["http://seed/".to_owned()]);
        assert!(t.info.private);
        assert_eq!(t.comment.as_deref(), Some("hi"));
        assert_eq!(t.creation_date, Some(1_700_000_000));
        assert_eq!(
            t.created_by.as_deref(),
            Some(concat!("rivulet/", env!("CARGO_PKG_VERSION")))
        );
        assert_eq!(t.info.name, "renamed");
        assert!(matches!(made.info_hash(), InfoHash::Hybrid(..)));
    }

    #[test]
    fn auto_piece_length_aims_for_1000_to_2000_pieces() {
        assert_eq!(auto_piece_length(1), 16384);
        assert_eq!(auto_piece_length(2000 * 16384), 16384);
        assert_eq!(auto_piece_length(2000 * 16384 + 1), 32768);
        assert_eq!(auto_piece_length(1 << 30), 1 << 20);
        assert_eq!(auto_piece_length(1 << 50), MAX_AUTO_PIECE_LENGTH);
        for shift in 25..35 {
            let n = (1u64 << shift).div_ceil(auto_piece_length(1 << shift));
            assert!((1000..=2000).contains(&n), "{shift}: {n}");
        }
    }

    #[test]
    fn errors() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = content(tmp.path());
        assert!(matches!(
            TorrentBuilder::new(&dir).piece_length(30000).build(),
            Err(BuildError::PieceLength(30000))
        ));
        assert!(matches!(
            TorrentBuilder::new(&dir).piece_length(8192).build(),
            Err(BuildError::PieceLength(8192))
        ));
        assert!(matches!(
            TorrentBuilder::new(tmp.path().join("nope")).build(),
            Err(BuildError::Io { .. })
        ));
        let empty = tmp.path().join("empty-dir");
        std::fs::create_dir_all(empty.join("sub")).unwrap();
        std::fs::write(empty.join("sub/zero"), b"").unwrap();
        assert!(matches!(
            TorrentBuilder::new(&empty).build(),
            Err(BuildError::Empty { .. })
        ));
    }

    #[test]
    fn progress_reaches_total() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let tmp = tempfile::tempdir().unwrap();
        let dir = content(tmp.path());
        let total: u64 = FILES.iter().map(|f| f.1 as u64).sum();
        for version in [Version::V1, Version::V2, Version::Hybrid] {
            let last = Arc::new(AtomicU64::new(0));
            let l = last.clone();
            quiet(&dir)
                .version(version)
                .on_progress(move |done, all| {
                    assert_eq!(all, total);
                    l.fetch_max(done, Ordering::SeqCst);
                })
                .build()
                .unwrap();
            assert_eq!(last.load(Ordering::SeqCst), total, "{version:?}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_followed_and_cycles_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = content(tmp.path());
        let outside = tmp.path().join("outside.bin");
        std::fs::write(&outside, noise(50, 1000)).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();
        let made = quiet(&dir).version(Version::V1).build().unwrap();
        let t = Torrent::from_bytes(made.bytes()).unwrap();
        let link = t
            .info
            .files
            .iter()
            .find(|f| f.display_path() == "link")
            .unwrap();
        assert_eq!(link.length, 1000);
        std::os::unix::fs::symlink(&dir, dir.join("sub/loop")).unwrap();
        assert!(matches!(
            quiet(&dir).build(),
            Err(BuildError::SymlinkCycle { .. })
        ));
    }
}
