"""The C library, libjitcache, through ctypes: finding it, and the prototypes of the
functions of include/jitcache.h this package calls.

The library is looked for, in order: the path in $JITCACHE_LIBRARY; the copy bundled in
this package (``jitcache/_lib/libjitcache.so``, put there when the wheel was built); the
system's search path (``libjitcache.so``, as ``ld.so`` finds it). It is loaded on first
use, so importing the package never fails.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from ctypes import (
    POINTER,
    Structure,
    c_char_p,
    c_int32,
    c_size_t,
    c_uint8,
    c_uint64,
    c_void_p,
)
from pathlib import Path

__all__ = ["JitcacheError", "LibraryNotFound", "lib", "library_path", "check"]

# Status codes (include/jitcache.h: values never change).
OK = 0
NOT_FOUND = 1


class JitcacheError(Exception):
    """A call of the C API failed: ``status`` is its jitcache_status, ``name`` the
    status's name (``JITCACHE_ERR_STORE``), and the message jitcache gave."""

    def __init__(self, status: int, name: str, message: str, call: str):
        super().__init__(f"{call}: {name}: {message}")
        self.status = status
        self.name = name
        self.message = message


class LibraryNotFound(ImportError):
    """libjitcache could not be found or loaded."""


class Key(Structure):
    _fields_ = [("bytes", c_uint8 * 32)]


Hash = Key


class Bytes(Structure):
    _fields_ = [("data", POINTER(c_uint8)), ("len", c_size_t)]


class Config(Structure):
    _fields_ = [
        ("compression_level", c_int32),
        ("persistent", c_int32),
        ("single_flight_timeout_ms", c_uint64),
    ]


class Stats(Structure):
    _fields_ = [
        ("memory_hits", c_uint64),
        ("disk_hits", c_uint64),
        ("misses", c_uint64),
        ("compiles", c_uint64),
        ("compile_time_ns", c_uint64),
        ("load_time_ns", c_uint64),
        ("bypassed", c_int32),
    ]


class KeyParts(Structure):
    _fields_ = [
        ("ns", c_char_p),
        ("name", c_char_p),
        ("unit", POINTER(c_uint8)),
        ("unit_len", c_size_t),
        ("deps", POINTER(Hash)),
        ("deps_count", c_size_t),
    ]


class BackendIdentity(Structure):
    _fields_ = [
        ("name", c_char_p),
        ("version", c_char_p),
        ("flags", POINTER(c_char_p)),
        ("flags_count", c_size_t),
        ("flags_ordered", c_int32),
        ("target", c_char_p),
    ]


_PROTOTYPES = {
    "jitcache_last_error": (c_char_p, []),
    "jitcache_status_name": (c_char_p, [c_int32]),
    "jitcache_version": (c_char_p, []),
    "jitcache_config_init": (c_int32, [POINTER(Config)]),
    "jitcache_open": (c_int32, [c_char_p, POINTER(Config), POINTER(c_void_p)]),
    "jitcache_close": (c_int32, [c_void_p]),
    "jitcache_stats_get": (c_int32, [c_void_p, POINTER(Stats)]),
    "jitcache_bypass_reason": (c_int32, [c_void_p, POINTER(c_void_p)]),
    "jitcache_string_free": (c_int32, [c_void_p]),
    "jitcache_key_build": (
        c_int32,
        [POINTER(KeyParts), POINTER(BackendIdentity), POINTER(Key)],
    ),
    "jitcache_hash_bytes": (c_int32, [c_void_p, c_size_t, POINTER(Hash)]),
    "jitcache_lookup": (c_int32, [c_void_p, POINTER(Key), POINTER(Bytes)]),
    "jitcache_insert": (c_int32, [c_void_p, POINTER(Key), POINTER(c_uint8), c_size_t]),
    "jitcache_bytes_free": (c_int32, [POINTER(Bytes)]),
}

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_path: str | None = None


def _candidates() -> list[str]:
    found = []
    env = os.environ.get("JITCACHE_LIBRARY")
    if env:
        found.append(env)
    bundled = Path(__file__).resolve().parent / "_lib" / "libjitcache.so"
    if bundled.is_file():
        found.append(str(bundled))
    system = ctypes.util.find_library("jitcache")
    found.append(system or "libjitcache.so")
    return found


def lib() -> ctypes.CDLL:
    """The loaded library, with its prototypes set (loaded on the first call).

    Raises LibraryNotFound if no candidate loads."""
    global _lib, _path
    with _lock:
        if _lib is not None:
            return _lib
        problems = []
        for candidate in _candidates():
            try:
                loaded = ctypes.CDLL(candidate)
            except OSError as err:
                problems.append(f"{candidate}: {err}")
                continue
            for name, (restype, argtypes) in _PROTOTYPES.items():
                function = getattr(loaded, name)
                function.restype = restype
                function.argtypes = argtypes
            _lib, _path = loaded, candidate
            return loaded
        raise LibraryNotFound(
            "libjitcache not found: set JITCACHE_LIBRARY to the path of libjitcache.so "
            "(cargo build --release -p jitcache-capi), or install a wheel that bundles it "
            "(tried: " + "; ".join(problems) + ")"
        )


def library_path() -> str:
    """The path (or name) of the libjitcache this package loaded."""
    lib()
    assert _path is not None
    return _path


def check(status: int, call: str) -> int:
    """Returns ``status`` if it is OK or NOT_FOUND; raises JitcacheError otherwise, with
    the calling thread's message from the library."""
    if status in (OK, NOT_FOUND):
        return status
    library = lib()
    message = (library.jitcache_last_error() or b"").decode("utf-8", "replace")
    name = (library.jitcache_status_name(status) or b"").decode("ascii", "replace")
    raise JitcacheError(status, name, message, call)
