//! Paths as the cache records them: absolute and normalized, or, for identity material,
//! written relative to the base directory the way `-ffile-prefix-map=<base_dir>=.` does.

use std::path::{Component, Path, PathBuf};

/// `path` made absolute against `cwd`, without `.` components and with every `..`
/// resolved: lexically when the component before it is not a symbolic link (then
/// `dir/..` is the directory the link-free `dir` sits in), otherwise against the link's
/// target, as the kernel resolves it.
pub(crate) fn normalize(cwd: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    let mut out = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => out.push(component),
            Component::CurDir => {}
            Component::ParentDir => {
                if std::fs::symlink_metadata(&out).is_ok_and(|m| m.file_type().is_symlink())
                    && let Ok(real) = std::fs::canonicalize(&out)
                {
                    out = real;
                }
                out.pop();
            }
            Component::Normal(name) => out.push(name),
        }
    }
    out
}

/// `path` with a leading `base` replaced by `.` exactly as GCC and Clang apply
/// `-ffile-prefix-map=<base>=.`, except that only a whole leading directory matches
/// (`/b/x` for base `/b`, not `/bx`): `/b/inc` becomes `./inc`, `/b` becomes `.`.
/// Anything else is returned unchanged.
pub(crate) fn relative_to_base<'a>(base: Option<&str>, path: &'a str) -> std::borrow::Cow<'a, str> {
    let Some(base) = base else {
        return path.into();
    };
    match path.strip_prefix(base) {
        Some("") => ".".into(),
        Some(rest) if rest.starts_with('/') => format!(".{rest}").into(),
        _ => path.into(),
    }
}

/// Options that take a path whose location leaves no trace in the object once the
/// base directory is mapped to `.` (the files they name are inputs by content, or
/// programs hashed by content), as a separate argument (`-I dir`) or joined (`-Idir`,
/// `--sysroot=dir`).
const PATH_OPTIONS: &[&str] = &[
    "-I",
    "-iquote",
    "-isystem",
    "-idirafter",
    "-cxx-isystem",
    "-iprefix",
    "-iwithprefix",
    "-iwithprefixbefore",
    "-isysroot",
    "-include-pch",
    "-include",
    "-imacros",
    "--sysroot",
    "-B",
    "-L",
    "--config",
    "-specs",
];

/// Joined-only options with a path value (`-fplugin=x.so`).
const JOINED_PATH_OPTIONS: &[&str] = &["-fplugin=", "--config-system-dir=", "--config-user-dir="];

/// `flags` with every path argument of a [`PATH_OPTIONS`] or [`JOINED_PATH_OPTIONS`]
/// option, and every response file (`@file`), written relative to `base`
/// ([`relative_to_base`]). Other flags are kept as they are: `-DDIR=/b/x` puts the text
/// `/b/x` into the program, so it must stay in the identity as written.
pub(crate) fn relative_flags(base: Option<&str>, flags: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(flags.len());
    let mut next_is_path = false;
    for flag in flags {
        if next_is_path {
            next_is_path = false;
            out.push(relative_to_base(base, flag).into_owned());
            continue;
        }
        if PATH_OPTIONS.contains(&flag.as_str()) {
            next_is_path = true;
            out.push(flag.clone());
            continue;
        }
        out.push(relative_flag(base, flag));
    }
    out
}

/// One joined flag made relative to `base`.
fn relative_flag(base: Option<&str>, flag: &str) -> String {
    if let Some(file) = flag.strip_prefix('@') {
        return format!("@{}", relative_to_base(base, file));
    }
    for option in JOINED_PATH_OPTIONS {
        if let Some(value) = flag.strip_prefix(option) {
            return format!("{option}{}", relative_to_base(base, value));
        }
    }
    // The longest matching option: `-include-pch` before `-include`, `-isystem` before `-I`.
    let option = PATH_OPTIONS
        .iter()
        .filter(|o| flag.starts_with(**o) && flag.len() > o.len())
        .max_by_key(|o| o.len());
    if let Some(option) = option {
        let rest = &flag[option.len()..];
        // `--sysroot=dir`, `-specs=file`, `--config=file`; but `-I=dir` is relative to
        // the sysroot, not a path of this machine, and stays as written.
        let (sep, value) = match rest.strip_prefix('=') {
            Some(value) if option.len() > 2 && !option.starts_with("-i") => ("=", value),
            Some(_) => return flag.to_owned(),
            None => ("", rest),
        };
        if value.starts_with('/') {
            return format!("{option}{sep}{}", relative_to_base(base, value));
        }
    }
    flag.to_owned()
}

/// Environment variables of [`super::OUTPUT_ENV_VARS`] whose value is a list of paths
/// (or one path) that the identity writes relative to the base directory.
pub(crate) const PATH_ENV_VARS: &[&str] = &[
    "CPATH",
    "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH",
    "OBJC_INCLUDE_PATH",
    "COMPILER_PATH",
    "GCC_EXEC_PREFIX",
];

/// `NAME=value` with the value's `:`-separated paths relative to `base` when `NAME`
/// is one of [`PATH_ENV_VARS`].
pub(crate) fn relative_env(base: Option<&str>, var: &str) -> String {
    let Some((name, value)) = var.split_once('=') else {
        return var.to_owned();
    };
    if !PATH_ENV_VARS.contains(&name) {
        return var.to_owned();
    }
    let value: Vec<_> = value
        .split(':')
        .map(|entry| relative_to_base(base, entry))
        .collect();
    format!("{name}={}", value.join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_dots_and_parents() {
        let cwd = Path::new("/nonexistent/cwd");
        assert_eq!(
            normalize(cwd, Path::new("a/./b/../c.h")),
            Path::new("/nonexistent/cwd/a/c.h")
        );
        assert_eq!(normalize(cwd, Path::new("/x/y/../../z")), Path::new("/z"));
        assert_eq!(normalize(cwd, Path::new("../../..")), Path::new("/"));
    }

    #[test]
    fn parent_of_a_symlink_is_the_parent_of_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real/deep");
        std::fs::create_dir_all(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let got = normalize(dir.path(), Path::new("link/../x.h"));
        let want = std::fs::canonicalize(dir.path().join("real"))
            .unwrap()
            .join("x.h");
        assert_eq!(got, want);
    }

    #[test]
    fn paths_become_relative_to_the_base_like_a_prefix_map() {
        let base = Some("/b/proj");
        assert_eq!(relative_to_base(base, "/b/proj/inc"), "./inc");
        assert_eq!(relative_to_base(base, "/b/proj"), ".");
        assert_eq!(relative_to_base(base, "/b/project/inc"), "/b/project/inc");
        assert_eq!(relative_to_base(None, "/b/proj/inc"), "/b/proj/inc");
        let flags: Vec<String> = [
            "-I/b/proj/inc",
            "-I",
            "/b/proj/two",
            "-isystem/b/proj/sys",
            "-include",
            "/b/proj/pre.h",
            "-include-pch/b/proj/x.pch",
            "--sysroot=/b/proj/root",
            "-fplugin=/b/proj/p.so",
            "@/b/proj/flags.rsp",
            "-DDIR=/b/proj/data",
            "-I/elsewhere",
            "-I=/b/proj/in-sysroot",
            "-O2",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            relative_flags(base, &flags),
            [
                "-I./inc",
                "-I",
                "./two",
                "-isystem./sys",
                "-include",
                "./pre.h",
                "-include-pch./x.pch",
                "--sysroot=./root",
                "-fplugin=./p.so",
                "@./flags.rsp",
                "-DDIR=/b/proj/data",
                "-I/elsewhere",
                "-I=/b/proj/in-sysroot",
                "-O2",
            ]
        );
        assert_eq!(
            relative_env(base, "CPATH=/b/proj/inc::/usr/x"),
            "CPATH=./inc::/usr/x"
        );
        assert_eq!(
            relative_env(base, "SOURCE_DATE_EPOCH=/b/proj"),
            "SOURCE_DATE_EPOCH=/b/proj"
        );
    }
}
