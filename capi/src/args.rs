//! Reading arguments from C: strings, slices and output pointers, each checked for NULL,
//! alignment and UTF-8 before use.

use std::ffi::{CStr, c_char};
use std::path::{Component, Path, PathBuf};

use crate::status::{ApiError, Status};

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
///
/// `ptr` is NULL or points to a NUL-terminated string that stays valid and unchanged for
/// `'a`.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, ApiError> {
    if ptr.is_null() {
        return Err(ApiError::null(what));
    }
    // SAFETY: not NULL, and by the caller's contract a NUL-terminated string valid for 'a.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str()
        .map_err(|e| ApiError::invalid(format!("{what} is not valid UTF-8 ({e})")))
}

/// An optional string argument: NULL gives `None`.
///
/// # Safety
///
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(
    ptr: *const c_char,
    what: &str,
) -> Result<Option<&'a str>, ApiError> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded contract.
    unsafe { str_arg(ptr, what) }.map(Some)
}

/// A slice argument given as pointer and count: a count of 0 gives an empty slice
/// whatever the pointer; otherwise the pointer must not be NULL and must be aligned.
///
/// # Safety
///
/// When `len > 0`, `ptr` is NULL or points to `len` initialized values of `T` that stay
/// valid and unchanged for `'a`.
pub(crate) unsafe fn slice_arg<'a, T>(
    ptr: *const T,
    len: usize,
    what: &str,
) -> Result<&'a [T], ApiError> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(ApiError::null(what));
    }
    if !ptr.is_aligned() {
        return Err(ApiError::invalid(format!("{what} is misaligned")));
    }
    let too_big = len
        .checked_mul(size_of::<T>())
        .is_none_or(|bytes| bytes > isize::MAX as usize);
    if too_big {
        return Err(ApiError::invalid(format!(
            "{what}: a count of {len} is too large"
        )));
    }
    // SAFETY: not NULL, aligned, the size fits in isize, and by the caller's contract it
    // points to `len` initialized values valid for 'a.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A reference argument (a pointer to one struct).
///
/// # Safety
///
/// `ptr` is NULL or points to an initialized `T` valid and unchanged for `'a`.
pub(crate) unsafe fn ref_arg<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, ApiError> {
    // SAFETY: forwarded contract; a count of 1.
    unsafe { slice_arg(ptr, 1, what) }.map(|s| &s[0])
}

/// An output pointer, checked before the call does any work and written at its end.
pub(crate) struct Out<T> {
    ptr: *mut T,
}

impl<T> Out<T> {
    /// Checks an output pointer: not NULL, aligned.
    pub(crate) fn new(ptr: *mut T, what: &str) -> Result<Out<T>, ApiError> {
        if ptr.is_null() {
            return Err(ApiError::null(what));
        }
        if !ptr.is_aligned() {
            return Err(ApiError::invalid(format!("{what} is misaligned")));
        }
        Ok(Out { ptr })
    }

    /// Checks an optional output pointer: NULL gives `None`.
    pub(crate) fn optional(ptr: *mut T, what: &str) -> Result<Option<Out<T>>, ApiError> {
        if ptr.is_null() {
            Ok(None)
        } else {
            Out::new(ptr, what).map(Some)
        }
    }

    /// Writes `value` (the old value is overwritten, not dropped: outputs are plain C
    /// data).
    ///
    /// # Safety
    ///
    /// The pointer given to [`Out::new`] points to writable memory for a `T`.
    pub(crate) unsafe fn write(&self, value: T) {
        // SAFETY: not NULL and aligned (checked in `new`), writable by the caller's
        // contract; `write` does not read or drop the old value.
        unsafe { self.ptr.write(value) }
    }
}

/// `path` made absolute and normalized the way the C/C++ backend records what a compile
/// read: a relative path is taken relative to `base`, or to the current directory
/// without one; `.` components are dropped and `..` removes the component before it
/// (after resolving that component, if it is a symbolic link, as the kernel would).
pub(crate) fn absolute_path(
    base: Option<&Path>,
    path: &str,
    what: &str,
) -> Result<PathBuf, ApiError> {
    if path.is_empty() {
        return Err(ApiError::invalid(format!("{what} is empty")));
    }
    let path = Path::new(path);
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        match base {
            Some(base) => base.join(path),
            None => std::env::current_dir()
                .map_err(|e| {
                    ApiError::new(
                        Status::Io,
                        format!("{what}: the current directory is unknown ({e})"),
                    )
                })?
                .join(path),
        }
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
    Ok(out)
}

/// A base directory argument: made absolute (relative to the current directory) and
/// normalized; it must be an existing directory.
pub(crate) fn base_dir_arg(dir: &str, what: &str) -> Result<PathBuf, ApiError> {
    let abs = absolute_path(None, dir, what)?;
    if !abs.is_dir() {
        return Err(ApiError::invalid(format!(
            "{what} ({dir}) is not an existing directory"
        )));
    }
    Ok(abs)
}

/// An optional message argument: NULL gives `None`; bytes that are not UTF-8 are
/// replaced (a message is still worth showing).
///
/// # Safety
///
/// As [`str_arg`].
pub(crate) unsafe fn lossy_str_arg(ptr: *const c_char) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: not NULL, and by the caller's contract a NUL-terminated string.
    let c = unsafe { CStr::from_ptr(ptr) };
    Some(c.to_string_lossy().into_owned())
}
