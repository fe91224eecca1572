//! `so` file selection (BEP 53).

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use crate::ParamError;

/// The files a magnet link asks to download (BEP 53 `so=0,2,4-6`): a list of file
/// indices and inclusive index ranges, kept in the order given.
///
/// Ranges are stored as ranges, never expanded, so `so=0-4294967295` costs one entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FileSelection {
    ranges: Vec<RangeInclusive<u32>>,
}

impl FileSelection {
    /// An empty selection.
    pub fn new() -> FileSelection {
        FileSelection::default()
    }

    /// Parses a BEP 53 list: comma-separated decimal indices and `first-last`
    /// ranges, no spaces, at least one element.
    pub fn parse(s: &str) -> Result<FileSelection, ParamError> {
        let mut ranges = Vec::new();
        let mut offset = 0;
        for part in s.split(',') {
            if part.is_empty() {
                return Err(ParamError::SelectionEmpty { offset });
            }
            let (start, end) = match part.split_once('-') {
                Some((a, b)) => (index(a, offset)?, index(b, offset + a.len() + 1)?),
                None => {
                    let i = index(part, offset)?;
                    (i, i)
                }
            };
            if start > end {
                return Err(ParamError::SelectionRange { start, end });
            }
            ranges.push(start..=end);
            offset += part.len() + 1;
        }
        Ok(FileSelection { ranges })
    }

    /// Appends the indices `first..=last` (swapped if `first > last`).
    pub fn push(&mut self, first: u32, last: u32) {
        self.ranges.push(first.min(last)..=first.max(last));
    }

    /// Appends one index.
    pub fn push_index(&mut self, index: u32) {
        self.ranges.push(index..=index);
    }

    /// Appends `first..=last` (swapped if `first > last`); builder style.
    pub fn with(mut self, first: u32, last: u32) -> FileSelection {
        self.push(first, last);
        self
    }

    /// The ranges in the order given; a single index is a one-element range.
    pub fn ranges(&self) -> &[RangeInclusive<u32>] {
        &self.ranges
    }

    /// Whether the selection names no file.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether file `index` is selected.
    pub fn contains(&self, index: u32) -> bool {
        self.ranges.iter().any(|r| r.contains(&index))
    }

    /// Every selected index, range by range, lazily (duplicates are not removed).
    pub fn indices(&self) -> impl Iterator<Item = u32> + '_ {
        self.ranges.iter().flat_map(|r| r.clone())
    }
}

fn index(s: &str, offset: usize) -> Result<u32, ParamError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParamError::SelectionIndex { offset });
    }
    s.parse().map_err(|_| ParamError::SelectionIndex { offset })
}

impl FromStr for FileSelection {
    type Err = ParamError;
    fn from_str(s: &str) -> Result<Self, ParamError> {
        FileSelection::parse(s)
    }
}

impl FromIterator<RangeInclusive<u32>> for FileSelection {
    /// Collects ranges; a range with start > end is stored swapped.
    fn from_iter<I: IntoIterator<Item = RangeInclusive<u32>>>(iter: I) -> Self {
        let mut s = FileSelection::new();
        for r in iter {
            s.push(*r.start(), *r.end());
        }
        s
    }
}

/// The BEP 53 form: `0,2,4-6`.
impl fmt::Display for FileSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if r.start() == r.end() {
                write!(f, "{}", r.start())?;
            } else {
                write!(f, "{}-{}", r.start(), r.end())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        let s = FileSelection::parse("0,2,4-6").unwrap();
        assert_eq!(s.ranges(), &[0..=0, 2..=2, 4..=6]);
        assert_eq!(s.to_string(), "0,2,4-6");
        assert!(s.contains(5) && !s.contains(3) && !s.contains(7));
        assert_eq!(s.indices().collect::<Vec<_>>(), [0, 2, 4, 5, 6]);
        // Order and overlaps are kept; a one-element range prints as an index.
        let s = FileSelection::parse("9,3-3,1-2,2").unwrap();
        assert_eq!(s.to_string(), "9,3,1-2,2");
        // Huge ranges stay one entry.
        let s = FileSelection::parse("0-4294967295").unwrap();
        assert_eq!(s.ranges().len(), 1);
        assert!(s.contains(u32::MAX));
        let built = FileSelection::new().with(7, 3).with(1, 1);
        assert_eq!(built.to_string(), "3-7,1");
        let collected: FileSelection = [5..=9, RangeInclusive::new(2, 0)].into_iter().collect();
        assert_eq!(collected.to_string(), "5-9,0-2");
    }

    #[test]
    fn malformed() {
        for (s, e) in [
            ("", ParamError::SelectionEmpty { offset: 0 }),
            ("1,,2", ParamError::SelectionEmpty { offset: 2 }),
            ("1,", ParamError::SelectionEmpty { offset: 2 }),
            ("a", ParamError::SelectionIndex { offset: 0 }),
            ("1, 2", ParamError::SelectionIndex { offset: 2 }),
            ("1-", ParamError::SelectionIndex { offset: 2 }),
            ("-1", ParamError::SelectionIndex { offset: 0 }),
            ("0,1-2-3", ParamError::SelectionIndex { offset: 4 }),
            ("+1", ParamError::SelectionIndex { offset: 0 }),
            ("4294967296", ParamError::SelectionIndex { offset: 0 }),
            ("0,6-4", ParamError::SelectionRange { start: 6, end: 4 }),
        ] {
            assert_eq!(FileSelection::parse(s), Err(e), "{s:?}");
        }
    }
}
