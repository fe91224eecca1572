//! Parsing .torrent files (BEP 3, 12, 19, 27, 47, 52) into [`Torrent`] and [`Info`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bencode::{Decoder, Dict, Value};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::error::MetainfoError;
use crate::hash::{InfoHash, InfoHashV1, InfoHashV2};
use crate::layout::{LayoutMode, PieceLayout};
use crate::limits::{Limit, Limits};
use crate::merkle::{BLOCK_SIZE, root_from_piece_layer};
use crate::path::{dedupe_paths, safe_relative_path, sanitize_component};

/// Which BitTorrent protocol versions a torrent supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetaVersion {
    /// v1 only (BEP 3): `pieces` and `length`/`files`.
    V1,
    /// v2 only (BEP 52): `meta version` 2 and `file tree`.
    V2,
    /// Both (BEP 52 hybrid): the v1 and v2 keys describe the same files.
    Hybrid,
}

/// BEP 47 file attributes (the `attr` string).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct FileAttr {
    /// `p`: a padding file; its bytes are zeros and are not stored.
    pub padding: bool,
    /// `x`: executable.
    pub executable: bool,
    /// `h`: hidden.
    pub hidden: bool,
    /// `l`: a symbolic link, whose target is in `symlink path`.
    pub symlink: bool,
}

impl FileAttr {
    /// Parses an `attr` string; unknown letters are ignored.
    pub fn parse(s: &[u8]) -> FileAttr {
        let mut a = FileAttr::default();
        for c in s {
            match c {
                b'p' => a.padding = true,
                b'x' => a.executable = true,
                b'h' => a.hidden = true,
                b'l' => a.symlink = true,
                _ => {}
            }
        }
        a
    }
}

/// One file of a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileEntry {
    /// The path components as the torrent gives them (lossy UTF-8), relative to the
    /// torrent's directory; for a single-file torrent, just the file name.
    pub path: Vec<String>,
    /// The file length in bytes.
    pub length: u64,
    /// The offset of the file in the torrent's byte stream (see [`PieceLayout`]: the v1
    /// concatenation including padding files, or the piece-aligned v2 stream).
    pub offset: u64,
    /// BEP 47 attributes.
    pub attr: FileAttr,
    /// The v2 merkle root of the file (`pieces root`); `None` for v1 files and empty files.
    pub pieces_root: Option<[u8; 32]>,
    /// The BEP 47 `symlink path` components, for a symbolic link.
    pub symlink_path: Option<Vec<String>>,
    safe_path: PathBuf,
}

impl FileEntry {
    /// The path to store the file at, relative to the download directory: for a
    /// multi-file torrent `<name>/<path...>`, for a single-file torrent the file name,
    /// rewritten by the [safe path rule](crate#safe-paths) and made unique among the torrent's
    /// files. It has only `Normal` components.
    pub fn safe_path(&self) -> &Path {
        &self.safe_path
    }
    /// Whether this is a padding file (BEP 47 `p` attribute, or a BitComet-style
    /// `_____padding_file_` name), whose bytes are zeros and need not be stored.
    pub fn is_padding(&self) -> bool {
        self.attr.padding
    }
    /// The path components joined with `/`, for display.
    pub fn display_path(&self) -> String {
        self.path.join("/")
    }
}

/// The `info` dictionary: the part of a torrent its info hash covers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Info {
    /// The suggested name (lossy UTF-8): the file name of a single-file torrent, the
    /// directory name of a multi-file one.
    pub name: String,
    /// Bytes per piece.
    pub piece_length: u64,
    /// The v1 SHA-1 piece hashes (empty for a v2-only torrent).
    pub pieces: Vec<[u8; 20]>,
    /// BEP 27 `private` flag.
    pub private: bool,
    /// The files, in torrent order. For v1 and hybrid torrents this is the v1 list
    /// (padding files included, with the v2 `pieces root` attached for hybrids); for a
    /// v2-only torrent it is the flattened `file tree` in key order.
    pub files: Vec<FileEntry>,
    /// Whether the torrent is v1, v2 or hybrid.
    pub version: MetaVersion,
    /// The `meta version` key as given.
    pub meta_version: Option<i64>,
    /// Whether the torrent describes a single file (no directory).
    pub single_file: bool,
    /// v2 piece layers: `pieces root` to the SHA-256 hashes of the file's pieces, for
    /// every file larger than one piece (checked against the root). Filled by
    /// [`Torrent::from_bytes`]; empty after [`Info::from_bytes`], which sees only the info
    /// dictionary.
    pub piece_layers: BTreeMap<[u8; 32], Vec<[u8; 32]>>,
    /// Keys of the info dictionary this crate does not interpret (e.g. `source`), with
    /// their bencoded values, in input order.
    pub extra: Vec<(Vec<u8>, Vec<u8>)>,
    layout: PieceLayout,
    info_hash: InfoHash,
    raw: Vec<u8>,
}

impl Info {
    /// Parses a bare bencoded info dictionary (as fetched with ut_metadata, BEP 9).
    ///
    /// The info hash is computed over exactly these bytes. Piece layers live outside the
    /// info dictionary, so [`Info::piece_layers`] stays empty. The default [`Limits`]
    /// apply.
    pub fn from_bytes(data: &[u8]) -> Result<Info, MetainfoError> {
        Info::from_bytes_with_limits(data, &Limits::default())
    }
    /// Like [`Info::from_bytes`], within `limits`.
    pub fn from_bytes_with_limits(data: &[u8], limits: &Limits) -> Result<Info, MetainfoError> {
        let (v, used) = Decoder::new().lenient().decode_prefix(data)?;
        let d = v
            .as_dict()
            .ok_or_else(|| MetainfoError::wrong_type("info", "dictionary", &v))?;
        parse_info(d, &data[..used], limits)
    }
    /// The exact bytes of the info dictionary as received.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
    /// The info hash(es): SHA-1 (v1, hybrid) and/or SHA-256 (v2, hybrid) of [`Info::raw`].
    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }
    /// How pieces map onto files.
    pub fn layout(&self) -> &PieceLayout {
        &self.layout
    }
    /// The layout mode: [`LayoutMode::V2`] for v2-only torrents, else [`LayoutMode::V1`].
    pub fn layout_mode(&self) -> LayoutMode {
        self.layout.mode()
    }
    /// The number of pieces.
    pub fn piece_count(&self) -> u32 {
        self.layout.piece_count()
    }
    /// The sum of the file lengths, padding files included.
    pub fn total_length(&self) -> u64 {
        self.files.iter().map(|f| f.length).sum()
    }
    /// The sum of the lengths of the files that are not padding.
    pub fn content_length(&self) -> u64 {
        self.files
            .iter()
            .filter(|f| !f.is_padding())
            .map(|f| f.length)
            .sum()
    }
    /// The piece layer of the file with this `pieces root`, if known.
    pub fn piece_layer(&self, pieces_root: &[u8; 32]) -> Option<&[[u8; 32]]> {
        self.piece_layers.get(pieces_root).map(Vec::as_slice)
    }
}

/// A parsed .torrent file.
///
/// The original bytes are kept: [`Torrent::to_bytes`] returns them unchanged (so unknown
/// keys, key order and any non-canonical encoding survive a round trip), and the info
/// hash is always over the info dictionary's bytes as they appear in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Torrent {
    /// The `announce` URL.
    pub announce: Option<String>,
    /// The BEP 12 `announce-list` tiers as given (empty tiers and non-string entries
    /// dropped). See [`Torrent::announce_tiers`].
    pub announce_list: Vec<Vec<String>>,
    /// BEP 19 web seeds (`url-list`, a string or a list).
    pub web_seeds: Vec<String>,
    /// BEP 5 DHT bootstrap `nodes` (host, port).
    pub nodes: Vec<(String, u16)>,
    /// `comment`.
    pub comment: Option<String>,
    /// `created by`.
    pub created_by: Option<String>,
    /// `creation date` (seconds since the Unix epoch).
    pub creation_date: Option<i64>,
    /// `encoding` (of the strings; modern torrents use UTF-8).
    pub encoding: Option<String>,
    /// The info dictionary.
    pub info: Info,
    /// The info hash(es) (same as `info.info_hash()`).
    pub info_hash: InfoHash,
    /// Top-level keys this crate does not interpret, with their bencoded values.
    pub extra: Vec<(Vec<u8>, Vec<u8>)>,
    raw: Vec<u8>,
}

impl Torrent {
    /// Parses a .torrent file's contents.
    ///
    /// The outer structure is decoded leniently (unsorted keys and the like, which real
    /// torrents have); bytes after the top-level dictionary are ignored and not kept.
    /// Malformed metadata fields (`comment`, `announce-list` entries, ...) of the wrong
    /// type are ignored; the info dictionary and piece layers are validated strictly,
    /// within the default [`Limits`].
    pub fn from_bytes(data: &[u8]) -> Result<Torrent, MetainfoError> {
        Torrent::from_bytes_with_limits(data, &Limits::default())
    }

    /// Like [`Torrent::from_bytes`], within `limits`.
    pub fn from_bytes_with_limits(data: &[u8], limits: &Limits) -> Result<Torrent, MetainfoError> {
        let (v, used) = Decoder::new().lenient().decode_prefix(data)?;
        let top = v
            .as_dict()
            .ok_or_else(|| MetainfoError::wrong_type("(top level)", "dictionary", &v))?;
        let info_v = top
            .get(b"info")
            .ok_or_else(|| MetainfoError::missing("info"))?;
        let info_d = info_v
            .as_dict()
            .ok_or_else(|| MetainfoError::wrong_type("info", "dictionary", info_v))?;
        let info_raw = info_d
            .raw()
            .ok_or_else(|| MetainfoError::invalid("info", "no raw bytes"))?;
        let mut info = parse_info(info_d, info_raw, limits)?;
        if info.version != MetaVersion::V1 {
            parse_piece_layers(top.get(b"piece layers"), &mut info)?;
        }

        let s = |k: &[u8]| top.get(k).and_then(|v| v.as_bytes()).map(lossy);
        let mut announce_list = Vec::new();
        if let Some(Value::List(tiers)) = top.get(b"announce-list") {
            for tier in tiers {
                if let Value::List(urls) = tier {
                    let t: Vec<String> = urls
                        .iter()
                        .filter_map(|u| u.as_bytes().map(lossy))
                        .collect();
                    if !t.is_empty() {
                        announce_list.push(t);
                    }
                }
            }
        }
        let web_seeds = match top.get(b"url-list") {
            Some(Value::Bytes(b)) if !b.is_empty() => vec![lossy(b)],
            Some(Value::List(l)) => l
                .iter()
                .filter_map(|u| u.as_bytes())
                .filter(|b| !b.is_empty())
                .map(lossy)
                .collect(),
            _ => Vec::new(),
        };
        let mut nodes = Vec::new();
        if let Some(Value::List(l)) = top.get(b"nodes") {
            for n in l {
                if let Value::List(hp) = n
                    && let (Some(h), Some(p)) = (
                        hp.get(0).and_then(Value::as_bytes),
                        hp.get(1).and_then(Value::as_int),
                    )
                    && let Ok(p) = u16::try_from(p)
                {
                    nodes.push((lossy(h), p));
                }
            }
        }
        const KNOWN: &[&[u8]] = &[
            b"announce",
            b"announce-list",
            b"url-list",
            b"nodes",
            b"comment",
            b"created by",
            b"creation date",
            b"encoding",
            b"info",
            b"piece layers",
        ];
        Ok(Torrent {
            announce: s(b"announce").filter(|a| !a.is_empty()),
            announce_list,
            web_seeds,
            nodes,
            comment: s(b"comment"),
            created_by: s(b"created by"),
            creation_date: top.get(b"creation date").and_then(Value::as_int),
            encoding: s(b"encoding"),
            info_hash: info.info_hash,
            info,
            extra: extras(top, KNOWN),
            raw: data[..used].to_vec(),
        })
    }

    /// Reads and parses a .torrent file (within the default [`Limits`]).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Torrent, MetainfoError> {
        let path = path.as_ref();
        let data = std::fs::read(path).map_err(|source| MetainfoError::Io {
            path: path.to_owned(),
            source,
        })?;
        Torrent::from_bytes(&data)
    }

    /// The torrent's bencoded bytes: exactly the bytes it was parsed from (up to the end
    /// of the top-level dictionary), so a canonical torrent re-encodes identically.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.raw.clone()
    }
    /// The torrent's bencoded bytes, borrowed (see [`Torrent::to_bytes`]).
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The tracker tiers to use (BEP 12): `announce-list` if it has any URL, else a single
    /// tier holding `announce`, else none.
    pub fn announce_tiers(&self) -> Vec<Vec<String>> {
        if !self.announce_list.is_empty() {
            self.announce_list.clone()
        } else if let Some(a) = &self.announce {
            vec![vec![a.clone()]]
        } else {
            Vec::new()
        }
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn extras(d: &Dict<'_>, known: &[&[u8]]) -> Vec<(Vec<u8>, Vec<u8>)> {
    d.iter()
        .filter(|(k, _)| !known.contains(k))
        .map(|(k, v)| {
            (
                k.to_vec(),
                v.raw().map_or_else(|| v.to_bytes(), <[u8]>::to_vec),
            )
        })
        .collect()
}

/// A key path for an error message, built only when an error needs it (a v2 tree path
/// is long and shared by many nodes; formatting it eagerly would cost quadratic time).
trait KeyPath {
    fn key_path(&self) -> String;
    fn child(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.key_path())
    }
}
impl KeyPath for &str {
    fn key_path(&self) -> String {
        (*self).to_owned()
    }
}
impl KeyPath for String {
    fn key_path(&self) -> String {
        self.clone()
    }
}
/// The key path of a node of the v2 `file tree`.
struct TreePath<'p, 'a>(&'p [&'a [u8]]);
impl KeyPath for TreePath<'_, '_> {
    fn key_path(&self) -> String {
        tree_key_path(self.0)
    }
}

/// `parent` followed by a fixed suffix.
struct Child<'k, K>(&'k K, &'static str);
impl<K: KeyPath> KeyPath for Child<'_, K> {
    fn key_path(&self) -> String {
        self.0.child(self.1)
    }
}

fn tree_key_path(path: &[&[u8]]) -> String {
    let parts: Vec<String> = path.iter().map(|c| lossy(c)).collect();
    format!("info.file tree.{}", parts.join("/"))
}

fn get_int(d: &Dict<'_>, key: &[u8], path: &impl KeyPath) -> Result<Option<i64>, MetainfoError> {
    match d.get(key) {
        None => Ok(None),
        Some(Value::Int(i)) => Ok(Some(*i)),
        Some(v) => Err(MetainfoError::wrong_type(path.key_path(), "integer", v)),
    }
}

fn get_bytes<'a>(
    d: &Dict<'a>,
    key: &[u8],
    path: &impl KeyPath,
) -> Result<Option<&'a [u8]>, MetainfoError> {
    match d.get(key) {
        None => Ok(None),
        Some(Value::Bytes(b)) => Ok(Some(b)),
        Some(v) => Err(MetainfoError::wrong_type(path.key_path(), "byte string", v)),
    }
}

/// The `length` of a file dictionary whose own key path is `file`.
fn get_length(d: &Dict<'_>, file: &impl KeyPath) -> Result<u64, MetainfoError> {
    let l = match d.get(b"length") {
        None => return Err(MetainfoError::missing(file.child(".length"))),
        Some(Value::Int(i)) => *i,
        Some(v) => {
            return Err(MetainfoError::wrong_type(
                file.child(".length"),
                "integer",
                v,
            ));
        }
    };
    u64::try_from(l)
        .map_err(|_| MetainfoError::invalid(file.child(".length"), format!("negative length {l}")))
}

/// A list of byte strings (a `path` or `symlink path`) of at most `max` components.
fn get_components<'a>(
    v: &Value<'a>,
    path: &impl KeyPath,
    max: usize,
) -> Result<Vec<&'a [u8]>, MetainfoError> {
    let l = v
        .as_list()
        .ok_or_else(|| MetainfoError::wrong_type(path.key_path(), "list", v))?;
    if l.len() > max {
        return Err(MetainfoError::over(
            Limit::PathDepth,
            l.len(),
            max,
            path.key_path(),
        ));
    }
    l.iter()
        .enumerate()
        .map(|(i, c)| {
            c.as_bytes().ok_or_else(|| {
                MetainfoError::wrong_type(path.child(&format!("[{i}]")), "byte string", c)
            })
        })
        .collect()
}

/// Raw path components.
type Components<'a> = Vec<&'a [u8]>;

/// Where a [`RawFile`] came from, for error messages.
enum Origin {
    V1Single,
    V1(usize),
    Tree,
}

/// One file as read from the v1 list or the v2 tree, before layout.
struct RawFile<'a> {
    path: Components<'a>,
    length: u64,
    attr: FileAttr,
    pieces_root: Option<[u8; 32]>,
    symlink: Option<Components<'a>>,
    origin: Origin,
}

impl RawFile<'_> {
    fn key_path(&self) -> String {
        match self.origin {
            Origin::V1Single => "info".into(),
            Origin::V1(i) => format!("info.files[{i}]"),
            Origin::Tree => tree_key_path(&self.path),
        }
    }
}

fn is_bitcomet_pad(path: &[&[u8]]) -> bool {
    path.last()
        .is_some_and(|c| c.starts_with(b"_____padding_file_"))
}

fn parse_attr_and_symlink<'a>(
    d: &Dict<'a>,
    file: &impl KeyPath,
    limits: &Limits,
) -> Result<(FileAttr, Option<Components<'a>>), MetainfoError> {
    let attr = match d.get(b"attr") {
        None => FileAttr::default(),
        Some(Value::Bytes(b)) => FileAttr::parse(b),
        Some(v) => {
            return Err(MetainfoError::wrong_type(
                file.child(".attr"),
                "byte string",
                v,
            ));
        }
    };
    let symlink = match d.get(b"symlink path") {
        Some(v) => Some(get_components(
            v,
            &file.child(".symlink path"),
            limits.max_path_depth,
        )?),
        None => None,
    };
    Ok((attr, symlink))
}

fn parse_v1_files<'a>(
    info: &Dict<'a>,
    name: &'a [u8],
    limits: &Limits,
) -> Result<(Vec<RawFile<'a>>, bool), MetainfoError> {
    match (info.get(b"length"), info.get(b"files")) {
        (Some(_), Some(_)) => Err(MetainfoError::invalid(
            "info",
            "both `length` (single file) and `files` (multi-file)",
        )),
        (None, None) => Err(MetainfoError::missing("info.length")),
        (Some(_), None) => {
            let length = get_length(info, &"info")?;
            let (attr, symlink) = parse_attr_and_symlink(info, &"info", limits)?;
            Ok((
                vec![RawFile {
                    path: vec![name],
                    length,
                    attr,
                    pieces_root: None,
                    symlink,
                    origin: Origin::V1Single,
                }],
                true,
            ))
        }
        (None, Some(files)) => {
            let list = files
                .as_list()
                .ok_or_else(|| MetainfoError::wrong_type("info.files", "list", files))?;
            if list.len() > limits.max_files {
                return Err(MetainfoError::over(
                    Limit::Files,
                    list.len(),
                    limits.max_files,
                    "info.files",
                ));
            }
            let mut out = Vec::with_capacity(list.len());
            for (i, f) in list.iter().enumerate() {
                let kp = format!("info.files[{i}]");
                let d = f
                    .as_dict()
                    .ok_or_else(|| MetainfoError::wrong_type(kp.clone(), "dictionary", f))?;
                let length = get_length(d, &kp)?;
                let pv = d
                    .get(b"path")
                    .ok_or_else(|| MetainfoError::missing(format!("{kp}.path")))?;
                let path = get_components(pv, &format!("{kp}.path"), limits.max_path_depth)?;
                let (mut attr, symlink) = parse_attr_and_symlink(d, &kp, limits)?;
                attr.padding |= is_bitcomet_pad(&path);
                out.push(RawFile {
                    path,
                    length,
                    attr,
                    pieces_root: None,
                    symlink,
                    origin: Origin::V1(i),
                });
            }
            Ok((out, false))
        }
    }
}

/// Flattens a v2 `file tree` (depth is bounded by the bencode decoder's nesting limit,
/// and paths by [`Limits::max_path_depth`]).
///
/// `budget` bounds the bytes the flattened paths may take: a tree shares each directory
/// name among all files below it, so without a bound a small input could expand into
/// gigabytes of paths.
fn walk_tree<'a>(
    d: &Dict<'a>,
    prefix: &mut Components<'a>,
    out: &mut Vec<RawFile<'a>>,
    budget: &mut u64,
    limits: &Limits,
) -> Result<(), MetainfoError> {
    for (k, v) in d.iter() {
        prefix.push(k);
        if prefix.len() > limits.max_path_depth {
            return Err(MetainfoError::over(
                Limit::PathDepth,
                prefix.len(),
                limits.max_path_depth,
                tree_key_path(prefix),
            ));
        }
        let node = v
            .as_dict()
            .ok_or_else(|| MetainfoError::wrong_type(tree_key_path(prefix), "dictionary", v))?;
        if k.is_empty() {
            return Err(MetainfoError::invalid(
                tree_key_path(prefix),
                "empty name in file tree",
            ));
        }
        match node.get(b"") {
            Some(fv) => {
                let kp = TreePath(prefix);
                let fd = fv.as_dict().ok_or_else(|| {
                    MetainfoError::wrong_type(kp.child(".\"\""), "dictionary", fv)
                })?;
                let (attr, symlink) = parse_attr_and_symlink(fd, &kp, limits)?;
                // BEP 47 symbolic links in a v2 tree carry no `length`.
                let length = if attr.symlink && fd.get(b"length").is_none() {
                    0
                } else {
                    get_length(fd, &kp)?
                };
                let pieces_root = match get_bytes(fd, b"pieces root", &Child(&kp, ".pieces root"))?
                {
                    Some(r) => Some(<[u8; 32]>::try_from(r).map_err(|_| {
                        MetainfoError::invalid(
                            kp.child(".pieces root"),
                            format!("{} bytes, expected 32", r.len()),
                        )
                    })?),
                    None if length > 0 => {
                        return Err(MetainfoError::missing(kp.child(".pieces root")));
                    }
                    None => None,
                };
                if out.len() >= limits.max_files {
                    return Err(MetainfoError::over(
                        Limit::Files,
                        out.len() + 1,
                        limits.max_files,
                        kp.key_path(),
                    ));
                }
                let cost: u64 = prefix.iter().map(|c| c.len() as u64 + 32).sum();
                *budget = budget.checked_sub(cost).ok_or_else(|| {
                    MetainfoError::invalid(
                        "info.file tree",
                        "the file paths expand to too many bytes (resource limit)",
                    )
                })?;
                out.push(RawFile {
                    path: prefix.clone(),
                    length,
                    attr,
                    // An empty file has no root (some tools write one anyway).
                    pieces_root: pieces_root.filter(|_| length > 0),
                    symlink,
                    origin: Origin::Tree,
                });
            }
            None => walk_tree(node, prefix, out, budget, limits)?,
        }
        prefix.pop();
    }
    Ok(())
}

fn parse_info(d: &Dict<'_>, raw: &[u8], limits: &Limits) -> Result<Info, MetainfoError> {
    let name_b =
        get_bytes(d, b"name", &"info.name")?.ok_or_else(|| MetainfoError::missing("info.name"))?;
    let pl_i = get_int(d, b"piece length", &"info.piece length")?
        .ok_or_else(|| MetainfoError::missing("info.piece length"))?;
    if pl_i <= 0 || pl_i > i64::from(u32::MAX) {
        return Err(MetainfoError::PieceLength {
            value: pl_i,
            reason: "must be between 1 and 2^32-1",
        });
    }
    let piece_length = pl_i as u64;
    if piece_length > limits.max_piece_length {
        return Err(MetainfoError::over(
            Limit::PieceLength,
            piece_length,
            limits.max_piece_length,
            "info.piece length",
        ));
    }
    let meta_version = get_int(d, b"meta version", &"info.meta version")?;
    let private = get_int(d, b"private", &"info.private")? == Some(1);
    let has_v1 = d.get(b"pieces").is_some();
    let version = match meta_version {
        None | Some(1) => MetaVersion::V1,
        Some(2) if has_v1 => MetaVersion::Hybrid,
        Some(2) => MetaVersion::V2,
        Some(v) => return Err(MetainfoError::UnsupportedVersion(v)),
    };

    let v2_files = if version == MetaVersion::V1 {
        None
    } else {
        if !piece_length.is_power_of_two() || piece_length < BLOCK_SIZE {
            return Err(MetainfoError::PieceLength {
                value: pl_i,
                reason: "v2 needs a power of two of at least 16 KiB",
            });
        }
        let tv = d
            .get(b"file tree")
            .ok_or_else(|| MetainfoError::missing("info.file tree"))?;
        let td = tv
            .as_dict()
            .ok_or_else(|| MetainfoError::wrong_type("info.file tree", "dictionary", tv))?;
        let mut files = Vec::new();
        // Flattened paths may take up to 32 times the input, plus 8 MiB.
        let mut budget = (raw.len() as u64).saturating_mul(32) + (8 << 20);
        walk_tree(td, &mut Vec::new(), &mut files, &mut budget, limits)?;
        if files.is_empty() {
            return Err(MetainfoError::invalid("info.file tree", "no files"));
        }
        Some(files)
    };

    let (mut raw_files, single_file) = match (&version, v2_files) {
        (MetaVersion::V2, Some(files)) => {
            let single = files.len() == 1
                && files[0].path.len() == 1
                && d.get(b"file tree")
                    .and_then(Value::as_dict)
                    .is_some_and(|t| t.len() == 1);
            (files, single)
        }
        (MetaVersion::Hybrid, Some(tree)) => {
            let (mut v1, single) = parse_v1_files(d, name_b, limits)?;
            check_hybrid(&mut v1, &tree, single, piece_length)?;
            (v1, single)
        }
        _ => parse_v1_files(d, name_b, limits)?,
    };

    let mode = if version == MetaVersion::V2 {
        LayoutMode::V2
    } else {
        LayoutMode::V1
    };
    let mut total = 0u64;
    for f in &raw_files {
        total = total.checked_add(f.length).ok_or_else(|| {
            MetainfoError::invalid(format!("{}.length", f.key_path()), "total length overflows")
        })?;
    }
    // The piece count the lengths claim, checked before anything is sized by it.
    let claimed = match mode {
        LayoutMode::V1 => total.div_ceil(piece_length),
        LayoutMode::V2 => raw_files
            .iter()
            .map(|f| f.length.div_ceil(piece_length))
            .fold(0u64, u64::saturating_add),
    };
    if claimed > u64::from(limits.max_pieces) {
        return Err(MetainfoError::over(
            Limit::Pieces,
            claimed,
            limits.max_pieces,
            "info",
        ));
    }
    let layout = PieceLayout::new(
        piece_length,
        mode,
        raw_files.iter().map(|f| (f.length, f.attr.padding)),
    )?;

    let mut pieces = Vec::new();
    if version != MetaVersion::V2 {
        let p = get_bytes(d, b"pieces", &"info.pieces")?
            .ok_or_else(|| MetainfoError::missing("info.pieces"))?;
        let count = u64::from(layout.piece_count());
        if p.len() as u64 != count * 20 {
            return Err(MetainfoError::PiecesLength {
                len: p.len(),
                expected: count * 20,
                count,
            });
        }
        pieces = p
            .chunks_exact(20)
            .map(|c| <[u8; 20]>::try_from(c).unwrap_or_default())
            .collect();
    }

    // Paths.
    let name_safe = sanitize_component(name_b).unwrap_or_else(|| "_".to_owned());
    let mut paths: Vec<(PathBuf, bool)> = raw_files
        .iter()
        .map(|f| {
            let p = if single_file {
                safe_relative_path(&f.path)
            } else {
                Path::new(&name_safe).join(safe_relative_path(&f.path))
            };
            (p, f.attr.padding)
        })
        .collect();
    dedupe_paths(&mut paths);

    let files = raw_files
        .drain(..)
        .zip(paths)
        .enumerate()
        .map(|(i, (f, (safe_path, _)))| FileEntry {
            path: f.path.iter().map(|c| lossy(c)).collect(),
            length: f.length,
            offset: layout.file_offset(i).unwrap_or(0),
            attr: f.attr,
            pieces_root: f.pieces_root,
            symlink_path: f.symlink.map(|s| s.iter().map(|c| lossy(c)).collect()),
            safe_path,
        })
        .collect();

    let sha1 = || InfoHashV1(Sha1::digest(raw).into());
    let sha256 = || InfoHashV2(Sha256::digest(raw).into());
    let info_hash = match version {
        MetaVersion::V1 => InfoHash::V1(sha1()),
        MetaVersion::V2 => InfoHash::V2(sha256()),
        MetaVersion::Hybrid => InfoHash::Hybrid(sha1(), sha256()),
    };
    const KNOWN: &[&[u8]] = &[
        b"name",
        b"piece length",
        b"pieces",
        b"length",
        b"files",
        b"private",
        b"meta version",
        b"file tree",
        b"attr",
        b"symlink path",
    ];
    Ok(Info {
        name: lossy(name_b),
        piece_length,
        pieces,
        private,
        files,
        version,
        meta_version,
        single_file,
        piece_layers: BTreeMap::new(),
        extra: extras(d, KNOWN),
        layout,
        info_hash,
        raw: raw.to_vec(),
    })
}

/// Checks that a hybrid's v1 list (minus padding) and v2 tree list the same files in the
/// same order, each non-empty file starting on a piece boundary; attaches the v2 roots.
fn check_hybrid(
    v1: &mut [RawFile<'_>],
    tree: &[RawFile<'_>],
    single: bool,
    piece_length: u64,
) -> Result<(), MetainfoError> {
    let mut t = tree.iter();
    let mut offset = 0u64;
    for f in v1.iter_mut() {
        let start = offset;
        offset = offset.saturating_add(f.length);
        if f.attr.padding {
            continue;
        }
        let mismatch = |reason: String| MetainfoError::HybridMismatch {
            path: f.key_path(),
            reason,
        };
        let Some(g) = t.next() else {
            return Err(mismatch("file is not in the v2 file tree".into()));
        };
        // A single-file v2 tree is keyed by the file name, as is a v1 single file.
        let same_path = f.path == g.path || (single && g.path.len() == 1);
        if !same_path {
            return Err(mismatch(format!(
                "path differs from v2 {}",
                g.path
                    .iter()
                    .map(|c| lossy(c))
                    .collect::<Vec<_>>()
                    .join("/")
            )));
        }
        if f.length != g.length {
            return Err(mismatch(format!(
                "length {} differs from v2 length {}",
                f.length, g.length
            )));
        }
        if f.length > 0 && start % piece_length != 0 {
            return Err(mismatch(format!(
                "starts at byte {start}, not on a piece boundary (missing padding)"
            )));
        }
        f.pieces_root = g.pieces_root;
    }
    if let Some(g) = t.next() {
        return Err(MetainfoError::HybridMismatch {
            path: g.key_path(),
            reason: "file is not in the v1 file list".into(),
        });
    }
    Ok(())
}

/// Reads the top-level `piece layers` and checks every file larger than a piece.
fn parse_piece_layers(v: Option<&Value<'_>>, info: &mut Info) -> Result<(), MetainfoError> {
    let pl = info.piece_length;
    let needs_layers = info
        .files
        .iter()
        .any(|f| f.length > pl && f.pieces_root.is_some());
    let layers = match v {
        Some(v) => Some(
            v.as_dict()
                .ok_or_else(|| MetainfoError::wrong_type("piece layers", "dictionary", v))?,
        ),
        None if needs_layers => return Err(MetainfoError::missing("piece layers")),
        None => None,
    };
    let Some(layers) = layers else {
        return Ok(());
    };
    let mut out = BTreeMap::new();
    for (i, f) in info.files.iter().enumerate() {
        let Some(root) = f.pieces_root else { continue };
        if f.length <= pl || out.contains_key(&root) {
            continue;
        }
        let hex = InfoHashV2(root).to_hex();
        let kp = format!("piece layers[{hex}]");
        let Some(lv) = layers.get(&root) else {
            return Err(MetainfoError::PieceLayer {
                path: format!("info.files[{i}] ({})", f.display_path()),
                reason: format!("no piece layer for pieces root {hex}"),
            });
        };
        let lb = lv
            .as_bytes()
            .ok_or_else(|| MetainfoError::wrong_type(kp.clone(), "byte string", lv))?;
        let count = f.length.div_ceil(pl);
        if lb.len() as u64 != count * 32 {
            return Err(MetainfoError::PieceLayer {
                path: kp,
                reason: format!(
                    "{} bytes, expected {} (32 for each of {count} pieces)",
                    lb.len(),
                    count * 32
                ),
            });
        }
        let hashes: Vec<[u8; 32]> = lb
            .chunks_exact(32)
            .map(|c| <[u8; 32]>::try_from(c).unwrap_or_default())
            .collect();
        if root_from_piece_layer(&hashes, pl) != root {
            return Err(MetainfoError::PieceLayer {
                path: kp,
                reason: "merkle root of the layer does not match the file's pieces root".into(),
            });
        }
        out.insert(root, hashes);
    }
    info.piece_layers = out;
    Ok(())
}
