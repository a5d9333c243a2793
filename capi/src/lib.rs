//! The C API of jitcache: `libjitcache.so` and `libjitcache.a`, declared by
//! `include/jitcache.h` (written by hand; a test compares it with the exported symbols).
//!
//! Every exported function runs inside [`boundary::guard`]: it returns a status, sets the
//! thread's last error message, and never lets a panic reach the host. Handles given to C
//! are numbers in a registry ([`handles`]), never pointers to Rust objects, so a freed,
//! closed, forged or wrong-kind handle is an error status and is never dereferenced.
//!
//! `docs/c-api.md` is the guide; the modules:
//!
//! | module | what |
//! | --- | --- |
//! | `status` | `jitcache_status`, errors, the per-thread last error |
//! | `boundary` | the panic-catching wrapper of every call |
//! | `args` | reading C arguments (NULL, alignment, UTF-8 checks) |
//! | `handles` | the registry of live handles |
//! | `reentrance` | the re-entrance guard for callbacks that run under the linker's lock |
//! | `host_memory` | buffers and strings handed to the host, and their free functions |
//! | `cache` | open/close, raw lookup/insert, resolver, libraries, stats |
//! | `key` | key parts, backend identities, keys and hashes |
//! | `backend` | system-compiler and callback backends |
//! | `compile` | get-or-compile (single and batch), compile callbacks' output |
//! | `unit` | loaded units: symbols, origin, key, free, unload, loading raw objects |
//! | `unwinder` | an unwinder of the host that the linker cannot find by itself |

mod args;
mod backend;
mod boundary;
mod cache;
mod compile;
mod handles;
mod host_memory;
mod key;
mod reentrance;
mod status;
mod unit;
mod unwinder;

use std::ffi::c_char;

pub use backend::{CallbackOptionsC, CcConfigC, CcOptionsC, JitcacheBackend};
pub use cache::{ConfigC, JitcacheCache, ResolveFn, StatsC};
pub use compile::{CompileFn, OutputC, RequestC};
pub use host_memory::Bytes;
pub use key::{HashC, IdentityC, KeyC, KeyPartsC};
pub use status::Status;
pub use unit::{JitcacheUnit, ObjectC};

// The header's struct layouts (the C hosts in capi/tests assert the same numbers).
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<ConfigC>() == 16 && align_of::<ConfigC>() == 8);
    assert!(offset_of!(ConfigC, single_flight_timeout_ms) == 8);
    assert!(size_of::<StatsC>() == 56 && offset_of!(StatsC, bypassed) == 48);
    assert!(size_of::<KeyC>() == 32 && align_of::<KeyC>() == 1);
    assert!(size_of::<HashC>() == 32 && align_of::<HashC>() == 1);
    assert!(size_of::<KeyPartsC>() == 48 && offset_of!(KeyPartsC, deps_count) == 40);
    assert!(size_of::<IdentityC>() == 48 && offset_of!(IdentityC, flags_ordered) == 32);
    assert!(offset_of!(IdentityC, target) == 40);
    assert!(size_of::<CcConfigC>() == 32 && offset_of!(CcConfigC, flags) == 16);
    assert!(size_of::<CcOptionsC>() == 16 && offset_of!(CcOptionsC, probe_cache) == 8);
    assert!(size_of::<CallbackOptionsC>() == 16 && offset_of!(CallbackOptionsC, base_dir) == 8);
    assert!(size_of::<RequestC>() == 56 && offset_of!(RequestC, call_data) == 40);
    assert!(offset_of!(RequestC, path) == 48);
    assert!(size_of::<Bytes>() == 16);
    assert!(size_of::<ObjectC>() == 24);
    assert!(size_of::<Status>() == 4);
};

/// `jitcache_last_error`: this thread's message of the last call ("" after a success).
/// The pointer is valid until the next call of the API on this thread; never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn jitcache_last_error() -> *const c_char {
    status::last_error_ptr()
}

/// `jitcache_status_name`: the name of a status (`"JITCACHE_OK"`), or `"unknown status"`;
/// a static string.
#[unsafe(no_mangle)]
pub extern "C" fn jitcache_status_name(status: i32) -> *const c_char {
    Status::from_raw(status).map_or(c"unknown status".as_ptr(), |s| s.name().as_ptr())
}

/// `jitcache_version`: the library's version (`"0.1.0"`); a static string.
#[unsafe(no_mangle)]
pub extern "C" fn jitcache_version() -> *const c_char {
    const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    VERSION.as_ptr().cast()
}
