"""jitcache for Python: the persistent, content-addressed cache of compiled machine code,
through its C library (libjitcache, loaded with ctypes).

- :class:`Cache` opens a cache directory: object bytes by key (``lookup``, ``insert``),
  statistics.
- :func:`build_key` makes the key of a unit exactly as the C and Rust APIs do (namespace,
  name, unit bytes, dependency hashes, and the identity of what compiles it);
  :func:`hash_bytes` is BLAKE3, for dependency hashes.
- :mod:`jitcache.llvmlite` is an object cache for llvmlite's ``ExecutionEngine``.

Every failure of the library raises :class:`JitcacheError`; a miss is ``None``.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from . import _native
from ._native import JitcacheError, LibraryNotFound, library_path

__all__ = [
    "Cache",
    "CacheStats",
    "JitcacheError",
    "LibraryNotFound",
    "build_key",
    "default_cache_dir",
    "hash_bytes",
    "library_path",
    "version",
]

__version__ = "0.1.0"


def version() -> str:
    """The version of the loaded libjitcache ("0.1.0")."""
    return _native.lib().jitcache_version().decode("ascii")


def default_cache_dir() -> Optional[str]:
    """The directory the ``jitcache`` command-line tool uses when given none:
    $JITCACHE_DIR, else $XDG_CACHE_HOME/jitcache, else ~/.cache/jitcache (empty
    variables count as unset); None if none of them is set."""
    for name, suffix in (
        ("JITCACHE_DIR", ()),
        ("XDG_CACHE_HOME", ("jitcache",)),
        ("HOME", (".cache", "jitcache")),
    ):
        value = os.environ.get(name)
        if value:
            return os.path.join(value, *suffix)
    return None


def _buffer(data: bytes):
    """A ctypes pointer to ``data``'s bytes (valid while ``data`` lives) and its
    length."""
    array = (ctypes.c_uint8 * len(data)).from_buffer_copy(data) if data else None
    pointer = ctypes.cast(array, ctypes.POINTER(ctypes.c_uint8)) if array else None
    return array, pointer, len(data)


def hash_bytes(data: bytes) -> bytes:
    """BLAKE3 of ``data``: 32 bytes, an interface hash for :func:`build_key`'s deps."""
    out = _native.Hash()
    _native.check(
        _native.lib().jitcache_hash_bytes(data, len(data), ctypes.byref(out)),
        "jitcache_hash_bytes",
    )
    return bytes(out.bytes)


def build_key(
    namespace: str,
    name: str,
    unit: bytes,
    *,
    backend: str,
    backend_version: str,
    target: str,
    flags: Sequence[str] = (),
    flags_ordered: bool = False,
    deps: Iterable[bytes] = (),
) -> bytes:
    """The 32-byte key of a unit (``jitcache_key_build``): the same key the C and Rust
    APIs give for the same parts and backend identity. ``deps`` are 32-byte interface
    hashes (a set: order is ignored); ``flags`` are sorted and deduplicated unless
    ``flags_ordered``."""
    dep_list = [bytes(d) for d in deps]
    for dep in dep_list:
        if len(dep) != 32:
            raise ValueError("a dependency hash has 32 bytes")
    dep_array = (_native.Hash * len(dep_list))()
    for i, dep in enumerate(dep_list):
        dep_array[i].bytes[:] = dep
    encoded_flags = [f.encode("utf-8") for f in flags]
    flag_array = (ctypes.c_char_p * len(encoded_flags))(*encoded_flags)
    unit_array, unit_ptr, unit_len = _buffer(bytes(unit))
    parts = _native.KeyParts(
        namespace.encode("utf-8"),
        name.encode("utf-8"),
        unit_ptr,
        unit_len,
        ctypes.cast(dep_array, ctypes.POINTER(_native.Hash)) if dep_list else None,
        len(dep_list),
    )
    identity = _native.BackendIdentity(
        backend.encode("utf-8"),
        backend_version.encode("utf-8"),
        ctypes.cast(flag_array, ctypes.POINTER(ctypes.c_char_p)) if encoded_flags else None,
        len(encoded_flags),
        1 if flags_ordered else 0,
        target.encode("utf-8"),
    )
    out = _native.Key()
    _native.check(
        _native.lib().jitcache_key_build(
            ctypes.byref(parts), ctypes.byref(identity), ctypes.byref(out)
        ),
        "jitcache_key_build",
    )
    del unit_array
    return bytes(out.bytes)


@dataclass(frozen=True)
class CacheStats:
    """This process's statistics of a cache (``jitcache_stats``)."""

    memory_hits: int
    disk_hits: int
    misses: int
    compiles: int
    compile_time_ns: int
    load_time_ns: int
    bypassed: bool


class Cache:
    """An open cache directory (``jitcache_open``). Thread-safe.

    ``directory`` None is :func:`default_cache_dir`. A directory that cannot be used
    (read-only, world-writable, owned by another user) does not raise: the cache then
    stores nothing, ``lookup`` raises JitcacheError with ``JITCACHE_ERR_BYPASSED``, and
    :meth:`bypass_reason` says why. Close it with :meth:`close` or a ``with`` block.
    """

    def __init__(self, directory: Optional[os.PathLike | str] = None, *,
                 compression_level: Optional[int] = None):
        path = directory if directory is not None else default_cache_dir()
        if path is None:
            raise ValueError(
                "no cache directory: pass one, or set JITCACHE_DIR, XDG_CACHE_HOME or HOME"
            )
        self.directory = os.fspath(path)
        library = _native.lib()
        config = _native.Config()
        _native.check(library.jitcache_config_init(ctypes.byref(config)), "jitcache_config_init")
        if compression_level is not None:
            config.compression_level = int(compression_level)
        handle = ctypes.c_void_p()
        _native.check(
            library.jitcache_open(
                self.directory.encode("utf-8"), ctypes.byref(config), ctypes.byref(handle)
            ),
            "jitcache_open",
        )
        self._handle: Optional[int] = handle.value

    def _live(self) -> int:
        if self._handle is None:
            raise JitcacheError(6, "JITCACHE_ERR_CLOSED", "the cache was closed", "Cache")
        return self._handle

    @staticmethod
    def _key(key: bytes) -> _native.Key:
        key = bytes(key)
        if len(key) != 32:
            raise ValueError("a key has 32 bytes")
        out = _native.Key()
        out.bytes[:] = key
        return out

    def lookup(self, key: bytes) -> Optional[bytes]:
        """The bytes stored under ``key``, or None on a miss. Bytes are verified against
        their hash: a damaged entry is a miss."""
        library = _native.lib()
        out = _native.Bytes()
        status = _native.check(
            library.jitcache_lookup(self._live(), ctypes.byref(self._key(key)), ctypes.byref(out)),
            "jitcache_lookup",
        )
        if status == _native.NOT_FOUND:
            return None
        try:
            return ctypes.string_at(out.data, out.len) if out.len else b""
        finally:
            library.jitcache_bytes_free(ctypes.byref(out))

    def insert(self, key: bytes, data: bytes) -> None:
        """Stores ``data`` under ``key`` for every later process."""
        array, pointer, length = _buffer(bytes(data))
        _native.check(
            _native.lib().jitcache_insert(
                self._live(), ctypes.byref(self._key(key)), pointer, length
            ),
            "jitcache_insert",
        )
        del array

    def stats(self) -> CacheStats:
        """This process's statistics of the cache."""
        out = _native.Stats()
        _native.check(
            _native.lib().jitcache_stats_get(self._live(), ctypes.byref(out)),
            "jitcache_stats_get",
        )
        return CacheStats(
            out.memory_hits,
            out.disk_hits,
            out.misses,
            out.compiles,
            out.compile_time_ns,
            out.load_time_ns,
            bool(out.bypassed),
        )

    def bypass_reason(self) -> Optional[str]:
        """Why the cache does not persist, or None if it does."""
        library = _native.lib()
        out = ctypes.c_void_p()
        _native.check(
            library.jitcache_bypass_reason(self._live(), ctypes.byref(out)),
            "jitcache_bypass_reason",
        )
        if not out.value:
            return None
        try:
            return ctypes.string_at(out.value).decode("utf-8", "replace")
        finally:
            library.jitcache_string_free(out)

    def close(self) -> None:
        """Closes the cache (a second close does nothing)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            _native.check(_native.lib().jitcache_close(handle), "jitcache_close")

    def __enter__(self) -> "Cache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone
            pass
