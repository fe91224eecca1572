//! Safe relative paths for the files of a torrent.
//!
//! A torrent names its files with lists of path components chosen by whoever made it.
//! Used as they are, components like `..`, `/etc/passwd`, `C:\Windows` or `CON` would
//! write outside the download directory or into a device. This module maps any list of
//! components to a relative path that stays inside the download directory.
//!
//! # The rule: rewrite, don't reject
//!
//! Real torrents carry odd names (trailing dots, colons, reserved Windows names) and should
//! still download, so each component is rewritten, never refused:
//!
//! 1. non-UTF-8 bytes become U+FFFD (lossy UTF-8);
//! 2. an empty component or `.` is dropped;
//! 3. `..` becomes `_`;
//! 4. `/`, `\`, NUL and every other control character become `_`; a leading drive
//!    letter `X:` becomes `X_`;
//! 5. trailing dots and spaces are stripped (Windows drops them silently); a component
//!    left empty by that becomes `_`;
//! 6. a Windows reserved device name (`CON`, `PRN`, `AUX`, `NUL`, `COM1`-`COM9`,
//!    `LPT1`-`LPT9`, case-insensitive, with or without an extension) gets a `_` prefix.
//!
//! If nothing is left, the path is `_`. The torrent `name` is rewritten by the same rule
//! (an empty name becomes `_`). The result is always a relative path whose components are
//! all [`Component::Normal`](std::path::Component::Normal), so joining it to a base
//! directory stays under that directory.
//!
//! # Collisions
//!
//! Two different files can map to the same path (`a/b` and `a/b.`, or `A` and `a` on a
//! case-insensitive file system), and a file can take the name of another file's
//! directory. [`dedupe_paths`] resolves this in file order: a path that compares equal,
//! ignoring ASCII case, to an earlier file or to any file's parent directory gets `~1`,
//! `~2`, ... inserted before its extension in the last component (`a/b~1.txt`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Rewrites one component by the module rule; `None` if it is dropped (empty or `.`).
pub fn sanitize_component(raw: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(raw);
    if s.is_empty() || s == "." {
        return None;
    }
    if s == ".." {
        return Some("_".to_owned());
    }
    let mut out: String = s
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    // A drive letter prefix (`C:`) makes a path absolute or drive-relative on Windows.
    let b = out.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        out.replace_range(1..2, "_");
    }
    let trimmed = out.trim_end_matches(['.', ' ']).len();
    out.truncate(trimmed);
    if out.is_empty() {
        return Some("_".to_owned());
    }
    if is_reserved(&out) {
        out.insert(0, '_');
    }
    Some(out)
}

/// Whether `name` is a Windows reserved device name, with or without an extension.
fn is_reserved(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    let upper = stem.to_ascii_uppercase();
    match upper.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" => true,
        _ => {
            let b = upper.as_bytes();
            b.len() == 4
                && (upper.starts_with("COM") || upper.starts_with("LPT"))
                && (b'1'..=b'9').contains(&b[3])
        }
    }
}

/// Maps a list of path components to a safe relative path (see the [crate docs](crate#safe-paths)).
///
/// The result has at least one component and only `Normal` ones.
///
/// ```
/// use std::path::PathBuf;
/// use rivulet_metainfo::safe_relative_path;
/// assert_eq!(safe_relative_path(["..", "etc", "passwd"]), PathBuf::from("_/etc/passwd"));
/// assert_eq!(safe_relative_path(["/etc/passwd"]), PathBuf::from("_etc_passwd"));
/// assert_eq!(safe_relative_path(["con.txt"]), PathBuf::from("_con.txt"));
/// assert_eq!(safe_relative_path(Vec::<&str>::new()), PathBuf::from("_"));
/// ```
pub fn safe_relative_path<I, C>(components: I) -> PathBuf
where
    I: IntoIterator<Item = C>,
    C: AsRef<[u8]>,
{
    let mut p = PathBuf::new();
    for c in components {
        if let Some(s) = sanitize_component(c.as_ref()) {
            p.push(s);
        }
    }
    if p.as_os_str().is_empty() {
        p.push("_");
    }
    p
}

/// Key for case-insensitive comparison of paths.
fn key(p: &Path) -> String {
    p.to_string_lossy().to_lowercase()
}

/// Inserts `~n` before the extension of the last component of `p`.
fn with_suffix(p: &Path, n: usize) -> PathBuf {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "_".to_owned());
    let new = match name.rfind('.') {
        Some(i) if i > 0 => format!("{}~{n}{}", &name[..i], &name[i..]),
        _ => format!("{name}~{n}"),
    };
    p.with_file_name(new)
}

/// Makes paths unique in place, in order (see the [crate docs](crate#safe-paths)).
///
/// Entries whose `skip` flag is set (padding files, which are never written) are neither
/// renamed nor reserved. Only the last component of a path is ever changed.
pub fn dedupe_paths(paths: &mut [(PathBuf, bool)]) {
    let mut dirs: HashSet<String> = HashSet::new();
    for (p, skip) in paths.iter() {
        if *skip {
            continue;
        }
        for a in p.ancestors().skip(1) {
            // Once an ancestor is known, so are all of its own ancestors.
            if a.as_os_str().is_empty() || !dirs.insert(key(a)) {
                break;
            }
        }
    }
    let mut files: HashSet<String> = HashSet::new();
    // The next suffix to try per colliding path, so many copies of one name cost
    // linear, not quadratic, time.
    let mut next: HashMap<String, usize> = HashMap::new();
    for (p, skip) in paths.iter_mut() {
        if *skip {
            continue;
        }
        let mut k = key(p);
        if files.contains(&k) || dirs.contains(&k) {
            let n = next.entry(k).or_insert(1);
            loop {
                let cand = with_suffix(p, *n);
                let ck = key(&cand);
                *n += 1;
                if !files.contains(&ck) && !dirs.contains(&ck) {
                    *p = cand;
                    k = ck;
                    break;
                }
            }
        }
        files.insert(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Component;

    #[test]
    fn rewrites() {
        let cases: &[(&[&str], &str)] = &[
            (&["a", "b"], "a/b"),
            (&["..", ".."], "_/_"),
            (&[".", "", "x"], "x"),
            (&["/etc/passwd"], "_etc_passwd"),
            (&["\\\\server\\share"], "__server_share"),
            (&["C:", "x"], "C_/x"),
            (&["c:\\windows"], "c__windows"),
            (&["a\0b"], "a_b"),
            (&["CON"], "_CON"),
            (&["com1.txt"], "_com1.txt"),
            (&["LPT9.tar.gz"], "_LPT9.tar.gz"),
            (&["COM10"], "COM10"),
            (&["console"], "console"),
            (&["nul "], "_nul"),
            (&["name. . "], "name"),
            (&["..."], "_"),
            (&["a\nb\x7f"], "a_b_"),
            (&[], "_"),
            (&[".."], "_"),
        ];
        for (input, want) in cases {
            assert_eq!(
                safe_relative_path(input.iter()),
                PathBuf::from(want),
                "{input:?}"
            );
        }
        assert_eq!(
            safe_relative_path([b"\xff\xfe".as_slice()]),
            PathBuf::from("\u{fffd}\u{fffd}")
        );
    }

    #[test]
    fn dedupe() {
        let mut v: Vec<(PathBuf, bool)> = vec![
            ("t/a.txt".into(), false),
            ("t/A.TXT".into(), false),
            ("t/a.txt".into(), false),
            ("t/.pad/1".into(), true),
            ("t/.pad/1".into(), true),
            ("t/d".into(), false),
            ("t/d/x".into(), false),
            ("t/a~1.txt".into(), false),
        ];
        dedupe_paths(&mut v);
        let got: Vec<_> = v.iter().map(|(p, _)| p.to_str().unwrap()).collect();
        assert_eq!(
            got,
            [
                "t/a.txt",
                "t/A~1.TXT",
                "t/a~2.txt",
                "t/.pad/1",
                "t/.pad/1",
                "t/d~1",
                "t/d/x",
                "t/a~1~1.txt"
            ]
        );
    }

    #[test]
    fn many_duplicates_are_linear() {
        let mut v: Vec<(PathBuf, bool)> = (0..20_000).map(|_| ("t/a".into(), false)).collect();
        dedupe_paths(&mut v);
        assert_eq!(v[19_999].0, PathBuf::from("t/a~19999"));
    }

    proptest! {
        #[test]
        fn always_normal_and_inside(
            comps in proptest::collection::vec(
                prop_oneof![
                    Just(b"..".to_vec()),
                    Just(b".".to_vec()),
                    Just(b"".to_vec()),
                    Just(b"/".to_vec()),
                    Just(b"C:".to_vec()),
                    Just(b"\\..\\".to_vec()),
                    proptest::collection::vec(any::<u8>(), 0..12),
                    "[a-zA-Z0-9./\\\\: \\x00]{0,8}".prop_map(String::into_bytes),
                ],
                0..8,
            )
        ) {
            let p = safe_relative_path(&comps);
            prop_assert!(p.components().count() >= 1);
            prop_assert!(p.components().all(|c| matches!(c, Component::Normal(_))), "{:?}", p);
            let base = Path::new("/base/dir");
            let joined = base.join(&p);
            prop_assert!(joined.starts_with(base));
            prop_assert!(joined.components().count() > base.components().count());
        }

        #[test]
        fn dedupe_gives_unique_paths(names in proptest::collection::vec("[aA]{1,2}(/[aA]{1,2}){0,2}", 0..10)) {
            let mut v: Vec<(PathBuf, bool)> =
                names.iter().map(|n| (safe_relative_path(n.split('/')), false)).collect();
            dedupe_paths(&mut v);
            let keys: Vec<String> = v.iter().map(|(p, _)| key(p)).collect();
            for (i, a) in keys.iter().enumerate() {
                for (j, b) in keys.iter().enumerate() {
                    if i != j {
                        prop_assert_ne!(a, b);
                        // No file is the parent directory of another.
                        prop_assert!(!Path::new(b).starts_with(Path::new(a)), "{} under {}", b, a);
                    }
                }
            }
        }
    }
}
