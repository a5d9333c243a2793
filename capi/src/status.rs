//! Status codes, the error type of the boundary, and the per-thread last error message.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};

use jitcache_rs::Error;

/// `jitcache_status`: what every function of the C API returns.
///
/// The values are part of the ABI: they never change, new ones are only added.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// Nothing found: a cache miss, an undefined symbol, a unit without a key.
    NotFound = 1,
    /// A required pointer argument was NULL.
    NullArgument = 2,
    /// An argument was out of range, misaligned or not valid UTF-8.
    InvalidArgument = 3,
    /// A handle that jitcache never issued, or a handle of another kind.
    InvalidHandle = 4,
    /// A handle that was freed (or unloaded).
    StaleHandle = 5,
    /// The cache was closed (the cache handle itself, or the cache of a unit).
    Closed = 6,
    /// Called from a resolver callback or a constructor of loading code on the cache
    /// that is loading.
    Reentrant = 7,
    /// The persistent cache is not in use (disabled or unusable).
    Bypassed = 8,
    /// The store failed.
    Store = 9,
    /// A file could not be read or written.
    Io = 10,
    /// A backend could not compile a unit, or produced something that is not an object.
    Compile = 11,
    /// A compile callback reported a failure.
    Callback = 12,
    /// The linker could not load a unit or open a library.
    Link = 13,
    /// An internal error (a bug in jitcache), caught before it reached the host.
    Panic = 14,
}

impl Status {
    /// The status for a raw value, if it is one.
    pub(crate) fn from_raw(raw: i32) -> Option<Status> {
        const ALL: [Status; 15] = [
            Status::Ok,
            Status::NotFound,
            Status::NullArgument,
            Status::InvalidArgument,
            Status::InvalidHandle,
            Status::StaleHandle,
            Status::Closed,
            Status::Reentrant,
            Status::Bypassed,
            Status::Store,
            Status::Io,
            Status::Compile,
            Status::Callback,
            Status::Link,
            Status::Panic,
        ];
        ALL.into_iter().find(|s| *s as i32 == raw)
    }

    /// The name of the status as spelled in the header.
    pub(crate) fn name(self) -> &'static CStr {
        match self {
            Status::Ok => c"JITCACHE_OK",
            Status::NotFound => c"JITCACHE_NOT_FOUND",
            Status::NullArgument => c"JITCACHE_ERR_NULL_ARGUMENT",
            Status::InvalidArgument => c"JITCACHE_ERR_INVALID_ARGUMENT",
            Status::InvalidHandle => c"JITCACHE_ERR_INVALID_HANDLE",
            Status::StaleHandle => c"JITCACHE_ERR_STALE_HANDLE",
            Status::Closed => c"JITCACHE_ERR_CLOSED",
            Status::Reentrant => c"JITCACHE_ERR_REENTRANT",
            Status::Bypassed => c"JITCACHE_ERR_BYPASSED",
            Status::Store => c"JITCACHE_ERR_STORE",
            Status::Io => c"JITCACHE_ERR_IO",
            Status::Compile => c"JITCACHE_ERR_COMPILE",
            Status::Callback => c"JITCACHE_ERR_CALLBACK",
            Status::Link => c"JITCACHE_ERR_LINK",
            Status::Panic => c"JITCACHE_ERR_PANIC",
        }
    }
}

/// A failed call: the status to return and the message for `jitcache_last_error`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: Status,
    pub(crate) message: String,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub(crate) fn new(status: Status, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// A NULL pointer where `what` was required.
    pub(crate) fn null(what: &str) -> ApiError {
        ApiError::new(Status::NullArgument, format!("{what} is NULL"))
    }

    /// An invalid argument.
    pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(Status::InvalidArgument, message)
    }

    /// A miss.
    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(Status::NotFound, message)
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> ApiError {
        let status = match &err {
            Error::Store(_) => Status::Store,
            Error::Backend(_) => Status::Compile,
            Error::Link(_) => Status::Link,
            Error::Frontend { .. } | Error::UnitRequestedTwice { .. } => Status::Callback,
            Error::MissingSymbol { .. } => Status::NotFound,
            Error::Io { .. } => Status::Io,
        };
        ApiError::new(status, err.to_string())
    }
}

impl From<jitcache_rs::backends::Error> for ApiError {
    fn from(err: jitcache_rs::backends::Error) -> ApiError {
        ApiError::new(Status::Compile, err.to_string())
    }
}

impl From<jitcache_rs::linker::Error> for ApiError {
    fn from(err: jitcache_rs::linker::Error) -> ApiError {
        ApiError::new(Status::Link, err.to_string())
    }
}

impl From<jitcache_rs::store::Error> for ApiError {
    fn from(err: jitcache_rs::store::Error) -> ApiError {
        ApiError::new(Status::Store, err.to_string())
    }
}

thread_local! {
    /// The message of the last call on this thread ("" after a success).
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Sets this thread's last error message (NUL bytes in it are shown as `\0`).
pub(crate) fn set_last_error(message: &str) {
    let message = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    // During thread teardown the slot may be gone: the message is then dropped.
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = message;
        }
    });
}

/// A pointer to this thread's last error message, valid until the next call of the
/// C API on this thread.
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR
        .try_with(|slot| {
            slot.try_borrow()
                .map(|s| s.as_ptr())
                .unwrap_or(c"".as_ptr())
        })
        .unwrap_or(c"".as_ptr())
}

#[cfg(test)]
mod tests {
    use super::Status;

    /// Every `JITCACHE_... = N` of the header's `jitcache_status` is the status with that
    /// value and name here, and the other way round.
    #[test]
    fn header_enum_matches_the_statuses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../include/jitcache.h");
        let header = std::fs::read_to_string(path).expect("read include/jitcache.h");
        let body = header
            .split("typedef enum jitcache_status {")
            .nth(1)
            .and_then(|rest| rest.split("} jitcache_status;").next())
            .expect("jitcache_status in the header");
        let mut seen = 0;
        for line in body
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("JITCACHE_"))
        {
            let (name, value) = line
                .trim_end_matches(',')
                .split_once(" = ")
                .expect("NAME = N");
            let value: i32 = value.parse().expect("a number");
            let status = Status::from_raw(value).unwrap_or_else(|| panic!("{name} = {value}"));
            assert_eq!(status.name().to_str(), Ok(name));
            seen += 1;
        }
        assert_eq!(
            seen, 15,
            "the header and Status have different numbers of statuses"
        );
        assert_eq!(Status::from_raw(15), None);
        assert_eq!(Status::from_raw(-1), None);
    }
}
