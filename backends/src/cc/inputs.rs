//! Everything a compile read, what could have been read instead, and whether the result
//! may be kept: the pieces of [`Inputs`](crate::Inputs) that are not the depfile itself.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::paths::normalize;
use super::probe::SearchList;

/// Files the flags name that the compiler (or its driver) reads, resolved against the
/// compile's directory: `-include`, `-imacros`, `-include-pch`, `-specs=`, `-fplugin=`,
/// `--config`, response files (`@file`), and profile and sanitizer lists (`-fprofile-use=`,
/// `-fprofile-instr-use=`, `-fprofile-sample-use=`, `-fauto-profile=`,
/// `-fsanitize-ignorelist=`, `-fsanitize-blacklist=`) when they name a file.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct FlagFiles {
    /// The files that exist.
    pub read: Vec<PathBuf>,
    /// The `-include` files (existing or not): GCC and Clang use `<file>.gch` or
    /// `<file>.pch` instead when one exists.
    pub includes: Vec<PathBuf>,
    /// `-I` and `-iquote` directories: not system directories.
    pub user_dirs: Vec<PathBuf>,
}

/// Options whose next argument (or joined value) is a file the compile reads.
const FILE_OPTIONS: &[&str] = &["-include-pch", "-include", "-imacros", "-specs", "--config"];

/// Joined-only options naming a file the compile reads.
const JOINED_FILE_OPTIONS: &[&str] = &[
    "-specs=",
    "--config=",
    "-fplugin=",
    "-fprofile-use=",
    "-fprofile-instr-use=",
    "-fprofile-sample-use=",
    "-fauto-profile=",
    "-fsanitize-ignorelist=",
    "-fsanitize-blacklist=",
];

/// Scans `flags` for the files they name ([`FlagFiles`]), relative ones against `cwd`.
pub(crate) fn flag_files(flags: &[String], cwd: &Path) -> FlagFiles {
    let mut out = FlagFiles::default();
    let add = |option: &str, value: &str, out: &mut FlagFiles| {
        let path = normalize(cwd, Path::new(value));
        match option {
            "-I" | "-iquote" => out.user_dirs.push(path),
            _ => {
                if option == "-include" {
                    out.includes.push(path.clone());
                }
                if path.is_file() {
                    out.read.push(path);
                }
            }
        }
    };
    let mut iter = flags.iter();
    while let Some(flag) = iter.next() {
        if let Some(file) = flag.strip_prefix('@') {
            add("@", file, &mut out);
            continue;
        }
        if let Some((option, value)) = JOINED_FILE_OPTIONS
            .iter()
            .find_map(|o| flag.strip_prefix(o).map(|v| (*o, v)))
        {
            add(option, value, &mut out);
            continue;
        }
        let separate = FILE_OPTIONS.iter().chain(&["-I", "-iquote"]);
        if let Some(option) = separate.clone().find(|o| flag == *o) {
            if let Some(value) = iter.next() {
                add(option, value, &mut out);
            }
            continue;
        }
        // Joined forms: `-Idir`, `-iquotedir`, `-includefile`, `-imacrosfile`.
        let joined = ["-include-pch", "-include", "-imacros", "-iquote", "-I"];
        if let Some(option) = joined
            .iter()
            .find(|o| flag.starts_with(**o) && flag.len() > o.len())
        {
            if *option == "-include" && flag.starts_with("-include-pch") {
                continue;
            }
            add(option, &flag[option.len()..], &mut out);
        }
    }
    out
}

/// The precompiled headers GCC or Clang would use instead of `header`.
pub(crate) fn pch_variants(header: &Path) -> [PathBuf; 2] {
    let with = |ext: &str| {
        let mut s = header.as_os_str().to_owned();
        s.push(ext);
        PathBuf::from(s)
    };
    [with(".gch"), with(".pch")]
}

/// The include search directories in the order they are searched, as far as `-E -v`
/// tells: directories that did not exist when probed first (their place is not
/// printed, so they are taken to come before every other), then the `"..."` list, then
/// the `<...>` list; made absolute against `cwd`, without duplicates. Each is marked
/// whether it is a system directory: not named by `-I`, `-iquote` or `CPATH`. Also
/// returns how many of the first directories are those that did not exist.
pub(crate) fn search_dirs(
    list: &SearchList,
    cwd: &Path,
    user_dirs: &[PathBuf],
) -> (Vec<(PathBuf, bool)>, usize) {
    let mut out: Vec<(PathBuf, bool)> = Vec::new();
    let mut unplaced = 0;
    for (n, dir) in list
        .missing
        .iter()
        .chain(&list.quote)
        .chain(&list.bracket)
        .enumerate()
    {
        let dir = normalize(cwd, Path::new(dir));
        if !out.iter().any(|(d, _)| *d == dir) {
            let system = !user_dirs.contains(&dir);
            out.push((dir, system));
            if n < list.missing.len() {
                unplaced += 1;
            }
        }
    }
    (out, unplaced)
}

/// The `CPATH` directories of `env` (`NAME=value` entries), against `cwd` (an empty
/// entry is the current directory).
pub(crate) fn cpath_dirs(env: &[String], cwd: &Path) -> Vec<PathBuf> {
    env.iter()
        .filter_map(|v| v.strip_prefix("CPATH="))
        .flat_map(|v| v.split(':'))
        .map(|d| normalize(cwd, Path::new(if d.is_empty() { "." } else { d })))
        .collect()
}

/// Paths that do not exist and whose creation would change what the compiler reads
/// ("shadowing"): for each header `P` read and each search directory `D` that contains
/// it (`rel` = `P` relative to `D`), every `D'/rel` that does not exist, for `D'` each
/// search directory before `D`, and each directory of the source and of the headers
/// outside system directories (a quoted `#include` looks next to the file that includes
/// it first). For the headers in `pch_able` (what GCC may replace by a precompiled
/// header) `<candidate>.gch` too, and `P.gch` itself.
///
/// Each candidate is recorded as the first path from `D'` down to it that does not
/// exist: `D'/rel` itself when its directory exists, else the missing directory, which
/// stands for every candidate below it (libstdc++'s ~150 headers need one entry,
/// `/usr/local/include/c++`, not 150). Creating that directory invalidates too.
///
/// The first `unplaced` directories of `search` did not exist when the compiler was
/// probed, so where they stand in the search order is unknown: for a header found in
/// one of them, every other search directory counts as earlier.
///
/// The work is bounded by (headers) × (search directories + includer directories)
/// `stat` calls (each path's existence asked once), and runs only when a unit is
/// compiled.
pub(crate) fn shadowing(
    headers: &[PathBuf],
    pch_able: &[PathBuf],
    source: &Path,
    search: &[(PathBuf, bool)],
    unplaced: usize,
) -> Vec<PathBuf> {
    let mut includers: Vec<&Path> = Vec::new();
    let sources = std::iter::once(source).chain(
        headers
            .iter()
            .map(PathBuf::as_path)
            .filter(|h| !search.iter().any(|(d, system)| *system && h.starts_with(d))),
    );
    for file in sources {
        if let Some(dir) = file.parent()
            && !includers.contains(&dir)
        {
            includers.push(dir);
        }
    }
    let mut absent = Vec::new();
    let mut exists: HashMap<PathBuf, bool> = HashMap::new();
    // `dir/rel` if it does not exist; or rather the first path on the way from `dir`
    // to it that does not exist, which one entry covers for every header below it
    // (`/usr/local/include/c++` for all of libstdc++'s headers).
    let mut consider = |dir: &Path, rel: &Path, absent: &mut Vec<PathBuf>| {
        let mut path = dir.to_path_buf();
        let mut components = rel.components();
        loop {
            let found = *exists.entry(path.clone()).or_insert_with(|| path.exists());
            if !found {
                absent.push(path);
                return;
            }
            match components.next() {
                Some(c) => path.push(c),
                None => return,
            }
        }
    };
    let gch = |rel: &Path| pch_variants(rel)[0].clone();
    for header in headers {
        let pch = pch_able.contains(header);
        if pch && let (Some(dir), Some(name)) = (header.parent(), header.file_name()) {
            consider(dir, &gch(Path::new(name)), &mut absent);
        }
        for (i, (dir, _)) in search.iter().enumerate() {
            let Ok(rel) = header.strip_prefix(dir) else {
                continue;
            };
            let earlier = search
                .iter()
                .enumerate()
                .filter(|(j, _)| if i < unplaced { *j != i } else { *j < i })
                .map(|(_, (d, _))| d.as_path());
            for other in earlier.chain(includers.iter().copied()) {
                if other.join(rel) == *header {
                    continue;
                }
                if pch {
                    consider(other, &gch(rel), &mut absent);
                }
                consider(other, rel, &mut absent);
            }
        }
    }
    absent.sort();
    absent.dedup();
    absent
}

/// The first of `__DATE__`, `__TIME__` and `__TIMESTAMP__` that `text` uses as a
/// token, outside comments and string and character literals. Conservative: a
/// continued `//` comment or string is taken to end at the line's end, and a raw
/// string's contents count; a macro name made by pasting (`__DA ## TE__`) is not seen.
pub(crate) fn time_macro(text: &[u8]) -> Option<&'static str> {
    const MACROS: [&str; 3] = ["__DATE__", "__TIME__", "__TIMESTAMP__"];
    let mut i = 0;
    let n = text.len();
    while i < n {
        let c = text[i];
        match c {
            b'/' if text.get(i + 1) == Some(&b'/') => {
                while i < n && text[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if text.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < n && !(text[i] == b'*' && text.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b'"' | b'\'' => {
                // A `'` right after a digit or letter is a digit separator (`1'000`)
                // or a suffix, not a character literal.
                if c == b'\'' && i > 0 && text[i - 1].is_ascii_alphanumeric() {
                    i += 1;
                    continue;
                }
                i += 1;
                while i < n && text[i] != c && text[i] != b'\n' {
                    if text[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < n && (text[i].is_ascii_alphanumeric() || text[i] == b'_') {
                    i += 1;
                }
                let word = &text[start..i];
                if let Some(m) = MACROS.iter().find(|m| m.as_bytes() == word) {
                    return Some(m);
                }
            }
            b'0'..=b'9' => {
                // A number (with its suffix) is one token: `1__DATE__` is not the macro.
                while i < n
                    && (text[i].is_ascii_alphanumeric() || matches!(text[i], b'_' | b'.' | b'\''))
                {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_macros_outside_comments_and_strings() {
        assert_eq!(time_macro(b"const char *d = __DATE__;"), Some("__DATE__"));
        assert_eq!(time_macro(b"x(__TIME__)"), Some("__TIME__"));
        assert_eq!(
            time_macro(b"#define T __TIMESTAMP__\n"),
            Some("__TIMESTAMP__")
        );
        assert_eq!(time_macro(b"// __DATE__\n/* __TIME__ */ int x;"), None);
        assert_eq!(time_macro(b"puts(\"__DATE__\"); char c = '\\'';"), None);
        assert_eq!(time_macro(b"int __DATE__x; int y__TIME__;"), None);
        assert_eq!(
            time_macro(b"int n = 1'000; const char *d = __DATE__;"),
            Some("__DATE__")
        );
        assert_eq!(time_macro(b"\"unterminated\n__DATE__"), Some("__DATE__"));
        assert_eq!(time_macro(b"int x = 0x1__DATE__;"), None);
    }

    #[test]
    fn flags_name_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path();
        for f in [
            "pre.h",
            "mac.h",
            "x.pch",
            "my.specs",
            "flags.rsp",
            "p.so",
            "prof.data",
        ] {
            std::fs::write(cwd.join(f), b"").unwrap();
        }
        let flags: Vec<String> = [
            "-include",
            "pre.h",
            "-imacrosmac.h",
            "-include-pch",
            "x.pch",
            "-specs=my.specs",
            "@flags.rsp",
            "-fplugin=p.so",
            "-fprofile-instr-use=prof.data",
            "-include",
            "missing.h",
            "-I",
            "inc",
            "-iquote/q",
            "-O2",
        ]
        .map(String::from)
        .to_vec();
        let found = flag_files(&flags, cwd);
        let names: Vec<_> = found
            .read
            .iter()
            .map(|p| p.strip_prefix(cwd).unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            names,
            [
                "pre.h",
                "mac.h",
                "x.pch",
                "my.specs",
                "flags.rsp",
                "p.so",
                "prof.data"
            ]
        );
        assert_eq!(found.includes, [cwd.join("pre.h"), cwd.join("missing.h")]);
        assert_eq!(found.user_dirs, [cwd.join("inc"), PathBuf::from("/q")]);
    }

    #[test]
    fn a_header_found_late_is_shadowed_by_earlier_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["d1", "d2", "src", "sys"] {
            std::fs::create_dir(root.join(d)).unwrap();
        }
        std::fs::write(root.join("d2/val.h"), b"").unwrap();
        std::fs::write(root.join("sys/std.h"), b"").unwrap();
        let search = vec![
            (root.join("d1"), false),
            (root.join("d2"), false),
            (root.join("sys"), true),
        ];
        let headers = vec![root.join("d2/val.h"), root.join("sys/std.h")];
        let absent = shadowing(&headers, &[], &root.join("src/main.c"), &search, 0);
        let want: Vec<PathBuf> = ["d1/std.h", "d1/val.h", "d2/std.h", "src/std.h", "src/val.h"]
            .iter()
            .map(|p| root.join(p))
            .collect();
        assert_eq!(absent, want);

        // A header that can be precompiled also counts its .gch.
        let absent = shadowing(
            &headers[..1],
            &headers[..1],
            &root.join("src/main.c"),
            &search,
            0,
        );
        assert!(absent.contains(&root.join("d2/val.h.gch")));
        assert!(absent.contains(&root.join("d1/val.h.gch")));

        // d2 did not exist when probed: its place is unknown, so a header found there
        // is shadowed by every other search directory, later ones included.
        let absent = shadowing(&headers[..1], &[], &root.join("src/main.c"), &search, 2);
        assert!(absent.contains(&root.join("d1/val.h")), "{absent:?}");
        assert!(absent.contains(&root.join("sys/val.h")), "{absent:?}");
    }
}
