"""Tests of the jitcache package against libjitcache: the store, keys, object
validation, and the llvmlite object cache's handling of damaged entries.

Run with ``python3 -m unittest discover python/tests`` (the workspace's cargo test does,
with $JITCACHE_LIBRARY set to the library it built)."""

import os
import struct
import tempfile
import unittest

import jitcache
from jitcache import Cache, build_key, hash_bytes


def key_of(text: str) -> bytes:
    return build_key("test", text, text.encode(), backend="b", backend_version="1",
                     target="x86_64-unknown-linux-gnu")


class StoreTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = os.path.join(self.tmp.name, "cache")

    def tearDown(self):
        self.tmp.cleanup()

    def test_insert_then_lookup_in_another_handle(self):
        key = key_of("unit")
        with Cache(self.dir) as cache:
            self.assertIsNone(cache.lookup(key))
            cache.insert(key, b"\x7fELF object bytes" * 100)
            self.assertIsNone(cache.bypass_reason())
        with Cache(self.dir) as cache:
            self.assertEqual(cache.lookup(key), b"\x7fELF object bytes" * 100)
            self.assertIsNone(cache.lookup(key_of("other")))

    def test_closed_cache_raises(self):
        cache = Cache(self.dir)
        cache.close()
        cache.close()  # a second close does nothing
        with self.assertRaises(jitcache.JitcacheError):
            cache.lookup(key_of("unit"))

    def test_bad_key_length_is_a_value_error(self):
        with Cache(self.dir) as cache:
            with self.assertRaises(ValueError):
                cache.lookup(b"short")

    def test_keys_cover_every_part(self):
        base = dict(backend="b", backend_version="1", target="t", flags=["-O2"])
        k = build_key("ns", "name", b"unit", **base)
        self.assertEqual(len(k), 32)
        self.assertEqual(k, build_key("ns", "name", b"unit", **base))
        self.assertNotEqual(k, build_key("ns", "name", b"unit2", **base))
        self.assertNotEqual(k, build_key("ns", "other", b"unit", **base))
        self.assertNotEqual(k, build_key("ns2", "name", b"unit", **base))
        self.assertNotEqual(k, build_key("ns", "name", b"unit", **{**base, "flags": ["-O1"]}))
        self.assertNotEqual(k, build_key("ns", "name", b"unit", **{**base, "target": "u"}))
        self.assertNotEqual(k, build_key("ns", "name", b"unit", **{**base, "backend_version": "2"}))
        dep = hash_bytes(b"int f(int)")
        self.assertNotEqual(k, build_key("ns", "name", b"unit", deps=[dep], **base))
        # Dependencies are a set; unordered flags are sorted.
        other = hash_bytes(b"int g(int)")
        self.assertEqual(build_key("ns", "name", b"u", deps=[dep, other], **base),
                         build_key("ns", "name", b"u", deps=[other, dep], **base))
        self.assertEqual(build_key("ns", "n", b"u", backend="b", backend_version="1", target="t",
                                   flags=["a", "b"]),
                         build_key("ns", "n", b"u", backend="b", backend_version="1", target="t",
                                   flags=["b", "a"]))
        with self.assertRaises(ValueError):
            build_key("ns", "name", b"unit", deps=[b"x"], **base)

    def test_hash_bytes_is_blake3(self):
        # BLAKE3 of the empty input.
        self.assertEqual(hash_bytes(b"").hex(),
                         "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")

    def test_default_cache_dir_follows_the_cli(self):
        saved = {k: os.environ.get(k) for k in ("JITCACHE_DIR", "XDG_CACHE_HOME", "HOME")}
        try:
            os.environ["JITCACHE_DIR"] = "/a"
            self.assertEqual(jitcache.default_cache_dir(), "/a")
            os.environ["JITCACHE_DIR"] = ""
            os.environ["XDG_CACHE_HOME"] = "/x"
            self.assertEqual(jitcache.default_cache_dir(), "/x/jitcache")
            del os.environ["XDG_CACHE_HOME"]
            os.environ["HOME"] = "/h"
            self.assertEqual(jitcache.default_cache_dir(), "/h/.cache/jitcache")
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def elf(sections=1, shoff=None, size=None):
    """A minimal 64-bit little-endian ELF relocatable header with `sections` empty
    section headers."""
    header_end = 64
    shoff = header_end if shoff is None else shoff
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header += struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64,
                          sections, 0)
    body = bytes(64 * sections)
    data = header + body
    return data if size is None else data[:size]


class ObjectValidationTest(unittest.TestCase):
    def setUp(self):
        try:
            import llvmlite  # noqa: F401
        except ImportError:
            self.skipTest("llvmlite is not installed")
        from jitcache.llvmlite import is_loadable_object
        self.valid = is_loadable_object

    def test_sound_elf_is_accepted(self):
        self.assertTrue(self.valid(elf()))

    def test_damaged_objects_are_refused(self):
        self.assertFalse(self.valid(b""))
        self.assertFalse(self.valid(b"not an object at all"))
        self.assertFalse(self.valid(elf(size=40)))            # truncated header
        self.assertFalse(self.valid(elf(size=100)))           # truncated section table
        self.assertFalse(self.valid(elf(shoff=1 << 40)))      # table beyond the end
        bad_type = bytearray(elf())
        bad_type[16] = 2                                      # ET_EXEC, not relocatable
        self.assertFalse(self.valid(bytes(bad_type)))
        section = bytearray(elf(sections=2))
        struct.pack_into("<IIQQQQ", section, 64 + 64, 1, 1, 0, 0, 64, 1 << 30)
        self.assertFalse(self.valid(bytes(section)))          # a section past the end


if __name__ == "__main__":
    unittest.main()
