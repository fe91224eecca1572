//! Where each piece's bytes live: the map between pieces and file ranges.
//!
//! BitTorrent hashes a torrent as a sequence of pieces. In a v1 torrent (and a hybrid,
//! whose padding files make the two views agree) the files are concatenated in order,
//! padding files included, and cut into pieces of `piece length` bytes; the last piece is
//! shorter. In a v2-only torrent (BEP 52) every file starts on a piece boundary and its
//! last piece is shorter; empty files take no pieces.
//!
//! Both are modelled as one byte stream in which each file has an offset: the v1 stream
//! is the concatenation; the v2 stream places each file at the next multiple of the piece
//! length, and piece `i` always starts at byte `i * piece_length` of the stream.

use std::ops::Range;

use crate::error::MetainfoError;

/// How files are laid out in pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayoutMode {
    /// Files concatenated (v1 and hybrid torrents; padding files included).
    V1,
    /// Each file starts on a piece boundary (v2-only torrents).
    V2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LFile {
    offset: u64,
    length: u64,
    padding: bool,
}

/// The pieces of a torrent mapped onto its files.
///
/// The files form one byte stream: in [`LayoutMode::V1`] they are concatenated (padding
/// files included) and piece `i` is bytes `i * piece_length ..` of it, the last piece
/// short; in [`LayoutMode::V2`] each file starts at the next multiple of the piece length
/// (empty files take no pieces), so piece `i` still starts at `i * piece_length` and the
/// last piece of each file is short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceLayout {
    piece_length: u64,
    mode: LayoutMode,
    files: Vec<LFile>,
    /// V2 only: indices of non-empty files, in order.
    data_files: Vec<usize>,
    stream_len: u64,
    piece_count: u32,
}

/// A run of bytes of one file inside a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileSpan {
    /// Index of the file in the torrent's file list.
    pub file_index: usize,
    /// Offset of the run within the file.
    pub file_offset: u64,
    /// Length of the run in bytes (never 0).
    pub len: u64,
    /// The file is a padding file (BEP 47): its bytes are zeros and need not be stored.
    pub padding: bool,
}

impl PieceLayout {
    /// Builds a layout from `(length, is_padding)` per file, in torrent order.
    ///
    /// Fails if `piece_length` is 0, if the sizes overflow `u64`, or if there would be
    /// more than `u32::MAX` pieces.
    pub fn new<I>(piece_length: u64, mode: LayoutMode, files: I) -> Result<Self, MetainfoError>
    where
        I: IntoIterator<Item = (u64, bool)>,
    {
        if piece_length == 0 {
            return Err(MetainfoError::Layout("piece length is 0"));
        }
        let overflow = || MetainfoError::Layout("total size overflows");
        let mut out = Vec::new();
        let mut data_files = Vec::new();
        let mut cursor = 0u64;
        for (i, (length, padding)) in files.into_iter().enumerate() {
            out.push(LFile {
                offset: cursor,
                length,
                padding,
            });
            match mode {
                LayoutMode::V1 => {
                    cursor = cursor.checked_add(length).ok_or_else(overflow)?;
                }
                LayoutMode::V2 => {
                    if length > 0 {
                        data_files.push(i);
                        let pieces = length.div_ceil(piece_length);
                        let span = pieces.checked_mul(piece_length).ok_or_else(overflow)?;
                        cursor = cursor.checked_add(span).ok_or_else(overflow)?;
                    }
                }
            }
        }
        let count = cursor.div_ceil(piece_length);
        let piece_count =
            u32::try_from(count).map_err(|_| MetainfoError::Layout("more than 2^32-1 pieces"))?;
        let stream_len = match mode {
            LayoutMode::V1 => cursor,
            // The end of the last file's data, not of its last piece.
            LayoutMode::V2 => out.iter().map(|f| f.offset + f.length).max().unwrap_or(0),
        };
        Ok(PieceLayout {
            piece_length,
            mode,
            files: out,
            data_files,
            stream_len,
            piece_count,
        })
    }

    /// The layout mode.
    pub fn mode(&self) -> LayoutMode {
        self.mode
    }
    /// The nominal piece length.
    pub fn piece_length(&self) -> u64 {
        self.piece_length
    }
    /// The number of pieces.
    pub fn piece_count(&self) -> u32 {
        self.piece_count
    }
    /// The number of files.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }
    /// The sum of all file lengths, padding files included.
    pub fn total_length(&self) -> u64 {
        self.files.iter().map(|f| f.length).sum()
    }
    /// The offset of a file in the layout's byte stream (see [`PieceLayout`]).
    pub fn file_offset(&self, file_index: usize) -> Option<u64> {
        self.files.get(file_index).map(|f| f.offset)
    }

    /// The length of piece `piece` (0 if out of range). The last piece (v1), or the last
    /// piece of each file (v2), may be shorter than the piece length.
    pub fn piece_len(&self, piece: u32) -> u64 {
        if piece >= self.piece_count {
            return 0;
        }
        let start = u64::from(piece) * self.piece_length;
        let end = match self.mode {
            LayoutMode::V1 => self.stream_len,
            LayoutMode::V2 => {
                // The non-empty file whose pieces hold this one.
                let k = self
                    .data_files
                    .partition_point(|&i| self.files[i].offset <= start);
                match k.checked_sub(1).and_then(|k| self.data_files.get(k)) {
                    Some(&i) => self.files[i].offset + self.files[i].length,
                    None => return 0,
                }
            }
        };
        end.saturating_sub(start).min(self.piece_length)
    }

    /// The file runs that hold bytes `offset..offset + len` of piece `piece`, in order.
    ///
    /// The range is clipped to the piece; an out-of-range piece gives nothing. Padding
    /// files appear as spans flagged [`FileSpan::padding`]; empty files never appear.
    pub fn spans(&self, piece: u32, offset: u64, len: u64) -> Spans<'_> {
        let plen = self.piece_len(piece);
        if plen == 0 {
            return Spans {
                files: &self.files,
                idx: self.files.len(),
                pos: 0,
                end: 0,
            };
        }
        let offset = offset.min(plen);
        let len = len.min(plen - offset);
        let start = u64::from(piece) * self.piece_length + offset;
        let end = start + len;
        let idx = self.files.partition_point(|f| f.offset + f.length <= start);
        Spans {
            files: &self.files,
            idx,
            pos: start,
            end,
        }
    }

    /// The piece and the offset in it that hold byte `file_offset` of a file, or `None` if
    /// the file does not exist or is shorter.
    pub fn file_to_piece(&self, file_index: usize, file_offset: u64) -> Option<(u32, u64)> {
        let f = self.files.get(file_index)?;
        if file_offset >= f.length {
            return None;
        }
        let s = f.offset + file_offset;
        let piece = u32::try_from(s / self.piece_length).ok()?;
        Some((piece, s % self.piece_length))
    }

    /// The pieces that hold bytes of a file (empty for an empty or unknown file).
    pub fn file_pieces(&self, file_index: usize) -> Range<u32> {
        let Some(f) = self.files.get(file_index) else {
            return 0..0;
        };
        let first = (f.offset / self.piece_length) as u32;
        if f.length == 0 {
            return first..first;
        }
        let last = ((f.offset + f.length - 1) / self.piece_length) as u32;
        first..last + 1
    }
}

/// Iterator over the [`FileSpan`]s of a piece range, from [`PieceLayout::spans`].
#[derive(Debug, Clone)]
pub struct Spans<'a> {
    files: &'a [LFile],
    idx: usize,
    pos: u64,
    end: u64,
}

impl Iterator for Spans<'_> {
    type Item = FileSpan;
    fn next(&mut self) -> Option<FileSpan> {
        while self.pos < self.end {
            let f = self.files.get(self.idx)?;
            let fend = f.offset + f.length;
            if f.length == 0 || fend <= self.pos {
                self.idx += 1;
                continue;
            }
            let s = self.pos.max(f.offset);
            if s >= self.end {
                return None;
            }
            let e = fend.min(self.end);
            self.pos = e;
            let span = FileSpan {
                file_index: self.idx,
                file_offset: s - f.offset,
                len: e - s,
                padding: f.padding,
            };
            self.idx += 1;
            return Some(span);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Naive model: the list of pieces, each a list of (file, offset in file) per byte.
    fn model(pl: u64, mode: LayoutMode, lens: &[u64]) -> Vec<Vec<(usize, u64)>> {
        let mut pieces = Vec::new();
        match mode {
            LayoutMode::V1 => {
                let bytes: Vec<(usize, u64)> = lens
                    .iter()
                    .enumerate()
                    .flat_map(|(i, &l)| (0..l).map(move |o| (i, o)))
                    .collect();
                for c in bytes.chunks(pl as usize) {
                    pieces.push(c.to_vec());
                }
            }
            LayoutMode::V2 => {
                for (i, &l) in lens.iter().enumerate() {
                    let bytes: Vec<(usize, u64)> = (0..l).map(|o| (i, o)).collect();
                    for c in bytes.chunks(pl as usize) {
                        pieces.push(c.to_vec());
                    }
                }
            }
        }
        pieces
    }

    fn expand(spans: impl Iterator<Item = FileSpan>) -> Vec<(usize, u64)> {
        spans
            .flat_map(|s| {
                assert!(s.len > 0);
                (0..s.len).map(move |o| (s.file_index, s.file_offset + o))
            })
            .collect()
    }

    #[test]
    fn v1_example() {
        let l = PieceLayout::new(4, LayoutMode::V1, [(3, false), (0, false), (6, true)]).unwrap();
        assert_eq!(l.piece_count(), 3);
        assert_eq!(
            (
                l.piece_len(0),
                l.piece_len(1),
                l.piece_len(2),
                l.piece_len(3)
            ),
            (4, 4, 1, 0)
        );
        let s: Vec<_> = l.spans(0, 0, 4).collect();
        assert_eq!(
            s,
            [
                FileSpan {
                    file_index: 0,
                    file_offset: 0,
                    len: 3,
                    padding: false
                },
                FileSpan {
                    file_index: 2,
                    file_offset: 0,
                    len: 1,
                    padding: true
                }
            ]
        );
        assert_eq!(l.file_to_piece(2, 5), Some((2, 0)));
        assert_eq!(l.file_pieces(2), 0..3);
        assert_eq!(l.file_pieces(1), 0..0);
    }

    #[test]
    fn v2_example() {
        let l = PieceLayout::new(4, LayoutMode::V2, [(5, false), (0, false), (4, false)]).unwrap();
        assert_eq!(l.piece_count(), 3);
        assert_eq!((l.piece_len(0), l.piece_len(1), l.piece_len(2)), (4, 1, 4));
        assert_eq!(l.file_offset(2), Some(8));
        assert_eq!(l.file_pieces(2), 2..3);
        assert_eq!(l.file_to_piece(0, 4), Some((1, 0)));
    }

    #[test]
    fn errors() {
        assert!(PieceLayout::new(0, LayoutMode::V1, [(1, false)]).is_err());
        assert!(PieceLayout::new(1, LayoutMode::V1, [(u64::MAX, false), (1, false)]).is_err());
        assert!(PieceLayout::new(1, LayoutMode::V1, [(1 << 40, false)]).is_err());
        assert!(PieceLayout::new(2, LayoutMode::V2, [(u64::MAX, false)]).is_err());
    }

    proptest! {
        #[test]
        fn matches_naive_model(
            pl in 1u64..9,
            v2 in any::<bool>(),
            files in proptest::collection::vec((0u64..20, any::<bool>()), 0..6),
            sub in (0u64..10, 0u64..10),
        ) {
            let mode = if v2 { LayoutMode::V2 } else { LayoutMode::V1 };
            let lens: Vec<u64> = files.iter().map(|f| f.0).collect();
            let l = PieceLayout::new(pl, mode, files.iter().copied()).unwrap();
            let m = model(pl, mode, &lens);
            prop_assert_eq!(l.piece_count() as usize, m.len());
            prop_assert_eq!(l.piece_len(m.len() as u32), 0);
            for (i, piece) in m.iter().enumerate() {
                let i = i as u32;
                prop_assert_eq!(l.piece_len(i), piece.len() as u64);
                let spans: Vec<FileSpan> = l.spans(i, 0, u64::MAX).collect();
                for s in &spans {
                    prop_assert_eq!(s.padding, files[s.file_index].1);
                }
                prop_assert_eq!(&expand(spans.into_iter()), piece);
                // A sub-range of the piece.
                let (o, n) = sub;
                let lo = (o as usize).min(piece.len());
                let hi = (lo + n as usize).min(piece.len());
                prop_assert_eq!(&expand(l.spans(i, o, n)), &piece[lo..hi].to_vec());
                for (k, &(f, fo)) in piece.iter().enumerate() {
                    prop_assert_eq!(l.file_to_piece(f, fo), Some((i, k as u64)));
                    prop_assert!(l.file_pieces(f).contains(&i));
                }
            }
            for (f, &len) in lens.iter().enumerate() {
                prop_assert_eq!(l.file_to_piece(f, len), None);
                let n = l.file_pieces(f).len() as u64;
                let want = match mode {
                    LayoutMode::V2 => len.div_ceil(pl),
                    LayoutMode::V1 => m.iter().filter(|p| p.iter().any(|b| b.0 == f)).count() as u64,
                };
                prop_assert_eq!(n, want);
            }
        }
    }
}
