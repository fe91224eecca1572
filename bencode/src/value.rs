//! The borrowed value tree.

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
#[derive(Debug, Clone, Default)]
pub struct List<'a> {
    pub(crate) items: Vec<Value<'a>>,
    pub(crate) raw: Option<&'a [u8]>,
}

/// A dictionary: byte-string keys to values, in the order they were decoded or inserted.
///
/// Decoded in strict mode, keys are sorted and unique. Encoding always writes keys
/// sorted as raw bytes; if a (lenient) dictionary holds a key twice, the first wins.
#[derive(Debug, Clone, Default)]
pub struct Dict<'a> {
    pub(crate) entries: Vec<(&'a [u8], Value<'a>)>,
    pub(crate) raw: Option<&'a [u8]>,
    /// Keys are known to be strictly increasing. (With `raw` set, this also means the
    /// dictionary was decoded strictly, so `raw` is its canonical encoding.)
    pub(crate) sorted: bool,
}

// Equality is about content; the raw span is where it came from.
impl PartialEq for List<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.items == other.items
    }
}
impl Eq for List<'_> {}
impl PartialEq for Dict<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
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
            Value::List(l) => l.raw,
            Value::Dict(d) => d.raw,
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
        self.raw = None;
        self.items.push(v);
    }
    /// The items.
    pub fn items(&self) -> &[Value<'a>] {
        &self.items
    }
    /// Iterates over the items.
    pub fn iter(&self) -> std::slice::Iter<'_, Value<'a>> {
        self.items.iter()
    }
    /// The number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// The item at `i`.
    pub fn get(&self, i: usize) -> Option<&Value<'a>> {
        self.items.get(i)
    }
    /// The exact bytes this list was decoded from (`None` if built or modified).
    pub fn raw(&self) -> Option<&'a [u8]> {
        self.raw
    }
    /// Takes the items out.
    pub fn into_items(self) -> Vec<Value<'a>> {
        self.items
    }
}

impl<'a> From<Vec<Value<'a>>> for List<'a> {
    fn from(items: Vec<Value<'a>>) -> Self {
        List { items, raw: None }
    }
}

impl<'a, 'b> IntoIterator for &'b List<'a> {
    type Item = &'b Value<'a>;
    type IntoIter = std::slice::Iter<'b, Value<'a>>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl<'a> Dict<'a> {
    /// An empty dictionary.
    pub fn new() -> Self {
        Dict {
            entries: Vec::new(),
            raw: None,
            sorted: true,
        }
    }
    /// Adds an entry (kept in insertion order; encoding sorts).
    ///
    /// If the key is already present, the new value replaces the old one.
    pub fn insert(&mut self, key: &'a [u8], value: Value<'a>) {
        self.raw = None;
        // Appending in key order (the common case when building) stays O(1).
        // (Only when the keys so far are sorted: then `key` is new.)
        let in_order = self.sorted && self.entries.last().is_none_or(|(last, _)| *last < key);
        if !in_order {
            if let Some(slot) = self.entries.iter_mut().find(|(k, _)| *k == key) {
                slot.1 = value;
                return;
            }
            self.sorted = false;
        }
        self.entries.push((key, value));
    }
    /// The value of `key` (the first one, should a lenient dictionary hold it twice).
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        if self.sorted && self.entries.len() > 8 {
            return self
                .entries
                .binary_search_by(|(k, _)| (*k).cmp(key))
                .ok()
                .map(|i| &self.entries[i].1);
        }
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
    /// The entries in decoded or inserted order.
    pub fn entries(&self) -> &[(&'a [u8], Value<'a>)] {
        &self.entries
    }
    /// Iterates over `(key, value)` in decoded or inserted order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'a [u8], &Value<'a>)> + '_ {
        self.entries.iter().map(|(k, v)| (*k, v))
    }
    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// Whether the dictionary is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// The exact bytes this dictionary was decoded from (`None` if built or modified).
    pub fn raw(&self) -> Option<&'a [u8]> {
        self.raw
    }
    /// Takes the entries out.
    pub fn into_entries(self) -> Vec<(&'a [u8], Value<'a>)> {
        self.entries
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
