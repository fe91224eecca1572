//! The magnet link: parse and format.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use metainfo::{InfoHash, InfoHashV1, InfoHashV2};
use url::form_urlencoded;

use crate::{FileSelection, MagnetError, ParamError, PeerAddr};

/// The most parameters [`MagnetLink::parse`] accepts; a longer link is refused with
/// [`MagnetError::TooManyParameters`] before anything more is stored.
pub const MAX_PARAMETERS: usize = 1024;

/// Multihash prefix of a sha2-256 digest: function code 0x12, length 0x20.
const SHA2_256_MULTIHASH_PREFIX: &str = "1220";

/// A parsed magnet link (BEP 9), with the v2 `urn:btmh:` form (BEP 52) and the
/// `so` file selection (BEP 53).
///
/// It always names a torrent: a v1, a v2 or a hybrid [`InfoHash`]. Every other
/// parameter is kept: the known ones in their fields (lists in the order given), the
/// rest in [`extra`](MagnetLink::extra), in order, re-emitted by [`Display`](fmt::Display).
///
/// Formatting writes the canonical form: `magnet:?xt=urn:btih:<hex>` and/or
/// `xt=urn:btmh:1220<hex>`, then `dn`, `tr`, `ws`, `xs`, `as`, `x.pe`, `so` and the
/// extra parameters, each value percent-encoded. Parsing that text gives back an
/// equal `MagnetLink`, for every link [`parse`](MagnetLink::parse) returns and every
/// link built with the methods here that keeps the rules on [`PeerAddr`] and
/// [`extra_mut`](MagnetLink::extra_mut) and has at most [`MAX_PARAMETERS`]
/// parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MagnetLink {
    info_hash: InfoHash,
    display_name: Option<String>,
    trackers: Vec<String>,
    web_seeds: Vec<String>,
    exact_sources: Vec<String>,
    acceptable_sources: Vec<String>,
    peers: Vec<PeerAddr>,
    select_only: Option<FileSelection>,
    extra: Vec<(String, String)>,
}

/// The parameter names this crate understands.
#[derive(Clone, Copy)]
enum Key {
    Xt,
    Dn,
    Tr,
    Ws,
    Xs,
    As,
    Pe,
    So,
    Other,
}

fn classify(key: &str) -> Key {
    match key {
        "xt" => Key::Xt,
        "dn" => Key::Dn,
        "tr" => Key::Tr,
        "ws" => Key::Ws,
        "xs" => Key::Xs,
        "as" => Key::As,
        "x.pe" => Key::Pe,
        "so" => Key::So,
        _ => match key.split_once('.') {
            // The numbered forms (`xt.1`, `tr.2`, ...) of the repeatable parameters.
            Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => match base
            {
                "xt" => Key::Xt,
                "tr" => Key::Tr,
                "ws" => Key::Ws,
                "xs" => Key::Xs,
                "as" => Key::As,
                _ => Key::Other,
            },
            _ => Key::Other,
        },
    }
}

/// What an `xt` value names.
enum Topic {
    V1(InfoHashV1),
    V2(InfoHashV2),
    /// Some other URN (`urn:sha1:`, `urn:ed2k:`, ...), kept as an extra parameter.
    Other,
}

fn parse_xt(value: &str) -> Result<Topic, ParamError> {
    const PREFIX_LEN: usize = "urn:btih:".len();
    let Some(prefix) = value.get(..PREFIX_LEN) else {
        return Ok(Topic::Other);
    };
    let hash = &value[PREFIX_LEN..];
    if prefix.eq_ignore_ascii_case("urn:btih:") {
        parse_btih(hash, PREFIX_LEN).map(Topic::V1)
    } else if prefix.eq_ignore_ascii_case("urn:btmh:") {
        parse_btmh(hash, PREFIX_LEN).map(Topic::V2)
    } else {
        Ok(Topic::Other)
    }
}

/// 40 hex or 32 base32 characters (either case). `base` is the hash's offset in the value.
fn parse_btih(s: &str, base: usize) -> Result<InfoHashV1, ParamError> {
    let mut out = [0u8; 20];
    match s.len() {
        40 => decode_hex(s.as_bytes(), &mut out)
            .map_err(|offset| ParamError::Hex {
                offset: base + offset,
            })
            .map(|()| InfoHashV1(out)),
        32 => {
            let mut upper = [0u8; 32];
            upper.copy_from_slice(s.as_bytes());
            upper.make_ascii_uppercase();
            match data_encoding::BASE32.decode_mut(&upper, &mut out) {
                Ok(20) => Ok(InfoHashV1(out)),
                // Fewer bytes: the text ends in `=` padding.
                Ok(_) => Err(ParamError::Base32 {
                    offset: base + s.find('=').unwrap_or(0),
                }),
                Err(e) => Err(ParamError::Base32 {
                    offset: base + e.error.position,
                }),
            }
        }
        len => Err(ParamError::BtihLength { len }),
    }
}

/// A hex multihash that must be sha2-256 (code 0x12) with a 32-byte digest. Only the
/// header and a digest of the right length are decoded: no allocation, whatever the input.
fn parse_btmh(s: &str, base: usize) -> Result<InfoHashV2, ParamError> {
    if s.len() % 2 != 0 {
        return Err(ParamError::HexOddLength { len: s.len() });
    }
    // Two varints of at most 9 bytes each.
    let mut header = [0u8; 18];
    let header = &mut header[..(s.len() / 2).min(18)];
    decode_hex(s.as_bytes(), header).map_err(|offset| ParamError::Hex {
        offset: base + offset,
    })?;
    let mut rest = &header[..];
    let code = read_varint(&mut rest).ok_or(ParamError::MultihashVarint)?;
    if code != 0x12 {
        return Err(ParamError::MultihashCode { code });
    }
    let declared = read_varint(&mut rest).ok_or(ParamError::MultihashVarint)?;
    let digest_at = 2 * (header.len() - rest.len());
    let digest_hex = &s.as_bytes()[digest_at..];
    let mut digest = [0u8; 32];
    if declared != 32 || digest_hex.len() != 64 {
        return Err(ParamError::MultihashLength {
            declared,
            actual: digest_hex.len() / 2,
        });
    }
    decode_hex(digest_hex, &mut digest).map_err(|offset| ParamError::Hex {
        offset: base + digest_at + offset,
    })?;
    Ok(InfoHashV2(digest))
}

/// An unsigned LEB128 varint as multiformats defines it: at most 9 bytes, minimally
/// encoded. Advances `buf` past it.
fn read_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().enumerate().take(9) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                return None; // not minimal
            }
            *buf = &buf[i + 1..];
            return Some(value);
        }
    }
    None
}

/// Decodes `2 * out.len()` hex digits (either case); `Err` holds the offset of the
/// first bad byte.
fn decode_hex(s: &[u8], out: &mut [u8]) -> Result<(), usize> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    for (i, (o, pair)) in out.iter_mut().zip(s.chunks_exact(2)).enumerate() {
        let hi = nibble(pair[0]).ok_or(2 * i)?;
        let lo = nibble(pair[1]).ok_or(2 * i + 1)?;
        *o = (hi << 4) | lo;
    }
    Ok(())
}

fn invalid(name: &str, offset: usize, reason: ParamError) -> MagnetError {
    MagnetError::InvalidParameter {
        name: name.to_owned(),
        offset,
        reason,
    }
}

/// Keeps the first value of a single-valued hash; a repeat must be equal.
fn set_once<T: PartialEq>(slot: &mut Option<T>, value: T) -> Result<(), ParamError> {
    match slot {
        None => {
            *slot = Some(value);
            Ok(())
        }
        Some(old) if *old == value => Ok(()),
        Some(_) => Err(ParamError::ConflictingInfoHash),
    }
}

impl MagnetLink {
    /// A link naming `info_hash` and nothing else.
    pub fn new(info_hash: InfoHash) -> MagnetLink {
        MagnetLink {
            info_hash,
            display_name: None,
            trackers: Vec::new(),
            web_seeds: Vec::new(),
            exact_sources: Vec::new(),
            acceptable_sources: Vec::new(),
            peers: Vec::new(),
            select_only: None,
            extra: Vec::new(),
        }
    }

    /// Parses a magnet link.
    ///
    /// - The text must start with `magnet:?` (case ignored); surrounding whitespace
    ///   is ignored. Parameters are `&`-separated `name=value` pairs, percent-decoded
    ///   with `+` as a space (`application/x-www-form-urlencoded`); invalid UTF-8 after
    ///   decoding becomes U+FFFD. Empty pairs (`&&`) are skipped; a name without `=`
    ///   has an empty value.
    /// - `xt` (and `xt.1`, `xt.2`, ...): `urn:btih:` + 40 hex or 32 base32 characters,
    ///   `urn:btmh:` + a hex sha2-256 multihash (`1220` + 64 hex). A repeated hash of
    ///   the same kind must be equal. Other URNs are kept as extra parameters. At
    ///   least one btih or btmh is required.
    /// - `tr`, `ws`, `xs`, `as` (and their numbered forms): kept as strings, in order.
    /// - `x.pe`: a [`PeerAddr`]. `so`: a [`FileSelection`].
    /// - `dn`, `so`: the first one counts; later ones are kept as extra parameters.
    /// - Anything else: kept, in order, in [`extra`](MagnetLink::extra).
    ///
    /// Work and memory are linear in the input length; more than
    /// [`MAX_PARAMETERS`] parameters are refused.
    pub fn parse(input: &str) -> Result<MagnetLink, MagnetError> {
        let trimmed = input.trim_start();
        let mut offset = input.len() - trimmed.len();
        let text = trimmed.trim_end();
        const SCHEME: &str = "magnet:?";
        let query = match text.get(..SCHEME.len()) {
            Some(p) if p.eq_ignore_ascii_case(SCHEME) => &text[SCHEME.len()..],
            _ => return Err(MagnetError::NotMagnet),
        };
        offset += SCHEME.len();

        let mut btih = None;
        let mut btmh = None;
        let mut link = MagnetLink::new(InfoHash::V1(InfoHashV1::default()));
        let mut count = 0usize;
        for segment in query.split('&') {
            let at = offset;
            offset += segment.len() + 1;
            // `segment` holds no `&`, so this yields at most one pair (none if empty).
            let Some((name, value)) = form_urlencoded::parse(segment.as_bytes()).next() else {
                continue;
            };
            count += 1;
            if count > MAX_PARAMETERS {
                return Err(MagnetError::TooManyParameters {
                    limit: MAX_PARAMETERS,
                });
            }
            link.take_param(name, value, &mut btih, &mut btmh)
                .map_err(|(name, reason)| invalid(&name, at, reason))?;
        }
        link.info_hash = match (btih, btmh) {
            (Some(v1), Some(v2)) => InfoHash::Hybrid(v1, v2),
            (Some(v1), None) => InfoHash::V1(v1),
            (None, Some(v2)) => InfoHash::V2(v2),
            (None, None) => return Err(MagnetError::MissingInfoHash),
        };
        Ok(link)
    }

    /// Stores one decoded parameter; on error returns its name and the reason.
    fn take_param<'a>(
        &mut self,
        name: Cow<'a, str>,
        value: Cow<'a, str>,
        btih: &mut Option<InfoHashV1>,
        btmh: &mut Option<InfoHashV2>,
    ) -> Result<(), (Cow<'a, str>, ParamError)> {
        let keep = |link: &mut MagnetLink, name: Cow<'a, str>, value: Cow<'a, str>| {
            link.extra.push((name.into_owned(), value.into_owned()));
        };
        match classify(&name) {
            Key::Xt => match parse_xt(&value) {
                Ok(Topic::V1(h)) => set_once(btih, h).map_err(|e| (name, e))?,
                Ok(Topic::V2(h)) => set_once(btmh, h).map_err(|e| (name, e))?,
                Ok(Topic::Other) => keep(self, name, value),
                Err(e) => return Err((name, e)),
            },
            Key::Dn if self.display_name.is_none() => self.display_name = Some(value.into_owned()),
            Key::Tr => self.trackers.push(value.into_owned()),
            Key::Ws => self.web_seeds.push(value.into_owned()),
            Key::Xs => self.exact_sources.push(value.into_owned()),
            Key::As => self.acceptable_sources.push(value.into_owned()),
            Key::Pe => match PeerAddr::parse(&value) {
                Ok(p) => self.peers.push(p),
                Err(e) => return Err((name, e)),
            },
            Key::So if self.select_only.is_none() => match FileSelection::parse(&value) {
                Ok(s) => self.select_only = Some(s),
                Err(e) => return Err((name, e)),
            },
            Key::Dn | Key::So | Key::Other => keep(self, name, value),
        }
        Ok(())
    }

    /// The torrent the link names: v1, v2 or hybrid.
    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// Replaces the info hash.
    pub fn set_info_hash(&mut self, info_hash: InfoHash) {
        self.info_hash = info_hash;
    }

    /// The display name (`dn`), if given.
    pub fn display_name(&self) -> Option<&str> {
        self.display_name.as_deref()
    }

    /// Sets or clears the display name.
    pub fn set_display_name(&mut self, name: Option<String>) {
        self.display_name = name;
    }

    /// Sets the display name; builder style.
    pub fn with_display_name(mut self, name: impl Into<String>) -> MagnetLink {
        self.display_name = Some(name.into());
        self
    }

    /// Tracker URLs (`tr`), in order.
    pub fn trackers(&self) -> &[String] {
        &self.trackers
    }

    /// Tracker URLs, to edit.
    pub fn trackers_mut(&mut self) -> &mut Vec<String> {
        &mut self.trackers
    }

    /// Appends a tracker URL; builder style.
    pub fn with_tracker(mut self, url: impl Into<String>) -> MagnetLink {
        self.trackers.push(url.into());
        self
    }

    /// Appends tracker URLs; builder style.
    pub fn with_trackers<I>(mut self, urls: I) -> MagnetLink
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.trackers.extend(urls.into_iter().map(Into::into));
        self
    }

    /// Web seed URLs (`ws`, BEP 19), in order.
    pub fn web_seeds(&self) -> &[String] {
        &self.web_seeds
    }

    /// Web seed URLs, to edit.
    pub fn web_seeds_mut(&mut self) -> &mut Vec<String> {
        &mut self.web_seeds
    }

    /// Appends a web seed URL; builder style.
    pub fn with_web_seed(mut self, url: impl Into<String>) -> MagnetLink {
        self.web_seeds.push(url.into());
        self
    }

    /// Exact sources (`xs`: e.g. a URL of the .torrent file), in order.
    pub fn exact_sources(&self) -> &[String] {
        &self.exact_sources
    }

    /// Exact sources, to edit.
    pub fn exact_sources_mut(&mut self) -> &mut Vec<String> {
        &mut self.exact_sources
    }

    /// Acceptable sources (`as`: fallback URLs of the content), in order.
    pub fn acceptable_sources(&self) -> &[String] {
        &self.acceptable_sources
    }

    /// Acceptable sources, to edit.
    pub fn acceptable_sources_mut(&mut self) -> &mut Vec<String> {
        &mut self.acceptable_sources
    }

    /// Peer addresses (`x.pe`), in order.
    pub fn peers(&self) -> &[PeerAddr] {
        &self.peers
    }

    /// Peer addresses, to edit.
    pub fn peers_mut(&mut self) -> &mut Vec<PeerAddr> {
        &mut self.peers
    }

    /// Appends a peer address; builder style.
    pub fn with_peer(mut self, peer: impl Into<PeerAddr>) -> MagnetLink {
        self.peers.push(peer.into());
        self
    }

    /// The files to download (`so`, BEP 53), if the link restricts them.
    pub fn select_only(&self) -> Option<&FileSelection> {
        self.select_only.as_ref()
    }

    /// Sets or clears the file selection; an empty selection clears it.
    pub fn set_select_only(&mut self, selection: Option<FileSelection>) {
        self.select_only = selection.filter(|s| !s.is_empty());
    }

    /// Sets the file selection (an empty one clears it); builder style.
    pub fn with_select_only(mut self, selection: FileSelection) -> MagnetLink {
        self.set_select_only(Some(selection));
        self
    }

    /// The other parameters, as `(name, value)` pairs, decoded, in order: unknown
    /// names, `xt` URNs other than btih/btmh, and repeated `dn` and `so`.
    pub fn extra(&self) -> &[(String, String)] {
        &self.extra
    }

    /// The other parameters, to edit. Names that [`parse`](MagnetLink::parse) reads
    /// into a field (`xt` with a btih/btmh URN, `tr`, `ws`, `xs`, `as`, `x.pe`, their
    /// numbered forms, and `dn`/`so` when the field is unset) would read back into
    /// that field, not here.
    pub fn extra_mut(&mut self) -> &mut Vec<(String, String)> {
        &mut self.extra
    }
}

impl From<InfoHash> for MagnetLink {
    fn from(info_hash: InfoHash) -> Self {
        MagnetLink::new(info_hash)
    }
}

impl FromStr for MagnetLink {
    type Err = MagnetError;
    fn from_str(s: &str) -> Result<Self, MagnetError> {
        MagnetLink::parse(s)
    }
}

/// Percent-encodes everything but ASCII letters, digits and `*-._` (space as `+`).
fn write_encoded(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    form_urlencoded::byte_serialize(s.as_bytes()).try_for_each(|chunk| f.write_str(chunk))
}

fn write_list(f: &mut fmt::Formatter<'_>, name: &str, values: &[String]) -> fmt::Result {
    for v in values {
        write!(f, "&{name}=")?;
        write_encoded(f, v)?;
    }
    Ok(())
}

/// The canonical magnet link text; see [`MagnetLink`].
impl fmt::Display for MagnetLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const V2: &str = SHA2_256_MULTIHASH_PREFIX;
        match self.info_hash {
            InfoHash::V1(h) => write!(f, "magnet:?xt=urn:btih:{h}")?,
            InfoHash::V2(h) => write!(f, "magnet:?xt=urn:btmh:{V2}{h}")?,
            InfoHash::Hybrid(h1, h2) => write!(f, "magnet:?xt=urn:btih:{h1}&xt=urn:btmh:{V2}{h2}")?,
        }
        if let Some(dn) = &self.display_name {
            f.write_str("&dn=")?;
            write_encoded(f, dn)?;
        }
        write_list(f, "tr", &self.trackers)?;
        write_list(f, "ws", &self.web_seeds)?;
        write_list(f, "xs", &self.exact_sources)?;
        write_list(f, "as", &self.acceptable_sources)?;
        for peer in &self.peers {
            f.write_str("&x.pe=")?;
            match peer {
                // Digits, hex, `.:[]` and a `%` before an IPv6 scope id.
                PeerAddr::Ip(a) => f.write_str(&a.to_string().replace('%', "%25"))?,
                PeerAddr::Host { host, port } => {
                    write_encoded(f, host)?;
                    write!(f, ":{port}")?;
                }
            }
        }
        if let Some(so) = self.select_only.as_ref().filter(|s| !s.is_empty()) {
            write!(f, "&so={so}")?;
        }
        for (name, value) in &self.extra {
            f.write_str("&")?;
            write_encoded(f, name)?;
            f.write_str("=")?;
            write_encoded(f, value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef01234567";
    const HEX2: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn v1() -> InfoHashV1 {
        HEX.parse().unwrap()
    }
    fn v2() -> InfoHashV2 {
        HEX2.parse().unwrap()
    }
    fn parse(s: &str) -> MagnetLink {
        let link = MagnetLink::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(
            MagnetLink::parse(&link.to_string()),
            Ok(link.clone()),
            "{s}"
        );
        link
    }

    #[test]
    fn btih_hex_and_base32() {
        let link = parse(&format!("magnet:?xt=urn:btih:{HEX}"));
        assert_eq!(link.info_hash(), InfoHash::V1(v1()));
        assert_eq!(link.to_string(), format!("magnet:?xt=urn:btih:{HEX}"));
        let upper = parse(&format!("MAGNET:?xt=URN:BTIH:{}", HEX.to_uppercase()));
        assert_eq!(upper, link);
        let b32 = data_encoding::BASE32.encode(&v1().0);
        assert_eq!(b32.len(), 32);
        assert_eq!(parse(&format!("magnet:?xt=urn:btih:{b32}")), link);
        let lower = b32.to_lowercase();
        assert_eq!(parse(&format!("magnet:?xt=urn:btih:{lower}")), link);
        // Whitespace around the link is ignored.
        assert_eq!(parse(&format!("  magnet:?xt=urn:btih:{HEX}\n")), link);
    }

    #[test]
    fn btmh_and_hybrid() {
        let link = parse(&format!("magnet:?xt=urn:btmh:1220{HEX2}"));
        assert_eq!(link.info_hash(), InfoHash::V2(v2()));
        assert_eq!(link.to_string(), format!("magnet:?xt=urn:btmh:1220{HEX2}"));
        let hybrid = parse(&format!(
            "magnet:?xt=urn:btmh:1220{}&xt=urn:btih:{HEX}",
            HEX2.to_uppercase()
        ));
        assert_eq!(hybrid.info_hash(), InfoHash::Hybrid(v1(), v2()));
        assert_eq!(
            hybrid.to_string(),
            format!("magnet:?xt=urn:btih:{HEX}&xt=urn:btmh:1220{HEX2}")
        );
        // Numbered forms, and a repeated equal hash.
        let numbered = parse(&format!(
            "magnet:?xt.1=urn:btih:{HEX}&xt.2=urn:btmh:1220{HEX2}&xt=urn:btih:{HEX}"
        ));
        assert_eq!(numbered, hybrid);
    }

    #[test]
    fn other_urns_are_kept() {
        let link = parse(&format!(
            "magnet:?xt=urn:sha1:YNCKHTQCWBTRNJIV4WNAE52SJUQCZO5C&xt=urn:btih:{HEX}&xt.3=urn:ed2k:00"
        ));
        assert_eq!(
            link.extra(),
            [
                (
                    "xt".into(),
                    "urn:sha1:YNCKHTQCWBTRNJIV4WNAE52SJUQCZO5C".into()
                ),
                ("xt.3".into(), "urn:ed2k:00".into())
            ]
        );
    }

    #[test]
    fn display_name() {
        let link = parse(&format!(
            "magnet:?xt=urn:btih:{HEX}&dn=Big+Buck%20Bunny%2B%C3%A9&dn=second"
        ));
        assert_eq!(link.display_name(), Some("Big Buck Bunny+é"));
        assert_eq!(link.extra(), [("dn".into(), "second".into())]);
        assert_eq!(
            link.to_string(),
            format!("magnet:?xt=urn:btih:{HEX}&dn=Big+Buck+Bunny%2B%C3%A9&dn=second")
        );
        // Invalid UTF-8 becomes U+FFFD and stays stable from then on.
        let bad = parse(&format!("magnet:?xt=urn:btih:{HEX}&dn=%FFx"));
        assert_eq!(bad.display_name(), Some("\u{fffd}x"));
        let empty = parse(&format!("magnet:?xt=urn:btih:{HEX}&dn="));
        assert_eq!(empty.display_name(), Some(""));
    }

    #[test]
    fn trackers_and_sources() {
        let link = parse(&format!(
            "magnet:?tr=udp%3A%2F%2Fa.example%3A1337%2Fannounce&xt=urn:btih:{HEX}\
             &tr.1=http://b.example/announce?passkey=x%2520y&ws=https%3A%2F%2Fseed.example%2Ff%2F\
             &tr=wss%3A%2F%2Fc.example&xs=https://x.example/t.torrent&as=http://mirror/f&as.2=ftp://m2/f"
        ));
        assert_eq!(
            link.trackers(),
            [
                "udp://a.example:1337/announce",
                "http://b.example/announce?passkey=x%20y",
                "wss://c.example"
            ]
        );
        assert_eq!(link.web_seeds(), ["https://seed.example/f/"]);
        assert_eq!(link.exact_sources(), ["https://x.example/t.torrent"]);
        assert_eq!(link.acceptable_sources(), ["http://mirror/f", "ftp://m2/f"]);
        assert!(link.to_string().contains(
            "&tr=udp%3A%2F%2Fa.example%3A1337%2Fannounce\
             &tr=http%3A%2F%2Fb.example%2Fannounce%3Fpasskey%3Dx%2520y&tr=wss%3A%2F%2Fc.example&ws="
        ));
    }

    #[test]
    fn peers() {
        let link = parse(&format!(
            "magnet:?xt=urn:btih:{HEX}&x.pe=10.0.0.1:6881&x.pe=%5B2001:db8::1%5D:51413\
             &x.pe=[fe80::1%253]:80&x.pe=peer.example:7000"
        ));
        assert_eq!(
            link.peers(),
            [
                PeerAddr::Ip("10.0.0.1:6881".parse().unwrap()),
                PeerAddr::Ip("[2001:db8::1]:51413".parse().unwrap()),
                PeerAddr::parse("[fe80::1%3]:80").unwrap(),
                PeerAddr::Host {
                    host: "peer.example".into(),
                    port: 7000
                },
            ]
        );
        assert!(link.to_string().ends_with(
            "&x.pe=10.0.0.1:6881&x.pe=[2001:db8::1]:51413&x.pe=[fe80::1%253]:80&x.pe=peer.example:7000"
        ));
    }

    #[test]
    fn select_only() {
        let link = parse(&format!("magnet:?xt=urn:btih:{HEX}&so=0,2,4-6&so=junk"));
        let so = link.select_only().unwrap();
        assert_eq!(so.ranges(), &[0..=0, 2..=2, 4..=6]);
        assert_eq!(link.extra(), [("so".into(), "junk".into())]);
        assert!(link.to_string().ends_with("&so=0,2,4-6&so=junk"));
        // Percent-encoded commas are fine too.
        let enc = parse(&format!("magnet:?xt=urn:btih:{HEX}&so=0%2C2%2C4-6"));
        assert_eq!(enc.select_only(), Some(so));
    }

    #[test]
    fn unknown_parameters_keep_order() {
        let link = parse(&format!(
            "magnet:?b=2&xt=urn:btih:{HEX}&&a=1&flag&xl=1024&tr.x=t&=v&x.foo=%26%3D"
        ));
        let extra: Vec<(&str, &str)> = link
            .extra()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            extra,
            [
                ("b", "2"),
                ("a", "1"),
                ("flag", ""),
                ("xl", "1024"),
                ("tr.x", "t"),
                ("", "v"),
                ("x.foo", "&=")
            ]
        );
        assert!(
            link.to_string()
                .ends_with("&b=2&a=1&flag=&xl=1024&tr.x=t&=v&x.foo=%26%3D")
        );
    }

    #[test]
    fn builder() {
        let mut link = MagnetLink::new(InfoHash::Hybrid(v1(), v2()))
            .with_display_name("a b")
            .with_trackers(["udp://t:1", "http://u/announce"])
            .with_web_seed("http://w/")
            .with_peer(PeerAddr::Host {
                host: "h".into(),
                port: 1,
            })
            .with_select_only(FileSelection::new().with(1, 3));
        link.exact_sources_mut().push("x".into());
        link.acceptable_sources_mut().push("y".into());
        link.extra_mut().push(("k".into(), "v".into()));
        assert_eq!(
            link.to_string(),
            format!(
                "magnet:?xt=urn:btih:{HEX}&xt=urn:btmh:1220{HEX2}&dn=a+b&tr=udp%3A%2F%2Ft%3A1\
                 &tr=http%3A%2F%2Fu%2Fannounce&ws=http%3A%2F%2Fw%2F&xs=x&as=y&x.pe=h:1&so=1-3&k=v"
            )
        );
        assert_eq!(parse(&link.to_string()), link);
        link.set_select_only(Some(FileSelection::new()));
        assert_eq!(link.select_only(), None);
        link.set_display_name(None);
        link.set_info_hash(InfoHash::V2(v2()));
        assert_eq!(
            MagnetLink::from(InfoHash::V2(v2())).info_hash(),
            link.info_hash()
        );
    }

    #[test]
    fn multihash_varint() {
        assert_eq!(read_varint(&mut &[0x12u8][..]), Some(0x12));
        assert_eq!(read_varint(&mut &[0x80u8, 0x01][..]), Some(0x80));
        assert_eq!(read_varint(&mut &[0x92u8, 0x00][..]), None); // not minimal
        assert_eq!(read_varint(&mut &[0x80u8][..]), None); // cut short
        assert_eq!(read_varint(&mut &[0xffu8; 10][..]), None); // too long
        assert_eq!(read_varint(&mut &[][..]), None);
    }

    /// Every malformed input with the exact error it must give.
    #[test]
    fn malformed_inputs() {
        let bad = |name: &str, offset: usize, reason: ParamError| MagnetError::InvalidParameter {
            name: name.into(),
            offset,
            reason,
        };
        let many = format!("magnet:?xt=urn:btih:{HEX}{}", "&a=1".repeat(MAX_PARAMETERS));
        let cases: Vec<(String, MagnetError)> = vec![
            ("".into(), MagnetError::NotMagnet),
            ("magnet:".into(), MagnetError::NotMagnet),
            (
                format!("http://x/?xt=urn:btih:{HEX}"),
                MagnetError::NotMagnet,
            ),
            (format!("magnet:xt=urn:btih:{HEX}"), MagnetError::NotMagnet),
            ("magnét:?".into(), MagnetError::NotMagnet),
            ("magnet:?".into(), MagnetError::MissingInfoHash),
            ("magnet:?dn=x&tr=y".into(), MagnetError::MissingInfoHash),
            (
                "magnet:?xt=urn:sha1:ABC".into(),
                MagnetError::MissingInfoHash,
            ),
            (
                format!("magnet:?XT=urn:btih:{HEX}"),
                MagnetError::MissingInfoHash,
            ),
            (
                many,
                MagnetError::TooManyParameters {
                    limit: MAX_PARAMETERS,
                },
            ),
            (
                "magnet:?xt=urn:btih:0123".into(),
                bad("xt", 8, ParamError::BtihLength { len: 4 }),
            ),
            (
                format!("magnet:?dn=a&xt=urn:btih:{}g", &HEX[..39]),
                bad("xt", 13, ParamError::Hex { offset: 48 }),
            ),
            (
                format!(" magnet:?xt.1=urn:btih:{}é", &HEX[..38]),
                bad("xt.1", 9, ParamError::Hex { offset: 47 }),
            ),
            (
                "magnet:?xt=urn:btih:QHQXPYWMACKDWKP47RRVIV7VOURXFE50".into(),
                bad("xt", 8, ParamError::Base32 { offset: 40 }),
            ),
            (
                "magnet:?xt=urn:btih:QHQXPYWMACKDWKP47RRVIV7VOURX====".into(),
                bad("xt", 8, ParamError::Base32 { offset: 36 }),
            ),
            (
                format!("magnet:?xt=urn:btih:{}====", "A".repeat(28)),
                bad("xt", 8, ParamError::Base32 { offset: 37 }),
            ),
            (
                format!("magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{}", "f".repeat(40)),
                bad("xt", 61, ParamError::ConflictingInfoHash),
            ),
            (
                format!(
                    "magnet:?xt=urn:btmh:1220{HEX2}&xt=urn:btmh:1220{}",
                    "0".repeat(64)
                ),
                bad("xt", 89, ParamError::ConflictingInfoHash),
            ),
            (
                "magnet:?xt=urn:btmh:122".into(),
                bad("xt", 8, ParamError::HexOddLength { len: 3 }),
            ),
            (
                format!("magnet:?xt=urn:btmh:12x0{HEX2}"),
                bad("xt", 8, ParamError::Hex { offset: 11 }),
            ),
            (
                format!("magnet:?xt=urn:btmh:1220{}z", &HEX2[..63]),
                bad("xt", 8, ParamError::Hex { offset: 76 }),
            ),
            (
                format!("magnet:?xt=urn:btmh:1220{}", "ab".repeat(1 << 20)),
                bad(
                    "xt",
                    8,
                    ParamError::MultihashLength {
                        declared: 32,
                        actual: 1 << 20,
                    },
                ),
            ),
            (
                format!("magnet:?xt=urn:btmh:1114{HEX}"),
                bad("xt", 8, ParamError::MultihashCode { code: 0x11 }),
            ),
            (
                format!("magnet:?xt=urn:btmh:1220{HEX}"),
                bad(
                    "xt",
                    8,
                    ParamError::MultihashLength {
                        declared: 32,
                        actual: 20,
                    },
                ),
            ),
            (
                format!("magnet:?xt=urn:btmh:1221{HEX2}00"),
                bad(
                    "xt",
                    8,
                    ParamError::MultihashLength {
                        declared: 33,
                        actual: 33,
                    },
                ),
            ),
            (
                format!("magnet:?xt=urn:btmh:1220{HEX2}00"),
                bad(
                    "xt",
                    8,
                    ParamError::MultihashLength {
                        declared: 32,
                        actual: 33,
                    },
                ),
            ),
            (
                "magnet:?xt=urn:btmh:".into(),
                bad("xt", 8, ParamError::MultihashVarint),
            ),
            (
                "magnet:?xt=urn:btmh:12".into(),
                bad("xt", 8, ParamError::MultihashVarint),
            ),
            (
                format!("magnet:?xt=urn:btih:{HEX}&x.pe=1.2.3.4"),
                bad("x.pe", 61, ParamError::PeerAddress),
            ),
            (
                format!("magnet:?xt=urn:btih:{HEX}&x.pe=1.2.3.4:99999"),
                bad("x.pe", 61, ParamError::Port),
            ),
            (
                format!("magnet:?xt=urn:btih:{HEX}&x.pe=2001:db8::1:80"),
                bad("x.pe", 61, ParamError::PeerAddress),
            ),
            (
                format!("magnet:?xt=urn:btih:{HEX}&x.pe="),
                bad("x.pe", 61, ParamError::PeerAddress),
            ),
            (
                format!("magnet:?xt=urn:btih:{HEX}&so=4-2"),
                bad("so", 61, ParamError::SelectionRange { start: 4, end: 2 }),
            ),
            (
                format!("magnet:?xt=urn:btih:{HEX}&so="),
                bad("so", 61, ParamError::SelectionEmpty { offset: 0 }),
            ),
            (
                format!("magnet:?xt=urn:btih:{HEX}&so=1,x"),
                bad("so", 61, ParamError::SelectionIndex { offset: 2 }),
            ),
            (
                // The error names the parameter even before the info hash is known.
                "magnet:?x.pe=nope&xt=urn:btih:0".into(),
                bad("x.pe", 8, ParamError::PeerAddress),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(MagnetLink::parse(&input), Err(want), "{input:?}");
        }
    }

    #[test]
    fn error_messages() {
        let e = MagnetLink::parse(&format!("magnet:?xt=urn:btih:{HEX}&so=4-2")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid `so` parameter at offset 61: file range start 4 is greater than its end 2"
        );
        assert_eq!(
            MagnetError::MissingInfoHash.to_string(),
            "the magnet link has no `xt=urn:btih:` or `xt=urn:btmh:` parameter"
        );
    }
}
