//! The borrowed value tree.

use std::fmt;
use std::sync::Arc;

/// A bencode value borrowing its byte strings from the input it was decoded from.
///
/// Decoded lists and dictionaries also keep their exact original bytes ([`List::raw`],
/// [`Dict::raw`]): the v1 info hash is the SHA-1 of the `info` dictionary as it was
/// sent, not as it would be re-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// An integer (`i42e`).
    Int(i64),
    /// A byte string (`4:spam`), not necessarily UTF-8.
    Bytes(&'a [u8]),
    /// A list (`l...e`).
    List(List<'a>),
    /// A dictionary (`d...e`).
    Dict(Dict<'a>),
}

/// A list of values.
#[derive(Clone, Default)]
pub struct List<'a> {
    pub(crate) items: Seq<'a, Value<'a>>,
}

/// A dictionary: byte-string keys to values, in the order they were decoded or inserted.
///
/// Decoded in strict mode, keys are sorted and unique. Encoding always writes keys
/// sorted as raw bytes; if a (lenient) dictionary holds a key twice, the first wins.
#[derive(Clone, Default)]
pub struct Dict<'a> {
    pub(crate) entries: Seq<'a, Entry<'a>>,
    /// Keys are known to be strictly increasing. (With `raw` set, this also means the
    /// dictionary was decoded strictly, so `raw` is its canonical encoding.)
    pub(crate) sorted: bool,
}

/// A dictionary entry.
pub(crate) type Entry<'a> = (&'a [u8], Value<'a>);

/// The items of a list or dictionary.
///
/// A decoded document keeps the items of all its containers at the same nesting depth
/// in one shared allocation (one per depth and kind, not one per container); a
/// container is a range of it, plus the exact bytes it was decoded from. A built or
/// modified container owns its items.
#[derive(Clone)]
pub(crate) enum Seq<'a, T> {
    /// Built by hand, or modified after decoding.
    Owned(Vec<T>),
    /// Decoded: `len` items from `start` in the shared `store` (`None` when empty, and
    /// while the decoder has not yet sealed the level below).
    Decoded {
        store: Option<Arc<[T]>>,
        start: u32,
        len: u32,
        raw: &'a [u8],
    },
}

impl<T> Default for Seq<'_, T> {
    fn default() -> Self {
        Seq::Owned(Vec::new())
    }
}

impl<'a, T: Clone> Seq<'a, T> {
    #[inline]
    pub(crate) fn as_slice(&self) -> &[T] {
        match self {
            Seq::Owned(v) => v,
            Seq::Decoded {
                store: Some(store),
                start,
                len,
                ..
            } => {
                let start = *start as usize;
                store.get(start..start + *len as usize).unwrap_or_default()
            }
            Seq::Decoded { store: None, .. } => &[],
        }
    }
    #[inline]
    pub(crate) fn raw(&self) -> Option<&'a [u8]> {
        match self {
            Seq::Owned(_) => None,
            Seq::Decoded { raw, .. } => Some(raw),
        }
    }
    /// The items, owned from now on (a decoded container copies its range out, and
    /// forgets its raw bytes).
    fn owned(&mut self) -> &mut Vec<T> {
        if let Seq::Decoded { .. } = self {
            *self = Seq::Owned(self.as_slice().to_vec());
        }
        match self {
            Seq::Owned(v) => v,
            Seq::Decoded { .. } => self.owned(),
        }
    }
    fn into_vec(self) -> Vec<T> {
        match self {
            Seq::Owned(v) => v,
            d => d.as_slice().to_vec(),
        }
    }
}

impl fmt::Debug for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("List")
            .field("items", &self.items())
            .field("raw", &self.raw())
            .finish()
    }
}
impl fmt::Debug for Dict<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dict")
            .field("entries", &self.entries())
            .field("raw", &self.raw())
            .field("sorted", &self.sorted)
            .finish()
    }
}

// Equality is about content; the raw span is where it came from.
impl PartialEq for List<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.items() == other.items()
    }
}
impl Eq for List<'_> {}
impl PartialEq for Dict<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.entries() == other.entries()
    }
}
impl Eq for Dict<'_> {}

impl<'a> Value<'a> {
    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
    /// The byte string as UTF-8, if this is a byte string holding valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }
    /// The list, if this is one.
    pub fn as_list(&self) -> Option<&List<'a>> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
    /// The dictionary, if this is one.
    pub fn as_dict(&self) -> Option<&Dict<'a>> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }
    /// The exact bytes this list or dictionary was decoded from; `None` for integers,
    /// byte strings (which are themselves slices of the input) and built values.
    pub fn raw(&self) -> Option<&'a [u8]> {
        match self {
            Value::List(l) => l.raw(),
            Value::Dict(d) => d.raw(),
            _ => None,
        }
    }
    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "integer",
            Value::Bytes(_) => "byte string",
            Value::List(_) => "list",
            Value::Dict(_) => "dictionary",
        }
    }
}

impl<'a> List<'a> {
    /// An empty list.
    pub fn new() -> Self {
        List::default()
    }
    /// Appends a value.
    pub fn push(&mut self, v: Value<'a>) {
        self.items.owned().push(v);
    }
    /// The items.
    #[inline]
    pub fn items(&self) -> &[Value<'a>] {
        self.items.as_slice()
    }
    /// Iterates over the items.
    pub fn iter(&self) -> std::slice::Iter<'_, Value<'a>> {
        self.items().iter()
    }
    /// The number of items.
    pub fn len(&self) -> usize {
        self.items().len()
    }
    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.items().is_empty()
    }
    /// The item at `i`.
    pub fn get(&self, i: usize) -> Option<&Value<'a>> {
        self.items().get(i)
    }
    /// The exact bytes this list was decoded from (`None` if built or modified).
    pub fn raw(&self) -> Option<&'a [u8]> {
        self.items.raw()
    }
    /// Takes the items out (a decoded list's items are copied out of the storage they
    /// share with the rest of the document; nested containers are shared, not copied).
    pub fn into_items(self) -> Vec<Value<'a>> {
        self.items.into_vec()
    }
}

impl<'a> From<Vec<Value<'a>>> for List<'a> {
    fn from(items: Vec<Value<'a>>) -> Self {
        List {
            items: Seq::Owned(items),
        }
    }
}

impl<'a, 'b> IntoIterator for &'b List<'a> {
    type Item = &'b Value<'a>;
    type IntoIter = std::slice::Iter<'b, Value<'a>>;
    fn into_iter(self) -> Self::IntoIter {
        self.items().iter()
    }
}

impl<'a> Dict<'a> {
    /// An empty dictionary.
    pub fn new() -> Self {
        Dict {
            entries: Seq::Owned(Vec::new()),
            sorted: true,
        }
    }
    /// Adds an entry (kept in insertion order; encoding sorts).
    ///
    /// If the key is already present, the new value replaces the old one.
    pub fn insert(&mut self, key: &'a [u8], value: Value<'a>) {
        let sorted = self.sorted;
        let entries = self.entries.owned();
        // Appending in key order (the common case when building) stays O(1).
        // (Only when the keys so far are sorted: then `key` is new.)
        let in_order = sorted && entries.last().is_none_or(|(last, _)| *last < key);
        if !in_order {
            if let Some(slot) = entries.iter_mut().find(|(k, _)| *k == key) {
                slot.1 = value;
                return;
            }
            entries.push((key, value));
            self.sorted = false;
            return;
        }
        entries.push((key, value));
    }
    /// The value of `key` (the first one, should a lenient dictionary hold it twice).
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        let entries = self.entries();
        if self.sorted && entries.len() > 8 {
            return entries
                .binary_search_by(|(k, _)| (*k).cmp(key))
                .ok()
                .and_then(|i| entries.get(i))
                .map(|(_, v)| v);
        }
        entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
    /// The entries in decoded or inserted order.
    #[inline]
    pub fn entries(&self) -> &[(&'a [u8], Value<'a>)] {
        self.entries.as_slice()
    }
    /// Iterates over `(key, value)` in decoded or inserted order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'a [u8], &Value<'a>)> + '_ {
        self.entries().iter().map(|(k, v)| (*k, v))
    }
    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries().len()
    }
    /// Whether the dictionary is empty.
    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }
    /// The exact bytes this dictionary was decoded from (`None` if built or modified).
    pub fn raw(&self) -> Option<&'a [u8]> {
        self.entries.raw()
    }
    /// Takes the entries out (a decoded dictionary's entries are copied out of the
    /// storage they share with the rest of the document; nested containers are shared,
    /// not copied).
    pub fn into_entries(self) -> Vec<(&'a [u8], Value<'a>)> {
        self.entries.into_vec()
    }
}

impl<'a> FromIterator<(&'a [u8], Value<'a>)> for Dict<'a> {
    fn from_iter<T: IntoIterator<Item = (&'a [u8], Value<'a>)>>(iter: T) -> Self {
        let mut d = Dict::new();
        for (k, v) in iter {
            d.insert(k, v);
        }
        d
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(b: &'a [u8]) -> Self {
        Value::Bytes(b)
    }
}
impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::Bytes(s.as_bytes())
    }
}
impl From<i64> for Value<'_> {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl<'a> From<List<'a>> for Value<'a> {
    fn from(l: List<'a>) -> Self {
        Value::List(l)
    }
}
impl<'a> From<Dict<'a>> for Value<'a> {
    fn from(d: Dict<'a>) -> Self {
        Value::Dict(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_stays_small() {
        // The tree moves values around a lot; keep them at most six words.
        assert!(std::mem::size_of::<Value<'_>>() <= 48);
    }

    #[test]
    fn insert_keeps_keys_unique() {
        let mut d = Dict::new();
        d.insert(b"b", Value::Int(1));
        d.insert(b"a", Value::Int(2));
        d.insert(b"b", Value::Int(3));
        d.insert(b"c", Value::Int(4));
        d.insert(b"c", Value::Int(5));
        assert_eq!(d.len(), 3);
        assert_eq!(d.get(b"b"), Some(&Value::Int(3)));
        assert_eq!(d.get(b"c"), Some(&Value::Int(5)));
    }
}
